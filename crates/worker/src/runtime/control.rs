//! The shared switchboard of one running task.
//!
//! Several parties affect a running guest without touching its store: the
//! heartbeat learns the task is gone or cancelled, shutdown runs out of grace,
//! and the guest itself reports progress. They meet here. A soft cancel only
//! turns the guest's `cancelled()` true; a hard stop also interrupts the guest
//! at its next epoch check or wakes the host from an await it is blocked in.

use super::guest_log::char_floor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use tokio_util::sync::CancellationToken;

/// Longest progress report kept, in bytes (the service takes less); longer
/// reports are cut, by the guest's log before redaction and here after it.
pub(super) const MAX_PROGRESS_BYTES: usize = 32 * 1024;

/// Why a guest was stopped before it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The service says the task is over; nothing is reported.
    TaskGone {
        /// The service's error code, e.g. `TaskTimedOut`.
        code: String,
    },
    /// The worker is shutting down and the grace period ran out.
    Shutdown,
    /// The service asked to cancel the task and the guest did not return
    /// within its cancel grace.
    CancelGraceExpired,
}

/// Signals shared between a task's guest, heartbeat and supervisor.
#[derive(Debug, Default)]
pub struct TaskControl {
    cancel_requested: AtomicBool,
    service_cancel: CancellationToken,
    stop: CancellationToken,
    reason: OnceLock<StopReason>,
    progress: Mutex<Option<String>>,
}

impl TaskControl {
    /// A control with nothing signalled.
    pub fn new() -> Self {
        Self::default()
    }

    /// The service asked to cancel the task: the guest's `cancelled()`
    /// returns true from now on, and the task will be reported canceled.
    pub(crate) fn request_cancel(&self) {
        self.cancel_requested.store(true, Ordering::SeqCst);
        self.service_cancel.cancel();
    }

    /// True once the service asked to cancel the task.
    pub(crate) fn is_service_cancelled(&self) -> bool {
        self.service_cancel.is_cancelled()
    }

    /// Resolves once the service asks to cancel the task.
    pub(crate) async fn service_cancelled(&self) {
        self.service_cancel.cancelled().await
    }

    /// Stops the guest. The first reason given wins.
    pub(crate) fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.cancel_requested.store(true, Ordering::SeqCst);
        self.stop.cancel();
    }

    /// Why the guest was stopped, if it was.
    pub(crate) fn stop_reason(&self) -> Option<&StopReason> {
        self.reason.get()
    }

    /// True once the guest should stop, softly or not.
    pub(crate) fn is_cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::SeqCst)
    }

    /// True once the guest must stop now.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves once [`TaskControl::stop`] is called.
    pub(crate) async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Records the guest's latest progress report, cut to a bounded size.
    pub(crate) fn set_progress(&self, mut details: String) {
        details.truncate(char_floor(details.as_bytes(), MAX_PROGRESS_BYTES));
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = Some(details);
    }

    /// The latest progress report.
    pub(crate) fn progress(&self) -> Option<String> {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stop_reason_wins_and_implies_cancel() {
        let c = TaskControl::new();
        assert!(!c.is_cancel_requested() && !c.is_stopped());
        c.stop(StopReason::Shutdown);
        c.stop(StopReason::TaskGone {
            code: "TaskTimedOut".into(),
        });
        assert_eq!(c.stop_reason(), Some(&StopReason::Shutdown));
        assert!(c.is_cancel_requested() && c.is_stopped());
    }

    #[test]
    fn soft_cancel_does_not_stop() {
        let c = TaskControl::new();
        c.request_cancel();
        assert!(c.is_cancel_requested() && c.is_service_cancelled());
        assert!(!c.is_stopped());
        assert_eq!(c.stop_reason(), None);
    }

    #[test]
    fn a_host_stop_is_not_a_service_cancel() {
        let c = TaskControl::new();
        c.stop(StopReason::Shutdown);
        assert!(c.is_cancel_requested());
        assert!(!c.is_service_cancelled());
    }

    #[test]
    fn progress_is_bounded_on_a_char_boundary() {
        let c = TaskControl::new();
        c.set_progress("é".repeat(MAX_PROGRESS_BYTES));
        let p = c.progress().unwrap();
        assert!(p.len() <= MAX_PROGRESS_BYTES);
        assert!(p.chars().all(|ch| ch == 'é'));
    }
}
