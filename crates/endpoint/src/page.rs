//! The live page at `/`: activities, and recent tasks with their input,
//! output or error and cause, worker and heartbeat age, refreshed every
//! second from `/_local/state`. Plain HTML and a little script, no build step.

use crate::sfn::Shared;
use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde_json::Value;
use std::sync::Arc;

pub(crate) async fn html() -> Html<&'static str> {
    Html(PAGE)
}

pub(crate) async fn state(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.page_state())
}

const PAGE: &str = include_str!("page.html");
