//! Delivering a report: retried until the service has it or says the task
//! is gone.
//!
//! A finished result is never given up on while the task may still be open:
//! what each error answer proves is decided by the answer table
//! ([`crate::service::answers`]), and only a closed task ends a delivery:
//! the report operation's own answer says so, or the heartbeat, which runs
//! beside the delivery, learns it (an answer that keeps failing for a reason
//! that does not heal, such as a KMS key policy, would otherwise be retried
//! for as long as the worker runs).

use crate::backoff::Backoff;
use crate::redact::{Inert, truncate_chars};
use crate::report::{Report, names};
use crate::runtime::{StopReason, TaskControl};
use crate::service::{ActivityService, TaskToken, Verdict};
use std::time::Duration;

/// How delivering a report ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The service accepted the report (possibly a fallback failure, if it
    /// refused the output).
    Delivered(Report),
    /// An attempt got no answer the worker could read (its request may have
    /// been applied), and a later one was told the task is closed (`code`):
    /// most likely because that earlier attempt closed it. AWS answers a
    /// repeated report this way.
    Unconfirmed(Report, String),
    /// The task was over before any attempt could have been applied.
    TaskGone(String),
    /// There was nothing to send.
    NotSent,
}

const DELIVERY_BASE: Duration = Duration::from_millis(200);
const DELIVERY_CAP: Duration = Duration::from_secs(30);

/// The fix for a report refused for its credentials.
static CREDENTIALS_FIX: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (states:SendTaskSuccess/SendTaskFailure or swf:RespondActivityTask*)",
        crate::service::credentials::FIX
    )
});

/// Sends a report until it is delivered or the service says the task is
/// gone. What each answer proves is decided by the answer table
/// ([`crate::service::answers`]): a closed task ends the delivery, a refused
/// output (to a success only) is replaced by a failure saying so, and every
/// other answer (throttling, credentials, 5xx, timeouts, unreadable bodies,
/// settings such as a KMS key) is retried with backoff, however long it
/// takes: the heartbeat keeps the task open meanwhile, and once the service
/// tells the heartbeat the task is closed (`control` stopped with
/// [`StopReason::TaskGone`]), the delivery ends at its next wait.
pub(crate) async fn deliver(
    service: &dyn ActivityService,
    token: &TaskToken,
    report: Report,
    control: &TaskControl,
) -> Delivery {
    let mut report = report;
    let mut backoff = Backoff::new(DELIVERY_BASE, DELIVERY_CAP);
    // The last report an attempt of which may have been applied.
    let mut maybe_applied: Option<Report> = None;
    // The last kind of answer whose fix was logged.
    let mut explained: Option<Verdict> = None;
    loop {
        if matches!(report, Report::Nothing { .. }) {
            return Delivery::NotSent;
        }
        let span = tracing::info_span!(
            target: "wasm_activity_otel",
            "report",
            report = report.outcome(),
            verdict = tracing::field::Empty,
            code = tracing::field::Empty,
        );
        let result = tracing::Instrument::instrument(
            async {
                match &report {
                    Report::Success { output } => service.complete(token, output).await,
                    Report::Failure { error, cause } => service.fail(token, error, cause).await,
                    Report::Canceled { details } => service.cancel(token, details).await,
                    Report::Nothing { .. } => unreachable!("returned above"),
                }
            },
            span.clone(),
        )
        .await;
        match &result {
            Ok(()) => span.record("verdict", "accepted"),
            Err(e) => span
                .record("verdict", tracing::field::debug(&e.verdict))
                .record("code", e.code.as_str()),
        };
        let e = match result {
            Ok(()) => return Delivery::Delivered(report),
            Err(e) => e,
        };
        match e.verdict {
            Verdict::TaskGone => return closed(maybe_applied, e.code),
            Verdict::OutputRefused if matches!(report, Report::Success { .. }) => {
                tracing::warn!(
                    task = %token.short_id(),
                    "the service refused the output ({}); reporting a failure instead",
                    Inert(&e.to_string())
                );
                // The refusal proves the success was not applied.
                maybe_applied = None;
                report = Report::Failure {
                    error: names::INVALID_OUTPUT.into(),
                    cause: truncate_chars(
                        &format!("the service refused the handler's output: {e}"),
                        service.limits().cause_chars,
                    ),
                };
                backoff.reset();
                continue;
            }
            verdict => {
                if verdict.may_have_applied() {
                    maybe_applied = Some(report.clone());
                }
                let delay = backoff.next_delay();
                let (task, attempt) = (token.short_id(), backoff.attempts());
                let e = Inert(&e.to_string());
                // The fix is said once per delivery and per kind of answer;
                // later retries of the same kind only say they happen.
                let fix = match verdict {
                    Verdict::Credentials => Some(CREDENTIALS_FIX.as_str()),
                    Verdict::Misconfigured | Verdict::Refused | Verdict::OutputRefused => Some(
                        "this does not heal by itself (a KMS key policy, a deprecated domain or \
                         type): fix it and the result is still delivered",
                    ),
                    _ => None,
                };
                match fix {
                    Some(fix) if explained != Some(verdict) => {
                        explained = Some(verdict);
                        tracing::error!(
                            task,
                            attempt,
                            "reporting the result failed: {e}; {fix}; retrying in {delay:?}"
                        )
                    }
                    _ => tracing::warn!(
                        task,
                        attempt,
                        "reporting the result failed ({e}); retrying in {delay:?}"
                    ),
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    code = closed_for_the_heartbeat(control) => {
                        tracing::info!(
                            task = %token.short_id(),
                            "the heartbeat was told the task is closed ({code}); no more attempts"
                        );
                        return closed(maybe_applied, code);
                    }
                }
            }
        }
    }
}

/// How a delivery ends when the task is closed: if an attempt may have
/// been applied, that attempt most likely closed it.
fn closed(maybe_applied: Option<Report>, code: String) -> Delivery {
    match maybe_applied {
        Some(sent) => Delivery::Unconfirmed(sent, code),
        None => Delivery::TaskGone(code),
    }
}

/// Resolves with the service's code once the heartbeat learns the task is
/// closed; never for other stops (a shutdown still delivers).
async fn closed_for_the_heartbeat(control: &TaskControl) -> String {
    control.stopped().await;
    match control.stop_reason() {
        Some(StopReason::TaskGone { code }) => code.clone(),
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::fake::{self, Call, FakeService};
    use crate::service::{Operation, ServiceError};

    #[tokio::test(start_paused = true)]
    async fn delivery_retries_transient_errors_until_accepted() {
        let svc = FakeService::default();
        svc.report_errors.lock().unwrap().extend([
            fake::transient(),
            fake::transient(),
            fake::transient(),
        ]);
        let token = TaskToken::new("t");
        let d = deliver(
            &svc,
            &token,
            Report::Success { output: "1".into() },
            &TaskControl::new(),
        )
        .await;
        assert_eq!(
            d,
            Delivery::Delivered(Report::Success { output: "1".into() })
        );
        assert_eq!(svc.calls().len(), 4);
        assert!(
            svc.calls()
                .iter()
                .all(|c| matches!(c, Call::Complete(t, o) if t == "t" && o == "1"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delivery_stops_when_the_task_is_gone() {
        let svc = FakeService::default();
        svc.report_errors
            .lock()
            .unwrap()
            .extend([fake::transient(), fake::gone()]);
        let d = deliver(
            &svc,
            &TaskToken::new("t"),
            Report::Success { output: "1".into() },
            &TaskControl::new(),
        )
        .await;
        assert_eq!(d, Delivery::TaskGone("TaskTimedOut".into()));
        assert_eq!(svc.calls().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_output_falls_back_to_a_failure() {
        let svc = FakeService::default();
        svc.report_errors
            .lock()
            .unwrap()
            .push_back(fake::answer(Operation::Complete, "InvalidOutput"));
        let d = deliver(
            &svc,
            &TaskToken::new("t"),
            Report::Success { output: "1".into() },
            &TaskControl::new(),
        )
        .await;
        let Delivery::Delivered(Report::Failure { error, cause }) = d else {
            panic!("{d:?}")
        };
        assert_eq!(error, names::INVALID_OUTPUT);
        assert!(cause.contains("InvalidOutput"), "{cause}");
        assert!(matches!(&svc.calls()[1], Call::Fail(_, e, _) if e == names::INVALID_OUTPUT));
    }

    /// Every answer that says nothing about a success's output, on either
    /// service: the success is retried, never converted, and then delivered.
    #[tokio::test(start_paused = true)]
    async fn no_answer_but_invalid_output_converts_a_success() {
        let codes = [
            "KmsThrottlingException",
            "KmsAccessDeniedException",
            "KmsInvalidStateException",
            "ExpiredTokenException",
            "UnrecognizedClientException",
            "AccessDeniedException",
            "ThrottlingException",
            "ValidationException",
            "OperationNotPermittedFault",
            "InternalFailure",
            "SomethingUndocumented",
        ];
        let statuses: [(Option<&str>, u16); 5] = [
            (None, 403),
            (None, 408),
            (None, 400),
            (None, 500),
            (None, 429),
        ];
        let mut answers: Vec<ServiceError> = codes
            .iter()
            .map(|c| fake::answer(Operation::Complete, c))
            .collect();
        answers.extend(statuses.iter().map(|(code, status)| {
            let verdict =
                crate::service::answers::classify(Operation::Complete, *code, Some(*status));
            ServiceError::new(verdict, format!("HTTP {status}"), "not JSON")
        }));
        for answer in answers {
            let svc = FakeService::default();
            svc.report_errors.lock().unwrap().extend([
                answer.clone(),
                answer.clone(),
                answer.clone(),
            ]);
            let success = Report::Success { output: "1".into() };
            let d = deliver(
                &svc,
                &TaskToken::new("t"),
                success.clone(),
                &TaskControl::new(),
            )
            .await;
            assert_eq!(d, Delivery::Delivered(success), "{answer:?}");
            assert!(
                svc.calls().iter().all(|c| matches!(c, Call::Complete(..))),
                "{answer:?} converted the success: {:?}",
                svc.calls()
            );
            assert_eq!(svc.calls().len(), 4, "{answer:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_retried_whatever_the_service_says_short_of_a_closed_task() {
        for code in [
            "InvalidOutput",
            "KmsThrottlingException",
            "ExpiredTokenException",
        ] {
            let svc = FakeService::default();
            svc.report_errors
                .lock()
                .unwrap()
                .extend([fake::answer(Operation::Fail, code)]);
            let failure = Report::Failure {
                error: "E".into(),
                cause: "c".into(),
            };
            let d = deliver(
                &svc,
                &TaskToken::new("t"),
                failure.clone(),
                &TaskControl::new(),
            )
            .await;
            assert_eq!(d, Delivery::Delivered(failure), "{code}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_task_after_an_unanswered_attempt_is_unconfirmed() {
        let svc = FakeService::default();
        let lost = ServiceError::new(Verdict::NoAnswer, "Timeout", "read timed out");
        svc.report_errors
            .lock()
            .unwrap()
            .extend([lost, fake::transient(), fake::gone()]);
        let success = Report::Success { output: "1".into() };
        let d = deliver(
            &svc,
            &TaskToken::new("t"),
            success.clone(),
            &TaskControl::new(),
        )
        .await;
        assert_eq!(d, Delivery::Unconfirmed(success, "TaskTimedOut".into()));

        // Throttling proves the request was not applied: a closed task
        // after it is a result that did not get through.
        let svc = FakeService::default();
        svc.report_errors
            .lock()
            .unwrap()
            .extend([fake::transient(), fake::gone()]);
        let d = deliver(
            &svc,
            &TaskToken::new("t"),
            Report::Success { output: "1".into() },
            &TaskControl::new(),
        )
        .await;
        assert_eq!(d, Delivery::TaskGone("TaskTimedOut".into()));

        // A 5xx may have been applied too.
        let svc = FakeService::default();
        svc.report_errors.lock().unwrap().extend([
            ServiceError::new(Verdict::Unavailable, "HTTP 502", "bad gateway"),
            fake::answer(Operation::Fail, "UnknownResourceFault"),
        ]);
        let failure = Report::Failure {
            error: "E".into(),
            cause: "c".into(),
        };
        let d = deliver(
            &svc,
            &TaskToken::new("t"),
            failure.clone(),
            &TaskControl::new(),
        )
        .await;
        assert_eq!(
            d,
            Delivery::Unconfirmed(failure, "UnknownResourceFault".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delivery_backs_off_to_a_cap() {
        let svc = FakeService::default();
        let refused = fake::answer(Operation::Complete, "KmsAccessDeniedException");
        svc.report_errors
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(refused, 40));
        let started = tokio::time::Instant::now();
        let d = deliver(
            &svc,
            &TaskToken::new("t"),
            Report::Success { output: "1".into() },
            &TaskControl::new(),
        )
        .await;
        assert!(matches!(d, Delivery::Delivered(Report::Success { .. })));
        let times = svc.call_times();
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g <= DELIVERY_CAP), "{gaps:?}");
        // Forty refusals took minutes, not a fast spin, and it kept going.
        assert_eq!(times.len(), 41);
        assert!(
            started.elapsed() > Duration::from_secs(5 * 60),
            "{:?}",
            started.elapsed()
        );
    }

    /// A refusal that never heals (a KMS key policy) after the task closed
    /// would be retried forever: the heartbeat's word that the task is
    /// closed ends the delivery, as unconfirmed if an attempt may have been
    /// applied, and a shutdown does not.
    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_learning_the_task_is_closed_ends_a_delivery() {
        let refused = || fake::answer(Operation::Complete, "KmsAccessDeniedException");
        let lost = || ServiceError::new(Verdict::NoAnswer, "Timeout", "read timed out");
        for (first, expected_unconfirmed) in [(refused(), false), (lost(), true)] {
            let svc = FakeService::default();
            svc.report_errors
                .lock()
                .unwrap()
                .extend(std::iter::once(first).chain(std::iter::repeat_n(refused(), 1000)));
            let control = std::sync::Arc::new(TaskControl::new());
            let stopper = control.clone();
            let stop = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(90)).await;
                stopper.stop(StopReason::TaskGone {
                    code: "TaskTimedOut".into(),
                });
            });
            let success = Report::Success { output: "1".into() };
            let started = tokio::time::Instant::now();
            let d = deliver(&svc, &TaskToken::new("t"), success.clone(), &control).await;
            stop.await.unwrap();
            let expected = if expected_unconfirmed {
                Delivery::Unconfirmed(success, "TaskTimedOut".into())
            } else {
                Delivery::TaskGone("TaskTimedOut".into())
            };
            assert_eq!(d, expected);
            // It ended at the first wait after the heartbeat's answer.
            assert!(started.elapsed() <= Duration::from_secs(90) + DELIVERY_CAP);
            assert!(svc.calls().len() < 20, "{}", svc.calls().len());
        }

        // A shutdown stop keeps delivering until the service has it.
        let svc = FakeService::default();
        svc.report_errors
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(refused(), 5));
        let control = TaskControl::new();
        control.stop(StopReason::Shutdown);
        let d = deliver(
            &svc,
            &TaskToken::new("t"),
            Report::Success { output: "1".into() },
            &control,
        )
        .await;
        assert!(
            matches!(d, Delivery::Delivered(Report::Success { .. })),
            "{d:?}"
        );
        assert_eq!(svc.calls().len(), 6);
    }

    #[tokio::test]
    async fn cancel_is_delivered_with_its_details() {
        let svc = FakeService::default();
        let d = deliver(
            &svc,
            &TaskToken::new("t"),
            Report::Canceled {
                details: "why".into(),
            },
            &TaskControl::new(),
        )
        .await;
        assert_eq!(
            d,
            Delivery::Delivered(Report::Canceled {
                details: "why".into()
            })
        );
        assert_eq!(svc.calls(), vec![Call::Cancel("t".into(), "why".into())]);
    }

    #[tokio::test]
    async fn nothing_is_not_sent() {
        let svc = FakeService::default();
        let d = deliver(
            &svc,
            &TaskToken::new("t"),
            Report::Nothing {
                reason: "gone".into(),
            },
            &TaskControl::new(),
        )
        .await;
        assert_eq!(d, Delivery::NotSent);
        assert!(svc.calls().is_empty());
    }
}
