//! The services that hand out activity tasks, behind one trait.
//!
//! The worker only ever talks to an [`ActivityService`]: long-poll for a task,
//! heartbeat it, report its result. Each backend (Step Functions, SWF) lives
//! in its own file and sorts every error answer through one table
//! ([`answers`]) into the [`Verdict`] the worker acts on, so retry and
//! give-up decisions are made in one place and can be unit tested with a
//! fake service.

pub(crate) mod answers;
mod awsjson;
pub(crate) mod credentials;
pub mod sfn;
pub(crate) mod swf;

use async_trait::async_trait;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::fmt;

pub(crate) use answers::{Operation, Verdict};
pub use sfn::StepFunctions;
pub(crate) use swf::Swf;

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
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, stable identifier for logs: the first 12 hex digits of the
    /// token's SHA-256.
    pub(crate) fn short_id(&self) -> String {
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
pub(crate) struct ActivityType {
    /// Type name.
    pub(crate) name: String,
    /// Type version.
    pub(crate) version: String,
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
    pub(crate) token: TaskToken,
    /// The task input: a JSON document.
    pub(crate) input: String,
    /// The activity type, where the service has several per poll (SWF).
    pub(crate) activity_type: Option<ActivityType>,
}

/// What a heartbeat told us.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatAck {
    /// The service asks the task to stop (SWF's `cancelRequested`).
    pub(crate) cancel_requested: bool,
}

/// Size limits the service puts on what a task reports, in reports and
/// heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimits {
    /// Largest success output, in bytes.
    pub(crate) output_bytes: usize,
    /// Longest error name, in characters.
    pub(crate) error_chars: usize,
    /// Longest failure cause, in characters.
    pub(crate) cause_chars: usize,
    /// Longest heartbeat details, in characters; `None` if the service's
    /// heartbeats carry none.
    pub(crate) heartbeat_details_chars: Option<usize>,
}

/// An error answer, sorted by what it proves for the operation that got it
/// (see [`answers`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({code}): {message}", verdict.describe())]
pub struct ServiceError {
    /// What the answer proves.
    pub(crate) verdict: Verdict,
    /// The service's error code, or a description of the failure kind
    /// (`Timeout`, `HTTP 503`).
    pub(crate) code: String,
    /// The service's message, or details.
    pub(crate) message: String,
}

impl ServiceError {
    /// An error with `verdict`.
    pub(crate) fn new(
        verdict: Verdict,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ServiceError {
            verdict,
            code: code.into(),
            message: message.into(),
        }
    }

    /// The service's error code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> &str {
        &self.code
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
        Err(ServiceError::new(
            Verdict::Misconfigured,
            "Unsupported",
            format!("{} has no task cancellation", self.describe()),
        ))
    }
}

/// Sorts an AWS SDK error (any service) for `operation`; a credential
/// error also has the credentials fetched afresh for the next request.
/// A call whose answer is not read (reports, Step Functions heartbeats):
/// through the lean client when there is one, else through the SDK (`sdk`
/// builds and sends the request only then, so the lean path copies nothing).
pub(crate) async fn lean_or_sdk<I, F, Fut, O, E>(
    lean: Option<&awsjson::AwsJson>,
    operation: Operation,
    action: &str,
    input: &I,
    read_timeout: std::time::Duration,
    sdk: F,
) -> Result<(), ServiceError>
where
    I: serde::Serialize + Sync,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<O, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match lean {
        Some(lean) => lean.send(operation, action, input, read_timeout).await,
        None => match sdk().await {
            Ok(_) => Ok(()),
            Err(e) => Err(from_sdk_error(operation, e)),
        },
    }
}

pub(crate) fn from_sdk_error<E>(
    operation: Operation,
    err: SdkError<E, HttpResponse>,
) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (code, status, message) = match &err {
        SdkError::ServiceError(ctx) => {
            // Keep the log line short: the service's message, not the SDK's
            // whole error context (which repeats headers and body).
            let message = ctx
                .err()
                .message()
                .unwrap_or("(no message from the service)")
                .to_string();
            let status = ctx.raw().status().as_u16();
            (ctx.err().code().map(str::to_string), Some(status), message)
        }
        SdkError::TimeoutError(_) => (Some("Timeout".into()), None, error_causes(&err)),
        // Nothing was sent if the credentials could not be had or the
        // connection could not be made: such a failure proves the request
        // was not applied, and must not make a later closed-task answer look
        // like a delivered result.
        SdkError::DispatchFailure(_) if caused_by::<CredentialsError>(&err, |_| true) => {
            return ServiceError::new(Verdict::Credentials, "NoCredentials", error_causes(&err));
        }
        SdkError::DispatchFailure(_)
            if caused_by::<hyper_util::client::legacy::Error>(&err, |e| e.is_connect()) =>
        {
            return ServiceError::new(Verdict::NotSent, "ConnectError", error_causes(&err));
        }
        SdkError::DispatchFailure(_) => (Some("NetworkError".into()), None, error_causes(&err)),
        // A response that could not be read (the connection dropped
        // mid-body, say): whether the request took effect is unknown.
        SdkError::ResponseError(ctx) => (
            Some("ResponseError".into()),
            Some(ctx.raw().status().as_u16()).filter(|s| *s >= 400),
            error_causes(&err),
        ),
        // The request could not even be built: nothing was sent.
        SdkError::ConstructionFailure(_) => {
            return ServiceError::new(Verdict::Misconfigured, "InvalidRequest", error_causes(&err));
        }
        _ => (Some("Unknown".into()), None, error_causes(&err)),
    };
    let verdict = match &err {
        SdkError::ServiceError(_) => answers::classify(operation, code.as_deref(), status),
        _ if status.is_some() => answers::classify(operation, None, status),
        _ => Verdict::NoAnswer,
    };
    if verdict == Verdict::Credentials {
        credentials::refused(operation, code.as_deref().unwrap_or("unknown"));
    }
    let code = match code {
        Some(code) if !code.is_empty() => code,
        _ => status
            .map(|s| format!("HTTP {s}"))
            .unwrap_or_else(|| "Unknown".into()),
    };
    ServiceError::new(verdict, code, message)
}

/// Each error in `err`'s chain in its own words, without the SDK's debug
/// dumps (a connection failure is otherwise a kilobyte of struct fields),
/// repeats dropped and the whole bounded.
pub(crate) fn error_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        next = e.source();
    }
    // Text from outside (a proxy's answer, a credential process's stderr):
    // escaped, as it is printed and logged.
    crate::redact::truncate_chars(&crate::redact::escape(&causes.join(": ")), 600)
}

/// True if `err` or any error in its source chain is an `E` for which
/// `test` holds.
fn caused_by<E: std::error::Error + 'static>(
    err: &(dyn std::error::Error + 'static),
    test: impl Fn(&E) -> bool,
) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<E>().is_some_and(&test) {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AwsClient;

    #[test]
    fn errors_show_what_they_prove_and_the_code() {
        let e = ServiceError::new(Verdict::TaskGone, "TaskTimedOut", "late");
        assert_eq!(e.code(), "TaskTimedOut");
        assert_eq!(
            e.to_string(),
            "the task is no longer open (TaskTimedOut): late"
        );
    }

    fn sdk(
        credentials: aws_credential_types::provider::SharedCredentialsProvider,
    ) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            // Nothing listens on port 1 of the loopback address.
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(credentials)
            .build()
    }

    #[tokio::test]
    async fn requests_that_never_left_are_not_taken_as_maybe_applied() {
        use aws_credential_types::provider::SharedCredentialsProvider;
        let token = TaskToken::new("t");
        let fixed = SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "k", "s", None, None, "test",
        ));
        let sfn = StepFunctions::new(
            sfn::SfnClients::new(&sdk(fixed), AwsClient::Sdk),
            "arn",
            "w",
        );
        let e = sfn.complete(&token, "{}").await.unwrap_err();
        assert_eq!(e.verdict, Verdict::NotSent, "{e}");
        assert!(!e.verdict.may_have_applied());

        #[derive(Debug)]
        struct NoCredentials;
        impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
            fn provide_credentials<'a>(
                &'a self,
            ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                    aws_credential_types::provider::error::CredentialsError::not_loaded(
                        "none here",
                    ),
                ))
            }
        }
        let none = SharedCredentialsProvider::new(NoCredentials);
        for client in [AwsClient::Sdk, AwsClient::Lean] {
            let sfn =
                StepFunctions::new(sfn::SfnClients::new(&sdk(none.clone()), client), "arn", "w");
            let e = sfn.fail(&token, "E", "c").await.unwrap_err();
            assert_eq!(e.verdict, Verdict::Credentials, "{client:?}: {e}");
        }
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
