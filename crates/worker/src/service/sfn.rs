//! AWS Step Functions activities, through the official AWS SDK.
//!
//! Polls have a read timeout above the service's 60 s long poll (a poll the
//! client gives up on can still be handed a task, which is then lost until it
//! times out); heartbeats and reports have short timeouts so a stuck one is
//! retried quickly. Retries are the worker's own, with its own backoff and
//! knowledge of which errors mean the task is gone, so the SDK's are off.
//! The hot operations go through [`super::awsjson`] unless the config asks
//! for the SDK (`aws_client = "sdk"`).

use super::awsjson::{AwsJson, Protocol};
use super::{
    ActivityService, HeartbeatAck, Operation, ReportLimits, ServiceError, Task, TaskToken,
    from_sdk_error, lean_or_sdk,
};
use crate::config::AwsClient;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sfn::Client;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Client-side read timeout for GetActivityTask: above the 60 s long poll.
pub(crate) const POLL_READ_TIMEOUT: Duration = Duration::from_secs(70);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Step Functions limits for SendTaskSuccess / SendTaskFailure;
/// SendTaskHeartbeat takes no details.
pub(crate) const LIMITS: ReportLimits = ReportLimits {
    output_bytes: crate::aws::SFN_MAX_PAYLOAD,
    error_chars: crate::aws::SFN_MAX_ERROR,
    cause_chars: crate::aws::SFN_MAX_CAUSE,
    heartbeat_details_chars: None,
};

/// The clients for one region/endpoint, shared by all activities: the
/// lean one for the hot operations, unless the SDK was asked for.
#[derive(Clone, Debug)]
pub struct SfnClients {
    poll: Client,
    call: Client,
    lean: Option<Arc<AwsJson>>,
}

impl SfnClients {
    /// Builds the clients from a loaded SDK config.
    pub fn new(sdk: &SdkConfig, choice: AwsClient) -> Self {
        let build = |read: Duration, attempt: Duration| {
            let conf = aws_sdk_sfn::config::Builder::from(sdk)
                .retry_config(RetryConfig::disabled())
                // The attempt timeout below bounds a stalled exchange; the
                // throughput watch on every body cost ~4% of a call.
                .stalled_stream_protection(
                    aws_sdk_sfn::config::StalledStreamProtectionConfig::disabled(),
                )
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(CONNECT_TIMEOUT)
                        .read_timeout(read)
                        .operation_attempt_timeout(attempt)
                        .build(),
                )
                .build();
            Client::from_conf(conf)
        };
        SfnClients {
            poll: build(POLL_READ_TIMEOUT, POLL_READ_TIMEOUT + CONNECT_TIMEOUT),
            call: build(CALL_TIMEOUT, CALL_TIMEOUT + CONNECT_TIMEOUT),
            lean: (choice == AwsClient::Lean)
                .then(|| Arc::new(AwsJson::new(Protocol::StepFunctions, sdk))),
        }
    }
}

/// One Step Functions activity, polled under one worker name.
#[derive(Clone, Debug)]
pub struct StepFunctions {
    clients: SfnClients,
    arn: String,
    worker_name: String,
}

impl StepFunctions {
    /// A service bound to `arn`, identifying as `worker_name`.
    pub fn new(
        clients: SfnClients,
        arn: impl Into<String>,
        worker_name: impl Into<String>,
    ) -> Self {
        StepFunctions {
            clients,
            arn: arn.into(),
            worker_name: worker_name.into(),
        }
    }
}

#[async_trait]
impl ActivityService for StepFunctions {
    fn describe(&self) -> String {
        self.arn.clone()
    }

    fn limits(&self) -> ReportLimits {
        LIMITS
    }

    async fn poll(&self) -> Result<Option<Task>, ServiceError> {
        if let Some(lean) = &self.clients.lean {
            let out: PolledTask = lean
                .call(
                    Operation::Poll,
                    "GetActivityTask",
                    &GetActivityTask {
                        activity_arn: &self.arn,
                        worker_name: &self.worker_name,
                    },
                    POLL_READ_TIMEOUT,
                )
                .await?;
            return Ok(out.task_token.filter(|t| !t.is_empty()).map(|token| Task {
                token: TaskToken::new(token),
                input: out.input.unwrap_or_else(|| "{}".into()),
                activity_type: None,
            }));
        }
        let out = self
            .clients
            .poll
            .get_activity_task()
            .activity_arn(&self.arn)
            .worker_name(&self.worker_name)
            .send()
            .await
            .map_err(|e| from_sdk_error(Operation::Poll, e))?;
        match out.task_token() {
            Some(token) if !token.is_empty() => Ok(Some(Task {
                token: TaskToken::new(token),
                input: out.input().unwrap_or("{}").to_string(),
                activity_type: None,
            })),
            _ => Ok(None),
        }
    }

    async fn heartbeat(
        &self,
        token: &TaskToken,
        _details: Option<&str>,
    ) -> Result<HeartbeatAck, ServiceError> {
        // Step Functions heartbeats carry no details and no cancel flag: a
        // stopped execution shows up as TaskTimedOut.
        lean_or_sdk(
            self.clients.lean.as_deref(),
            Operation::Heartbeat,
            "SendTaskHeartbeat",
            &TokenOnly {
                task_token: token.as_str(),
            },
            CALL_TIMEOUT,
            || {
                self.clients
                    .call
                    .send_task_heartbeat()
                    .task_token(token.as_str())
                    .send()
            },
        )
        .await?;
        Ok(HeartbeatAck::default())
    }

    async fn complete(&self, token: &TaskToken, output: &str) -> Result<(), ServiceError> {
        lean_or_sdk(
            self.clients.lean.as_deref(),
            Operation::Complete,
            "SendTaskSuccess",
            &SendTaskSuccess {
                task_token: token.as_str(),
                output,
            },
            CALL_TIMEOUT,
            || {
                self.clients
                    .call
                    .send_task_success()
                    .task_token(token.as_str())
                    .output(output)
                    .send()
            },
        )
        .await
    }

    async fn fail(&self, token: &TaskToken, error: &str, cause: &str) -> Result<(), ServiceError> {
        lean_or_sdk(
            self.clients.lean.as_deref(),
            Operation::Fail,
            "SendTaskFailure",
            &SendTaskFailure {
                task_token: token.as_str(),
                error,
                cause,
            },
            CALL_TIMEOUT,
            || {
                self.clients
                    .call
                    .send_task_failure()
                    .task_token(token.as_str())
                    .error(error)
                    .cause(cause)
                    .send()
            },
        )
        .await
    }
}

// The AWS JSON shapes of the hot operations (Step Functions API reference).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GetActivityTask<'a> {
    activity_arn: &'a str,
    worker_name: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolledTask {
    task_token: Option<String>,
    input: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenOnly<'a> {
    task_token: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendTaskSuccess<'a> {
    task_token: &'a str,
    output: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendTaskFailure<'a> {
    task_token: &'a str,
    error: &'a str,
    cause: &'a str,
}
