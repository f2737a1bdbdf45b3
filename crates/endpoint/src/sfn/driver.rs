//! Running an execution: one async task per execution walks its states,
//! schedules each activity task, and waits for the first of: the worker's
//! report, the state's `TimeoutSeconds`, its `HeartbeatSeconds` since the
//! last heartbeat, or `StopExecution`. Failures and timeouts go through the
//! state's `Retry` rules before they fail the execution.
//!
//! The driver sees the endpoint's state only through [`Host`], so it depends
//! on the state machine definition and nothing else: the state starts
//! drivers, drivers call back through the trait, and no module imports its
//! own caller.

use super::asl::{Definition, TaskState};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a worker reported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TaskResult {
    /// SendTaskSuccess.
    Success(String),
    /// SendTaskFailure.
    Failure { error: String, cause: String },
}

/// How an execution ended, as its driver decided.
#[derive(Debug)]
pub(crate) enum ExecutionEnd {
    Succeeded(String),
    Failed { error: String, cause: String },
    TimedOut,
}

/// A queued task: its token, the channel its result arrives on, and the
/// notify that fires when it starts or heartbeats.
pub(crate) type Scheduled = (String, oneshot::Receiver<TaskResult>, Arc<Notify>);

/// The endpoint's state as the driver uses it.
pub(crate) trait Host: Send + Sync + 'static {
    /// The execution's stop signal, if it still exists.
    fn cancellation(&self, execution: &str) -> Option<CancellationToken>;
    /// Appends a history event.
    fn record(&self, execution: &str, kind: &str, details: Option<(&str, Value)>);
    /// Queues a task for `state`; `Err` is the cause of a `States.Runtime` failure.
    fn schedule_task(
        &self,
        execution: &str,
        state_name: &str,
        state: &TaskState,
        input: &str,
    ) -> Result<Scheduled, String>;
    /// When the task's heartbeat clock runs out, if it has started.
    fn heartbeat_deadline(&self, token: &str, heartbeat: Duration) -> Option<Instant>;
    /// Times a task out unless its result arrived first (then returns it).
    fn time_out_task(
        &self,
        execution: &str,
        token: &str,
        error: &str,
        rx: &mut oneshot::Receiver<TaskResult>,
    ) -> Option<TaskResult>;
    /// The execution no longer waits on a task.
    fn clear_current_task(&self, execution: &str);
    /// Ends a running execution; no-op if it already ended (e.g. stopped).
    fn finish_execution(&self, execution: &str, outcome: ExecutionEnd);
}

enum Attempt {
    Succeeded(String),
    Failed { error: String, cause: String },
    Aborted,
}

/// Drives the execution `arn` to its end.
pub(crate) async fn drive<H: Host>(
    shared: Arc<H>,
    arn: String,
    definition: Arc<Definition>,
    input: String,
) {
    let Some(cancel) = shared.cancellation(&arn) else {
        return;
    };
    let run = run_states(&*shared, &arn, &definition, input);
    let end = match definition.timeout {
        Some(limit) => tokio::select! {
            end = run => end,
            () = tokio::time::sleep(limit) => Some(ExecutionEnd::TimedOut),
            () = cancel.cancelled() => None,
        },
        None => tokio::select! {
            end = run => end,
            () = cancel.cancelled() => None,
        },
    };
    if let Some(end) = end {
        shared.finish_execution(&arn, end);
    }
}

async fn run_states<H: Host>(
    shared: &H,
    arn: &str,
    definition: &Definition,
    mut input: String,
) -> Option<ExecutionEnd> {
    let mut name = definition.start_at.clone();
    loop {
        let state = &definition.states[&name];
        shared.record(
            arn,
            "TaskStateEntered",
            Some((
                "stateEnteredEventDetails",
                json!({ "name": name, "input": input, "inputDetails": { "truncated": false } }),
            )),
        );
        let mut attempts = vec![0u32; state.retry.len()];
        let output = loop {
            match run_task(shared, arn, &name, state, &input).await {
                Attempt::Succeeded(output) => break output,
                Attempt::Aborted => return None,
                Attempt::Failed { error, cause } => {
                    let retry = state.retry.iter().position(|r| r.matches(&error));
                    match retry {
                        Some(i) if attempts[i] < state.retry[i].max_attempts => {
                            attempts[i] += 1;
                            let delay = state.retry[i].delay(attempts[i]);
                            tracing::debug!(target: "wasm_activity::endpoint", execution = %arn, %error,
                                attempt = attempts[i], "retrying state {name} in {delay:?}");
                            tokio::time::sleep(delay).await;
                        }
                        _ => return Some(ExecutionEnd::Failed { error, cause }),
                    }
                }
            }
        };
        shared.record(
            arn,
            "TaskStateExited",
            Some((
                "stateExitedEventDetails",
                json!({ "name": name, "output": output, "outputDetails": { "truncated": false } }),
            )),
        );
        match &state.next {
            Some(next) => {
                name = next.clone();
                input = output;
            }
            None => return Some(ExecutionEnd::Succeeded(output)),
        }
    }
}

async fn run_task<H: Host>(
    shared: &H,
    arn: &str,
    state_name: &str,
    state: &TaskState,
    input: &str,
) -> Attempt {
    let (token, mut rx, wake) = match shared.schedule_task(arn, state_name, state, input) {
        Ok(scheduled) => scheduled,
        Err(reason) => {
            return Attempt::Failed {
                error: "States.Runtime".into(),
                cause: reason,
            };
        }
    };
    let deadline = Instant::now() + Duration::from_secs(state.timeout_seconds);
    let heartbeat = state.heartbeat_seconds.map(Duration::from_secs);
    loop {
        let beat_deadline = heartbeat.and_then(|h| shared.heartbeat_deadline(&token, h));
        let result = tokio::select! {
            result = &mut rx => result.ok(),
            () = wake.notified() => continue,
            // A report that raced the timer wins; otherwise the task timed out.
            () = tokio::time::sleep_until(deadline) => Some(
                shared.time_out_task(arn, &token, TIMEOUT, &mut rx).unwrap_or_else(|| timed_out(arn, TIMEOUT)),
            ),
            () = sleep_until_opt(beat_deadline) => Some(
                shared
                    .time_out_task(arn, &token, HEARTBEAT_TIMEOUT, &mut rx)
                    .unwrap_or_else(|| timed_out(arn, HEARTBEAT_TIMEOUT)),
            ),
        };
        shared.clear_current_task(arn);
        return match result {
            Some(TaskResult::Success(output)) => Attempt::Succeeded(output),
            Some(TaskResult::Failure { error, cause }) => Attempt::Failed { error, cause },
            // The sender was dropped without a result: the task was aborted.
            None => Attempt::Aborted,
        };
    }
}

const TIMEOUT: &str = "States.Timeout";
const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";

fn timed_out(arn: &str, error: &str) -> TaskResult {
    tracing::debug!(target: "wasm_activity::endpoint", execution = %arn, error, "activity task timed out");
    TaskResult::Failure {
        error: error.to_string(),
        cause: String::new(),
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
