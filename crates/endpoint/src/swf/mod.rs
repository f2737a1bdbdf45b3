//! The SWF half of the local endpoint (`X-Amz-Target: SimpleWorkflowService.<Op>`).
//!
//! Enough of SWF to run activity workers the real way, including what moto
//! lacks: a true long poll for activity and decision tasks, and
//! cancellation (`RequestCancelActivityTask` makes the next heartbeat return
//! `cancelRequested: true`). Deciders drive workflows with
//! `ScheduleActivityTask`, `RequestCancelActivityTask` and
//! `CompleteWorkflowExecution`; `SignalWorkflowExecution` wakes a decider.
//! Activity tasks enforce their four timeouts, executions their
//! start-to-close timeout and decision tasks theirs, so that nothing open
//! lives forever: with the cap on open executions and forgetting of old
//! closed ones, the state stays bounded. Calls on a closed or unknown task
//! get `UnknownResourceFault`, as on AWS.
//!
//! Like the Step Functions half, all state is in memory behind one mutex
//! held for short synchronous sections; long polls wait on `Notify`s.

mod activity_tasks;
mod registration;
mod requests;
mod workflows;

use crate::error::ApiError;
use crate::support::{Background, OnDrop, lock, now};
use requests::Close;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const TOKEN_PREFIX: &str = "swf1-";
/// Waiting polls per task list beyond which SWF answers LimitExceededFault.
const MAX_POLLERS: usize = 1_000;
/// Closed executions remembered (their histories stay readable); older
/// ones are forgotten, as the Step Functions half forgets executions.
pub(crate) const MAX_CLOSED_EXECUTIONS: usize = 10_000;
/// Open executions per domain beyond which StartWorkflowExecution answers
/// LimitExceededFault (the AWS quota). With executionStartToCloseTimeout
/// enforced, this bounds the open half of the state.
pub(crate) const MAX_OPEN_EXECUTIONS: usize = 100_000;

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

/// A registered workflow type's defaults.
#[derive(Debug, Clone, Default)]
struct WorkflowTypeRec {
    default_task_list: Option<String>,
    default_execution_start_to_close: Option<String>,
    default_task_start_to_close: Option<String>,
}

#[derive(Debug)]
struct Execution {
    workflow_type: Value,
    task_list: String,
    events: Vec<Value>,
    open: bool,
    /// Fires when the execution closes: ends its start-to-close timer.
    closing: CancellationToken,
    /// How long a started decision task may stay unanswered.
    decision_timeout: Option<Duration>,
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
    workflow_types: HashMap<(String, String), WorkflowTypeRec>,
    executions: HashMap<(String, String), Execution>,
    /// How many of `executions` are open.
    open_executions: usize,
    decision_queues: HashMap<String, Queue>,
    activity_queues: HashMap<String, Queue>,
}

#[derive(Debug, Default)]
struct Model {
    domains: HashMap<String, Domain>,
    tasks: HashMap<String, ActivityTask>,
    /// Decision token -> (domain, workflowId, runId, started event id, and
    /// what ends its timer once the token is answered or dropped).
    decisions: HashMap<String, (String, String, String, i64, CancellationToken)>,
    /// Closed executions, oldest first, for forgetting.
    closed: VecDeque<(String, (String, String))>,
}

impl Model {
    /// Closes an open execution (its last event already recorded): its
    /// timer stops, its activity tasks and any decision task are dropped
    /// (their workers' next calls get UnknownResourceFault), and it joins
    /// the closed executions that are forgotten oldest first.
    fn close_execution(&mut self, domain: &str, key: (String, String)) {
        let Some(d) = self.domains.get_mut(domain) else {
            return;
        };
        let Some(e) = d.executions.get_mut(&key) else {
            return;
        };
        if !e.open {
            return;
        }
        e.open = false;
        e.decision_pending = false;
        e.needs_decision = false;
        e.closing.cancel();
        let tasks: Vec<String> = e.activities.drain().map(|(_, t)| t).collect();
        let list = e.task_list.clone();
        d.open_executions = d.open_executions.saturating_sub(1);
        let item = decision_item(&key);
        if let Some(q) = d.decision_queues.get_mut(&list) {
            q.items.retain(|i| *i != item);
        }
        prune(&mut d.decision_queues, &list);
        for token in tasks {
            SwfState::drop_task_locked(self, &token);
        }
        self.decisions.retain(|_, (dn, w, run, _, done)| {
            let keep = !(dn == domain && *w == key.0 && *run == key.1);
            if !keep {
                done.cancel();
            }
            keep
        });
        self.closed_execution(domain, key);
    }

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
    /// [`MAX_OPEN_EXECUTIONS`], lower in tests.
    max_open_executions: usize,
    stopping: CancellationToken,
    /// The task timers: they end when the endpoint goes away.
    tasks: Background,
}

fn queue<'a>(queues: &'a mut HashMap<String, Queue>, list: &str) -> &'a mut Queue {
    queues.entry(list.to_string()).or_default()
}

/// Forgets a task list's queue once nothing waits on it and nothing is
/// queued, so that polls on ever new names leave nothing behind.
fn prune(queues: &mut HashMap<String, Queue>, list: &str) {
    if queues
        .get(list)
        .is_some_and(|q| q.waiting == 0 && q.items.is_empty())
    {
        queues.remove(list);
    }
}

/// A decision queue's item for an execution.
fn decision_item(key: &(String, String)) -> String {
    format!("{}\u{0}{}", key.0, key.1)
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
            max_open_executions: MAX_OPEN_EXECUTIONS,
            stopping,
            tasks: Background::new(halt),
        })
    }

    /// Waits for every timer this half started (they end at `halt`).
    pub(crate) async fn stopped(&self) {
        self.tasks.stopped().await;
    }

    /// A state whose domains hold at most `max_open` open executions.
    #[cfg(test)]
    pub(crate) fn with_max_open(max_open: usize) -> Arc<SwfState> {
        let mut state = SwfState::new(
            Duration::from_secs(60),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        Arc::get_mut(&mut state)
            .expect("not shared yet")
            .max_open_executions = max_open;
        state
    }

    /// Timers still running.
    #[cfg(test)]
    pub(crate) fn running_tasks(&self) -> usize {
        self.tasks.len()
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        lock(&self.model)
    }

    /// The SWF half of `/_local/state`: per domain and task list, the polls
    /// waiting and the tasks queued, for activity and decision tasks.
    pub(crate) fn page_state(&self) -> Value {
        let m = self.lock();
        let mut lists = Vec::new();
        for (name, d) in &m.domains {
            for (kind, queues) in [
                ("activity", &d.activity_queues),
                ("decision", &d.decision_queues),
            ] {
                for (list, q) in queues {
                    lists.push(json!({ "domain": name, "taskList": list, "kind": kind,
                                       "pollers": q.waiting, "queued": q.items.len() }));
                }
            }
        }
        // Named as the worker names them: `LIST/TYPE@VERSION`, with the
        // type's default task list (a task: the list it was scheduled on).
        let mut types = Vec::new();
        for (domain, d) in &m.domains {
            for ((name, version), rec) in &d.activity_types {
                let list = rec.config["defaultTaskList"]["name"].as_str();
                types.push(json!({ "domain": domain, "type": name, "version": version,
                                   "taskList": list,
                                   "name": list.map(|l| format!("{l}/{name}@{version}")),
                                   "deprecated": rec.deprecated.is_some() }));
            }
        }
        types.sort_by(|a, b| {
            (a["domain"].as_str(), a["name"].as_str())
                .cmp(&(b["domain"].as_str(), b["name"].as_str()))
        });
        let mut tasks: Vec<Value> = m
            .tasks
            .values()
            .map(|t| {
                let (name, version) = (t.activity_type["name"].as_str().unwrap_or(""), t.activity_type["version"].as_str().unwrap_or(""));
                json!({ "domain": t.domain, "name": format!("{}/{name}@{version}", t.task_list),
                        "workflowId": t.execution.0, "activityId": t.activity_id,
                        "status": if matches!(t.state, TaskState::Queued) { "queued" } else { "running" } })
            })
            .collect();
        tasks.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let open: usize = m.domains.values().map(|d| d.open_executions).sum();
        json!({ "taskLists": lists, "activityTypes": types, "tasks": tasks, "openExecutions": open, "activityTasks": m.tasks.len(),
                "decisionTasks": m.decisions.len() })
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
        crate::requests::length("domain", name, 1, 256)?;
        m.domains
            .get_mut(name)
            .ok_or_else(|| unknown(format!("Unknown domain: {name}")))
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
        q.items.push_back(decision_item(key));
        q.notify.notify_waiters();
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
            if let Some(d) = m.domains.get_mut(domain) {
                prune(queues(d), list);
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
}
