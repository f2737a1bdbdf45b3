//! Workflow executions and the decider's side: starting and signalling a
//! workflow, its history, and decision tasks. Decisions are applied whole
//! or not at all, so a decider whose request is refused can fix it and
//! send it again with the same token.

use super::requests::{self, Decided};
use super::{
    ActivityTask, Domain, Execution, SwfState, TOKEN_PREFIX, TaskState, queue, timeout, unknown,
};
use crate::error::ApiError;
use crate::requests::parse;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

impl SwfState {
    pub(super) fn start_workflow_execution(self: &Arc<Self>, r: &Value) -> Result<Value, ApiError> {
        let r: requests::StartWorkflowExecution = parse(r)?;
        let workflow_id = r.workflow_id;
        let wtype = r.workflow_type.key();
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        Self::not_deprecated(d, &r.domain)?;
        let defaults = d.workflow_types.get(&wtype).cloned().ok_or_else(|| {
            unknown(format!(
                "Unknown type: WorkflowType=[name={}, version={}]",
                wtype.0, wtype.1
            ))
        })?;
        let undefined = |what: &str| {
            ApiError::bad_request(
                "DefaultUndefinedFault",
                format!(
                    "no {what} for workflow {}: pass it to StartWorkflowExecution or register \
                     WorkflowType=[name={}, version={}] with a default",
                    workflow_id, wtype.0, wtype.1
                ),
            )
        };
        let task_list = r
            .task_list
            .map(|l| l.name)
            .or(defaults.default_task_list)
            .ok_or_else(|| undefined("taskList"))?;
        // AWS takes no NONE here: every execution ends within its timeout.
        let execution_timeout = r
            .execution_start_to_close_timeout
            .or(defaults.default_execution_start_to_close)
            .filter(|t| t != "NONE")
            .ok_or_else(|| undefined("executionStartToCloseTimeout"))?;
        let task_timeout = r
            .task_start_to_close_timeout
            .or(defaults.default_task_start_to_close)
            .ok_or_else(|| undefined("taskStartToCloseTimeout"))?;
        if d.open_executions >= self.max_open_executions {
            return Err(ApiError::bad_request(
                "LimitExceededFault",
                format!(
                    "domain {} already has {} open workflow executions; close some before \
                     starting more",
                    r.domain, self.max_open_executions
                ),
            ));
        }
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
        let closing = CancellationToken::new();
        let mut e = Execution {
            workflow_type: json!({ "name": wtype.0, "version": wtype.1 }),
            task_list: task_list.clone(),
            events: Vec::new(),
            open: true,
            closing: closing.clone(),
            decision_timeout: timeout(Some(task_timeout.as_str())),
            decision_pending: false,
            needs_decision: false,
            activities: HashMap::new(),
        };
        let mut attrs = json!({ "taskList": { "name": task_list }, "workflowType": e.workflow_type, "childPolicy": "TERMINATE",
                                "executionStartToCloseTimeout": execution_timeout, "taskStartToCloseTimeout": task_timeout });
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
        d.open_executions += 1;
        Self::need_decision(d, &key);
        drop(m);
        if let Some(limit) = timeout(Some(execution_timeout.as_str())) {
            let (state, domain) = (self.clone(), r.domain);
            self.tasks.spawn(async move {
                tokio::select! {
                    () = closing.cancelled() => {}
                    () = tokio::time::sleep(limit) => state.execution_timed_out(&domain, key),
                }
            });
        }
        Ok(json!({ "runId": run_id }))
    }

    /// The execution's start-to-close timeout ran out: AWS closes it with
    /// WorkflowExecutionTimedOut.
    fn execution_timed_out(&self, domain: &str, key: (String, String)) {
        let mut m = self.lock();
        let Some(e) = m
            .domains
            .get_mut(domain)
            .and_then(|d| d.executions.get_mut(&key))
            .filter(|e| e.open)
        else {
            return;
        };
        e.push(
            "WorkflowExecutionTimedOut",
            "workflowExecutionTimedOutEventAttributes",
            json!({ "timeoutType": "START_TO_CLOSE", "childPolicy": "TERMINATE" }),
        );
        m.close_execution(domain, key);
    }

    /// A started decision task was not answered within its start-to-close
    /// timeout: its token stops working and a new decision task is
    /// scheduled, as on AWS.
    fn decision_timed_out(&self, token: &str) {
        let mut m = self.lock();
        let Some((domain, w, run, started, _)) = m.decisions.remove(token) else {
            return;
        };
        let key = (w, run);
        let Some(d) = m.domains.get_mut(&domain) else {
            return;
        };
        let Some(e) = d.executions.get_mut(&key).filter(|e| e.open) else {
            return;
        };
        let scheduled = Self::scheduled_of(e, started);
        e.push(
            "DecisionTaskTimedOut",
            "decisionTaskTimedOutEventAttributes",
            json!({ "timeoutType": "START_TO_CLOSE", "scheduledEventId": scheduled, "startedEventId": started }),
        );
        e.decision_pending = false;
        e.needs_decision = false;
        Self::need_decision(d, &key);
    }

    /// The DecisionTaskScheduled event id of the decision task started at
    /// event `started`.
    fn scheduled_of(e: &Execution, started: i64) -> Value {
        e.events
            .iter()
            .find(|ev| ev["eventId"] == started)
            .and_then(|ev| {
                ev.pointer("/decisionTaskStartedEventAttributes/scheduledEventId")
                    .cloned()
            })
            .unwrap_or(json!(0))
    }

    pub(super) fn find_execution(
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

    pub(super) fn signal_workflow_execution(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::SignalWorkflowExecution = parse(r)?;
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

    pub(super) fn history(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::GetWorkflowExecutionHistory = parse(r)?;
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

    pub(super) async fn poll_for_decision_task(
        self: &Arc<Self>,
        r: &Value,
    ) -> Result<Value, ApiError> {
        let r: requests::PollForDecisionTask = parse(r)?;
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
                    let limit = e.decision_timeout;
                    let done = CancellationToken::new();
                    let mut events = e.events.clone();
                    if reverse {
                        events.reverse();
                    }
                    let out = json!({
                        "taskToken": token, "startedEventId": started,
                        "workflowExecution": { "workflowId": key.0, "runId": key.1 },
                        "workflowType": e.workflow_type, "events": events,
                    });
                    m.decisions.insert(
                        token.clone(),
                        (domain.clone(), key.0, key.1, started, done.clone()),
                    );
                    Some((out, token, limit, done))
                },
            )
            .await?;
        let Some((out, token, limit, done)) = found else {
            return Ok(json!({ "taskToken": "", "startedEventId": 0, "events": [] }));
        };
        // Started here, with no await since the token was issued: a
        // dropped connection cannot leave a token without its clock.
        if let Some(limit) = limit {
            let state = self.clone();
            self.tasks.spawn(async move {
                tokio::select! {
                    () = done.cancelled() => {}
                    () = tokio::time::sleep(limit) => state.decision_timed_out(&token),
                }
            });
        }
        Ok(out)
    }

    /// Applies a decider's decisions, all or nothing: the request is decoded
    /// and every decision validated before the decision task is consumed or
    /// any event is recorded, so a refused request can be corrected and sent
    /// again with the same token.
    pub(super) fn respond_decision_task_completed(
        self: &Arc<Self>,
        r: &Value,
    ) -> Result<Value, ApiError> {
        let r: requests::RespondDecisionTaskCompleted = parse(r)?;
        let mut m = self.lock();
        let (domain, w, run, started, done) = m
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
        done.cancel();
        let mut scheduled_tasks = Vec::new();
        let mut cancels = Vec::new();
        let mut closed = false;
        {
            let d = Self::domain(&mut m, &domain)?;
            let types = d.activity_types.clone();
            let e = d.executions.get_mut(&key).expect("checked above");
            let scheduled = Self::scheduled_of(e, started);
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
                if closed {
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
                        // Closed below, with its tasks.
                        closed = true;
                    }
                }
            }
            if std::mem::take(&mut e.needs_decision) && !closed {
                Self::need_decision(d, &key);
            }
        }
        // Tasks scheduled by this request exist before its cancels apply:
        // a cancel may name one of them.
        for (token, task) in scheduled_tasks {
            let (list, wake, task_closed) = (
                task.task_list.clone(),
                task.wake.clone(),
                task.closed.clone(),
            );
            m.tasks.insert(token.clone(), task);
            let d = Self::domain(&mut m, &domain)?;
            let q = queue(&mut d.activity_queues, &list);
            q.items.push_back(token.clone());
            q.notify.notify_waiters();
            self.watch(token, wake, task_closed);
        }
        for token in cancels {
            self.cancel_requested_locked(&mut m, &token);
        }
        if closed {
            // A closed execution's activity tasks are closed with it: their
            // workers' next calls get UnknownResourceFault.
            m.close_execution(&domain, key);
        }
        Ok(json!({}))
    }
}
