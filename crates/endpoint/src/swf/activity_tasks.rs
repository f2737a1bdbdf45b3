//! The activity worker's side: polling for tasks, heartbeats (which carry
//! cancellation back to the worker), results, and the four SWF timeouts.
//! Every clock is re-read under the lock before a task is timed out, so a
//! heartbeat or result that races the timer wins, as it does on AWS.

use super::requests::{self, Close};
use super::{Model, SwfState, TOKEN_PREFIX, TaskState, prune, unknown};
use crate::error::ApiError;
use crate::requests::parse;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

impl SwfState {
    /// Starts the clocks of a newly scheduled task; they stop when it closes.
    pub(super) fn watch(
        self: &Arc<Self>,
        token: String,
        wake: Arc<Notify>,
        closed: CancellationToken,
    ) {
        self.tasks
            .spawn(watch_task(self.clone(), token, wake, closed));
    }

    /// Tasks scheduled on a list and not yet handed out (none of these is
    /// ever truncated: the endpoint holds far fewer than AWS counts).
    pub(super) fn count_pending_activity_tasks(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::CountPendingActivityTasks = parse(r)?;
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        let tokens: Vec<String> = d
            .activity_queues
            .get(&r.task_list.name)
            .map(|q| q.items.iter().cloned().collect())
            .unwrap_or_default();
        let count = tokens
            .iter()
            .filter(|t| {
                m.tasks
                    .get(*t)
                    .is_some_and(|t| t.state == TaskState::Queued)
            })
            .count();
        Ok(json!({ "count": count, "truncated": false }))
    }

    /// A cancel request on a task: a queued task is canceled at once, a
    /// running one learns of it at its next heartbeat.
    pub(super) fn cancel_requested_locked(&self, m: &mut Model, token: &str) {
        let queued = match m.tasks.get_mut(token) {
            Some(t) => {
                t.cancel_requested = true;
                t.state == TaskState::Queued
            }
            None => return,
        };
        if queued {
            self.close_locked(
                m,
                token,
                "ActivityTaskCanceled",
                "activityTaskCanceledEventAttributes",
                json!({}),
            );
        }
    }

    pub(super) async fn poll_for_activity_task(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::PollForActivityTask = parse(r)?;
        let (domain, list) = (r.domain, r.task_list.name);
        let identity = r.identity.unwrap_or_default();
        let found = self
            .long_poll(&domain, &list, |d| &mut d.activity_queues, |m, token| {
                let task = m.tasks.get_mut(&token)?;
                if task.state != TaskState::Queued {
                    return None;
                }
                let (key, scheduled) = (task.execution.clone(), task.scheduled_event);
                let e = m.domains.get_mut(&task.domain)?.executions.get_mut(&key)?;
                let started = e.push(
                    "ActivityTaskStarted",
                    "activityTaskStartedEventAttributes",
                    json!({ "identity": identity, "scheduledEventId": scheduled }),
                );
                let at = Instant::now();
                task.state = TaskState::Running { started_event: started, started_at: at, last_beat: at };
                task.wake.notify_one();
                let mut out = json!({
                    "taskToken": token, "activityId": task.activity_id, "startedEventId": started,
                    "workflowExecution": { "workflowId": key.0, "runId": key.1 }, "activityType": task.activity_type,
                });
                if let Some(input) = &task.input {
                    out["input"] = json!(input);
                }
                Some(out)
            })
            .await?;
        Ok(found
            .unwrap_or_else(|| json!({ "taskToken": "", "activityId": "", "startedEventId": 0 })))
    }

    pub(super) fn check_token(token: &str) -> Result<(), ApiError> {
        if token.starts_with(TOKEN_PREFIX) && token.len() <= 1024 {
            Ok(())
        } else {
            Err(ApiError::validation(
                "Invalid task token: not issued by this endpoint",
            ))
        }
    }

    pub(super) fn record_heartbeat(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::RecordActivityTaskHeartbeat = parse(r)?;
        Self::check_token(&r.task_token)?;
        let mut m = self.lock();
        let task = m
            .tasks
            .get_mut(&r.task_token)
            .ok_or_else(|| unknown("Unknown activity task (closed or never issued)"))?;
        if let Some(details) = r.details {
            task.details = Some(details);
        }
        if let TaskState::Running { last_beat, .. } = &mut task.state {
            *last_beat = Instant::now();
        }
        task.wake.notify_one();
        Ok(json!({ "cancelRequested": task.cancel_requested }))
    }

    pub(super) fn close_task(&self, r: &Value, close: Close) -> Result<Value, ApiError> {
        let r = requests::RespondActivityTask::parse(r, close)?;
        let token = r.task_token.as_str();
        Self::check_token(token)?;
        let mut m = self.lock();
        if !m.tasks.contains_key(token) {
            return Err(unknown("Unknown activity task (closed or never issued)"));
        }
        let (kind, attrs_key) = match close {
            Close::Completed => (
                "ActivityTaskCompleted",
                "activityTaskCompletedEventAttributes",
            ),
            Close::Failed => ("ActivityTaskFailed", "activityTaskFailedEventAttributes"),
            Close::Canceled => (
                "ActivityTaskCanceled",
                "activityTaskCanceledEventAttributes",
            ),
        };
        let mut attrs = json!({});
        for (key, value) in [
            ("result", r.result),
            ("reason", r.reason),
            ("details", r.details),
        ] {
            if let Some(v) = value {
                attrs[key] = json!(v);
            }
        }
        self.close_locked(&mut m, token, kind, attrs_key, attrs);
        Ok(json!({}))
    }

    /// Closes a task with an event and asks the decider to decide.
    pub(super) fn close_locked(
        &self,
        m: &mut Model,
        token: &str,
        kind: &str,
        attrs_key: &str,
        mut attrs: Value,
    ) {
        let Some(task) = m.tasks.remove(token) else {
            return;
        };
        task.closed.cancel();
        attrs["scheduledEventId"] = json!(task.scheduled_event);
        if let TaskState::Running { started_event, .. } = task.state {
            attrs["startedEventId"] = json!(started_event);
        }
        let Some(d) = m.domains.get_mut(&task.domain) else {
            return;
        };
        if let Some(q) = d.activity_queues.get_mut(&task.task_list) {
            q.items.retain(|t| t != token);
        }
        prune(&mut d.activity_queues, &task.task_list);
        if let Some(e) = d.executions.get_mut(&task.execution) {
            e.activities.remove(&task.activity_id);
            e.push(kind, attrs_key, attrs);
        }
        Self::need_decision(d, &task.execution);
    }

    /// When the task's next clock runs out, and which: schedule-to-start
    /// while it is queued, heartbeat and start-to-close once it runs, and
    /// schedule-to-close throughout.
    pub(super) fn deadline(&self, token: &str) -> Option<(Instant, &'static str)> {
        let m = self.lock();
        let task = m.tasks.get(token)?;
        let overall = task
            .schedule_to_close
            .map(|d| (task.scheduled_at + d, "SCHEDULE_TO_CLOSE"));
        let clocks = match task.state {
            TaskState::Queued => [
                task.schedule_to_start
                    .map(|d| (task.scheduled_at + d, "SCHEDULE_TO_START")),
                None,
            ],
            TaskState::Running {
                started_at,
                last_beat,
                ..
            } => [
                task.heartbeat_timeout.map(|h| (last_beat + h, "HEARTBEAT")),
                task.start_to_close
                    .map(|d| (started_at + d, "START_TO_CLOSE")),
            ],
        };
        clocks
            .into_iter()
            .chain([overall])
            .flatten()
            .min_by_key(|(at, _)| *at)
    }

    /// Forgets a task without an event (its execution closed).
    pub(super) fn drop_task_locked(m: &mut Model, token: &str) {
        let Some(task) = m.tasks.remove(token) else {
            return;
        };
        task.closed.cancel();
        if let Some(d) = m.domains.get_mut(&task.domain) {
            if let Some(q) = d.activity_queues.get_mut(&task.task_list) {
                q.items.retain(|t| t != token);
            }
            prune(&mut d.activity_queues, &task.task_list);
        }
    }

    pub(super) fn time_out(&self, token: &str, kind: &str) {
        // A start or heartbeat may have landed as the timer fired: time out
        // only if the clock that ran out is still the one due.
        match self.deadline(token) {
            Some((at, due)) if due == kind && at <= Instant::now() => {}
            _ => return,
        }
        let mut m = self.lock();
        let details = m.tasks.get(token).and_then(|t| t.details.clone());
        let mut attrs = json!({ "timeoutType": kind });
        if let Some(d) = details {
            attrs["details"] = json!(d);
        }
        self.close_locked(
            &mut m,
            token,
            "ActivityTaskTimedOut",
            "activityTaskTimedOutEventAttributes",
            attrs,
        );
    }
}

/// Times out a task when one of its clocks runs out.
async fn watch_task(
    state: Arc<SwfState>,
    token: String,
    wake: Arc<Notify>,
    closed: CancellationToken,
) {
    loop {
        let deadline = state.deadline(&token);
        tokio::select! {
            () = closed.cancelled() => return,
            () = wake.notified() => continue,
            () = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((_, kind)) = deadline {
                    state.time_out(&token, kind);
                }
                // Timed out (and closed), or the clock moved: look again.
                continue;
            }
        }
    }
}
