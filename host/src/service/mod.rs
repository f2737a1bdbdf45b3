//! The services that hand out activity tasks, behind one trait.
//!
//! The worker only ever talks to an [`ActivityService`]: long-poll for a task,
//! heartbeat it, report its result. Each backend (Step Functions today, SWF
//! next) lives in its own file and maps its wire errors onto the three
//! [`ServiceError`] kinds the worker acts on, so retry and give-up decisions
//! are made in one place and can be unit tested with a fake service.

pub mod sfn;
pub mod swf;

use async_trait::async_trait;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::fmt;

pub use sfn::StepFunctions;
pub use swf::Swf;

/// The opaque token that identifies one handed-out task to the service.
///
/// Its `Debug` form shows only a short digest: tokens are credentials for
/// the task and long, so they stay out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct TaskToken(String);

impl TaskToken {
    /// Wraps a token as the service returned it.
    pub fn new(token: impl Into<String>) -> Self {
        TaskToken(token.into())
    }

    /// The token to send back to the service.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, stable identifier for logs: the first 12 hex digits of the
    /// token's SHA-256.
    pub fn short_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.0.as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskToken({})", self.short_id())
    }
}

/// An SWF activity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityType {
    /// Type name.
    pub name: String,
    /// Type version.
    pub version: String,
}

impl fmt::Display for ActivityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (version {})", self.name, self.version)
    }
}

/// One task handed out by a poll.
#[derive(Debug, Clone)]
pub struct Task {
    /// Identifies the task in every later call.
    pub token: TaskToken,
    /// The task input: a JSON document.
    pub input: String,
    /// The activity type, where the service has several per poll (SWF).
    pub activity_type: Option<ActivityType>,
    /// The service's id for the task, where it has one (SWF `activityId`).
    pub activity_id: Option<String>,
}

/// What a heartbeat told us.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatAck {
    /// The service asks the task to stop (SWF's `cancelRequested`).
    pub cancel_requested: bool,
}

/// Size limits the service puts on what a task reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimits {
    /// Largest success output, in bytes.
    pub output_bytes: usize,
    /// Longest error name, in characters.
    pub error_chars: usize,
    /// Longest failure cause, in characters.
    pub cause_chars: usize,
}

/// The service errors the worker tells apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The task is over on the service side (timed out, execution stopped,
    /// token unknown): stop working on it and report nothing.
    #[error("the task is no longer open ({code}): {message}")]
    TaskGone {
        /// The service's error code, e.g. `TaskTimedOut`.
        code: String,
        /// The service's message.
        message: String,
    },
    /// Throttling, a 5xx, a timeout or a network error: try again later.
    #[error("transient service error ({code}): {message}")]
    Transient {
        /// The service's error code, or a description of the failure kind.
        code: String,
        /// Details.
        message: String,
    },
    /// The service refused the request and will refuse it again.
    #[error("the service refused the request ({code}): {message}")]
    Rejected {
        /// The service's error code, e.g. `ActivityDoesNotExist`.
        code: String,
        /// The service's message.
        message: String,
    },
}

impl ServiceError {
    /// The service's error code.
    pub fn code(&self) -> &str {
        match self {
            ServiceError::TaskGone { code, .. }
            | ServiceError::Transient { code, .. }
            | ServiceError::Rejected { code, .. } => code,
        }
    }
}

/// A service that hands out tasks for one activity.
///
/// Implementations are bound to what they poll (an activity ARN, an SWF task
/// list) and to the worker's identity.
#[async_trait]
pub trait ActivityService: Send + Sync + 'static {
    /// A name for logs: the ARN or task list this service polls.
    fn describe(&self) -> String;

    /// Size limits for reports.
    fn limits(&self) -> ReportLimits;

    /// Long-polls for one task. `Ok(None)` is an empty poll.
    async fn poll(&self) -> Result<Option<Task>, ServiceError>;

    /// Tells the service the task is alive. `details` is the guest's latest
    /// progress, sent where the service carries it.
    async fn heartbeat(
        &self,
        token: &TaskToken,
        details: Option<&str>,
    ) -> Result<HeartbeatAck, ServiceError>;

    /// Reports success with a JSON output.
    async fn complete(&self, token: &TaskToken, output: &str) -> Result<(), ServiceError>;

    /// Reports failure with an error name and a cause.
    async fn fail(&self, token: &TaskToken, error: &str, cause: &str) -> Result<(), ServiceError>;

    /// Reports that the task stopped because the service asked it to
    /// (SWF RespondActivityTaskCanceled). Services without cancellation
    /// refuse it.
    async fn cancel(&self, _token: &TaskToken, _details: &str) -> Result<(), ServiceError> {
        Err(ServiceError::Rejected {
            code: "Unsupported".into(),
            message: format!("{} has no task cancellation", self.describe()),
        })
    }
}

/// Maps an AWS SDK error (any service) onto the kinds the worker acts on.
pub fn from_sdk_error<E>(err: SdkError<E, HttpResponse>) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(ctx) => {
            // Keep the log line short: the service's message, not the SDK's
            // whole error context (which repeats headers and body).
            let detail = ctx
                .err()
                .message()
                .unwrap_or("(no message from the service)")
                .to_string();
            classify(ctx.err().code(), Some(ctx.raw().status().as_u16()), &detail)
        }
        SdkError::TimeoutError(_) => ServiceError::Transient {
            code: "Timeout".into(),
            message,
        },
        SdkError::DispatchFailure(_) => ServiceError::Transient {
            code: "NetworkError".into(),
            message,
        },
        // A response that could not be read (the connection dropped mid-body,
        // say): whether the request took effect is unknown, so retry it.
        SdkError::ResponseError(_) => ServiceError::Transient {
            code: "ResponseError".into(),
            message,
        },
        SdkError::ConstructionFailure(_) => ServiceError::Rejected {
            code: "InvalidRequest".into(),
            message,
        },
        _ => ServiceError::Transient {
            code: "Unknown".into(),
            message,
        },
    }
}

/// Error codes AWS services use for throttling (from the AWS SDKs' retry
/// classifiers).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes that mean a transient server-side problem.
const TRANSIENT_CODES: &[&str] = &[
    "InternalFailure",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Error codes that mean the task is over on the service side.
const TASK_GONE_CODES: &[&str] = &[
    // Step Functions
    "TaskTimedOut",
    "TaskDoesNotExist",
    "InvalidToken",
    // SWF
    "UnknownResourceFault",
    "UnknownResource",
];

/// Sorts a service error response into a [`ServiceError`] kind.
///
/// `code` is the AWS error code (`__type`), `status` the HTTP status.
pub fn classify(code: Option<&str>, status: Option<u16>, message: &str) -> ServiceError {
    let code_str = code.unwrap_or("").to_string();
    let message = message.to_string();
    let name = code.unwrap_or("");
    if TASK_GONE_CODES.contains(&name) {
        return ServiceError::TaskGone {
            code: code_str,
            message,
        };
    }
    if THROTTLING_CODES.contains(&name) || TRANSIENT_CODES.contains(&name) {
        return ServiceError::Transient {
            code: code_str,
            message,
        };
    }
    match status {
        Some(429) | Some(500..=599) => ServiceError::Transient {
            code: if code_str.is_empty() {
                format!("HTTP {}", status.unwrap_or_default())
            } else {
                code_str
            },
            message,
        },
        _ => ServiceError::Rejected {
            code: if code_str.is_empty() {
                status
                    .map(|s| format!("HTTP {s}"))
                    .unwrap_or_else(|| "Unknown".to_string())
            } else {
                code_str
            },
            message,
        },
    }
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: Option<&str>, status: Option<u16>) -> &'static str {
        match classify(code, status, "m") {
            ServiceError::TaskGone { .. } => "gone",
            ServiceError::Transient { .. } => "transient",
            ServiceError::Rejected { .. } => "rejected",
        }
    }

    #[test]
    fn task_over_codes_are_gone() {
        for code in [
            "TaskTimedOut",
            "TaskDoesNotExist",
            "InvalidToken",
            "UnknownResourceFault",
        ] {
            assert_eq!(kind(Some(code), Some(400)), "gone", "{code}");
        }
    }

    #[test]
    fn throttling_is_transient_whatever_the_status() {
        for code in [
            "ThrottlingException",
            "Throttling",
            "TooManyRequestsException",
            "RequestLimitExceeded",
        ] {
            assert_eq!(kind(Some(code), Some(400)), "transient", "{code}");
        }
    }

    #[test]
    fn server_errors_and_429_are_transient() {
        assert_eq!(kind(None, Some(500)), "transient");
        assert_eq!(kind(None, Some(503)), "transient");
        assert_eq!(kind(Some("Weird"), Some(502)), "transient");
        assert_eq!(kind(None, Some(429)), "transient");
        assert_eq!(kind(Some("ServiceUnavailable"), None), "transient");
    }

    #[test]
    fn client_errors_are_rejected() {
        assert_eq!(kind(Some("ActivityDoesNotExist"), Some(400)), "rejected");
        assert_eq!(kind(Some("InvalidArn"), Some(400)), "rejected");
        assert_eq!(kind(Some("InvalidOutput"), Some(400)), "rejected");
        assert_eq!(kind(Some("AccessDeniedException"), Some(400)), "rejected");
        assert_eq!(kind(None, Some(404)), "rejected");
    }

    #[test]
    fn codes_survive_classification() {
        let e = classify(None, Some(503), "busy");
        assert_eq!(e.code(), "HTTP 503");
        let e = classify(Some("TaskTimedOut"), Some(400), "late");
        assert_eq!(e.code(), "TaskTimedOut");
        assert!(e.to_string().contains("late"));
    }

    #[test]
    fn token_debug_hides_the_token() {
        let t = TaskToken::new("secret-token-value");
        let shown = format!("{t:?}");
        assert!(!shown.contains("secret"));
        assert_eq!(t.short_id().len(), 12);
        assert_eq!(
            t.short_id(),
            TaskToken::new("secret-token-value").short_id()
        );
    }
}
