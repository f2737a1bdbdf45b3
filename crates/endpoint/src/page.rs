//! The live page at `/`: activities, and recent tasks with their input,
//! output or error and cause, worker and heartbeat age, refreshed every
//! second from `/_local/state`. Plain HTML and a little script, no build step.

use crate::sfn::Shared;
use crate::swf::SwfState;
use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde_json::Value;
use std::sync::Arc;

pub(crate) async fn html() -> Html<&'static str> {
    Html(PAGE)
}

/// Both halves' state: the Step Functions activities and tasks, and under
/// `swf` the SWF task lists with their waiting polls.
pub(crate) async fn state(
    State(shared): State<Arc<Shared>>,
    State(swf): State<Arc<SwfState>>,
) -> Json<Value> {
    let mut state = shared.page_state();
    state["swf"] = swf.page_state();
    Json(state)
}

const PAGE: &str = include_str!("page.html");
