//! Tenants: groups of activities with caps across all of them.
//!
//! A tenant's caps are semaphores taken together with the activity's own
//! slot, before polling: one unit of `max_concurrent`, and the task's memory
//! limit plus its host memory limit (in MiB) out of `max_memory`. A tenant that is at its caps simply
//! stops polling, so its tasks wait in the service's queue rather than in
//! this process, and other tenants' pollers are unaffected.

use crate::config::TenantConfig;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One tenant's caps.
#[derive(Debug)]
pub struct TenantGate {
    /// The tenant's name.
    pub name: String,
    concurrent: Option<Arc<Semaphore>>,
    memory_mib: Option<Arc<Semaphore>>,
}

/// Held while a task of the tenant runs (or a poll for one is in flight).
#[derive(Debug)]
pub struct TenantPermit {
    _concurrent: Option<OwnedSemaphorePermit>,
    _memory: Option<OwnedSemaphorePermit>,
}

fn mib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX)
}

impl TenantGate {
    /// A gate with the tenant's caps.
    pub fn new(config: &TenantConfig) -> Arc<TenantGate> {
        Arc::new(TenantGate {
            name: config.name.clone(),
            concurrent: config.max_concurrent.map(|n| Arc::new(Semaphore::new(n))),
            memory_mib: config
                .max_memory
                .map(|m| Arc::new(Semaphore::new(mib(m) as usize))),
        })
    }

    /// Waits until one more task with `memory` bytes of limit fits.
    pub async fn acquire(&self, memory: u64) -> TenantPermit {
        let concurrent = match &self.concurrent {
            Some(s) => Some(
                s.clone()
                    .acquire_owned()
                    .await
                    .expect("tenant semaphores are never closed"),
            ),
            None => None,
        };
        let memory = match &self.memory_mib {
            Some(s) => Some(
                s.clone()
                    .acquire_many_owned(mib(memory))
                    .await
                    .expect("tenant semaphores are never closed"),
            ),
            None => None,
        };
        TenantPermit {
            _concurrent: concurrent,
            _memory: memory,
        }
    }
}

/// Everything a running task holds: its activity slot and tenant permit.
#[derive(Debug)]
pub struct Slot {
    _activity: OwnedSemaphorePermit,
    _tenant: Option<TenantPermit>,
}

impl Slot {
    /// Bundles the permits.
    pub fn new(activity: OwnedSemaphorePermit, tenant: Option<TenantPermit>) -> Slot {
        Slot {
            _activity: activity,
            _tenant: tenant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gate(concurrent: Option<usize>, memory: Option<u64>) -> Arc<TenantGate> {
        TenantGate::new(&TenantConfig {
            name: "t".into(),
            max_concurrent: concurrent,
            max_memory: memory,
        })
    }

    async fn blocks(gate: &TenantGate, memory: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(50), gate.acquire(memory))
            .await
            .is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_cap_holds_across_activities() {
        let g = gate(Some(2), None);
        let a = g.acquire(1 << 20).await;
        let _b = g.acquire(1 << 20).await;
        assert!(blocks(&g, 1 << 20).await);
        drop(a);
        assert!(!blocks(&g, 1 << 20).await);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_cap_counts_each_tasks_limit() {
        let g = gate(None, Some(100 << 20));
        let big = g.acquire(64 << 20).await;
        assert!(blocks(&g, 64 << 20).await, "128 MiB would exceed 100 MiB");
        assert!(!blocks(&g, 30 << 20).await, "94 MiB fits");
        drop(big);
        assert!(!blocks(&g, 64 << 20).await);
    }

    #[tokio::test(start_paused = true)]
    async fn no_caps_never_block() {
        let g = gate(None, None);
        let _held: Vec<_> =
            futures_util::future::join_all((0..100).map(|_| g.acquire(1 << 30))).await;
        assert!(!blocks(&g, 1 << 30).await);
    }
}
