//! The endpoint's state and the operations on it.
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

use super::asl::{self, Definition};
use super::{ApiError, EndpointOptions, OnDrop, requests};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest input or output, in bytes (AWS: 256 KiB).
pub(crate) const MAX_PAYLOAD: usize = 262_144;
/// Waiting pollers per activity beyond which AWS says ActivityWorkerLimitExceeded.
const MAX_POLLERS: usize = 1_000;
const MAX_EXECUTIONS: usize = 10_000;
const MAX_FINISHED_TOKENS: usize = 10_000;
const MAX_RECENT_TASKS: usize = 200;
const MAX_EVENTS: usize = 25_000;
const TOKEN_PREFIX: &str = "wa1-";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

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

/// What a worker reported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TaskResult {
    /// SendTaskSuccess.
    Success(String),
    /// SendTaskFailure.
    Failure { error: String, cause: String },
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
    /// Set when the endpoint itself goes away (after `stopping`: a worker
    /// draining against it still sees executions advance).
    pub(crate) halt: CancellationToken,
    /// The execution drivers: they end at `halt`.
    drivers: tokio_util::task::TaskTracker,
}

impl Shared {
    pub(crate) fn new(options: EndpointOptions) -> Arc<Shared> {
        Arc::new(Shared {
            options,
            model: Mutex::new(Model::default()),
            stopping: CancellationToken::new(),
            halt: CancellationToken::new(),
            drivers: tokio_util::task::TaskTracker::new(),
        })
    }

    /// Ends every execution driver and waits for them.
    pub(crate) async fn stopped(&self) {
        self.halt.cancel();
        self.drivers.close();
        self.drivers.wait().await;
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
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
        requests::length(&format!("{kind}Arn"), arn, 1, 256)?;
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
        requests::length("taskToken", token, 1, 2048)?;
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

    // ---- activities -------------------------------------------------------

    pub(crate) fn create_activity(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::CreateActivity = requests::parse(req)?;
        let name = r.name.as_str();
        check_name(name, "activity")?;
        let arn = self.arn("activity", name);
        let mut m = self.lock();
        let created = m
            .activities
            .entry(arn.clone())
            .or_insert_with(|| {
                tracing::info!(target: "wasm_activity::endpoint", %arn, "activity created");
                ActivityRec {
                    name: name.to_string(),
                    created: now(),
                    queue: VecDeque::new(),
                    notify: Arc::new(Notify::new()),
                    waiting: 0,
                }
            })
            .created;
        Ok(json!({ "activityArn": arn, "creationDate": created }))
    }

    pub(crate) fn describe_activity(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::ActivityArn = requests::parse(req)?;
        let arn = r.activity_arn.as_str();
        self.check_arn(arn, "activity")?;
        let m = self.lock();
        let a = m.activities.get(arn).ok_or_else(|| activity_missing(arn))?;
        Ok(json!({ "activityArn": arn, "name": a.name, "creationDate": a.created }))
    }

    pub(crate) fn list_activities(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::ListPage = requests::parse(req)?;
        let m = self.lock();
        let all: Vec<Value> = m
            .activities
            .iter()
            .map(
                |(arn, a)| json!({ "activityArn": arn, "name": a.name, "creationDate": a.created }),
            )
            .collect();
        page(all, r.max_results, r.next_token.as_deref(), "activities")
    }

    pub(crate) fn delete_activity(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::ActivityArn = requests::parse(req)?;
        let arn = r.activity_arn.as_str();
        self.check_arn(arn, "activity")?;
        if let Some(a) = self.lock().activities.remove(arn) {
            a.notify.notify_waiters();
        }
        Ok(json!({}))
    }

    // ---- tasks ------------------------------------------------------------

    pub(crate) async fn get_activity_task(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::GetActivityTask = requests::parse(req)?;
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

    async fn wait_for_task(
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
    fn take_task(&self, arn: &str, worker: &str) -> Result<Option<Value>, ApiError> {
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
    fn dead_token(m: &Model, token: &str) -> ApiError {
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
        let r: requests::SendTaskHeartbeat = requests::parse(req)?;
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
        let r: requests::SendTaskSuccess = requests::parse(req)?;
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
        let r: requests::SendTaskFailure = requests::parse(req)?;
        Self::check_token(&r.task_token)?;
        self.report(
            &r.task_token,
            TaskResult::Failure {
                error: r.error.unwrap_or_default(),
                cause: r.cause.unwrap_or_default(),
            },
        )
    }

    fn report(&self, token: &str, result: TaskResult) -> Result<Value, ApiError> {
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

    // ---- state machines and executions ------------------------------------

    pub(crate) fn create_state_machine(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::CreateStateMachine = requests::parse(req)?;
        let name = r.name.as_str();
        check_name(name, "state machine")?;
        let (definition, role_arn) = (r.definition.as_str(), r.role_arn.as_str());
        if let Some(kind) = &r.r#type
            && kind != "STANDARD"
        {
            return Err(ApiError::validation(format!(
                "state machine type {kind:?} is not supported by this local endpoint; use STANDARD"
            )));
        }
        let parsed = asl::parse(definition).map_err(|e| {
            ApiError::bad_request(
                "InvalidDefinition",
                format!("Invalid State Machine Definition: {e}"),
            )
        })?;
        let arn = self.arn("stateMachine", name);
        let mut m = self.lock();
        if let Some(existing) = m.machines.get(&arn) {
            if existing.definition == definition && existing.role_arn == role_arn {
                return Ok(json!({ "stateMachineArn": arn, "creationDate": existing.created }));
            }
            return Err(ApiError::bad_request(
                "StateMachineAlreadyExists",
                format!("State Machine Already Exists: '{arn}'"),
            ));
        }
        let created = now();
        m.machines.insert(
            arn.clone(),
            MachineRec {
                name: name.to_string(),
                definition: definition.to_string(),
                parsed: Arc::new(parsed),
                role_arn: role_arn.to_string(),
                created,
            },
        );
        Ok(json!({ "stateMachineArn": arn, "creationDate": created }))
    }

    pub(crate) fn describe_state_machine(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::StateMachineArn = requests::parse(req)?;
        let arn = r.state_machine_arn.as_str();
        self.check_arn(arn, "stateMachine")?;
        let m = self.lock();
        let sm = m.machines.get(arn).ok_or_else(|| machine_missing(arn))?;
        Ok(json!({
            "stateMachineArn": arn, "name": sm.name, "status": "ACTIVE", "definition": sm.definition,
            "roleArn": sm.role_arn, "type": "STANDARD", "creationDate": sm.created
        }))
    }

    pub(crate) fn list_state_machines(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::ListPage = requests::parse(req)?;
        let m = self.lock();
        let all: Vec<Value> = m
            .machines
            .iter()
            .map(|(arn, sm)| json!({ "stateMachineArn": arn, "name": sm.name, "type": "STANDARD", "creationDate": sm.created }))
            .collect();
        page(all, r.max_results, r.next_token.as_deref(), "stateMachines")
    }

    pub(crate) fn delete_state_machine(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::StateMachineArn = requests::parse(req)?;
        let arn = r.state_machine_arn.as_str();
        self.check_arn(arn, "stateMachine")?;
        self.lock().machines.remove(arn);
        Ok(json!({}))
    }

    pub(crate) fn start_execution(self: &Arc<Self>, req: &Value) -> Result<Value, ApiError> {
        let r: requests::StartExecution = requests::parse(req)?;
        let machine_arn = r.state_machine_arn.as_str();
        self.check_arn(machine_arn, "stateMachine")?;
        let name = r.name.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        check_name(&name, "execution")?;
        let input = r.input.unwrap_or_else(|| "{}".to_string());
        if !is_json(&input) {
            return Err(ApiError::bad_request(
                "InvalidExecutionInput",
                "Invalid execution input: it must be a JSON document",
            ));
        }
        let mut m = self.lock();
        let sm = m
            .machines
            .get(machine_arn)
            .ok_or_else(|| machine_missing(machine_arn))?;
        let (definition, role, sm_name) = (sm.parsed.clone(), sm.role_arn.clone(), sm.name.clone());
        let arn = self.arn("execution", &format!("{sm_name}:{name}"));
        if let Some(existing) = m.executions.get(&arn) {
            if existing.status == "RUNNING" && existing.input == input {
                return Ok(json!({ "executionArn": arn, "startDate": existing.start }));
            }
            return Err(ApiError::bad_request(
                "ExecutionAlreadyExists",
                format!("Execution Already Exists: '{arn}'"),
            ));
        }
        let start = now();
        let mut rec = ExecutionRec {
            machine_arn: machine_arn.to_string(),
            name,
            status: "RUNNING",
            input: input.clone(),
            output: None,
            error: None,
            cause: None,
            start,
            stop: None,
            events: Vec::new(),
            cancel: CancellationToken::new(),
            done: Arc::new(Notify::new()),
            current_task: None,
        };
        rec.push_event(
            "ExecutionStarted",
            Some((
                "executionStartedEventDetails",
                json!({ "input": input, "inputDetails": { "truncated": false }, "roleArn": role }),
            )),
        );
        m.executions.insert(arn.clone(), rec);
        m.execution_order.push_back(arn.clone());
        m.forget_old_executions();
        drop(m);
        tracing::info!(target: "wasm_activity::endpoint", execution = %arn, "execution started");
        let (drive, halt) = (
            super::executions::drive(self.clone(), arn.clone(), definition, input),
            self.halt.clone(),
        );
        self.drivers.spawn(async move {
            tokio::select! {
                () = drive => {}
                () = halt.cancelled() => {}
            }
        });
        Ok(json!({ "executionArn": arn, "startDate": start }))
    }

    pub(crate) fn describe_execution(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::DescribeExecution = requests::parse(req)?;
        let arn = r.execution_arn.as_str();
        self.check_arn(arn, "execution")?;
        let m = self.lock();
        let e = m
            .executions
            .get(arn)
            .ok_or_else(|| execution_missing(arn))?;
        let mut out = json!({
            "executionArn": arn, "stateMachineArn": e.machine_arn, "name": e.name, "status": e.status,
            "startDate": e.start, "input": e.input, "inputDetails": { "included": true }
        });
        if let Some(stop) = e.stop {
            out["stopDate"] = json!(stop);
        }
        if let Some(output) = &e.output {
            out["output"] = json!(output);
            out["outputDetails"] = json!({ "included": true });
        }
        if let Some(error) = &e.error {
            out["error"] = json!(error);
        }
        if let Some(cause) = &e.cause {
            out["cause"] = json!(cause);
        }
        Ok(out)
    }

    pub(crate) fn list_executions(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::ListExecutions = requests::parse(req)?;
        let machine = r
            .state_machine_arn
            .as_deref()
            .ok_or_else(|| ApiError::validation("'stateMachineArn' is required"))?;
        let filter = r.status_filter.as_deref();
        let m = self.lock();
        let all: Vec<Value> = m
            .execution_order
            .iter()
            .rev()
            .filter_map(|arn| m.executions.get(arn).map(|e| (arn, e)))
            .filter(|(_, e)| e.machine_arn == machine && filter.is_none_or(|f| f == e.status))
            .map(|(arn, e)| {
                json!({ "executionArn": arn, "stateMachineArn": e.machine_arn, "name": e.name,
                        "status": e.status, "startDate": e.start, "stopDate": e.stop })
            })
            .collect();
        page(all, r.max_results, r.next_token.as_deref(), "executions")
    }

    pub(crate) fn get_execution_history(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::GetExecutionHistory = requests::parse(req)?;
        let arn = r.execution_arn.as_str();
        self.check_arn(arn, "execution")?;
        let m = self.lock();
        let e = m
            .executions
            .get(arn)
            .ok_or_else(|| execution_missing(arn))?;
        let mut events = e.events.clone();
        if r.reverse_order.unwrap_or(false) {
            events.reverse();
        }
        page(events, r.max_results, r.next_token.as_deref(), "events")
    }

    pub(crate) fn stop_execution(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::StopExecution = requests::parse(req)?;
        let arn = r.execution_arn.as_str();
        self.check_arn(arn, "execution")?;
        let (error, cause) = (r.error.clone(), r.cause.clone());
        let mut m = self.lock();
        let e = m
            .executions
            .get_mut(arn)
            .ok_or_else(|| execution_missing(arn))?;
        if e.status != "RUNNING" {
            return Ok(json!({ "stopDate": e.stop.unwrap_or_else(now) }));
        }
        let mut details = json!({});
        if let Some(error) = &error {
            details["error"] = json!(error);
        }
        if let Some(cause) = &cause {
            details["cause"] = json!(cause);
        }
        e.push_event(
            "ExecutionAborted",
            Some(("executionAbortedEventDetails", details)),
        );
        e.error = error;
        e.cause = cause;
        e.finish("ABORTED");
        e.cancel.cancel();
        let stop = e.stop;
        let task = e.current_task.take();
        if let Some(token) = task {
            self.end_task_locked(&mut m, &token, Ended::Aborted, "aborted");
        }
        tracing::info!(target: "wasm_activity::endpoint", execution = %arn, "execution stopped");
        Ok(json!({ "stopDate": stop }))
    }

    /// Removes a live task because of a timeout or an abort; its token then
    /// answers TaskTimedOut.
    fn end_task_locked(&self, m: &mut Model, token: &str, ended: Ended, label: &str) {
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

    // ---- used by the execution driver -------------------------------------

    /// Queues a task for `state`; returns its token, the channel its result
    /// arrives on, and the notify that fires when it starts or heartbeats.
    pub(crate) fn schedule_task(
        &self,
        execution: &str,
        state_name: &str,
        state: &asl::TaskState,
        input: &str,
    ) -> Result<(String, oneshot::Receiver<TaskResult>, Arc<Notify>), String> {
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
    pub(crate) fn heartbeat_deadline(&self, token: &str, heartbeat: Duration) -> Option<Instant> {
        match &self.lock().tasks.get(token)?.status {
            TaskStatus::Running { last_beat, .. } => Some(*last_beat + heartbeat),
            TaskStatus::Queued => None,
        }
    }

    /// Times a task out unless its result arrived first (then returns it).
    pub(crate) fn time_out_task(
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

    pub(crate) fn record(&self, execution: &str, kind: &str, details: Option<(&str, Value)>) {
        if let Some(e) = self.lock().executions.get_mut(execution) {
            e.push_event(kind, details);
        }
    }

    pub(crate) fn clear_current_task(&self, execution: &str) {
        if let Some(e) = self.lock().executions.get_mut(execution) {
            e.current_task = None;
        }
    }

    /// Ends a running execution; no-op if it already ended (e.g. stopped).
    pub(crate) fn finish_execution(&self, execution: &str, outcome: ExecutionEnd) {
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

    pub(crate) fn cancellation(&self, execution: &str) -> Option<CancellationToken> {
        self.lock()
            .executions
            .get(execution)
            .map(|e| e.cancel.clone())
    }

    /// Waits until an execution is no longer running; returns its description.
    pub(crate) async fn wait_execution(&self, arn: &str) -> Result<Value, ApiError> {
        loop {
            let done = {
                let m = self.lock();
                let e = m
                    .executions
                    .get(arn)
                    .ok_or_else(|| execution_missing(arn))?;
                if e.status != "RUNNING" {
                    None
                } else {
                    Some(e.done.clone())
                }
            };
            let Some(done) = done else {
                return self.describe_execution(&json!({ "executionArn": arn }));
            };
            let notified = done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self
                .lock()
                .executions
                .get(arn)
                .is_some_and(|e| e.status == "RUNNING")
            {
                notified.await;
            }
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
            "completions": m.completions,
        })
    }
}

/// How an execution ended, as its driver decided.
#[derive(Debug)]
pub(crate) enum ExecutionEnd {
    Succeeded(String),
    Failed { error: String, cause: String },
    TimedOut,
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
