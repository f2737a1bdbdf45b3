//! Plumbing both halves of the endpoint share: one clock, one way to take
//! the state lock, one owner for background tasks, and request-scoped
//! cleanup. Shared so that the two halves cannot drift apart in how they
//! recover a poisoned lock or end their tasks at shutdown.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Wall-clock seconds since the epoch, as the AWS JSON protocol sends dates.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Takes a state lock. Sections under it are short and synchronous; a panic
/// in one leaves the state usable, so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The tasks one half of the endpoint starts (execution drivers, SWF task
/// timers): they end when `halt` fires, and shutdown waits for them.
#[derive(Debug)]
pub(crate) struct Background {
    halt: CancellationToken,
    tasks: TaskTracker,
}

impl Background {
    pub(crate) fn new(halt: CancellationToken) -> Background {
        Background {
            halt,
            tasks: TaskTracker::new(),
        }
    }

    /// Runs `task` until it ends or the endpoint halts.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let halt = self.halt.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = task => {}
                () = halt.cancelled() => {}
            }
        });
    }

    /// Tasks started and not yet ended.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Halts every task and waits for them to end.
    pub(crate) async fn stopped(&self) {
        self.halt.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Runs its closure when dropped: bookkeeping that must happen however a
/// request ends, including when its client disconnects and the request's
/// future is dropped mid-wait.
pub(crate) struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    pub(crate) fn new(f: F) -> Self {
        OnDrop(Some(f))
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
