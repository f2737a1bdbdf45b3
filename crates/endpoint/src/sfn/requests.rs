//! Step Functions requests, decoded and checked against the API reference
//! before a handler reads them (see [`crate::requests`] for why).

use super::MAX_PAYLOAD;
use crate::error::ApiError;
use crate::requests::{Validate, length, one_of, optional, page};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GetActivityTask {
    pub activity_arn: String,
    pub worker_name: Option<String>,
}

impl Validate for GetActivityTask {
    fn validate(&self) -> Result<(), ApiError> {
        length("activityArn", &self.activity_arn, 1, 256)?;
        optional("workerName", &self.worker_name, 1, 80)
    }
}

fn sfn_token(token: &str) -> Result<(), ApiError> {
    length("taskToken", token, 1, 2048)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SendTaskHeartbeat {
    pub task_token: String,
}

impl Validate for SendTaskHeartbeat {
    fn validate(&self) -> Result<(), ApiError> {
        sfn_token(&self.task_token)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SendTaskSuccess {
    pub task_token: String,
    pub output: String,
}

impl Validate for SendTaskSuccess {
    fn validate(&self) -> Result<(), ApiError> {
        sfn_token(&self.task_token)?;
        length("output", &self.output, 0, MAX_PAYLOAD)?;
        if self.output.len() > MAX_PAYLOAD {
            return Err(ApiError::validation(format!(
                "'output' is {} bytes; at most {MAX_PAYLOAD} are allowed",
                self.output.len()
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SendTaskFailure {
    pub task_token: String,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Validate for SendTaskFailure {
    fn validate(&self) -> Result<(), ApiError> {
        sfn_token(&self.task_token)?;
        optional("error", &self.error, 0, 256)?;
        optional("cause", &self.cause, 0, 32_768)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StartExecution {
    pub state_machine_arn: String,
    pub name: Option<String>,
    pub input: Option<String>,
    pub trace_header: Option<String>,
}

impl Validate for StartExecution {
    fn validate(&self) -> Result<(), ApiError> {
        length("stateMachineArn", &self.state_machine_arn, 1, 256)?;
        optional("name", &self.name, 1, 80)?;
        optional("traceHeader", &self.trace_header, 0, 256)?;
        if let Some(input) = &self.input {
            length("input", input, 0, MAX_PAYLOAD)?;
            if input.len() > MAX_PAYLOAD {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value at 'input' failed to satisfy constraint: Member \
                     must have length less than or equal to {MAX_PAYLOAD} (it is {} bytes)",
                    input.len()
                )));
            }
        }
        Ok(())
    }
}

// ---- control-plane operations ------------------------------------------------
//
// Decoded and checked before the handler reads anything, like the worker
// operations above; the handlers then read the members they act on.
// Members that are accepted but have no effect here (tags, encryption,
// logging and tracing settings) are named with a leading `_`.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Tag {
    pub key: Option<String>,
    pub value: Option<String>,
}

fn tags(tags: &Option<Vec<Tag>>) -> Result<(), ApiError> {
    for t in tags.iter().flatten() {
        optional("tags.key", &t.key, 1, 128)?;
        optional("tags.value", &t.value, 0, 256)?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateActivity {
    pub name: String,
    pub tags: Option<Vec<Tag>>,
    #[serde(rename = "encryptionConfiguration")]
    _encryption_configuration: Option<Value>,
}

impl Validate for CreateActivity {
    fn validate(&self) -> Result<(), ApiError> {
        length("name", &self.name, 1, 80)?;
        tags(&self.tags)
    }
}

/// DescribeActivity, DeleteActivity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ActivityArn {
    pub activity_arn: String,
}

impl Validate for ActivityArn {
    fn validate(&self) -> Result<(), ApiError> {
        length("activityArn", &self.activity_arn, 1, 256)
    }
}

/// ListActivities, ListStateMachines.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ListPage {
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

impl Validate for ListPage {
    fn validate(&self) -> Result<(), ApiError> {
        page(self.max_results, &self.next_token, 1024)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateStateMachine {
    pub name: String,
    pub definition: String,
    pub role_arn: String,
    pub r#type: Option<String>,
    #[serde(rename = "loggingConfiguration")]
    _logging_configuration: Option<Value>,
    pub tags: Option<Vec<Tag>>,
    #[serde(rename = "tracingConfiguration")]
    _tracing_configuration: Option<Value>,
    #[serde(rename = "publish")]
    _publish: Option<bool>,
    pub version_description: Option<String>,
    #[serde(rename = "encryptionConfiguration")]
    _encryption_configuration: Option<Value>,
}

impl Validate for CreateStateMachine {
    fn validate(&self) -> Result<(), ApiError> {
        length("name", &self.name, 1, 80)?;
        length("definition", &self.definition, 1, 1_048_576)?;
        length("roleArn", &self.role_arn, 1, 256)?;
        one_of("type", &self.r#type, &["STANDARD", "EXPRESS"])?;
        optional("versionDescription", &self.version_description, 0, 256)?;
        tags(&self.tags)
    }
}

/// The members of a Describe request: the ARN, and what to include.
fn described(field: &str, arn: &str, included_data: &Option<String>) -> Result<(), ApiError> {
    length(field, arn, 1, 256)?;
    one_of(
        "includedData",
        included_data,
        &["ALL_DATA", "METADATA_ONLY"],
    )
}

/// DescribeStateMachine, DeleteStateMachine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StateMachineArn {
    pub state_machine_arn: String,
    pub included_data: Option<String>,
}

impl Validate for StateMachineArn {
    fn validate(&self) -> Result<(), ApiError> {
        described(
            "stateMachineArn",
            &self.state_machine_arn,
            &self.included_data,
        )
    }
}

/// DescribeExecution.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DescribeExecution {
    pub execution_arn: String,
    pub included_data: Option<String>,
}

impl Validate for DescribeExecution {
    fn validate(&self) -> Result<(), ApiError> {
        described("executionArn", &self.execution_arn, &self.included_data)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ListExecutions {
    pub state_machine_arn: Option<String>,
    pub status_filter: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub map_run_arn: Option<String>,
    pub redrive_filter: Option<String>,
}

impl Validate for ListExecutions {
    fn validate(&self) -> Result<(), ApiError> {
        optional("stateMachineArn", &self.state_machine_arn, 1, 256)?;
        one_of(
            "statusFilter",
            &self.status_filter,
            &[
                "RUNNING",
                "SUCCEEDED",
                "FAILED",
                "TIMED_OUT",
                "ABORTED",
                "PENDING_REDRIVE",
            ],
        )?;
        optional("mapRunArn", &self.map_run_arn, 1, 2000)?;
        one_of(
            "redriveFilter",
            &self.redrive_filter,
            &["REDRIVEN", "NOT_REDRIVEN"],
        )?;
        page(self.max_results, &self.next_token, 3096)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GetExecutionHistory {
    pub execution_arn: String,
    pub max_results: Option<i64>,
    pub reverse_order: Option<bool>,
    pub next_token: Option<String>,
    #[serde(rename = "includeExecutionData")]
    _include_execution_data: Option<bool>,
}

impl Validate for GetExecutionHistory {
    fn validate(&self) -> Result<(), ApiError> {
        length("executionArn", &self.execution_arn, 1, 256)?;
        page(self.max_results, &self.next_token, 3096)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StopExecution {
    pub execution_arn: String,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Validate for StopExecution {
    fn validate(&self) -> Result<(), ApiError> {
        length("executionArn", &self.execution_arn, 1, 256)?;
        optional("error", &self.error, 0, 256)?;
        optional("cause", &self.cause, 0, 32_768)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::{parse, refused};
    use serde_json::json;

    #[test]
    fn worker_names_and_tokens_have_documented_lengths() {
        let arn = "arn:aws:states:us-east-1:1:activity:a";
        refused::<GetActivityTask>(json!({"activityArn": arn, "workerName": ""}));
        refused::<GetActivityTask>(json!({"activityArn": arn, "workerName": "w".repeat(81)}));
        parse::<GetActivityTask>(&json!({"activityArn": arn, "workerName": "w".repeat(80)}))
            .unwrap();
        refused::<GetActivityTask>(json!({"activityArn": "a".repeat(257)}));
        refused::<SendTaskHeartbeat>(json!({"taskToken": ""}));
        refused::<SendTaskHeartbeat>(json!({"taskToken": "t".repeat(2049)}));
        refused::<SendTaskHeartbeat>(json!({}));
        refused::<SendTaskHeartbeat>(json!({"taskToken": "t", "extra": 1}));
        refused::<StartExecution>(
            json!({"stateMachineArn": "a", "input": "x".repeat(MAX_PAYLOAD + 1)}),
        );
    }

    #[test]
    fn control_plane_members_are_checked_too() {
        refused::<CreateActivity>(json!({"name": "n".repeat(81)}));
        refused::<CreateActivity>(json!({"name": "a", "surprise": true}));
        refused::<CreateStateMachine>(
            json!({"name": "m", "definition": "{}", "roleArn": "r", "type": "FAST"}),
        );
        refused::<ListExecutions>(json!({"statusFilter": "SLEEPING"}));
        refused::<ListPage>(json!({"maxResults": 1001}));
        refused::<StopExecution>(json!({"executionArn": "e", "error": "e".repeat(257)}));
        parse::<CreateStateMachine>(&json!({"name": "m", "definition": "{}", "roleArn": "r",
            "type": "STANDARD", "tags": [{"key": "k", "value": "v"}], "publish": false}))
        .unwrap();
    }
}
