//! Order pricing: an activity handler that validates an order and prices it.
//!
//! Build (from the repository root):
//!
//! ```sh
//! rustup target add wasm32-wasip2
//! cargo build --manifest-path examples/rust/Cargo.toml --release --target wasm32-wasip2
//! ```
//!
//! Try it once, locally, without any service:
//!
//! ```sh
//! cargo run -p wasm-activity -- invoke \
//!     examples/rust/target/wasm32-wasip2/release/order_pricing.wasm \
//!     --input @examples/orders/input.json
//! ```
//!
//! Serve it for a Step Functions activity: `wasm-activity run --config examples/rust/worker.toml`.
//!
//! Input: `{"order_id", "currency", "customer": {"tier"}, "items": [{"sku", "quantity",
//! "unit_price"}], "coupon"?}` with prices as decimal strings ("19.99"). Output: the priced
//! order with per-line totals, discount, tax and grand total in integer cents, so no float
//! rounding ever reaches a bill.

use serde::{Deserialize, Serialize};
use wasm_activity_guest::{Failure, Level, log, progress};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    order_id: String,
    currency: String,
    customer: Customer,
    items: Vec<Item>,
    #[serde(default)]
    coupon: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Customer {
    tier: Tier,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Tier {
    Standard,
    Gold,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    sku: String,
    quantity: u32,
    unit_price: String,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct PricedOrder {
    order_id: String,
    currency: String,
    lines: Vec<Line>,
    subtotal_cents: u64,
    discount_cents: u64,
    tax_cents: u64,
    total_cents: u64,
}

#[derive(Serialize, Debug, PartialEq)]
struct Line {
    sku: String,
    quantity: u32,
    line_total_cents: u64,
}

const CURRENCIES: &[(&str, u64)] = &[("USD", 800), ("EUR", 2000), ("GBP", 2000)];
const MAX_ITEMS: usize = 500;

fn invalid(cause: impl std::fmt::Display) -> Failure {
    Failure::new("InvalidOrder", cause)
}

/// "19.99" -> 1999. At most two decimals, no sign, no exponent.
fn parse_cents(price: &str) -> Option<u64> {
    let (whole, frac) = price.split_once('.').unwrap_or((price, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac_cents = format!("{frac:0<2}").parse::<u64>().ok()?;
    whole
        .parse::<u64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(frac_cents)
}

/// Prices one order. Exported as the component's handler; also callable
/// natively (the benchmarks' native worker runs it through
/// `wasm_activity_guest::call`).
pub fn price(order: Order) -> Result<PricedOrder, Failure> {
    let order_id = order.order_id.trim().to_string();
    if order_id.is_empty() {
        return Err(invalid("order_id must not be empty"));
    }
    let currency = order.currency.to_ascii_uppercase();
    let Some(&(_, tax_basis_points)) = CURRENCIES.iter().find(|(c, _)| *c == currency) else {
        return Err(invalid(format!(
            "order {order_id}: currency {:?} is not supported (expected one of USD, EUR, GBP)",
            order.currency
        )));
    };
    if order.items.is_empty() {
        return Err(invalid(format!("order {order_id} has no items")));
    }
    if order.items.len() > MAX_ITEMS {
        return Err(invalid(format!(
            "order {order_id} has {} items; at most {MAX_ITEMS} are allowed",
            order.items.len()
        )));
    }

    let mut lines = Vec::with_capacity(order.items.len());
    for (i, item) in order.items.into_iter().enumerate() {
        if item.quantity == 0 {
            return Err(invalid(format!(
                "items[{i}] ({}): quantity must be at least 1",
                item.sku
            )));
        }
        let unit = parse_cents(&item.unit_price).ok_or_else(|| {
            invalid(format!(
                "items[{i}] ({}): unit_price {:?} is not a decimal amount like \"19.99\"",
                item.sku, item.unit_price
            ))
        })?;
        let total = unit
            .checked_mul(u64::from(item.quantity))
            .ok_or_else(|| invalid(format!("items[{i}] ({}): line total overflows", item.sku)))?;
        lines.push(Line {
            sku: item.sku.trim().to_ascii_uppercase(),
            quantity: item.quantity,
            line_total_cents: total,
        });
    }
    progress(&format!("priced {} lines", lines.len()));

    let subtotal: u64 = lines.iter().map(|l| l.line_total_cents).sum();
    let mut discount_percent = match order.customer.tier {
        Tier::Standard => 0,
        Tier::Gold => 5,
    };
    match order.coupon.as_deref() {
        None => {}
        Some("SAVE10") => discount_percent += 10,
        Some(other) => {
            log(
                Level::Warn,
                &format!("order {order_id}: unknown coupon {other:?} ignored"),
            );
        }
    }
    let discount = subtotal * discount_percent / 100;
    let taxable = subtotal - discount;
    // Basis points, rounded half up.
    let tax = (taxable * tax_basis_points + 5_000) / 10_000;
    log(
        Level::Info,
        &format!(
            "order {order_id}: {} lines, total {}",
            lines.len(),
            taxable + tax
        ),
    );

    Ok(PricedOrder {
        order_id,
        currency,
        lines,
        subtotal_cents: subtotal,
        discount_cents: discount,
        tax_cents: tax,
        total_cents: taxable + tax,
    })
}

wasm_activity_guest::export_handler!(price);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents() {
        assert_eq!(parse_cents("19.99"), Some(1999));
        assert_eq!(parse_cents("5"), Some(500));
        assert_eq!(parse_cents("5.5"), Some(550));
        assert_eq!(parse_cents("-1"), None);
        assert_eq!(parse_cents("1.234"), None);
        assert_eq!(parse_cents(".5"), None);
        assert_eq!(parse_cents("1e3"), None);
    }
}
