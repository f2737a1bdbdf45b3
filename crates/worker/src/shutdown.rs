//! Staged shutdown.
//!
//! Stopping loses nothing if it happens in order: first stop starting new
//! polls (`initiate`), but let polls already in flight come back, because a
//! poll the worker walks away from can still be handed a task that then sits
//! unseen until it times out; run what they bring. Give running tasks the
//! grace period. When it runs out (`expire_grace`), stop the tasks still
//! running and report them failed with `WasmActivity.WorkerShutdown`, so a
//! state machine's `Retry` reschedules them at once instead of waiting for a
//! timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_util::sync::CancellationToken;

/// The two shutdown stages, shared by pollers and tasks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shutdown {
    initiated: CancellationToken,
    grace_expired: CancellationToken,
    handed_back: Arc<AtomicUsize>,
}

impl Shutdown {
    /// A shutdown that has not started.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A shutdown for one source: initiating it stops only that source's
    /// pollers; the worker's own stages still reach it.
    pub(crate) fn child(&self) -> Shutdown {
        Shutdown {
            initiated: self.initiated.child_token(),
            grace_expired: self.grace_expired.clone(),
            handed_back: self.handed_back.clone(),
        }
    }

    /// Stage 1: no new polls.
    pub(crate) fn initiate(&self) {
        self.initiated.cancel();
    }

    /// Stage 2: stop running tasks. Implies stage 1.
    pub(crate) fn expire_grace(&self) {
        self.initiated.cancel();
        self.grace_expired.cancel();
    }

    /// True once stage 1 has begun.
    pub(crate) fn is_initiated(&self) -> bool {
        self.initiated.is_cancelled()
    }

    /// True once stage 2 has begun.
    pub(crate) fn is_grace_expired(&self) -> bool {
        self.grace_expired.is_cancelled()
    }

    /// Counts a task that was stopped (or never started) because the grace
    /// period ran out.
    pub(crate) fn record_handed_back(&self) {
        self.handed_back.fetch_add(1, Ordering::SeqCst);
    }

    /// Tasks stopped because the grace period ran out; zero means the drain
    /// was clean.
    pub(crate) fn handed_back(&self) -> usize {
        self.handed_back.load(Ordering::SeqCst)
    }

    /// Resolves at stage 1.
    pub(crate) async fn initiated(&self) {
        self.initiated.cancelled().await
    }

    /// Resolves at stage 2.
    pub(crate) async fn grace_expired(&self) {
        self.grace_expired.cancelled().await
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = int.recv() => tracing::info!("received SIGINT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_expiry_implies_initiation() {
        let s = Shutdown::new();
        assert!(!s.is_initiated() && !s.is_grace_expired());
        s.initiate();
        assert!(s.is_initiated() && !s.is_grace_expired());
        let t = Shutdown::new();
        t.expire_grace();
        assert!(t.is_initiated() && t.is_grace_expired());
    }
}
