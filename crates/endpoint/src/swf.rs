//! The SWF half of the local endpoint (`X-Amz-Target: SimpleWorkflowService.<Op>`).
//!
//! Enough of SWF to run activity workers the real way, including what moto
//! lacks: a true long poll for activity and decision tasks, and
//! cancellation (`RequestCancelActivityTask` makes the next heartbeat return
//! `cancelRequested: true`). Deciders drive workflows with
//! `ScheduleActivityTask`, `RequestCancelActivityTask` and
//! `CompleteWorkflowExecution`; `SignalWorkflowExecution` wakes a decider.
//! Activity tasks enforce heartbeat and start-to-close timeouts. Calls on a
//! closed or unknown task get `UnknownResourceFault`, as on AWS.
//!
//! Like the Step Functions half, all state is in memory behind one mutex
//! held for short synchronous sections; long polls wait on `Notify`s.

use super::requests::{self, Close, Decided};
use super::{ApiError, OnDrop};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const TOKEN_PREFIX: &str = "swf1-";
/// Waiting polls per task list beyond which SWF answers LimitExceededFault.
const MAX_POLLERS: usize = 1_000;
/// Closed executions remembered (their histories stay readable); older
/// ones are forgotten, as the Step Functions half forgets executions.
const MAX_CLOSED_EXECUTIONS: usize = 10_000;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn unknown(what: impl Into<String>) -> ApiError {
    ApiError::bad_request("UnknownResourceFault", what)
}

/// Timeout strings: seconds, or "NONE".
fn timeout(v: Option<&str>) -> Option<Duration> {
    v.and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<String>,
    notify: Arc<Notify>,
    /// Polls waiting on this list now.
    waiting: usize,
}

#[derive(Debug, Clone)]
struct ActivityTypeRec {
    created: f64,
    config: Value,
    /// When DeprecateActivityType was called.
    deprecated: Option<f64>,
}

#[derive(Debug)]
struct Execution {
    workflow_type: Value,
    task_list: String,
    events: Vec<Value>,
    open: bool,
    /// A decision task is scheduled or started.
    decision_pending: bool,
    /// Events arrived while a decision task was started: decide again.
    needs_decision: bool,
    /// activityId -> token of its open task.
    activities: HashMap<String, String>,
}

impl Execution {
    fn push(&mut self, kind: &str, attrs_key: &str, attrs: Value) -> i64 {
        let id = self.events.len() as i64 + 1;
        let mut e = json!({ "eventId": id, "eventTimestamp": now(), "eventType": kind });
        e[attrs_key] = attrs;
        self.events.push(e);
        id
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TaskState {
    Queued,
    Running {
        started_event: i64,
        started_at: Instant,
        last_beat: Instant,
    },
}

#[derive(Debug)]
struct ActivityTask {
    domain: String,
    execution: (String, String),
    activity_id: String,
    activity_type: Value,
    input: Option<String>,
    task_list: String,
    scheduled_event: i64,
    state: TaskState,
    scheduled_at: Instant,
    heartbeat_timeout: Option<Duration>,
    start_to_close: Option<Duration>,
    schedule_to_start: Option<Duration>,
    schedule_to_close: Option<Duration>,
    cancel_requested: bool,
    details: Option<String>,
    wake: Arc<Notify>,
    closed: CancellationToken,
}

#[derive(Debug, Default)]
struct Domain {
    deprecated: bool,
    description: Option<String>,
    retention_days: String,
    activity_types: HashMap<(String, String), ActivityTypeRec>,
    /// Workflow types and their default task lists.
    workflow_types: HashMap<(String, String), Option<String>>,
    executions: HashMap<(String, String), Execution>,
    decision_queues: HashMap<String, Queue>,
    activity_queues: HashMap<String, Queue>,
}

#[derive(Debug, Default)]
struct Model {
    domains: HashMap<String, Domain>,
    tasks: HashMap<String, ActivityTask>,
    /// Decision token -> (domain, workflowId, runId, started event id).
    decisions: HashMap<String, (String, String, String, i64)>,
    /// Closed executions, oldest first, for forgetting.
    closed: VecDeque<(String, (String, String))>,
}

impl Model {
    /// Remembers that an execution closed and forgets the oldest closed
    /// ones beyond [`MAX_CLOSED_EXECUTIONS`].
    fn closed_execution(&mut self, domain: &str, key: (String, String)) {
        self.closed.push_back((domain.to_string(), key));
        while self.closed.len() > MAX_CLOSED_EXECUTIONS {
            let Some((domain, key)) = self.closed.pop_front() else {
                break;
            };
            if let Some(d) = self.domains.get_mut(&domain) {
                d.executions.remove(&key);
            }
        }
    }
}

/// The SWF state of the endpoint.
#[derive(Debug)]
pub(crate) struct SwfState {
    model: Mutex<Model>,
    poll_timeout: Duration,
    stopping: CancellationToken,
    /// Set when the endpoint goes away: the task timers end.
    halt: CancellationToken,
    /// The task timers.
    tasks: tokio_util::task::TaskTracker,
}

fn queue<'a>(queues: &'a mut HashMap<String, Queue>, list: &str) -> &'a mut Queue {
    queues.entry(list.to_string()).or_default()
}

impl SwfState {
    pub(crate) fn new(
        poll_timeout: Duration,
        stopping: CancellationToken,
        halt: CancellationToken,
    ) -> Arc<SwfState> {
        Arc::new(SwfState {
            model: Mutex::new(Model::default()),
            poll_timeout,
            stopping,
            halt,
            tasks: tokio_util::task::TaskTracker::new(),
        })
    }

    /// Waits for every timer this half started (they end at `halt`).
    pub(crate) async fn stopped(&self) {
        self.halt.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) async fn dispatch(self: &Arc<Self>, op: &str, r: &Value) -> Result<Value, ApiError> {
        match op {
            "RegisterDomain" => self.register_domain(r),
            "DescribeDomain" => self.describe_domain(r),
            "CountPendingActivityTasks" => self.count_pending_activity_tasks(r),
            "RegisterActivityType" => self.register_activity_type(r),
            "DescribeActivityType" => self.describe_activity_type(r),
            "RegisterWorkflowType" => self.register_workflow_type(r),
            "StartWorkflowExecution" => self.start_workflow_execution(r),
            "SignalWorkflowExecution" => self.signal_workflow_execution(r),
            "GetWorkflowExecutionHistory" => self.history(r),
            "PollForDecisionTask" => self.poll_for_decision_task(r).await,
            "RespondDecisionTaskCompleted" => self.respond_decision_task_completed(r),
            "PollForActivityTask" => self.poll_for_activity_task(r).await,
            "RecordActivityTaskHeartbeat" => self.record_heartbeat(r),
            "RespondActivityTaskCompleted" => self.close_task(r, Close::Completed),
            "RespondActivityTaskFailed" => self.close_task(r, Close::Failed),
            "RespondActivityTaskCanceled" => self.close_task(r, Close::Canceled),
            "DeprecateDomain" => self.deprecate_domain(r),
            "DeprecateActivityType" => self.deprecate_activity_type(r),
            other => Err(ApiError::bad_request(
                "UnknownOperationException",
                format!("SWF operation {other:?} is not implemented by this local endpoint"),
            )),
        }
    }

    fn domain<'a>(m: &'a mut Model, name: &str) -> Result<&'a mut Domain, ApiError> {
        requests::length("domain", name, 1, 256)?;
        m.domains
            .get_mut(name)
            .ok_or_else(|| unknown(format!("Unknown domain: {name}")))
    }

    fn register_domain(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::RegisterDomain = requests::parse(r)?;
        let mut m = self.lock();
        if m.domains.contains_key(&r.name) {
            return Err(ApiError::bad_request("DomainAlreadyExistsFault", r.name));
        }
        let domain = Domain {
            description: r.description,
            retention_days: r.workflow_execution_retention_period_in_days,
            ..Domain::default()
        };
        m.domains.insert(r.name, domain);
        Ok(json!({}))
    }

    fn describe_domain(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::DescribeDomain = requests::parse(r)?;
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.name)?;
        let status = if d.deprecated {
            "DEPRECATED"
        } else {
            "REGISTERED"
        };
        let mut info = json!({ "name": r.name, "status": status });
        if let Some(description) = &d.description {
            info["description"] = json!(description);
        }
        Ok(json!({
            "domainInfo": info,
            "configuration": { "workflowExecutionRetentionPeriodInDays": d.retention_days },
        }))
    }

    /// Tasks scheduled on a list and not yet handed out (none of these is
    /// ever truncated: the endpoint holds far fewer than AWS counts).
    fn count_pending_activity_tasks(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::CountPendingActivityTasks = requests::parse(r)?;
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

    fn register_activity_type(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::RegisterActivityType = requests::parse(r)?;
        let key = (r.name.clone(), r.version.clone());
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        Self::not_deprecated(d, &r.domain)?;
        if d.activity_types.contains_key(&key) {
            return Err(ApiError::bad_request(
                "TypeAlreadyExistsFault",
                format!("ActivityType=[name={}, version={}]", key.0, key.1),
            ));
        }
        let mut config = json!({});
        for (field, value) in [
            (
                "defaultTaskHeartbeatTimeout",
                &r.default_task_heartbeat_timeout,
            ),
            (
                "defaultTaskStartToCloseTimeout",
                &r.default_task_start_to_close_timeout,
            ),
            (
                "defaultTaskScheduleToStartTimeout",
                &r.default_task_schedule_to_start_timeout,
            ),
            (
                "defaultTaskScheduleToCloseTimeout",
                &r.default_task_schedule_to_close_timeout,
            ),
        ] {
            if let Some(v) = value {
                config[field] = json!(v);
            }
        }
        if let Some(list) = &r.default_task_list {
            config["defaultTaskList"] = json!({ "name": list.name });
        }
        if let Some(priority) = &r.default_task_priority {
            config["defaultTaskPriority"] = json!(priority);
        }
        d.activity_types.insert(
            key,
            ActivityTypeRec {
                created: now(),
                config,
                deprecated: None,
            },
        );
        Ok(json!({}))
    }

    fn describe_activity_type(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::DescribeActivityType = requests::parse(r)?;
        let key = r.activity_type.key();
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        let t = d.activity_types.get(&key).ok_or_else(|| {
            unknown(format!(
                "Unknown type: ActivityType=[name={}, version={}]",
                key.0, key.1
            ))
        })?;
        let mut info = json!({ "activityType": { "name": key.0, "version": key.1 }, "status": "REGISTERED", "creationDate": t.created });
        if let Some(at) = t.deprecated {
            info["status"] = json!("DEPRECATED");
            info["deprecationDate"] = json!(at);
        }
        Ok(json!({ "typeInfo": info, "configuration": t.config }))
    }

    /// New executions and types cannot be created in a deprecated domain.
    fn not_deprecated(d: &Domain, name: &str) -> Result<(), ApiError> {
        if d.deprecated {
            return Err(ApiError::bad_request(
                "OperationNotPermittedFault",
                format!("domain {name} is deprecated"),
            ));
        }
        Ok(())
    }

    fn deprecate_domain(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::DeprecateDomain = requests::parse(r)?;
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.name)?;
        if d.deprecated {
            return Err(ApiError::bad_request(
                "DomainDeprecatedFault",
                format!("domain {} is already deprecated", r.name),
            ));
        }
        d.deprecated = true;
        Ok(json!({}))
    }

    fn deprecate_activity_type(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::DeprecateActivityType = requests::parse(r)?;
        let key = r.activity_type.key();
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        let t = d.activity_types.get_mut(&key).ok_or_else(|| {
            unknown(format!(
                "Unknown type: ActivityType=[name={}, version={}]",
                key.0, key.1
            ))
        })?;
        if t.deprecated.is_some() {
            return Err(ApiError::bad_request(
                "TypeDeprecatedFault",
                format!("ActivityType=[name={}, version={}]", key.0, key.1),
            ));
        }
        t.deprecated = Some(now());
        Ok(json!({}))
    }

    fn register_workflow_type(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::RegisterWorkflowType = requests::parse(r)?;
        let key = (r.name, r.version);
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        Self::not_deprecated(d, &r.domain)?;
        if d.workflow_types.contains_key(&key) {
            return Err(ApiError::bad_request(
                "TypeAlreadyExistsFault",
                format!("WorkflowType=[name={}, version={}]", key.0, key.1),
            ));
        }
        let default_list = r.default_task_list.map(|l| l.name);
        d.workflow_types.insert(key, default_list);
        Ok(json!({}))
    }

    /// Schedules a decision task unless one is already pending.
    fn need_decision(d: &mut Domain, key: &(String, String)) {
        let Some(e) = d.executions.get_mut(key) else {
            return;
        };
        if !e.open {
            return;
        }
        if e.decision_pending {
            e.needs_decision = true;
            return;
        }
        e.decision_pending = true;
        let list = e.task_list.clone();
        e.push(
            "DecisionTaskScheduled",
            "decisionTaskScheduledEventAttributes",
            json!({ "taskList": { "name": list } }),
        );
        let q = queue(&mut d.decision_queues, &list);
        q.items.push_back(format!("{}\u{0}{}", key.0, key.1));
        q.notify.notify_waiters();
    }

    fn start_workflow_execution(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::StartWorkflowExecution = requests::parse(r)?;
        let workflow_id = r.workflow_id;
        let wtype = r.workflow_type.key();
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        Self::not_deprecated(d, &r.domain)?;
        let default_list = d.workflow_types.get(&wtype).ok_or_else(|| {
            unknown(format!(
                "Unknown type: WorkflowType=[name={}, version={}]",
                wtype.0, wtype.1
            ))
        })?;
        let task_list = r
            .task_list
            .map(|l| l.name)
            .or_else(|| default_list.clone())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "DefaultUndefinedFault",
                    "no task list for the workflow's decisions",
                )
            })?;
        if d.executions
            .iter()
            .any(|((w, _), e)| *w == workflow_id && e.open)
        {
            return Err(ApiError::bad_request(
                "WorkflowExecutionAlreadyStartedFault",
                format!("workflow {workflow_id} is already running"),
            ));
        }
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let mut e = Execution {
            workflow_type: json!({ "name": wtype.0, "version": wtype.1 }),
            task_list: task_list.clone(),
            events: Vec::new(),
            open: true,
            decision_pending: false,
            needs_decision: false,
            activities: HashMap::new(),
        };
        let mut attrs = json!({ "taskList": { "name": task_list }, "workflowType": e.workflow_type, "childPolicy": "TERMINATE" });
        if let Some(input) = &r.input {
            attrs["input"] = json!(input);
        }
        e.push(
            "WorkflowExecutionStarted",
            "workflowExecutionStartedEventAttributes",
            attrs,
        );
        let key = (workflow_id, run_id.clone());
        d.executions.insert(key.clone(), e);
        Self::need_decision(d, &key);
        Ok(json!({ "runId": run_id }))
    }

    fn find_execution(
        d: &Domain,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<(String, String), ApiError> {
        d.executions
            .iter()
            .filter(|((w, run), e)| w == workflow_id && run_id.map_or(e.open, |id| id == run))
            .map(|(k, _)| k.clone())
            .next()
            .ok_or_else(|| unknown(format!("Unknown execution: workflowId={workflow_id}")))
    }

    fn signal_workflow_execution(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::SignalWorkflowExecution = requests::parse(r)?;
        let workflow_id = r.workflow_id.as_str();
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        let key = Self::find_execution(d, workflow_id, r.run_id.as_deref())?;
        let e = d.executions.get_mut(&key).expect("found above");
        if !e.open {
            return Err(unknown(format!("execution {workflow_id} is closed")));
        }
        let mut attrs = json!({ "signalName": r.signal_name });
        if let Some(input) = &r.input {
            attrs["input"] = json!(input);
        }
        e.push(
            "WorkflowExecutionSignaled",
            "workflowExecutionSignaledEventAttributes",
            attrs,
        );
        Self::need_decision(d, &key);
        Ok(json!({}))
    }

    fn history(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::GetWorkflowExecutionHistory = requests::parse(r)?;
        let execution = &r.execution;
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        let key = Self::find_execution(d, &execution.workflow_id, execution.run_id.as_deref())?;
        let mut events = d.executions[&key].events.clone();
        if r.reverse_order == Some(true) {
            events.reverse();
        }
        Ok(json!({ "events": events }))
    }

    /// Long-polls `queues[list]`, taking items with `take` under the lock.
    async fn long_poll<T>(
        &self,
        domain: &str,
        list: &str,
        queues: fn(&mut Domain) -> &mut HashMap<String, Queue>,
        mut take: impl FnMut(&mut Model, String) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        let deadline = Instant::now() + self.poll_timeout;
        {
            let mut m = self.lock();
            let q = queue(queues(Self::domain(&mut m, domain)?), list);
            if q.waiting >= MAX_POLLERS {
                return Err(ApiError::bad_request(
                    "LimitExceededFault",
                    format!("more than {MAX_POLLERS} pollers are waiting on task list {list}"),
                ));
            }
            q.waiting += 1;
        }
        // Counted out however the poll ends, a dropped connection included.
        let _waiting = OnDrop::new(|| {
            let mut m = self.lock();
            if let Some(q) = m
                .domains
                .get_mut(domain)
                .and_then(|d| queues(d).get_mut(list))
            {
                q.waiting = q.waiting.saturating_sub(1);
            }
        });
        loop {
            let notify = {
                let mut m = self.lock();
                let d = Self::domain(&mut m, domain)?;
                queue(queues(d), list).notify.clone()
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut m = self.lock();
                loop {
                    let d = Self::domain(&mut m, domain)?;
                    let Some(item) = queue(queues(d), list).items.pop_front() else {
                        break;
                    };
                    if let Some(found) = take(&mut m, item) {
                        return Ok(Some(found));
                    }
                }
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => return Ok(None),
                () = self.stopping.cancelled() => return Ok(None),
            }
        }
    }

    async fn poll_for_decision_task(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::PollForDecisionTask = requests::parse(r)?;
        let (domain, list) = (r.domain, r.task_list.name);
        let identity = r.identity.unwrap_or_default();
        let reverse = r.reverse_order == Some(true);
        let found = self
            .long_poll(
                &domain,
                &list,
                |d| &mut d.decision_queues,
                |m, item| {
                    let (w, run) = item.split_once('\u{0}')?;
                    let key = (w.to_string(), run.to_string());
                    let e = m.domains.get_mut(&domain)?.executions.get_mut(&key)?;
                    if !e.open {
                        return None;
                    }
                    let scheduled = e
                        .events
                        .iter()
                        .rev()
                        .find(|ev| ev["eventType"] == "DecisionTaskScheduled")
                        .and_then(|ev| ev["eventId"].as_i64())
                        .unwrap_or(0);
                    let started = e.push(
                        "DecisionTaskStarted",
                        "decisionTaskStartedEventAttributes",
                        json!({ "identity": identity, "scheduledEventId": scheduled }),
                    );
                    let token = format!("{TOKEN_PREFIX}d-{}", uuid::Uuid::new_v4());
                    let mut events = e.events.clone();
                    if reverse {
                        events.reverse();
                    }
                    let out = json!({
                        "taskToken": token, "startedEventId": started,
                        "workflowExecution": { "workflowId": key.0, "runId": key.1 },
                        "workflowType": e.workflow_type, "events": events,
                    });
                    m.decisions
                        .insert(token, (domain.clone(), key.0, key.1, started));
                    Some(out)
                },
            )
            .await?;
        Ok(found.unwrap_or_else(|| json!({ "taskToken": "", "startedEventId": 0, "events": [] })))
    }

    /// Applies a decider's decisions, all or nothing: the request is decoded
    /// and every decision validated before the decision task is consumed or
    /// any event is recorded, so a refused request can be corrected and sent
    /// again with the same token.
    fn respond_decision_task_completed(self: &Arc<Self>, r: &Value) -> Result<Value, ApiError> {
        let r: requests::RespondDecisionTaskCompleted = requests::parse(r)?;
        let mut m = self.lock();
        let (domain, w, run, started) = m
            .decisions
            .get(&r.task_token)
            .cloned()
            .ok_or_else(|| unknown("Unknown decision task token"))?;
        let key = (w, run);
        {
            let d = Self::domain(&mut m, &domain)?;
            if !d.executions.contains_key(&key) {
                return Err(unknown("execution vanished"));
            }
        }
        // From here on nothing fails: the request is applied whole.
        m.decisions.remove(&r.task_token);
        let mut scheduled_tasks = Vec::new();
        let mut cancels = Vec::new();
        let mut closed = false;
        {
            let d = Self::domain(&mut m, &domain)?;
            let types = d.activity_types.clone();
            let e = d.executions.get_mut(&key).expect("checked above");
            let scheduled = e
                .events
                .iter()
                .find(|ev| ev["eventId"] == started)
                .and_then(|ev| {
                    ev.pointer("/decisionTaskStartedEventAttributes/scheduledEventId")
                        .cloned()
                })
                .unwrap_or(json!(0));
            let mut attrs = json!({ "scheduledEventId": scheduled, "startedEventId": started });
            if let Some(context) = &r.execution_context {
                attrs["executionContext"] = json!(context);
            }
            let completed = e.push(
                "DecisionTaskCompleted",
                "decisionTaskCompletedEventAttributes",
                attrs,
            );
            e.decision_pending = false;
            if let Some(list) = &r.task_list {
                // Later decision tasks of this execution go to this list.
                e.task_list = list.name.clone();
            }
            for decision in &r.decisions {
                if !e.open {
                    // Nothing follows the decision that closed the workflow.
                    break;
                }
                match decision.decided() {
                    Decided::Schedule(a) => {
                        let failed = |e: &mut Execution, cause: &str| {
                            e.push(
                                "ScheduleActivityTaskFailed",
                                "scheduleActivityTaskFailedEventAttributes",
                                json!({ "activityType": { "name": a.activity_type.name, "version": a.activity_type.version },
                                        "activityId": a.activity_id, "cause": cause,
                                        "decisionTaskCompletedEventId": completed }),
                            );
                            e.needs_decision = true;
                        };
                        let Some(registered) = types.get(&a.activity_type.key()) else {
                            failed(e, "ACTIVITY_TYPE_DOES_NOT_EXIST");
                            continue;
                        };
                        if registered.deprecated.is_some() {
                            failed(e, "ACTIVITY_TYPE_DEPRECATED");
                            continue;
                        }
                        if e.activities.contains_key(&a.activity_id) {
                            failed(e, "ACTIVITY_ID_ALREADY_IN_USE");
                            continue;
                        }
                        let pick = |given: &Option<String>, default: &str| {
                            given.clone().or_else(|| {
                                registered
                                    .config
                                    .get(default)
                                    .and_then(Value::as_str)
                                    .map(str::to_string)
                            })
                        };
                        let Some(list) =
                            a.task_list.as_ref().map(|l| l.name.clone()).or_else(|| {
                                registered
                                    .config
                                    .pointer("/defaultTaskList/name")
                                    .and_then(Value::as_str)
                                    .map(str::to_string)
                            })
                        else {
                            failed(e, "DEFAULT_TASK_LIST_UNDEFINED");
                            continue;
                        };
                        let heartbeat = pick(&a.heartbeat_timeout, "defaultTaskHeartbeatTimeout");
                        let start_to_close =
                            pick(&a.start_to_close_timeout, "defaultTaskStartToCloseTimeout");
                        let schedule_to_start = pick(
                            &a.schedule_to_start_timeout,
                            "defaultTaskScheduleToStartTimeout",
                        );
                        let schedule_to_close = pick(
                            &a.schedule_to_close_timeout,
                            "defaultTaskScheduleToCloseTimeout",
                        );
                        let activity_type = json!({ "name": a.activity_type.name, "version": a.activity_type.version });
                        let none = || "NONE".to_string();
                        let mut attrs = json!({
                            "activityType": activity_type, "activityId": a.activity_id, "taskList": { "name": list },
                            "decisionTaskCompletedEventId": completed,
                            "heartbeatTimeout": heartbeat.clone().unwrap_or_else(none),
                            "startToCloseTimeout": start_to_close.clone().unwrap_or_else(none),
                            "scheduleToStartTimeout": schedule_to_start.clone().unwrap_or_else(none),
                            "scheduleToCloseTimeout": schedule_to_close.clone().unwrap_or_else(none),
                        });
                        for (field, value) in [("input", &a.input), ("control", &a.control)] {
                            if let Some(v) = value {
                                attrs[field] = json!(v);
                            }
                        }
                        let scheduled_event = e.push(
                            "ActivityTaskScheduled",
                            "activityTaskScheduledEventAttributes",
                            attrs,
                        );
                        let token = format!("{TOKEN_PREFIX}{}", uuid::Uuid::new_v4());
                        e.activities.insert(a.activity_id.clone(), token.clone());
                        scheduled_tasks.push((
                            token,
                            ActivityTask {
                                domain: domain.clone(),
                                execution: key.clone(),
                                activity_id: a.activity_id.clone(),
                                activity_type,
                                input: a.input.clone(),
                                task_list: list,
                                scheduled_event,
                                state: TaskState::Queued,
                                scheduled_at: Instant::now(),
                                heartbeat_timeout: timeout(heartbeat.as_deref()),
                                start_to_close: timeout(start_to_close.as_deref()),
                                schedule_to_start: timeout(schedule_to_start.as_deref()),
                                schedule_to_close: timeout(schedule_to_close.as_deref()),
                                cancel_requested: false,
                                details: None,
                                wake: Arc::new(Notify::new()),
                                closed: CancellationToken::new(),
                            },
                        ));
                    }
                    Decided::RequestCancel(a) => match e.activities.get(&a.activity_id).cloned() {
                        Some(token) => {
                            e.push(
                                "ActivityTaskCancelRequested",
                                "activityTaskCancelRequestedEventAttributes",
                                json!({ "activityId": a.activity_id, "decisionTaskCompletedEventId": completed }),
                            );
                            // Applied below, once the execution borrow ends.
                            cancels.push(token);
                        }
                        None => {
                            e.push(
                                "RequestCancelActivityTaskFailed",
                                "requestCancelActivityTaskFailedEventAttributes",
                                json!({ "activityId": a.activity_id, "cause": "ACTIVITY_ID_UNKNOWN",
                                        "decisionTaskCompletedEventId": completed }),
                            );
                            e.needs_decision = true;
                        }
                    },
                    Decided::Complete(a) => {
                        let mut attrs = json!({ "decisionTaskCompletedEventId": completed });
                        if let Some(result) = a.and_then(|a| a.result.as_ref()) {
                            attrs["result"] = json!(result);
                        }
                        e.push(
                            "WorkflowExecutionCompleted",
                            "workflowExecutionCompletedEventAttributes",
                            attrs,
                        );
                        e.open = false;
                        closed = true;
                    }
                }
            }
            if std::mem::take(&mut e.needs_decision) {
                Self::need_decision(d, &key);
            }
        }
        // Tasks scheduled by this request exist before its cancels apply:
        // a cancel may name one of them.
        for (token, task) in scheduled_tasks {
            let (list, wake, closed) = (
                task.task_list.clone(),
                task.wake.clone(),
                task.closed.clone(),
            );
            m.tasks.insert(token.clone(), task);
            let d = Self::domain(&mut m, &domain)?;
            let q = queue(&mut d.activity_queues, &list);
            q.items.push_back(token.clone());
            q.notify.notify_waiters();
            self.tasks
                .spawn(watch_task(self.clone(), token, wake, closed));
        }
        for token in cancels {
            self.cancel_requested_locked(&mut m, &token);
        }
        if closed {
            // A closed execution's activity tasks are closed with it: their
            // workers' next calls get UnknownResourceFault.
            let open: Vec<String> = Self::domain(&mut m, &domain)?
                .executions
                .get_mut(&key)
                .map(|e| e.activities.drain().map(|(_, t)| t).collect())
                .unwrap_or_default();
            for token in open {
                Self::drop_task_locked(&mut m, &token);
            }
            m.closed_execution(&domain, key);
        }
        Ok(json!({}))
    }

    /// A cancel request on a task: a queued task is canceled at once, a
    /// running one learns of it at its next heartbeat.
    fn cancel_requested_locked(&self, m: &mut Model, token: &str) {
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

    async fn poll_for_activity_task(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::PollForActivityTask = requests::parse(r)?;
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

    fn check_token(token: &str) -> Result<(), ApiError> {
        if token.starts_with(TOKEN_PREFIX) && token.len() <= 1024 {
            Ok(())
        } else {
            Err(ApiError::validation(
                "Invalid task token: not issued by this endpoint",
            ))
        }
    }

    fn record_heartbeat(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::RecordActivityTaskHeartbeat = requests::parse(r)?;
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

    fn close_task(&self, r: &Value, close: Close) -> Result<Value, ApiError> {
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
    fn close_locked(
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
        if let Some(e) = d.executions.get_mut(&task.execution) {
            e.activities.remove(&task.activity_id);
            e.push(kind, attrs_key, attrs);
        }
        Self::need_decision(d, &task.execution);
    }

    /// When the task's next clock runs out, and which: schedule-to-start
    /// while it is queued, heartbeat and start-to-close once it runs, and
    /// schedule-to-close throughout.
    fn deadline(&self, token: &str) -> Option<(Instant, &'static str)> {
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
    fn drop_task_locked(m: &mut Model, token: &str) {
        let Some(task) = m.tasks.remove(token) else {
            return;
        };
        task.closed.cancel();
        if let Some(q) = m
            .domains
            .get_mut(&task.domain)
            .and_then(|d| d.activity_queues.get_mut(&task.task_list))
        {
            q.items.retain(|t| t != token);
        }
    }

    fn time_out(&self, token: &str, kind: &str) {
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
            () = state.halt.cancelled() => return,
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
