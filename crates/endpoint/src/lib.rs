//! A local Step Functions endpoint, embedded in the binary.
//!
//! It exists so that nobody needs an AWS account or a 500 MB Python service
//! to run a handler end to end, so that handler authors can point the AWS CLI
//! or boto3 at it, and so that our tests can inject faults no real service
//! lets us inject. It speaks the real wire protocol (AWS JSON 1.0: `POST /`
//! with `X-Amz-Target: AWSStepFunctions.<Op>`, errors as `__type` + message),
//! so the unchanged AWS SDK client talks to it; any credentials are accepted
//! and requests are not signature-checked.
//!
//! State is in memory only and is lost when the process exits. The server is
//! axum on hyper, bound to 127.0.0.1.
//!
//! Besides the API it serves a live page at `/` (see [`page`]), its data at
//! `/_local/state`, and fault injection at `/_local/faults` (see [`faults`]).

mod asl;
mod executions;
mod faults;
mod model;
mod page;
mod requests;
mod swf;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use faults::{FaultKind, Faults};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use model::Shared;
use swf::SwfState;

/// The JSON 1.0 content type AWS uses for Step Functions.
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// Settings of a local endpoint.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// Region used in ARNs.
    pub region: String,
    /// Account id used in ARNs.
    pub account: String,
    /// How long GetActivityTask waits for a task (AWS: 60 s).
    pub poll_timeout: Duration,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            poll_timeout: Duration::from_secs(60),
        }
    }
}

/// An API error: HTTP status, AWS error code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// AWS error code (`__type`).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// A 400 with the given code.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// A 400 `ValidationException`.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::bad_request("ValidationException", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "__type": self.code, "message": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Ok(code) = HeaderValue::from_str(&self.code) {
            headers.insert("x-amzn-errortype", code);
        }
        response
    }
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    swf: Arc<SwfState>,
    faults: Arc<Faults>,
}

/// A running local endpoint.
pub struct LocalEndpoint {
    shared: Arc<Shared>,
    swf: Arc<SwfState>,
    addr: SocketAddr,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEndpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LocalEndpoint {
    /// Binds `addr` (use port 0 for any free port) and starts serving.
    pub async fn start(
        addr: SocketAddr,
        options: EndpointOptions,
    ) -> std::io::Result<LocalEndpoint> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let poll_timeout = options.poll_timeout;
        let shared = Shared::new(options);
        let swf = SwfState::new(poll_timeout, shared.stopping.clone(), shared.halt.clone());
        let faults = Arc::new(Faults::default());
        let state = AppState {
            shared: shared.clone(),
            swf: swf.clone(),
            faults,
        };
        let app = Router::new()
            .route("/", post(api).get(page::html))
            .route("/_local/state", get(page::state))
            .route(
                "/_local/faults",
                post(faults::set).delete(faults::clear).get(faults::list),
            )
            .route("/_local/health", get(|| async { "ok" }))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(state);
        let stop = CancellationToken::new();
        let graceful = stop.clone();
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move { graceful.cancelled().await })
                .await;
            if let Err(e) = result {
                tracing::error!(target: "wasm_activity::endpoint", "local endpoint stopped: {e}");
            }
        });
        tracing::info!(target: "wasm_activity::endpoint", "local Step Functions endpoint on http://{addr} (state in memory only)");
        Ok(LocalEndpoint {
            shared,
            swf,
            addr,
            stop,
            server,
        })
    }

    /// The endpoint URL for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the execution `arn` is no longer running; returns its
    /// description (as DescribeExecution answers it).
    pub async fn wait_execution(&self, arn: &str) -> Result<Value, ApiError> {
        self.shared.wait_execution(arn).await
    }

    /// Calls an operation in process, as a client would over HTTP.
    pub async fn call(&self, op: &str, request: Value) -> Result<Value, ApiError> {
        dispatch(&self.shared, op, &request).await
    }

    /// Answers waiting polls with "no task" now, so workers polling this
    /// endpoint can drain without waiting out their long polls.
    pub fn release_polls(&self) {
        self.shared.stopping.cancel();
    }

    /// Releases polls, stops the server, and waits for every task the
    /// endpoint started (execution drivers, SWF timers) to end.
    pub async fn shutdown(self) {
        self.release_polls();
        self.stop.cancel();
        let _ = self.server.await;
        self.shared.stopped().await;
        self.swf.stopped().await;
    }
}

/// Runs one API operation.
async fn dispatch(shared: &Arc<Shared>, op: &str, req: &Value) -> Result<Value, ApiError> {
    match op {
        "CreateActivity" => shared.create_activity(req),
        "DescribeActivity" => shared.describe_activity(req),
        "ListActivities" => shared.list_activities(req),
        "DeleteActivity" => shared.delete_activity(req),
        "GetActivityTask" => shared.get_activity_task(req).await,
        "SendTaskHeartbeat" => shared.send_task_heartbeat(req),
        "SendTaskSuccess" => shared.send_task_success(req),
        "SendTaskFailure" => shared.send_task_failure(req),
        "CreateStateMachine" => shared.create_state_machine(req),
        "DescribeStateMachine" => shared.describe_state_machine(req),
        "ListStateMachines" => shared.list_state_machines(req),
        "DeleteStateMachine" => shared.delete_state_machine(req),
        "StartExecution" => shared.start_execution(req),
        "DescribeExecution" => shared.describe_execution(req),
        "ListExecutions" => shared.list_executions(req),
        "GetExecutionHistory" => shared.get_execution_history(req),
        "StopExecution" => shared.stop_execution(req),
        other => Err(ApiError::bad_request(
            "UnknownOperationException",
            format!("operation {other:?} is not implemented by this local endpoint"),
        )),
    }
}

/// Runs its closure when dropped: bookkeeping that must happen however a
/// request ends, including when its client disconnects and the request's
/// future is dropped mid-wait.
pub(crate) struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    pub(crate) fn new(f: F) -> Self {
        OnDrop(Some(f))
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Service {
    StepFunctions,
    Swf,
}

fn ok(body: Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A response whose body fails after the headers: the client sees the
/// connection drop mid-response.
fn broken_response() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault injected: connection reset",
        ))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

async fn api(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (service, op) = if let Some(op) = target.strip_prefix("AWSStepFunctions.") {
        (Service::StepFunctions, op.to_string())
    } else if let Some(op) = target.strip_prefix("SimpleWorkflowService.") {
        (Service::Swf, op.to_string())
    } else {
        return ApiError::bad_request(
            "UnknownOperationException",
            "missing or foreign X-Amz-Target header; expected AWSStepFunctions.<Operation> or \
             SimpleWorkflowService.<Operation>",
        )
        .into_response();
    };
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return ApiError::bad_request(
                    "SerializationException",
                    "the request body is not a JSON object",
                )
                .into_response();
            }
        }
    };

    let fault = app.faults.pick(&op);
    match &fault {
        Some(FaultKind::Delay { ms }) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        Some(FaultKind::Throttle) => {
            return ApiError::bad_request("ThrottlingException", "Rate exceeded (fault injected)")
                .into_response();
        }
        Some(FaultKind::ServerError) => {
            return ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "InternalFailure".into(),
                message: "internal failure (fault injected)".into(),
            }
            .into_response();
        }
        Some(FaultKind::Error { code, status }) => {
            return ApiError {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                code: code.clone(),
                message: format!("{code} (fault injected)"),
            }
            .into_response();
        }
        Some(FaultKind::Body { status, body }) => {
            let mut response = Response::new(Body::from(body.clone()));
            *response.status_mut() =
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            return response;
        }
        Some(FaultKind::Reset) => return broken_response(),
        Some(FaultKind::DropResponse) | None => {}
    }

    let result = match service {
        Service::StepFunctions => dispatch(&app.shared, &op, &request).await,
        Service::Swf => app.swf.dispatch(&op, &request).await,
    };
    let status = match &result {
        Ok(_) => "200".to_string(),
        Err(e) => format!("{} {}", e.status.as_u16(), e.code),
    };
    tracing::debug!(target: "wasm_activity::endpoint", op, status, elapsed = ?started.elapsed(), "request");
    if matches!(fault, Some(FaultKind::DropResponse)) {
        return broken_response();
    }
    match result {
        Ok(body) => ok(body),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    async fn endpoint() -> LocalEndpoint {
        LocalEndpoint::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            EndpointOptions::default(),
        )
        .await
        .unwrap()
    }

    async fn setup(ep: &LocalEndpoint, task: Value) -> (String, String) {
        let arn = ep
            .call("CreateActivity", json!({"name": "a"}))
            .await
            .unwrap()["activityArn"]
            .as_str()
            .unwrap()
            .to_string();
        let mut state = json!({"Type": "Task", "Resource": arn, "End": true});
        state
            .as_object_mut()
            .unwrap()
            .extend(task.as_object().unwrap().clone());
        let definition = json!({"StartAt": "S", "States": {"S": state}}).to_string();
        let sm = ep
            .call(
                "CreateStateMachine",
                json!({"name": "m", "definition": definition, "roleArn": "arn:aws:iam::0:role/r"}),
            )
            .await
            .unwrap()["stateMachineArn"]
            .as_str()
            .unwrap()
            .to_string();
        (arn, sm)
    }

    async fn start(ep: &LocalEndpoint, sm: &str, input: Value) -> String {
        ep.call(
            "StartExecution",
            json!({"stateMachineArn": sm, "input": input.to_string()}),
        )
        .await
        .unwrap()["executionArn"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn poll(ep: &LocalEndpoint, arn: &str) -> Option<String> {
        let out = ep
            .call(
                "GetActivityTask",
                json!({"activityArn": arn, "workerName": "w"}),
            )
            .await
            .unwrap();
        out["taskToken"].as_str().map(str::to_string)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn each_task_is_handed_out_exactly_once_to_concurrent_pollers() {
        let ep = Arc::new(endpoint().await);
        let (arn, sm) = setup(&ep, json!({})).await;
        for i in 0..60 {
            start(&ep, &sm, json!({ "i": i })).await;
        }
        let mut pollers = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (ep, arn) = (ep.clone(), arn.clone());
            pollers.spawn(async move {
                let mut got = Vec::new();
                for _ in 0..5 {
                    got.push(
                        poll(&ep, &arn)
                            .await
                            .expect("a task was queued for every poll"),
                    );
                }
                got
            });
        }
        let mut all = Vec::new();
        while let Some(got) = pollers.join_next().await {
            all.extend(got.unwrap());
        }
        let unique: HashSet<&String> = all.iter().collect();
        assert_eq!((all.len(), unique.len()), (60, 60));
    }

    #[tokio::test(start_paused = true)]
    async fn missed_heartbeats_time_the_task_out_and_its_token_says_so() {
        let ep = endpoint().await;
        let (arn, sm) = setup(&ep, json!({"TimeoutSeconds": 100, "HeartbeatSeconds": 5})).await;
        let exec = start(&ep, &sm, json!({})).await;
        let token = poll(&ep, &arn).await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        ep.call("SendTaskHeartbeat", json!({"taskToken": token}))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        // 8 s after start but only 4 s after the last heartbeat: still alive.
        ep.call("SendTaskHeartbeat", json!({"taskToken": token}))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let done = ep.shared.wait_execution(&exec).await.unwrap();
        assert_eq!(done["status"], "FAILED");
        assert_eq!(done["error"], "States.HeartbeatTimeout");
        let e = ep
            .call(
                "SendTaskSuccess",
                json!({"taskToken": token, "output": "{}"}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "TaskTimedOut");
    }

    #[tokio::test(start_paused = true)]
    async fn task_timeout_counts_from_scheduling_even_if_no_worker_polls() {
        let ep = endpoint().await;
        let (_arn, sm) = setup(&ep, json!({"TimeoutSeconds": 30})).await;
        let exec = start(&ep, &sm, json!({})).await;
        let done = ep.shared.wait_execution(&exec).await.unwrap();
        assert_eq!(
            (done["status"].as_str(), done["error"].as_str()),
            (Some("FAILED"), Some("States.Timeout"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_waits_with_backoff_then_gives_up_with_the_last_error() {
        let ep = endpoint().await;
        let (arn, sm) = setup(
            &ep,
            json!({"Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 3.0}]}),
        )
        .await;
        let exec = start(&ep, &sm, json!({})).await;
        let t0 = tokio::time::Instant::now();
        let mut attempts = Vec::new();
        for _ in 0..3 {
            let token = poll(&ep, &arn).await.unwrap();
            attempts.push(t0.elapsed().as_secs());
            ep.call(
                "SendTaskFailure",
                json!({"taskToken": token, "error": "Boom", "cause": "c"}),
            )
            .await
            .unwrap();
        }
        // Retries after 2 s and then 2 * 3 = 6 s more.
        assert_eq!(attempts, vec![0, 2, 8]);
        let done = ep.shared.wait_execution(&exec).await.unwrap();
        assert_eq!(
            (done["error"].as_str(), done["cause"].as_str()),
            (Some("Boom"), Some("c"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_report_is_answered_task_timed_out_as_on_aws() {
        let ep = endpoint().await;
        let (arn, sm) = setup(&ep, json!({})).await;
        start(&ep, &sm, json!({})).await;
        let token = poll(&ep, &arn).await.unwrap();
        let success = json!({"taskToken": token, "output": "{\"a\":1}"});
        ep.call("SendTaskSuccess", success.clone()).await.unwrap();
        // The same report again (its first response lost), a different
        // one, a failure, a heartbeat: the task is closed for all of them.
        for (op, req) in [
            ("SendTaskSuccess", success),
            (
                "SendTaskSuccess",
                json!({"taskToken": token, "output": "{}"}),
            ),
            ("SendTaskFailure", json!({"taskToken": token, "error": "E"})),
            ("SendTaskHeartbeat", json!({"taskToken": token})),
        ] {
            let e = ep.call(op, req).await.unwrap_err();
            assert_eq!(e.code, "TaskTimedOut", "{op}");
        }
        assert_eq!(ep.shared.page_state()["completions"], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn empty_poll_returns_no_token_after_the_poll_timeout() {
        let ep = endpoint().await;
        let (arn, _) = setup(&ep, json!({})).await;
        let t0 = tokio::time::Instant::now();
        assert_eq!(poll(&ep, &arn).await, None);
        assert_eq!(t0.elapsed(), Duration::from_secs(60));
    }

    fn pollers(ep: &LocalEndpoint) -> u64 {
        ep.shared.page_state()["activities"][0]["pollers"]
            .as_u64()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_whose_client_goes_away_stops_counting_at_once() {
        let ep = endpoint().await;
        let (arn, sm) = setup(&ep, json!({})).await;
        // 1,000 polls abandoned mid-wait (their futures dropped, as when
        // the connection closes), then a working poll gets its task.
        for _ in 0..MAX_ABANDONED {
            let poll = ep.call("GetActivityTask", json!({"activityArn": arn}));
            let abandoned = tokio::time::timeout(Duration::from_millis(1), poll).await;
            assert!(abandoned.is_err());
        }
        assert_eq!(pollers(&ep), 0);
        start(&ep, &sm, json!({})).await;
        assert!(poll(&ep, &arn).await.is_some());
        assert_eq!(pollers(&ep), 0);
    }

    const MAX_ABANDONED: usize = 1_001;

    async fn swf(ep: &LocalEndpoint, op: &str, req: Value) -> Result<Value, ApiError> {
        ep.swf.dispatch(op, &req).await
    }

    /// A domain, an activity type `t` version 1 and a workflow type, and a
    /// started workflow with its first decision task taken: (token).
    async fn swf_workflow(ep: &LocalEndpoint) -> String {
        swf(
            ep,
            "RegisterDomain",
            json!({"name": "d", "workflowExecutionRetentionPeriodInDays": "1"}),
        )
        .await
        .unwrap();
        swf(
            ep,
            "RegisterActivityType",
            json!({"domain": "d", "name": "t", "version": "1"}),
        )
        .await
        .unwrap();
        swf(
            ep,
            "RegisterWorkflowType",
            json!({"domain": "d", "name": "w", "version": "1"}),
        )
        .await
        .unwrap();
        swf(
            ep,
            "StartWorkflowExecution",
            json!({"domain": "d", "workflowId": "wf", "workflowType": {"name": "w", "version": "1"},
                   "taskList": {"name": "decisions"}}),
        )
        .await
        .unwrap();
        decision_token(ep).await
    }

    async fn decision_token(ep: &LocalEndpoint) -> String {
        let d = swf(
            ep,
            "PollForDecisionTask",
            json!({"domain": "d", "taskList": {"name": "decisions"}}),
        )
        .await
        .unwrap();
        d["taskToken"].as_str().unwrap().to_string()
    }

    async fn history(ep: &LocalEndpoint) -> Vec<String> {
        let h = swf(
            ep,
            "GetWorkflowExecutionHistory",
            json!({"domain": "d", "execution": {"workflowId": "wf"}}),
        )
        .await
        .unwrap();
        h["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventType"].as_str().unwrap().to_string())
            .collect()
    }

    fn schedule(id: &str, extra: Value) -> Value {
        let mut attrs = json!({"activityType": {"name": "t", "version": "1"}, "activityId": id,
                               "taskList": {"name": "acts"}});
        attrs
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"decisionType": "ScheduleActivityTask", "scheduleActivityTaskDecisionAttributes": attrs})
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_decision_request_changes_nothing_and_can_be_sent_again() {
        let ep = endpoint().await;
        let token = swf_workflow(&ep).await;
        let before = history(&ep).await;
        let e = swf(&ep, "RespondDecisionTaskCompleted", json!({"taskToken": token, "decisions": [
            schedule("a1", json!({})),
            {"decisionType": "StartTimer", "startTimerDecisionAttributes": {"timerId": "t", "startToFireTimeout": "5"}}
        ]}))
        .await
        .unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert_eq!(
            history(&ep).await,
            before,
            "a refused request left events behind"
        );
        // The same token still works.
        swf(
            &ep,
            "RespondDecisionTaskCompleted",
            json!({"taskToken": token, "decisions": [schedule("a1", json!({}))]}),
        )
        .await
        .unwrap();
        let h = history(&ep).await;
        assert_eq!(
            &h[h.len() - 2..],
            ["DecisionTaskCompleted", "ActivityTaskScheduled"]
        );
        let task = swf(
            &ep,
            "PollForActivityTask",
            json!({"domain": "d", "taskList": {"name": "acts"}}),
        )
        .await
        .unwrap();
        assert_eq!(task["activityId"], "a1");
    }

    #[tokio::test(start_paused = true)]
    async fn schedule_to_start_times_out_a_task_nobody_takes() {
        let ep = endpoint().await;
        let token = swf_workflow(&ep).await;
        swf(
            &ep,
            "RespondDecisionTaskCompleted",
            json!({"taskToken": token, "decisions": [
                schedule("late", json!({"scheduleToStartTimeout": "2"}))
            ]}),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let h = swf(
            &ep,
            "GetWorkflowExecutionHistory",
            json!({"domain": "d", "execution": {"workflowId": "wf"}}),
        )
        .await
        .unwrap();
        let timed_out = h["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["eventType"] == "ActivityTaskTimedOut")
            .unwrap_or_else(|| panic!("{h}"));
        assert_eq!(
            timed_out["activityTaskTimedOutEventAttributes"]["timeoutType"],
            "SCHEDULE_TO_START"
        );
        // And it is no longer handed out.
        let none = tokio::time::timeout(
            Duration::from_secs(120),
            swf(
                &ep,
                "PollForActivityTask",
                json!({"domain": "d", "taskList": {"name": "acts"}}),
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(none["taskToken"], "");
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_an_unknown_activity_id_fails_as_documented() {
        let ep = endpoint().await;
        let token = swf_workflow(&ep).await;
        swf(&ep, "RespondDecisionTaskCompleted", json!({"taskToken": token, "decisions": [
            {"decisionType": "RequestCancelActivityTask", "requestCancelActivityTaskDecisionAttributes": {"activityId": "never"}}
        ]}))
        .await
        .unwrap();
        let h = swf(
            &ep,
            "GetWorkflowExecutionHistory",
            json!({"domain": "d", "execution": {"workflowId": "wf"}}),
        )
        .await
        .unwrap();
        let failed = h["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["eventType"] == "RequestCancelActivityTaskFailed")
            .unwrap_or_else(|| panic!("{h}"));
        assert_eq!(
            failed["requestCancelActivityTaskFailedEventAttributes"]["cause"],
            "ACTIVITY_ID_UNKNOWN"
        );
        assert!(
            !history(&ep)
                .await
                .contains(&"ActivityTaskCancelRequested".to_string())
        );
        // The decider is asked to decide again.
        assert!(history(&ep).await.last().unwrap() == "DecisionTaskScheduled");
    }

    #[tokio::test(start_paused = true)]
    async fn deprecation_is_answered_as_documented() {
        let ep = endpoint().await;
        let token = swf_workflow(&ep).await;
        let t = json!({"domain": "d", "activityType": {"name": "t", "version": "1"}});
        swf(&ep, "DeprecateActivityType", t.clone()).await.unwrap();
        assert_eq!(
            swf(&ep, "DeprecateActivityType", t.clone())
                .await
                .unwrap_err()
                .code,
            "TypeDeprecatedFault"
        );
        let described = swf(&ep, "DescribeActivityType", t).await.unwrap();
        assert_eq!(described["typeInfo"]["status"], "DEPRECATED");
        swf(
            &ep,
            "RespondDecisionTaskCompleted",
            json!({"taskToken": token, "decisions": [schedule("a", json!({}))]}),
        )
        .await
        .unwrap();
        assert!(
            history(&ep)
                .await
                .contains(&"ScheduleActivityTaskFailed".to_string())
        );
        swf(&ep, "DeprecateDomain", json!({"name": "d"}))
            .await
            .unwrap();
        assert_eq!(
            swf(&ep, "DeprecateDomain", json!({"name": "d"}))
                .await
                .unwrap_err()
                .code,
            "DomainDeprecatedFault"
        );
        let e = swf(
            &ep,
            "RegisterActivityType",
            json!({"domain": "d", "name": "u", "version": "1"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, "OperationNotPermittedFault");
        assert_eq!(
            swf(&ep, "DeprecateDomain", json!({"name": "x".repeat(257)}))
                .await
                .unwrap_err()
                .code,
            "ValidationException"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn swf_polls_are_limited_and_abandoned_ones_do_not_count() {
        let ep = endpoint().await;
        swf_workflow(&ep).await;
        let poll = || {
            swf(
                &ep,
                "PollForActivityTask",
                json!({"domain": "d", "taskList": {"name": "acts"}}),
            )
        };
        for _ in 0..MAX_ABANDONED {
            assert!(
                tokio::time::timeout(Duration::from_millis(1), poll())
                    .await
                    .is_err()
            );
        }
        // Not refused: the abandoned polls are gone.
        let polls: Vec<_> = (0..1000).map(|_| Box::pin(poll())).collect();
        let mut polls: Vec<_> = polls
            .into_iter()
            .map(|mut p| {
                assert!(futures_util::FutureExt::now_or_never(p.as_mut()).is_none());
                p
            })
            .collect();
        // The 1,001st waiting poll is refused.
        let e = tokio::time::timeout(Duration::from_secs(1), poll())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code, "LimitExceededFault");
        polls.clear();
        assert!(
            tokio::time::timeout(Duration::from_millis(1), poll())
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_may_name_a_task_scheduled_by_the_same_request() {
        let ep = endpoint().await;
        let token = swf_workflow(&ep).await;
        swf(&ep, "RespondDecisionTaskCompleted", json!({"taskToken": token, "decisions": [
            schedule("both", json!({})),
            {"decisionType": "RequestCancelActivityTask", "requestCancelActivityTaskDecisionAttributes": {"activityId": "both"}}
        ]}))
        .await
        .unwrap();
        // Queued, so canceled at once, and never handed out.
        assert!(
            history(&ep)
                .await
                .contains(&"ActivityTaskCanceled".to_string())
        );
        let none = swf(
            &ep,
            "PollForActivityTask",
            json!({"domain": "d", "taskList": {"name": "acts"}}),
        )
        .await
        .unwrap();
        assert_eq!(none["taskToken"], "");
    }

    #[tokio::test(start_paused = true)]
    async fn closing_a_workflow_closes_its_activity_tasks() {
        let ep = endpoint().await;
        let token = swf_workflow(&ep).await;
        swf(
            &ep,
            "RespondDecisionTaskCompleted",
            json!({"taskToken": token, "decisions": [schedule("a", json!({}))]}),
        )
        .await
        .unwrap();
        let task = swf(
            &ep,
            "PollForActivityTask",
            json!({"domain": "d", "taskList": {"name": "acts"}}),
        )
        .await
        .unwrap();
        swf(
            &ep,
            "SignalWorkflowExecution",
            json!({"domain": "d", "workflowId": "wf", "signalName": "close"}),
        )
        .await
        .unwrap();
        let token = decision_token(&ep).await;
        swf(
            &ep,
            "RespondDecisionTaskCompleted",
            json!({"taskToken": token, "decisions": [
                {"decisionType": "CompleteWorkflowExecution"},
                schedule("after-close", json!({}))
            ]}),
        )
        .await
        .unwrap();
        let e = swf(
            &ep,
            "RespondActivityTaskCompleted",
            json!({"taskToken": task["taskToken"], "result": "r"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, "UnknownResourceFault");
        // Nothing after the closing decision was scheduled.
        let none = swf(
            &ep,
            "PollForActivityTask",
            json!({"domain": "d", "taskList": {"name": "acts"}}),
        )
        .await
        .unwrap();
        assert_eq!(none["taskToken"], "");
    }
}
