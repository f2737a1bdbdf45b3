//! The worker's side of an activity task: the long poll that hands it out,
//! and the heartbeat and result calls. These are the calls a worker's
//! correctness depends on, so a late or repeated call gets exactly the error
//! AWS gives (TaskTimedOut for any closed task, TaskDoesNotExist for a token
//! never issued), remembered per token after the task is gone.

use super::driver::TaskResult;
use super::{
    Ended, MAX_POLLERS, Model, Shared, TaskStatus, activity_missing, is_json, now, truncate,
};
use crate::error::ApiError;
use crate::requests::parse;
use crate::sfn::requests;
use crate::support::OnDrop;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

impl Shared {
    pub(crate) async fn get_activity_task(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::GetActivityTask = parse(req)?;
        let arn = r.activity_arn;
        self.check_arn(&arn, "activity")?;
        let worker = r.worker_name.unwrap_or_default();
        let notify = {
            let mut m = self.lock();
            let a = m
                .activities
                .get_mut(&arn)
                .ok_or_else(|| activity_missing(&arn))?;
            if a.waiting >= MAX_POLLERS {
                return Err(ApiError::bad_request(
                    "ActivityWorkerLimitExceeded",
                    format!("more than {MAX_POLLERS} workers are polling {arn}"),
                ));
            }
            a.waiting += 1;
            a.notify.clone()
        };
        // Counted out when the poll ends however it ends: a client that
        // disconnects drops this future, and its poll must stop counting.
        let _waiting = OnDrop::new(|| {
            if let Some(a) = self.lock().activities.get_mut(&arn) {
                a.waiting = a.waiting.saturating_sub(1);
            }
        });
        self.wait_for_task(&arn, &worker, &notify).await
    }

    pub(super) async fn wait_for_task(
        &self,
        arn: &str,
        worker: &str,
        notify: &Notify,
    ) -> Result<Value, ApiError> {
        let deadline = Instant::now() + self.options.poll_timeout;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(task) = self.take_task(arn, worker)? {
                return Ok(task);
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => return Ok(json!({})),
                () = self.stopping.cancelled() => return Ok(json!({})),
            }
        }
    }

    /// Hands out the oldest queued task of `arn`, if any.
    pub(super) fn take_task(&self, arn: &str, worker: &str) -> Result<Option<Value>, ApiError> {
        let mut m = self.lock();
        loop {
            let a = m
                .activities
                .get_mut(arn)
                .ok_or_else(|| activity_missing(arn))?;
            let Some(token) = a.queue.pop_front() else {
                return Ok(None);
            };
            let Some(task) = m.tasks.get_mut(&token) else {
                continue;
            };
            if task.status != TaskStatus::Queued {
                continue;
            }
            let wall = now();
            task.status = TaskStatus::Running {
                worker: worker.to_string(),
                started: wall,
                last_beat: Instant::now(),
                last_beat_wall: wall,
            };
            task.wake.notify_one();
            let (input, execution) = (task.input.clone(), task.execution.clone());
            if let Some(e) = m.executions.get_mut(&execution) {
                e.push_event(
                    "ActivityStarted",
                    Some((
                        "activityStartedEventDetails",
                        // AWS leaves out a worker name the poll did not give.
                        if worker.is_empty() {
                            json!({})
                        } else {
                            json!({ "workerName": worker })
                        },
                    )),
                );
            }
            if let Some(v) = m.view_mut(&token) {
                v.status = "running".into();
                v.worker = Some(worker.to_string());
                v.started = Some(wall);
                v.last_heartbeat = Some(wall);
            }
            return Ok(Some(json!({ "taskToken": token, "input": input })));
        }
    }

    /// The error for a token that is well formed but no longer (or never) live.
    pub(super) fn dead_token(m: &Model, token: &str) -> ApiError {
        match m.ended.get(token) {
            Some(Ended::Aborted) => {
                ApiError::bad_request("TaskTimedOut", "Task Timed Out: the execution was stopped")
            }
            Some(Ended::TimedOut) => {
                ApiError::bad_request("TaskTimedOut", "Task Timed Out: the task timed out")
            }
            Some(Ended::Reported(_)) => ApiError::bad_request(
                "TaskTimedOut",
                "Task Timed Out: the task has already been completed",
            ),
            None => ApiError::bad_request("TaskDoesNotExist", "Task does not exist"),
        }
    }

    pub(crate) fn send_task_heartbeat(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::SendTaskHeartbeat = parse(req)?;
        let token = r.task_token.as_str();
        Self::check_token(token)?;
        let mut m = self.lock();
        let Some(task) = m.tasks.get_mut(token) else {
            return Err(Self::dead_token(&m, token));
        };
        if let TaskStatus::Running {
            last_beat,
            last_beat_wall,
            ..
        } = &mut task.status
        {
            *last_beat = Instant::now();
            *last_beat_wall = now();
            let wall = *last_beat_wall;
            task.wake.notify_one();
            if let Some(v) = m.view_mut(token) {
                v.last_heartbeat = Some(wall);
            }
        }
        Ok(json!({}))
    }

    pub(crate) fn send_task_success(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::SendTaskSuccess = parse(req)?;
        Self::check_token(&r.task_token)?;
        if !is_json(&r.output) {
            return Err(ApiError::bad_request(
                "InvalidOutput",
                "Invalid Output: the output is not valid JSON",
            ));
        }
        self.report(&r.task_token, TaskResult::Success(r.output))
    }

    pub(crate) fn send_task_failure(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::SendTaskFailure = parse(req)?;
        Self::check_token(&r.task_token)?;
        self.report(
            &r.task_token,
            TaskResult::Failure {
                error: r.error.unwrap_or_default(),
                cause: r.cause.unwrap_or_default(),
            },
        )
    }

    pub(super) fn report(&self, token: &str, result: TaskResult) -> Result<Value, ApiError> {
        let mut m = self.lock();
        let Some(mut task) = m.tasks.remove(token) else {
            // Also a worker repeating a report whose response it never saw:
            // AWS answers that with TaskTimedOut like any closed task, and
            // so does this endpoint, so workers are tested against it.
            return Err(Self::dead_token(&m, token));
        };
        if let Some(a) = m.activities.get_mut(&task.activity) {
            a.queue.retain(|t| t != token);
        }
        let execution = task.execution.clone();
        if let Some(e) = m.executions.get_mut(&execution) {
            match &result {
                TaskResult::Success(output) => e.push_event(
                    "ActivitySucceeded",
                    Some((
                        "activitySucceededEventDetails",
                        json!({ "output": output, "outputDetails": { "truncated": false } }),
                    )),
                ),
                TaskResult::Failure { error, cause } => e.push_event(
                    "ActivityFailed",
                    Some((
                        "activityFailedEventDetails",
                        json!({ "error": error, "cause": cause }),
                    )),
                ),
            }
        }
        if let Some(v) = m.view_mut(token) {
            v.finished = Some(now());
            match &result {
                TaskResult::Success(output) => {
                    v.status = "succeeded".into();
                    v.output = Some(truncate(output, 2048));
                }
                TaskResult::Failure { error, cause } => {
                    v.status = "failed".into();
                    v.error = Some(error.clone());
                    v.cause = Some(truncate(cause, 2048));
                }
            }
        }
        m.completions += 1;
        m.remember_ended(token, Ended::Reported(result.clone()));
        if let Some(tx) = task.result.take() {
            let _ = tx.send(result);
        }
        Ok(json!({}))
    }
}
