//! State machines and executions as clients see them. Starting an execution
//! only records it and hands it to its [driver](super::driver); everything
//! after that is observed through the history the driver's hooks append.

use super::driver;
use super::{
    Ended, ExecutionRec, MachineRec, Shared, asl, check_name, execution_missing, is_json,
    machine_missing, now, page,
};
use crate::error::ApiError;
use crate::requests::parse;
use crate::sfn::requests;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

impl Shared {
    pub(crate) fn create_state_machine(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::CreateStateMachine = parse(req)?;
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
        let r: requests::StateMachineArn = parse(req)?;
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
        let r: requests::ListPage = parse(req)?;
        let m = self.lock();
        let all: Vec<Value> = m
            .machines
            .iter()
            .map(|(arn, sm)| json!({ "stateMachineArn": arn, "name": sm.name, "type": "STANDARD", "creationDate": sm.created }))
            .collect();
        page(all, r.max_results, r.next_token.as_deref(), "stateMachines")
    }

    pub(crate) fn delete_state_machine(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::StateMachineArn = parse(req)?;
        let arn = r.state_machine_arn.as_str();
        self.check_arn(arn, "stateMachine")?;
        self.lock().machines.remove(arn);
        Ok(json!({}))
    }

    pub(crate) fn start_execution(self: &Arc<Self>, req: &Value) -> Result<Value, ApiError> {
        let r: requests::StartExecution = parse(req)?;
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
        self.drivers
            .spawn(driver::drive(self.clone(), arn.clone(), definition, input));
        Ok(json!({ "executionArn": arn, "startDate": start }))
    }

    pub(crate) fn describe_execution(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::DescribeExecution = parse(req)?;
        let arn = r.execution_arn.as_str();
        self.check_arn(arn, "execution")?;
        let m = self.lock();
        let e = m.execution(arn)?;
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
        let r: requests::ListExecutions = parse(req)?;
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
        let r: requests::GetExecutionHistory = parse(req)?;
        let arn = r.execution_arn.as_str();
        self.check_arn(arn, "execution")?;
        let m = self.lock();
        let e = m.execution(arn)?;
        let mut events = e.events.clone();
        if r.reverse_order.unwrap_or(false) {
            events.reverse();
        }
        page(events, r.max_results, r.next_token.as_deref(), "events")
    }

    pub(crate) fn stop_execution(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::StopExecution = parse(req)?;
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
}
