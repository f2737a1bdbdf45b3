//! One activity task, from the poll that brought it to the delivered result.
//!
//! Order matters: the heartbeat starts before the guest (the service's
//! heartbeat clock started when the poll returned) and stops only after the
//! result is delivered; the concurrency slot is released last, so the number
//! of tasks holding a slot never exceeds `max_concurrent`.

use crate::heartbeat::Heartbeat;
use crate::registry::Activity;
use crate::report::{self, Delivery, Report};
use crate::runtime::{Fault, Outcome, StopReason, TaskContext, TaskControl};
use crate::service::{ActivityService, Task};
use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// Runs `task` on `activity`'s current handler and reports the result.
pub async fn run(
    task: Task,
    activity: Arc<Activity>,
    service: Arc<dyn ActivityService>,
    slot: OwnedSemaphorePermit,
    shutdown: Shutdown,
) {
    let started = Instant::now();
    let task_id: Arc<str> = task.token.short_id().into();
    let handler = activity.handler();
    let control = Arc::new(TaskControl::new());
    let heartbeat = Heartbeat::start(
        service.clone(),
        task.token.clone(),
        activity.config.heartbeat_interval,
        control.clone(),
    );
    tracing::debug!(activity = activity.name(), task = %task_id, version = %handler.version, "task started");

    let outcome = if shutdown.is_grace_expired() {
        // Handed out by a poll that was in flight when the grace period ran
        // out: hand it straight back so it can be retried elsewhere.
        Outcome::Fault(Fault::Stopped(StopReason::Shutdown))
    } else {
        let ctx = TaskContext {
            activity: activity.name().into(),
            task_id: task_id.clone(),
            limits: activity.config.limits,
            control: control.clone(),
        };
        let guest = handler.run(&task.input, &ctx);
        tokio::pin!(guest);
        let mut stop_sent = false;
        loop {
            tokio::select! {
                outcome = &mut guest => break outcome,
                () = shutdown.grace_expired(), if !stop_sent => {
                    stop_sent = true;
                    control.stop(StopReason::Shutdown);
                }
            }
        }
    };
    let ran_for = started.elapsed();
    if outcome == Outcome::Fault(Fault::Stopped(StopReason::Shutdown)) {
        shutdown.record_handed_back();
    }

    let report = report::from_outcome(
        outcome,
        report::LimitSource::Activity(activity.name()),
        &service.limits(),
    );
    let delivery = report::deliver(service.as_ref(), &task.token, report).await;
    let beats = heartbeat.stop().await;
    drop(slot);

    let total = started.elapsed();
    let (activity, version) = (activity.name(), handler.version.as_str());
    match &delivery {
        Delivery::Delivered(Report::Success { .. }) => tracing::info!(
            activity, task = %task_id, version, ran = ?ran_for, total = ?total,
            heartbeats = beats.sent, "task succeeded"
        ),
        Delivery::Delivered(Report::Failure { error, cause }) => tracing::info!(
            activity, task = %task_id, version, ran = ?ran_for, total = ?total,
            heartbeats = beats.sent, error = %error, cause = %first_line(cause), "task failed"
        ),
        Delivery::Delivered(Report::Nothing { .. }) | Delivery::NotSent => tracing::info!(
            activity, task = %task_id, version, ran = ?ran_for,
            reason = ?control.stop_reason(), "task abandoned: the service ended it"
        ),
        Delivery::TaskGone(code) => tracing::warn!(
            activity, task = %task_id, version, ran = ?ran_for,
            "task result not delivered: the service ended the task first ({code})"
        ),
        Delivery::Refused(e) => tracing::error!(
            activity, task = %task_id, version, ran = ?ran_for,
            "task result refused by the service: {e}"
        ),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
