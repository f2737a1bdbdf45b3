//! A source's `max_concurrent`, kept across config reloads.
//!
//! A changed activity is replaced by a new poller while the old one's tasks
//! finish. If the new poller counted its slots afresh, the activity would
//! briefly run its old tasks *and* a full new allowance: more than
//! `max_concurrent`, which a user sets to protect what the handler calls.
//! So the slots belong to the source's key, not to a poller, and a reload
//! resizes them in place: raising frees the difference at once, lowering
//! takes back free slots at once and the rest as running tasks end.

use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The task slots of one source.
#[derive(Debug)]
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    size: usize,
    /// Slots a lowering could not take back yet: held by running tasks,
    /// taken back as they end.
    debt: usize,
}

/// One slot, held from before the poll until the task's result is
/// delivered.
#[derive(Debug)]
pub(crate) struct SlotPermit {
    permit: Option<OwnedSemaphorePermit>,
    slots: Arc<Slots>,
}

impl Slots {
    /// `size` slots.
    pub(crate) fn new(size: usize) -> Arc<Slots> {
        Arc::new(Slots {
            semaphore: Arc::new(Semaphore::new(size)),
            state: Mutex::new(State { size, debt: 0 }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a free slot.
    pub(crate) async fn acquire(self: &Arc<Self>) -> SlotPermit {
        let permit = self
            .semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed");
        SlotPermit {
            permit: Some(permit),
            slots: self.clone(),
        }
    }

    /// Makes it `size` slots; returns the old size if it changed.
    pub(crate) fn resize(&self, size: usize) -> Option<usize> {
        let mut s = self.state();
        let old = s.size;
        if size > old {
            let mut more = size - old;
            let repaid = more.min(s.debt);
            s.debt -= repaid;
            more -= repaid;
            self.semaphore.add_permits(more);
        } else if size < old {
            let fewer = old - size;
            let taken = self.semaphore.forget_permits(fewer);
            s.debt += fewer - taken;
        }
        s.size = size;
        (old != size).then_some(old)
    }

    /// Whether any slot is held (a removed source's tasks still running).
    pub(crate) fn in_use(&self) -> bool {
        let s = self.state();
        self.semaphore.available_permits() + s.debt < s.size
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut s = self.slots.state();
        if s.debt > 0 {
            s.debt -= 1;
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn free(slots: &Arc<Slots>) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(10), slots.acquire())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_raise_frees_slots_at_once() {
        let slots = Slots::new(1);
        let _a = slots.acquire().await;
        assert!(!free(&slots).await);
        assert_eq!(slots.resize(2), Some(1));
        assert!(free(&slots).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lowering_waits_for_running_tasks_to_end() {
        let slots = Slots::new(3);
        let a = slots.acquire().await;
        let b = slots.acquire().await;
        // 2 running, lowered to 1: nobody new until both... one of them ends
        // and the other still holds the only slot.
        assert_eq!(slots.resize(1), Some(3));
        assert!(!free(&slots).await, "2 running already exceed 1");
        drop(a);
        assert!(!free(&slots).await, "1 running fills the 1 slot");
        assert!(slots.in_use());
        drop(b);
        let c = slots.acquire().await;
        assert!(!free(&slots).await, "never more than 1 again");
        drop(c);
        assert!(!slots.in_use());
        // And raised again, the debt is settled first.
        let d = slots.acquire().await;
        assert_eq!(slots.resize(2), Some(1));
        assert!(free(&slots).await);
        drop(d);
    }

    #[tokio::test(start_paused = true)]
    async fn a_raise_repays_a_lowering_still_owed() {
        let slots = Slots::new(2);
        let a = slots.acquire().await;
        let b = slots.acquire().await;
        slots.resize(1); // owes 1: both slots are held
        slots.resize(2); // back to 2: the debt is forgiven, nothing added
        drop(a);
        let _c = slots.acquire().await;
        assert!(!free(&slots).await, "b and c fill 2");
        drop(b);
        assert!(free(&slots).await);
    }
}
