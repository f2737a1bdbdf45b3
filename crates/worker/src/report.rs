//! Turning how a guest run ended into what the service is told, and telling
//! it reliably.
//!
//! The service's rules are checked here, before sending, so a handler's
//! mistake becomes a failure a person can act on instead of a service error
//! that loses the result: output must be JSON and within the size limit,
//! error names must be short and must not use the reserved `States.` prefix,
//! causes are cut to the limit with a marker. Host-generated failures use the
//! `WasmActivity.` prefix so state machines can `Retry`/`Catch` on them.
//!
//! Every error name, cause and cancellation detail is built in full, then
//! redacted, then checked or cut, in one place ([`finish`]): cutting first
//! could leave half a secret at the cut, and redacting after cutting could
//! make the text longer than the service accepts, which would lose the
//! result. A successful output is the task's result and goes to the
//! service unchanged.
//!
//! A finished result is retried on transient errors until it is delivered or
//! the service says the task is gone: losing a result means re-running the
//! task after a timeout, which is worse than waiting.

use crate::config::ActivityId;
use crate::redact::Redactor;
use crate::redact::truncate_chars;
use crate::runtime::{Fault, HostLimit, Outcome, StopReason};
use crate::service::ReportLimits;

pub(crate) use crate::names;

/// What to tell the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// SendTaskSuccess.
    Success {
        /// Valid JSON within the size limit.
        output: String,
    },
    /// SendTaskFailure.
    Failure {
        /// Error name within limits.
        error: String,
        /// Cause within limits.
        cause: String,
    },
    /// RespondActivityTaskCanceled (SWF): the task stopped because the
    /// service asked.
    Canceled {
        /// What the guest returned (output or cause), or why it was stopped.
        details: String,
    },
    /// Nothing: the task is already over on the service side.
    Nothing {
        /// The service's reason, for the log line.
        reason: String,
    },
}

impl Report {
    /// A short word for the log line.
    pub(crate) fn outcome(&self) -> &str {
        match self {
            Report::Success { .. } => "succeeded",
            Report::Failure { .. } => "failed",
            Report::Canceled { .. } => "canceled",
            Report::Nothing { .. } => "abandoned",
        }
    }
}

/// A report before redaction and cutting: causes and details in full.
#[derive(Debug)]
enum Draft {
    Success(String),
    /// A host error name, or a guest's already redacted and checked.
    Failure(String, String),
    Canceled(String),
    Nothing(String),
}

impl Draft {
    fn failure(error: &str, cause: impl Into<String>) -> Draft {
        Draft::Failure(error.to_string(), cause.into())
    }
}

/// The one place causes and details are redacted and then cut to the
/// service's limit, in that order.
fn finish(draft: Draft, limits: &ReportLimits, redactor: &Redactor) -> Report {
    match draft {
        Draft::Success(output) => Report::Success { output },
        Draft::Failure(error, cause) => Report::Failure {
            error,
            cause: redactor.redact_truncate(&cause, limits.cause_chars),
        },
        Draft::Canceled(details) => Report::Canceled {
            details: redactor.redact_truncate(&details, limits.cause_chars),
        },
        Draft::Nothing(reason) => Report::Nothing { reason },
    }
}

/// What to report for a task the service asked to cancel: whatever the guest
/// returned becomes the cancellation details (redacted, then cut).
pub(crate) fn canceled(
    outcome: Outcome,
    source: LimitSource<'_>,
    limits: &ReportLimits,
    redactor: &Redactor,
) -> Report {
    let details = match outcome {
        Outcome::Output(output) => output,
        Outcome::Failure { error, cause } => format!("{error}: {cause}"),
        Outcome::Fault(Fault::Stopped(StopReason::TaskGone { code })) => {
            return Report::Nothing {
                reason: format!("the service ended the task ({code})"),
            };
        }
        Outcome::Fault(fault) => match from_fault(fault, source) {
            Draft::Failure(error, cause) => format!("{error}: {cause}"),
            Draft::Canceled(details) => details,
            other => return finish(other, limits, redactor),
        },
    };
    finish(Draft::Canceled(details), limits, redactor)
}

/// Where a run's limits were set, so a cause can say what to change.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LimitSource<'a> {
    /// A Step Functions activity's `[activity.NAME]` table or an SWF type's
    /// `[[swf.LIST.activity]]` entry in the config file.
    Activity(&'a ActivityId),
    /// `wasm-activity invoke` flags.
    Invoke,
}

impl LimitSource<'_> {
    /// What to change to give a task more of the limit set by config key
    /// `field` (or `invoke` flag `flag`): "raise KEY", where KEY is the
    /// setting's path in the config file (see [`ActivityId::key_hint`]).
    fn raise(&self, field: &str, flag: Option<&str>) -> String {
        match (self, flag) {
            (LimitSource::Activity(id), _) => format!("raise {}", id.key_hint(field)),
            (LimitSource::Invoke, Some(flag)) => format!("raise {flag}"),
            (LimitSource::Invoke, None) => {
                format!(
                    "`invoke` already allows the most the host does (a worker's {field} can only be lower)"
                )
            }
        }
    }
}

/// Decides what to report for a run whose limits came from `source`; every
/// error name and cause is redacted with `redactor` before it is checked or
/// cut.
pub(crate) fn from_outcome(
    outcome: Outcome,
    source: LimitSource<'_>,
    limits: &ReportLimits,
    redactor: &Redactor,
) -> Report {
    let draft = match outcome {
        Outcome::Output(output) => check_output(output, limits, redactor),
        Outcome::Failure { error, cause } => check_failure(&error, cause, limits, redactor),
        Outcome::Fault(fault) => from_fault(fault, source),
    };
    finish(draft, limits, redactor)
}

fn check_output(output: String, limits: &ReportLimits, redactor: &Redactor) -> Draft {
    if output.len() > limits.output_bytes {
        return Draft::failure(
            names::OUTPUT_TOO_LARGE,
            format!(
                "the handler returned {} bytes of output; at most {} bytes are allowed (the service's limit, \
                 or the activity's output_limit if lower). Store large results elsewhere (S3, a database) \
                 and return a reference to them.",
                output.len(),
                limits.output_bytes
            ),
        );
    }
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&output) {
        // The preview is cut from the redacted output, never the other way.
        return Draft::failure(
            names::INVALID_OUTPUT,
            format!(
                "the handler's output is not valid JSON ({e}); it began: {:?}",
                truncate_chars(&redactor.redact(&output), 200)
            ),
        );
    }
    Draft::Success(output)
}

/// A guest's error name, redacted and then checked against the service's
/// rules (on the redacted name: that is what would be sent).
/// How much of a refused error name a cause shows.
const MAX_SHOWN_ERROR_NAME: usize = 300;

fn check_failure(error: &str, cause: String, limits: &ReportLimits, redactor: &Redactor) -> Draft {
    // Only a bounded head of a guest's error name is looked at: a name past
    // the limit is refused whatever follows, and the work done here (on the
    // control plane) must not grow with what a guest returns.
    let error = redactor.redact_truncate(error, limits.error_chars.max(MAX_SHOWN_ERROR_NAME) + 1);
    let problem = if error.is_empty() {
        Some("it is empty".to_string())
    } else if error.chars().count() > limits.error_chars {
        Some(format!(
            "it is longer than {} characters",
            limits.error_chars
        ))
    } else if error.starts_with("States.") {
        Some("the `States.` prefix is reserved for the service's own errors".to_string())
    } else if error.starts_with("WasmActivity.") {
        Some("the `WasmActivity.` prefix is reserved for the host's own errors".to_string())
    } else {
        None
    };
    match problem {
        None => Draft::failure(&error, cause),
        Some(why) => Draft::failure(
            names::INVALID_ERROR_NAME,
            format!(
                "the handler failed with error name {:?}, which cannot be reported: {why}. \
                 The handler's cause was: {cause}",
                truncate_chars(&error, MAX_SHOWN_ERROR_NAME)
            ),
        ),
    }
}

fn from_fault(fault: Fault, source: LimitSource<'_>) -> Draft {
    match fault {
        Fault::Trap { message, detail } => {
            let cause = if detail.is_empty() {
                message
            } else {
                format!("{message}\n{detail}")
            };
            Draft::failure(names::TRAP, cause)
        }
        Fault::Timeout { limit } => Draft::failure(
            names::TIMEOUT,
            format!(
                "the handler ran longer than its time limit of {} and was stopped; {} \
                 or make the handler faster",
                humantime::format_duration(limit),
                source.raise("task_timeout", Some("--timeout"))
            ),
        ),
        Fault::MemoryLimit {
            limit,
            requested,
            trap,
        } => Draft::failure(
            names::MEMORY_LIMIT,
            format!(
                "the handler tried to grow its linear memory to {} but its memory limit is {}, \
                 and then failed ({trap}); {} or use less memory",
                bytesize::ByteSize(requested).display().iec(),
                bytesize::ByteSize(limit).display().iec(),
                source.raise("memory_limit", Some("--memory-limit"))
            ),
        ),
        Fault::FuelExhausted { limit } => Draft::failure(
            names::FUEL_EXHAUSTED,
            format!(
                "the handler used up its CPU fuel budget of {limit} units and was stopped; {} \
                 or make the handler cheaper",
                source.raise("fuel", Some("--fuel"))
            ),
        ),
        Fault::TableLimit { limit, requested } => Draft::failure(
            names::TABLE_LIMIT,
            format!(
                "the handler tried to grow a table to {requested} elements but its limit is {limit}, and then \
                 failed; {}",
                source.raise("table_elements", None)
            ),
        ),
        Fault::InstanceLimit { limit, detail } => Draft::failure(
            names::INSTANCE_LIMIT,
            format!(
                "the handler needs more instances, memories or tables than its limit of {limit} ({detail}); \
                 {}",
                source.raise("max_instances", None)
            ),
        ),
        Fault::HostResources {
            kind: HostLimit::Memory,
            limit,
            used,
        } => Draft::failure(
            names::HOST_RESOURCE_LIMIT,
            format!(
                "the handler made the host hold more memory for it than its host memory limit of {} \
                 ({} bytes at least: HTTP fields and bodies, streams, resource handles, text passed to \
                 host calls) and was stopped; {} or release resources sooner",
                bytesize::ByteSize(limit).display().iec(),
                used,
                source.raise("host_memory_limit", Some("--host-memory-limit"))
            ),
        ),
        Fault::HostResources {
            kind: HostLimit::Handles,
            limit,
            ..
        } => Draft::failure(
            names::HOST_RESOURCE_LIMIT,
            format!(
                "the handler holds more than {limit} host resource handles at once (WASI streams, \
                 pollables, HTTP fields, requests and bodies) and was stopped; drop resources it \
                 no longer uses"
            ),
        ),
        Fault::HostResources {
            kind: HostLimit::HttpFields,
            limit,
            ..
        } => Draft::failure(
            names::HOST_RESOURCE_LIMIT,
            format!(
                "the handler grew one set of HTTP header fields past {} (the host's limit per \
                 fields resource) and was stopped; send fewer or smaller headers",
                bytesize::ByteSize(limit).display().iec()
            ),
        ),
        Fault::Exit { code } => Draft::failure(
            names::TRAP,
            match code {
                0 => "the handler called exit(0) instead of returning a result".to_string(),
                // wasi:cli/exit takes result<_, _>: any failing status
                // arrives as 1, whatever the guest passed.
                1 => "the handler called exit with a failure status instead of returning a result \
                      (WASI 0.2 carries only success or failure, so exit(N) for any N other than 0 \
                      arrives as status 1)"
                    .to_string(),
                code => format!(
                    "the handler called exit with status {code} instead of returning a result"
                ),
            },
        ),
        Fault::Instantiate(message) => Draft::failure(
            names::INSTANTIATE,
            format!("the handler's instance could not be created: {message}"),
        ),
        Fault::Stopped(StopReason::Shutdown) => Draft::failure(
            names::WORKER_SHUTDOWN,
            "the worker shut down before the handler finished; the task can be retried",
        ),
        Fault::Stopped(StopReason::TaskGone { code }) => {
            Draft::Nothing(format!("the service ended the task ({code})"))
        }
        Fault::Stopped(StopReason::CancelGraceExpired) => Draft::Canceled(
            "the service canceled the task; the handler did not return within its cancel grace \
             period and was stopped"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::sfn::LIMITS;
    use std::time::Duration;

    static PRICE: std::sync::LazyLock<ActivityId> =
        std::sync::LazyLock::new(|| ActivityId::StepFunctions {
            name: "price".into(),
        });

    fn report(outcome: Outcome) -> Report {
        from_outcome(
            outcome,
            LimitSource::Activity(&PRICE),
            &LIMITS,
            &Redactor::default(),
        )
    }

    fn failure_of(r: &Report) -> (&str, &str) {
        match r {
            Report::Failure { error, cause } => (error, cause),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn valid_output_is_a_success() {
        assert_eq!(
            report(Outcome::Output(r#"{"a":1}"#.into())),
            Report::Success {
                output: r#"{"a":1}"#.into()
            }
        );
    }

    #[test]
    fn non_json_output_is_invalid_output_with_a_preview() {
        let r = report(Outcome::Output("hello world".into()));
        let (error, cause) = failure_of(&r);
        assert_eq!(error, names::INVALID_OUTPUT);
        assert!(cause.contains("not valid JSON"), "{cause}");
        assert!(cause.contains("\"hello world\""), "{cause}");
    }

    #[test]
    fn oversized_output_is_output_too_large() {
        let big = format!("\"{}\"", "x".repeat(LIMITS.output_bytes));
        let r = report(Outcome::Output(big));
        let (error, cause) = failure_of(&r);
        assert_eq!(error, names::OUTPUT_TOO_LARGE);
        assert!(cause.contains("262146 bytes"), "{cause}");
        assert!(cause.contains("at most 262144"), "{cause}");
    }

    #[test]
    fn output_at_exactly_the_limit_is_accepted() {
        let exact = format!("\"{}\"", "x".repeat(LIMITS.output_bytes - 2));
        assert!(matches!(
            report(Outcome::Output(exact)),
            Report::Success { .. }
        ));
    }

    #[test]
    fn guest_failure_keeps_name_and_cause() {
        let r = report(Outcome::Failure {
            error: "InvalidOrder".into(),
            cause: "no items".into(),
        });
        assert_eq!(failure_of(&r), ("InvalidOrder", "no items"));
    }

    #[test]
    fn reserved_long_or_empty_error_names_are_replaced() {
        for bad in [
            "States.Timeout".to_string(),
            "WasmActivity.WorkerShutdown".to_string(),
            "x".repeat(257),
            "y".repeat(50 << 20),
            String::new(),
        ] {
            let r = report(Outcome::Failure {
                error: bad.clone(),
                cause: "original".into(),
            });
            let (error, cause) = failure_of(&r);
            assert_eq!(
                error,
                names::INVALID_ERROR_NAME,
                "{}",
                truncate_chars(&bad, 40)
            );
            assert!(cause.contains("original"), "{}", truncate_chars(cause, 400));
        }
        let ok = report(Outcome::Failure {
            error: "x".repeat(256),
            cause: String::new(),
        });
        assert_eq!(failure_of(&ok).0.len(), 256);
    }

    #[test]
    fn long_causes_are_cut_with_a_marker() {
        let r = report(Outcome::Failure {
            error: "E".into(),
            cause: "é".repeat(40_000),
        });
        let (_, cause) = failure_of(&r);
        assert_eq!(cause.chars().count(), LIMITS.cause_chars);
        assert!(
            cause.ends_with("characters cut]"),
            "{}",
            &cause[cause.len() - 40..]
        );
    }

    #[test]
    fn faults_map_to_documented_names_with_actionable_causes() {
        let timeout = report(Outcome::Fault(Fault::Timeout {
            limit: Duration::from_secs(5),
        }));
        let (e, c) = failure_of(&timeout);
        assert_eq!(e, names::TIMEOUT);
        assert!(
            c.contains("time limit of 5s") && c.contains("raise activity.price.task_timeout"),
            "{c}"
        );

        let mem = report(Outcome::Fault(Fault::MemoryLimit {
            limit: 16 << 20,
            requested: 32 << 20,
            trap: "wasm trap: unreachable".into(),
        }));
        let (e, c) = failure_of(&mem);
        assert_eq!(e, names::MEMORY_LIMIT);
        assert!(
            c.contains("32.0 MiB")
                && c.contains("16.0 MiB")
                && c.contains("activity.price.memory_limit"),
            "{c}"
        );

        let trap = report(Outcome::Fault(Fault::Trap {
            message: "wasm trap: unreachable".into(),
            detail: "panicked at src/lib.rs:3".into(),
        }));
        let (e, c) = failure_of(&trap);
        assert_eq!(e, names::TRAP);
        assert!(
            c.contains("unreachable") && c.contains("panicked at"),
            "{c}"
        );

        let shutdown = report(Outcome::Fault(Fault::Stopped(StopReason::Shutdown)));
        assert_eq!(failure_of(&shutdown).0, names::WORKER_SHUTDOWN);

        let gone = report(Outcome::Fault(Fault::Stopped(StopReason::TaskGone {
            code: "TaskTimedOut".into(),
        })));
        assert!(matches!(gone, Report::Nothing { .. }));
    }

    #[test]
    fn canceled_tasks_report_what_the_guest_returned() {
        let src = LimitSource::Activity(&PRICE);
        assert_eq!(
            canceled(
                Outcome::Output("{\"partial\":1}".into()),
                src,
                &LIMITS,
                &Redactor::default()
            ),
            Report::Canceled {
                details: "{\"partial\":1}".into()
            }
        );
        assert_eq!(
            canceled(
                Outcome::Failure {
                    error: "Cancelled".into(),
                    cause: "stopped early".into()
                },
                src,
                &LIMITS,
                &Redactor::default()
            ),
            Report::Canceled {
                details: "Cancelled: stopped early".into()
            }
        );
        let Report::Canceled { details } = canceled(
            Outcome::Fault(Fault::Stopped(StopReason::CancelGraceExpired)),
            src,
            &LIMITS,
            &Redactor::default(),
        ) else {
            panic!()
        };
        assert!(details.contains("cancel grace"), "{details}");
        assert!(matches!(
            canceled(
                Outcome::Fault(Fault::Stopped(StopReason::TaskGone {
                    code: "UnknownResourceFault".into()
                })),
                src,
                &LIMITS,
                &Redactor::default()
            ),
            Report::Nothing { .. }
        ));
    }

    fn secret_redactor(secret: &str) -> Redactor {
        Redactor::new([secret])
    }

    #[test]
    fn a_secret_at_the_cut_is_redacted_not_halved() {
        let secret = "TOPSECRET-0123456789";
        let red = secret_redactor(secret);
        // The secret straddles the 32,768-character boundary.
        let cause = format!(
            "{}{secret}{}",
            "a".repeat(LIMITS.cause_chars - 10),
            "b".repeat(100)
        );
        let r = from_outcome(
            Outcome::Failure {
                error: "E".into(),
                cause,
            },
            LimitSource::Activity(&PRICE),
            &LIMITS,
            &red,
        );
        let (_, cause) = failure_of(&r);
        assert!(cause.chars().count() <= LIMITS.cause_chars);
        assert!(!cause.contains("TOPSEC"), "{}", &cause[cause.len() - 80..]);
    }

    #[test]
    fn redaction_that_lengthens_a_cause_still_fits_the_limit() {
        // A 2-character secret becomes a 10-character marker (adjacent
        // occurrences would merge into one marker, so they are spaced).
        let red = secret_redactor("xy");
        let cause = "xy ".repeat(LIMITS.cause_chars / 3);
        let r = from_outcome(
            Outcome::Failure {
                error: "E".into(),
                cause,
            },
            LimitSource::Invoke,
            &LIMITS,
            &red,
        );
        let (_, cause) = failure_of(&r);
        assert_eq!(cause.chars().count(), LIMITS.cause_chars);
        assert!(cause.starts_with("[redacted] [redacted] "));
        assert!(!cause.contains("xy"));
    }

    #[test]
    fn guest_error_names_are_redacted_then_checked() {
        let red = secret_redactor("k3y");
        let r = from_outcome(
            Outcome::Failure {
                error: "Bad.k3y".into(),
                cause: "c k3y".into(),
            },
            LimitSource::Invoke,
            &LIMITS,
            &red,
        );
        assert_eq!(failure_of(&r), ("Bad.[redacted]", "c [redacted]"));
        // 60 copies fit the 256-character limit raw (240) but not redacted
        // (660): the name is refused, and does not leak in the cause.
        let r = from_outcome(
            Outcome::Failure {
                error: "k3y.".repeat(60),
                cause: String::new(),
            },
            LimitSource::Invoke,
            &LIMITS,
            &red,
        );
        let (error, cause) = failure_of(&r);
        assert_eq!(error, names::INVALID_ERROR_NAME);
        assert!(!cause.contains("k3y"), "{cause}");
    }

    #[test]
    fn cancel_details_and_output_previews_are_redacted_before_cutting() {
        let secret = "S3CR3T-VALUE";
        let red = secret_redactor(secret);
        let details = format!("{}{secret}", "d".repeat(LIMITS.cause_chars - 4));
        let Report::Canceled { details } =
            canceled(Outcome::Output(details), LimitSource::Invoke, &LIMITS, &red)
        else {
            panic!()
        };
        assert!(details.chars().count() <= LIMITS.cause_chars);
        assert!(
            !details.contains("S3CR"),
            "{}",
            &details[details.len() - 60..]
        );
        // A non-JSON output's 200-character preview, the secret across it.
        let output = format!("{}{secret}", "o".repeat(195));
        let r = from_outcome(Outcome::Output(output), LimitSource::Invoke, &LIMITS, &red);
        let (error, cause) = failure_of(&r);
        assert_eq!(error, names::INVALID_OUTPUT);
        assert!(!cause.contains("S3CR"), "{cause}");
    }

    #[test]
    fn host_names_are_listed_once() {
        let mut all = names::ALL.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), names::ALL.len());
        assert!(all.iter().all(|n| n.starts_with("WasmActivity.")));
    }

    /// Every "raise KEY" a failure cause gives names a key that exists: set
    /// in the file where the key says, it changes that activity's (or SWF
    /// type's) limit and no other's.
    #[test]
    fn every_limit_hint_names_a_key_that_sets_that_limit() {
        use crate::config::TaskLimits;
        use crate::config::tests::{NAMED, all_limits, parse, set_key};
        use crate::runtime::{Fault, HostLimit, Outcome};
        type Get = fn(&TaskLimits) -> String;
        let faults: [(Fault, &str, &str, Get); 6] = [
            (
                Fault::Timeout {
                    limit: Duration::from_secs(1),
                },
                "task_timeout",
                "\"7s\"",
                |l| format!("{:?}", l.timeout),
            ),
            (
                Fault::MemoryLimit {
                    limit: 1 << 20,
                    requested: 2 << 20,
                    trap: "t".into(),
                },
                "memory_limit",
                "\"48MiB\"",
                |l| l.memory.to_string(),
            ),
            (Fault::FuelExhausted { limit: 1 }, "fuel", "12345", |l| {
                format!("{:?}", l.fuel)
            }),
            (
                Fault::TableLimit {
                    limit: 1,
                    requested: 2,
                },
                "table_elements",
                "777",
                |l| l.table_elements.to_string(),
            ),
            (
                Fault::InstanceLimit {
                    limit: 1,
                    detail: "d".into(),
                },
                "max_instances",
                "7",
                |l| l.instances.to_string(),
            ),
            (
                Fault::HostResources {
                    kind: HostLimit::Memory,
                    limit: 1,
                    used: 2,
                },
                "host_memory_limit",
                "\"3MiB\"",
                |l| l.host_memory.to_string(),
            ),
        ];
        let before = all_limits(&parse(NAMED).unwrap());
        for (id, _) in &before {
            for (fault, field, value, get) in &faults {
                let report = from_outcome(
                    Outcome::Fault(fault.clone()),
                    LimitSource::Activity(id),
                    &crate::service::swf::LIMITS,
                    &crate::redact::Redactor::default(),
                );
                let Report::Failure { cause, .. } = report else {
                    panic!("{report:?}")
                };
                let key = cause
                    .split("raise ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or_else(|| panic!("no \"raise KEY\" in {cause:?}"));
                assert_eq!(key, id.key(field), "{cause}");
                assert!(cause.contains(&id.key_hint(field)), "{cause}");
                let after = all_limits(
                    &parse(&set_key(NAMED, key, value))
                        .unwrap_or_else(|e| panic!("{key} = {value}: {e}")),
                );
                for ((bid, b), (aid, a)) in before.iter().zip(&after) {
                    assert_eq!(bid, aid);
                    if bid == id {
                        assert_ne!(get(b), get(a), "{key} did not change {bid}");
                    } else {
                        assert_eq!(b, a, "{key} changed {bid}, not {id}");
                    }
                }
            }
        }
    }
}
