//! The live pages in headless Chromium, one screenshot per state: the
//! worker's own page (its journal: versions, guest log lines, reloads,
//! polling health) and the embedded endpoint's (start form, history view,
//! SWF types, and in `dev` the worker's journal). Assertions are on the DOM
//! the page's script rendered; the screenshots (under the target dir's
//! `tmp/live-page/`) are for a human to look at.

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, guests, wait_until};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use std::time::Duration;

const DONE: Duration = Duration::from_secs(90);

/// Renders `url` in headless Chromium, lets its scripts run, saves a
/// screenshot as `name.png`, and returns the DOM. Debian's chromium,
/// installed by scripts/test.sh.
pub(crate) fn render(url: &str, name: &str) -> String {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium not found: run the tests with scripts/test.sh, which installs Debian's chromium package");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-page");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,1400",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG"),
        "no screenshot of {name} at {}",
        shot.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn render_async(url: String, name: &'static str) -> String {
    tokio::task::spawn_blocking(move || render(&url, name))
        .await
        .unwrap()
}

/// Calls an operation of the embedded endpoint over the wire, as the page
/// does (`target` as `AWSStepFunctions.Op` or `SimpleWorkflowService.Op`).
async fn call(url: &str, target: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{url}/"))
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.0")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{target}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_page_shows_empty_finished_failed_running_and_refused_states() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("wpage").await;
    let sm = sfn.create_state_machine(&activity, 120, Some(30)).await;
    let dir = tempfile::tempdir().unwrap();
    let handler = dir.path().join("handler.wasm");
    std::fs::copy(&guests().scenario, &handler).unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "page-secret-value-42").unwrap();
    let mut worker = Worker::start(
        &format!(
            "metrics_addr = \"127.0.0.1:0\"\n{}",
            activity_toml(
                "wpage",
                &activity,
                &handler,
                &format!(
                    "heartbeat_interval = \"500ms\"\nsecrets = {{ TOKEN = {{ file = \"{}\" }} }}",
                    secret.display()
                )
            )
        ),
        &svc,
    );
    let base = worker.metrics_url().replace("/metrics", "");

    // Empty: no tasks, with the source's health and the load event.
    let dom = render_async(format!("{base}/"), "worker-empty").await;
    assert!(dom.contains("data-state=\"loaded\""), "{dom}");
    assert!(
        dom.contains("class=\"empty\">No tasks yet"),
        "empty state missing:\n{dom}"
    );
    assert!(dom.contains("data-source=\"activity.wpage\""), "{dom}");
    assert!(dom.contains("data-kind=\"loaded\""), "{dom}");

    // Finished: its component version, start, duration.
    let ok = sfn.start(&sm, &json!({"action": "echo", "value": 1})).await;
    assert_eq!(sfn.wait(&ok, DONE).await.status, ExecutionStatus::Succeeded);
    let tasks: Value = reqwest::get(format!("{base}/tasks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = tasks["tasks"][0]["version"].as_str().unwrap().to_string();
    assert!(!version.is_empty(), "{tasks}");
    assert_eq!(tasks["tasks"][0]["activity"], "wpage");
    assert!(tasks["tasks"][0]["duration_ms"].as_f64().unwrap() > 0.0);
    let dom = render_async(format!("{base}/"), "worker-finished").await;
    assert!(dom.contains("data-status=\"succeeded\""), "{dom}");
    assert!(dom.contains(&version), "component version missing:\n{dom}");
    assert!(dom.contains(" ms</td>"), "duration missing:\n{dom}");

    // Failed: the error, and the guest's lines rendered as text, its
    // secret redacted.
    let failed = sfn
        .start(
            &sm,
            &json!({"action": "say", "text": "<script>alert(1)</script> page-secret-value-42", "error": "PageError"}),
        )
        .await;
    assert_eq!(
        sfn.wait(&failed, DONE).await.status,
        ExecutionStatus::Failed
    );
    let tasks = reqwest::get(format!("{base}/tasks"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!tasks.contains("page-secret-value-42"), "{tasks}");
    assert!(
        tasks.contains("<script>alert(1)</script> [redacted]"),
        "the line is kept as the guest wrote it, redacted: {tasks}"
    );
    let dom = render_async(format!("{base}/"), "worker-failed").await;
    assert!(!dom.contains("page-secret-value-42"), "{dom}");
    assert!(dom.contains("data-status=\"failed\""), "{dom}");
    assert!(dom.contains("PageError: &lt;script&gt;"), "{dom}");
    assert!(
        dom.contains("[warn log] &lt;script&gt;alert(1)&lt;/script&gt;"),
        "guest log line missing or not text:\n{dom}"
    );
    assert!(
        !dom.contains("<script>alert"),
        "guest text became HTML:\n{dom}"
    );

    // Running.
    let running = sfn
        .start(&sm, &json!({"action": "sleep", "ms": 30000}))
        .await;
    sfn.wait_activity_started(&running, DONE).await;
    let dom = render_async(format!("{base}/"), "worker-running").await;
    assert!(dom.contains("data-status=\"running\""), "{dom}");
    assert!(dom.contains("so far</td>"), "{dom}");

    // A refused reload, with its reason.
    std::fs::write(&handler, b"\0asm\x0d\0\x01\0garbage").unwrap();
    worker.wait_for_log("component reload refused", Duration::from_secs(30));
    let dom = render_async(format!("{base}/"), "worker-refused").await;
    assert!(dom.contains("data-kind=\"refused\""), "{dom}");
    assert!(
        dom.contains("the previous version keeps serving"),
        "refusal reason missing:\n{dom}"
    );
    sfn.client
        .stop_execution()
        .execution_arn(&running)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_page_has_empty_states_history_links_the_start_form_and_swf_types() {
    let svc = Service::start(Backend::Embedded);
    let dom = render_async(format!("{}/", svc.url), "endpoint-empty").await;
    assert!(dom.contains("data-state=\"loaded\""), "{dom}");
    // As rendered (the script holds these texts too).
    for empty in [
        "class=\"empty\">No activities yet",
        "class=\"empty\">No tasks yet",
        "class=\"empty\">No SWF activity types registered.",
        "class=\"empty\">No SWF activity tasks.",
        "<option>No state machines yet",
        "class=\"empty\">No worker in this process",
    ] {
        assert!(dom.contains(empty), "{empty:?} missing:\n{dom}");
    }
    assert!(
        !dom.contains("Loading…</td>"),
        "a table kept its loading state:\n{dom}"
    );

    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("epage").await;
    let sm = sfn.create_state_machine(&activity, 120, Some(30)).await;
    let _worker = Worker::start(
        &activity_toml("epage", &activity, &guests().scenario, ""),
        &svc,
    );
    let done = sfn
        .start(&sm, &json!({"action": "echo", "value": "in-history"}))
        .await;
    assert_eq!(
        sfn.wait(&done, DONE).await.status,
        ExecutionStatus::Succeeded
    );
    let swf = "SimpleWorkflowService.";
    call(
        &svc.url,
        &format!("{swf}RegisterDomain"),
        json!({"name": "page-domain", "workflowExecutionRetentionPeriodInDays": "1"}),
    )
    .await;
    call(
        &svc.url,
        &format!("{swf}RegisterActivityType"),
        json!({"domain": "page-domain", "name": "ship", "version": "2",
               "defaultTaskList": {"name": "orders"}}),
    )
    .await;

    let url = format!("{}/#execution={}", svc.url, urlencode(&done));
    let dom = render_async(url, "endpoint-history").await;
    assert!(
        dom.contains(&format!("href=\"#execution={}\"", urlencode(&done))),
        "the task does not link to its execution:\n{dom}"
    );
    assert!(dom.contains("data-status=\"SUCCEEDED\""), "{dom}");
    assert!(dom.contains("data-type=\"ExecutionSucceeded\""), "{dom}");
    assert!(dom.contains("data-type=\"ActivityScheduled\""), "{dom}");
    assert!(dom.contains("in-history"), "{dom}");
    assert!(
        dom.contains(&format!("value=\"{sm}\"")),
        "the form lists the state machine:\n{dom}"
    );
    assert!(
        dom.contains("data-type=\"orders/ship@2\""),
        "SWF type under the worker's name:\n{dom}"
    );
    assert!(dom.contains("page-domain"), "{dom}");
}

/// `encodeURIComponent` for an ARN (letters, digits, `-_.!~*'()` kept).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_shows_the_workers_journal_on_the_endpoint_page() {
    use std::io::BufRead;
    let _ = guests();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "cache_dir = \"{}\"\n{}",
            crate::support::cache_dir().display(),
            activity_toml(
                "devpage",
                "arn:aws:states:us-east-1:000000000000:activity:devpage",
                &guests().scenario,
                ""
            )
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(crate::support::binary())
        .args(["dev", "--port", "0", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let _child = Kill(child);
    let (mut url, mut sm) = (None, None);
    let mut line = String::new();
    while url.is_none() || sm.is_none() {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "dev ended early");
        if let Some(rest) = line.trim().strip_prefix("Local Step Functions endpoint: ") {
            url = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = line.trim().strip_prefix("state machine: ") {
            sm = Some(rest.to_string());
        }
    }
    let (url, sm) = (url.unwrap(), sm.unwrap());
    let started = call(
        &url,
        "AWSStepFunctions.StartExecution",
        json!({"stateMachineArn": sm, "input": "{\"action\": \"say\", \"text\": \"from-the-guest\", \"error\": \"DevPageError\"}"}),
    )
    .await;
    let arn = started["executionArn"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Handle::current();
    wait_until(DONE, "the execution to fail", || {
        let d = tokio::task::block_in_place(|| {
            rt.block_on(call(
                &url,
                "AWSStepFunctions.DescribeExecution",
                json!({"executionArn": arn}),
            ))
        });
        (d["status"] == "FAILED").then_some(())
    });
    let dom = render_async(format!("{url}/"), "dev-worker").await;
    assert!(dom.contains("id=\"worker-tasks\""), "{dom}");
    assert!(
        !dom.contains("class=\"empty\">No worker in this process"),
        "{dom}"
    );
    assert!(
        dom.contains("[warn log] from-the-guest"),
        "guest line missing:\n{dom}"
    );
    assert!(dom.contains("DevPageError"), "{dom}");
    assert!(dom.contains("data-source=\"activity.devpage\""), "{dom}");
    // The worker's task links to its execution's history.
    let link = format!("href=\"#execution={}\"", urlencode(&arn));
    assert!(
        dom.matches(&link).count() >= 2,
        "the endpoint's and the worker's task rows link to the history:\n{dom}"
    );
}

/// What the test's "user" does on the endpoint page: submits the start form
/// with input that is not JSON, then for a state machine that does not
/// exist, then for the real one, and puts what the page answered each time
/// on `<body>` (`data-invalid`, `data-refused`, `data-started`).
const FORM_DRIVER: &str = r#"<script>
(async () => {
  const pause = () => new Promise(r => setTimeout(r, 50));
  const sel = document.getElementById("machine");
  while (!sel.dataset.count || sel.dataset.count === "0") await pause();
  const form = document.getElementById("start-form"), input = document.getElementById("input"), out = document.getElementById("start-result");
  const submit = async () => { out.textContent = ""; form.requestSubmit(); while (out.textContent === "" || out.textContent === "Starting…") await pause(); return out.textContent; };
  input.value = "{not json"; document.body.dataset.invalid = await submit();
  const missing = document.createElement("option"); missing.value = sel.options[0].value + "-missing"; missing.textContent = "missing";
  sel.appendChild(missing); sel.value = missing.value;
  input.value = '{"action": "echo", "value": "from-the-form"}'; document.body.dataset.refused = await submit();
  sel.selectedIndex = 0; document.body.dataset.started = await submit();
})();
</script>"#;

/// Serves the endpoint's page with [`FORM_DRIVER`] added, and forwards
/// everything else to the endpoint: same origin, so the page's own script
/// runs unchanged against the real API.
async fn driving_proxy(upstream: String) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let upstream = upstream.clone();
            async move {
                let client = reqwest::Client::new();
                let url = format!(
                    "{upstream}{}",
                    uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
                );
                let mut req = client.request(method.clone(), url).body(body);
                for name in ["x-amz-target", "content-type"] {
                    if let Some(v) = headers.get(name) {
                        req = req.header(name, v.as_bytes());
                    }
                }
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                let ct = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .unwrap_or_default();
                let mut text = r.text().await.unwrap();
                if method == Method::GET && uri.path() == "/" {
                    text = text.replace("</body>", &format!("{FORM_DRIVER}</body>"));
                }
                axum::response::Response::builder()
                    .status(status)
                    .header("content-type", ct)
                    .body(axum::body::Body::from(text))
                    .unwrap()
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_start_form_checks_the_input_and_shows_the_services_error() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("fpage").await;
    let sm = sfn.create_state_machine(&activity, 120, Some(30)).await;
    let proxy = driving_proxy(svc.url.clone()).await;
    let dom = render_async(format!("{proxy}/"), "endpoint-form").await;
    assert!(
        dom.contains("data-invalid=\"Input is not valid JSON:"),
        "invalid input was not caught by the page:\n{dom}"
    );
    assert!(
        dom.contains("data-refused=\"StateMachineDoesNotExist: "),
        "the service's error is not shown:\n{dom}"
    );
    assert!(dom.contains("data-started=\"Started: "), "{dom}");
    let executions = call(
        &svc.url,
        "AWSStepFunctions.ListExecutions",
        json!({"stateMachineArn": sm}),
    )
    .await;
    let executions = executions["executions"].as_array().unwrap();
    assert_eq!(
        executions.len(),
        1,
        "only the valid submission started one: {executions:?}"
    );
    let arn = executions[0]["executionArn"].as_str().unwrap();
    let described = call(
        &svc.url,
        "AWSStepFunctions.DescribeExecution",
        json!({"executionArn": arn}),
    )
    .await;
    assert!(
        described["input"]
            .as_str()
            .unwrap()
            .contains("from-the-form"),
        "{described}"
    );
    assert!(
        dom.contains(&format!("href=\"#execution={}\"", urlencode(arn))),
        "the started execution links to its history:\n{dom}"
    );
}
