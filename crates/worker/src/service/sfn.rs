//! AWS Step Functions activities, through the official AWS SDK.
//!
//! Two clients share one SDK config: the poll client has a read timeout above
//! the service's 60 s long poll (a poll the client gives up on can still be
//! handed a task, which is then lost until it times out); the call client has
//! short timeouts so a stuck heartbeat or report is retried quickly. The SDK's
//! own retries are off: the worker retries with its own backoff and knows
//! which errors mean the task is gone.

use super::{
    ActivityService, HeartbeatAck, Operation, ReportLimits, ServiceError, Task, TaskToken,
    from_sdk_error,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sfn::Client;
use std::time::Duration;

/// Client-side read timeout for GetActivityTask: above the 60 s long poll.
pub(crate) const POLL_READ_TIMEOUT: Duration = Duration::from_secs(70);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Step Functions limits for SendTaskSuccess / SendTaskFailure.
pub(crate) const LIMITS: ReportLimits = ReportLimits {
    output_bytes: crate::aws::SFN_MAX_PAYLOAD,
    error_chars: crate::aws::SFN_MAX_ERROR,
    cause_chars: crate::aws::SFN_MAX_CAUSE,
};

/// The two SDK clients for one region/endpoint, shared by all activities.
#[derive(Clone, Debug)]
pub struct SfnClients {
    poll: Client,
    call: Client,
}

impl SfnClients {
    /// Builds the clients from a loaded SDK config.
    pub fn new(sdk: &SdkConfig) -> Self {
        let build = |read: Duration, attempt: Duration| {
            let conf = aws_sdk_sfn::config::Builder::from(sdk)
                .retry_config(RetryConfig::disabled())
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
        self.clients
            .call
            .send_task_heartbeat()
            .task_token(token.as_str())
            .send()
            .await
            .map_err(|e| from_sdk_error(Operation::Heartbeat, e))?;
        Ok(HeartbeatAck::default())
    }

    async fn complete(&self, token: &TaskToken, output: &str) -> Result<(), ServiceError> {
        self.clients
            .call
            .send_task_success()
            .task_token(token.as_str())
            .output(output)
            .send()
            .await
            .map_err(|e| from_sdk_error(Operation::Complete, e))?;
        Ok(())
    }

    async fn fail(&self, token: &TaskToken, error: &str, cause: &str) -> Result<(), ServiceError> {
        self.clients
            .call
            .send_task_failure()
            .task_token(token.as_str())
            .error(error)
            .cause(cause)
            .send()
            .await
            .map_err(|e| from_sdk_error(Operation::Fail, e))?;
        Ok(())
    }
}
