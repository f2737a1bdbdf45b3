//! Driving SWF for the tests: a domain per test, activity and workflow
//! types, and a small decider that schedules one activity per workflow and
//! closes the workflow when the activity closes.

use crate::support::{REGION, Service, unique};
use aws_sdk_swf::Client;
use aws_sdk_swf::types::{
    ActivityType, Decision, DecisionType, EventType, HistoryEvent,
    ScheduleActivityTaskDecisionAttributes, TaskList, WorkflowExecution, WorkflowType,
};
use std::time::{Duration, Instant};

pub const WORKFLOW: &str = "wasm-activity-test-workflow";
pub const DECISIONS: &str = "decisions";

pub struct Swf {
    pub client: Client,
    pub domain: String,
}

fn task_list(name: &str) -> TaskList {
    TaskList::builder().name(name).build().unwrap()
}

pub fn activity_type(name: &str, version: &str) -> ActivityType {
    ActivityType::builder()
        .name(name)
        .version(version)
        .build()
        .unwrap()
}

impl Swf {
    /// A fresh domain with the test workflow type registered.
    pub async fn connect(service: &Service) -> Swf {
        let conf = aws_sdk_swf::config::Builder::new()
            .behavior_version(aws_sdk_swf::config::BehaviorVersion::latest())
            .region(aws_sdk_swf::config::Region::new(REGION))
            .endpoint_url(&service.url)
            .credentials_provider(aws_sdk_swf::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        let client = Client::from_conf(conf);
        let domain = unique("dom");
        client
            .register_domain()
            .name(&domain)
            .workflow_execution_retention_period_in_days("1")
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the SWF endpoint {} does not answer ({}); run the tests with scripts/test.sh",
                    service.url,
                    aws_sdk_swf::error::DisplayErrorContext(e)
                )
            });
        client
            .register_workflow_type()
            .domain(&domain)
            .name(WORKFLOW)
            .version("1")
            .default_task_list(task_list(DECISIONS))
            .default_execution_start_to_close_timeout("600")
            .default_task_start_to_close_timeout("30")
            .default_child_policy(aws_sdk_swf::types::ChildPolicy::Terminate)
            .send()
            .await
            .unwrap();
        Swf { client, domain }
    }

    /// Registers an activity type with a heartbeat timeout.
    pub async fn register_activity(&self, name: &str, version: &str, heartbeat_timeout_s: u32) {
        self.register_activity_with(name, version, heartbeat_timeout_s, 120)
            .await
    }

    /// Starts a workflow whose decider will schedule `activity` on
    /// `task_list` with `input`.
    pub async fn start(
        &self,
        activity: &ActivityType,
        activities_list: &str,
        input: &str,
    ) -> WorkflowExecution {
        let workflow_id = unique("wf");
        // The decider reads what to schedule from the workflow input.
        let plan = serde_json::json!({
            "type": activity.name(), "version": activity.version(), "task_list": activities_list, "input": input
        });
        let out = self
            .client
            .start_workflow_execution()
            .domain(&self.domain)
            .workflow_id(&workflow_id)
            .workflow_type(
                WorkflowType::builder()
                    .name(WORKFLOW)
                    .version("1")
                    .build()
                    .unwrap(),
            )
            .task_list(task_list(DECISIONS))
            .input(plan.to_string())
            .send()
            .await
            .unwrap();
        WorkflowExecution::builder()
            .workflow_id(workflow_id)
            .run_id(out.run_id().unwrap_or_default())
            .build()
            .unwrap()
    }

    /// Runs the decider for this domain until dropped.
    pub fn decider(&self) -> Decider {
        let (client, domain) = (self.client.clone(), self.domain.clone());
        Decider(tokio::spawn(async move {
            loop {
                if let Err(e) = decide_once(&client, &domain).await {
                    eprintln!("decider: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }))
    }

    pub async fn history(&self, execution: &WorkflowExecution) -> Vec<HistoryEvent> {
        let out = self
            .client
            .get_workflow_execution_history()
            .domain(&self.domain)
            .execution(execution.clone())
            .send()
            .await
            .unwrap();
        out.events().to_vec()
    }

    /// Waits for the activity of `execution` to close; returns its closing event.
    pub async fn wait_activity_closed(
        &self,
        execution: &WorkflowExecution,
        timeout: Duration,
    ) -> HistoryEvent {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.history(execution).await;
            if let Some(e) = events.iter().find(|e| {
                matches!(
                    e.event_type(),
                    EventType::ActivityTaskCompleted
                        | EventType::ActivityTaskFailed
                        | EventType::ActivityTaskTimedOut
                        | EventType::ActivityTaskCanceled
                )
            }) {
                return e.clone();
            }
            let types: Vec<&str> = events.iter().map(|e| e.event_type().as_str()).collect();
            assert!(
                Instant::now() < deadline,
                "activity still open after {timeout:?}: {types:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Signals the workflow; the test decider turns a signal into a cancel
    /// request for its activity.
    pub async fn signal_cancel(&self, execution: &WorkflowExecution) {
        self.client
            .signal_workflow_execution()
            .domain(&self.domain)
            .workflow_id(execution.workflow_id())
            .run_id(execution.run_id())
            .signal_name("cancel")
            .send()
            .await
            .unwrap();
    }

    /// Registers an activity type with explicit heartbeat and start-to-close timeouts.
    pub async fn register_activity_with(
        &self,
        name: &str,
        version: &str,
        heartbeat_s: u32,
        start_to_close_s: u32,
    ) {
        self.client
            .register_activity_type()
            .domain(&self.domain)
            .name(name)
            .version(version)
            .default_task_heartbeat_timeout(heartbeat_s.to_string())
            .default_task_start_to_close_timeout(start_to_close_s.to_string())
            .default_task_schedule_to_start_timeout("120")
            .default_task_schedule_to_close_timeout("240")
            .send()
            .await
            .unwrap();
    }

    /// Waits until a worker has started the activity of `execution`.
    pub async fn wait_activity_started(&self, execution: &WorkflowExecution, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self
            .history(execution)
            .await
            .iter()
            .any(|e| e.event_type() == &EventType::ActivityTaskStarted)
        {
            assert!(
                Instant::now() < deadline,
                "no worker started the activity within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The decider task; aborted on drop.
pub struct Decider(tokio::task::JoinHandle<()>);

impl Drop for Decider {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn decide_once(client: &Client, domain: &str) -> Result<(), String> {
    let task = client
        .poll_for_decision_task()
        .domain(domain)
        .task_list(task_list(DECISIONS))
        .identity("test-decider")
        .send()
        .await
        .map_err(|e| aws_sdk_swf::error::DisplayErrorContext(e).to_string())?;
    if task.task_token().is_empty() {
        return Ok(());
    }
    let events = task.events();
    let has = |t: EventType| events.iter().any(|e| e.event_type() == &t);
    let mut decisions = Vec::new();
    if !has(EventType::ActivityTaskScheduled) {
        let started = events
            .iter()
            .find_map(|e| e.workflow_execution_started_event_attributes())
            .ok_or("no WorkflowExecutionStarted event")?;
        let plan: serde_json::Value =
            serde_json::from_str(started.input().unwrap_or("{}")).map_err(|e| e.to_string())?;
        let attributes = ScheduleActivityTaskDecisionAttributes::builder()
            .activity_type(activity_type(
                plan["type"].as_str().unwrap(),
                plan["version"].as_str().unwrap(),
            ))
            .activity_id("work")
            .task_list(task_list(plan["task_list"].as_str().unwrap()))
            .input(plan["input"].as_str().unwrap())
            .build()
            .map_err(|e| e.to_string())?;
        decisions.push(
            Decision::builder()
                .decision_type(DecisionType::ScheduleActivityTask)
                .schedule_activity_task_decision_attributes(attributes)
                .build()
                .map_err(|e| e.to_string())?,
        );
    } else if has(EventType::WorkflowExecutionSignaled)
        && !has(EventType::ActivityTaskCancelRequested)
        && !has(EventType::ActivityTaskCompleted)
        && !has(EventType::ActivityTaskFailed)
        && !has(EventType::ActivityTaskCanceled)
    {
        // A "cancel" signal: ask the running activity to stop.
        let attributes = aws_sdk_swf::types::RequestCancelActivityTaskDecisionAttributes::builder()
            .activity_id("work")
            .build()
            .map_err(|e| e.to_string())?;
        decisions.push(
            Decision::builder()
                .decision_type(DecisionType::RequestCancelActivityTask)
                .request_cancel_activity_task_decision_attributes(attributes)
                .build()
                .map_err(|e| e.to_string())?,
        );
    } else if has(EventType::ActivityTaskCompleted)
        || has(EventType::ActivityTaskFailed)
        || has(EventType::ActivityTaskTimedOut)
        || has(EventType::ActivityTaskCanceled)
    {
        decisions.push(
            Decision::builder()
                .decision_type(DecisionType::CompleteWorkflowExecution)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    client
        .respond_decision_task_completed()
        .task_token(task.task_token())
        .set_decisions(Some(decisions))
        .send()
        .await
        .map_err(|e| aws_sdk_swf::error::DisplayErrorContext(e).to_string())?;
    Ok(())
}
