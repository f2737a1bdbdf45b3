//! What each error answer of the services proves, per operation.
//!
//! A result is lost in two ways: by giving up on an answer that says nothing
//! about the task (a throttle, an expired credential, a proxy's 408), or by
//! turning a success into a failure on an answer that says nothing about the
//! output. So every answer is sorted here, once, by what it *proves* for the
//! operation that got it, and the worker acts on that alone:
//!
//! | verdict           | proves                                  | the worker                               |
//! |-------------------|-----------------------------------------|------------------------------------------|
//! | `TaskGone`        | the task is closed                      | stops; reports nothing more              |
//! | `OutputRefused`   | the success output is refused (success) | reports a failure saying so instead      |
//! | `Throttled`       | nothing was applied; slow down          | retries with backoff                     |
//! | `Credentials`     | nothing was applied; credentials failed | refreshes credentials, retries           |
//! | `Unavailable`     | the service failed (5xx); maybe applied | retries                                  |
//! | `NoAnswer`        | nothing readable came back; maybe applied | retries                                |
//! | `NotSent`         | the request never left (no connection)  | retries                                  |
//! | `Misconfigured`   | a setting outside the worker is wrong   | retries slowly, logs the fix             |
//! | `Refused`         | (polls only) what is polled is refused  | logs the fix, polls again later          |
//!
//! Codes are the AWS API references' (Step Functions and SWF) and the
//! errors common to all AWS services. For a report, anything not listed is
//! retried: only `TaskGone` ends a delivery, and only `OutputRefused` (on a
//! success) changes what is delivered.

/// The service operations the worker makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// GetActivityTask / PollForActivityTask.
    Poll,
    /// SendTaskHeartbeat / RecordActivityTaskHeartbeat.
    Heartbeat,
    /// SendTaskSuccess / RespondActivityTaskCompleted.
    Complete,
    /// SendTaskFailure / RespondActivityTaskFailed.
    Fail,
    /// RespondActivityTaskCanceled.
    Cancel,
    /// Any other call (DescribeActivityType): nothing depends on it.
    Describe,
}

/// What an error answer proves (see the module docs for the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The task is closed on the service side (timed out, stopped, already
    /// reported, or the token is not one of the service's).
    TaskGone,
    /// The success output was refused: only ever an answer to a success.
    OutputRefused,
    /// Throttled, the request was not applied.
    Throttled,
    /// The credentials were refused or have expired; the request was not
    /// applied.
    Credentials,
    /// The service failed (5xx); the request may have been applied.
    Unavailable,
    /// No answer could be read (timeout, connection lost, a body that is not
    /// the service's); the request may have been applied.
    NoAnswer,
    /// The request was never sent (no connection could be made).
    NotSent,
    /// A setting outside the worker refuses the request (a KMS key, a
    /// deprecated domain or type, a request the service finds malformed):
    /// it proves nothing about the task, and may be fixed while we retry.
    Misconfigured,
    /// Polls only: the activity, domain or task list is refused.
    Refused,
}

impl Verdict {
    /// The request may have taken effect although no success came back.
    pub(crate) fn may_have_applied(self) -> bool {
        matches!(self, Verdict::Unavailable | Verdict::NoAnswer)
    }

    /// A short phrase for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Verdict::TaskGone => "the task is no longer open",
            Verdict::OutputRefused => "the service refused the output",
            Verdict::Throttled => "throttled by the service",
            Verdict::Credentials => "the service refused the credentials",
            Verdict::Unavailable => "the service failed",
            Verdict::NoAnswer => "no answer from the service",
            Verdict::NotSent => "the service could not be reached",
            Verdict::Misconfigured => {
                "the service refused the request for a reason outside the task"
            }
            Verdict::Refused => "the service refused the request",
        }
    }
}

/// Closed-task answers to calls that name a task.
const TASK_GONE: &[&str] = &[
    // Step Functions
    "TaskTimedOut",
    "TaskDoesNotExist",
    "InvalidToken",
    // SWF: closed, timed out, already reported, or an unknown token.
    "UnknownResourceFault",
    "UnknownResource",
];

/// Answers to a success that are about its output.
const OUTPUT_REFUSED: &[&str] = &["InvalidOutput"];

/// Throttling, from the services' references and the AWS SDKs' retry
/// classifiers.
const THROTTLED: &[&str] = &[
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
    "LimitExceededFault",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "KmsThrottlingException",
    // Too many pollers on one activity: poll again later.
    "ActivityWorkerLimitExceeded",
];

/// Credential and signature errors common to every AWS service.
const CREDENTIALS: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AccessDenied",
    "AccessDeniedException",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "NotAuthorized",
];

/// Server-side failures.
const UNAVAILABLE: &[&str] = &[
    "InternalFailure",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Timeouts the service names itself (the request may still have run).
const TIMED_OUT: &[&str] = &["RequestTimeout", "RequestTimeoutException"];

/// Settings outside the worker that refuse the request without saying
/// anything about the task.
const MISCONFIGURED: &[&str] = &[
    "KmsAccessDeniedException",
    "KmsInvalidStateException",
    "OperationNotPermittedFault",
    "ValidationException",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "MissingParameter",
    "MissingAction",
    "SerializationException",
    "UnknownOperationException",
    "OptInRequired",
];

/// Sorts one error answer to `operation`. `code` is the AWS error code
/// (`None` when the body could not be read as the service's error), `status`
/// the HTTP status (`None` when no response came back).
pub(crate) fn classify(operation: Operation, code: Option<&str>, status: Option<u16>) -> Verdict {
    let names_task = !matches!(operation, Operation::Poll | Operation::Describe);
    if let Some(code) = code.filter(|c| !c.is_empty()) {
        if TASK_GONE.contains(&code) {
            // A poll names no task: an unknown resource there is its domain
            // or task list.
            return if names_task {
                Verdict::TaskGone
            } else {
                Verdict::Refused
            };
        }
        if OUTPUT_REFUSED.contains(&code) {
            return match operation {
                Operation::Complete => Verdict::OutputRefused,
                // InvalidOutput to anything but a success proves nothing.
                _ => Verdict::Misconfigured,
            };
        }
        if THROTTLED.contains(&code) {
            return Verdict::Throttled;
        }
        if CREDENTIALS.contains(&code) {
            return Verdict::Credentials;
        }
        if UNAVAILABLE.contains(&code) {
            return Verdict::Unavailable;
        }
        if TIMED_OUT.contains(&code) {
            return Verdict::NoAnswer;
        }
        if MISCONFIGURED.contains(&code) {
            return Verdict::Misconfigured;
        }
    }
    let known_code = code.is_some_and(|c| !c.is_empty());
    match status {
        None => Verdict::NoAnswer,
        Some(429) => Verdict::Throttled,
        Some(500..=599) => Verdict::Unavailable,
        Some(408) => Verdict::NoAnswer,
        Some(401 | 403) if !known_code => Verdict::Credentials,
        // A body that is not the service's error (a proxy, a load balancer,
        // a truncated answer) says nothing: the request may have got through.
        Some(_) if !known_code => Verdict::NoAnswer,
        Some(_) => match operation {
            Operation::Poll | Operation::Describe => Verdict::Refused,
            // An error this table does not know, to a report or heartbeat:
            // it proves nothing about the task, so it is retried.
            _ => Verdict::Misconfigured,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::Operation::*;
    use super::Verdict::*;
    use super::*;

    /// Every documented error of every operation, as (code, status, verdict).
    fn check(op: Operation, cases: &[(Option<&str>, Option<u16>, Verdict)]) {
        for (code, status, want) in cases {
            assert_eq!(
                classify(op, *code, *status),
                *want,
                "{op:?} answered {code:?} with status {status:?}"
            );
        }
    }

    /// Answers every AWS operation can get, and what they prove.
    const COMMON: &[(Option<&str>, Option<u16>, Verdict)] = &[
        (Some("ThrottlingException"), Some(400), Throttled),
        (Some("TooManyRequestsException"), Some(400), Throttled),
        (Some("RequestLimitExceeded"), Some(400), Throttled),
        (Some("LimitExceededException"), Some(400), Throttled),
        (None, Some(429), Throttled),
        (Some("ExpiredTokenException"), Some(400), Credentials),
        (Some("ExpiredToken"), Some(403), Credentials),
        (Some("RequestExpired"), Some(400), Credentials),
        (Some("InvalidClientTokenId"), Some(403), Credentials),
        (Some("UnrecognizedClientException"), Some(400), Credentials),
        (Some("AccessDeniedException"), Some(400), Credentials),
        (Some("IncompleteSignature"), Some(400), Credentials),
        (Some("SignatureDoesNotMatch"), Some(403), Credentials),
        (None, Some(403), Credentials),
        (None, Some(401), Credentials),
        (Some("InternalFailure"), Some(500), Unavailable),
        (Some("ServiceUnavailable"), Some(503), Unavailable),
        (Some("Whatever"), Some(502), Unavailable),
        (None, Some(504), Unavailable),
        (None, Some(408), NoAnswer),
        (Some("RequestTimeoutException"), Some(408), NoAnswer),
        // A 400 whose body is not JSON.
        (None, Some(400), NoAnswer),
        (None, None, NoAnswer),
        (Some("ValidationException"), Some(400), Misconfigured),
        (Some("SerializationException"), Some(400), Misconfigured),
    ];

    #[test]
    fn step_functions_reports() {
        for op in [Complete, Fail] {
            check(op, COMMON);
            check(
                op,
                &[
                    (Some("TaskDoesNotExist"), Some(400), TaskGone),
                    (Some("TaskTimedOut"), Some(400), TaskGone),
                    (Some("InvalidToken"), Some(400), TaskGone),
                    (Some("KmsThrottlingException"), Some(400), Throttled),
                    (Some("KmsAccessDeniedException"), Some(400), Misconfigured),
                    (Some("KmsInvalidStateException"), Some(400), Misconfigured),
                    (Some("SomethingNew"), Some(400), Misconfigured),
                ],
            );
        }
        check(
            Complete,
            &[(Some("InvalidOutput"), Some(400), OutputRefused)],
        );
        check(Fail, &[(Some("InvalidOutput"), Some(400), Misconfigured)]);
    }

    #[test]
    fn swf_reports() {
        for op in [Complete, Fail, Cancel] {
            check(op, COMMON);
            check(
                op,
                &[
                    (Some("UnknownResourceFault"), Some(400), TaskGone),
                    (Some("OperationNotPermittedFault"), Some(400), Misconfigured),
                ],
            );
        }
    }

    #[test]
    fn heartbeats() {
        check(Heartbeat, COMMON);
        check(
            Heartbeat,
            &[
                (Some("TaskTimedOut"), Some(400), TaskGone),
                (Some("TaskDoesNotExist"), Some(400), TaskGone),
                (Some("InvalidToken"), Some(400), TaskGone),
                (Some("UnknownResourceFault"), Some(400), TaskGone),
                (Some("OperationNotPermittedFault"), Some(400), Misconfigured),
            ],
        );
    }

    #[test]
    fn polls() {
        check(Poll, COMMON);
        check(
            Poll,
            &[
                (Some("ActivityDoesNotExist"), Some(400), Refused),
                (Some("InvalidArn"), Some(400), Refused),
                (Some("ActivityWorkerLimitExceeded"), Some(400), Throttled),
                // A poll names a domain and task list, not a task.
                (Some("UnknownResourceFault"), Some(400), Refused),
                (Some("OperationNotPermittedFault"), Some(400), Misconfigured),
                (Some("LimitExceededFault"), Some(400), Throttled),
            ],
        );
    }

    #[test]
    fn only_a_success_can_have_its_output_refused() {
        for op in [Poll, Heartbeat, Fail, Cancel, Describe] {
            for code in ["InvalidOutput", "ValidationException", "Anything"] {
                assert_ne!(classify(op, Some(code), Some(400)), OutputRefused);
            }
        }
    }

    #[test]
    fn only_failed_or_unanswered_requests_may_have_been_applied() {
        let applied: Vec<Verdict> = [
            TaskGone,
            OutputRefused,
            Throttled,
            Credentials,
            Unavailable,
            NoAnswer,
            NotSent,
            Misconfigured,
            Refused,
        ]
        .into_iter()
        .filter(|v| v.may_have_applied())
        .collect();
        assert_eq!(applied, vec![Unavailable, NoAnswer]);
    }
}
