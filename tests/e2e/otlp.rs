//! Traces over OTLP/HTTP on the real binary: a receiver here decodes the
//! official protobuf schema (opentelemetry-proto) and checks each task's
//! trace; a collector that is down or stalls must not touch the tasks.

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, cache_dir, guests, wait_until};
use aws_sdk_sfn::types::ExecutionStatus;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DONE: Duration = Duration::from_secs(60);

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace: String,
    id: String,
    parent: String,
    attrs: BTreeMap<String, String>,
    events: Vec<String>,
    /// The status code (2: error).
    status: i32,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver on 127.0.0.1: `POST /v1/traces` and
/// `POST /v1/metrics` with protobuf.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
    services: Arc<Mutex<Vec<String>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let services: Arc<Mutex<Vec<String>>> = Arc::default();
        let (into, names) = (spans.clone(), services.clone());
        let metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>> = Arc::default();
        let pushed = metrics.clone();
        let app = axum::Router::new().route(
            "/v1/metrics",
            axum::routing::post(move |body: axum::body::Bytes| {
                let pushed = pushed.clone();
                async move {
                    let request = ExportMetricsServiceRequest::decode(body).expect("OTLP protobuf");
                    pushed.lock().unwrap().push(request);
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportMetricsServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let app = app.route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (into, names) = (into.clone(), names.clone());
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    for rs in request.resource_spans {
                        for a in rs.resource.iter().flat_map(|r| &r.attributes) {
                            if a.key == "service.name" {
                                names.lock().unwrap().push(value(a.value.as_ref()));
                            }
                        }
                        for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                            into.lock().unwrap().push(Span {
                                name: s.name.clone(),
                                trace: hex(&s.trace_id),
                                id: hex(&s.span_id),
                                parent: hex(&s.parent_span_id),
                                attrs: s
                                    .attributes
                                    .iter()
                                    .map(|a| (a.key.clone(), value(a.value.as_ref())))
                                    .collect(),
                                events: s.events.iter().map(|e| e.name.clone()).collect(),
                                status: s.status.as_ref().map_or(0, |st| st.code),
                            });
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            port,
            spans,
            services,
            metrics,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

fn value(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// A guest's HTTP target on 127.0.0.1 that keeps each request's
/// `traceparent` and `tracestate`.
async fn target() -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let into = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let into = into.clone();
        async move {
            let get = |name: &str| {
                headers
                    .get_all(name)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            into.lock().unwrap().push(format!(
                "traceparent: {}; tracestate: {}",
                get("traceparent"),
                get("tracestate")
            ));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_task_is_a_trace_with_its_steps_and_the_guest_http_request() {
    let receiver = Receiver::start().await;
    let (target_port, traceparents) = target().await;
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("traced").await;
    let sm = sfn.create_state_machine(&activity, 60, Some(30)).await;
    let _worker = Worker::start_with_env(
        &format!(
            "otlp_endpoint = \"http://127.0.0.1:{}\"\n{}",
            receiver.port,
            activity_toml(
                "traced",
                &activity,
                &guests().scenario,
                &format!(
                    "task_timeout = \"3s\"\nheartbeat_interval = \"300ms\"\n\
                     secrets = {{ TOKEN = {{ env = \"OTLP_TEST_TOKEN\" }} }}\n\
                     [activity.traced.http]\nallow = [\"http://127.0.0.1:{target_port}\"]"
                ),
            )
        ),
        &svc,
        &cache_dir(),
        &[
            ("OTEL_SERVICE_NAME", "traced-worker"),
            ("OTLP_TEST_TOKEN", "sekritvalue42"),
        ],
    );

    let url = format!("http://127.0.0.1:{target_port}/path?secret=1");
    let inputs = [
        ("echo", json!({"action": "echo", "value": 1})),
        (
            "say",
            json!({"action": "say", "text": "said <b>", "error": "Nope"}),
        ),
        ("panic", json!({"action": "panic", "message": "boom"})),
        ("spin", json!({"action": "spin"})),
        // A trace context of the guest's own: replaced by the host's.
        (
            "http",
            json!({"action": "http_get", "url": url, "headers": [
                ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
                ["tracestate", "guest=chosen"]
            ]}),
        ),
        // A guest that learned a secret and sends it as a host name, to a
        // host its grant does not allow: denied, and never in a span.
        (
            "denied",
            json!({"action": "http_get", "url": "http://sekritvalue42.invalid/x"}),
        ),
    ];
    let mut executions = Vec::new();
    for (name, input) in &inputs {
        executions.push((*name, sfn.start(&sm, input).await));
    }
    let cancel = sfn
        .start(&sm, &json!({"action": "wait_cancel", "max_ms": 60000}))
        .await;
    sfn.wait_activity_started(&cancel, DONE).await;
    sfn.client
        .stop_execution()
        .execution_arn(&cancel)
        .send()
        .await
        .unwrap();
    for (name, e) in &executions {
        let done = sfn.wait(e, DONE).await;
        let want = if matches!(*name, "echo" | "http") {
            ExecutionStatus::Succeeded
        } else {
            ExecutionStatus::Failed
        };
        assert_eq!(done.status, want, "{name}: {done:?}");
    }

    // Seven traces: one root span per task, each its own trace.
    let spans = wait_until(Duration::from_secs(20), "seven finished task spans", || {
        let spans = receiver.spans();
        let roots = spans
            .iter()
            .filter(|s| s.name == "task" && s.attrs.contains_key("outcome"))
            .count();
        (roots == 7).then_some(spans)
    });
    let roots: Vec<&Span> = spans.iter().filter(|s| s.name == "task").collect();
    assert!(roots.iter().all(|r| r.parent.is_empty()), "{roots:#?}");
    let traces: std::collections::HashSet<_> = roots.iter().map(|r| &r.trace).collect();
    assert_eq!(traces.len(), 7, "one trace per task");
    assert!(
        !format!("{spans:?}").contains("sekritvalue42"),
        "a secret in a guest's request is in no span: {spans:#?}"
    );
    let denied = spans
        .iter()
        .find(|s| {
            s.name == "guest http request" && s.attrs.get("outcome").is_some_and(|o| o == "denied")
        })
        .expect("the denied request's span");
    assert!(
        !denied.attrs.contains_key("server.address"),
        "a denied request's host is the guest's text, not shown: {denied:?}"
    );
    assert!(
        receiver
            .services
            .lock()
            .unwrap()
            .iter()
            .all(|s| s == "traced-worker"),
        "OTEL_SERVICE_NAME names the service"
    );
    for r in &roots {
        assert_eq!(r.attrs["activity"], "traced", "{r:?}");
        assert_eq!(r.attrs["tenant"], "-", "{r:?}");
        assert_eq!(r.attrs["version"].len(), 12, "{r:?}");
        assert_eq!(r.attrs["digest"].len(), 64, "{r:?}");
        assert!(!r.attrs["task"].is_empty(), "{r:?}");
        assert!(
            r.events.iter().any(|e| e == "poll hand-out"),
            "the poll that handed the task out: {r:?}"
        );
    }
    let children = |root: &Span| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| s.trace == root.trace && s.parent == root.id)
            .cloned()
            .collect()
    };
    let names =
        |root: &Span| -> Vec<String> { children(root).into_iter().map(|s| s.name).collect() };
    let by_error = |error: &str| -> &Span {
        roots
            .iter()
            .find(|r| r.attrs.get("error").map(String::as_str) == Some(error))
            .unwrap_or_else(|| panic!("no task span with error {error}: {roots:#?}"))
    };

    // Failed, trapped and timed out: the error name, and every step.
    for error in ["Nope", "WasmActivity.Trap", "WasmActivity.Timeout"] {
        let root = by_error(error);
        assert_eq!(root.attrs["outcome"], "failed", "{root:?}");
        assert_eq!(
            root.status, 2,
            "a failed task's span has status error: {root:?}"
        );
        let steps = names(root);
        for step in ["instantiate", "guest run", "report"] {
            assert!(
                steps.iter().any(|s| s == step),
                "{error}: no {step} in {steps:?}"
            );
        }
        let report = children(root)
            .into_iter()
            .find(|s| s.name == "report")
            .unwrap();
        assert_eq!(report.attrs["report"], "failed", "{report:?}");
        assert_eq!(report.attrs["verdict"], "accepted", "{report:?}");
    }
    // The guest's log line is an event of its run, escaped as in the logs.
    let said = by_error("Nope");
    let run = children(said)
        .into_iter()
        .find(|s| s.name == "guest run")
        .unwrap();
    assert!(
        run.events.iter().any(|e| e.contains("said <b>")),
        "the guest's log line: {run:?}"
    );

    // Succeeded: two, one with a guest HTTP request under its guest run.
    let succeeded: Vec<&&Span> = roots
        .iter()
        .filter(|r| r.attrs["outcome"] == "succeeded")
        .collect();
    assert_eq!(succeeded.len(), 2, "{roots:#?}");
    assert!(succeeded.iter().all(|r| r.status != 2), "{succeeded:#?}");
    let request = spans
        .iter()
        .find(|s| s.name == "guest http request" && !s.attrs.contains_key("outcome"))
        .expect("a guest http request span");
    let parent = spans
        .iter()
        .find(|s| s.id == request.parent)
        .expect("its parent");
    assert_eq!(parent.name, "guest run");
    assert!(
        succeeded
            .iter()
            .any(|r| r.id == parent.parent && r.trace == request.trace)
    );
    assert_eq!(request.attrs["http.request.method"], "GET");
    assert_eq!(request.attrs["server.address"], "127.0.0.1");
    assert_eq!(request.attrs["http.response.status_code"], "200");
    assert!(
        !format!("{request:?}").contains("secret"),
        "no query string in the span: {request:?}"
    );
    assert_eq!(
        *traceparents.lock().unwrap(),
        vec![format!(
            "traceparent: 00-{}-{}-01; tracestate: ",
            request.trace, request.id
        )],
        "the target saw the request span's context, not the guest's"
    );

    // Cancelled: the heartbeat learned it, nothing was reported.
    let abandoned: Vec<&&Span> = roots
        .iter()
        .filter(|r| !matches!(r.attrs["outcome"].as_str(), "succeeded" | "failed"))
        .collect();
    assert_eq!(abandoned.len(), 1, "{roots:#?}");
    let beats = children(abandoned[0]);
    assert!(
        beats
            .iter()
            .any(|s| s.name == "heartbeat" && s.attrs.get("verdict").is_some_and(|v| v != "ok")),
        "the heartbeat that learned the task was over: {beats:#?}"
    );
}

/// Runs `count` echo tasks through a worker whose collector is at
/// `endpoint`, and returns how long they took and the worker's metrics.
async fn tasks_with_collector(
    endpoint: &str,
    env: &[(&str, &str)],
    count: usize,
) -> (Duration, String) {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("uncollected").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let worker = Worker::start_with_env(
        &format!(
            "otlp_endpoint = \"{endpoint}\"\nmetrics_addr = \"127.0.0.1:0\"\n{}",
            activity_toml(
                "uncollected",
                &activity,
                &guests().scenario,
                "max_concurrent = 4"
            )
        ),
        &svc,
        &cache_dir(),
        env,
    );
    let started = Instant::now();
    let mut executions = Vec::new();
    for i in 0..count {
        executions.push(sfn.start(&sm, &json!({"action": "echo", "value": i})).await);
    }
    for e in &executions {
        assert_eq!(sfn.wait(e, DONE).await.status, ExecutionStatus::Succeeded);
    }
    let took = started.elapsed();
    let url = worker.metrics_url();
    let metrics = wait_until(Duration::from_secs(20), "dropped spans counted", || {
        let text = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() })
        });
        text.lines()
            .any(|l| {
                l.strip_prefix("wasm_activity_otlp_spans_dropped_total ")
                    .is_some_and(|n| n.trim() != "0")
            })
            .then_some(text)
    });
    // Logged too, within the watcher's second.
    wait_until(Duration::from_secs(10), "the drop logged", || {
        worker
            .log()
            .contains("spans were dropped on the way to the OTLP collector")
            .then_some(())
    });
    (took, metrics)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_is_down_drops_spans_not_tasks() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (took, _) = tasks_with_collector(
        &format!("http://127.0.0.1:{port}"),
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
        4,
    )
    .await;
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_stalls_drops_spans_not_tasks() {
    // Accepts connections and never answers.
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = stall.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stall.accept().await {
            held.push(s);
        }
    });
    // A small queue fills while the export thread waits on the collector.
    let (took, _) = tasks_with_collector(
        &format!("http://127.0.0.1:{port}"),
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
        ],
        8,
    )
    .await;
    // Each export would wait 30 s; the tasks did not.
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_go_over_otlp_with_the_prometheus_names_and_labels() {
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
    let receiver = Receiver::start().await;
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("pushed").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let worker = Worker::start_with_env(
        &format!(
            "otlp_endpoint = \"http://127.0.0.1:{}\"\nmetrics_addr = \"127.0.0.1:0\"\n{}",
            receiver.port,
            activity_toml("pushed", &activity, &guests().scenario, "")
        ),
        &svc,
        &cache_dir(),
        &[("OTEL_METRIC_EXPORT_INTERVAL", "200")],
    );
    let e = sfn.start(&sm, &json!({"action": "echo", "value": 1})).await;
    assert_eq!(sfn.wait(&e, DONE).await.status, ExecutionStatus::Succeeded);

    // A push that counts the task, as the Prometheus endpoint does.
    let finished = |r: &ExportMetricsServiceRequest| {
        r.resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .find(|m| m.name == "wasm_activity_tasks_finished")
            .cloned()
    };
    let request = wait_until(
        Duration::from_secs(20),
        "a push with the finished task",
        || {
            receiver
                .metrics
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|r| finished(r).is_some())
                .cloned()
        },
    );
    let Some(Data::Sum(sum)) = finished(&request).unwrap().data else {
        panic!("tasks_finished is a sum: {request:?}");
    };
    assert!(sum.is_monotonic);
    let point = &sum.data_points[0];
    let labels: BTreeMap<String, String> = point
        .attributes
        .iter()
        .map(|a| (a.key.clone(), value(a.value.as_ref())))
        .collect();
    assert_eq!(
        labels,
        [
            ("activity", "pushed"),
            ("tenant", "-"),
            ("outcome", "succeeded"),
            ("error", "")
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    );
    assert_eq!(point.value, Some(number_data_point::Value::AsDouble(1.0)));

    // The same families as /metrics, name for name.
    let url = worker.metrics_url();
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let prometheus: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("# TYPE ")?
                .split(' ')
                .next()
                .map(str::to_string)
        })
        .collect();
    let otlp: std::collections::BTreeSet<String> = request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| m.name.clone())
        .collect();
    assert_eq!(otlp, prometheus);
}
