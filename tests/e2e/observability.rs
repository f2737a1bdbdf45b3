//! Metrics, health and readiness endpoints, and JSON logs, on the real binary.

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, guests};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_health_and_readiness_are_served() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("observed").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let worker = Worker::start(
        &format!(
            "metrics_addr = \"127.0.0.1:0\"\n{}",
            activity_toml("observed", &activity, &guests().scenario, "")
        ),
        &svc,
    );
    let url = worker
        .metrics_url()
        .trim_end_matches("/metrics")
        .to_string();
    let get = |path: &str| {
        let url = format!("{url}{path}");
        async move {
            let r = reqwest::get(&url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await, (200, "ok".to_string()));
    // Ready once the service has accepted a poll (held open 2 s).
    crate::support::wait_until(Duration::from_secs(20), "ready", || {
        let got = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(get("/readyz"))
        });
        (got == (200, "ready: 1 sources serving\n".to_string())).then_some(())
    });

    let ok = sfn.start(&sm, &json!({"action": "echo", "value": 1})).await;
    let bad = sfn
        .start(
            &sm,
            &json!({"action": "fail", "error": "Nope", "cause": "c"}),
        )
        .await;
    sfn.wait(&ok, Duration::from_secs(60)).await;
    sfn.wait(&bad, Duration::from_secs(60)).await;
    // Results are counted when delivered, which precedes the execution's end.
    let metrics =
        crate::support::wait_until(Duration::from_secs(10), "both tasks in the metrics", || {
            let text = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(get("/metrics"))
            })
            .1;
            text.contains(r#"outcome="failed",error="Nope"} 1"#)
                .then_some(text)
        });
    for expected in [
        r#"wasm_activity_tasks_finished_total{activity="observed",tenant="-",outcome="succeeded",error=""} 1"#,
        r#"wasm_activity_tasks_started_total{activity="observed",tenant="-"} 2"#,
        r#"wasm_activity_tasks_in_flight{activity="observed",tenant="-"} 0"#,
        r#"wasm_activity_polls_total{source="observed",result="task"} 2"#,
        r#"wasm_activity_task_seconds_count{activity="observed",tenant="-"} 2"#,
        r#"wasm_activity_component{activity="observed",version=""#,
        r#"wasm_activity_instantiate_seconds_count{activity="observed",version=""#,
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
}

#[test]
fn json_logs_carry_the_task_span() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        activity_toml(
            "price-order",
            "arn:aws:states:us-east-1:000000000000:activity:price-order",
            &guests().example,
            "",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::binary())
        .args(["--log-format", "json", "dev", "--port", "0", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(crate::support::repo_root().join("examples/orders/inputs/order-ok.json"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let done = lines
        .iter()
        .find(|l| l["fields"]["message"] == "task succeeded")
        .expect("a task succeeded line");
    assert_eq!(done["span"]["activity"], "price-order");
    assert_eq!(done["span"]["name"], "task");
    // Durations are numbers a query can compare, not "375.57µs".
    for field in ["ran_ms", "total_ms"] {
        assert!(done["fields"][field].is_number(), "{field}: {done}");
    }
    assert!(
        done["span"]["version"]
            .as_str()
            .is_some_and(|v| v.len() == 12),
        "{done}"
    );
    let guest = lines
        .iter()
        .find(|l| l["target"] == "guest")
        .expect("a guest log line");
    assert_eq!(guest["span"]["task"], done["span"]["task"]);
}

/// `/readyz` and the per-source gauges follow what the service does with
/// the worker's polls: not ready before one is accepted, ready, not ready
/// while polls keep failing, ready again; each kind of failure is logged
/// once, and the recovery once.
#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_services_answers_to_polls() {
    // Empty polls return after 1 s, so each new rule is met at once.
    let svc = Service::embedded("1s");
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("ready").await;
    svc.add_fault(
        json!({"op": "GetActivityTask", "fault": "error", "code": "AccessDeniedException"}),
    )
    .await;
    // Through a proxy the test can take down: the service unreachable.
    let mut proxy = Switch::start(&svc.url).await;
    let worker = Worker::start(
        &format!(
            "metrics_addr = \"127.0.0.1:0\"\n{}",
            activity_toml("ready", &activity, &guests().scenario, "pollers = 2")
        ),
        &svc.through(&proxy.url()),
    );
    let base = worker
        .metrics_url()
        .trim_end_matches("/metrics")
        .to_string();
    let get = |path: &str| {
        let url = format!("{base}{path}");
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let r = reqwest::get(&url).await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        })
    };
    let wait_ready = |want: u16, body_has: &'static str| {
        crate::support::wait_until(Duration::from_secs(30), body_has, || {
            let (status, body) = get("/readyz");
            (status == want && body.contains(body_has)).then_some(body)
        })
    };

    // Never accepted: not ready, and why.
    let body = wait_ready(503, "activity.ready: ");
    assert!(body.contains("AccessDeniedException"), "{body}");
    let metrics = get("/metrics").1;
    assert!(
        metrics.contains(r#"wasm_activity_source_serving{source="activity.ready"} 0"#),
        "{metrics}"
    );
    assert_eq!(get("/healthz").0, 200, "liveness is not readiness");

    // The service accepts polls: ready.
    svc.clear_faults().await;
    wait_ready(200, "ready: 1 sources serving");
    let metrics = get("/metrics").1;
    assert!(
        metrics.contains(r#"wasm_activity_source_serving{source="activity.ready"} 1"#)
            && metrics.contains(r#"wasm_activity_source_poll_failures{source="activity.ready"} 0"#),
        "{metrics}"
    );

    // Polls keep failing: not ready after three in a row.
    svc.add_fault(json!({"op": "GetActivityTask", "fault": "server_error"}))
        .await;
    let body = wait_ready(503, "polls in a row failed");
    assert!(body.contains("InternalFailure"), "{body}");

    // Fixed: ready again, and the log said each thing once.
    svc.clear_faults().await;
    wait_ready(200, "ready");
    let log = worker.log();
    let said = |needle: &str| {
        log.lines()
            .filter(|l| !l.contains("DEBUG") && l.contains(needle))
            .count()
    };
    let polling = |needle: &str| {
        log.lines()
            .filter(|l| !l.contains("DEBUG") && l.contains("poller") && l.contains(needle))
            .count()
    };
    let (refused, failed) = (polling("AccessDeniedException"), said("InternalFailure"));
    assert_eq!(refused, 1, "the refusal is logged once:\n{log}");
    assert_eq!(failed, 1, "the 5xx is logged once:\n{log}");
    assert!(log.contains("works again (after"), "{log}");

    // The service cannot be reached at all: not ready, and why; then
    // ready again once it can.
    proxy.down().await;
    let body = wait_ready(503, "polls in a row failed");
    assert!(body.contains("ConnectError"), "{body}");
    assert_eq!(get("/healthz").0, 200, "liveness is not readiness");
    proxy.up().await;
    wait_ready(200, "ready: 1 sources serving");
}

/// A TCP proxy to one upstream that the test turns off (its port closed,
/// its connections cut: nothing answers) and on again (the same port).
struct Switch {
    addr: std::net::SocketAddr,
    upstream: String,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl Switch {
    async fn start(upstream_url: &str) -> Switch {
        let upstream = upstream_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut switch = Switch {
            addr,
            upstream,
            serving: None,
        };
        switch.serve(listener);
        switch
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream.clone();
        self.serving = Some(tokio::spawn(async move {
            // Dropped with this task: every connection is cut with it.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the port and cuts every connection.
    async fn down(&mut self) {
        if let Some(task) = self.serving.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens on the same port again.
    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}
