//! What the execution driver asks of the state: queue a task, time it out,
//! record events, end the execution. Kept apart from the client-facing
//! operations because these run on the driver's schedule, racing worker
//! calls, and each must settle that race under the one lock.

use super::driver::{ExecutionEnd, Host, Scheduled, TaskResult};
use super::{
    Ended, MAX_RECENT_TASKS, Model, Shared, TOKEN_PREFIX, TaskRec, TaskStatus, TaskView, asl, now,
    short, truncate,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

impl Shared {
    /// Removes a live task because of a timeout or an abort; its token then
    /// answers TaskTimedOut.
    pub(super) fn end_task_locked(&self, m: &mut Model, token: &str, ended: Ended, label: &str) {
        if let Some(task) = m.tasks.remove(token)
            && let Some(a) = m.activities.get_mut(&task.activity)
        {
            a.queue.retain(|t| t != token);
        }
        if let Some(v) = m.view_mut(token) {
            v.status = label.to_string();
            v.finished = Some(now());
        }
        m.remember_ended(token, ended);
    }
}

impl Host for Shared {
    /// Queues a task for `state`; returns its token, the channel its result
    /// arrives on, and the notify that fires when it starts or heartbeats.
    fn schedule_task(
        &self,
        execution: &str,
        state_name: &str,
        state: &asl::TaskState,
        input: &str,
    ) -> Result<Scheduled, String> {
        let mut m = self.lock();
        if !m.activities.contains_key(&state.resource) {
            return Err(format!("the activity {} does not exist", state.resource));
        }
        let token = format!("{TOKEN_PREFIX}{}", uuid::Uuid::new_v4());
        let (tx, rx) = oneshot::channel();
        let wake = Arc::new(Notify::new());
        let Some(e) = m.executions.get_mut(execution) else {
            return Err("execution vanished".into());
        };
        if e.status != "RUNNING" {
            return Err("execution is not running".into());
        }
        let mut details = json!({
            "resource": state.resource, "input": input, "inputDetails": { "truncated": false },
            "timeoutInSeconds": state.timeout_seconds,
        });
        if let Some(h) = state.heartbeat_seconds {
            details["heartbeatInSeconds"] = json!(h);
        }
        e.push_event(
            "ActivityScheduled",
            Some(("activityScheduledEventDetails", details)),
        );
        e.current_task = Some(token.clone());
        let exec_name = e.name.clone();
        m.tasks.insert(
            token.clone(),
            TaskRec {
                execution: execution.to_string(),
                activity: state.resource.clone(),
                input: input.to_string(),
                status: TaskStatus::Queued,
                result: Some(tx),
                wake: wake.clone(),
            },
        );
        let activity_name = state.resource.rsplit(':').next().unwrap_or("").to_string();
        m.recent.push_back(TaskView {
            id: short(&token),
            activity: activity_name,
            execution: exec_name,
            execution_arn: execution.to_string(),
            worker_task: worker_task_id(&token),
            state: state_name.to_string(),
            status: "queued".into(),
            worker: None,
            input: truncate(input, 2048),
            output: None,
            error: None,
            cause: None,
            scheduled: now(),
            started: None,
            last_heartbeat: None,
            finished: None,
        });
        while m.recent.len() > MAX_RECENT_TASKS {
            m.recent.pop_front();
        }
        let a = m
            .activities
            .get_mut(&state.resource)
            .expect("checked above");
        a.queue.push_back(token.clone());
        a.notify.notify_waiters();
        Ok((token, rx, wake))
    }

    /// When the task's heartbeat clock runs out, if it has started.
    fn heartbeat_deadline(&self, token: &str, heartbeat: Duration) -> Option<Instant> {
        match &self.lock().tasks.get(token)?.status {
            TaskStatus::Running { last_beat, .. } => Some(*last_beat + heartbeat),
            TaskStatus::Queued => None,
        }
    }

    /// Times a task out unless its result arrived first (then returns it).
    fn time_out_task(
        &self,
        execution: &str,
        token: &str,
        error: &str,
        rx: &mut oneshot::Receiver<TaskResult>,
    ) -> Option<TaskResult> {
        let mut m = self.lock();
        if !m.tasks.contains_key(token) {
            return rx.try_recv().ok();
        }
        self.end_task_locked(&mut m, token, Ended::TimedOut, "timed out");
        if let Some(v) = m.view_mut(token) {
            v.error = Some(error.to_string());
        }
        if let Some(e) = m.executions.get_mut(execution) {
            e.current_task = None;
            e.push_event(
                "ActivityTimedOut",
                Some(("activityTimedOutEventDetails", json!({ "error": error }))),
            );
        }
        None
    }

    fn record(&self, execution: &str, kind: &str, details: Option<(&str, Value)>) {
        if let Some(e) = self.lock().executions.get_mut(execution) {
            e.push_event(kind, details);
        }
    }

    fn clear_current_task(&self, execution: &str) {
        if let Some(e) = self.lock().executions.get_mut(execution) {
            e.current_task = None;
        }
    }

    /// Ends a running execution; no-op if it already ended (e.g. stopped).
    fn finish_execution(&self, execution: &str, outcome: ExecutionEnd) {
        let mut m = self.lock();
        let Some(e) = m.executions.get_mut(execution) else {
            return;
        };
        if e.status != "RUNNING" {
            return;
        }
        let status = match outcome {
            ExecutionEnd::Succeeded(output) => {
                e.push_event(
                    "ExecutionSucceeded",
                    Some((
                        "executionSucceededEventDetails",
                        json!({ "output": output, "outputDetails": { "truncated": false } }),
                    )),
                );
                e.output = Some(output);
                "SUCCEEDED"
            }
            ExecutionEnd::Failed { error, cause } => {
                e.push_event(
                    "ExecutionFailed",
                    Some((
                        "executionFailedEventDetails",
                        json!({ "error": error, "cause": cause }),
                    )),
                );
                e.error = Some(error);
                e.cause = Some(cause);
                "FAILED"
            }
            ExecutionEnd::TimedOut => {
                e.push_event(
                    "ExecutionTimedOut",
                    Some((
                        "executionTimedOutEventDetails",
                        json!({ "error": "States.Timeout" }),
                    )),
                );
                e.error = Some("States.Timeout".into());
                "TIMED_OUT"
            }
        };
        e.finish(status);
        let task = e.current_task.take();
        if let Some(token) = task {
            self.end_task_locked(&mut m, &token, Ended::TimedOut, "timed out");
        }
        tracing::info!(target: "wasm_activity::endpoint", %execution, status, "execution finished");
    }

    fn cancellation(&self, execution: &str) -> Option<CancellationToken> {
        self.lock()
            .executions
            .get(execution)
            .map(|e| e.cancel.clone())
    }
}

/// The id the worker names a task by (`TaskToken::short_id` there): the
/// first 6 bytes of the SHA-256 of its token, in hex.
fn worker_task_id(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
