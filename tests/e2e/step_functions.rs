//! The worker against real Step Functions implementations: every scenario
//! runs against LocalStack (independent of this project) and against the
//! embedded endpoint, and must agree wherever LocalStack implements the
//! behaviour. Activities and state machines are created through the AWS API,
//! executions started, and results read back with DescribeExecution.

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, guests};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use std::time::Duration;

const DONE: Duration = Duration::from_secs(90);

crate::per_backend!(
    [localstack => LocalStack, embedded => Embedded]
    [
        example_succeeds_and_handled_failure_fails_with_name_and_cause,
        trap_fails_the_execution_with_wasm_activity_trap_and_the_loop_goes_on,
        host_heartbeats_keep_a_task_longer_than_heartbeat_seconds_alive,
        task_past_the_host_timeout_is_stopped_and_reported,
        twenty_executions_with_max_concurrency_four_all_complete_never_more_than_four_at_once,
        stopped_execution_stops_the_guest_and_nothing_is_reported,
        sigterm_lets_running_tasks_finish_within_the_grace_period,
        tasks_still_running_after_the_grace_period_fail_with_worker_shutdown,
        missing_activity_is_a_clear_error_and_the_worker_keeps_trying,
        the_sdk_client_polls_heartbeats_and_reports_as_the_lean_one_does,
    ]
);

async fn example_succeeds_and_handled_failure_fails_with_name_and_cause(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("price").await;
    let sm = sfn.create_state_machine(&activity, 60, Some(30)).await;
    let worker = Worker::start(
        &activity_toml(
            "price",
            &activity,
            &guests().example,
            "heartbeat_interval = \"5s\"",
        ),
        &svc,
    );

    let good: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::repo_root().join("examples/orders/input.json"))
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

async fn trap_fails_the_execution_with_wasm_activity_trap_and_the_loop_goes_on(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("trap").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let _worker = Worker::start(
        &activity_toml("trap", &activity, &guests().scenario, ""),
        &svc,
    );

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

async fn host_heartbeats_keep_a_task_longer_than_heartbeat_seconds_alive(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
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
    let _worker = Worker::start(&config, &svc);

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

async fn task_past_the_host_timeout_is_stopped_and_reported(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("slow").await;
    let sm = sfn.create_state_machine(&activity, 120, None).await;
    let _worker = Worker::start(
        &activity_toml(
            "slow",
            &activity,
            &guests().scenario,
            "task_timeout = \"2s\"",
        ),
        &svc,
    );

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

async fn twenty_executions_with_max_concurrency_four_all_complete_never_more_than_four_at_once(
    backend: Backend,
) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("many").await;
    let sm = sfn.create_state_machine(&activity, 300, None).await;
    let _worker = Worker::start(
        &activity_toml(
            "many",
            &activity,
            &guests().scenario,
            "max_concurrent = 4\npollers = 4",
        ),
        &svc,
    );

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

async fn stopped_execution_stops_the_guest_and_nothing_is_reported(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("stop").await;
    let sm = sfn.create_state_machine(&activity, 120, Some(30)).await;
    let mut worker = Worker::start(
        &activity_toml(
            "stop",
            &activity,
            &guests().scenario,
            "heartbeat_interval = \"300ms\"",
        ),
        &svc,
    );
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

async fn sigterm_lets_running_tasks_finish_within_the_grace_period(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("drain").await;
    let sm = sfn.create_state_machine(&activity, 120, None).await;
    let mut worker = Worker::start(
        &format!(
            "shutdown_grace = \"60s\"\n{}",
            activity_toml("drain", &activity, &guests().scenario, "")
        ),
        &svc,
    );
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

async fn tasks_still_running_after_the_grace_period_fail_with_worker_shutdown(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("grace").await;
    let sm = sfn.create_state_machine(&activity, 120, None).await;
    let mut worker = Worker::start(
        &format!(
            "shutdown_grace = \"1s\"\n{}",
            activity_toml("grace", &activity, &guests().scenario, "")
        ),
        &svc,
    );
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

async fn missing_activity_is_a_clear_error_and_the_worker_keeps_trying(backend: Backend) {
    let svc = Service::start(backend);
    let _sfn = Sfn::connect(&svc).await;
    let arn = "arn:aws:states:us-east-1:000000000000:activity:never-created-xyz";
    let mut worker = Worker::start(&activity_toml("ghost", arn, &guests().scenario, ""), &svc);
    worker.wait_for_log("does not exist", Duration::from_secs(30));
    worker.wait_for_log("fix activity.ghost.arn", Duration::from_secs(5));
    assert!(
        worker.try_wait().is_none(),
        "the worker must keep running:\n{}",
        worker.log()
    );
}

/// Every other scenario runs on the default (lean) client; this one runs the
/// hot operations on the SDK's (`aws_client = "sdk"`): a task kept alive
/// only by heartbeats succeeds, and a handled failure arrives with its name.
async fn the_sdk_client_polls_heartbeats_and_reports_as_the_lean_one_does(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("sdk-client").await;
    let sm = sfn.create_state_machine(&activity, 60, Some(2)).await;
    let config = format!(
        "aws_client = \"sdk\"\n{}",
        activity_toml(
            "sdk",
            &activity,
            &guests().scenario,
            "heartbeat_interval = \"500ms\""
        )
    );
    let _worker = Worker::start(&config, &svc);
    let slept = sfn
        .start(&sm, &json!({"action": "sleep", "ms": 4000}))
        .await;
    let failed = sfn
        .start(
            &sm,
            &json!({"action": "fail", "error": "Nope", "cause": "asked to"}),
        )
        .await;
    let slept = sfn.wait(&slept, DONE).await;
    assert_eq!(slept.status, ExecutionStatus::Succeeded, "{slept:?}");
    assert_eq!(slept.output_json()["slept_ms"], 4000);
    let failed = sfn.wait(&failed, DONE).await;
    assert_eq!(failed.status, ExecutionStatus::Failed, "{failed:?}");
    assert_eq!(failed.error.as_deref(), Some("Nope"), "{failed:?}");
}
