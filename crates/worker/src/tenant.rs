//! Tenants: groups of activities with caps across all of them.
//!
//! A tenant's caps are taken together with the activity's own slot, before
//! polling: one task out of `max_concurrent`, and the task's memory limit
//! plus its host memory limit (in MiB) out of `max_memory`. A tenant that is
//! at its caps simply stops polling, so its tasks wait in the service's queue
//! rather than in this process, and other tenants' pollers are unaffected.
//!
//! The caps follow the config. One [`Tenant`] per name lives as long as the
//! worker (or as long as tasks admitted under it run) and a reload
//! [resizes](Tenant::resize) it in place, so every task admitted under the
//! old caps stays counted: a raised cap admits waiting pollers at once, and a
//! lowered one admits nobody new until the tasks still running fit under it.
//! That is also why this is a counter under a mutex rather than semaphores:
//! a semaphore cannot take back permits that are handed out.
//!
//! Waiters are served in arrival order, so a task that needs much memory is
//! not overtaken forever by smaller ones; a poller that has waited
//! [`LONG_WAIT`] says which tenant and keys it waits on.

use crate::config::TenantConfig;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a poller waits for room under its tenant before it says so.
pub(crate) const LONG_WAIT: Duration = Duration::from_secs(30);

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// Caps and what is taken out of them.
#[derive(Debug)]
struct State {
    max_concurrent: Option<usize>,
    /// `max_memory` in MiB.
    max_memory: Option<u64>,
    running: usize,
    /// MiB reserved by running tasks (and polls in flight).
    memory: u64,
    /// Tickets of the waiters, oldest first; only the first may enter.
    queue: VecDeque<u64>,
    next_ticket: u64,
}

impl State {
    fn fits(&self, memory: u64) -> bool {
        self.max_concurrent.is_none_or(|cap| self.running < cap)
            && self
                .max_memory
                .is_none_or(|cap| self.memory.saturating_add(memory) <= cap)
    }
}

#[derive(Debug)]
struct Shared {
    name: String,
    state: Mutex<State>,
    /// Woken whenever something could let a waiter in: a task ended, a
    /// waiter entered or left, the caps changed.
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement; a panic elsewhere
        // while it was held does not make it wrong.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One tenant's caps and usage, shared by every poller of its activities.
#[derive(Debug, Clone)]
pub(crate) struct Tenant(Arc<Shared>);

impl Tenant {
    /// A tenant with the caps of `config` and nothing running.
    pub(crate) fn new(config: &TenantConfig) -> Tenant {
        Tenant(Arc::new(Shared {
            name: config.name.clone(),
            state: Mutex::new(State {
                max_concurrent: config.max_concurrent,
                max_memory: config.max_memory.map(mib),
                running: 0,
                memory: 0,
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
            changed: Notify::new(),
        }))
    }

    /// Sets the caps from `config` (same tenant, new config). Tasks running
    /// keep what they hold and are counted against the new caps. Returns
    /// what changed, for the log, or `None` if nothing did.
    pub(crate) fn resize(&self, config: &TenantConfig) -> Option<String> {
        let mut s = self.0.lock();
        let (concurrent, memory) = (config.max_concurrent, config.max_memory.map(mib));
        if (s.max_concurrent, s.max_memory) == (concurrent, memory) {
            return None;
        }
        let show = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        let change = format!(
            "max_concurrent {} -> {}, max_memory {} -> {} (running now: {} tasks, {} MiB)",
            show(s.max_concurrent.map(|n| n.to_string())),
            show(concurrent.map(|n| n.to_string())),
            show(s.max_memory.map(|m| format!("{m} MiB"))),
            show(memory.map(|m| format!("{m} MiB"))),
            s.running,
            s.memory,
        );
        s.max_concurrent = concurrent;
        s.max_memory = memory;
        drop(s);
        self.0.changed.notify_waiters();
        Some(change)
    }

    /// The gate one source's pollers take their tenant permits from;
    /// `waiter` names the source in the long-wait log (`activity.NAME`).
    pub(crate) fn gate(&self, waiter: &str, memory_keys: &str) -> Arc<TenantGate> {
        Arc::new(TenantGate {
            tenant: self.clone(),
            waiter: waiter.to_string(),
            memory_keys: memory_keys.to_string(),
        })
    }

    /// True while a task admitted under it runs or a poller waits on it.
    pub(crate) fn in_use(&self) -> bool {
        let s = self.0.lock();
        s.running > 0 || !s.queue.is_empty()
    }
}

/// What one source's pollers take tenant permits from: the tenant, and the
/// source's keys for the log.
#[derive(Debug)]
pub(crate) struct TenantGate {
    tenant: Tenant,
    waiter: String,
    memory_keys: String,
}

/// Held while a task of the tenant runs (or a poll for one is in flight).
#[derive(Debug)]
pub(crate) struct TenantPermit {
    shared: Arc<Shared>,
    memory: u64,
}

impl Drop for TenantPermit {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.running -= 1;
        s.memory -= self.memory;
        drop(s);
        self.shared.changed.notify_waiters();
    }
}

/// A waiter's place in the queue; leaving it (cancelled by shutdown or a
/// reload) lets the next one in. Entering removes it first, so then its
/// drop does nothing.
struct Place<'a> {
    shared: &'a Shared,
    ticket: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        if let Some(i) = s.queue.iter().position(|t| *t == self.ticket) {
            s.queue.remove(i);
            drop(s);
            self.shared.changed.notify_waiters();
        }
    }
}

impl TenantGate {
    /// Waits until one more task with `memory` bytes of limits fits under
    /// the tenant's caps (as they are when it gets its turn).
    pub(crate) async fn acquire(&self, memory: u64) -> TenantPermit {
        let shared = &*self.tenant.0;
        let need = mib(memory);
        let place = {
            let mut s = shared.lock();
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            s.queue.push_back(ticket);
            Place { shared, ticket }
        };
        let started = tokio::time::Instant::now();
        let (mut looked, mut said) = (false, false);
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a change made between the look
            // and the wait still wakes this waiter.
            changed.as_mut().enable();
            {
                let mut s = shared.lock();
                if s.queue.front() == Some(&place.ticket) && s.fits(need) {
                    s.queue.pop_front();
                    s.running += 1;
                    s.memory += need;
                    drop(s);
                    // The next in line may fit too.
                    shared.changed.notify_waiters();
                    return TenantPermit {
                        shared: self.tenant.0.clone(),
                        memory: need,
                    };
                }
                // Said once, when it is this waiter's turn and the caps
                // are what keeps it out.
                if !looked && s.queue.front() == Some(&place.ticket) {
                    looked = true;
                    tracing::debug!(
                        source = %self.waiter,
                        tenant = %shared.name,
                        need_mib = need,
                        running = s.running,
                        memory_mib = s.memory,
                        "waiting for room under tenant {}",
                        shared.name
                    );
                }
            }
            if said {
                changed.await;
                continue;
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(started + LONG_WAIT) => {
                    said = true;
                    self.say_long_wait(need, started.elapsed());
                }
            }
        }
    }

    fn say_long_wait(&self, need: u64, waited: Duration) {
        let s = self.tenant.0.lock();
        let name = &self.tenant.0.name;
        let cap = |v: Option<String>| v.unwrap_or_else(|| "no cap".into());
        tracing::info!(
            source = %self.waiter,
            tenant = %name,
            "{} has waited {} for room under tenant {name}: running {} of tenant.{name}.max_concurrent ({}), \
             {} MiB of tenant.{name}.max_memory ({}) reserved, {} MiB more needed ({}); it polls again \
             when running tasks finish or a reload raises the caps",
            self.waiter,
            humantime::format_duration(Duration::from_secs(waited.as_secs())),
            s.running,
            cap(s.max_concurrent.map(|n| n.to_string())),
            s.memory,
            cap(s.max_memory.map(|m| format!("{m} MiB"))),
            need,
            self.memory_keys,
        );
    }
}

/// Everything a running task holds: its activity slot and tenant permit.
#[derive(Debug)]
pub(crate) struct Slot {
    _activity: crate::slots::SlotPermit,
    _tenant: Option<TenantPermit>,
}

impl Slot {
    /// Bundles the permits.
    pub(crate) fn new(activity: crate::slots::SlotPermit, tenant: Option<TenantPermit>) -> Slot {
        Slot {
            _activity: activity,
            _tenant: tenant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(concurrent: Option<usize>, memory_mib: Option<u64>) -> TenantConfig {
        TenantConfig {
            name: "t".into(),
            max_concurrent: concurrent,
            max_memory: memory_mib.map(|m| m << 20),
        }
    }

    fn gate(concurrent: Option<usize>, memory_mib: Option<u64>) -> (Tenant, Arc<TenantGate>) {
        let t = Tenant::new(&config(concurrent, memory_mib));
        let g = t.gate("activity.a", "activity.a.memory_limit + host_memory_limit");
        (t, g)
    }

    const MIB: u64 = 1 << 20;

    async fn blocks(gate: &TenantGate, memory: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(50), gate.acquire(memory))
            .await
            .is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_cap_holds_across_activities() {
        let (t, a) = gate(Some(2), None);
        let b = t.gate("activity.b", "");
        let first = a.acquire(MIB).await;
        let _second = b.acquire(MIB).await;
        assert!(blocks(&a, MIB).await);
        assert!(blocks(&b, MIB).await);
        drop(first);
        assert!(!blocks(&b, MIB).await);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_cap_counts_each_tasks_limit() {
        let (_t, g) = gate(None, Some(100));
        let big = g.acquire(64 * MIB).await;
        assert!(blocks(&g, 64 * MIB).await, "128 MiB would exceed 100 MiB");
        assert!(!blocks(&g, 30 * MIB).await, "94 MiB fits");
        drop(big);
        assert!(!blocks(&g, 64 * MIB).await);
    }

    #[tokio::test(start_paused = true)]
    async fn no_caps_never_block() {
        let (_t, g) = gate(None, None);
        let _held: Vec<_> =
            futures_util::future::join_all((0..100).map(|_| g.acquire(1 << 30))).await;
        assert!(!blocks(&g, 1 << 30).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_raised_cap_lets_a_waiting_poller_in_at_once() {
        let (t, g) = gate(None, Some(100));
        let _small = g.acquire(48 * MIB).await;
        let waiter = tokio::spawn({
            let g = t.gate("activity.big", "");
            async move { g.acquire(80 * MIB).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "48 + 80 MiB exceeds 100 MiB");
        assert!(t.resize(&config(None, Some(200))).is_some());
        let permit = tokio::time::timeout(Duration::from_millis(1), waiter)
            .await
            .expect("the raised cap did not wake the waiter")
            .unwrap();
        assert_eq!(t.0.lock().memory, 128);
        drop(permit);
        assert_eq!(t.0.lock().memory, 48);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lowered_cap_admits_nobody_until_the_running_tasks_fit_under_it() {
        let (t, g) = gate(Some(4), None);
        let mut running: Vec<_> = futures_util::future::join_all((0..3).map(|_| g.acquire(MIB)))
            .await
            .into_iter()
            .collect();
        t.resize(&config(Some(2), None));
        assert!(blocks(&g, MIB).await, "3 running, cap 2");
        running.pop();
        assert!(blocks(&g, MIB).await, "2 running, cap 2");
        running.pop();
        let third = g.acquire(MIB).await;
        assert!(blocks(&g, MIB).await, "1 + 1 running, cap 2");
        drop((running, third));
        assert!(!blocks(&g, MIB).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cap_added_by_a_reload_counts_tasks_admitted_without_one() {
        let (t, g) = gate(None, None);
        let held = g.acquire(64 * MIB).await;
        t.resize(&config(Some(1), Some(100)));
        assert!(blocks(&g, MIB).await, "the uncapped task counts");
        drop(held);
        let _one = g.acquire(64 * MIB).await;
        assert!(blocks(&g, MIB).await);
        // Removing the caps lets everyone in.
        t.resize(&config(None, None));
        assert!(!blocks(&g, 1 << 30).await);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_enter_in_order_and_a_cancelled_one_steps_aside() {
        let (t, g) = gate(None, Some(100));
        let held = g.acquire(90 * MIB).await;
        // A big waiter first: smaller ones behind it must not overtake it.
        let big = tokio::spawn({
            let g = t.gate("activity.big", "");
            async move { g.acquire(80 * MIB).await }
        });
        tokio::task::yield_now().await;
        assert!(blocks(&g, 5 * MIB).await, "5 MiB fits but is behind 80 MiB");
        drop(held);
        let big = tokio::time::timeout(Duration::from_millis(1), big)
            .await
            .expect("the first waiter got in")
            .unwrap();
        // A waiter that gives up (shutdown, reload) lets the next one in.
        let stuck = tokio::spawn({
            let g = t.gate("activity.stuck", "");
            async move { g.acquire(50 * MIB).await }
        });
        tokio::task::yield_now().await;
        assert!(blocks(&g, 10 * MIB).await, "behind the stuck waiter");
        stuck.abort();
        let _ = stuck.await;
        assert!(!blocks(&g, 10 * MIB).await);
        assert!(t.in_use());
        drop(big);
        assert!(!t.in_use());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_says_which_tenant_and_keys_hold_the_poller_back() {
        let (out, _log) = crate::testing::capture_logs();
        let text = || out.text();

        let t = Tenant::new(&TenantConfig {
            name: "acme".into(),
            max_concurrent: None,
            max_memory: Some(100 * MIB),
        });
        let _held = t.gate("activity.small", "").acquire(48 * MIB).await;
        let big = t.gate(
            "activity.big",
            "activity.big.memory_limit + activity.big.host_memory_limit",
        );
        let waiting =
            tokio::time::timeout(LONG_WAIT - Duration::from_secs(1), big.acquire(80 * MIB));
        assert!(waiting.await.is_err());
        assert!(!text().contains("has waited"), "said too early: {}", text());
        assert!(
            tokio::time::timeout(LONG_WAIT + Duration::from_secs(1), big.acquire(80 * MIB))
                .await
                .is_err()
        );
        let said = text();
        assert!(
            said.contains(
                "activity.big has waited 30s for room under tenant acme: running 1 of \
                 tenant.acme.max_concurrent (no cap), 48 MiB of tenant.acme.max_memory (100 MiB) reserved, \
                 80 MiB more needed (activity.big.memory_limit + activity.big.host_memory_limit)"
            ),
            "{said}"
        );
    }
}
