//! What the AWS services accept, from their API references: defined once,
//! at the bottom of the worker, for the config's validation and the service
//! clients' cuts alike. (The embedded endpoint, being the service, keeps
//! its own copy in its crate: it must not depend on the worker.)

/// Step Functions: `SendTaskSuccess` output and a task's input, in bytes.
pub(crate) const SFN_MAX_PAYLOAD: usize = 262_144;
/// Step Functions: `SendTaskFailure` error name, in characters.
pub(crate) const SFN_MAX_ERROR: usize = 256;
/// Step Functions: `SendTaskFailure` cause, in characters.
pub(crate) const SFN_MAX_CAUSE: usize = 32_768;
/// SWF: `RespondActivityTaskCompleted` result, in characters.
pub(crate) const SWF_MAX_RESULT: usize = 32_768;
/// SWF: `RespondActivityTaskFailed` reason, in characters.
pub(crate) const SWF_MAX_REASON: usize = 256;
/// SWF: failure and cancellation details, in characters.
pub(crate) const SWF_MAX_DETAILS: usize = 32_768;
/// SWF: `RecordActivityTaskHeartbeat` details, in characters.
pub(crate) const SWF_MAX_HEARTBEAT_DETAILS: usize = 2_048;
/// `workerName` (Step Functions) and, cut to it, SWF `identity`.
pub(crate) const MAX_WORKER_NAME: usize = 80;
/// ARNs, SWF domain, task list and type names.
pub(crate) const MAX_NAME: usize = 256;
/// Step Functions: pollers per activity ARN before `ActivityWorkerLimitExceeded`.
pub(crate) const MAX_POLLERS: usize = 1_000;
