//! Several hosts polling the same activity: the service spreads the tasks,
//! every execution completes exactly once, and every host takes work.

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, guests};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

crate::per_backend!(
    [localstack => LocalStack, embedded => Embedded]
    [two_hosts_share_one_activity_and_complete_every_execution_once]
);

async fn two_hosts_share_one_activity_and_complete_every_execution_once(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("shared").await;
    let sm = sfn.create_state_machine(&activity, 120, None).await;
    let host = |name: &str| {
        format!(
            "worker_name = \"{name}\"\n{}",
            activity_toml(
                "shared",
                &activity,
                &guests().scenario,
                "max_concurrent = 2\npollers = 2"
            )
        )
    };
    let _a = Worker::start(&host("host-a"), &svc);
    let _b = Worker::start(&host("host-b"), &svc);

    let mut executions = Vec::new();
    for i in 0..16 {
        executions.push(
            sfn.start(&sm, &json!({"action": "sleep", "ms": 300 + i}))
                .await,
        );
    }
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    for e in &executions {
        let done = sfn.wait(e, Duration::from_secs(180)).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        let history = sfn
            .client
            .get_execution_history()
            .execution_arn(e)
            .send()
            .await
            .unwrap();
        let events = history.events();
        let succeeded = events
            .iter()
            .filter(|ev| ev.r#type() == &HistoryEventType::ActivitySucceeded)
            .count();
        assert_eq!(succeeded, 1, "{e} completed {succeeded} times");
        let worker = events
            .iter()
            .find_map(|ev| ev.activity_started_event_details())
            .and_then(|d| d.worker_name())
            .unwrap_or("?")
            .to_string();
        *per_host.entry(worker).or_default() += 1;
    }
    assert_eq!(
        per_host.keys().collect::<Vec<_>>(),
        ["host-a", "host-b"],
        "{per_host:?}"
    );
}
