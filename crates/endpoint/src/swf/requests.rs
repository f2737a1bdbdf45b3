//! SWF requests, decoded and checked against the API reference before a
//! handler reads them (see [`crate::requests`] for why).

use crate::error::ApiError;
use crate::requests::{Validate, length, one_of, optional};
use serde::Deserialize;
use serde_json::Value;

/// Longest name, id, identity or reason (`String256` in the reference).
pub(crate) const MAX_NAME: usize = 256;
/// Longest input, result, details, control or execution context
/// (`Data` in the reference).
pub(crate) const MAX_DATA: usize = 32_768;
/// Most events a page may ask for.
const MAX_PAGE_SIZE: u32 = 1000;

/// The SWF rule for names of domains' task lists, types and ids: no `:`,
/// `/`, `|`, control characters, surrounding whitespace or the literal
/// `arn`.
pub(crate) fn swf_name(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    length(field, value, 1, max)?;
    let bad = value.contains([':', '/', '|'])
        || value
            .chars()
            .any(|c| c.is_control() || ('\u{7f}'..='\u{9f}').contains(&c))
        || value.trim() != value
        || value == "arn";
    if bad {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at '{field}' failed to satisfy constraint: it must \
             not contain ':', '/', '|' or control characters, start or end with whitespace, or be \
             the literal string 'arn'",
            value.escape_debug()
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TaskList {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TypeRef {
    pub name: String,
    pub version: String,
}

impl TypeRef {
    fn validate(&self, field: &str) -> Result<(), ApiError> {
        swf_name(&format!("{field}.name"), &self.name, MAX_NAME)?;
        swf_name(&format!("{field}.version"), &self.version, 64)
    }

    pub(crate) fn key(&self) -> (String, String) {
        (self.name.clone(), self.version.clone())
    }
}

/// `maximumPageSize`, at most [`MAX_PAGE_SIZE`].
fn page_size(n: Option<u32>) -> Result<(), ApiError> {
    if n.is_some_and(|n| n > MAX_PAGE_SIZE) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'maximumPageSize' failed to satisfy constraint: \
             Member must have value less than or equal to {MAX_PAGE_SIZE}"
        )));
    }
    Ok(())
}

fn domain(value: &str) -> Result<(), ApiError> {
    length("domain", value, 1, MAX_NAME)
}

fn swf_token(token: &str) -> Result<(), ApiError> {
    length("taskToken", token, 1, 1024)
}

/// An SWF timeout: `NONE` or whole seconds, at most 8 characters.
fn swf_timeout(field: &str, value: &Option<String>) -> Result<(), ApiError> {
    let Some(v) = value else { return Ok(()) };
    length(field, v, 0, 8)?;
    if v != "NONE" && v.parse::<u64>().is_err() {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at '{field}' failed to satisfy constraint: \
             it must be a number of seconds or NONE",
            v.escape_debug()
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PollForActivityTask {
    pub domain: String,
    pub task_list: TaskList,
    pub identity: Option<String>,
}

impl Validate for PollForActivityTask {
    fn validate(&self) -> Result<(), ApiError> {
        domain(&self.domain)?;
        swf_name("taskList.name", &self.task_list.name, MAX_NAME)?;
        optional("identity", &self.identity, 0, MAX_NAME)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CountPendingActivityTasks {
    pub domain: String,
    pub task_list: TaskList,
}

impl Validate for CountPendingActivityTasks {
    fn validate(&self) -> Result<(), ApiError> {
        domain(&self.domain)?;
        swf_name("taskList.name", &self.task_list.name, MAX_NAME)
    }
}

/// DescribeDomain, DeprecateDomain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DomainName {
    pub name: String,
}

impl Validate for DomainName {
    fn validate(&self) -> Result<(), ApiError> {
        length("name", &self.name, 1, MAX_NAME)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PollForDecisionTask {
    pub domain: String,
    pub task_list: TaskList,
    pub identity: Option<String>,
    pub next_page_token: Option<String>,
    pub maximum_page_size: Option<u32>,
    pub reverse_order: Option<bool>,
    pub start_at_previous_started_event: Option<bool>,
}

impl Validate for PollForDecisionTask {
    fn validate(&self) -> Result<(), ApiError> {
        domain(&self.domain)?;
        swf_name("taskList.name", &self.task_list.name, MAX_NAME)?;
        optional("identity", &self.identity, 0, MAX_NAME)?;
        optional("nextPageToken", &self.next_page_token, 0, 2048)?;
        if self.start_at_previous_started_event == Some(true) {
            return Err(ApiError::validation(
                "'startAtPreviousStartedEvent' is not implemented by this local endpoint: it always \
                 returns the whole history",
            ));
        }
        page_size(self.maximum_page_size)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RecordActivityTaskHeartbeat {
    pub task_token: String,
    pub details: Option<String>,
}

impl Validate for RecordActivityTaskHeartbeat {
    fn validate(&self) -> Result<(), ApiError> {
        swf_token(&self.task_token)?;
        optional("details", &self.details, 0, 2048)
    }
}

/// RespondActivityTaskCompleted / Failed / Canceled, one struct: each
/// operation's members are checked by [`RespondActivityTask::validate_for`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RespondActivityTask {
    pub task_token: String,
    pub result: Option<String>,
    pub reason: Option<String>,
    pub details: Option<String>,
}

/// Which of the three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    Completed,
    Failed,
    Canceled,
}

impl RespondActivityTask {
    pub(crate) fn parse(req: &Value, close: Close) -> Result<Self, ApiError> {
        let parsed: Self = serde_json::from_value(req.clone())
            .map_err(|e| ApiError::validation(format!("1 validation error detected: {e}")))?;
        swf_token(&parsed.task_token)?;
        let allowed = |field: &str, present: bool, ok: bool| {
            if present && !ok {
                Err(ApiError::validation(format!(
                    "'{field}' is not a member of this operation's request"
                )))
            } else {
                Ok(())
            }
        };
        allowed("result", parsed.result.is_some(), close == Close::Completed)?;
        allowed("reason", parsed.reason.is_some(), close == Close::Failed)?;
        allowed(
            "details",
            parsed.details.is_some(),
            close != Close::Completed,
        )?;
        optional("result", &parsed.result, 0, MAX_DATA)?;
        optional("reason", &parsed.reason, 0, MAX_NAME)?;
        optional("details", &parsed.details, 0, MAX_DATA)?;
        Ok(parsed)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RespondDecisionTaskCompleted {
    pub task_token: String,
    #[serde(default)]
    pub decisions: Vec<Decision>,
    pub execution_context: Option<String>,
    pub task_list: Option<TaskList>,
    pub task_list_schedule_to_start_timeout: Option<String>,
}

impl Validate for RespondDecisionTaskCompleted {
    fn validate(&self) -> Result<(), ApiError> {
        swf_token(&self.task_token)?;
        optional("executionContext", &self.execution_context, 0, MAX_DATA)?;
        if let Some(list) = &self.task_list {
            swf_name("taskList.name", &list.name, MAX_NAME)?;
        }
        if self.task_list_schedule_to_start_timeout.is_some() {
            return Err(ApiError::validation(
                "'taskListScheduleToStartTimeout' is not implemented by this local endpoint",
            ));
        }
        for (i, d) in self.decisions.iter().enumerate() {
            d.validate(i + 1)?;
        }
        Ok(())
    }
}

/// One decision. The attribute member must match the type; the endpoint
/// implements the three decisions activity workflows need and refuses the
/// others (and so the whole request) before applying anything.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Decision {
    pub decision_type: String,
    pub schedule_activity_task_decision_attributes: Option<ScheduleActivityTask>,
    pub request_cancel_activity_task_decision_attributes: Option<RequestCancelActivityTask>,
    pub complete_workflow_execution_decision_attributes: Option<CompleteWorkflowExecution>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A decision the endpoint applies.
#[derive(Debug)]
pub(crate) enum Decided<'a> {
    Schedule(&'a ScheduleActivityTask),
    RequestCancel(&'a RequestCancelActivityTask),
    Complete(Option<&'a CompleteWorkflowExecution>),
}

impl Decision {
    fn validate(&self, n: usize) -> Result<(), ApiError> {
        let missing = |member: &str| {
            ApiError::validation(format!(
                "1 validation error detected: decision {n} ({}) needs '{member}'",
                self.decision_type
            ))
        };
        match self.decision_type.as_str() {
            "ScheduleActivityTask" => self
                .schedule_activity_task_decision_attributes
                .as_ref()
                .ok_or_else(|| missing("scheduleActivityTaskDecisionAttributes"))?
                .validate(),
            "RequestCancelActivityTask" => {
                let a = self
                    .request_cancel_activity_task_decision_attributes
                    .as_ref()
                    .ok_or_else(|| missing("requestCancelActivityTaskDecisionAttributes"))?;
                length("activityId", &a.activity_id, 1, MAX_NAME)
            }
            "CompleteWorkflowExecution" => {
                let result = self
                    .complete_workflow_execution_decision_attributes
                    .as_ref()
                    .and_then(|a| a.result.clone());
                optional("result", &result, 0, MAX_DATA)
            }
            other => Err(ApiError::validation(format!(
                "decision {n} has type {other:?}, which this local endpoint does not implement \
                 (it implements ScheduleActivityTask, RequestCancelActivityTask and \
                 CompleteWorkflowExecution); nothing in this request was applied"
            ))),
        }?;
        if let Some(extra) = self.other.keys().next() {
            return Err(ApiError::validation(format!(
                "decision {n} ({}) has member '{extra}', which does not belong to it",
                self.decision_type
            )));
        }
        Ok(())
    }

    /// The decision, once the request validated.
    pub(crate) fn decided(&self) -> Decided<'_> {
        match self.decision_type.as_str() {
            "ScheduleActivityTask" => Decided::Schedule(
                self.schedule_activity_task_decision_attributes
                    .as_ref()
                    .expect("validated"),
            ),
            "RequestCancelActivityTask" => Decided::RequestCancel(
                self.request_cancel_activity_task_decision_attributes
                    .as_ref()
                    .expect("validated"),
            ),
            _ => Decided::Complete(
                self.complete_workflow_execution_decision_attributes
                    .as_ref(),
            ),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ScheduleActivityTask {
    pub activity_type: TypeRef,
    pub activity_id: String,
    pub control: Option<String>,
    pub input: Option<String>,
    pub schedule_to_close_timeout: Option<String>,
    pub task_list: Option<TaskList>,
    pub task_priority: Option<String>,
    pub schedule_to_start_timeout: Option<String>,
    pub start_to_close_timeout: Option<String>,
    pub heartbeat_timeout: Option<String>,
}

impl ScheduleActivityTask {
    fn validate(&self) -> Result<(), ApiError> {
        self.activity_type.validate("activityType")?;
        swf_name("activityId", &self.activity_id, MAX_NAME)?;
        optional("control", &self.control, 0, MAX_DATA)?;
        optional("input", &self.input, 0, MAX_DATA)?;
        if let Some(list) = &self.task_list {
            swf_name("taskList.name", &list.name, MAX_NAME)?;
        }
        optional("taskPriority", &self.task_priority, 0, 11)?;
        swf_timeout("scheduleToCloseTimeout", &self.schedule_to_close_timeout)?;
        swf_timeout("scheduleToStartTimeout", &self.schedule_to_start_timeout)?;
        swf_timeout("startToCloseTimeout", &self.start_to_close_timeout)?;
        swf_timeout("heartbeatTimeout", &self.heartbeat_timeout)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RequestCancelActivityTask {
    pub activity_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CompleteWorkflowExecution {
    pub result: Option<String>,
}

// SWF control plane.

fn description(value: &Option<String>) -> Result<(), ApiError> {
    optional("description", value, 0, 1024)
}

/// RegisterActivityType and RegisterWorkflowType: the members both have
/// (and their checks, in `validate_shared`), then each one's own. A macro,
/// because `deny_unknown_fields` rules out a flattened shared struct.
macro_rules! type_registration {
    ($name:ident { $($field:ident: $ty:ty,)* }) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub(crate) struct $name {
            pub domain: String,
            pub name: String,
            pub version: String,
            pub description: Option<String>,
            pub default_task_start_to_close_timeout: Option<String>,
            pub default_task_list: Option<TaskList>,
            pub default_task_priority: Option<String>,
            $(pub $field: $ty,)*
        }

        impl $name {
            fn validate_shared(&self) -> Result<(), ApiError> {
                domain(&self.domain)?;
                swf_name("name", &self.name, MAX_NAME)?;
                swf_name("version", &self.version, 64)?;
                description(&self.description)?;
                if let Some(list) = &self.default_task_list {
                    swf_name("defaultTaskList.name", &list.name, MAX_NAME)?;
                }
                optional("defaultTaskPriority", &self.default_task_priority, 0, 11)?;
                swf_timeout(
                    "defaultTaskStartToCloseTimeout",
                    &self.default_task_start_to_close_timeout,
                )
            }
        }
    };
}

const CHILD_POLICIES: &[&str] = &["TERMINATE", "REQUEST_CANCEL", "ABANDON"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RegisterDomain {
    pub name: String,
    pub description: Option<String>,
    pub workflow_execution_retention_period_in_days: String,
    #[serde(rename = "tags")]
    _tags: Option<Vec<Value>>,
}

impl Validate for RegisterDomain {
    fn validate(&self) -> Result<(), ApiError> {
        swf_name("name", &self.name, MAX_NAME)?;
        description(&self.description)?;
        length(
            "workflowExecutionRetentionPeriodInDays",
            &self.workflow_execution_retention_period_in_days,
            1,
            8,
        )
    }
}

type_registration!(RegisterActivityType {
    default_task_heartbeat_timeout: Option<String>,
    default_task_schedule_to_start_timeout: Option<String>,
    default_task_schedule_to_close_timeout: Option<String>,
});

impl Validate for RegisterActivityType {
    fn validate(&self) -> Result<(), ApiError> {
        self.validate_shared()?;
        swf_timeout(
            "defaultTaskHeartbeatTimeout",
            &self.default_task_heartbeat_timeout,
        )?;
        swf_timeout(
            "defaultTaskScheduleToStartTimeout",
            &self.default_task_schedule_to_start_timeout,
        )?;
        swf_timeout(
            "defaultTaskScheduleToCloseTimeout",
            &self.default_task_schedule_to_close_timeout,
        )
    }
}

/// DescribeActivityType, DeprecateActivityType.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ActivityTypeRef {
    pub domain: String,
    pub activity_type: TypeRef,
}

impl Validate for ActivityTypeRef {
    fn validate(&self) -> Result<(), ApiError> {
        domain(&self.domain)?;
        self.activity_type.validate("activityType")
    }
}

type_registration!(RegisterWorkflowType {
    default_execution_start_to_close_timeout: Option<String>,
    default_child_policy: Option<String>,
    default_lambda_role: Option<String>,
});

impl Validate for RegisterWorkflowType {
    fn validate(&self) -> Result<(), ApiError> {
        self.validate_shared()?;
        swf_timeout(
            "defaultExecutionStartToCloseTimeout",
            &self.default_execution_start_to_close_timeout,
        )?;
        one_of(
            "defaultChildPolicy",
            &self.default_child_policy,
            CHILD_POLICIES,
        )?;
        optional("defaultLambdaRole", &self.default_lambda_role, 1, 1224)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StartWorkflowExecution {
    pub domain: String,
    pub workflow_id: String,
    pub workflow_type: TypeRef,
    pub task_list: Option<TaskList>,
    pub task_priority: Option<String>,
    pub input: Option<String>,
    pub execution_start_to_close_timeout: Option<String>,
    pub tag_list: Option<Vec<String>>,
    pub task_start_to_close_timeout: Option<String>,
    pub child_policy: Option<String>,
    pub lambda_role: Option<String>,
}

impl Validate for StartWorkflowExecution {
    fn validate(&self) -> Result<(), ApiError> {
        domain(&self.domain)?;
        swf_name("workflowId", &self.workflow_id, MAX_NAME)?;
        self.workflow_type.validate("workflowType")?;
        if let Some(list) = &self.task_list {
            swf_name("taskList.name", &list.name, MAX_NAME)?;
        }
        optional("taskPriority", &self.task_priority, 0, 11)?;
        optional("input", &self.input, 0, MAX_DATA)?;
        swf_timeout(
            "executionStartToCloseTimeout",
            &self.execution_start_to_close_timeout,
        )?;
        swf_timeout("taskStartToCloseTimeout", &self.task_start_to_close_timeout)?;
        let tag_list = self.tag_list.as_deref().unwrap_or_default();
        if tag_list.len() > 5 {
            return Err(ApiError::validation(
                "1 validation error detected: Value at 'tagList' failed to satisfy constraint: \
                 Member must have length less than or equal to 5",
            ));
        }
        for tag in tag_list {
            length("tagList.member", tag, 0, MAX_NAME)?;
        }
        one_of("childPolicy", &self.child_policy, CHILD_POLICIES)?;
        optional("lambdaRole", &self.lambda_role, 1, 1224)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SignalWorkflowExecution {
    pub domain: String,
    pub workflow_id: String,
    pub run_id: Option<String>,
    pub signal_name: String,
    pub input: Option<String>,
}

impl Validate for SignalWorkflowExecution {
    fn validate(&self) -> Result<(), ApiError> {
        domain(&self.domain)?;
        length("workflowId", &self.workflow_id, 1, MAX_NAME)?;
        optional("runId", &self.run_id, 0, 64)?;
        length("signalName", &self.signal_name, 1, MAX_NAME)?;
        optional("input", &self.input, 0, MAX_DATA)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ExecutionRef {
    pub workflow_id: String,
    pub run_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GetWorkflowExecutionHistory {
    pub domain: String,
    pub execution: ExecutionRef,
    pub next_page_token: Option<String>,
    pub maximum_page_size: Option<u32>,
    pub reverse_order: Option<bool>,
}

impl Validate for GetWorkflowExecutionHistory {
    fn validate(&self) -> Result<(), ApiError> {
        domain(&self.domain)?;
        length(
            "execution.workflowId",
            &self.execution.workflow_id,
            1,
            MAX_NAME,
        )?;
        optional("execution.runId", &self.execution.run_id, 0, 64)?;
        optional("nextPageToken", &self.next_page_token, 0, 2048)?;
        page_size(self.maximum_page_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::{parse, refused};
    use serde_json::json;

    #[test]
    fn worker_names_and_tokens_have_documented_lengths() {
        refused::<RecordActivityTaskHeartbeat>(json!({"taskToken": "t".repeat(1025)}));
    }

    #[test]
    fn swf_task_list_names_follow_the_reference() {
        for bad in [
            "", "a:b", "a/b", "a|b", "a\u{1}b", "a\u{85}b", " a", "a ", "arn",
        ] {
            let m =
                refused::<PollForActivityTask>(json!({"domain": "d", "taskList": {"name": bad}}));
            assert!(m.contains("taskList.name"), "{m}");
        }
        refused::<PollForActivityTask>(
            json!({"domain": "d", "taskList": {"name": "x".repeat(257)}}),
        );
        refused::<PollForActivityTask>(
            json!({"domain": "d".repeat(257), "taskList": {"name": "l"}}),
        );
        refused::<PollForActivityTask>(
            json!({"domain": "d", "taskList": {"name": "l"}, "identity": "i".repeat(257)}),
        );
        parse::<PollForActivityTask>(&json!({"domain": "d", "taskList": {"name": "arnold"}}))
            .unwrap();
    }

    #[test]
    fn decisions_are_validated_whole_before_any_is_applied() {
        let schedule = json!({"decisionType": "ScheduleActivityTask", "scheduleActivityTaskDecisionAttributes": {
            "activityType": {"name": "t", "version": "1"}, "activityId": "a1"}});
        let ok: RespondDecisionTaskCompleted =
            parse(&json!({"taskToken": "t", "decisions": [schedule.clone()]})).unwrap();
        assert!(matches!(ok.decisions[0].decided(), Decided::Schedule(_)));
        let m = refused::<RespondDecisionTaskCompleted>(json!({"taskToken": "t", "decisions": [
            schedule, {"decisionType": "StartTimer", "startTimerDecisionAttributes": {"timerId": "x", "startToFireTimeout": "5"}}
        ]}));
        assert!(
            m.contains("StartTimer") && m.contains("nothing in this request was applied"),
            "{m}"
        );
        refused::<RespondDecisionTaskCompleted>(json!({"taskToken": "t", "decisions": [
            {"decisionType": "ScheduleActivityTask"}
        ]}));
        refused::<RespondDecisionTaskCompleted>(json!({"taskToken": "t", "decisions": [
            {"decisionType": "ScheduleActivityTask", "scheduleActivityTaskDecisionAttributes": {
                "activityType": {"name": "t", "version": "1"}, "activityId": "a1", "heartbeatTimeout": "soon"}}
        ]}));
    }

    #[test]
    fn control_plane_members_are_checked_too() {
        refused::<RegisterDomain>(
            json!({"name": "a:b", "workflowExecutionRetentionPeriodInDays": "1"}),
        );
        refused::<StartWorkflowExecution>(json!({"domain": "d", "workflowId": "w",
            "workflowType": {"name": "w", "version": "1"}, "tagList": ["t", "t", "t", "t", "t", "t"]}));
        refused::<SignalWorkflowExecution>(
            json!({"domain": "d", "workflowId": "w", "signalName": "s".repeat(257)}),
        );
        refused::<RegisterActivityType>(
            json!({"domain": "d", "name": "t", "version": "1", "defaultTaskHeartbeatTimeout": "soon"}),
        );
    }

    #[test]
    fn each_respond_operation_takes_only_its_members() {
        let token = json!("t");
        assert!(
            RespondActivityTask::parse(
                &json!({"taskToken": token, "result": "r"}),
                Close::Completed
            )
            .is_ok()
        );
        assert!(
            RespondActivityTask::parse(
                &json!({"taskToken": token, "reason": "r"}),
                Close::Completed
            )
            .is_err()
        );
        assert!(
            RespondActivityTask::parse(
                &json!({"taskToken": token, "reason": "x".repeat(257)}),
                Close::Failed
            )
            .is_err()
        );
        assert!(
            RespondActivityTask::parse(
                &json!({"taskToken": token, "details": "d"}),
                Close::Canceled
            )
            .is_ok()
        );
        assert!(RespondActivityTask::parse(&json!({"taskToken": ""}), Close::Canceled).is_err());
    }
}
