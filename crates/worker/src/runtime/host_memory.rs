//! Host memory a guest makes the host hold, counted per task.
//!
//! Linear memory is bounded by the [`ResourceLimiter`](wasmtime::ResourceLimiter),
//! but a guest can also make the *host* allocate: `wasi:http` fields, requests
//! and bodies, streams, pollables, resource-table growth, strings and lists
//! lifted out of its memory. None of that is visible to the limiter, and a
//! guest with 16 MiB of linear memory once grew the host to 2 GB that way.
//!
//! Rather than estimating each kind of resource, the host's global allocator
//! ([`MeteredAllocator`]) charges every allocation made while a task's guest
//! future (or a future running a guest's HTTP request) is being polled to
//! that task's [`HostMeter`], and credits every free made there. Enforcement
//! happens where the host regains control: at every WASI and HTTP host call,
//! at each epoch tick and after every poll of the guest. What one host call
//! can allocate is itself bounded (random bytes, header fields, log text), so
//! a task overshoots its budget by at most one call's worth before it is
//! stopped and reported as `WasmActivity.HostResourceLimit`.
//!
//! Not counted: memory allocated outside those polls on a guest's behalf
//! (a granted directory's reads on the blocking pool, pooled HTTP connection
//! buffers); the README's security model lists them.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::task::{Context, Poll};

/// One task's count of host memory held for its guest.
#[derive(Debug)]
pub(crate) struct HostMeter {
    live: AtomicIsize,
    peak: AtomicIsize,
    limit: usize,
    /// Latched once the budget was seen exceeded: the task is over, even if
    /// frees bring the count back down before it is stopped.
    tripped: AtomicBool,
    /// Woken when a future outside the guest's polls (an HTTP response
    /// being read) trips the meter while the guest itself is parked.
    notify: tokio::sync::Notify,
}

impl HostMeter {
    /// A meter allowing `limit` bytes.
    pub(crate) fn new(limit: u64) -> Arc<HostMeter> {
        Arc::new(HostMeter {
            live: AtomicIsize::new(0),
            peak: AtomicIsize::new(0),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            tripped: AtomicBool::new(false),
            notify: tokio::sync::Notify::new(),
        })
    }

    /// Bytes charged now (allocations minus frees made in metered polls).
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed).max(0) as usize
    }

    /// The most charged at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed).max(0) as usize
    }

    /// The budget.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// True once the task has held more than its budget (latched).
    pub(crate) fn exceeded(&self) -> bool {
        if self.tripped.load(Ordering::Relaxed) {
            return true;
        }
        if self.live() > self.limit {
            self.tripped.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Checks the budget from outside the guest's polls, and wakes
    /// [`HostMeter::tripped`] if it is spent. Never call it from the
    /// allocator (waking may allocate).
    pub(crate) fn check(&self) -> bool {
        let over = self.exceeded();
        if over {
            self.notify.notify_waiters();
        }
        over
    }

    /// Completes once [`HostMeter::check`] found the budget spent.
    pub(crate) async fn tripped(&self) {
        loop {
            let notified = self.notify.notified();
            if self.tripped.load(Ordering::Relaxed) {
                return;
            }
            notified.await;
        }
    }

    /// Charges bytes the allocator could not see being allocated for this
    /// task (kept memory grown outside the meter, see [`outside`]).
    pub(crate) fn charge(&self, bytes: usize) {
        self.add(bytes as isize);
    }

    /// Takes bytes off the count that were allocated in a metered poll and
    /// handed to code that frees them outside one (a request body given to
    /// the connection that sends it), so they are not charged forever.
    pub(crate) fn release(&self, bytes: usize) {
        self.add(-(bytes as isize));
    }

    fn add(&self, delta: isize) {
        let now = self.live.fetch_add(delta, Ordering::Relaxed) + delta;
        if delta > 0 && now > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Runs `f` with allocations charged to this meter.
    pub(crate) fn scope<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        let _guard = Entered::new(self);
        f()
    }
}

thread_local! {
    /// The meter allocations on this thread are charged to, if any. A raw
    /// pointer: the allocator must not touch reference counts, and the
    /// [`Entered`] guard that sets it holds an `Arc` for as long as it is set.
    static CURRENT: Cell<*const HostMeter> = const { Cell::new(std::ptr::null()) };
}

struct Entered {
    previous: *const HostMeter,
    _meter: Arc<HostMeter>,
}

impl Entered {
    fn new(meter: &Arc<HostMeter>) -> Entered {
        let previous = CURRENT.with(|c| c.replace(Arc::as_ptr(meter)));
        Entered {
            previous,
            _meter: meter.clone(),
        }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

fn account(delta: isize) {
    let _ = CURRENT.try_with(|c| {
        let meter = c.get();
        if !meter.is_null() {
            // SAFETY: set only by `Entered`, which keeps the meter alive
            // until it resets the pointer.
            unsafe { (*meter).add(delta) };
        }
    });
}

/// True if the process's global allocator is [`MeteredAllocator`]: without
/// it nothing is counted and host memory budgets are not enforced.
pub(crate) fn is_metered() -> bool {
    let meter = HostMeter::new(u64::MAX);
    let probe = meter.scope(|| std::hint::black_box(vec![0u8; 4096]));
    let seen = meter.peak() >= 4096;
    drop(probe);
    seen
}

/// Runs `f` with no meter charged: for memory another task allocated and
/// frees (a connection's read buffer), which must be neither charged nor
/// credited. Charge what the caller keeps explicitly.
pub(crate) fn outside<R>(f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(std::ptr::null()));
    let restore = Restore(previous);
    let out = f();
    drop(restore);
    out
}

struct Restore(*const HostMeter);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// A future whose polls charge no meter (see [`outside`]).
pub(crate) struct Outside<F>(pub Pin<Box<F>>);

impl<F: Future> Future for Outside<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        outside(|| this.0.as_mut().poll(cx))
    }
}

/// A future whose polls, and whose drop, are charged to a meter.
pub(crate) struct Metered<F> {
    meter: Arc<HostMeter>,
    inner: Option<Pin<Box<F>>>,
}

impl<F> Metered<F> {
    /// Wraps `inner`.
    pub(crate) fn new(meter: Arc<HostMeter>, inner: F) -> Metered<F> {
        Metered {
            meter,
            inner: Some(Box::pin(inner)),
        }
    }
}

impl<F> Drop for Metered<F> {
    fn drop(&mut self) {
        // A future dropped before it completes (a guest abandoning an HTTP
        // request) frees what it holds here: credit it to the same meter.
        let _guard = Entered::new(&self.meter);
        drop(self.inner.take());
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _guard = Entered::new(&this.meter);
        match this.inner.as_mut() {
            Some(inner) => {
                let poll = inner.as_mut().poll(cx);
                if poll.is_ready() {
                    this.inner = None;
                }
                poll
            }
            None => Poll::Pending,
        }
    }
}

/// The process's allocator, charging allocations made inside a metered poll
/// to its task. Outside one, the cost is one thread-local read.
#[derive(Debug, Default)]
pub struct MeteredAllocator<A>(pub A);

// SAFETY: every call is forwarded to the wrapped allocator unchanged; the
// accounting touches only a thread-local and an atomic, never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for MeteredAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The unit-test binary installs the metered allocator (lib.rs), as the
    // `wasm-activity` binary does.

    #[test]
    fn allocations_in_scope_are_charged_and_frees_credited() {
        let meter = HostMeter::new(1 << 20);
        let kept = meter.scope(|| vec![0u8; 300_000]);
        assert!(meter.live() >= 300_000, "{}", meter.live());
        let outside = vec![1u8; 500_000];
        assert!(meter.live() < 400_000, "not charged outside the scope");
        meter.scope(|| drop(kept));
        assert!(meter.live() < 10_000, "{}", meter.live());
        assert!(meter.peak() >= 300_000);
        drop(outside);
    }

    #[test]
    fn the_unit_tests_run_metered() {
        assert!(is_metered());
    }

    #[test]
    fn the_budget_is_exceeded_past_the_limit_and_stays_so() {
        let meter = HostMeter::new(100_000);
        let held: Vec<Vec<u8>> = meter.scope(|| (0..20).map(|_| vec![0u8; 10_000]).collect());
        assert!(meter.exceeded(), "{}", meter.live());
        meter.scope(|| drop(held));
        assert!(meter.live() < 100_000);
        assert!(meter.exceeded(), "latched: the task is over");
    }

    #[test]
    fn a_metered_future_charges_only_its_own_polls() {
        let meter = HostMeter::new(1 << 20);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let v = rt.block_on(Metered::new(meter.clone(), async {
            tokio::task::yield_now().await;
            vec![0u8; 200_000]
        }));
        assert!(meter.live() >= 200_000);
        drop(v);
        assert!(meter.live() >= 200_000, "freed outside: not credited");
    }
}
