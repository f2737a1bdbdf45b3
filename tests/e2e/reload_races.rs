//! Reloads that overlap (issue 16): a component renamed over while a config
//! reload runs, a refused config that must keep the watcher, and tenant caps
//! that must follow the config.
//!
//! Each race is made to happen, not hoped for: the config reload adds an
//! activity whose component is a named pipe, so the reload blocks reading it
//! until the test writes the component into the pipe; the test makes its
//! other change and waits until the worker has seen it before letting the
//! reload finish.

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, guests, run_cli, stdout};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const DONE: Duration = Duration::from_secs(90);
const LOG: Duration = Duration::from_secs(30);

fn replace_by_rename(target: &Path, from: &Path) {
    let tmp = target.with_extension("incoming");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Writes `bytes` into the pipe once the worker has opened it for reading
/// (which proves the reload is blocked on it), then closes it.
fn feed_pipe(pipe: &Path, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + LOG;
    // A non-blocking open for writing fails (ENXIO) until there is a reader.
    let probe = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(pipe)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(
                    Instant::now() < deadline,
                    "the worker never opened {}",
                    pipe.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("opening {}: {e}", pipe.display()),
        }
    };
    let mut writer = std::fs::OpenOptions::new().write(true).open(pipe).unwrap();
    drop(probe);
    writer.write_all(bytes).unwrap();
}

/// True once one line of the worker's log after byte `from` contains every
/// needle.
fn logged(worker: &Worker, from: usize, needles: &[&str]) -> bool {
    worker.log()[from..]
        .lines()
        .any(|l| needles.iter().all(|n| l.contains(n)))
}

fn wait_logged(worker: &Worker, needles: &[&str]) {
    wait_logged_after(worker, 0, needles)
}

fn wait_logged_after(worker: &Worker, from: usize, needles: &[&str]) {
    let deadline = Instant::now() + LOG;
    while !logged(worker, from, needles) {
        assert!(
            Instant::now() < deadline,
            "no log line with all of {needles:?} within {LOG:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_count(worker: &Worker, needle: &str, n: usize) {
    crate::support::wait_until(LOG, &format!("{n} x {needle:?}"), || {
        (worker.log_count(needle) >= n).then_some(())
    });
}

async fn versions(sfn: &Sfn, sm: &str, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for _ in 0..n {
        let e = sfn.start(sm, &json!({"action": "version"})).await;
        let done = sfn.wait(&e, DONE).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        out.push(done.output_json()["version"].as_u64().unwrap());
    }
    out
}

/// When the first event of type `ty` happened in `execution`.
async fn event_time(
    sfn: &Sfn,
    execution: &str,
    ty: HistoryEventType,
) -> aws_smithy_types::DateTime {
    *sfn.history(execution)
        .await
        .iter()
        .find(|e| e.r#type() == &ty)
        .unwrap_or_else(|| panic!("no {ty:?} in {execution}"))
        .timestamp()
}

/// A worker serving `swap` from a copy of scenario v1, and a config that
/// also adds `added` served from a named pipe (not yet written).
struct Swap {
    svc: Service,
    sfn: Sfn,
    sm: String,
    handler: std::path::PathBuf,
    pipe: std::path::PathBuf,
    base: String,
    added: String,
    added_sm: String,
    worker: Worker,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn swap_setup() -> Swap {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let a = sfn.create_activity("swap").await;
    let c = sfn.create_activity("added").await;
    let sm = sfn.create_state_machine(&a, 60, None).await;
    let added_sm = sfn.create_state_machine(&c, 60, None).await;
    let (components, pipes) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let handler = components.path().join("handler.wasm");
    std::fs::copy(&guests().scenario, &handler).unwrap();
    let pipe = pipes.path().join("slow.wasm");
    mkfifo(&pipe);
    let base = format!(
        "reload_debounce = \"50ms\"\n{}",
        activity_toml("swap", &a, &handler, "")
    );
    let added = activity_toml("added", &c, &pipe, "");
    let worker = Worker::start(&base, &svc);
    assert_eq!(versions(&sfn, &sm, 2).await, [1, 1]);
    Swap {
        svc,
        sfn,
        sm,
        handler,
        pipe,
        base,
        added,
        added_sm,
        worker,
        _dirs: (components, pipes),
    }
}

impl Swap {
    /// Starts a config reload that blocks on the pipe, renames v2 over the
    /// component while it is blocked, and waits until the worker has seen
    /// the rename; the reload finishes when the pipe is fed.
    fn swap_during_reload(&mut self) {
        self.worker
            .rewrite_config(&self.svc, &format!("{}{}", self.base, self.added));
        self.worker.wait_for_log("reloading config", LOG);
        replace_by_rename(&self.handler, &guests().scenario_v2);
        wait_logged(
            &self.worker,
            &[
                "change seen; queued for reload",
                self.handler.to_str().unwrap(),
            ],
        );
        assert!(
            !self.worker.log().contains("config reloaded")
                && !self.worker.log().contains("config reload refused"),
            "the reload must still be blocked on the pipe"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_swapped_during_a_slow_config_reload_is_applied() {
    let mut s = swap_setup().await;
    s.swap_during_reload();
    feed_pipe(&s.pipe, &std::fs::read(&guests().scenario).unwrap());
    s.worker.wait_for_log("config reloaded", LOG);
    wait_count(&s.worker, "component reloaded", 1);
    assert_eq!(
        versions(&s.sfn, &s.sm, 3).await,
        [2, 2, 2],
        "new tasks must run the build renamed in during the reload"
    );
    // The activity the reload added serves what the pipe held.
    assert_eq!(versions(&s.sfn, &s.added_sm, 1).await, [1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_config_keeps_watching_components_and_the_config() {
    let mut s = swap_setup().await;
    s.swap_during_reload();
    feed_pipe(&s.pipe, b"\0asm\x0d\0\x01\0not a component");
    s.worker.wait_for_log("config reload refused", LOG);
    wait_count(&s.worker, "component reloaded", 1);
    assert_eq!(versions(&s.sfn, &s.sm, 3).await, [2, 2, 2]);
    assert!(!s.worker.log().contains("serving source=activity.added"));

    // Still watching the component...
    replace_by_rename(&s.handler, &guests().scenario);
    wait_count(&s.worker, "component reloaded", 2);
    assert_eq!(versions(&s.sfn, &s.sm, 3).await, [1, 1, 1]);
    // ...and the config.
    let fixed = s.added.replace(
        s.pipe.to_str().unwrap(),
        guests().scenario_v2.to_str().unwrap(),
    );
    s.worker
        .rewrite_config(&s.svc, &format!("{}{fixed}", s.base));
    s.worker.wait_for_log("serving source=activity.added", LOG);
    assert_eq!(versions(&s.sfn, &s.added_sm, 1).await, [2]);
}

/// `[tenant.acme]` with `tenant` keys over `hold` (32 + 16 MiB reserved,
/// one task at a time, heartbeats every second) and `big` (64 + 16 MiB,
/// plus the `big` keys).
fn tenant_config(tenant: &str, big: &str, hold_arn: &str, big_arn: &str) -> String {
    format!(
        "reload_debounce = \"50ms\"\n[tenant.acme]\n{tenant}\n\n{}{}",
        activity_toml(
            "hold",
            hold_arn,
            &guests().scenario,
            "tenant = \"acme\"\nmax_concurrent = 1\nmemory_limit = \"32MiB\"\nheartbeat_interval = \"1s\"",
        ),
        activity_toml(
            "big",
            big_arn,
            &guests().scenario,
            &format!("tenant = \"acme\"\nmemory_limit = \"64MiB\"\n{big}")
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_caps_follow_the_config_raised_and_lowered() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let (hold, big) = (
        sfn.create_activity("hold").await,
        sfn.create_activity("big").await,
    );
    let (hold_sm, big_sm) = (
        sfn.create_state_machine(&hold, 600, None).await,
        sfn.create_state_machine(&big, 60, None).await,
    );
    let config = |tenant: &str, big_extra: &str| tenant_config(tenant, big_extra, &hold, &big);
    // hold reserves 32 + 16 MiB, big 64 + 16 MiB: not both under 100 MiB.
    let mut worker = Worker::start(&config("max_memory = \"100MiB\"", ""), &svc);
    let holding = sfn
        .start(&hold_sm, &json!({"action": "sleep", "ms": 600_000}))
        .await;
    sfn.wait_activity_started(&holding, DONE).await;
    let first = sfn.start(&big_sm, &json!({"action": "version"})).await;
    wait_logged(
        &worker,
        &[
            "waiting for room under tenant acme",
            "activity.big",
            "memory_mib=48",
        ],
    );

    // Raise max_memory together with big's reservation (to 64 + 64 MiB,
    // more than the old cap could ever give): big runs beside hold.
    worker.rewrite_config(
        &svc,
        &config("max_memory = \"200MiB\"", "host_memory_limit = \"64MiB\""),
    );
    worker.wait_for_log("tenant caps changed", LOG);
    let done = sfn.wait(&first, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let still = sfn
        .client
        .describe_execution()
        .execution_arn(&holding)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), &ExecutionStatus::Running);

    // Lower the cap to one task while hold's task (admitted under the old
    // caps) runs: big must wait until it ends.
    worker.rewrite_config(
        &svc,
        &config(
            "max_memory = \"200MiB\"\nmax_concurrent = 1",
            "host_memory_limit = \"64MiB\"",
        ),
    );
    wait_count(&worker, "tenant caps changed", 2);
    // big's poll in flight was admitted under the old caps; once it returns
    // (empty), big's poller waits behind hold's task.
    let lowered = worker.log().len();
    wait_logged_after(
        &worker,
        lowered,
        &[
            "waiting for room under tenant acme",
            "activity.big",
            "running=1",
        ],
    );
    let second = sfn.start(&big_sm, &json!({"action": "version"})).await;
    sfn.client
        .stop_execution()
        .execution_arn(&holding)
        .send()
        .await
        .unwrap();
    let done = sfn.wait(&second, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let stopped = event_time(&sfn, &holding, HistoryEventType::ExecutionAborted).await;
    let started = event_time(&sfn, &second, HistoryEventType::ActivityStarted).await;
    assert!(
        started.as_nanos() >= stopped.as_nanos(),
        "big started ({started}) before hold's task ended ({stopped}) although the tenant allows one task"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reservation_no_cap_can_satisfy_is_refused_by_check_and_by_reload() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let (hold, big) = (
        sfn.create_activity("hold").await,
        sfn.create_activity("big").await,
    );
    let big_sm = sfn.create_state_machine(&big, 60, None).await;
    let good = tenant_config("max_memory = \"100MiB\"", "", &hold, &big);
    // big reserves 64 + 16 MiB: no 64 MiB tenant can ever admit it.
    let bad = tenant_config("max_memory = \"64MiB\"", "", &hold, &big);
    let expected = [
        "`activity.big.memory_limit` = \"64.0 MiB\"",
        "64.0 MiB from activity.big.memory_limit + 16.0 MiB from the default host_memory_limit = 80.0 MiB",
        "tenant acme's max_memory (64.0 MiB)",
        "raise `tenant.acme.max_memory` to at least 80.0 MiB",
    ];

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.toml");
    std::fs::write(&path, format!("region = \"us-east-1\"\n{bad}")).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&out), crate::support::stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("{}: ", path.display())), "{text}");
    for e in expected {
        assert!(text.contains(e), "missing {e:?} in: {text}");
    }

    let mut worker = Worker::start(&good, &svc);
    worker.rewrite_config(&svc, &bad);
    worker.wait_for_log("config reload refused", LOG);
    let refusal = worker
        .log()
        .lines()
        .find(|l| l.contains("config reload refused"))
        .unwrap()
        .to_string();
    for e in expected {
        assert!(refusal.contains(e), "missing {e:?} in: {refusal}");
    }
    assert!(!worker.log().contains("tenant caps changed"));
    // The old config keeps serving.
    assert_eq!(versions(&sfn, &big_sm, 1).await, [1]);

    // Nor can a reload give a task more linear memory than the instance
    // pool was sized for at start (the largest memory_limit then, 64 MiB).
    worker.rewrite_config(
        &svc,
        &tenant_config("max_memory = \"200MiB\"", "", &hold, &big)
            .replace("memory_limit = \"64MiB\"", "memory_limit = \"128MiB\""),
    );
    wait_count(&worker, "config reload refused", 2);
    assert!(
        worker.log().contains(
            "`activity.big.memory_limit` = \"128.0 MiB\": expected at most 64.0 MiB, the largest \
             memory_limit when the worker started"
        ),
        "{}",
        worker.log()
    );
    assert!(!worker.log().contains("tenant caps changed"));
    assert_eq!(versions(&sfn, &big_sm, 1).await, [1]);
}

/// A config renamed over by a named pipe blocks its reload's read for good:
/// the worker still stops on SIGTERM, promptly and cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn a_config_reload_stuck_on_a_pipe_does_not_hold_up_shutdown() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let arn = sfn.create_activity("piped").await;
    let mut worker = Worker::start(
        &format!(
            "reload_debounce = \"50ms\"\n{}",
            activity_toml("piped", &arn, &guests().scenario, "")
        ),
        &svc,
    );
    let pipes = tempfile::tempdir().unwrap();
    let pipe = pipes.path().join("worker.toml");
    mkfifo(&pipe);
    std::fs::rename(&pipe, worker.dir().join("worker.toml")).unwrap();
    worker.wait_for_log("reloading config", LOG);
    let status = worker.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", worker.log());
}

/// `[tenant.a]` (four tasks at a time, no defaults) and `[tenant.b]` (one task at a
/// time, outputs of at most 1 KiB by default) with `hold` in b (one task at
/// a time, so its poller waits on its own slot, not in b's queue) and
/// `moved` in `moved_to`.
fn two_tenants(moved_to: &str, hold_arn: &str, moved_arn: &str) -> String {
    format!(
        "metrics_addr = \"127.0.0.1:0\"\nreload_debounce = \"50ms\"\n\
         [tenant.a]\nmax_concurrent = 4\n\n[tenant.b]\nmax_concurrent = 1\noutput_limit = \"1KiB\"\n\n{}{}",
        activity_toml(
            "hold",
            hold_arn,
            &guests().scenario,
            "tenant = \"b\"\nmax_concurrent = 1\nheartbeat_interval = \"1s\"",
        ),
        activity_toml(
            "moved",
            moved_arn,
            &guests().scenario,
            &format!("tenant = \"{moved_to}\""),
        ),
    )
}

/// The sum of the samples of `metric` for activity `moved` under `tenant`
/// (and `rest` of the labels, e.g. `outcome="failed"`).
fn moved_samples(metrics: &str, metric: &str, tenant: &str, rest: &str) -> u64 {
    let prefix = format!("wasm_activity_{metric}{{activity=\"moved\",tenant=\"{tenant}\"{rest}");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// An activity moved to another tenant by a reload takes that tenant's caps
/// and defaults at once, in the same process: it waits behind the new
/// tenant's one task, its output is held to the new tenant's default
/// output_limit, and its metrics carry the new tenant.
#[tokio::test(flavor = "multi_thread")]
async fn an_activity_moved_to_another_tenant_takes_its_caps_and_defaults_on_reload() {
    // Short long polls: a poll in flight when the reload stops its poller
    // returns soon.
    let svc = Service::embedded("1s");
    let sfn = Sfn::connect(&svc).await;
    let (hold, moved) = (
        sfn.create_activity("hold").await,
        sfn.create_activity("moved").await,
    );
    let (hold_sm, moved_sm) = (
        sfn.create_state_machine(&hold, 600, None).await,
        sfn.create_state_machine(&moved, 60, None).await,
    );
    let mut worker = Worker::start(&two_tenants("a", &hold, &moved), &svc);
    let pid = worker.pid();
    let holding = sfn
        .start(&hold_sm, &json!({"action": "sleep", "ms": 600_000}))
        .await;
    sfn.wait_activity_started(&holding, DONE).await;
    // Under tenant a, beside b's task, with a 2 KiB output.
    let big = json!({"action": "echo", "value": "x".repeat(2048)});
    let before = sfn.start(&moved_sm, &big).await;
    let done = sfn.wait(&before, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let metrics = crate::support::scrape_until(&worker.metrics_url(), "moved under a", |m| {
        moved_samples(m, "tasks_finished_total", "a", ",outcome=\"succeeded\"") == 1
    })
    .await;
    assert_eq!(
        moved_samples(&metrics, "tasks_started_total", "b", ""),
        0,
        "{metrics}"
    );

    let reload = worker.log().len();
    worker.rewrite_config(&svc, &two_tenants("b", &hold, &moved));
    wait_logged_after(&worker, reload, &["config reloaded"]);
    // The new poller waits for room under b, behind hold's task...
    wait_logged_after(
        &worker,
        reload,
        &["waiting for room under tenant b", "activity.moved"],
    );
    // ...and the old one's poll in flight (admitted under a) has returned.
    wait_logged_after(&worker, reload, &["poller stopped", "moved"]);
    let after = sfn.start(&moved_sm, &big).await;
    sfn.client
        .stop_execution()
        .execution_arn(&holding)
        .send()
        .await
        .unwrap();
    let done = sfn.wait(&after, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{done:?}");
    assert_eq!(
        done.error.as_deref(),
        Some("WasmActivity.OutputTooLarge"),
        "tenant b's default output_limit did not apply: {done:?}"
    );
    let stopped = event_time(&sfn, &holding, HistoryEventType::ExecutionAborted).await;
    let started = event_time(&sfn, &after, HistoryEventType::ActivityStarted).await;
    assert!(
        started.as_nanos() >= stopped.as_nanos(),
        "moved started ({started}) before hold's task ended ({stopped}) although tenant b allows one task"
    );
    let metrics = crate::support::scrape_until(&worker.metrics_url(), "moved under b", |m| {
        moved_samples(
            m,
            "tasks_finished_total",
            "b",
            ",outcome=\"failed\",error=\"WasmActivity.OutputTooLarge\"",
        ) == 1
    })
    .await;
    assert_eq!(
        moved_samples(&metrics, "tasks_started_total", "a", ""),
        1,
        "{metrics}"
    );
    assert_eq!(
        moved_samples(&metrics, "tasks_started_total", "b", ""),
        1,
        "{metrics}"
    );
    assert_eq!(worker.pid(), pid);
    assert!(worker.try_wait().is_none(), "the worker restarted");
}
