//! The live page at `/`: activities, and recent tasks with their input,
//! output or error and cause, worker and heartbeat age, refreshed every
//! second from `/_local/state`; SWF task lists, types and tasks; a form that
//! starts an execution and a view of an execution's history, both through
//! the real API (`POST /`), so the page shows the service's own errors.
//! Plain HTML and a little script, no build step.
//!
//! What only a worker knows (the component version a task ran, its guest
//! log lines, reloads, polling health) is the worker's to serve; a caller
//! running one in the same process (`dev`) hands the endpoint a
//! [`WorkerView`] and the state carries it under `worker`, so this crate
//! needs nothing of the worker's.

use crate::sfn::Shared;
use crate::swf::SwfState;
use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// A function returning a worker's live view as JSON.
pub(crate) type ViewFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// The live view of a worker in the same process, once one is set.
#[derive(Default)]
pub(crate) struct WorkerView(Mutex<Option<ViewFn>>);

impl WorkerView {
    pub(crate) fn set(&self, view: ViewFn) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(view);
    }

    fn get(&self) -> Option<ViewFn> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub(crate) async fn html() -> Html<&'static str> {
    Html(PAGE)
}

/// Both halves' state: the Step Functions activities and tasks, under
/// `swf` the SWF task lists with their waiting polls, types and tasks, and
/// under `worker` the live view of a worker in the same process, if any.
pub(crate) async fn state(
    State(shared): State<Arc<Shared>>,
    State(swf): State<Arc<SwfState>>,
    State(worker): State<Arc<WorkerView>>,
) -> Json<Value> {
    let mut state = shared.page_state();
    state["swf"] = swf.page_state();
    if let Some(view) = worker.get() {
        state["worker"] = view();
    }
    Json(state)
}

const PAGE: &str = include_str!("page.html");
