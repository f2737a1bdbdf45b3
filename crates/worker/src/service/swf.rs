//! Amazon SWF activity tasks, through the official AWS SDK.
//!
//! One service per task list: a poll can return any activity type registered
//! on it, so the worker routes each task by its type. Heartbeats carry the
//! guest's latest progress as `details` and bring back `cancelRequested`,
//! SWF's cancellation signal. As for Step Functions, SDK retries are off,
//! the poll's read timeout is above the service's 60 s long poll, and the hot
//! operations go through [`super::awsjson`] unless the config asks for the
//! SDK.

use super::awsjson::{AwsJson, Protocol};
use super::{
    ActivityService, ActivityType, HeartbeatAck, Operation, ReportLimits, ServiceError, Task,
    TaskToken, Verdict, from_sdk_error, lean_or_sdk,
};
use crate::config::AwsClient;
use crate::redact::truncate_chars;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_swf::Client;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Client-side read timeout for PollForActivityTask (AWS asks for >= 70 s).
pub(crate) const POLL_READ_TIMEOUT: Duration = Duration::from_secs(75);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// SWF limits: result 32,768; reason 256; details 32,768; heartbeat
/// details 2,048 characters.
pub(crate) const LIMITS: ReportLimits = ReportLimits {
    output_bytes: crate::aws::SWF_MAX_RESULT,
    error_chars: crate::aws::SWF_MAX_REASON,
    cause_chars: crate::aws::SWF_MAX_DETAILS,
    heartbeat_details_chars: Some(crate::aws::SWF_MAX_HEARTBEAT_DETAILS),
};

/// The clients for one region/endpoint: the SDK's for everything, and the
/// lean one for the hot operations unless the SDK was asked for.
#[derive(Clone, Debug)]
pub(crate) struct SwfClients {
    poll: Client,
    call: Client,
    lean: Option<Arc<AwsJson>>,
}

impl SwfClients {
    /// Builds the clients from a loaded SDK config.
    pub(crate) fn new(sdk: &SdkConfig, choice: AwsClient) -> Self {
        let build = |read: Duration| {
            let conf = aws_sdk_swf::config::Builder::from(sdk)
                .retry_config(RetryConfig::disabled())
                // The attempt timeout below bounds a stalled exchange; the
                // throughput watch on every body cost ~4% of a call.
                .stalled_stream_protection(
                    aws_sdk_swf::config::StalledStreamProtectionConfig::disabled(),
                )
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(CONNECT_TIMEOUT)
                        .read_timeout(read)
                        .operation_attempt_timeout(read + CONNECT_TIMEOUT)
                        .build(),
                )
                .build();
            Client::from_conf(conf)
        };
        SwfClients {
            poll: build(POLL_READ_TIMEOUT),
            call: build(CALL_TIMEOUT),
            lean: (choice == AwsClient::Lean).then(|| Arc::new(AwsJson::new(Protocol::Swf, sdk))),
        }
    }

    /// A heartbeat interval for a registered activity type: a third of its
    /// `defaultTaskHeartbeatTimeout`, or `None` if it has none (or cannot be
    /// described).
    pub(crate) async fn default_heartbeat_interval(
        &self,
        domain: &str,
        name: &str,
        version: &str,
    ) -> Option<Duration> {
        let activity_type = aws_sdk_swf::types::ActivityType::builder()
            .name(name)
            .version(version)
            .build()
            .ok()?;
        let out = self
            .call
            .describe_activity_type()
            .domain(domain)
            .activity_type(activity_type)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(
                    "cannot describe activity type {name} {version} in {domain}: {}",
                    from_sdk_error(Operation::Describe, e)
                );
            })
            .ok()?;
        let timeout = out.configuration()?.default_task_heartbeat_timeout()?;
        let seconds: u64 = timeout.parse().ok()?; // "NONE" -> no heartbeat timeout
        Some(
            Duration::from_secs(seconds)
                .div_f64(3.0)
                .max(Duration::from_secs(1)),
        )
    }
}

/// One SWF task list, polled under one identity.
#[derive(Clone, Debug)]
pub(crate) struct Swf {
    clients: SwfClients,
    domain: String,
    task_list: String,
    identity: String,
}

impl Swf {
    /// A service polling `task_list` in `domain`, identifying as `identity`.
    pub(crate) fn new(clients: SwfClients, domain: &str, task_list: &str, identity: &str) -> Self {
        Swf {
            clients,
            domain: domain.to_string(),
            task_list: task_list.to_string(),
            identity: identity.to_string(),
        }
    }
}

#[async_trait]
impl ActivityService for Swf {
    fn describe(&self) -> String {
        format!("SWF task list {} in domain {}", self.task_list, self.domain)
    }

    fn limits(&self) -> ReportLimits {
        LIMITS
    }

    async fn poll(&self) -> Result<Option<Task>, ServiceError> {
        if let Some(lean) = &self.clients.lean {
            let out: PolledTask = lean
                .call(
                    Operation::Poll,
                    "PollForActivityTask",
                    &PollForActivityTask {
                        domain: &self.domain,
                        task_list: TaskList {
                            name: &self.task_list,
                        },
                        identity: &self.identity,
                    },
                    POLL_READ_TIMEOUT,
                )
                .await?;
            return Ok(out.task_token.filter(|t| !t.is_empty()).map(|token| Task {
                token: TaskToken::new(token),
                input: out.input.unwrap_or_default(),
                activity_type: out.activity_type.map(|t| ActivityType {
                    name: t.name,
                    version: t.version,
                }),
            }));
        }
        let task_list = aws_sdk_swf::types::TaskList::builder()
            .name(&self.task_list)
            .build()
            .map_err(|e| ServiceError::new(Verdict::Refused, "InvalidRequest", e.to_string()))?;
        let out = self
            .clients
            .poll
            .poll_for_activity_task()
            .domain(&self.domain)
            .task_list(task_list)
            .identity(&self.identity)
            .send()
            .await
            .map_err(|e| from_sdk_error(Operation::Poll, e))?;
        if out.task_token().is_empty() {
            return Ok(None);
        }
        Ok(Some(Task {
            token: TaskToken::new(out.task_token()),
            input: out.input().unwrap_or("").to_string(),
            activity_type: out.activity_type().map(|t| ActivityType {
                name: t.name().to_string(),
                version: t.version().to_string(),
            }),
        }))
    }

    async fn heartbeat(
        &self,
        token: &TaskToken,
        details: Option<&str>,
    ) -> Result<HeartbeatAck, ServiceError> {
        let details = details.map(|d| truncate_chars(d, crate::aws::SWF_MAX_HEARTBEAT_DETAILS));
        if let Some(lean) = &self.clients.lean {
            let out: HeartbeatAnswer = lean
                .call(
                    Operation::Heartbeat,
                    "RecordActivityTaskHeartbeat",
                    &WithDetails {
                        task_token: token.as_str(),
                        details: details.as_deref(),
                    },
                    CALL_TIMEOUT,
                )
                .await?;
            return Ok(HeartbeatAck {
                cancel_requested: out.cancel_requested,
            });
        }
        let mut call = self
            .clients
            .call
            .record_activity_task_heartbeat()
            .task_token(token.as_str());
        if let Some(details) = details {
            call = call.details(details);
        }
        let out = call
            .send()
            .await
            .map_err(|e| from_sdk_error(Operation::Heartbeat, e))?;
        Ok(HeartbeatAck {
            cancel_requested: out.cancel_requested(),
        })
    }

    async fn complete(&self, token: &TaskToken, output: &str) -> Result<(), ServiceError> {
        lean_or_sdk(
            self.clients.lean.as_deref(),
            Operation::Complete,
            "RespondActivityTaskCompleted",
            &Completed {
                task_token: token.as_str(),
                result: output,
            },
            CALL_TIMEOUT,
            || {
                self.clients
                    .call
                    .respond_activity_task_completed()
                    .task_token(token.as_str())
                    .result(output)
                    .send()
            },
        )
        .await
    }

    async fn fail(&self, token: &TaskToken, error: &str, cause: &str) -> Result<(), ServiceError> {
        lean_or_sdk(
            self.clients.lean.as_deref(),
            Operation::Fail,
            "RespondActivityTaskFailed",
            &Failed {
                task_token: token.as_str(),
                reason: error,
                details: cause,
            },
            CALL_TIMEOUT,
            || {
                self.clients
                    .call
                    .respond_activity_task_failed()
                    .task_token(token.as_str())
                    .reason(error)
                    .details(cause)
                    .send()
            },
        )
        .await
    }

    async fn cancel(&self, token: &TaskToken, details: &str) -> Result<(), ServiceError> {
        let details = truncate_chars(details, LIMITS.cause_chars);
        lean_or_sdk(
            self.clients.lean.as_deref(),
            Operation::Cancel,
            "RespondActivityTaskCanceled",
            &WithDetails {
                task_token: token.as_str(),
                details: Some(&details),
            },
            CALL_TIMEOUT,
            || {
                self.clients
                    .call
                    .respond_activity_task_canceled()
                    .task_token(token.as_str())
                    .details(&details)
                    .send()
            },
        )
        .await
    }
}

// The AWS JSON shapes of the hot operations (SWF API reference).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PollForActivityTask<'a> {
    domain: &'a str,
    task_list: TaskList<'a>,
    identity: &'a str,
}

#[derive(Serialize)]
struct TaskList<'a> {
    name: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolledTask {
    task_token: Option<String>,
    input: Option<String>,
    activity_type: Option<PolledType>,
}

#[derive(Deserialize)]
struct PolledType {
    name: String,
    version: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WithDetails<'a> {
    task_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeartbeatAnswer {
    #[serde(default)]
    cancel_requested: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Completed<'a> {
    task_token: &'a str,
    result: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Failed<'a> {
    task_token: &'a str,
    reason: &'a str,
    details: &'a str,
}
