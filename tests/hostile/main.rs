//! Guests written to hurt the host and the tenants beside them, rather than
//! to escape: host-side resource bombs, long host-call loops, exit, deep
//! recursion, secrets and forged log lines in every language, and components
//! whose `handle` has the wrong type.
//!
//! A test binary of its own: the load these tests make on purpose (a dozen
//! guests saturating the CPU) must not share the machine with the other
//! end-to-end tests' tight timeouts. `cargo test` runs test binaries one
//! after another. Run with `scripts/test.sh`, like the e2e suite.

#[path = "../e2e/support.rs"]
mod support;

use crate::support::{
    Backend, DevRun, Service, Sfn, Worker, activity_toml, guests, run_cli, run_dev, stderr, stdout,
    wait_until,
};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use std::time::{Duration, Instant};

/// A component exporting the handler interface with `handle: func(input: u32) -> u32`.
const WRONG_SIGNATURE: &str = r#"(component
  (core module $m (func (export "handle") (param i32) (result i32) local.get 0))
  (core instance $i (instantiate $m))
  (func $handle (param "input" u32) (result u32) (canon lift (core func $i "handle")))
  (instance $h (export "handle" (func $handle)))
  (export "wasm-activity:handler/handler@0.1.0" (instance $h))
)"#;

/// What every hostile run must show: no part of the secret, no line a
/// guest forged, no raw control character, and a log bounded by the budget.
fn assert_nothing_leaked(who: &str, stdout: &str, log: &str) {
    for (what, text) in [("stdout", stdout), ("log", log)] {
        for part in [SECRET, &SECRET[..6], &SECRET[SECRET.len() - 6..]] {
            assert!(
                !text.contains(part),
                "{who}: {part:?} of the secret reached the {what}"
            );
        }
        assert!(
            !text.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
            "{who}: a guest forged a line in the {what}"
        );
        assert!(
            !text.contains('\u{1b}') && !text.contains('\0'),
            "{who}: raw control characters in the {what}"
        );
    }
    assert!(
        log.lines().count() < 12_000,
        "{who}: {} log lines from a 1 MiB budget",
        log.lines().count()
    );
}

/// The secret granted to the hostile activity.
const SECRET: &str = "s3cr3t-T0KEN-value";

/// Kilobytes of resident memory of a process, and its peak, from /proc.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn host_side_bombs_and_odd_exits_fail_the_task_with_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "cache_dir = \"{}\"\n{}",
            crate::support::cache_dir().display(),
            activity_toml(
                "hostile",
                "arn:aws:states:us-east-1:000000000000:activity:hostile",
                &guests().scenario,
                "task_timeout = \"20s\"\nmemory_limit = \"16MiB\"\nhost_memory_limit = \"8MiB\"\n\
                 secrets = { TOKEN = { env = \"HOSTILE_TEST_TOKEN\" } }"
            )
        ) + "[activity.hostile.http]\nallow = [\"http://127.0.0.1:9\"]\n",
    )
    .unwrap();
    let inputs = dir.path().join("inputs");
    let cases = [
        // 2,000 x 12 KiB of headers: 24 MiB of host memory if unbounded.
        (
            "fields-bomb",
            json!({"action": "fields_bomb", "count": 2000, "kib": 12}),
        ),
        (
            "one-huge-fields",
            json!({"action": "fields_bomb", "count": 1, "kib": 200}),
        ),
        (
            "handle-bomb",
            json!({"action": "handle_bomb", "count": 100000}),
        ),
        (
            "random-16mib",
            json!({"action": "random_loop", "len": 16 << 20, "ms": 100}),
        ),
        ("exit-3", json!({"action": "exit", "code": 3})),
        ("stack-overflow", json!({"action": "recurse"})),
        // A forged log line, terminal escapes and NUL, with the secret.
        (
            "forge",
            json!({"action": "say", "error": "E\u{1b}[2J\r\nX", "text": format!("hi\r\n2026-01-01T00:00:00Z  INFO forged line\u{0}\u{1b}[31m {SECRET}")}),
        ),
        // The secret straddling the service's 32,768-character cause limit.
        (
            "cut-secret",
            json!({"action": "say", "error": "Cut", "text": format!("{}{SECRET}{}", "a".repeat(32_764), "b".repeat(100))}),
        ),
        // The secret in an error name, and in a refused URL's path and query.
        (
            "secret-error-name",
            json!({"action": "say", "error": format!("Leak-{SECRET}"), "text": "x"}),
        ),
        (
            "secret-url",
            json!({"action": "http_get", "url": format!("http://127.0.0.1:1/{SECRET}?token={SECRET}")}),
        ),
        // A million newlines from a 1 MiB log budget.
        (
            "newlines",
            json!({"action": "say", "error": "Flood", "text": "\n".repeat(1_000_000)}),
        ),
        ("still-serving", json!({"action": "echo", "value": "alive"})),
    ];
    let DevRun {
        results,
        stdout,
        log,
    } = run_dev(
        &config,
        &inputs,
        &cases,
        &[],
        &[("HOSTILE_TEST_TOKEN", SECRET)],
    );
    assert_eq!(results.len(), cases.len(), "{stdout}\n{log}");
    assert_nothing_leaked("rust", &stdout, &log);
    let failed = |name: &str, error: &str| {
        let o = &results[&format!("{name}.json")];
        assert_eq!(o.status, "FAILED", "{name}: {o:?}");
        assert_eq!(o.error.as_deref(), Some(error), "{name}: {o:?}");
        o.cause.clone().unwrap_or_default()
    };
    let cause = failed("fields-bomb", "WasmActivity.HostResourceLimit");
    assert!(cause.contains("host memory limit of 8.0 MiB"), "{cause}");
    assert!(
        cause.contains("activity.hostile.host_memory_limit"),
        "{cause}"
    );
    let o = &results["secret-error-name.json"];
    assert_eq!(o.error.as_deref(), Some("Leak-[redacted]"), "{o:?}");
    let cause = failed("secret-url", "HttpError");
    assert!(cause.contains("HttpRequestDenied"), "{cause}");
    assert!(
        log.contains("guest HTTP request denied") && log.contains("[redacted]"),
        "the refused request was not logged with its path redacted"
    );
    let cause = failed("cut-secret", "Cut");
    assert!(cause.chars().count() <= 32_768, "{}", cause.len());
    failed("forge", "E\\u{1b}[2J\\r\\nX");
    let cause = failed("one-huge-fields", "WasmActivity.HostResourceLimit");
    assert!(
        cause.contains("HTTP header fields past 16.0 KiB"),
        "{cause}"
    );
    let cause = failed("handle-bomb", "WasmActivity.HostResourceLimit");
    assert!(
        cause.contains("more than 1024 host resource handles"),
        "{cause}"
    );
    let cause = failed("random-16mib", "WasmActivity.Trap");
    assert!(cause.contains("exceeds limit 65536"), "{cause}");
    let cause = failed("exit-3", "WasmActivity.Trap");
    assert!(
        cause.starts_with("the handler called exit with a failure status"),
        "{cause}"
    );
    let cause = failed("stack-overflow", "WasmActivity.Trap");
    assert!(cause.starts_with("stack overflow"), "{cause}");
    assert_eq!(
        results["still-serving.json"].output,
        Some(json!("alive")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_handle_signature_is_refused_by_check_at_start_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.wasm");
    std::fs::write(&wrong, WRONG_SIGNATURE).unwrap();
    let expected = "wasm-activity:handler/handler@0.1.0#handle has the wrong type";

    let out = run_cli(&["invoke", wrong.to_str().unwrap(), "--input", "{}"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));

    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("typed").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "endpoint = \"{}\"\nregion = \"us-east-1\"\ncache_dir = \"{}\"\n{}",
            svc.url,
            crate::support::cache_dir().display(),
            activity_toml("typed", &activity, &wrong, "")
        ),
    )
    .unwrap();
    let out = run_cli(&["check", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success(), "check passed a wrong signature");
    assert!(stdout(&out).contains(expected), "{}", stdout(&out));
    let out = crate::support::run_cli_env(
        &["run", "--config", config.to_str().unwrap()],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    );
    assert!(!out.status.success(), "run started with a wrong signature");
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));

    // Hot reload: the good version keeps serving.
    let handler = dir.path().join("handler.wasm");
    std::fs::copy(&guests().scenario, &handler).unwrap();
    let worker = Worker::start(
        &format!(
            "reload_debounce = \"50ms\"\n{}",
            activity_toml("typed", &activity, &handler, "")
        ),
        &svc,
    );
    let tmp = dir.path().join("handler.tmp");
    std::fs::write(&tmp, WRONG_SIGNATURE).unwrap();
    std::fs::rename(&tmp, &handler).unwrap();
    wait_until(Duration::from_secs(30), "the reload to be refused", || {
        let log = worker.log();
        (log.contains("component reload refused") && log.contains(expected)).then_some(())
    });
    let e = sfn.start(&sm, &json!({"action": "version"})).await;
    let done = sfn.wait(&e, Duration::from_secs(30)).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    assert_eq!(done.output_json()["version"], 1);
}

/// Hostile guests of every kind, at least two per core of each, beside a
/// quiet tenant: the quiet tenant's heartbeats keep to schedule (a missed one
/// fails its task with States.HeartbeatTimeout), its results are delivered,
/// the worker stays within its memory bound and answers SIGTERM at once.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_guests_cannot_starve_the_control_plane_or_grow_the_host() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let hostile = sfn.create_activity("hostile").await;
    let quiet = sfn.create_activity("quiet").await;
    let hostile_sm = sfn.create_state_machine(&hostile, 120, None).await;
    let quiet_sm = sfn.create_state_machine(&quiet, 120, Some(2)).await;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_kind = 2 * cores;
    let kinds = [
        json!({"action": "random_loop", "len": 1 << 16, "ms": 60000}),
        json!({"action": "log_loop", "kib": 4096, "ms": 60000}),
        json!({"action": "fields_bomb", "count": 100000, "kib": 12}),
    ];
    let hostile_slots = per_kind * kinds.len();
    let config = format!(
        "shutdown_grace = \"1s\"\n[tenant.evil]\nmax_concurrent = {hostile_slots}\n[tenant.good]\nmax_concurrent = 4\n\n{}{}",
        activity_toml(
            "hostile",
            &hostile,
            &guests().scenario,
            &format!(
                "tenant = \"evil\"\nmax_concurrent = {hostile_slots}\npollers = 4\ntask_timeout = \"60s\"\n\
                 memory_limit = \"24MiB\"\nhost_memory_limit = \"16MiB\""
            )
        ),
        activity_toml(
            "quiet",
            &quiet,
            &guests().scenario,
            "tenant = \"good\"\nmax_concurrent = 4\npollers = 2\nheartbeat_interval = \"500ms\""
        )
    );
    let mut worker = Worker::start(&config, &svc);
    let (idle_rss, _) = rss_kib(worker.pid());
    let mut hogs = Vec::new();
    for kind in &kinds {
        for _ in 0..per_kind {
            hogs.push(sfn.start(&hostile_sm, kind).await);
        }
    }
    for h in &hogs {
        sfn.wait_activity_started(h, Duration::from_secs(60)).await;
    }
    // Fields bombs end quickly (HostResourceLimit); keep starting more so
    // that kind runs throughout.
    let refill = {
        let sfn = Sfn::connect(&svc).await;
        let (sm, kind) = (hostile_sm.clone(), kinds[2].clone());
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                sfn.start(&sm, &kind).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                if n >= 60 {
                    break n;
                }
            }
        })
    };

    let long = sfn
        .start(&quiet_sm, &json!({"action": "sleep", "ms": 6000}))
        .await;
    let mut quick = Vec::new();
    for i in 0..6 {
        quick.push(
            sfn.start(&quiet_sm, &json!({"action": "echo", "value": i}))
                .await,
        );
    }
    for q in &quick {
        let done = sfn.wait(q, Duration::from_secs(60)).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    }
    let done = sfn.wait(&long, Duration::from_secs(60)).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Succeeded,
        "the quiet tenant's heartbeats fell behind beside hostile guests: {done:?}"
    );
    let log = worker.log();
    let beats: u32 = log
        .lines()
        .filter(|l| l.contains("task succeeded") && l.contains("activity=quiet"))
        .filter_map(|l| l.split("heartbeats=").nth(1))
        .filter_map(|n| n.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or_else(|| panic!("no heartbeat count for the quiet task: {log}"));
    assert!(beats >= 8, "{beats} heartbeats in 6 s at a 500 ms interval");
    let gap: u64 = log
        .lines()
        .filter(|l| l.contains("task succeeded") && l.contains("activity=quiet"))
        .filter_map(|l| l.split("heartbeat_gap_ms=").nth(1))
        .filter_map(|n| n.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or_else(|| panic!("no heartbeat gap for the quiet task: {log}"));
    assert!(
        gap < 1_500,
        "a quiet task's heartbeats were {gap} ms apart at a 500 ms interval"
    );
    refill.await.unwrap();
    // Fields bombs share the guest threads with the other hostile guests:
    // wait (with a deadline) for one to reach its budget.
    wait_until(
        Duration::from_secs(120),
        "a fields bomb to be stopped with WasmActivity.HostResourceLimit",
        || {
            worker
                .log()
                .contains("WasmActivity.HostResourceLimit")
                .then_some(())
        },
    );

    // The stated bound: every task's linear memory and host memory, plus
    // the idle worker, plus room for allocator slack.
    let (_, peak) = rss_kib(worker.pid());
    let bound = idle_rss + (hostile_slots as u64 + 4) * (24 + 16) * 1024 + 256 * 1024;
    assert!(
        peak < bound,
        "peak RSS {peak} KiB over the bound {bound} KiB (idle {idle_rss} KiB)"
    );

    // SIGTERM is handled at once, though every guest thread is busy.
    let sent = Instant::now();
    worker.send_term();
    worker.wait_for_log("received SIGTERM", Duration::from_secs(3));
    let status = worker.wait_exit(Duration::from_secs(40));
    assert!(
        sent.elapsed() < Duration::from_secs(35),
        "exit took {:?} ({status:?})",
        sent.elapsed()
    );
}

/// The same attacks from Python and JavaScript handlers, whose runtimes
/// print, log and fail in their own ways: no secret, no forged line, no raw
/// control character leaves the host, a log flood stays within its budget,
/// and (Python, which can reach wasi:http directly) header fields are
/// bounded by the host memory budget.
#[test]
fn polyglot_guests_leak_nothing_forge_nothing_and_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    let mut toml = format!(
        "cache_dir = \"{}\"\n",
        crate::support::cache_dir().display()
    );
    for (language, component) in &crate::support::polyglot().scenarios {
        if *language == "c" {
            continue;
        }
        toml.push_str(&activity_toml(
            language,
            &format!("arn:aws:states:us-east-1:000000000000:activity:{language}"),
            component,
            "task_timeout = \"60s\"\nhost_memory_limit = \"8MiB\"\n\
             secrets = { TOKEN = { env = \"HOSTILE_TEST_TOKEN\" } }",
        ));
    }
    std::fs::write(&config, toml).unwrap();
    for language in ["python", "js"] {
        let inputs = dir.path().join(format!("in-{language}"));
        let mut cases = vec![
            (
                "forge",
                json!({"action": "say", "error": "Forge", "text": format!("hi\r\n2026-01-01T00:00:00Z  INFO forged line\u{0}\u{1b}[31m {SECRET}")}),
            ),
            (
                "cut-secret",
                json!({"action": "say", "error": "Cut", "text": format!("{}{SECRET}{}", "a".repeat(32_764), "b".repeat(100))}),
            ),
            (
                "log-flood",
                json!({"action": "log_loop", "kib": 1024, "ms": 1500}),
            ),
            ("still-serving", json!({"action": "echo", "value": 1})),
        ];
        if language == "python" {
            cases.push((
                "fields-bomb",
                json!({"action": "fields_bomb", "count": 2000, "kib": 12}),
            ));
        }
        let DevRun {
            results,
            stdout,
            log,
        } = run_dev(
            &config,
            &inputs,
            &cases,
            &["--activity", language],
            &[("HOSTILE_TEST_TOKEN", SECRET)],
        );
        assert_eq!(results.len(), cases.len(), "{language}: {stdout}\n{log}");
        assert_nothing_leaked(language, &stdout, &log);
        let r = |name: &str| &results[&format!("{name}.json")];
        assert_eq!(
            r("forge").error.as_deref(),
            Some("Forge"),
            "{language}: {:?}",
            r("forge")
        );
        let cut = r("cut-secret");
        assert_eq!(cut.error.as_deref(), Some("Cut"), "{language}: {cut:?}");
        assert_eq!(
            r("log-flood").status,
            "SUCCEEDED",
            "{language}: {:?}",
            r("log-flood")
        );
        assert_eq!(
            r("still-serving").status,
            "SUCCEEDED",
            "{language}: {:?}\n{log}",
            r("still-serving")
        );
        if language == "python" {
            let bomb = r("fields-bomb");
            assert_eq!(
                bomb.error.as_deref(),
                Some("WasmActivity.HostResourceLimit"),
                "{bomb:?}"
            );
        }
    }
}

/// A loopback HTTP server answering every request with `size` bytes.
fn big_body_server(size: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&vec![b'z'; size]);
            });
        }
    });
    port
}

/// Responses the host reads for a guest that has parked itself (sent many
/// requests, then sleeps) count against its host budget: the task is
/// stopped while it sleeps, not when it wakes up.
#[test]
fn responses_read_while_the_guest_sleeps_count_against_its_host_budget() {
    let port = big_body_server(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "cache_dir = \"{}\"\n{}\n[activity.hoard.http]\nallow = [\"http://127.0.0.1:{port}\"]\n\
             max_response = \"1MiB\"\nmax_request = \"1KiB\"\n",
            crate::support::cache_dir().display(),
            activity_toml(
                "hoard",
                "arn:aws:states:us-east-1:000000000000:activity:hoard",
                &guests().scenario,
                "task_timeout = \"60s\"\nhost_memory_limit = \"4MiB\""
            )
        ),
    )
    .unwrap();
    let sleep_ms = 30_000;
    let hoard = json!({"action": "http_hoard", "url": format!("http://127.0.0.1:{port}/big"), "count": 50, "ms": sleep_ms});
    let started = Instant::now();
    let DevRun { results, log, .. } = run_dev(
        &config,
        &dir.path().join("inputs"),
        &[("hoard", hoard)],
        &[],
        &[],
    );
    let took = started.elapsed();
    let r = &results["hoard.json"];
    assert_eq!(
        r.error.as_deref(),
        Some("WasmActivity.HostResourceLimit"),
        "{r:?}\n{log}"
    );
    assert!(
        r.cause
            .as_deref()
            .unwrap_or_default()
            .contains("host memory limit of 4.0 MiB"),
        "{r:?}"
    );
    assert!(
        took < Duration::from_millis(sleep_ms),
        "the task ran until the guest woke up ({took:?}): nothing stopped it while it slept"
    );
}
