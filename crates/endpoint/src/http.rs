//! The wire protocol: AWS JSON 1.0 over `POST /`, routed on
//! `X-Amz-Target` to one half or the other, with fault injection applied
//! before (and, for a dropped response, after) the operation runs. Kept
//! apart from the halves so that they deal only in JSON values and
//! [`ApiError`]s, and a fault never needs their cooperation.

use crate::error::ApiError;
use crate::faults::{self, FaultKind, Faults};
use crate::page;
use crate::sfn::Shared;
use crate::swf::SwfState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The JSON 1.0 content type AWS uses for Step Functions.
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// The server's routes over both halves and a fresh set of fault rules.
pub(crate) fn app(
    shared: Arc<Shared>,
    swf: Arc<SwfState>,
    worker: Arc<page::WorkerView>,
) -> Router {
    let state = AppState {
        shared,
        swf,
        worker,
        faults: Arc::new(Faults::default()),
    };
    Router::new()
        .route("/", post(api).get(page::html))
        .route("/_local/state", get(page::state))
        .route(
            "/_local/faults",
            post(faults::set).delete(faults::clear).get(faults::list),
        )
        .route("/_local/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    swf: Arc<SwfState>,
    worker: Arc<page::WorkerView>,
    faults: Arc<Faults>,
}

/// The live page shows a worker in the same process, if one is set.
impl FromRef<AppState> for Arc<page::WorkerView> {
    fn from_ref(app: &AppState) -> Self {
        app.worker.clone()
    }
}

/// The live page reads the Step Functions state.
impl FromRef<AppState> for Arc<Shared> {
    fn from_ref(app: &AppState) -> Self {
        app.shared.clone()
    }
}

/// The live page reads the SWF state too.
impl FromRef<AppState> for Arc<SwfState> {
    fn from_ref(app: &AppState) -> Self {
        app.swf.clone()
    }
}

/// The fault routes see only the rules.
impl FromRef<AppState> for Arc<Faults> {
    fn from_ref(app: &AppState) -> Self {
        app.faults.clone()
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
        Service::StepFunctions => app.shared.dispatch(&op, &request).await,
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
