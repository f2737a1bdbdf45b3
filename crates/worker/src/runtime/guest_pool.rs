//! Where guest code runs: a tokio runtime of its own, apart from the one
//! that polls, heartbeats, reports, handles signals and serves the embedded
//! endpoint and metrics.
//!
//! Epoch interruption makes a guest yield while it runs wasm, but not while
//! it is inside a host call (a WASI function, a `log`, lifting a large
//! string). Two guests looping on long host calls once held both worker
//! threads of the shared runtime for seconds at a time: every other task's
//! heartbeats timed out and SIGINT went unanswered. With guests on their own
//! threads, the worst a guest can do is slow other guests, by at most one
//! host call each (every host call whose cost a guest controls is bounded,
//! see `limits`), and the control plane keeps its threads.
//!
//! The guest threads also run at a lower scheduling priority (nice 10 on
//! Linux), so when both kinds of work want the CPU, the control plane gets
//! it first: a heartbeat costs microseconds, a guest may want all the CPU
//! there is.

use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Niceness of the guest threads.
const GUEST_NICE: i32 = 10;
/// Polls between a guest worker's looks at timers, I/O and the shared queue.
const SCHEDULER_CHECK_INTERVAL: u32 = 2;

/// The guests' runtime.
#[derive(Debug)]
pub(crate) struct GuestPool {
    runtime: Option<tokio::runtime::Runtime>,
}

impl GuestPool {
    /// A runtime with one worker per core.
    pub(crate) fn new() -> io::Result<Arc<GuestPool>> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("wasm-guest")
            .on_thread_start(lower_priority)
            // Busy guests yield every epoch tick (10 ms) and go back on
            // their worker's own queue. With tokio's defaults a worker looks
            // at timers, I/O and the shared queue only every 61 polls, so a
            // guest woken by its timer waited over half a second behind
            // busy ones; a quiet tenant's 6 s sleep (60 wake-ups) took over
            // a minute beside hostile guests. Looking every other poll costs
            // a non-blocking check per 10 ms slice.
            .event_interval(SCHEDULER_CHECK_INTERVAL)
            .global_queue_interval(SCHEDULER_CHECK_INTERVAL)
            .enable_all()
            .build()?;
        Ok(Arc::new(GuestPool {
            runtime: Some(runtime),
        }))
    }

    /// Runs `future` on a guest thread. Dropping the returned handle aborts
    /// it (at its next await: a guest inside a host call finishes the call).
    pub(crate) fn spawn<F>(&self, future: F) -> AbortOnDrop<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the guest runtime lives until drop");
        AbortOnDrop(runtime.spawn(future))
    }
}

impl Drop for GuestPool {
    fn drop(&mut self) {
        // Dropping a runtime from async code would block; guests still
        // running are abandoned (their tasks were stopped already).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A join handle that aborts its task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread's own id; on Linux
    // a thread id set with PRIO_PROCESS changes that thread only.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        // Relative to the process's own niceness (a unit file's `Nice=`),
        // so the guests always rank below the control plane.
        libc::setpriority(libc::PRIO_PROCESS, tid, (current + GUEST_NICE).min(19));
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn guests_run_on_their_own_lower_priority_threads() {
        let pool = GuestPool::new().unwrap();
        let (name, (nice, process)) = pool
            .spawn(async {
                let name = std::thread::current().name().map(str::to_string);
                // SAFETY: reads the calling thread's and the process's priority.
                let (nice, process) = unsafe {
                    *libc::__errno_location() = 0;
                    (
                        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t),
                        libc::getpriority(libc::PRIO_PROCESS, libc::getpid() as libc::id_t),
                    )
                };
                (name, (nice, process))
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("wasm-guest"));
        assert!(
            nice - process >= GUEST_NICE.min(19 - process),
            "guest thread at {nice}, process at {process}"
        );
        drop(pool);
    }

    #[tokio::test]
    async fn a_dropped_handle_aborts_the_guest() {
        let pool = GuestPool::new().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = pool.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        drop(handle);
        // The sender is dropped with the aborted task.
        assert!(rx.await.is_err());
        drop(pool);
    }
}
