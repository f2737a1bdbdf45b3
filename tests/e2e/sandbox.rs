//! Guests written to break out, through the real worker (`dev` against the
//! embedded endpoint): each is contained with its documented failure, the
//! worker keeps serving, and nothing outside the grant is read or written.
//! Plus a noisy tenant beside a quiet one.

use crate::support::{Backend, DevRun, Service, Sfn, Worker, activity_toml, guests, run_dev};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn adversarial_guests_are_contained_and_the_worker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (ro, rw, outside) = (
        dir.path().join("ro"),
        dir.path().join("rw"),
        dir.path().join("outside"),
    );
    for d in [&ro, &rw, &outside] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(ro.join("granted.txt"), "granted content").unwrap();
    std::fs::write(outside.join("private.txt"), "must not be read").unwrap();
    std::os::unix::fs::symlink(&outside, ro.join("escape")).unwrap();

    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "cache_dir = \"{}\"\n{}",
            crate::support::cache_dir().display(),
            activity_toml(
                "sandbox",
                "arn:aws:states:us-east-1:000000000000:activity:sandbox",
                &guests().scenario,
                "task_timeout = \"3s\"\nmemory_limit = \"16MiB\"\nlog_limit = \"4KiB\"\nfuel = 500000000\n\
                 output_limit = \"64KiB\"\nenv = { GRANTED = \"yes\" }\n\
                 secrets = { API_TOKEN = { env = \"SANDBOX_TEST_TOKEN\" } }\n\
                 [[activity.sandbox.preopen]]\nhost = \"ro\"\nguest = \"/ro\"\n\
                 [[activity.sandbox.preopen]]\nhost = \"rw\"\nguest = \"/rw\"\nmode = \"read-write\""
            )
        ),
    )
    .unwrap();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let outside_str = outside.display().to_string();
    let cases = [
        ("busy-loop", json!({"action": "spin"})),
        ("sleeps-forever", json!({"action": "sleep", "ms": 600000})),
        ("memory-bomb", json!({"action": "alloc", "mib": 64})),
        ("stack-overflow", json!({"action": "recurse"})),
        ("huge-output", json!({"action": "huge_output", "kib": 300})),
        (
            "non-json-output",
            json!({"action": "raw", "output": "<html>nope</html>"}),
        ),
        (
            "reserved-error-name",
            json!({"action": "fail", "error": "States.Timeout", "cause": "pretending"}),
        ),
        (
            "panic",
            json!({"action": "panic", "message": "guest panicked on purpose"}),
        ),
        (
            "etc-passwd",
            json!({"action": "read_file", "path": "/etc/passwd"}),
        ),
        (
            "host-path",
            json!({"action": "read_file", "path": format!("{outside_str}/private.txt")}),
        ),
        (
            "dotdot-escape",
            json!({"action": "read_file", "path": "/ro/../outside/private.txt"}),
        ),
        (
            "symlink-escape",
            json!({"action": "read_file", "path": "/ro/escape/private.txt"}),
        ),
        (
            "write-read-only",
            json!({"action": "write_file", "path": "/ro/planted.txt", "content": "x"}),
        ),
        (
            "write-read-write",
            json!({"action": "write_file", "path": "/rw/allowed.txt", "content": "ok"}),
        ),
        (
            "read-granted",
            json!({"action": "read_file", "path": "/ro/granted.txt"}),
        ),
        ("env-dump", json!({"action": "env"})),
        ("log-flood", json!({"action": "print", "lines": 5000})),
        (
            "leak-secret",
            json!({"action": "leak", "text": "tok-ABC-123-secret"}),
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
        &[
            ("SANDBOX_TEST_TOKEN", "tok-ABC-123-secret"),
            ("HOST_ONLY_CANARY", "the guest must not see this"),
        ],
    );
    assert_eq!(results.len(), cases.len(), "{stdout}\n{log}");
    let r = |name: &str| {
        results
            .get(&format!("{name}.json"))
            .unwrap_or_else(|| panic!("no result for {name}"))
    };
    let failed = |name: &str, error: &str| {
        let o = r(name);
        assert_eq!(o.status, "FAILED", "{name}: {o:?}");
        assert_eq!(o.error.as_deref(), Some(error), "{name}: {o:?}");
        o.cause.clone().unwrap_or_default()
    };

    assert!(failed("busy-loop", "WasmActivity.FuelExhausted").contains("fuel budget of 500000000"));
    assert!(failed("sleeps-forever", "WasmActivity.Timeout").contains("time limit of 3s"));
    assert!(failed("memory-bomb", "WasmActivity.MemoryLimit").contains("memory limit is 16.0 MiB"));
    failed("stack-overflow", "WasmActivity.Trap");
    assert!(failed("huge-output", "WasmActivity.OutputTooLarge").contains("at most 65536 bytes"));
    assert!(failed("non-json-output", "WasmActivity.InvalidOutput").contains("<html>nope</html>"));
    assert!(
        failed("reserved-error-name", "WasmActivity.InvalidErrorName").contains("States.Timeout")
    );
    assert!(failed("panic", "WasmActivity.Trap").contains("guest panicked on purpose"));
    for escape in [
        "etc-passwd",
        "host-path",
        "dotdot-escape",
        "symlink-escape",
        "write-read-only",
    ] {
        failed(escape, "IoError");
    }
    assert!(
        !ro.join("planted.txt").exists(),
        "a read-only preopen was written"
    );
    assert_eq!(
        std::fs::read_to_string(rw.join("allowed.txt")).unwrap(),
        "ok"
    );
    assert_eq!(r("read-granted").output, Some(json!("granted content")));

    let env = r("env-dump").output.clone().unwrap();
    let keys: Vec<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["API_TOKEN", "GRANTED"],
        "the guest saw more than its grant: {env}"
    );

    assert_eq!(r("log-flood").status, "SUCCEEDED", "{:?}", r("log-flood"));
    let flood_lines = log
        .lines()
        .filter(|l| l.contains("stdout line") || l.contains("stderr line"))
        .count();
    assert!(
        flood_lines < 500,
        "{flood_lines} flood lines reached the host log"
    );
    assert!(log.contains("guest log budget spent"), "no budget notice");

    let cause = failed("leak-secret", "Leaked");
    assert_eq!(cause, "the secret is [redacted]");
    assert!(
        !log.contains("tok-ABC-123-secret"),
        "the secret reached the host log"
    );
    assert!(log.contains("leaking [redacted]"), "{log}");

    assert_eq!(r("still-serving").output, Some(json!("alive")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_noisy_tenant_cannot_delay_a_quiet_one_or_its_heartbeats() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let noisy = sfn.create_activity("noisy").await;
    let quiet = sfn.create_activity("quiet").await;
    let noisy_sm = sfn.create_state_machine(&noisy, 120, None).await;
    // The quiet tenant's heartbeats must arrive every < 2 s or its tasks fail.
    let quiet_sm = sfn.create_state_machine(&quiet, 120, Some(2)).await;
    let config = format!(
        "[tenant.noisy]\nmax_concurrent = 4\nmax_memory = \"256MiB\"\n[tenant.quiet]\nmax_concurrent = 4\n\n{}{}",
        activity_toml(
            "noisy",
            &noisy,
            &guests().scenario,
            "tenant = \"noisy\"\nmax_concurrent = 4\npollers = 4\ntask_timeout = \"12s\"\nmemory_limit = \"48MiB\""
        ),
        activity_toml(
            "quiet",
            &quiet,
            &guests().scenario,
            "tenant = \"quiet\"\nmax_concurrent = 4\npollers = 2\nheartbeat_interval = \"500ms\""
        )
    );
    let _worker = Worker::start(&config, &svc);
    // Saturate both cores: spinning guests and guests allocating to their limit.
    let mut hogs = Vec::new();
    for i in 0..6 {
        let input = if i % 3 == 2 {
            json!({"action": "alloc", "mib": 64})
        } else {
            json!({"action": "spin"})
        };
        hogs.push(sfn.start(&noisy_sm, &input).await);
    }
    // Wait until the hogs hold the noisy tenant's slots.
    for h in hogs.iter().take(2) {
        sfn.wait_activity_started(h, Duration::from_secs(30)).await;
    }
    let long = sfn
        .start(&quiet_sm, &json!({"action": "sleep", "ms": 5000}))
        .await;
    let mut quick = Vec::new();
    for i in 0..6 {
        quick.push(
            sfn.start(&quiet_sm, &json!({"action": "echo", "value": i}))
                .await,
        );
    }
    for q in &quick {
        let d = sfn
            .client
            .describe_execution()
            .execution_arn(q)
            .send()
            .await
            .unwrap();
        let done = sfn.wait(q, Duration::from_secs(60)).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        let d2 = sfn
            .client
            .describe_execution()
            .execution_arn(q)
            .send()
            .await
            .unwrap();
        let latency = d2.stop_date().unwrap().as_secs_f64() - d.start_date().as_secs_f64();
        assert!(
            latency < 3.0,
            "a quiet task took {latency:.2} s beside the noisy tenant"
        );
    }
    let done = sfn.wait(&long, Duration::from_secs(60)).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Succeeded,
        "quiet heartbeats fell behind: {done:?}"
    );
}

/// The heartbeat is polled in the task itself, between the guest's slices:
/// a guest that never awaits anything must still not hold it up past
/// `HeartbeatSeconds`.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_spinning_on_the_cpu_still_gets_its_own_heartbeats_out() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let busy = sfn.create_activity("busy").await;
    // 4 s of spinning against a 1 s heartbeat timeout: success means no gap
    // over 1 s while the guest held the CPU; the count below means the 300 ms
    // interval held.
    let sm = sfn.create_state_machine(&busy, 60, Some(1)).await;
    let config = activity_toml(
        "busy",
        &busy,
        &guests().scenario,
        "heartbeat_interval = \"300ms\"\ntask_timeout = \"30s\"",
    );
    let mut worker = Worker::start(&config, &svc);
    let exec = sfn
        .start(&sm, &json!({"action": "spin_for", "ms": 4000}))
        .await;
    let done = sfn.wait(&exec, Duration::from_secs(60)).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Succeeded,
        "the spinning task's heartbeats fell behind: {done:?}"
    );
    let output = done.output_json();
    assert_eq!(output["spun_ms"], 4000, "{output}");
    worker.wait_for_log("task succeeded", Duration::from_secs(10));
    let log = worker.log();
    let beats: u32 = log
        .lines()
        .find(|l| l.contains("task succeeded"))
        .and_then(|l| l.split("heartbeats=").nth(1))
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no heartbeat count in the task line: {log}"));
    assert!(
        beats >= 10,
        "{beats} heartbeats in 4 s at a 300 ms interval"
    );
}

/// A loopback HTTP server that counts connections and answers every
/// request with `body`.
struct CountingServer {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl CountingServer {
    fn start(body: Vec<u8>) -> CountingServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body);
                });
            }
        });
        CountingServer { port, connections }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

#[test]
fn outbound_http_reaches_only_allowed_origins() {
    let allowed = CountingServer::start(b"hello from the allowed origin".to_vec());
    let forbidden = CountingServer::start(b"you should never see this".to_vec());
    let big = CountingServer::start(vec![b'x'; 64 * 1024]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "cache_dir = \"{}\"\n{}\n[activity.web.http]\nallow = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\", \"https://*.example.com\"]\nmax_response = \"1KiB\"\ntimeout = \"5s\"\n\n{}",
            crate::support::cache_dir().display(),
            activity_toml("web", "arn:aws:states:us-east-1:000000000000:activity:web", &guests().scenario, ""),
            allowed.port,
            big.port,
            activity_toml("offline", "arn:aws:states:us-east-1:000000000000:activity:offline", &guests().scenario, "")
        ),
    )
    .unwrap();
    let run = |activity: &str, cases: &[(&str, Value)]| {
        let run = run_dev(
            &config,
            &dir.path().join(format!("in-{activity}")),
            cases,
            &["--activity", activity],
            &[],
        );
        (run.results, run.log)
    };
    let (results, log) = run(
        "web",
        &[
            (
                "allowed",
                json!({"action": "http_get", "url": allowed.url("/ok")}),
            ),
            (
                "other-port",
                json!({"action": "http_get", "url": forbidden.url("/steal")}),
            ),
            (
                "other-name",
                json!({"action": "http_get", "url": "http://not-on-the-list.test/"}),
            ),
            (
                "metadata-ip",
                json!({"action": "http_get", "url": "http://169.254.169.254/latest/meta-data/"}),
            ),
            (
                "too-large",
                json!({"action": "http_get", "url": big.url("/big")}),
            ),
        ],
    );
    let r = |name: &str| {
        results
            .get(&format!("{name}.json"))
            .unwrap_or_else(|| panic!("no result for {name}: {results:?}\n{log}"))
    };
    assert_eq!(
        r("allowed").status,
        "SUCCEEDED",
        "{:?}\n{log}",
        r("allowed")
    );
    assert_eq!(
        r("allowed").output,
        Some(json!({"status": 200, "body": "hello from the allowed origin"}))
    );
    for denied in ["other-port", "other-name", "metadata-ip"] {
        let o = r(denied);
        assert_eq!(o.error.as_deref(), Some("HttpError"), "{denied}: {o:?}");
        assert!(
            o.cause.as_deref().unwrap().contains("HttpRequestDenied"),
            "{denied}: {o:?}"
        );
    }
    assert!(
        r("too-large")
            .cause
            .as_deref()
            .unwrap()
            .contains("HttpResponseBodySize"),
        "{:?}",
        r("too-large")
    );
    assert_eq!(
        forbidden.connections.load(Ordering::SeqCst),
        0,
        "a denied origin was contacted"
    );
    assert!(log.contains("guest HTTP request denied"), "{log}");

    // An activity without an http grant reaches nothing, not even listed origins of others.
    let (results, _) = run(
        "offline",
        &[(
            "no-grant",
            json!({"action": "http_get", "url": allowed.url("/ok")}),
        )],
    );
    let o = &results["no-grant.json"];
    assert!(
        o.cause.as_deref().unwrap().contains("HttpRequestDenied"),
        "{o:?}"
    );
    assert_eq!(
        allowed.connections.load(Ordering::SeqCst),
        1,
        "only the one allowed request connected"
    );
}
