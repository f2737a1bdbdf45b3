//! A fault-injecting proxy in front of a real service (LocalStack), for the
//! answers a real service gives only in bad moments: a response lost after
//! the request was applied, throttling, expired credentials, a proxy's own
//! error pages. Requests it does not fault are forwarded unchanged.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::sync::{Arc, Mutex};

/// What a rule does to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer `status` with this AWS error code; nothing is forwarded.
    Error { code: &'static str, status: u16 },
    /// Answer `status` with a body that is not the service's.
    Body { status: u16, body: &'static str },
    /// Forward, then drop the connection instead of answering.
    DropResponse,
    /// Forward a report, then answer `status` with `body` instead of the
    /// service's answer: a gateway that gave up waiting after the service
    /// applied the request. Unlike a dropped connection, the client cannot
    /// read this as a success. Later reports for the same task are answered
    /// `TaskTimedOut`, as AWS answers a repeated report: LocalStack does so
    /// for SendTaskSuccess (`InvalidToken`) but accepts a repeated
    /// SendTaskFailure.
    Applied { status: u16, body: &'static str },
}

#[derive(Debug)]
struct Rule {
    op: &'static str,
    fault: Fault,
    left: u32,
    fired: u32,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// Task tokens of reports an `Applied` fault let through.
    closed: Arc<Mutex<std::collections::HashSet<String>>>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    pub url: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: &str) -> FaultProxy {
        let rules = Arc::new(Mutex::new(Vec::new()));
        let proxy = Proxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            rules: rules.clone(),
            closed: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FaultProxy { url, rules, task }
    }

    /// Applies `fault` to the next `count` requests for `op` (the
    /// X-Amz-Target operation, e.g. `SendTaskSuccess`); the first rule with
    /// firings left wins.
    pub fn add(&self, op: &'static str, fault: Fault, count: u32) {
        self.rules.lock().unwrap().push(Rule {
            op,
            fault,
            left: count,
            fired: 0,
        });
    }

    /// Rules that have not fired as often as asked, for the assertion.
    pub fn unfired(&self) -> Vec<String> {
        self.unfired_for("")
    }

    /// [`FaultProxy::unfired`] for the rules of `op` (all if empty).
    pub fn unfired_for(&self, op: &str) -> Vec<String> {
        self.rules
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.left > 0 && (op.is_empty() || r.op == op))
            .map(|r| format!("{} {:?} fired {}", r.op, r.fault, r.fired))
            .collect()
    }

    /// How often rules that forward and then lose the answer
    /// (`DropResponse`, `Applied`) fired.
    pub fn dropped(&self) -> u32 {
        self.rules
            .lock()
            .unwrap()
            .iter()
            .filter(|r| matches!(r.fault, Fault::DropResponse | Fault::Applied { .. }))
            .map(|r| r.fired)
            .sum()
    }
}

fn pick(rules: &Mutex<Vec<Rule>>, op: &str) -> Option<Fault> {
    let mut rules = rules.lock().unwrap();
    let rule = rules.iter_mut().find(|r| r.op == op && r.left > 0)?;
    rule.left -= 1;
    rule.fired += 1;
    Some(rule.fault.clone())
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let op = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(body, 16 << 20).await.unwrap();
    let token = matches!(op.as_str(), "SendTaskSuccess" | "SendTaskFailure")
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|r| r["taskToken"].as_str().map(str::to_string));
    if token
        .as_ref()
        .is_some_and(|t| proxy.closed.lock().unwrap().contains(t))
    {
        let body = serde_json::json!({
            "__type": "TaskTimedOut",
            "message": "Task Timed Out (proxy: the task's report was applied before)"
        });
        return answer(400, "application/x-amz-json-1.0", body.to_string());
    }
    let fault = pick(&proxy.rules, &op);
    match &fault {
        Some(Fault::Error { code, status }) => {
            let body = serde_json::json!({"__type": code, "message": format!("{code} (proxy)")});
            return answer(*status, "application/x-amz-json-1.0", body.to_string());
        }
        Some(Fault::Body { status, body }) => {
            return answer(*status, "text/html", body.to_string());
        }
        Some(Fault::DropResponse | Fault::Applied { .. }) | None => {}
    }
    let mut upstream = proxy.client.request(
        parts.method.clone(),
        format!("{}{}", proxy.upstream, parts.uri),
    );
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let response = match upstream.body(body).send().await {
        Ok(r) => r,
        Err(e) => return answer(502, "text/plain", format!("proxy: {e}")),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap_or_default();
    if let Some(Fault::Applied {
        status: answer_status,
        body: page,
    }) = &fault
    {
        if status.is_success()
            && let Some(token) = token
        {
            proxy.closed.lock().unwrap().insert(token);
        }
        return answer(*answer_status, "text/html", page.to_string());
    }
    if matches!(fault, Some(Fault::DropResponse)) {
        // Applied upstream; the client sees the connection drop mid-answer.
        let stream = futures_util::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "proxy dropped the response",
            ))
        });
        let mut r = Response::new(Body::from_stream(stream));
        *r.status_mut() = status;
        return r;
    }
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    for (name, value) in &headers {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            r.headers_mut().insert(name, value.clone());
        }
    }
    r
}

fn answer(status: u16, content_type: &'static str, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
