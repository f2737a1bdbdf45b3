//! The worker serving SWF activity tasks: results, failures, heartbeats,
//! routing by activity type, and Step Functions and SWF in one process.
//! Against LocalStack's SWF, which is moto's implementation (independent of
//! this project).

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, guests, unique};
use crate::swf_support::{Swf, activity_type};
use aws_sdk_swf::types::{ActivityTaskTimeoutType, EventType};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const DONE: Duration = Duration::from_secs(90);

/// `[swf.NAME]` with one `[[swf.NAME.activity]]` per (type, version, component, extra keys).
fn swf_toml(
    name: &str,
    domain: &str,
    list: &str,
    types: &[(&str, Option<&str>, &Path, &str)],
) -> String {
    let mut toml = format!(
        "[swf.{name}]\ndomain = \"{domain}\"\ntask_list = \"{list}\"\nmax_concurrent = 4\n"
    );
    for (ty, version, component, extra) in types {
        toml.push_str(&format!("\n[[swf.{name}.activity]]\ntype = \"{ty}\"\n"));
        if let Some(v) = version {
            toml.push_str(&format!("version = \"{v}\"\n"));
        }
        toml.push_str(&format!(
            "component = \"{}\"\n{extra}\n",
            component.display()
        ));
    }
    toml
}

crate::per_backend!(
    [localstack_moto => LocalStack, embedded => Embedded]
    [
        tasks_complete_and_fail_with_results_reasons_and_details,
        heartbeat_timeout_when_the_host_does_not_heartbeat,
        default_heartbeat_interval_comes_from_the_registered_type,
        a_type_without_a_component_is_failed_with_a_clear_reason,
        step_functions_and_swf_in_one_process,
    ]
);

async fn tasks_complete_and_fail_with_results_reasons_and_details(backend: Backend) {
    let svc = Service::start(backend);
    let swf = Swf::connect(&svc).await;
    swf.register_activity("price-order", "1", 30).await;
    let list = unique("acts");
    let _worker = Worker::start(
        &swf_toml(
            "orders",
            &swf.domain,
            &list,
            &[(
                "price-order",
                Some("1"),
                &guests().example,
                "heartbeat_interval = \"5s\"",
            )],
        ),
        &svc,
    );
    let _decider = swf.decider();
    let good =
        std::fs::read_to_string(crate::support::repo_root().join("examples/orders/input.json"))
            .unwrap();
    let ok = swf
        .start(&activity_type("price-order", "1"), &list, &good)
        .await;
    let bad =
        json!({"order_id": "S-1", "currency": "usd", "customer": {"tier": "gold"}, "items": []});
    let failed = swf
        .start(&activity_type("price-order", "1"), &list, &bad.to_string())
        .await;

    let e = swf.wait_activity_closed(&ok, DONE).await;
    let result = e
        .activity_task_completed_event_attributes()
        .unwrap_or_else(|| panic!("{e:?}"))
        .result()
        .unwrap();
    let result: serde_json::Value = serde_json::from_str(result).unwrap();
    assert_eq!(result["total_cents"], 6010);

    let e = swf.wait_activity_closed(&failed, DONE).await;
    let attrs = e
        .activity_task_failed_event_attributes()
        .unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(attrs.reason(), Some("InvalidOrder"));
    assert_eq!(attrs.details(), Some("order S-1 has no items"));
}

async fn heartbeat_timeout_when_the_host_does_not_heartbeat(backend: Backend) {
    let svc = Service::start(backend);
    let swf = Swf::connect(&svc).await;
    swf.register_activity("beating", "1", 2).await;
    swf.register_activity("silent", "1", 2).await;
    let list = unique("acts");
    let scenario = &guests().scenario;
    let _worker = Worker::start(
        &swf_toml(
            "hb",
            &swf.domain,
            &list,
            &[
                (
                    "beating",
                    Some("1"),
                    scenario,
                    "heartbeat_interval = \"500ms\"",
                ),
                ("silent", Some("1"), scenario, "heartbeat_interval = \"1h\""),
            ],
        ),
        &svc,
    );
    let _decider = swf.decider();
    let input = json!({"action": "sleep", "ms": 6000}).to_string();
    let beating = swf
        .start(&activity_type("beating", "1"), &list, &input)
        .await;
    let silent = swf
        .start(&activity_type("silent", "1"), &list, &input)
        .await;

    let e = swf.wait_activity_closed(&beating, DONE).await;
    assert!(
        e.activity_task_completed_event_attributes().is_some(),
        "{e:?}"
    );
    let e = swf.wait_activity_closed(&silent, DONE).await;
    let attrs = e
        .activity_task_timed_out_event_attributes()
        .unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(attrs.timeout_type(), &ActivityTaskTimeoutType::Heartbeat);
}

async fn default_heartbeat_interval_comes_from_the_registered_type(backend: Backend) {
    let svc = Service::start(backend);
    let swf = Swf::connect(&svc).await;
    // Registered with a 6 s heartbeat timeout; the config sets no interval,
    // so the worker must derive one (2 s) from DescribeActivityType; the
    // default 10 s would let the 9 s task time out. moto starts the heartbeat
    // clock when the task is scheduled, not when it is polled, so the
    // timeout leaves room for a slow poll before the first heartbeat.
    swf.register_activity("derived", "7", 6).await;
    let list = unique("acts");
    let worker = Worker::start(
        &swf_toml(
            "d",
            &swf.domain,
            &list,
            &[("derived", Some("7"), &guests().scenario, "")],
        ),
        &svc,
    );
    let _decider = swf.decider();
    let w = swf
        .start(
            &activity_type("derived", "7"),
            &list,
            &json!({"action": "sleep", "ms": 9000}).to_string(),
        )
        .await;
    let e = swf.wait_activity_closed(&w, DONE).await;
    assert!(
        e.activity_task_completed_event_attributes().is_some(),
        "{e:?}\n{}",
        worker.log()
    );
}

async fn a_type_without_a_component_is_failed_with_a_clear_reason(backend: Backend) {
    let svc = Service::start(backend);
    let swf = Swf::connect(&svc).await;
    swf.register_activity("known", "1", 30).await;
    swf.register_activity("stranger", "2", 30).await;
    let list = unique("acts");
    let _worker = Worker::start(
        &swf_toml(
            "k",
            &swf.domain,
            &list,
            &[("known", None, &guests().scenario, "")],
        ),
        &svc,
    );
    let _decider = swf.decider();
    let w = swf
        .start(&activity_type("stranger", "2"), &list, "{}")
        .await;
    let e = swf.wait_activity_closed(&w, DONE).await;
    let attrs = e
        .activity_task_failed_event_attributes()
        .unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(attrs.reason(), Some("WasmActivity.UnknownActivityType"));
    let details = attrs.details().unwrap();
    assert!(
        details.contains("stranger (version 2)") && details.contains("known (any version)"),
        "{details}"
    );
}

/// Both backends serve Step Functions and SWF on one endpoint, so one worker
/// process serves both from one config.
async fn step_functions_and_swf_in_one_process(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let swf = Swf::connect(&svc).await;
    let activity = sfn.create_activity("mixed").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    swf.register_activity("mixed", "1", 30).await;
    let list = unique("acts");
    let config = format!(
        "{}{}",
        activity_toml("sfn-side", &activity, &guests().scenario, ""),
        swf_toml(
            "swf-side",
            &swf.domain,
            &list,
            &[("mixed", Some("1"), &guests().scenario, "")]
        )
    );
    let _worker = Worker::start(&config, &svc);
    let _decider = swf.decider();
    let e = sfn
        .start(&sm, &json!({"action": "echo", "value": "from-sfn"}))
        .await;
    let w = swf
        .start(
            &activity_type("mixed", "1"),
            &list,
            &json!({"action": "echo", "value": "from-swf"}).to_string(),
        )
        .await;
    let done = sfn.wait(&e, DONE).await;
    assert_eq!(done.output_json(), json!("from-sfn"));
    let closed = swf.wait_activity_closed(&w, DONE).await;
    let result = closed
        .activity_task_completed_event_attributes()
        .unwrap()
        .result()
        .unwrap();
    assert_eq!(result, "\"from-swf\"");
}

// ---- embedded endpoint only: what moto does not implement ----------------

fn timestamp(e: &aws_sdk_swf::types::HistoryEvent) -> f64 {
    e.event_timestamp().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_worker_picks_up_a_task_at_once_through_the_long_poll() {
    let svc = Service::start(Backend::Embedded);
    let swf = Swf::connect(&svc).await;
    swf.register_activity("quick", "1", 30).await;
    let list = unique("acts");
    let mut worker = Worker::start(
        &swf_toml(
            "q",
            &swf.domain,
            &list,
            &[("quick", Some("1"), &guests().scenario, "")],
        ),
        &svc,
    );
    let _decider = swf.decider();
    // Let the worker settle into its long poll before the task exists.
    worker.wait_for_log("poller started", Duration::from_secs(10));
    let w = swf
        .start(
            &activity_type("quick", "1"),
            &list,
            &json!({"action": "echo", "value": 1}).to_string(),
        )
        .await;
    swf.wait_activity_closed(&w, DONE).await;
    let events = swf.history(&w).await;
    let at = |t: EventType| timestamp(events.iter().find(|e| e.event_type() == &t).unwrap());
    let waited = at(EventType::ActivityTaskStarted) - at(EventType::ActivityTaskScheduled);
    assert!(
        waited < 0.5,
        "the waiting poll took {waited:.3} s to hand out the task"
    );
}

/// Starts a worker whose guest runs `input`, cancels the task once started,
/// and returns the closing event and the seconds from signal to close.
async fn cancel_mid_task(
    input: serde_json::Value,
    cancel_grace: &str,
) -> (aws_sdk_swf::types::HistoryEvent, f64, Worker) {
    let svc = Service::start(Backend::Embedded);
    let swf = Swf::connect(&svc).await;
    swf.register_activity("cancellable", "1", 30).await;
    let list = unique("acts");
    let extra = format!("heartbeat_interval = \"200ms\"\ncancel_grace = \"{cancel_grace}\"");
    let worker = Worker::start(
        &swf_toml(
            "c",
            &swf.domain,
            &list,
            &[("cancellable", Some("1"), &guests().scenario, &extra)],
        ),
        &svc,
    );
    let _decider = swf.decider();
    let w = swf
        .start(
            &activity_type("cancellable", "1"),
            &list,
            &input.to_string(),
        )
        .await;
    swf.wait_activity_started(&w, DONE).await;
    swf.signal_cancel(&w).await;
    let closed = swf.wait_activity_closed(&w, DONE).await;
    let events = swf.history(&w).await;
    let signaled = timestamp(
        events
            .iter()
            .find(|e| e.event_type() == &EventType::WorkflowExecutionSignaled)
            .unwrap(),
    );
    let elapsed = timestamp(&closed) - signaled;
    drop(svc);
    (closed, elapsed, worker)
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_requested_mid_task_guest_cooperates_and_task_is_canceled() {
    let (closed, elapsed, _worker) =
        cancel_mid_task(json!({"action": "wait_cancel", "max_ms": 60000}), "30s").await;
    let attrs = closed
        .activity_task_canceled_event_attributes()
        .unwrap_or_else(|| panic!("{closed:?}"));
    assert_eq!(
        attrs.details(),
        Some("Cancelled: the host asked the handler to stop")
    );
    // Decision round trip + one 200 ms heartbeat + the guest's 20 ms check.
    assert!(elapsed < 3.0, "cancellation took {elapsed:.2} s");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_requested_mid_task_guest_ignores_it_is_stopped_after_the_grace_and_canceled() {
    let (closed, elapsed, worker) = cancel_mid_task(json!({"action": "spin"}), "1s").await;
    let attrs = closed
        .activity_task_canceled_event_attributes()
        .unwrap_or_else(|| panic!("{closed:?}"));
    assert!(
        attrs
            .details()
            .unwrap()
            .contains("did not return within its cancel grace"),
        "{attrs:?}"
    );
    // Stopped one grace period after the cancel reached it, not later.
    assert!(
        (1.0..4.0).contains(&elapsed),
        "the ignoring guest was stopped after {elapsed:.2} s"
    );
    assert!(worker.log().contains("task canceled"), "{}", worker.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_resource_mid_task_stops_the_guest_and_nothing_is_reported() {
    let svc = Service::start(Backend::Embedded);
    let swf = Swf::connect(&svc).await;
    // Heartbeats keep it alive, but start-to-close ends it after 2 s; the
    // next heartbeat then gets UnknownResourceFault.
    swf.register_activity_with("bounded", "1", 30, 2).await;
    let list = unique("acts");
    let mut worker = Worker::start(
        &swf_toml(
            "u",
            &swf.domain,
            &list,
            &[(
                "bounded",
                Some("1"),
                &guests().scenario,
                "heartbeat_interval = \"200ms\"",
            )],
        ),
        &svc,
    );
    let _decider = swf.decider();
    let w = swf
        .start(
            &activity_type("bounded", "1"),
            &list,
            &json!({"action": "sleep", "ms": 30000}).to_string(),
        )
        .await;
    let closed = swf.wait_activity_closed(&w, DONE).await;
    let attrs = closed
        .activity_task_timed_out_event_attributes()
        .unwrap_or_else(|| panic!("{closed:?}"));
    assert_eq!(attrs.timeout_type(), &ActivityTaskTimeoutType::StartToClose);
    // The guest's progress reports travelled as heartbeat details.
    let details = attrs.details().unwrap_or_default();
    assert!(
        details.ends_with(" ms to go"),
        "last heartbeat details: {details:?}"
    );
    let timed_out_at = std::time::Instant::now();
    worker.wait_for_log(
        "task abandoned: the service ended it",
        Duration::from_secs(10),
    );
    assert!(timed_out_at.elapsed() < Duration::from_secs(5));
    let events = swf.history(&w).await;
    assert!(
        !events
            .iter()
            .any(|e| e.event_type() == &EventType::ActivityTaskCompleted)
    );
}
