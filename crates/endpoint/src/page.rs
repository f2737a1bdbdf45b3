//! The live page at `/`: activities, and recent tasks with their input,
//! output or error and cause, worker and heartbeat age, refreshed every
//! second from `/_local/state`. Plain HTML and a little script, no build step.

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde_json::Value;

pub(crate) async fn html() -> Html<&'static str> {
    Html(PAGE)
}

pub(crate) async fn state(State(app): State<super::AppState>) -> Json<Value> {
    Json(app.shared.page_state())
}

const PAGE: &str = include_str!("page.html");
