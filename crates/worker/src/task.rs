//! One activity task, from the poll that brought it to the delivered result.
//!
//! Order matters: the heartbeat starts before the guest (the service's
//! heartbeat clock started when the poll returned) and stops only after the
//! result is delivered; the concurrency slot is released last, so the number
//! of tasks holding a slot never exceeds `max_concurrent`.

use crate::delivery::{self, Delivery};
use crate::heartbeat::Heartbeat;
use crate::redact::Inert;
use crate::registry::Activity;
use crate::report::{self, Report};
use crate::runtime::{Fault, Outcome, StopReason, TaskContext, TaskControl};
use crate::service::{ActivityService, Task};
use crate::shutdown::Shutdown;
use crate::tenant::Slot;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Runs `task` on `activity`'s current handler and reports the result,
/// inside a span carrying the activity, tenant, task id and component
/// version, so every log line of the task (its guest's too) names them.
/// When a poll handed the task out, and how long that poll had waited:
/// the first step of the task's trace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandOut {
    at: std::time::SystemTime,
    poll_wait: std::time::Duration,
}

impl HandOut {
    /// Handed out now, by a poll sent at `polling`.
    pub(crate) fn since(polling: Instant) -> HandOut {
        HandOut {
            at: std::time::SystemTime::now(),
            poll_wait: polling.elapsed(),
        }
    }
}

pub(crate) async fn run(
    task: Task,
    handed_out: HandOut,
    activity: Arc<Activity>,
    service: Arc<dyn ActivityService>,
    slot: Slot,
    pool: Arc<tokio::sync::Semaphore>,
    shutdown: Shutdown,
) {
    // The handler is pinned once: the span and the run name the same version
    // even if a reload swaps the activity's handler meanwhile.
    let handler = activity.handler();
    let span = tracing::info_span!(
        "task",
        activity = %activity.name(),
        tenant = activity.settings.tenant.as_deref().unwrap_or("-"),
        task = %task.token.short_id(),
        version = %handler.version,
    );
    // The digest is for traces only: every log line already names the version.
    crate::telemetry::set_attribute(&span, "digest", &handler.digest);
    crate::telemetry::add_event_at(
        &span,
        "poll hand-out",
        handed_out.at,
        "poll.wait_ms",
        handed_out.poll_wait.as_millis() as i64,
    );
    run_task(task, activity, handler, service, slot, pool, shutdown)
        .instrument(span)
        .await
}

async fn run_task(
    task: Task,
    activity: Arc<Activity>,
    handler: Arc<crate::registry::Component>,
    service: Arc<dyn ActivityService>,
    slot: Slot,
    pool: Arc<tokio::sync::Semaphore>,
    shutdown: Shutdown,
) {
    let started = Instant::now();
    let task_id: Arc<str> = task.token.short_id().into();
    let control = Arc::new(TaskControl::new());
    let settings = &activity.settings;
    let m = crate::metrics::global();
    let labels = crate::metrics::ActivityLabels {
        activity: activity.name().to_string(),
        tenant: settings.tenant.clone().unwrap_or_else(|| "-".into()),
    };
    m.tasks_started.get_or_create(&labels).inc();
    m.in_flight.get_or_create(&labels).inc();
    tracing::debug!(activity = activity.name(), task = %task_id, version = %handler.version, "task started");
    let journal = crate::journal::global().start(activity.name(), &task_id, &handler.version);

    // The heartbeat runs from now until the result is delivered, polled
    // beside the guest and the report in this same task (see heartbeat.rs).
    let mut heartbeat = Heartbeat::new(
        service.as_ref(),
        &task.token,
        settings.heartbeat_interval,
        &control,
    );
    let (delivery, ran_for) = {
        let work = execute(
            &task,
            &activity,
            &handler,
            service.as_ref(),
            &control,
            &task_id,
            &pool,
            &shutdown,
        );
        tokio::pin!(work);
        tokio::select! {
            done = &mut work => done,
            // The service ended the task; the heartbeat stopped the guest,
            // and the work finishes without reporting.
            () = heartbeat.run() => work.await,
        }
    };
    let beats = heartbeat.stats();
    drop(slot);

    let total = started.elapsed();
    m.in_flight.get_or_create(&labels).dec();
    m.task_seconds
        .get_or_create(&labels)
        .observe(crate::metrics::seconds(total));
    let (outcome, error) = match &delivery {
        // A guest names its errors: the label takes a bounded set of values.
        Delivery::Delivered(r @ Report::Failure { error, .. }) => {
            (r.outcome(), m.error_label(activity.name(), error))
        }
        Delivery::Delivered(r) => (r.outcome(), String::new()),
        Delivery::NotSent => ("abandoned", String::new()),
        Delivery::Unconfirmed(..) => ("unconfirmed", String::new()),
        Delivery::TaskGone(_) => ("undelivered", String::new()),
    };
    // The trace's attributes: the same bounded values as the labels.
    let span = tracing::Span::current();
    crate::telemetry::set_attribute(&span, "outcome", outcome);
    if !error.is_empty() {
        crate::telemetry::set_attribute(&span, "error", &crate::metrics::unescape_label(&error));
    }
    if outcome == "failed" {
        crate::telemetry::set_error(&span);
    }
    m.tasks_finished
        .get_or_create(&crate::metrics::FinishedLabels {
            activity: labels.activity.clone(),
            tenant: labels.tenant.clone(),
            outcome: outcome.into(),
            error,
        })
        .inc();
    journal.finish(
        outcome,
        match &delivery {
            Delivery::Delivered(Report::Failure { error, cause }) => Some((error, cause)),
            _ => None,
        },
    );
    let (activity, version) = (activity.name(), handler.version.as_str());
    match &delivery {
        Delivery::Delivered(Report::Success { .. }) => tracing::info!(
            activity, task = %task_id, version, ran_ms = millis(ran_for), total_ms = millis(total),
            heartbeats = beats.sent, heartbeat_gap_ms = beats.max_gap.as_millis() as u64, "task succeeded"
        ),
        Delivery::Delivered(Report::Failure { error, cause }) => tracing::info!(
            activity, task = %task_id, version, ran_ms = millis(ran_for), total_ms = millis(total),
            heartbeats = beats.sent, heartbeat_gap_ms = beats.max_gap.as_millis() as u64, error = %Inert(error), cause = %Inert(first_line(cause)), "task failed"
        ),
        Delivery::Delivered(Report::Canceled { details }) => tracing::info!(
            activity, task = %task_id, version, ran_ms = millis(ran_for), details = %Inert(first_line(details)), "task canceled"
        ),
        Delivery::Delivered(Report::Nothing { .. }) | Delivery::NotSent => tracing::info!(
            activity, task = %task_id, version, ran_ms = millis(ran_for),
            reason = ?control.stop_reason(), "task abandoned: the service ended it"
        ),
        Delivery::TaskGone(code) => tracing::warn!(
            activity, task = %task_id, version, ran_ms = millis(ran_for),
            "task result not delivered: the service ended the task first ({code})"
        ),
        Delivery::Unconfirmed(report, code) => tracing::info!(
            activity, task = %task_id, version, ran_ms = millis(ran_for), total_ms = millis(total),
            result = report.outcome(),
            "task result probably delivered: an attempt got no answer and may have been applied, \
             and the service now says the task is closed ({code})"
        ),
    }
}

/// A duration as a log field: milliseconds, as a number (JSON logs carry
/// numbers a query can compare, not "375.57µs").
fn millis(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// The task's work: the guest, then its report, delivered. Returns the
/// delivery and how long the guest ran.
// Each argument is one of the task's parts, borrowed from `run_task`.
#[allow(clippy::too_many_arguments)]
async fn execute(
    task: &Task,
    activity: &Activity,
    handler: &crate::registry::Component,
    service: &dyn ActivityService,
    control: &Arc<TaskControl>,
    task_id: &Arc<str>,
    pool: &Arc<tokio::sync::Semaphore>,
    shutdown: &Shutdown,
) -> (Delivery, std::time::Duration) {
    let started = Instant::now();
    let settings = &activity.settings;
    // An instance slot of the engine's pool; waiting for one only happens
    // after a reload added concurrency, and the task heartbeats meanwhile.
    let waiting = if pool.available_permits() == 0 {
        tracing::info_span!(target: "wasm_activity_otel", "wait for instance slot")
    } else {
        tracing::Span::none()
    };
    let instance = async {
        tokio::select! {
            permit = pool.clone().acquire_owned() => permit.ok(),
            () = shutdown.grace_expired() => None,
            () = control.stopped() => None,
        }
    }
    .instrument(waiting)
    .await;
    let outcome = if instance.is_none() && control.stop_reason().is_some() {
        Outcome::Fault(Fault::Stopped(
            control.stop_reason().cloned().expect("checked above"),
        ))
    } else if instance.is_none() || shutdown.is_grace_expired() {
        // Handed out by a poll that was in flight when the grace period ran
        // out: hand it straight back so it can be retried elsewhere.
        Outcome::Fault(Fault::Stopped(StopReason::Shutdown))
    } else {
        let ctx = TaskContext {
            activity: activity.name().into(),
            task_id: task_id.clone(),
            limits: settings.limits,
            control: control.clone(),
            grants: settings.grants.clone(),
        };
        let guest = handler.run(&task.input, &ctx);
        tokio::pin!(guest);
        // Armed when the service asks to cancel: the guest gets
        // `cancel_grace` to return before it is stopped.
        let cancel_deadline = tokio::time::sleep(settings.limits.timeout);
        tokio::pin!(cancel_deadline);
        let (mut stop_sent, mut cancel_armed) = (false, false);
        loop {
            tokio::select! {
                outcome = &mut guest => break outcome,
                () = shutdown.grace_expired(), if !stop_sent => {
                    stop_sent = true;
                    control.stop(StopReason::Shutdown);
                }
                () = control.service_cancelled(), if !cancel_armed => {
                    cancel_armed = true;
                    cancel_deadline.as_mut().reset(tokio::time::Instant::now() + settings.limits.cancel_grace);
                }
                () = &mut cancel_deadline, if cancel_armed && !stop_sent => {
                    stop_sent = true;
                    control.stop(StopReason::CancelGraceExpired);
                }
            }
        }
    };
    drop(instance);
    let ran_for = started.elapsed();
    if outcome == Outcome::Fault(Fault::Stopped(StopReason::Shutdown)) {
        shutdown.record_handed_back();
    }

    let source = report::LimitSource::Activity(activity.id());
    let mut limits = service.limits();
    limits.output_bytes = limits
        .output_bytes
        .min(settings.limits.output_bytes as usize);
    // Secrets never leave in an error name, a failure cause or cancellation
    // details: the report redacts them before it checks or cuts anything.
    let redactor = settings.grants.redactor();
    let report = if control.is_service_cancelled() {
        report::canceled(outcome, source, &limits, &redactor)
    } else {
        report::from_outcome(outcome, source, &limits, &redactor)
    };
    if let Some(record) = &settings.record {
        crate::record::write(
            record,
            activity.name(),
            &handler.version,
            task_id,
            &task.input,
            &report,
            &redactor,
        )
        .await;
    }
    let delivery = delivery::deliver(service, &task.token, report, control).await;
    (delivery, ran_for)
}

/// Fails a task no activity of this worker can run (an SWF activity type
/// with no component), so it does not sit until it times out.
pub(crate) async fn refuse(
    task: Task,
    reason: String,
    service: Arc<dyn ActivityService>,
    slot: Slot,
) {
    let task_id = task.token.short_id();
    tracing::error!(task = %task_id, "refusing task: {}", Inert(&reason));
    let report = Report::Failure {
        error: report::names::UNKNOWN_ACTIVITY_TYPE.into(),
        cause: crate::redact::truncate_chars(&reason, service.limits().cause_chars),
    };
    // No heartbeat runs for a refused task: only the answers end it.
    let delivery =
        delivery::deliver(service.as_ref(), &task.token, report, &TaskControl::new()).await;
    drop(slot);
    tracing::info!(task = %task_id, "refused task reported: {delivery:?}");
}

/// The first line of a cause for the log line (escaped where it is logged:
/// a lone `\r` or a U+2028 would otherwise still break it).
fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("").trim_end_matches('\r')
}

/// One task with a fake service and a scripted handler, on tokio's paused
/// clock: heartbeats around the run and the delivery, and handlers swapped
/// under running tasks.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Component;
    use crate::registry::testing::{Scripted, activity};
    use crate::service::TaskToken;
    use crate::service::fake::{self, Call, FakeService};
    use std::time::Duration;
    use tokio::sync::Semaphore;

    fn task(token: &str) -> Task {
        Task {
            token: TaskToken::new(token),
            input: "{}".into(),
            activity_type: None,
        }
    }

    /// Runs `task` on `activity` as the poller would, with a slot of its own.
    fn spawn(
        task: Task,
        activity: &Arc<Activity>,
        service: &Arc<FakeService>,
    ) -> tokio::task::JoinHandle<()> {
        let (activity, service) = (activity.clone(), service.clone());
        tokio::spawn(async move {
            let slot = crate::slots::Slots::new(1).acquire().await;
            run(
                task,
                HandOut::since(Instant::now()),
                activity,
                service,
                Slot::new(slot, None),
                Arc::new(Semaphore::new(8)),
                Shutdown::new(),
            )
            .await
        })
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_run_from_hand_out_until_the_result_is_delivered() {
        let service = Arc::new(FakeService::default());
        // The service throttles the report for a while: the delivery
        // retries, and the heartbeat keeps the task open meanwhile.
        service
            .report_errors
            .lock()
            .unwrap()
            .extend((0..8).map(|_| fake::transient()));
        let a = activity(
            "beats",
            Component::new("v1", Scripted::new(Duration::from_secs(25), "1")),
            Duration::from_secs(1),
        );
        let start = tokio::time::Instant::now();
        spawn(task("t"), &a, &service).await.unwrap();

        let calls: Vec<(tokio::time::Instant, Call)> = service.calls.lock().unwrap().clone();
        let beats: Vec<_> = calls
            .iter()
            .filter(|(_, c)| matches!(c, Call::Heartbeat(..)))
            .map(|(t, _)| *t)
            .collect();
        let reports: Vec<_> = calls
            .iter()
            .filter(|(_, c)| matches!(c, Call::Complete(..)))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(reports.len(), 9, "8 refusals, then delivered: {calls:?}");
        let (first_report, delivered) = (reports[0], *reports.last().unwrap());
        assert!(
            beats[0] - start <= Duration::from_secs(1),
            "the first heartbeat is due one interval after hand-out"
        );
        assert!(
            beats.iter().filter(|t| **t < first_report).count() >= 24,
            "heartbeats while the handler ran: {beats:?}"
        );
        assert!(
            beats.iter().any(|t| *t > first_report && *t < delivered),
            "heartbeats go on while the report is retried"
        );
        assert!(
            beats.iter().all(|t| *t <= delivered),
            "no heartbeat after the result is delivered"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_report_refused_until_the_heartbeat_learns_the_task_closed_ends_there() {
        let service = Arc::new(FakeService::default());
        // The report is refused for a reason that does not heal; the first
        // heartbeat, after the handler returned, is told the task is closed.
        service
            .report_errors
            .lock()
            .unwrap()
            .extend((0..1000).map(|_| {
                fake::answer(
                    crate::service::Operation::Complete,
                    "KmsInvalidStateException",
                )
            }));
        service
            .heartbeat_errors
            .lock()
            .unwrap()
            .push_back(fake::gone());
        let a = activity(
            "kms",
            Component::new("v1", Scripted::new(Duration::from_millis(500), "1")),
            Duration::from_secs(1),
        );
        let start = tokio::time::Instant::now();
        spawn(task("t"), &a, &service).await.unwrap();
        let reports = service
            .reports()
            .into_iter()
            .filter(|c| matches!(c, Call::Complete(..)))
            .count();
        assert!(
            (1..10).contains(&reports),
            "attempts until the heartbeat's answer, then none: {reports}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_swaps_the_handler_for_new_tasks_only() {
        let service = Arc::new(FakeService::default());
        let old = Scripted::new(Duration::from_secs(30), "\"v1\"");
        let old_running = old.running.clone();
        let a = activity("swap", Component::new("v1", old), Duration::from_secs(5));
        let first = spawn(task("first"), &a, &service);
        while old_running.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let replaced = a.replace_handler(Arc::new(Component::new(
            "v2",
            Scripted::new(Duration::from_secs(1), "\"v2\""),
        )));
        assert_eq!(replaced.version, "v1");
        spawn(task("second"), &a, &service).await.unwrap();
        first.await.unwrap();
        let reports = service.reports();
        assert_eq!(
            reports,
            vec![
                Call::Complete("second".into(), "\"v2\"".into()),
                Call::Complete("first".into(), "\"v1\"".into()),
            ],
            "the running task finished on the version it started with"
        );
    }
}
