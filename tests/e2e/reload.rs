//! Hot reload while tasks run: component swaps (rename, broken file,
//! symlink switch) and config changes that add and remove activities.

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, guests, wait_until};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

const DONE: Duration = Duration::from_secs(90);

fn replace_by_rename(target: &Path, from: &Path) {
    let tmp = target.with_extension("incoming");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

async fn versions_of_new_executions(sfn: &Sfn, sm: &str, n: usize) -> Vec<u64> {
    let mut started = Vec::new();
    for _ in 0..n {
        started.push(sfn.start(sm, &json!({"action": "version"})).await);
    }
    let mut versions = Vec::new();
    for e in started {
        let done = sfn.wait(&e, DONE).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        versions.push(done.output_json()["version"].as_u64().unwrap());
    }
    versions
}

#[tokio::test(flavor = "multi_thread")]
async fn components_swap_under_load_without_failed_or_lost_executions() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Arc::new(Sfn::connect(&svc).await);
    let activity = sfn.create_activity("swapped").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let dir = tempfile::tempdir().unwrap();
    let handler = dir.path().join("handler.wasm");
    std::fs::copy(&guests().scenario, &handler).unwrap();
    let worker = Worker::start(
        &format!(
            "reload_debounce = \"50ms\"\n{}",
            activity_toml(
                "swapped",
                &activity,
                &handler,
                "max_concurrent = 4\npollers = 2"
            )
        ),
        &svc,
    );

    // A steady stream of executions for the whole test.
    let stop = tokio_util::sync::CancellationToken::new();
    let stream: Arc<Mutex<Vec<String>>> = Arc::default();
    let load = tokio::spawn({
        let (sfn, sm, stop, stream) = (sfn.clone(), sm.clone(), stop.clone(), stream.clone());
        async move {
            while !stop.is_cancelled() {
                let e = sfn.start(&sm, &json!({"action": "sleep", "ms": 30})).await;
                stream.lock().await.push(e);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
    });
    let reloaded = |n: usize| {
        wait_until(Duration::from_secs(30), &format!("reload #{n}"), || {
            (worker.log_count("component reloaded") >= n).then_some(())
        })
    };
    assert_eq!(versions_of_new_executions(&sfn, &sm, 3).await, [1, 1, 1]);

    // 1. Write-and-rename.
    replace_by_rename(&handler, &guests().scenario_v2);
    reloaded(1);
    assert_eq!(versions_of_new_executions(&sfn, &sm, 5).await, [2; 5]);

    // 2. A broken file (truncate, then write garbage) is refused.
    std::fs::write(&handler, b"\0asm\x0d\0\x01\0garbage").unwrap();
    wait_until(
        Duration::from_secs(30),
        "the broken file to be refused",
        || {
            worker
                .log()
                .contains("component reload refused")
                .then_some(())
        },
    );
    assert_eq!(versions_of_new_executions(&sfn, &sm, 5).await, [2; 5]);

    // 3. A symlink switch back to version 1.
    let v1 = dir.path().join("v1.wasm");
    std::fs::copy(&guests().scenario, &v1).unwrap();
    let link = dir.path().join("link.tmp");
    std::os::unix::fs::symlink(&v1, &link).unwrap();
    std::fs::rename(&link, &handler).unwrap();
    reloaded(2);
    assert_eq!(versions_of_new_executions(&sfn, &sm, 5).await, [1; 5]);

    // 4. And version 2 again.
    replace_by_rename(&handler, &guests().scenario_v2);
    reloaded(3);
    assert_eq!(versions_of_new_executions(&sfn, &sm, 5).await, [2; 5]);

    stop.cancel();
    load.await.unwrap();
    let stream = stream.lock().await.clone();
    assert!(
        stream.len() >= 10,
        "the load was too light: {} executions",
        stream.len()
    );
    for e in &stream {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(
            done.status,
            ExecutionStatus::Succeeded,
            "lost or failed during a swap: {done:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn config_reload_adds_and_removes_activities_and_refuses_a_bad_config() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let a = sfn.create_activity("first").await;
    let b = sfn.create_activity("second").await;
    let sm_a = sfn.create_state_machine(&a, 60, None).await;
    let sm_b = sfn.create_state_machine(&b, 60, None).await;
    let only_a = activity_toml("first", &a, &guests().scenario, "");
    let only_b = activity_toml("second", &b, &guests().scenario, "");
    let mut worker = Worker::start(&format!("reload_debounce = \"50ms\"\n{only_a}"), &svc);
    let echo = |v: &str| json!({"action": "echo", "value": v});

    // Add the second activity.
    worker.rewrite_config(
        &svc,
        &format!("reload_debounce = \"50ms\"\n{only_a}{only_b}"),
    );
    worker.wait_for_log("serving source=activity.second", Duration::from_secs(30));
    let e = sfn.start(&sm_b, &echo("b")).await;
    assert_eq!(sfn.wait(&e, DONE).await.output_json(), json!("b"));

    // Remove the first: its pollers stop once their polls in flight return.
    worker.rewrite_config(&svc, &format!("reload_debounce = \"50ms\"\n{only_b}"));
    worker.wait_for_log("removed from the config", Duration::from_secs(30));
    let pollers_of_first = || async {
        let state = svc.state().await;
        state["activities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["arn"] == a.as_str())
            .map(|x| x["pollers"].as_u64().unwrap())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pollers_of_first().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the removed activity is still being polled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let orphan = sfn.start(&sm_a, &echo("a")).await;
    let e = sfn.start(&sm_b, &echo("b2")).await;
    assert_eq!(sfn.wait(&e, DONE).await.output_json(), json!("b2"));
    assert!(
        sfn.activity_results(&orphan).await.is_empty(),
        "a task of the removed activity was taken"
    );

    // A broken config is refused whole; the second activity keeps serving.
    worker.rewrite_config(&svc, "this is = not [valid toml");
    worker.wait_for_log("config reload refused", Duration::from_secs(30));
    let e = sfn.start(&sm_b, &echo("b3")).await;
    assert_eq!(sfn.wait(&e, DONE).await.output_json(), json!("b3"));
    sfn.client
        .stop_execution()
        .execution_arn(&orphan)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_with_tasks_running_and_polls_in_flight_leaves_nothing_to_time_out() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("drain").await;
    // Anything the worker leaves unreported would sit until this timeout,
    // far beyond the waits below.
    let sm = sfn.create_state_machine(&activity, 300, None).await;
    let mut worker = Worker::start(
        &format!(
            "shutdown_grace = \"2s\"\n{}",
            activity_toml(
                "drain",
                &activity,
                &guests().scenario,
                "max_concurrent = 4\npollers = 4"
            )
        ),
        &svc,
    );
    let spinning = sfn.start(&sm, &json!({"action": "spin"})).await;
    let short = sfn.start(&sm, &json!({"action": "sleep", "ms": 500})).await;
    sfn.wait_activity_started(&spinning, DONE).await;
    sfn.wait_activity_started(&short, DONE).await;
    // Two pollers now wait in long polls; the signal does not abandon them,
    // so tasks queued right after it are still handed out and run (or, past
    // the grace period, handed back).
    worker.send_term();
    let late_input = json!({"action": "sleep", "ms": 200});
    let mut late = Vec::new();
    for _ in 0..2 {
        late.push(sfn.start(&sm, &late_input).await);
    }
    let status = worker.wait_exit(Duration::from_secs(90));
    assert_eq!(
        status.code(),
        Some(2),
        "the spinning task had to be stopped:\n{}",
        worker.log()
    );
    for e in [&spinning, &short].into_iter().chain(late.iter()) {
        let done = sfn.wait(e, Duration::from_secs(20)).await;
        let ok = done.status == ExecutionStatus::Succeeded
            || (done.status == ExecutionStatus::Failed
                && done.error.as_deref() == Some("WasmActivity.WorkerShutdown"));
        assert!(
            ok,
            "left unfinished or failed otherwise: {done:?}\n{}",
            worker.log()
        );
    }
    assert_eq!(
        sfn.wait(&spinning, DONE).await.error.as_deref(),
        Some("WasmActivity.WorkerShutdown")
    );
    assert_eq!(
        sfn.wait(&short, DONE).await.status,
        ExecutionStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn recorded_tasks_replay_against_a_new_build_and_report_what_changed() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("recorded").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let _worker = Worker::start(
        &activity_toml(
            "recorded",
            &activity,
            &guests().scenario,
            &format!(
                "\n[activity.recorded.record]\ndir = \"{}\"\nmax_bytes = \"4KiB\"\nredact = [\"secret\"]",
                recordings.display()
            ),
        ),
        &svc,
    );
    for input in [
        json!({"action": "version"}),
        json!({"action": "echo", "value": {"secret": "s3cr3t-in-input", "keep": 1}}),
    ] {
        let e = sfn.start(&sm, &input).await;
        assert_eq!(sfn.wait(&e, DONE).await.status, ExecutionStatus::Succeeded);
    }
    let files = wait_until(Duration::from_secs(10), "two recordings", || {
        let files: Vec<_> = std::fs::read_dir(&recordings)
            .ok()?
            .filter_map(|e| e.ok())
            .collect();
        (files.len() == 2).then_some(files)
    });
    for f in &files {
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert!(
            !text.contains("s3cr3t-in-input"),
            "a redacted field was recorded: {text}"
        );
    }

    let replay = |component: &Path| {
        let out = std::process::Command::new(crate::support::binary())
            .args(["replay"])
            .arg(&recordings)
            .arg("--component")
            .arg(component)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = replay(&guests().scenario);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("2 recordings, 0 changed"), "{text}");

    let (code, text) = replay(&guests().scenario_v2);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("2 recordings, 1 changed"), "{text}");
    assert!(
        text.contains(r#"{"output":{"version":1}}"#)
            && text.contains(r#"{"output":{"version":2}}"#),
        "{text}"
    );
}

/// A reload that adds more concurrency than the engine's instance pool was
/// sized for at start: the extra tasks wait for instance slots (heartbeating)
/// instead of failing to instantiate.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_beyond_the_instance_pool_makes_tasks_wait_not_fail() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let a = sfn.create_activity("small").await;
    let b = sfn.create_activity("wide").await;
    let sm_b = sfn.create_state_machine(&b, 120, Some(30)).await;
    // The pool is sized for 1 task (+ 4 spare slots) at start.
    let small = activity_toml("small", &a, &guests().scenario, "max_concurrent = 1");
    let wide = activity_toml(
        "wide",
        &b,
        &guests().scenario,
        "max_concurrent = 8\npollers = 8\nheartbeat_interval = \"500ms\"",
    );
    let mut worker = Worker::start(&format!("reload_debounce = \"50ms\"\n{small}"), &svc);
    worker.rewrite_config(&svc, &format!("reload_debounce = \"50ms\"\n{small}{wide}"));
    worker.wait_for_log("serving source=activity.wide", Duration::from_secs(30));
    let mut executions = Vec::new();
    for _ in 0..8 {
        executions.push(
            sfn.start(&sm_b, &json!({"action": "sleep", "ms": 1500}))
                .await,
        );
    }
    for e in &executions {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(
            done.status,
            aws_sdk_sfn::types::ExecutionStatus::Succeeded,
            "{done:?}\n{}",
            worker.log()
        );
    }
    assert_eq!(worker.log_count("InstantiateFailed"), 0, "{}", worker.log());
}

/// A changed activity is replaced by a new poller while its old tasks run:
/// those tasks still count against `max_concurrent`, so the new poller does
/// not take a task until one of them ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_changed_activity_counts_its_running_tasks_against_max_concurrent() {
    use aws_sdk_sfn::types::HistoryEventType;
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let arn = sfn.create_activity("capped").await;
    let sm = sfn.create_state_machine(&arn, 120, None).await;
    let config = |heartbeat: &str| {
        format!(
            "reload_debounce = \"50ms\"\n{}",
            activity_toml(
                "capped",
                &arn,
                &guests().scenario,
                &format!("max_concurrent = 2\nheartbeat_interval = \"{heartbeat}\"")
            )
        )
    };
    let mut worker = Worker::start(&config("5s"), &svc);
    let slow = json!({"action": "sleep", "ms": 6000});
    let first = sfn.start(&sm, &slow).await;
    let second = sfn.start(&sm, &slow).await;
    sfn.wait_activity_started(&first, Duration::from_secs(30))
        .await;
    sfn.wait_activity_started(&second, Duration::from_secs(30))
        .await;

    // The activity changes (same max_concurrent): a new poller replaces the
    // old one while both tasks still run.
    worker.rewrite_config(&svc, &config("4s"));
    worker.wait_for_log("changed in the config", Duration::from_secs(30));
    let third = sfn.start(&sm, &json!({"action": "echo", "value": 3})).await;
    for e in [&first, &second, &third] {
        assert_eq!(sfn.wait(e, DONE).await.status, ExecutionStatus::Succeeded);
    }
    let at = |events: &[aws_sdk_sfn::types::HistoryEvent], kind: HistoryEventType| {
        events
            .iter()
            .find(|e| e.r#type() == &kind)
            .map(|e| *e.timestamp())
            .unwrap_or_else(|| panic!("no {kind:?} in {events:?}"))
    };
    let a = at(
        &sfn.history(&first).await,
        HistoryEventType::ActivitySucceeded,
    );
    let b = at(
        &sfn.history(&second).await,
        HistoryEventType::ActivitySucceeded,
    );
    let third_started = at(
        &sfn.history(&third).await,
        HistoryEventType::ActivityStarted,
    );
    assert!(
        third_started >= a.min(b),
        "the third task started at {third_started:?}, before either running task ended \
         ({a:?}, {b:?}): 3 tasks at once under max_concurrent = 2"
    );
}
