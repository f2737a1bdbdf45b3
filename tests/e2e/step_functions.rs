//! The worker against a real Step Functions implementation (LocalStack):
//! activities and state machines are created through the AWS API, executions
//! started, and results read back with DescribeExecution.

use crate::support::{Sfn, Worker, activity_toml, guests};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use std::time::Duration;

const DONE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
async fn example_succeeds_and_handled_failure_fails_with_name_and_cause() {
    let sfn = Sfn::connect().await;
    let activity = sfn.create_activity("price").await;
    let sm = sfn.create_state_machine(&activity, 60, Some(30)).await;
    let worker = Worker::start(&activity_toml(
        "price",
        &activity,
        &guests().example,
        "heartbeat_interval = \"5s\"",
    ));

    let good: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::repo_root().join("examples/rust/input.json"))
            .unwrap(),
    )
    .unwrap();
    let bad = json!({"order_id": "B-7", "currency": "XYZ", "customer": {"tier": "gold"}, "items": [{"sku": "a", "quantity": 1, "unit_price": "1.00"}]});
    let ok = sfn.start(&sm, &good).await;
    let failed = sfn.start(&sm, &bad).await;

    let ok = sfn.wait(&ok, DONE).await;
    assert_eq!(ok.status, ExecutionStatus::Succeeded, "{ok:?}");
    let out = ok.output_json();
    assert_eq!(out["order_id"], "A-1001");
    assert_eq!(out["total_cents"], 6010);

    let failed = sfn.wait(&failed, DONE).await;
    assert_eq!(failed.status, ExecutionStatus::Failed, "{failed:?}");
    assert_eq!(failed.error.as_deref(), Some("InvalidOrder"));
    assert!(
        failed
            .cause
            .as_deref()
            .unwrap()
            .contains("currency \"XYZ\" is not supported"),
        "{failed:?}"
    );
    drop(worker);
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_fails_the_execution_with_wasm_activity_trap_and_the_loop_goes_on() {
    let sfn = Sfn::connect().await;
    let activity = sfn.create_activity("trap").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let _worker = Worker::start(&activity_toml("trap", &activity, &guests().scenario, ""));

    let boom = sfn
        .start(
            &sm,
            &json!({"action": "panic", "message": "guest-exploded"}),
        )
        .await;
    let boom = sfn.wait(&boom, DONE).await;
    assert_eq!(boom.status, ExecutionStatus::Failed, "{boom:?}");
    assert_eq!(boom.error.as_deref(), Some("WasmActivity.Trap"));
    let cause = boom.cause.unwrap();
    assert!(
        cause.contains("unreachable") && cause.contains("guest-exploded"),
        "{cause}"
    );

    // The same worker keeps serving after a trap.
    let next = sfn
        .start(&sm, &json!({"action": "echo", "value": {"still": "alive"}}))
        .await;
    let next = sfn.wait(&next, DONE).await;
    assert_eq!(next.status, ExecutionStatus::Succeeded, "{next:?}");
    assert_eq!(next.output_json(), json!({"still": "alive"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn host_heartbeats_keep_a_task_longer_than_heartbeat_seconds_alive() {
    let sfn = Sfn::connect().await;
    // Same guest, same 2 s HeartbeatSeconds; one activity heartbeats every
    // 500 ms, the control never does.
    let beating = sfn.create_activity("beat").await;
    let silent = sfn.create_activity("silent").await;
    let sm_beating = sfn.create_state_machine(&beating, 60, Some(2)).await;
    let sm_silent = sfn.create_state_machine(&silent, 60, Some(2)).await;
    let config = format!(
        "{}{}",
        activity_toml(
            "beating",
            &beating,
            &guests().scenario,
            "heartbeat_interval = \"500ms\""
        ),
        activity_toml(
            "silent",
            &silent,
            &guests().scenario,
            "heartbeat_interval = \"1h\""
        )
    );
    let _worker = Worker::start(&config);

    let input = json!({"action": "sleep", "ms": 6000});
    let a = sfn.start(&sm_beating, &input).await;
    let b = sfn.start(&sm_silent, &input).await;
    let a = sfn.wait(&a, DONE).await;
    let b = sfn.wait(&b, DONE).await;
    assert_eq!(a.status, ExecutionStatus::Succeeded, "{a:?}");
    assert_eq!(a.output_json()["slept_ms"], 6000);
    // LocalStack reports a heartbeat timeout as States.Timeout (AWS says
    // States.HeartbeatTimeout); either proves the heartbeat was what mattered.
    assert_eq!(b.status, ExecutionStatus::Failed, "{b:?}");
    assert!(
        matches!(
            b.error.as_deref(),
            Some("States.Timeout" | "States.HeartbeatTimeout")
        ),
        "{b:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn task_past_the_host_timeout_is_stopped_and_reported() {
    let sfn = Sfn::connect().await;
    let activity = sfn.create_activity("slow").await;
    let sm = sfn.create_state_machine(&activity, 120, None).await;
    let _worker = Worker::start(&activity_toml(
        "slow",
        &activity,
        &guests().scenario,
        "task_timeout = \"2s\"",
    ));

    let spin = sfn.start(&sm, &json!({"action": "spin"})).await;
    let spin = sfn.wait(&spin, DONE).await;
    assert_eq!(spin.status, ExecutionStatus::Failed, "{spin:?}");
    assert_eq!(spin.error.as_deref(), Some("WasmActivity.Timeout"));
    assert!(
        spin.cause
            .as_deref()
            .unwrap()
            .contains("activity.slow.task_timeout"),
        "{spin:?}"
    );

    let next = sfn.start(&sm, &json!({"action": "echo", "value": 1})).await;
    assert_eq!(
        sfn.wait(&next, DONE).await.status,
        ExecutionStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_executions_with_max_concurrency_four_all_complete_never_more_than_four_at_once() {
    let sfn = Sfn::connect().await;
    let activity = sfn.create_activity("many").await;
    let sm = sfn.create_state_machine(&activity, 300, None).await;
    let _worker = Worker::start(&activity_toml(
        "many",
        &activity,
        &guests().scenario,
        "max_concurrent = 4\npollers = 4",
    ));

    let mut executions = Vec::new();
    for _ in 0..20 {
        executions.push(
            sfn.start(&sm, &json!({"action": "sleep", "ms": 1000}))
                .await,
        );
    }
    let mut intervals = Vec::new();
    for e in &executions {
        let done = sfn.wait(e, Duration::from_secs(240)).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        let out = done.output_json();
        intervals.push((
            out["started_ms"].as_u64().unwrap(),
            out["finished_ms"].as_u64().unwrap(),
        ));
    }
    // Most tasks running at any instant, from the guests' own clocks.
    let mut edges: Vec<(u64, i32)> = intervals
        .iter()
        .flat_map(|(s, f)| [(*s, 1), (*f, -1)])
        .collect();
    edges.sort_by_key(|&(t, d)| (t, d)); // a finish sorts before a start at the same ms
    let (mut running, mut peak) = (0, 0);
    for (_, d) in edges {
        running += d;
        peak = peak.max(running);
    }
    assert!(peak <= 4, "{peak} tasks ran at once: {intervals:?}");
    assert!(peak >= 2, "tasks never overlapped: {intervals:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_execution_stops_the_guest_and_nothing_is_reported() {
    let sfn = Sfn::connect().await;
    let activity = sfn.create_activity("stop").await;
    let sm = sfn.create_state_machine(&activity, 120, Some(30)).await;
    let mut worker = Worker::start(&activity_toml(
        "stop",
        &activity,
        &guests().scenario,
        "heartbeat_interval = \"300ms\"",
    ));
    let e = sfn
        .start(&sm, &json!({"action": "wait_cancel", "max_ms": 60000}))
        .await;
    sfn.wait_activity_started(&e, DONE).await;
    sfn.client
        .stop_execution()
        .execution_arn(&e)
        .send()
        .await
        .unwrap();
    // The next heartbeat learns the task is over and the guest is stopped
    // long before its 60 s; nothing is reported for it.
    worker.wait_for_log(
        "task abandoned: the service ended it",
        Duration::from_secs(20),
    );
    // AWS reports ABORTED; LocalStack turns StopExecution of an activity
    // task into ActivityTimedOut and FAILED/States.Timeout.
    let done = sfn.wait(&e, DONE).await;
    assert!(
        done.status == ExecutionStatus::Aborted
            || (done.status == ExecutionStatus::Failed
                && done.error.as_deref() == Some("States.Timeout")),
        "{done:?}"
    );
    let reported = sfn.activity_results(&e).await;
    assert!(
        reported.is_empty(),
        "the worker reported a result for a stopped task: {reported:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_running_tasks_finish_within_the_grace_period() {
    let sfn = Sfn::connect().await;
    let activity = sfn.create_activity("drain").await;
    let sm = sfn.create_state_machine(&activity, 120, None).await;
    let mut worker = Worker::start(&format!(
        "shutdown_grace = \"60s\"\n{}",
        activity_toml("drain", &activity, &guests().scenario, "")
    ));
    let e = sfn
        .start(&sm, &json!({"action": "sleep", "ms": 3000}))
        .await;
    sfn.wait_activity_started(&e, DONE).await;
    let status = worker.terminate(Duration::from_secs(120));
    assert_eq!(
        status.code(),
        Some(0),
        "drain should be clean:\n{}",
        worker.log()
    );
    let done = sfn.wait(&e, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_still_running_after_the_grace_period_fail_with_worker_shutdown() {
    let sfn = Sfn::connect().await;
    let activity = sfn.create_activity("grace").await;
    let sm = sfn.create_state_machine(&activity, 120, None).await;
    let mut worker = Worker::start(&format!(
        "shutdown_grace = \"1s\"\n{}",
        activity_toml("grace", &activity, &guests().scenario, "")
    ));
    let e = sfn.start(&sm, &json!({"action": "spin"})).await;
    sfn.wait_activity_started(&e, DONE).await;
    let status = worker.terminate(Duration::from_secs(120));
    assert_eq!(
        status.code(),
        Some(2),
        "an unclean drain exits 2:\n{}",
        worker.log()
    );
    let done = sfn.wait(&e, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{done:?}");
    assert_eq!(done.error.as_deref(), Some("WasmActivity.WorkerShutdown"));
}
