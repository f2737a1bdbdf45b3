//! The validated configuration: what the rest of the worker reads.

use super::*;
use std::fmt;

/// Which client serves the hot operations (polls, heartbeats, reports);
/// everything else is always the SDK's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AwsClient {
    /// AWS JSON over one pooled HTTP client, signed by the SDK's signer
    /// (`service::awsjson`).
    #[default]
    Lean,
    /// The AWS SDK's clients.
    Sdk,
}

/// What a guest may reach beyond its own memory. Everything is denied
/// unless granted here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capabilities {
    /// Environment variables: explicit values, then pass-through names
    /// resolved from the host's environment when the config was read.
    pub env: Vec<(String, String)>,
    /// Host directories the guest may open.
    pub preopens: Vec<Preopen>,
    /// Secrets, given to the guest as environment variables and redacted
    /// from its logs and failure causes.
    pub secrets: Vec<Secret>,
    /// Socket addresses the guest may connect or bind to (TCP and UDP).
    pub sockets: Vec<std::net::SocketAddr>,
    /// Whether the guest may resolve host names.
    pub name_lookup: bool,
    /// Outbound HTTP (`wasi:http`), if granted.
    pub http: Option<HttpGrant>,
}

/// Outbound HTTP a guest may make.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpGrant {
    /// Allowed origins (`https://api.example.com`, `https://*.example.com`).
    pub allow: Vec<OriginPattern>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Largest response body, in bytes.
    pub max_response: u64,
    /// Largest request body, in bytes.
    pub max_request: u64,
}

/// Recording of an activity's tasks, for `wasm-activity replay`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordConfig {
    /// Where recordings are written, one JSON file per task.
    pub dir: PathBuf,
    /// Inputs larger than this are not recorded.
    pub max_bytes: u64,
    /// Fields whose values are replaced by "[redacted]" (a key name matches
    /// at any depth; a dotted path matches from the top).
    pub redact: Vec<String>,
}

/// A host directory visible to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// Directory on the host, absolute.
    pub host: PathBuf,
    /// Path the guest sees, e.g. `/data`.
    pub guest: String,
    /// False for read-only.
    pub writable: bool,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A host environment variable.
    Env(String),
    /// A file (its content, trailing newline removed).
    File(PathBuf),
}

/// A secret: a guest environment variable whose value never reaches logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The variable name the guest sees.
    pub name: String,
    /// Where its value comes from (read when the worker starts).
    pub source: SecretSource,
}

/// A group of activities sharing caps and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    /// The key of the `[tenant.NAME]` table.
    pub name: String,
    /// Tasks of all its activities running at once, at most.
    pub max_concurrent: Option<usize>,
    /// Sum of the memory limits of its running tasks, at most.
    pub max_memory: Option<u64>,
}

/// How components named by `oci://`, `s3://` and `https://` references are
/// fetched, kept and refreshed.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSettings {
    /// How often tags and S3 keys are re-resolved (give or take a fifth, so
    /// a fleet does not ask all at once).
    pub refresh: Duration,
    /// The most the content-addressed store keeps on disk, in bytes.
    pub store_max: u64,
    /// Registries (`host:port`) and `http://` hosts reached over plain HTTP.
    pub insecure: Vec<String>,
}

/// A validated worker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from; relative paths were resolved against its
    /// directory.
    pub path: PathBuf,
    /// AWS region; `None` defers to the SDK's chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// Endpoint override; `None` defers to `AWS_ENDPOINT_URL`, then AWS.
    pub endpoint: Option<String>,
    /// Identity sent with every poll and recorded in execution history.
    pub worker_name: String,
    /// How long running tasks may take to finish after a stop signal.
    pub shutdown_grace: Duration,
    /// Where precompiled components are cached; `None` uses the user cache.
    pub cache_dir: Option<PathBuf>,
    /// Where to serve Prometheus metrics, `/healthz` and `/readyz`; off if `None`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The OTLP/HTTP collector's base URL (`/v1/traces` is appended); the
    /// `OTEL_EXPORTER_OTLP_*` variables take over or stand in (see
    /// `telemetry`). Traces are off when neither is set.
    pub otlp_endpoint: Option<String>,
    /// Whether to watch component files and the config file for changes.
    pub reload: bool,
    /// How long a changed file must be quiet before it is reloaded.
    pub reload_debounce: Duration,
    /// Where components come from beyond local files.
    pub components: ComponentSettings,
    /// Which client serves polls, heartbeats and reports.
    pub aws_client: AwsClient,
    /// The Step Functions activities this worker serves, in key order.
    pub activities: Vec<ActivityConfig>,
    /// The SWF task lists this worker serves, in key order.
    pub task_lists: Vec<TaskListConfig>,
    /// Tenants, in key order.
    pub tenants: Vec<TenantConfig>,
}

/// One SWF task list and the components for its activity types.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskListConfig {
    /// The key of the `[swf.NAME]` table; used in logs.
    pub name: String,
    /// SWF domain.
    pub domain: String,
    /// Task list polled.
    pub task_list: String,
    /// Tasks from this task list running at once, at most (any type).
    pub max_concurrent: usize,
    /// Long polls in flight at once.
    pub pollers: usize,
    /// Activity types and their components.
    pub types: Vec<ActivityTypeConfig>,
}

/// An SWF activity type mapped to a component.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTypeConfig {
    /// Its name in logs and metrics, and where it is in the config file.
    pub id: ActivityId,
    /// Activity type name.
    pub name: String,
    /// Version; `None` serves every version of the type.
    pub version: Option<String>,
    /// The component: a file (absolute), or a registry, S3 or https
    /// reference, with an optional pin on its digest.
    pub component: ComponentRef,
    /// Heartbeat interval; `None` derives it from the type's registered
    /// `defaultTaskHeartbeatTimeout`.
    pub heartbeat_interval: Option<Duration>,
    /// Per-task limits.
    pub limits: TaskLimits,
    /// What the guest may reach.
    pub capabilities: Capabilities,
    /// The tenant it belongs to, if any.
    pub tenant: Option<String>,
    /// Task recording, if on.
    pub record: Option<RecordConfig>,
}

/// One Step Functions activity and the component that handles it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityConfig {
    /// The key of the `[activity.NAME]` table; used in logs.
    pub name: String,
    /// Activity ARN to poll.
    pub arn: String,
    /// The component: a file (absolute), or a registry, S3 or https
    /// reference, with an optional pin on its digest.
    pub component: ComponentRef,
    /// Tasks of this activity running at once, at most.
    pub max_concurrent: usize,
    /// Long polls in flight at once (each holds a concurrency slot).
    pub pollers: usize,
    /// Time between heartbeats while a task runs.
    pub heartbeat_interval: Duration,
    /// Per-task limits.
    pub limits: TaskLimits,
    /// What the guest may reach.
    pub capabilities: Capabilities,
    /// The tenant it belongs to, if any.
    pub tenant: Option<String>,
    /// Task recording, if on.
    pub record: Option<RecordConfig>,
}

/// What one task may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLimits {
    /// Wall-clock time from start of instantiation to the handler returning.
    pub timeout: Duration,
    /// Linear memory across all of the instance's memories, in bytes.
    pub memory: u64,
    /// Host memory held for the guest (see `runtime::host_memory`), in bytes.
    pub host_memory: u64,
    /// Bytes of guest log output (log calls, stdout, stderr) kept per task.
    pub log_bytes: u64,
    /// Largest output the service accepts, in bytes.
    pub output_bytes: u64,
    /// After the service asks to cancel the task (SWF), how long the guest
    /// may take to return before it is stopped.
    pub cancel_grace: Duration,
    /// CPU fuel (roughly, wasm instructions) per task; `None` is unmetered.
    pub fuel: Option<u64>,
    /// Elements any one table may grow to.
    pub table_elements: u32,
    /// Core instances, memories and tables one task may create.
    pub instances: u32,
}

impl Default for TaskLimits {
    fn default() -> Self {
        TaskLimits {
            timeout: DEFAULT_TASK_TIMEOUT,
            memory: DEFAULT_MEMORY_LIMIT,
            host_memory: DEFAULT_HOST_MEMORY_LIMIT,
            log_bytes: DEFAULT_LOG_LIMIT,
            output_bytes: SFN_MAX_PAYLOAD,
            cancel_grace: DEFAULT_CANCEL_GRACE,
            fuel: None,
            table_elements: MAX_TABLE_ELEMENTS,
            instances: MAX_INSTANCES,
        }
    }
}

impl TaskLimits {
    /// What one task may hold in memory, its linear memory and what the host
    /// holds for it: the amount a tenant's `max_memory` reserves per task.
    pub(crate) fn reserved_memory(&self) -> u64 {
        self.memory.saturating_add(self.host_memory)
    }
}

impl ActivityConfig {
    /// Its name in logs and metrics, and where it is in the config file.
    pub(crate) fn id(&self) -> ActivityId {
        ActivityId::StepFunctions {
            name: self.name.clone(),
        }
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.env.is_empty() {
            parts.push(format!(
                "env {}",
                self.env
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.secrets.is_empty() {
            parts.push(format!(
                "secrets {}",
                self.secrets
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for p in &self.preopens {
            let mode = if p.writable {
                "read-write"
            } else {
                "read-only"
            };
            parts.push(format!("{} -> {} ({mode})", p.host.display(), p.guest));
        }
        if !self.sockets.is_empty() {
            parts.push(format!(
                "sockets {}",
                self.sockets
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.name_lookup {
            parts.push("name lookup".into());
        }
        if let Some(h) = &self.http {
            parts.push(format!(
                "http to {}",
                h.allow
                    .iter()
                    .map(OriginPattern::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if parts.is_empty() {
            write!(f, "none (no files, network or environment)")
        } else {
            write!(f, "{}", parts.join("; "))
        }
    }
}

impl fmt::Display for TaskLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timeout {}, memory {}, host memory {}, logs {}, output {}, tables {} elements, {} instances, fuel {}",
            humantime::format_duration(self.timeout),
            bytesize::ByteSize(self.memory).display().iec(),
            bytesize::ByteSize(self.host_memory).display().iec(),
            bytesize::ByteSize(self.log_bytes).display().iec(),
            bytesize::ByteSize(self.output_bytes).display().iec(),
            self.table_elements,
            self.instances,
            self.fuel
                .map(|f| f.to_string())
                .unwrap_or_else(|| "unmetered".into())
        )
    }
}
