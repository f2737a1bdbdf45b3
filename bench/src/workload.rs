//! The work the benchmarks hand out: order-pricing inputs of a target size
//! with their expected outputs (computed by the same pricing code, natively),
//! and inputs for the scenario guest's sleep and CPU-heavy actions.

use crate::fake::Work;
use serde_json::json;
use std::sync::Arc;

/// Orders of about `bytes` bytes each, `count` different ones.
pub fn orders(bytes: usize, count: usize) -> Vec<Work> {
    (0..count)
        .map(|variant| {
            let mut items = Vec::new();
            let mut order = json!({});
            // Long SKUs make big orders without passing the 500-item limit.
            let sku_len = if bytes > 20_000 { 150 } else { 8 };
            while order.to_string().len() < bytes && items.len() < 500 {
                let i = items.len();
                items.push(json!({
                    "sku": format!("{:0>width$}", format!("sku-{variant}-{i}"), width = sku_len),
                    "quantity": 1 + (i + variant) % 7,
                    "unit_price": format!("{}.{:02}", 1 + (i * 37 + variant) % 90, (i * 13) % 100),
                }));
                let currency = ["usd", "EUR", "gbp"][variant % 3];
                order = json!({
                    "order_id": format!("B-{variant}"),
                    "currency": currency,
                    "customer": { "tier": if variant % 2 == 0 { "gold" } else { "standard" } },
                    "items": items,
                    "coupon": "SAVE10",
                });
            }
            let input = order.to_string();
            let expected = wasm_activity_guest::call(order_pricing::price, &input)
                .expect("benchmark orders are valid");
            Work {
                input: input.into(),
                expected: Some(expected.into()),
            }
        })
        .collect()
}

/// Scenario-guest input (`{"action": ...}`) with no fixed output.
pub fn action(input: serde_json::Value) -> Vec<Work> {
    vec![Work {
        input: Arc::from(input.to_string()),
        expected: None,
    }]
}
