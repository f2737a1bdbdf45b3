//! The worker against the embedded endpoint with faults no real service lets
//! us inject, and behaviour LocalStack does not implement (Retry, heartbeat
//! timeouts reported as AWS does).

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, fired, guests};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use std::time::{Duration, Instant};

const DONE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
async fn every_result_is_delivered_exactly_once_under_faults() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("faulty").await;
    let sm = sfn.create_state_machine(&activity, 120, Some(20)).await;
    // Results applied but their responses lost, 5xx, resets and throttling
    // on every call the worker makes.
    for rule in [
        json!({"op": "SendTaskSuccess", "fault": "drop_response", "rate": 0.5, "count": 6}),
        json!({"op": "SendTaskSuccess", "fault": "server_error", "rate": 0.3, "count": 4}),
        json!({"op": "SendTaskSuccess", "fault": "reset", "rate": 0.3, "count": 4}),
        json!({"op": "GetActivityTask", "fault": "reset", "rate": 0.2, "count": 4}),
        json!({"op": "GetActivityTask", "fault": "throttle", "rate": 0.2, "count": 4}),
        json!({"op": "SendTaskHeartbeat", "fault": "server_error", "rate": 0.3}),
    ] {
        svc.add_fault(rule).await;
    }
    let _worker = Worker::start(
        &activity_toml(
            "faulty",
            &activity,
            &guests().scenario,
            "max_concurrent = 4\npollers = 2\nheartbeat_interval = \"200ms\"",
        ),
        &svc,
    );
    let mut executions = Vec::new();
    for i in 0..12 {
        executions.push(
            sfn.start(&sm, &json!({"action": "sleep", "ms": 300 + i * 10}))
                .await,
        );
    }
    for e in &executions {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        let succeeded = sfn
            .event_types(e)
            .await
            .iter()
            .filter(|t| *t == "ActivitySucceeded")
            .count();
        assert_eq!(succeeded, 1, "execution {e} recorded {succeeded} successes");
    }
    // Each result applied exactly once on the endpoint's side.
    assert_eq!(svc.state().await["completions"], 12);
    let faults = svc.faults().await;
    assert!(
        fired(&faults, "SendTaskSuccess", "drop_response") > 0,
        "no response was dropped: {faults}"
    );
    assert!(
        fired(&faults, "SendTaskSuccess", "server_error")
            + fired(&faults, "SendTaskSuccess", "reset")
            > 0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_polls_back_off() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("throttled").await;
    svc.add_fault(json!({"op": "GetActivityTask", "fault": "throttle"}))
        .await;
    let _worker = Worker::start(
        &activity_toml("throttled", &activity, &guests().scenario, "pollers = 1"),
        &svc,
    );
    // A measurement window, not a wait for a condition: count the polls the
    // worker makes in 6 s while every poll is throttled. Without backoff an
    // immediately answered poll loop makes thousands; with exponential
    // backoff from 1 s (full jitter, cap 60 s) it makes a handful.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let polls = fired(&svc.faults().await, "GetActivityTask", "throttle");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(polls >= 2, "the worker stopped polling: {polls} polls");
    assert!(
        (polls as f64) / elapsed < 4.0,
        "{polls} throttled polls in {elapsed:.1} s: the worker is not backing off"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_answered_task_timed_out_stops_the_guest_and_nothing_is_reported() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("hb").await;
    let sm = sfn.create_state_machine(&activity, 60, Some(3)).await;
    svc.add_fault(json!({"op": "SendTaskHeartbeat", "fault": "error", "code": "TaskTimedOut"}))
        .await;
    let mut worker = Worker::start(
        &activity_toml(
            "hb",
            &activity,
            &guests().scenario,
            "heartbeat_interval = \"200ms\"",
        ),
        &svc,
    );
    let e = sfn
        .start(&sm, &json!({"action": "wait_cancel", "max_ms": 60000}))
        .await;
    sfn.wait_activity_started(&e, DONE).await;
    let started = Instant::now();
    worker.wait_for_log(
        "task abandoned: the service ended it",
        Duration::from_secs(20),
    );
    let stopped_after = started.elapsed();
    // One heartbeat interval plus an epoch tick, with room for a loaded machine.
    assert!(
        stopped_after < Duration::from_secs(5),
        "guest stopped only after {stopped_after:?}"
    );
    // Nothing was reported, so the service times the task out on its own,
    // naming the heartbeat timeout as AWS does.
    let done = sfn.wait(&e, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{done:?}");
    assert_eq!(
        done.error.as_deref(),
        Some("States.HeartbeatTimeout"),
        "{done:?}"
    );
    assert!(sfn.activity_results(&e).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_in_the_definition_reruns_a_failing_task() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("flaky").await;
    let definition = |max_attempts: u32| {
        json!({
            "StartAt": "Work",
            "States": { "Work": {
                "Type": "Task", "Resource": activity, "TimeoutSeconds": 60, "End": true,
                "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": max_attempts, "BackoffRate": 1.0}]
            }}
        })
    };
    let recovers = sfn.create_state_machine_from(&definition(3)).await;
    let gives_up = sfn.create_state_machine_from(&definition(2)).await;
    let _worker = Worker::start(
        &activity_toml("flaky", &activity, &guests().scenario, ""),
        &svc,
    );

    // Fails until 1.5 s from now: the first attempt fails, a retry succeeds.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    let e = sfn
        .start(
            &recovers,
            &json!({"action": "fail_until", "until_ms": until}),
        )
        .await;
    let done = sfn.wait(&e, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let events = sfn.event_types(&e).await;
    let failures = events.iter().filter(|t| *t == "ActivityFailed").count();
    let scheduled = events.iter().filter(|t| *t == "ActivityScheduled").count();
    assert!(failures >= 1 && scheduled == failures + 1, "{events:?}");

    // Always fails: 1 attempt + 2 retries, then the execution fails.
    let e = sfn
        .start(
            &gives_up,
            &json!({"action": "fail", "error": "Flaky", "cause": "always"}),
        )
        .await;
    let done = sfn.wait(&e, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{done:?}");
    assert_eq!(done.error.as_deref(), Some("Flaky"));
    let scheduled = sfn
        .event_types(&e)
        .await
        .iter()
        .filter(|t| *t == "ActivityScheduled")
        .count();
    assert_eq!(scheduled, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_runs_the_example_inputs_with_nothing_else_running() {
    let root = crate::support::repo_root();
    let _ = guests();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "cache_dir = \"{}\"\n{}",
            crate::support::cache_dir().display(),
            activity_toml(
                "price-order",
                "arn:aws:states:eu-west-1:123456789012:activity:price-order",
                &guests().example,
                ""
            )
        ),
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::binary())
        .args(["dev", "--port", "0", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(root.join("examples/orders/inputs"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "two example inputs are invalid orders:\n{stdout}"
    );
    assert!(stdout.contains("order-ok.json: SUCCEEDED"), "{stdout}");
    assert!(stdout.contains("\"total_cents\": 6010"), "{stdout}");
    assert!(
        stdout.contains(
            "order-empty.json: FAILED\n  error: InvalidOrder\n  cause: order B-2 has no items"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("order-bad-currency.json: FAILED"),
        "{stdout}"
    );
}

#[test]
fn boto3_drives_the_endpoint_through_the_real_protocol() {
    let svc = Service::start(Backend::Embedded);
    protocol_script("boto3_protocol.py", &[&svc.url], "protocol ok");
}

/// Each documented error and limit of the worker operations, on both halves,
/// through boto3 with its own validation off, plus, for GetActivityTask,
/// PollForActivityTask and PollForDecisionTask, polls abandoned by closed
/// sockets, killed clients and client timeouts, the 1,001st waiting poll
/// refused, and a working poll after 1,000 abandoned ones (the endpoint holds
/// polls the AWS 60 s here, so only the disconnect can end them in time).
#[test]
fn boto3_reference_table_and_abandoned_polls() {
    let svc = Service::embedded("60s");
    reference_table(&svc.url, "embedded");
}

/// The same table against LocalStack (moto for SWF); its known differences
/// are listed, with the reason, in the script.
#[test]
fn boto3_reference_table_against_localstack() {
    reference_table(&crate::support::localstack_url(), "localstack");
}

fn reference_table(url: &str, backend: &str) {
    protocol_script("boto3_reference.py", &[url, backend], "reference ok");
}

/// Runs `tests/protocol/SCRIPT ARGS` with boto3; it must succeed and print `ok`.
fn protocol_script(script: &str, args: &[&str], ok: &str) {
    let path = crate::support::repo_root()
        .join("tests/protocol")
        .join(script);
    let out = std::process::Command::new(crate::support::python_with_boto3())
        .arg(&path)
        .args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(ok),
        "{script} {args:?} failed:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn live_page_shows_activities_and_tasks_in_a_real_browser() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("paged").await;
    let name = activity.rsplit(':').next().unwrap().to_string();
    let sm = sfn.create_state_machine(&activity, 120, Some(30)).await;
    let _worker = Worker::start(
        &format!(
            "worker_name = \"page-test-worker\"\n{}",
            activity_toml(
                "paged",
                &activity,
                &guests().scenario,
                "heartbeat_interval = \"500ms\""
            )
        ),
        &svc,
    );
    let done = sfn
        .start(
            &sm,
            &json!({"action": "echo", "value": {"shown": "on-the-page"}}),
        )
        .await;
    assert_eq!(
        sfn.wait(&done, DONE).await.status,
        ExecutionStatus::Succeeded
    );
    let failed = sfn
        .start(
            &sm,
            &json!({"action": "fail", "error": "PageVisibleError", "cause": "visible cause"}),
        )
        .await;
    assert_eq!(
        sfn.wait(&failed, DONE).await.status,
        ExecutionStatus::Failed
    );
    let running = sfn
        .start(&sm, &json!({"action": "sleep", "ms": 30000}))
        .await;
    sfn.wait_activity_started(&running, DONE).await;

    let dom = tokio::task::spawn_blocking({
        let url = format!("{}/", svc.url);
        move || crate::live_page::render(&url, "endpoint-activities-and-tasks")
    })
    .await
    .unwrap();
    assert!(
        dom.contains("data-loaded=\"yes\""),
        "the page's script did not load the state:\n{dom}"
    );
    assert!(
        dom.contains(&format!("data-activity=\"{name}\"")),
        "activity row missing:\n{dom}"
    );
    assert!(dom.contains("data-status=\"succeeded\""), "{dom}");
    assert!(
        dom.contains("on-the-page"),
        "succeeded task's output missing:\n{dom}"
    );
    assert!(dom.contains("data-status=\"failed\""), "{dom}");
    assert!(
        dom.contains("PageVisibleError: visible cause"),
        "failed task's error and cause missing:\n{dom}"
    );
    assert!(dom.contains("data-status=\"running\""), "{dom}");
    assert!(
        dom.contains("page-test-worker"),
        "worker name missing:\n{dom}"
    );
    assert!(dom.contains(" s</td>"), "heartbeat age missing:\n{dom}");
    sfn.client
        .stop_execution()
        .execution_arn(&running)
        .send()
        .await
        .unwrap();
}

/// The AWS CLI commands `dev` prints work as pasted, in a shell with no AWS
/// setup at all (no credentials, region or config files), and the sample
/// input beside a config is what they start an execution with.
#[test]
fn dev_prints_commands_that_work_as_pasted() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "cache_dir = \"{}\"\n{}",
            crate::support::cache_dir().display(),
            activity_toml(
                "pasted",
                "arn:aws:states:us-east-1:000000000000:activity:pasted",
                &guests().scenario,
                ""
            )
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("input.json"),
        r#"{"action": "echo", "value": "from the sample"}"#,
    )
    .unwrap();
    let mut dev = std::process::Command::new(crate::support::binary())
        .args(["dev", "--port", "0", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(dev.stdout.take().unwrap());
    let _dev = KillOnDrop(dev);
    let mut banner = String::new();
    while !banner.contains("Press Ctrl-C") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "dev ended:\n{banner}"
        );
        banner.push_str(&line);
    }
    // A command is a line under "start one:" / "see them:" and its
    // continuation line.
    let command = |after: &str| {
        let lines: Vec<&str> = banner.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.trim() == after)
            .unwrap_or_else(|| panic!("no {after:?} in:\n{banner}"));
        format!("{}\n{}", lines[at + 1], lines[at + 2])
    };
    let aws_dir = crate::support::python_with_boto3()
        .parent()
        .unwrap()
        .to_path_buf();
    let home = tempfile::tempdir().unwrap();
    let paste = |command: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(command)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", aws_dir.display()))
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command}\nfailed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let started: serde_json::Value = serde_json::from_str(&paste(&command("start one:"))).unwrap();
    let execution = started["executionArn"].as_str().unwrap().to_string();
    let listed = crate::support::wait_until(
        std::time::Duration::from_secs(30),
        "the pasted execution to succeed",
        || {
            let listed: serde_json::Value =
                serde_json::from_str(&paste(&command("see them:"))).unwrap();
            listed["executions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["executionArn"] == execution.as_str() && e["status"] == "SUCCEEDED")
                .then_some(listed)
        },
    );
    assert_eq!(
        listed["executions"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}

/// Kills a process when dropped, so a failed assertion does not leave it
/// running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
