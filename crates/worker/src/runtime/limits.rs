//! Per-task resource limits enforced inside the store.
//!
//! The limiter counts linear memory across all of an instance's memories (a
//! component can have several) and remembers a refused growth, so a guest
//! whose allocator then aborts is reported as `WasmActivity.MemoryLimit`
//! rather than as an anonymous trap.

use wasmtime::ResourceLimiter;

/// Tables one component (and so one task) may define: the pool reserves
/// exactly this many per instance slot, and the limiter allows no more, so
/// one tenant's tasks cannot use up another's. Python, JavaScript and C
/// components need at most a few.
pub(crate) const MAX_TABLES: u32 = 8;
/// Memories one component (and so one task) may define, likewise (the
/// Python, JavaScript and C components here define at most two).
pub(crate) const MAX_MEMORIES: u32 = 2;
/// Host resource handles (WASI and HTTP streams, fields, requests, bodies,
/// pollables) one task may hold at once; each is host memory, and `poll`
/// takes a list of them, so the count bounds a call's work too.
pub(crate) const MAX_HOST_RESOURCES: usize = 1_024;
/// Largest `get-random-bytes` / `get-insecure-random-bytes` request: the
/// call runs on a host thread, so its length bounds how long one call takes.
pub(crate) const MAX_RANDOM_BYTES: u64 = 64 << 10;
/// Largest set of HTTP header fields one `fields` resource may hold, in
/// wasmtime's in-memory accounting (wire size plus overhead); proxies
/// commonly refuse more than 8 KiB of headers. With [`MAX_HOST_RESOURCES`]
/// it bounds what header fields can cost even if the host meter were fooled.
pub(crate) const MAX_HTTP_FIELDS_BYTES: usize = 16 << 10;
/// Outgoing HTTP requests one task may have in flight at once; each may
/// buffer `max_request` + `max_response` bytes and holds a connection.
pub(crate) const MAX_HTTP_IN_FLIGHT: usize = 8;

/// Enforces a task's memory and table budgets and records what it refused.
#[derive(Debug)]
pub(crate) struct TaskLimiter {
    memory_limit: usize,
    memory_in_use: usize,
    refused: Option<usize>,
    table_elements: usize,
    table_refused: Option<usize>,
    instances: usize,
}
impl TaskLimiter {
    /// A limiter allowing `memory_limit` bytes of linear memory in total.
    #[cfg(test)]
    pub(crate) fn new(memory_limit: u64) -> Self {
        use crate::config::{MAX_INSTANCES, MAX_TABLE_ELEMENTS};
        Self::with_tables(memory_limit, MAX_TABLE_ELEMENTS, MAX_INSTANCES)
    }

    /// A limiter with explicit table and instance budgets.
    pub(crate) fn with_tables(memory_limit: u64, table_elements: u32, instances: u32) -> Self {
        TaskLimiter {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            memory_in_use: 0,
            refused: None,
            table_elements: table_elements as usize,
            table_refused: None,
            instances: instances as usize,
        }
    }

    /// The size a table asked to grow to when refused, if it was.
    pub(crate) fn table_refused(&self) -> Option<usize> {
        self.table_refused
    }
    /// The total the guest asked for when growth was refused, if it was.
    pub(crate) fn refused(&self) -> Option<usize> {
        self.refused
    }

    /// Linear memory in use now, across memories.
    #[cfg(test)]
    pub(crate) fn memory_in_use(&self) -> usize {
        self.memory_in_use
    }
}

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_in_use - current.min(self.memory_in_use) + desired;
        if total > self.memory_limit {
            self.refused = Some(total);
            return Ok(false);
        }
        self.memory_in_use = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }
    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }
    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_TABLE_ELEMENTS;

    #[test]
    fn growth_within_the_limit_is_allowed_and_counted_across_memories() {
        let mut l = TaskLimiter::new(10 << 20);
        assert!(l.memory_growing(0, 4 << 20, None).unwrap());
        assert!(l.memory_growing(0, 4 << 20, None).unwrap()); // second memory
        assert_eq!(l.memory_in_use(), 8 << 20);
        assert!(!l.memory_growing(0, 4 << 20, None).unwrap());
        assert_eq!(l.refused(), Some(12 << 20));
    }

    #[test]
    fn growing_one_memory_counts_only_the_difference() {
        let mut l = TaskLimiter::new(10 << 20);
        assert!(l.memory_growing(0, 2 << 20, None).unwrap());
        assert!(l.memory_growing(2 << 20, 9 << 20, None).unwrap());
        assert_eq!(l.memory_in_use(), 9 << 20);
        assert!(!l.memory_growing(9 << 20, 11 << 20, None).unwrap());
        assert_eq!(l.memory_in_use(), 9 << 20);
        assert_eq!(l.refused(), Some(11 << 20));
    }

    #[test]
    fn tables_are_capped() {
        let mut l = TaskLimiter::new(1 << 20);
        let max = MAX_TABLE_ELEMENTS as usize;
        assert!(l.table_growing(0, max, None).unwrap());
        assert!(!l.table_growing(0, max + 1, None).unwrap());
        let mut small = TaskLimiter::with_tables(1 << 20, 10, 4);
        assert!(!small.table_growing(0, 11, None).unwrap());
        assert_eq!(small.table_refused(), Some(11));
        assert_eq!(small.instances(), 4);
    }
}
