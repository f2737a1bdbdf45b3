//! The Step Functions half of the endpoint (`X-Amz-Target:
//! AWSStepFunctions.<Op>`): its state, and the dispatch to its operations.
//!
//! Everything lives in memory behind one mutex held only for short, non-async
//! sections; waiting (long polls, task timers) happens outside it on
//! `Notify`s. Each execution is driven by its own async task that walks the
//! state machine, schedules activity tasks, and enforces `TimeoutSeconds`,
//! `HeartbeatSeconds` and `Retry`. History events are appended under the lock
//! by whoever observes the change, so their order is the order things
//! happened.
//!
//! Memory is bounded: finished executions beyond a cap are forgotten oldest
//! first, tokens of finished tasks are remembered (for the right error on a
//! late call) up to a cap, and the live page's task list is capped.

mod activities;
mod asl;
mod driver;
mod executions;
mod requests;
mod scheduling;
mod tasks;

use crate::error::ApiError;
use crate::options::EndpointOptions;
use crate::support::{Background, lock, now};
use asl::Definition;
use driver::TaskResult;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest input or output, in bytes (AWS: 256 KiB).
pub(crate) const MAX_PAYLOAD: usize = 262_144;
/// Executions remembered; finished ones beyond this are forgotten oldest first.
pub(crate) const MAX_EXECUTIONS: usize = 10_000;
/// Waiting pollers per activity beyond which AWS says ActivityWorkerLimitExceeded.
pub(crate) const MAX_POLLERS: usize = 1_000;
const MAX_FINISHED_TOKENS: usize = 10_000;
const MAX_RECENT_TASKS: usize = 200;
const MAX_EVENTS: usize = 25_000;
const TOKEN_PREFIX: &str = "wa1-";

/// Names of activities, state machines and executions (AWS rules).
fn check_name(name: &str, what: &str) -> Result<(), ApiError> {
    let bad = name.is_empty()
        || name.chars().count() > 80
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c));
    if bad {
        return Err(ApiError::bad_request(
            "InvalidName",
            format!(
                "invalid {what} name {name:?}: 1-80 characters, no whitespace, brackets, wildcards or punctuation like : / ; ,"
            ),
        ));
    }
    Ok(())
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

#[derive(Debug)]
struct ActivityRec {
    name: String,
    created: f64,
    queue: VecDeque<String>,
    notify: Arc<Notify>,
    waiting: usize,
}

#[derive(Debug)]
struct MachineRec {
    name: String,
    definition: String,
    parsed: Arc<Definition>,
    role_arn: String,
    created: f64,
}

#[derive(Debug)]
struct ExecutionRec {
    machine_arn: String,
    name: String,
    status: &'static str,
    input: String,
    output: Option<String>,
    error: Option<String>,
    cause: Option<String>,
    start: f64,
    stop: Option<f64>,
    events: Vec<Value>,
    cancel: CancellationToken,
    done: Arc<Notify>,
    current_task: Option<String>,
}

impl ExecutionRec {
    fn push_event(&mut self, kind: &str, details: Option<(&str, Value)>) {
        if self.events.len() >= MAX_EVENTS {
            return;
        }
        let id = self.events.len() as i64 + 1;
        let mut event =
            json!({ "timestamp": now(), "type": kind, "id": id, "previousEventId": id - 1 });
        if let Some((key, value)) = details {
            event[key] = value;
        }
        self.events.push(event);
    }

    fn finish(&mut self, status: &'static str) {
        self.status = status;
        self.stop = Some(now());
        self.done.notify_waiters();
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TaskStatus {
    Queued,
    Running {
        worker: String,
        started: f64,
        last_beat: Instant,
        last_beat_wall: f64,
    },
}

#[derive(Debug)]
struct TaskRec {
    execution: String,
    activity: String,
    input: String,
    status: TaskStatus,
    result: Option<oneshot::Sender<TaskResult>>,
    wake: Arc<Notify>,
}

/// Why a task token no longer works.
#[derive(Debug, Clone, PartialEq)]
enum Ended {
    Reported(TaskResult),
    TimedOut,
    Aborted,
}

/// A task as the live page shows it.
#[derive(Debug, Clone, serde::Serialize)]
struct TaskView {
    id: String,
    activity: String,
    execution: String,
    /// The execution's ARN, for the page's link to its history.
    execution_arn: String,
    /// The id the worker's logs and live view give this task: the first 6
    /// bytes of the SHA-256 of its token, in hex.
    worker_task: String,
    state: String,
    status: String,
    worker: Option<String>,
    input: String,
    output: Option<String>,
    error: Option<String>,
    cause: Option<String>,
    scheduled: f64,
    started: Option<f64>,
    last_heartbeat: Option<f64>,
    finished: Option<f64>,
}

#[derive(Debug, Default)]
struct Model {
    activities: BTreeMap<String, ActivityRec>,
    machines: BTreeMap<String, MachineRec>,
    executions: BTreeMap<String, ExecutionRec>,
    execution_order: VecDeque<String>,
    tasks: HashMap<String, TaskRec>,
    ended: HashMap<String, Ended>,
    ended_order: VecDeque<String>,
    recent: VecDeque<TaskView>,
    completions: u64,
}

impl Model {
    fn execution(&self, arn: &str) -> Result<&ExecutionRec, ApiError> {
        self.executions
            .get(arn)
            .ok_or_else(|| execution_missing(arn))
    }

    fn remember_ended(&mut self, token: &str, ended: Ended) {
        if self.ended.insert(token.to_string(), ended).is_none() {
            self.ended_order.push_back(token.to_string());
        }
        while self.ended_order.len() > MAX_FINISHED_TOKENS {
            if let Some(old) = self.ended_order.pop_front() {
                self.ended.remove(&old);
            }
        }
    }

    fn view_mut(&mut self, token: &str) -> Option<&mut TaskView> {
        let id = short(token);
        self.recent.iter_mut().rev().find(|v| v.id == id)
    }

    fn forget_old_executions(&mut self) {
        while self.execution_order.len() > MAX_EXECUTIONS {
            let Some(pos) = self.execution_order.iter().position(|arn| {
                self.executions
                    .get(arn)
                    .is_none_or(|e| e.status != "RUNNING")
            }) else {
                return;
            };
            if let Some(arn) = self.execution_order.remove(pos) {
                self.executions.remove(&arn);
            }
        }
    }
}

fn short(token: &str) -> String {
    token
        .trim_start_matches(TOKEN_PREFIX)
        .chars()
        .take(8)
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// The endpoint's state, shared by all requests and execution drivers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: EndpointOptions,
    model: Mutex<Model>,
    /// Set when the endpoint shuts down: waiting polls return empty at once.
    pub(crate) stopping: CancellationToken,
    /// The execution drivers: they end when the endpoint itself goes away
    /// (after `stopping`: a worker draining against it still sees
    /// executions advance).
    drivers: Background,
}

impl Shared {
    /// Runs one API operation.
    pub(crate) async fn dispatch(
        self: &Arc<Self>,
        op: &str,
        req: &Value,
    ) -> Result<Value, ApiError> {
        match op {
            "CreateActivity" => self.create_activity(req),
            "DescribeActivity" => self.describe_activity(req),
            "ListActivities" => self.list_activities(req),
            "DeleteActivity" => self.delete_activity(req),
            "GetActivityTask" => self.get_activity_task(req).await,
            "SendTaskHeartbeat" => self.send_task_heartbeat(req),
            "SendTaskSuccess" => self.send_task_success(req),
            "SendTaskFailure" => self.send_task_failure(req),
            "CreateStateMachine" => self.create_state_machine(req),
            "DescribeStateMachine" => self.describe_state_machine(req),
            "ListStateMachines" => self.list_state_machines(req),
            "DeleteStateMachine" => self.delete_state_machine(req),
            "StartExecution" => self.start_execution(req),
            "DescribeExecution" => self.describe_execution(req),
            "ListExecutions" => self.list_executions(req),
            "GetExecutionHistory" => self.get_execution_history(req),
            "StopExecution" => self.stop_execution(req),
            other => Err(ApiError::bad_request(
                "UnknownOperationException",
                format!("operation {other:?} is not implemented by this local endpoint"),
            )),
        }
    }

    pub(crate) fn new(
        options: EndpointOptions,
        stopping: CancellationToken,
        halt: CancellationToken,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            options,
            model: Mutex::new(Model::default()),
            stopping,
            drivers: Background::new(halt),
        })
    }

    /// Ends every execution driver and waits for them.
    pub(crate) async fn stopped(&self) {
        self.drivers.stopped().await;
    }

    /// Execution drivers still running.
    #[cfg(test)]
    pub(crate) fn running_tasks(&self) -> usize {
        self.drivers.len()
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        lock(&self.model)
    }

    fn arn(&self, kind: &str, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:{kind}:{name}",
            self.options.region, self.options.account
        )
    }

    /// Checks an ARN's shape for `kind` (`activity`, `stateMachine`, `execution`).
    fn check_arn(&self, arn: &str, kind: &str) -> Result<(), ApiError> {
        // A length outside the reference's 1..=256 is a validation error
        // before it is a malformed ARN.
        crate::requests::length(&format!("{kind}Arn"), arn, 1, 256)?;
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        let ok = parts.len() == 7
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "states"
            && parts[5] == kind
            && !parts[6].is_empty();
        if ok {
            Ok(())
        } else {
            Err(ApiError::bad_request(
                "InvalidArn",
                format!("Invalid Arn: '{arn}' is not a valid {kind} ARN"),
            ))
        }
    }

    fn check_token(token: &str) -> Result<(), ApiError> {
        crate::requests::length("taskToken", token, 1, 2048)?;
        let well_formed = token
            .strip_prefix(TOKEN_PREFIX)
            .is_some_and(|rest| uuid::Uuid::parse_str(rest).is_ok());
        if well_formed {
            Ok(())
        } else {
            Err(ApiError::bad_request(
                "InvalidToken",
                "Invalid token: not a task token issued by this endpoint",
            ))
        }
    }

    /// The live page's data.
    pub(crate) fn page_state(&self) -> Value {
        let m = self.lock();
        let activities: Vec<Value> = m
            .activities
            .iter()
            .map(|(arn, a)| {
                let running = m.tasks.values().filter(|t| &t.activity == arn && t.status != TaskStatus::Queued).count();
                json!({ "name": a.name, "arn": arn, "queued": a.queue.len(), "running": running, "pollers": a.waiting })
            })
            .collect();
        let tasks: Vec<&TaskView> = m.recent.iter().rev().collect();
        json!({
            "endpoint": { "region": self.options.region, "account": self.options.account, "now": now() },
            "activities": activities,
            "tasks": tasks,
            "executions": m.executions.len(),
            "machines": m.machines.len(),
            "completions": m.completions,
        })
    }
}

fn activity_missing(arn: &str) -> ApiError {
    ApiError::bad_request(
        "ActivityDoesNotExist",
        format!("Activity Does Not Exist: '{arn}'"),
    )
}

fn machine_missing(arn: &str) -> ApiError {
    ApiError::bad_request(
        "StateMachineDoesNotExist",
        format!("State Machine Does Not Exist: '{arn}'"),
    )
}

fn execution_missing(arn: &str) -> ApiError {
    ApiError::bad_request(
        "ExecutionDoesNotExist",
        format!("Execution Does Not Exist: '{arn}'"),
    )
}

/// `maxResults` / `nextToken` pagination over a list.
fn page(
    items: Vec<Value>,
    max_results: Option<i64>,
    next_token: Option<&str>,
    key: &str,
) -> Result<Value, ApiError> {
    let max = match max_results {
        None | Some(0) => 100,
        Some(n) if n <= 1000 => n as usize,
        Some(n) => {
            return Err(ApiError::validation(format!(
                "'maxResults' {n} is above 1000"
            )));
        }
    };
    let start = match next_token {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::bad_request("InvalidToken", format!("Invalid pagination token {t:?}"))
        })?,
    };
    let end = (start + max).min(items.len());
    let mut out = json!({ key: items.get(start..end).unwrap_or(&[]) });
    if end < items.len() {
        out["nextToken"] = json!(end.to_string());
    }
    Ok(out)
}
