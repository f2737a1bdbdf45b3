//! Error names the host reports, as state machines match them.
//!
//! `Retry` and `Catch` match these strings, and the metrics always keep them
//! as labels, so they are defined once, here, at the bottom of the worker:
//! everything that reports or counts a failure uses these constants.

/// The guest trapped: a panic, `unreachable`, stack overflow, an
/// out-of-bounds access.
pub(crate) const TRAP: &str = "WasmActivity.Trap";
/// The guest ran past the activity's `task_timeout`.
pub(crate) const TIMEOUT: &str = "WasmActivity.Timeout";
/// The guest needed more linear memory than `memory_limit`.
pub(crate) const MEMORY_LIMIT: &str = "WasmActivity.MemoryLimit";
/// The guest's output is not valid JSON, or the service refused it.
pub(crate) const INVALID_OUTPUT: &str = "WasmActivity.InvalidOutput";
/// The guest's output is larger than the service accepts.
pub(crate) const OUTPUT_TOO_LARGE: &str = "WasmActivity.OutputTooLarge";
/// The guest returned an error name the service does not accept.
pub(crate) const INVALID_ERROR_NAME: &str = "WasmActivity.InvalidErrorName";
/// The instance could not be created (e.g. out of instance slots).
pub(crate) const INSTANTIATE: &str = "WasmActivity.InstantiateFailed";
/// The host shut down before the task finished; retrying it elsewhere is safe.
pub(crate) const WORKER_SHUTDOWN: &str = "WasmActivity.WorkerShutdown";
/// An SWF task of an activity type this worker has no component for.
pub(crate) const UNKNOWN_ACTIVITY_TYPE: &str = "WasmActivity.UnknownActivityType";
/// The guest used up its CPU fuel (`fuel`).
pub(crate) const FUEL_EXHAUSTED: &str = "WasmActivity.FuelExhausted";
/// A table grew past `table_elements`.
pub(crate) const TABLE_LIMIT: &str = "WasmActivity.TableLimit";
/// The guest created more instances, memories or tables than `max_instances`.
pub(crate) const INSTANCE_LIMIT: &str = "WasmActivity.InstanceLimit";
/// The guest made the host hold more for it than allowed: host memory
/// (`host_memory_limit`), host resource handles or one HTTP fields
/// resource's size (fixed caps).
pub(crate) const HOST_RESOURCE_LIMIT: &str = "WasmActivity.HostResourceLimit";

/// Every name above: the host's own, a bounded set.
pub(crate) const ALL: [&str; 13] = [
    TRAP,
    TIMEOUT,
    MEMORY_LIMIT,
    INVALID_OUTPUT,
    OUTPUT_TOO_LARGE,
    INVALID_ERROR_NAME,
    INSTANTIATE,
    WORKER_SHUTDOWN,
    UNKNOWN_ACTIVITY_TYPE,
    FUEL_EXHAUSTED,
    TABLE_LIMIT,
    INSTANCE_LIMIT,
    HOST_RESOURCE_LIMIT,
];
