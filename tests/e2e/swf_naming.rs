//! One name per SWF activity type, on the real binary against the embedded
//! endpoint: a failure cause names the type's real config key, and every
//! metric of the type carries the same `activity` label, the component
//! gauge included, before and after a component reload.

use crate::support::{Backend, Service, Worker, guests, scrape_until};
use crate::swf_support::{Swf, activity_type};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const DONE: Duration = Duration::from_secs(90);
/// The one name of the `[[swf.orders.activity]]` entry for type "slow" v1.
const NAME: &str = "orders/slow@1";

/// The `version` labels of `wasm_activity_component` series for `activity`.
fn component_versions(metrics: &str, activity: &str) -> Vec<String> {
    let prefix = format!("wasm_activity_component{{activity=\"{activity}\",version=\"");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// Every `activity` label value in the metrics that mentions `needle`.
fn activity_labels(metrics: &str, needle: &str) -> Vec<String> {
    let mut labels: Vec<String> = metrics
        .split("activity=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .filter(|l| l.contains(needle))
        .collect();
    labels.sort();
    labels.dedup();
    labels
}

fn replace_by_rename(target: &Path, from: &Path) {
    let tmp = target.with_extension("incoming");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn swf_type_has_one_name_in_causes_and_metrics_across_a_reload() {
    let svc = Service::start(Backend::Embedded);
    let swf = Swf::connect(&svc).await;
    swf.register_activity("fast", "1", 30).await;
    swf.register_activity("slow", "1", 30).await;
    let list = crate::support::unique("acts");
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow.wasm");
    std::fs::copy(&guests().scenario, &slow).unwrap();
    // "slow" is the second entry, so its key path is activity[1].
    let worker = Worker::start(
        &format!(
            "metrics_addr = \"127.0.0.1:0\"\nreload_debounce = \"50ms\"\n\n\
             [swf.orders]\ndomain = \"{}\"\ntask_list = \"{list}\"\n\n\
             [[swf.orders.activity]]\ntype = \"fast\"\ncomponent = \"{}\"\n\n\
             [[swf.orders.activity]]\ntype = \"slow\"\nversion = \"1\"\ncomponent = \"{}\"\n\
             task_timeout = \"1s\"\n",
            swf.domain,
            guests().scenario.display(),
            slow.display()
        ),
        &svc,
    );
    let url = worker.metrics_url();
    let _decider = swf.decider();

    // 1. The task runs past task_timeout: the cause names the key to raise.
    let w = swf
        .start(
            &activity_type("slow", "1"),
            &list,
            &json!({"action": "sleep", "ms": 20000}).to_string(),
        )
        .await;
    let closed = swf.wait_activity_closed(&w, DONE).await;
    let attrs = closed
        .activity_task_failed_event_attributes()
        .unwrap_or_else(|| panic!("{closed:?}\n{}", worker.log()));
    assert_eq!(attrs.reason(), Some("WasmActivity.Timeout"));
    let cause = attrs.details().unwrap_or_default();
    assert!(
        cause.contains(
            "raise swf.orders.activity[1].task_timeout (in the [[swf.orders.activity]] entry \
             with type = \"slow\" and version = \"1\")"
        ),
        "{cause}"
    );
    let failed = format!(
        "{{activity=\"{NAME}\",tenant=\"-\",outcome=\"failed\",error=\"WasmActivity.Timeout\"}} 1"
    );
    let before = scrape_until(&url, "the timed-out task in the metrics", |m| {
        m.contains(&failed)
    })
    .await;
    let v1 = component_versions(&before, NAME);
    assert_eq!(v1.len(), 1, "one component version for {NAME}:\n{before}");

    // 2. A new build of the component: the gauge moves to the new version
    //    under the same name, and new tasks run it.
    replace_by_rename(&slow, &guests().scenario_v2);
    let after = scrape_until(&url, "the reloaded version in the gauge", |m| {
        let v = component_versions(m, NAME);
        v.len() == 1 && v != v1
    })
    .await;
    assert!(
        component_versions(&after, NAME) != v1,
        "the old version's series is gone:\n{after}"
    );
    let w = swf
        .start(
            &activity_type("slow", "1"),
            &list,
            &json!({"action": "version"}).to_string(),
        )
        .await;
    let closed = swf.wait_activity_closed(&w, DONE).await;
    let result = closed
        .activity_task_completed_event_attributes()
        .unwrap_or_else(|| panic!("{closed:?}"))
        .result()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(result).unwrap()["version"],
        2
    );

    // 3. Started, finished, in flight, duration and the gauge: one name.
    let metrics = scrape_until(&url, "the second task in the metrics", |m| {
        m.contains(&format!(
            "{{activity=\"{NAME}\",tenant=\"-\",outcome=\"succeeded\",error=\"\"}} 1"
        ))
    })
    .await;
    for expected in [
        format!("wasm_activity_tasks_started_total{{activity=\"{NAME}\",tenant=\"-\"}} 2"),
        format!("wasm_activity_tasks_finished_total{failed}"),
        format!("wasm_activity_tasks_in_flight{{activity=\"{NAME}\",tenant=\"-\"}} 0"),
        format!("wasm_activity_task_seconds_count{{activity=\"{NAME}\",tenant=\"-\"}} 2"),
        format!("wasm_activity_component{{activity=\"{NAME}\",version=\""),
        "wasm_activity_component{activity=\"orders/fast\",version=\"".to_string(),
    ] {
        assert!(
            metrics.contains(&expected),
            "missing {expected}:\n{metrics}"
        );
    }
    assert_eq!(
        activity_labels(&metrics, "slow"),
        [NAME],
        "one name for the type:\n{metrics}"
    );
    assert_eq!(activity_labels(&metrics, "fast"), ["orders/fast"]);
    // Logs name it the same way: loading, every task line, the reload.
    let log = worker.log().replace('"', "");
    let mut named: Vec<&str> = log
        .split("activity=")
        .skip(1)
        .filter_map(|rest| rest.split([' ', '}', ',']).next())
        .filter(|name| name.contains("slow"))
        .collect();
    assert!(
        log.contains(&format!(
            "component reloaded; new tasks run the new version activity={NAME}"
        )),
        "{log}"
    );
    named.sort();
    named.dedup();
    assert_eq!(named, [NAME], "{log}");
}
