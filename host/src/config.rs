//! The worker configuration file.
//!
//! Parsing is two-staged so that every mistake is reported in the user's
//! terms: serde reads the TOML into raw structs that reject unknown keys, and
//! [`Config::from_raw`] turns them into validated types, resolving human
//! units (`"30s"`, `"64MiB"`) and paths (relative to the config file). Every
//! error names the file, the key, the bad value and what was expected.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest output Step Functions accepts for SendTaskSuccess, in bytes.
pub const SFN_MAX_PAYLOAD: u64 = 262_144;
/// Largest result SWF accepts for RespondActivityTaskCompleted.
pub const SWF_MAX_RESULT: u64 = 32_768;
const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);
/// Table elements per table: interpreters (CPython) need tens of thousands.
/// Also the most `table_elements` may be set to: the instance pool reserves
/// tables of this size, so a larger setting could never be honoured.
pub const MAX_TABLE_ELEMENTS: u32 = 100_000;
/// Core instances one task may create: a Python component has a dozen. Also
/// the most `max_instances` may be set to, for the same reason as tables:
/// the pool reserves exactly this many per instance slot, so one tenant's
/// tasks can never use up what another's need.
pub const MAX_INSTANCES: u32 = 25;
/// Host memory held on a guest's behalf (HTTP fields and bodies, streams,
/// resource handles, text lifted out of its memory), per task.
pub const DEFAULT_HOST_MEMORY_LIMIT: u64 = 16 * 1024 * 1024;
const MIN_HOST_MEMORY_LIMIT: u64 = 1024 * 1024;
const MAX_HOST_MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;

const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_MAX_CONCURRENT: usize = 4;
const DEFAULT_POLLERS: usize = 1;
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
const DEFAULT_LOG_LIMIT: u64 = 1024 * 1024;
/// Step Functions allows 1,000 pollers per activity ARN; more is an error on
/// the service side, so refuse it here.
const MAX_POLLERS: usize = 1_000;
/// A wasm32 guest cannot address more than 4 GiB.
const MAX_MEMORY_LIMIT: u64 = 4 * 1024 * 1024 * 1024;
const MIN_MEMORY_LIMIT: u64 = 1024 * 1024;

/// A configuration error: which file, which key, what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    // The OS error is part of the message, not a source: `{:#}` would
    // print it twice.
    #[error("cannot read config file {}: {cause}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with the key path and position.
        message: String,
    },
    /// A key has a value of the right type but not an acceptable one.
    #[error("{}: `{key}` = {value}: expected {expected}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Dotted key path, e.g. `activity.resize.memory_limit`.
        key: String,
        /// The value as written.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
}

/// Raw TOML shape; see [`Config`] for meanings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    region: Option<String>,
    endpoint: Option<String>,
    worker_name: Option<String>,
    shutdown_grace: Option<String>,
    cache_dir: Option<String>,
    metrics_addr: Option<String>,
    reload: Option<bool>,
    reload_debounce: Option<String>,
    #[serde(default)]
    activity: BTreeMap<String, RawActivity>,
    #[serde(default)]
    swf: BTreeMap<String, RawTaskList>,
    #[serde(default)]
    tenant: BTreeMap<String, RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaskList {
    domain: String,
    task_list: String,
    max_concurrent: Option<i64>,
    pollers: Option<i64>,
    #[serde(default)]
    activity: Vec<RawActivityType>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActivityType {
    #[serde(rename = "type")]
    name: String,
    version: Option<String>,
    component: String,
    heartbeat_interval: Option<String>,
    task_timeout: Option<String>,
    memory_limit: Option<String>,
    host_memory_limit: Option<String>,
    log_limit: Option<String>,
    cancel_grace: Option<String>,
    tenant: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    env_passthrough: Vec<String>,
    #[serde(default)]
    preopen: Vec<RawPreopen>,
    #[serde(default)]
    secrets: BTreeMap<String, RawSecret>,
    #[serde(default)]
    sockets: Vec<String>,
    name_lookup: Option<bool>,
    fuel: Option<i64>,
    output_limit: Option<String>,
    table_elements: Option<i64>,
    max_instances: Option<i64>,
    http: Option<RawHttp>,
    record: Option<RawRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActivity {
    arn: String,
    component: String,
    max_concurrent: Option<i64>,
    pollers: Option<i64>,
    heartbeat_interval: Option<String>,
    task_timeout: Option<String>,
    memory_limit: Option<String>,
    host_memory_limit: Option<String>,
    log_limit: Option<String>,
    tenant: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    env_passthrough: Vec<String>,
    #[serde(default)]
    preopen: Vec<RawPreopen>,
    #[serde(default)]
    secrets: BTreeMap<String, RawSecret>,
    #[serde(default)]
    sockets: Vec<String>,
    name_lookup: Option<bool>,
    fuel: Option<i64>,
    output_limit: Option<String>,
    table_elements: Option<i64>,
    max_instances: Option<i64>,
    http: Option<RawHttp>,
    record: Option<RawRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    allow: Vec<String>,
    timeout: Option<String>,
    max_response: Option<String>,
    max_request: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    dir: String,
    max_bytes: Option<String>,
    #[serde(default)]
    redact: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreopen {
    host: String,
    guest: String,
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Option<String>,
    file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    max_concurrent: Option<i64>,
    max_memory: Option<String>,
    task_timeout: Option<String>,
    memory_limit: Option<String>,
    host_memory_limit: Option<String>,
    log_limit: Option<String>,
    fuel: Option<i64>,
    output_limit: Option<String>,
}

/// The per-task fields Step Functions activities and SWF types share, moved
/// out of either raw struct so they are validated in one place.
struct RawTask {
    task_timeout: Option<String>,
    memory_limit: Option<String>,
    host_memory_limit: Option<String>,
    log_limit: Option<String>,
    cancel_grace: Option<String>,
    tenant: Option<String>,
    env: BTreeMap<String, String>,
    env_passthrough: Vec<String>,
    preopen: Vec<RawPreopen>,
    secrets: BTreeMap<String, RawSecret>,
    sockets: Vec<String>,
    name_lookup: Option<bool>,
    fuel: Option<i64>,
    output_limit: Option<String>,
    table_elements: Option<i64>,
    max_instances: Option<i64>,
    http: Option<RawHttp>,
    record: Option<RawRecord>,
}

macro_rules! raw_task {
    ($raw:expr, $cancel_grace:expr) => {
        RawTask {
            task_timeout: $raw.task_timeout,
            memory_limit: $raw.memory_limit,
            host_memory_limit: $raw.host_memory_limit,
            log_limit: $raw.log_limit,
            cancel_grace: $cancel_grace,
            tenant: $raw.tenant,
            env: $raw.env,
            env_passthrough: $raw.env_passthrough,
            preopen: $raw.preopen,
            secrets: $raw.secrets,
            sockets: $raw.sockets,
            name_lookup: $raw.name_lookup,
            fuel: $raw.fuel,
            output_limit: $raw.output_limit,
            table_elements: $raw.table_elements,
            max_instances: $raw.max_instances,
            http: $raw.http,
            record: $raw.record,
        }
    };
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
    /// Allowed origins, as written (`https://api.example.com`, `https://*.example.com`).
    pub allow: Vec<String>,
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
    /// Whether to watch component files and the config file for changes.
    pub reload: bool,
    /// How long a changed file must be quiet before it is reloaded.
    pub reload_debounce: Duration,
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
    /// Component file, absolute.
    pub component: PathBuf,
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
    /// Component file, absolute.
    pub component: PathBuf,
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

/// A Step Functions activity or an SWF activity type, as the config file
/// names it. The one place that says what it is called in logs, metrics
/// labels and error messages ([`ActivityId::name`]), and which TOML key sets
/// one of its settings ([`ActivityId::key`], [`ActivityId::key_hint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityId {
    /// An `[activity.NAME]` table.
    StepFunctions {
        /// `NAME`.
        name: String,
    },
    /// The `index`th (from 0) `[[swf.LIST.activity]]` entry.
    SwfType {
        /// `LIST`, the key of the `[swf.LIST]` table.
        list: String,
        /// Position of the entry in the file, from 0.
        index: usize,
        /// Its `type`.
        type_name: String,
        /// Its `version`, if it has one.
        version: Option<String>,
    },
}

impl ActivityId {
    /// The name logs, metrics labels and error messages use: `NAME` for
    /// `[activity.NAME]`; `LIST/TYPE@VERSION` for an SWF type, `LIST/TYPE`
    /// for an entry without a version. Unique within a config (the
    /// validator refuses two of the same).
    pub(crate) fn name(&self) -> String {
        match self {
            ActivityId::StepFunctions { name } => name.clone(),
            ActivityId::SwfType {
                list,
                type_name,
                version: Some(v),
                ..
            } => format!("{list}/{type_name}@{v}"),
            ActivityId::SwfType {
                list,
                type_name,
                version: None,
                ..
            } => format!("{list}/{type_name}"),
        }
    }

    /// The TOML path of its table: `activity.NAME` or
    /// `swf.LIST.activity[INDEX]` (names that are not bare TOML keys are
    /// quoted, as they must be written in the file).
    pub(crate) fn table(&self) -> String {
        match self {
            ActivityId::StepFunctions { name } => format!("activity.{}", toml_key(name)),
            ActivityId::SwfType { list, index, .. } => {
                format!("swf.{}.activity[{index}]", toml_key(list))
            }
        }
    }

    /// The TOML path of one of its settings, e.g.
    /// `swf.orders.activity[1].task_timeout`.
    pub(crate) fn key(&self, field: &str) -> String {
        format!("{}.{field}", self.table())
    }

    /// [`ActivityId::key`] for a person to find in the file: for an SWF type
    /// the entry is also named by its `type` and `version`, since entries in
    /// an array of tables have no names of their own.
    pub(crate) fn key_hint(&self, field: &str) -> String {
        match self {
            ActivityId::StepFunctions { .. } => self.key(field),
            ActivityId::SwfType {
                list,
                type_name,
                version,
                ..
            } => format!(
                "{} (in the [[swf.{}.activity]] entry with type = {type_name:?} and {})",
                self.key(field),
                toml_key(list),
                match version {
                    Some(v) => format!("version = {v:?}"),
                    None => "no version".to_string(),
                }
            ),
        }
    }
}

impl fmt::Display for ActivityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// `key` as it is written in a dotted TOML key: bare if it can be, else
/// quoted.
pub(crate) fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
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
    pub fn reserved_memory(&self) -> u64 {
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

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Config::from_toml(&text, path)
    }

    /// Validates TOML text as if it had been read from `path`.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        let de = toml::Deserializer::parse(text).map_err(|e| syntax(e.to_string()))?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let mut inner = e.into_inner().to_string();
            if let Some(hint) = did_you_mean(&inner) {
                inner = format!("{}; did you mean `{hint}`?", inner.trim_end());
            }
            syntax(if key == "." {
                inner
            } else {
                format!("at `{key}`: {inner}")
            })
        })?;
        Config::from_raw(raw, path)
    }

    fn from_raw(raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
        let no_tenants = BTreeMap::new();
        let v = Validator {
            path,
            tenants: &no_tenants,
            tenant_caps: &[],
        };
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));

        if let Some(region) = &raw.region
            && (region.is_empty()
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(v.invalid("region", region, "an AWS region name such as \"us-east-1\""));
        }
        if let Some(endpoint) = &raw.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(v.invalid(
                "endpoint",
                endpoint,
                "an http:// or https:// URL such as \"http://127.0.0.1:4566\"",
            ));
        }
        let worker_name = match raw.worker_name {
            Some(name) if name.is_empty() || name.len() > 80 => {
                return Err(v.invalid("worker_name", &name, "1 to 80 characters"));
            }
            Some(name) => name,
            None => default_worker_name(),
        };
        let shutdown_grace = v.duration(
            "shutdown_grace",
            raw.shutdown_grace.as_deref(),
            DEFAULT_SHUTDOWN_GRACE,
        )?;
        let cache_dir = raw.cache_dir.map(|d| base.join(d));
        let metrics_addr = match raw.metrics_addr {
            None => None,
            Some(a) => Some(a.parse().map_err(|_| {
                v.invalid(
                    "metrics_addr",
                    &a,
                    "a socket address such as \"127.0.0.1:9464\"",
                )
            })?),
        };

        if raw.activity.is_empty() && raw.swf.is_empty() {
            return Err(v.invalid(
                "activity",
                "(none)",
                "at least one [activity.NAME] table (Step Functions) or [swf.NAME] table (SWF)",
            ));
        }
        let mut tenants = Vec::with_capacity(raw.tenant.len());
        let mut tenant_defaults = BTreeMap::new();
        for (name, t) in raw.tenant {
            let key = |k: &str| format!("tenant.{name}.{k}");
            let max_concurrent = t
                .max_concurrent
                .map(|n| v.count(&key("max_concurrent"), Some(n), 1, 100_000))
                .transpose()?;
            let max_memory = t
                .max_memory
                .as_deref()
                .map(|m| v.bytes(&key("max_memory"), Some(m), 0, MIN_MEMORY_LIMIT, 1 << 40))
                .transpose()?;
            tenant_defaults.insert(name.clone(), t);
            tenants.push(TenantConfig {
                name,
                max_concurrent,
                max_memory,
            });
        }
        let v = Validator {
            path,
            tenants: &tenant_defaults,
            tenant_caps: &tenants,
        };
        let mut activities = Vec::with_capacity(raw.activity.len());
        for (name, a) in raw.activity {
            activities.push(v.activity(&name, a, &base)?);
        }
        for (i, a) in activities.iter().enumerate() {
            if let Some(other) = activities[..i].iter().find(|b| b.arn == a.arn) {
                return Err(v.invalid(
                    &a.id().key("arn"),
                    &a.arn,
                    &format!("an ARN not already served by [activity.{}]", other.name),
                ));
            }
        }
        if let Some(region) = &raw.region
            && let Some(e) = arn_region_mismatch(path, &activities, region, "the config's `region`")
        {
            return Err(e);
        }
        let mut task_lists = Vec::with_capacity(raw.swf.len());
        for (name, t) in raw.swf {
            task_lists.push(v.task_list(&name, t, &base)?);
        }
        for (i, t) in task_lists.iter().enumerate() {
            if let Some(other) = task_lists[..i]
                .iter()
                .find(|o| o.domain == t.domain && o.task_list == t.task_list)
            {
                return Err(v.invalid(
                    &format!("swf.{}.task_list", toml_key(&t.name)),
                    &t.task_list,
                    &format!(
                        "a task list not already served by [swf.{}] in domain {:?}",
                        other.name, t.domain
                    ),
                ));
            }
        }
        // Logs and metrics tell activities apart by name alone.
        let ids: Vec<ActivityId> = (activities.iter().map(ActivityConfig::id))
            .chain(
                task_lists
                    .iter()
                    .flat_map(|l| l.types.iter().map(|t| t.id.clone())),
            )
            .collect();
        for (i, id) in ids.iter().enumerate() {
            if let Some(other) = ids[..i].iter().find(|o| o.name() == id.name()) {
                let (key, value) = match id {
                    ActivityId::StepFunctions { name } => (id.table(), name),
                    ActivityId::SwfType { type_name, .. } => (id.key("type"), type_name),
                };
                return Err(v.invalid(
                    &key,
                    value,
                    &format!(
                        "a name that does not make it {:?} in logs and metrics, as {} already is",
                        id.name(),
                        other.table()
                    ),
                ));
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            region: raw.region,
            endpoint: raw.endpoint,
            worker_name,
            shutdown_grace,
            cache_dir,
            metrics_addr,
            reload: raw.reload.unwrap_or(true),
            reload_debounce: v.duration(
                "reload_debounce",
                raw.reload_debounce.as_deref(),
                Duration::from_millis(100),
            )?,
            activities,
            task_lists,
            tenants,
        })
    }
}

fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let mut name = format!("wasm-activity@{host}");
    name.truncate(80);
    name
}

/// The known key closest to the unknown one in a serde "unknown field
/// `x`, expected one of `a`, `b`" message, if one is close enough to be a
/// typo of it.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected")?.1;
    let candidates = expected.split('`').skip(1).step_by(2);
    let (best, distance) = candidates
        .map(|c| (c, strsim::levenshtein(&unknown.to_lowercase(), c)))
        .min_by_key(|(_, d)| *d)?;
    (distance > 0 && distance <= (unknown.len() / 3).max(2)).then(|| best.to_string())
}

/// A size in binary units (`KiB`, `MiB`, `GiB`, `TiB`) or bytes (`B` or no
/// unit). Decimal units are refused rather than read: "64MB" is 61.0 MiB,
/// which is not what anyone writing a memory limit means, and a guest's
/// memory grows in 64 KiB pages. The error (after the value) says why.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let unit_at = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ' '))
        .unwrap_or(trimmed.len());
    let unit = trimmed[unit_at..].trim();
    let binary = ["KiB", "MiB", "GiB", "TiB"];
    let known =
        unit.is_empty() || unit == "B" || binary.iter().any(|u| u.eq_ignore_ascii_case(unit));
    if !known {
        let number = trimmed[..unit_at].trim();
        let hint = match unit.to_ascii_uppercase().trim_end_matches('B') {
            "K" => {
                format!(" (write \"{number}KiB\"; decimal units such as {unit} are not accepted)")
            }
            "M" => {
                format!(" (write \"{number}MiB\"; decimal units such as {unit} are not accepted)")
            }
            "G" => {
                format!(" (write \"{number}GiB\"; decimal units such as {unit} are not accepted)")
            }
            "T" => {
                format!(" (write \"{number}TiB\"; decimal units such as {unit} are not accepted)")
            }
            _ => format!(" (unknown unit {unit:?}: use KiB, MiB, GiB or TiB)"),
        };
        return Err(hint);
    }
    trimmed
        .parse::<bytesize::ByteSize>()
        .map(|b| b.0)
        .map_err(|_| String::new())
}

struct Validator<'a> {
    path: &'a Path,
    tenants: &'a BTreeMap<String, RawTenant>,
    tenant_caps: &'a [TenantConfig],
}

impl Validator<'_> {
    fn invalid(&self, key: &str, value: &str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            value: format!("{value:?}"),
            expected: expected.to_string(),
        }
    }

    fn duration(
        &self,
        key: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(text) = value else {
            return Ok(default);
        };
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(self.invalid(
                key,
                text,
                "a positive duration such as \"500ms\", \"30s\", \"5m\" or \"1h 30m\"",
            )),
        }
    }

    fn bytes(
        &self,
        key: &str,
        value: Option<&str>,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let Some(text) = value else {
            return Ok(default);
        };
        let expected = |why: &str| {
            format!(
                "a size such as \"64MiB\" or \"512KiB\", between {} and {}{why}",
                bytesize::ByteSize(min).display().iec(),
                bytesize::ByteSize(max).display().iec()
            )
        };
        let bytes = parse_size(text).map_err(|why| self.invalid(key, text, &expected(&why)))?;
        if bytes < min || bytes > max {
            return Err(self.invalid(key, text, &expected("")));
        }
        Ok(bytes)
    }

    fn count(
        &self,
        key: &str,
        value: Option<i64>,
        default: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        let Some(n) = value else { return Ok(default) };
        match usize::try_from(n) {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(
                key,
                &n.to_string(),
                &format!("a whole number from 1 to {max}"),
            )),
        }
    }

    fn activity(
        &self,
        name: &str,
        raw: RawActivity,
        base: &Path,
    ) -> Result<ActivityConfig, ConfigError> {
        let id = ActivityId::StepFunctions {
            name: name.to_string(),
        };
        let key = |k: &str| id.key(k);
        if !is_activity_arn(&raw.arn) {
            return Err(self.invalid(
                &key("arn"),
                &raw.arn,
                "a Step Functions activity ARN such as \
                 \"arn:aws:states:us-east-1:123456789012:activity:my-activity\" (at most 256 characters)",
            ));
        }
        if raw.component.is_empty() {
            return Err(self.invalid(&key("component"), "", "the path of a .wasm component file"));
        }
        let component = base.join(&raw.component);
        let max_concurrent = self.count(
            &key("max_concurrent"),
            raw.max_concurrent,
            DEFAULT_MAX_CONCURRENT,
            10_000,
        )?;
        let pollers = self.count(
            &key("pollers"),
            raw.pollers,
            DEFAULT_POLLERS.min(max_concurrent),
            MAX_POLLERS,
        )?;
        if pollers > max_concurrent {
            return Err(self.invalid(
                &key("pollers"),
                &pollers.to_string(),
                &format!(
                    "at most max_concurrent ({max_concurrent}): each poll holds a free task slot, \
                     so extra pollers would never poll"
                ),
            ));
        }
        let heartbeat_interval = self.duration(
            &key("heartbeat_interval"),
            raw.heartbeat_interval.as_deref(),
            DEFAULT_HEARTBEAT_INTERVAL,
        )?;
        let arn = raw.arn.clone();
        let (limits, capabilities, tenant, record) =
            self.task(&id.table(), raw_task!(raw, None), base, SFN_MAX_PAYLOAD)?;
        Ok(ActivityConfig {
            name: name.to_string(),
            arn,
            component,
            max_concurrent,
            pollers,
            heartbeat_interval,
            limits,
            capabilities,
            tenant,
            record,
        })
    }

    fn task_list(
        &self,
        name: &str,
        raw: RawTaskList,
        base: &Path,
    ) -> Result<TaskListConfig, ConfigError> {
        let key = |k: &str| format!("swf.{}.{k}", toml_key(name));
        for (k, value) in [("domain", &raw.domain), ("task_list", &raw.task_list)] {
            if value.is_empty() || value.chars().count() > 256 {
                return Err(self.invalid(&key(k), value, "1 to 256 characters"));
            }
        }
        let max_concurrent = self.count(
            &key("max_concurrent"),
            raw.max_concurrent,
            DEFAULT_MAX_CONCURRENT,
            10_000,
        )?;
        let pollers = self.count(
            &key("pollers"),
            raw.pollers,
            DEFAULT_POLLERS.min(max_concurrent),
            MAX_POLLERS,
        )?;
        if pollers > max_concurrent {
            return Err(self.invalid(
                &key("pollers"),
                &pollers.to_string(),
                &format!("at most max_concurrent ({max_concurrent})"),
            ));
        }
        if raw.activity.is_empty() {
            return Err(self.invalid(
                &key("activity"),
                "(none)",
                "at least one [[swf.NAME.activity]] entry with `type` and `component`",
            ));
        }
        let mut types: Vec<ActivityTypeConfig> = Vec::new();
        for (i, t) in raw.activity.into_iter().enumerate() {
            let id = ActivityId::SwfType {
                list: name.to_string(),
                index: i,
                type_name: t.name.clone(),
                version: t.version.clone(),
            };
            let key = |k: &str| id.key(k);
            if t.name.is_empty() || t.name.chars().count() > 256 {
                return Err(self.invalid(
                    &key("type"),
                    &t.name,
                    "an activity type name of 1 to 256 characters",
                ));
            }
            if types
                .iter()
                .any(|o| o.name == t.name && o.version == t.version)
            {
                return Err(self.invalid(
                    &key("type"),
                    &t.name,
                    "a type (and version) not already mapped in this task list",
                ));
            }
            if t.component.is_empty() {
                return Err(self.invalid(
                    &key("component"),
                    "",
                    "the path of a .wasm component file",
                ));
            }
            let heartbeat_interval = match t.heartbeat_interval.as_deref() {
                None => None,
                Some(text) => Some(self.duration(
                    &key("heartbeat_interval"),
                    Some(text),
                    DEFAULT_HEARTBEAT_INTERVAL,
                )?),
            };
            let (type_name, version, component) =
                (t.name.clone(), t.version.clone(), base.join(&t.component));
            let (limits, capabilities, tenant, record) = self.task(
                &id.table(),
                raw_task!(t, t.cancel_grace.clone()),
                base,
                SWF_MAX_RESULT,
            )?;
            types.push(ActivityTypeConfig {
                id,
                name: type_name,
                version,
                component,
                heartbeat_interval,
                limits,
                capabilities,
                tenant,
                record,
            });
        }
        // The tenant's caps are taken before polling, when the type of the
        // next task is not known yet: one task list, one tenant.
        if let Some(t) = types.iter().find(|t| t.tenant != types[0].tenant) {
            return Err(self.invalid(
                &t.id.key("tenant"),
                t.tenant.as_deref().unwrap_or("(none)"),
                &format!(
                    "the same tenant as the task list's other types ({}): tenant caps are taken before \
                     polling, when the next task's type is not known",
                    types[0].tenant.as_deref().unwrap_or("none")
                ),
            ));
        }
        Ok(TaskListConfig {
            name: name.to_string(),
            domain: raw.domain,
            task_list: raw.task_list,
            max_concurrent,
            pollers,
            types,
        })
    }
}

impl Validator<'_> {
    /// Limits, capabilities and tenant of one activity (or SWF type) at
    /// `prefix`; unset limits come from its tenant's defaults, then the
    /// built-in ones.
    fn task(
        &self,
        prefix: &str,
        raw: RawTask,
        base: &Path,
        service_max_output: u64,
    ) -> Result<
        (
            TaskLimits,
            Capabilities,
            Option<String>,
            Option<RecordConfig>,
        ),
        ConfigError,
    > {
        let key = |k: &str| format!("{prefix}.{k}");
        let tenant = match &raw.tenant {
            None => None,
            Some(t) if self.tenants.contains_key(t) => Some(t.clone()),
            Some(t) => {
                let known: Vec<&str> = self.tenants.keys().map(String::as_str).collect();
                return Err(self.invalid(
                    &key("tenant"),
                    t,
                    &format!(
                        "the name of a [tenant.NAME] table (defined: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        };
        let defaults = tenant.as_ref().and_then(|t| self.tenants.get(t));
        let pick = |own: &Option<String>, tenant: Option<&Option<String>>| {
            own.clone().or_else(|| tenant.cloned().flatten())
        };
        let timeout = self.duration(
            &key("task_timeout"),
            pick(&raw.task_timeout, defaults.map(|d| &d.task_timeout)).as_deref(),
            DEFAULT_TASK_TIMEOUT,
        )?;
        let memory = self.bytes(
            &key("memory_limit"),
            pick(&raw.memory_limit, defaults.map(|d| &d.memory_limit)).as_deref(),
            DEFAULT_MEMORY_LIMIT,
            MIN_MEMORY_LIMIT,
            MAX_MEMORY_LIMIT,
        )?;
        let host_memory = self.bytes(
            &key("host_memory_limit"),
            pick(
                &raw.host_memory_limit,
                defaults.map(|d| &d.host_memory_limit),
            )
            .as_deref(),
            DEFAULT_HOST_MEMORY_LIMIT,
            MIN_HOST_MEMORY_LIMIT,
            MAX_HOST_MEMORY_LIMIT,
        )?;
        let log_bytes = self.bytes(
            &key("log_limit"),
            pick(&raw.log_limit, defaults.map(|d| &d.log_limit)).as_deref(),
            DEFAULT_LOG_LIMIT,
            0,
            1 << 30,
        )?;
        let output_bytes = self.bytes(
            &key("output_limit"),
            pick(&raw.output_limit, defaults.map(|d| &d.output_limit)).as_deref(),
            service_max_output,
            2,
            service_max_output,
        )?;
        let cancel_grace = self.duration(
            &key("cancel_grace"),
            raw.cancel_grace.as_deref(),
            DEFAULT_CANCEL_GRACE,
        )?;
        let fuel = match raw.fuel.or(defaults.and_then(|d| d.fuel)) {
            None => None,
            Some(f) if f > 0 => Some(f as u64),
            Some(f) => {
                return Err(self.invalid(
                    &key("fuel"),
                    &f.to_string(),
                    "a positive number of fuel units",
                ));
            }
        };
        let table_elements = self.count(
            &key("table_elements"),
            raw.table_elements,
            MAX_TABLE_ELEMENTS as usize,
            MAX_TABLE_ELEMENTS as usize,
        )? as u32;
        let instances = self.count(
            &key("max_instances"),
            raw.max_instances,
            MAX_INSTANCES as usize,
            MAX_INSTANCES as usize,
        )? as u32;
        // Caps are taken before polling and a task never gets more than its
        // tenant's `max_memory`: a bigger reservation would make its pollers
        // wait forever, so it is refused here (by `check`, `run` and reload).
        if let Some(t) = tenant
            .as_ref()
            .and_then(|t| self.tenant_caps.iter().find(|c| &c.name == t))
            && let Some(cap) = t.max_memory
            && memory.saturating_add(host_memory) > cap
        {
            let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
            let from = |own: &Option<String>, k: &str| {
                if own.is_some() {
                    format!("{prefix}.{k}")
                } else if defaults.is_some_and(|d| match k {
                    "memory_limit" => d.memory_limit.is_some(),
                    _ => d.host_memory_limit.is_some(),
                }) {
                    format!("tenant.{}.{k}", t.name)
                } else {
                    format!("the default {k}")
                }
            };
            return Err(self.invalid(
                &key("memory_limit"),
                &size(memory),
                &format!(
                    "memory_limit + host_memory_limit ({} from {} + {} from {} = {}) at most tenant {}'s \
                     max_memory ({}): one task must fit in its tenant, or its pollers would wait forever; \
                     lower them, or raise `tenant.{}.max_memory` to at least {}",
                    size(memory),
                    from(&raw.memory_limit, "memory_limit"),
                    size(host_memory),
                    from(&raw.host_memory_limit, "host_memory_limit"),
                    size(memory.saturating_add(host_memory)),
                    t.name,
                    size(cap),
                    t.name,
                    size(memory.saturating_add(host_memory)),
                ),
            ));
        }
        let limits = TaskLimits {
            timeout,
            memory,
            host_memory,
            log_bytes,
            output_bytes,
            cancel_grace,
            fuel,
            table_elements,
            instances,
        };

        let mut capabilities = Capabilities {
            name_lookup: raw.name_lookup.unwrap_or(false),
            ..Capabilities::default()
        };
        for (k, v) in raw.env {
            if !valid_env_name(&k) {
                return Err(self.invalid(
                    &key("env"),
                    &k,
                    "environment variable names of letters, digits and _",
                ));
            }
            capabilities.env.push((k, v));
        }
        for name in raw.env_passthrough {
            if !valid_env_name(&name) {
                return Err(self.invalid(
                    &key("env_passthrough"),
                    &name,
                    "environment variable names of letters, digits and _",
                ));
            }
            if let Ok(value) = std::env::var(&name) {
                capabilities.env.push((name, value));
            }
        }
        for (i, p) in raw.preopen.into_iter().enumerate() {
            let pkey = |k: &str| format!("{prefix}.preopen[{i}].{k}");
            let host = base.join(&p.host);
            if !host.is_dir() {
                return Err(self.invalid(
                    &pkey("host"),
                    &p.host,
                    "an existing directory on the host",
                ));
            }
            if !p.guest.starts_with('/') {
                return Err(self.invalid(
                    &pkey("guest"),
                    &p.guest,
                    "an absolute guest path such as \"/data\"",
                ));
            }
            let writable = match p.mode.as_deref() {
                None | Some("read-only") => false,
                Some("read-write") => true,
                Some(other) => {
                    return Err(self.invalid(
                        &pkey("mode"),
                        other,
                        "\"read-only\" or \"read-write\"",
                    ));
                }
            };
            capabilities.preopens.push(Preopen {
                host,
                guest: p.guest,
                writable,
            });
        }
        for (name, secret) in raw.secrets {
            if !valid_env_name(&name) {
                return Err(self.invalid(
                    &key("secrets"),
                    &name,
                    "secret names of letters, digits and _",
                ));
            }
            let source = match (secret.env, secret.file) {
                (Some(var), None) => SecretSource::Env(var),
                (None, Some(file)) => SecretSource::File(base.join(file)),
                _ => {
                    return Err(self.invalid(
                        &format!("{prefix}.secrets.{name}"),
                        "(table)",
                        "exactly one of env = \"HOST_VARIABLE\" or file = \"/path/to/secret\"",
                    ));
                }
            };
            capabilities.secrets.push(Secret { name, source });
        }
        for addr in raw.sockets {
            let parsed = addr.parse().map_err(|_| {
                self.invalid(
                    &key("sockets"),
                    &addr,
                    "socket addresses like \"127.0.0.1:5432\" or \"[::1]:8080\"",
                )
            })?;
            capabilities.sockets.push(parsed);
        }
        if let Some(h) = raw.http {
            let hkey = |k: &str| format!("{prefix}.http.{k}");
            for origin in &h.allow {
                crate::runtime::http::OriginPattern::parse(origin)
                    .map_err(|_| self.invalid(&hkey("allow"), origin, "origins like \"https://api.example.com\", \"https://*.example.com\" or \"http://127.0.0.1:8080\""))?;
            }
            capabilities.http = Some(HttpGrant {
                allow: h.allow,
                timeout: self.duration(
                    &hkey("timeout"),
                    h.timeout.as_deref(),
                    Duration::from_secs(30),
                )?,
                max_response: self.bytes(
                    &hkey("max_response"),
                    h.max_response.as_deref(),
                    1 << 20,
                    1,
                    1 << 30,
                )?,
                max_request: self.bytes(
                    &hkey("max_request"),
                    h.max_request.as_deref(),
                    1 << 20,
                    1,
                    1 << 30,
                )?,
            });
            // Bodies are held in host memory while they are sent and read,
            // so they must fit in the task's host budget with room to spare.
            if let Some(http) = &capabilities.http
                && (http.max_response + http.max_request).saturating_mul(2) > host_memory
            {
                return Err(self.invalid(
                    &hkey("max_response"),
                    &bytesize::ByteSize(http.max_response).display().iec().to_string(),
                    &format!(
                        "max_response + max_request ({} + {}) at most half of host_memory_limit ({}): \
                         bodies are held in host memory; raise host_memory_limit or lower them",
                        bytesize::ByteSize(http.max_response).display().iec(),
                        bytesize::ByteSize(http.max_request).display().iec(),
                        bytesize::ByteSize(host_memory).display().iec()
                    ),
                ));
            }
        }
        let record = match raw.record {
            None => None,
            Some(r) => {
                if r.dir.is_empty() {
                    return Err(self.invalid(
                        &key("record.dir"),
                        "",
                        "a directory to write recordings to",
                    ));
                }
                Some(RecordConfig {
                    dir: base.join(r.dir),
                    max_bytes: self.bytes(
                        &key("record.max_bytes"),
                        r.max_bytes.as_deref(),
                        64 * 1024,
                        1,
                        1 << 30,
                    )?,
                    redact: r.redact,
                })
            }
        };
        Ok((limits, capabilities, tenant, record))
    }
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// The first activity whose ARN names a region other than `region` (which
/// came from `from`): the worker's clients call one region, and the service
/// refuses an ARN of another one, so no task of it would ever be polled.
fn arn_region_mismatch(
    path: &Path,
    activities: &[ActivityConfig],
    region: &str,
    from: &str,
) -> Option<ConfigError> {
    let a = activities
        .iter()
        .find(|a| a.arn.split(':').nth(3) != Some(region))?;
    Some(ConfigError::Invalid {
        path: path.to_path_buf(),
        key: a.id().key("arn"),
        value: format!("{:?}", a.arn),
        expected: format!(
            "an activity in region {region} ({from}): a worker polls one region; change the \
             region, or serve this activity from a worker of its own region"
        ),
    })
}

impl Config {
    /// Refuses an activity ARN of a region other than `region`, the one the
    /// worker's clients use (from `from`, for the error).
    pub fn check_arn_regions(&self, region: &str, from: &str) -> Result<(), ConfigError> {
        match arn_region_mismatch(&self.path, &self.activities, region, from) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// `arn:<partition>:states:<region>:<account>:activity:<name>`, 1-256 chars.
fn is_activity_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    arn.len() <= 256
        && parts.len() == 7
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "states"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5] == "activity"
        && !parts[6].is_empty()
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
            parts.push(format!("http to {}", h.allow.join(", ")));
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

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:states:us-east-1:000000000000:activity:price";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/wa/worker.toml"))
    }

    fn activity(extra: &str) -> String {
        format!("[activity.price]\narn = \"{ARN}\"\ncomponent = \"price.wasm\"\n{extra}")
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn sizes_take_binary_units_and_refuse_decimal_ones_with_the_fix() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512 kib"), Ok(512 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("4096B"), Ok(4096));
        for (text, fix) in [
            ("64MB", "64MiB"),
            ("64M", "64MiB"),
            ("2G", "2GiB"),
            ("100kb", "100KiB"),
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.contains(&format!("write \"{fix}\"")), "{text}: {e}");
        }
        assert!(
            parse_size("64 furlongs")
                .unwrap_err()
                .contains("unknown unit")
        );
        let e = err(&activity("memory_limit = \"64MB\""));
        assert!(
            e.contains("`activity.price.memory_limit` = \"64MB\"") && e.contains("write \"64MiB\""),
            "{e}"
        );
    }

    #[test]
    fn a_typo_in_a_key_gets_the_key_it_meant() {
        let e = err(&activity("memry_limit = \"64MiB\""));
        assert!(e.contains("did you mean `memory_limit`?"), "{e}");
        let e = err(&format!("worker_nmae = \"w\"\n{}", activity("")));
        assert!(e.contains("did you mean `worker_name`?"), "{e}");
        // Nothing close: no guess.
        let e = err(&activity("zzzzzzzzzz = 1"));
        assert!(
            e.contains("unknown field") && !e.contains("did you mean"),
            "{e}"
        );
    }

    #[test]
    fn an_activity_of_another_region_is_refused() {
        let e = err(&format!("region = \"eu-west-1\"\n{}", activity("")));
        assert!(
            e.contains("`activity.price.arn`")
                && e.contains("an activity in region eu-west-1 (the config's `region`)"),
            "{e}"
        );
        let c = parse(&activity("")).unwrap();
        c.check_arn_regions("us-east-1", "AWS_REGION").unwrap();
        let e = c
            .check_arn_regions("us-west-2", "AWS_REGION")
            .unwrap_err()
            .to_string();
        assert!(e.contains("in region us-west-2 (AWS_REGION)"), "{e}");
    }

    #[test]
    fn a_missing_config_file_says_its_os_error_once() {
        let e = Config::from_file(Path::new("/nonexistent/worker.toml")).unwrap_err();
        let shown = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(shown.matches("No such file").count(), 1, "{shown}");
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(&activity("")).unwrap();
        assert_eq!(c.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
        assert!(c.worker_name.starts_with("wasm-activity@"));
        let a = &c.activities[0];
        assert_eq!(a.name, "price");
        assert_eq!(a.component, Path::new("/etc/wa/price.wasm"));
        assert_eq!(
            (a.max_concurrent, a.pollers),
            (DEFAULT_MAX_CONCURRENT, DEFAULT_POLLERS)
        );
        assert_eq!(a.limits, TaskLimits::default());
    }

    #[test]
    fn human_units_are_parsed() {
        let c = parse(&format!(
            "shutdown_grace = \"1m\"\n{}",
            activity(
                "max_concurrent = 8\npollers = 2\nheartbeat_interval = \"2s\"\ntask_timeout = \"1h 30m\"\n\
                 memory_limit = \"128MiB\"\nlog_limit = \"64KiB\""
            )
        ))
        .unwrap();
        let a = &c.activities[0];
        assert_eq!(c.shutdown_grace, Duration::from_secs(60));
        assert_eq!((a.max_concurrent, a.pollers), (8, 2));
        assert_eq!(a.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(a.limits.timeout, Duration::from_secs(5400));
        assert_eq!(a.limits.memory, 128 << 20);
        assert_eq!(a.limits.log_bytes, 64 << 10);
    }

    #[test]
    fn absolute_component_path_is_kept() {
        let c = parse(&activity("").replace("price.wasm", "/opt/h.wasm")).unwrap();
        assert_eq!(c.activities[0].component, Path::new("/opt/h.wasm"));
    }

    #[test]
    fn bad_duration_names_file_key_value_and_form() {
        let e = err(&activity("task_timeout = \"soon\""));
        assert!(e.starts_with("/etc/wa/worker.toml: `activity.price.task_timeout` = \"soon\": expected a positive duration"), "{e}");
    }

    #[test]
    fn bad_size_is_reported() {
        let e = err(&activity("memory_limit = \"lots\""));
        assert!(
            e.contains(
                "`activity.price.memory_limit` = \"lots\": expected a size such as \"64MiB\""
            ),
            "{e}"
        );
        let e = err(&activity("memory_limit = \"8GiB\""));
        assert!(e.contains("between 1.0 MiB and 4.0 GiB"), "{e}");
    }

    #[test]
    fn unknown_key_is_refused_with_its_path() {
        let e = err(&activity("max_concurency = 3"));
        assert!(
            e.starts_with("/etc/wa/worker.toml: at `activity.price.max_concurency`"),
            "{e}"
        );
        assert!(
            e.contains("unknown field `max_concurency`, expected one of"),
            "{e}"
        );
        assert!(e.contains("line 4"), "{e}");
        let e = err(&format!("regoin = \"x\"\n{}", activity("")));
        assert!(e.contains("unknown field `regoin`"), "{e}");
    }

    #[test]
    fn wrong_type_is_reported_with_path() {
        let e = err(&activity("max_concurrent = \"4\""));
        assert!(e.contains("at `activity.price.max_concurrent`"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn counts_are_range_checked() {
        let e = err(&activity("max_concurrent = 0"));
        assert!(
            e.contains(
                "`activity.price.max_concurrent` = \"0\": expected a whole number from 1 to 10000"
            ),
            "{e}"
        );
        let e = err(&activity("max_concurrent = 2\npollers = 3"));
        assert!(e.contains("expected at most max_concurrent (2)"), "{e}");
    }

    #[test]
    fn arn_must_be_an_activity_arn() {
        let bad = activity("").replace(ARN, "arn:aws:states:us-east-1:000000000000:stateMachine:x");
        let e = err(&bad);
        assert!(e.contains("`activity.price.arn`"), "{e}");
        assert!(e.contains("expected a Step Functions activity ARN"), "{e}");
    }

    #[test]
    fn duplicate_arn_is_refused() {
        let two = format!(
            "{}\n[activity.other]\narn = \"{ARN}\"\ncomponent = \"o.wasm\"\n",
            activity("")
        );
        let e = err(&two);
        assert!(
            e.contains("`activity.price.arn`") || e.contains("`activity.other.arn`"),
            "{e}"
        );
        assert!(e.contains("not already served"), "{e}");
    }

    #[test]
    fn no_activity_is_an_error() {
        let e = err("worker_name = \"w\"\n");
        assert!(e.contains("`activity`"), "{e}");
    }

    const SWF: &str = "[swf.orders]\ndomain = \"shop\"\ntask_list = \"pricing\"\nmax_concurrent = 3\n\n\
                       [[swf.orders.activity]]\ntype = \"price\"\nversion = \"1\"\ncomponent = \"p.wasm\"\n\n\
                       [[swf.orders.activity]]\ntype = \"ship\"\ncomponent = \"s.wasm\"\nheartbeat_interval = \"2s\"\n\
                       cancel_grace = \"1s\"\n";

    #[test]
    fn swf_task_lists_map_types_to_components() {
        let c = parse(SWF).unwrap();
        assert!(c.activities.is_empty());
        let t = &c.task_lists[0];
        assert_eq!(
            (t.domain.as_str(), t.task_list.as_str(), t.max_concurrent),
            ("shop", "pricing", 3)
        );
        assert_eq!(t.types[0].name, "price");
        assert_eq!(t.types[0].version.as_deref(), Some("1"));
        assert_eq!(t.types[0].heartbeat_interval, None);
        assert_eq!(t.types[0].limits.output_bytes, SWF_MAX_RESULT);
        assert_eq!(t.types[1].component, Path::new("/etc/wa/s.wasm"));
        assert_eq!(t.types[1].heartbeat_interval, Some(Duration::from_secs(2)));
        assert_eq!(t.types[1].limits.cancel_grace, Duration::from_secs(1));
    }

    #[test]
    fn step_functions_and_swf_in_one_config() {
        let c = parse(&format!("{}\n{SWF}", activity(""))).unwrap();
        assert_eq!((c.activities.len(), c.task_lists.len()), (1, 1));
    }

    #[test]
    fn swf_mistakes_name_their_keys() {
        let e = err(&SWF.replace("type = \"ship\"", "type = \"price\"\nversion = \"1\""));
        assert!(
            e.contains("`swf.orders.activity[1].type` = \"price\""),
            "{e}"
        );
        let e = err(&SWF.replace("cancel_grace = \"1s\"", "cancel_grace = \"later\""));
        assert!(e.contains("`swf.orders.activity[1].cancel_grace`"), "{e}");
        let e = err("[swf.x]\ndomain = \"d\"\ntask_list = \"t\"\n");
        assert!(e.contains("`swf.x.activity`"), "{e}");
        let e = err(&SWF.replace("domain = \"shop\"", "domain = \"shop\"\nregion = \"x\""));
        assert!(e.contains("unknown field `region`"), "{e}");
    }

    #[test]
    fn capabilities_are_parsed_and_deny_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.toml");
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let text = activity(
            "env = { A = \"1\" }\nsecrets = { KEY = { env = \"HOST_KEY\" }, CERT = { file = \"cert.pem\" } }\n\
             sockets = [\"127.0.0.1:5432\"]\nname_lookup = true\n\
             [[activity.price.preopen]]\nhost = \"data\"\nguest = \"/data\"\nmode = \"read-write\"",
        );
        let c = Config::from_toml(&text, &path).unwrap();
        let caps = &c.activities[0].capabilities;
        assert_eq!(caps.env, vec![("A".to_string(), "1".to_string())]);
        assert_eq!(
            caps.preopens,
            vec![Preopen {
                host: dir.path().join("data"),
                guest: "/data".into(),
                writable: true
            }]
        );
        assert_eq!(caps.secrets.len(), 2);
        assert!(caps.secrets.contains(&Secret {
            name: "CERT".into(),
            source: SecretSource::File(dir.path().join("cert.pem"))
        }));
        assert_eq!(caps.sockets, vec!["127.0.0.1:5432".parse().unwrap()]);
        assert!(caps.name_lookup);
        // Nothing granted: nothing reachable.
        assert_eq!(
            parse(&activity("")).unwrap().activities[0].capabilities,
            Capabilities::default()
        );
    }

    #[test]
    fn capability_mistakes_name_their_keys() {
        let e = err(&activity(
            "[[activity.price.preopen]]\nhost = \"/nonexistent-dir\"\nguest = \"/d\"",
        ));
        assert!(e.contains("`activity.price.preopen[0].host` = \"/nonexistent-dir\": expected an existing directory"), "{e}");
        let e = err(&activity(
            "[[activity.price.preopen]]\nhost = \"/tmp\"\nguest = \"d\"",
        ));
        assert!(e.contains("`activity.price.preopen[0].guest`"), "{e}");
        let e = err(&activity(
            "[[activity.price.preopen]]\nhost = \"/tmp\"\nguest = \"/d\"\nmode = \"rw\"",
        ));
        assert!(
            e.contains("expected \"read-only\" or \"read-write\""),
            "{e}"
        );
        let e = err(&activity("secrets = { K = { env = \"A\", file = \"b\" } }"));
        assert!(
            e.contains("`activity.price.secrets.K`") && e.contains("exactly one of"),
            "{e}"
        );
        let e = err(&activity("sockets = [\"localhost:80\"]"));
        assert!(
            e.contains("`activity.price.sockets` = \"localhost:80\""),
            "{e}"
        );
        let e = err(&activity("env = { \"BAD-NAME\" = \"x\" }"));
        assert!(e.contains("`activity.price.env` = \"BAD-NAME\""), "{e}");
    }

    #[test]
    fn budgets_are_parsed_and_output_limit_is_capped_by_the_service() {
        let c = parse(&activity(
            "fuel = 1000000\noutput_limit = \"1KiB\"\ntable_elements = 500\nmax_instances = 8",
        ))
        .unwrap();
        let l = c.activities[0].limits;
        assert_eq!(
            (l.fuel, l.output_bytes, l.table_elements, l.instances),
            (Some(1_000_000), 1024, 500, 8)
        );
        let e = err(&activity("output_limit = \"1MiB\""));
        assert!(e.contains("`activity.price.output_limit`"), "{e}");
        let e = err(&activity("fuel = 0"));
        assert!(e.contains("`activity.price.fuel` = \"0\""), "{e}");
    }

    #[test]
    fn tenants_give_caps_and_defaults() {
        let text = format!(
            "[tenant.acme]\nmax_concurrent = 6\nmax_memory = \"256MiB\"\nmemory_limit = \"32MiB\"\ntask_timeout = \"1m\"\n\n{}",
            activity("tenant = \"acme\"\ntask_timeout = \"10s\"")
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.tenants,
            vec![TenantConfig {
                name: "acme".into(),
                max_concurrent: Some(6),
                max_memory: Some(256 << 20)
            }]
        );
        let a = &c.activities[0];
        assert_eq!(a.tenant.as_deref(), Some("acme"));
        assert_eq!(a.limits.memory, 32 << 20, "tenant default");
        assert_eq!(a.limits.timeout, Duration::from_secs(10), "own value wins");
        let e = err(&activity("tenant = \"nobody\""));
        assert!(e.contains("`activity.price.tenant` = \"nobody\": expected the name of a [tenant.NAME] table (defined: none)"), "{e}");
        let e = err(&format!(
            "[tenant.small]\nmax_memory = \"16MiB\"\n\n{}",
            activity("tenant = \"small\"")
        ));
        assert!(e.contains("at most tenant small's max_memory"), "{e}");
        // A task reserves its host memory under the tenant's cap too.
        let e = err(&format!(
            "[tenant.small]\nmax_memory = \"40MiB\"\n\n{}",
            activity("tenant = \"small\"\nmemory_limit = \"32MiB\"")
        ));
        assert!(
            e.contains(
                "`activity.price.memory_limit` = \"32.0 MiB\": expected memory_limit + host_memory_limit \
                 (32.0 MiB from activity.price.memory_limit + 16.0 MiB from the default host_memory_limit \
                 = 48.0 MiB) at most tenant small's max_memory (40.0 MiB)"
            ) && e.contains("raise `tenant.small.max_memory` to at least 48.0 MiB"),
            "{e}"
        );
        // A value inherited from the tenant is named where it is written.
        let e = err(&format!(
            "[tenant.small]\nmax_memory = \"40MiB\"\nmemory_limit = \"30MiB\"\n\n{}",
            activity("tenant = \"small\"\nhost_memory_limit = \"12MiB\"")
        ));
        assert!(
            e.starts_with("/etc/wa/worker.toml: `activity.price.memory_limit` = \"30.0 MiB\"")
                && e.contains(
                    "(30.0 MiB from tenant.small.memory_limit + 12.0 MiB from activity.price.host_memory_limit = 42.0 MiB)"
                ),
            "{e}"
        );
        // And each SWF type under its key.
        let e = err(&format!(
            "[tenant.small]\nmax_memory = \"40MiB\"\n\n{}",
            SWF.replace(
                "component = \"s.wasm\"",
                "component = \"s.wasm\"\ntenant = \"small\""
            )
            .replace(
                "version = \"1\"",
                "version = \"1\"\ntenant = \"small\"\nmemory_limit = \"8MiB\""
            )
        ));
        assert!(
            e.contains("`swf.orders.activity[1].memory_limit` = \"64.0 MiB\"")
                && e.contains("to at least 80.0 MiB"),
            "{e}"
        );
        let c = parse(&format!(
            "[tenant.small]\nmax_memory = \"40MiB\"\nhost_memory_limit = \"4MiB\"\n\n{}",
            activity("tenant = \"small\"\nmemory_limit = \"32MiB\"")
        ))
        .unwrap();
        assert_eq!(
            c.activities[0].limits.host_memory,
            4 << 20,
            "tenant default"
        );
        assert_eq!(c.activities[0].limits.reserved_memory(), 36 << 20);
    }

    #[test]
    fn limits_the_instance_pool_cannot_honour_are_refused() {
        let e = err(&activity("table_elements = 100001"));
        assert!(
            e.contains("`activity.price.table_elements` = \"100001\": expected a whole number from 1 to 100000"),
            "{e}"
        );
        let e = err(&activity("max_instances = 26"));
        assert!(
            e.contains(
                "`activity.price.max_instances` = \"26\": expected a whole number from 1 to 25"
            ),
            "{e}"
        );
        let e = err(&activity(
            "[activity.price.http]\nallow = [\"https://api.example.com\"]\nmax_response = \"8MiB\"",
        ));
        assert!(
            e.contains("`activity.price.http.max_response` = \"8.0 MiB\": expected max_response + max_request (8.0 MiB + 1.0 MiB) at most half of host_memory_limit (16.0 MiB)"),
            "{e}"
        );
        let e = err(&activity("host_memory_limit = \"100KiB\""));
        assert!(e.contains("`activity.price.host_memory_limit`"), "{e}");
        let c = parse(&activity("")).unwrap();
        let l = c.activities[0].limits;
        assert_eq!(
            (l.table_elements, l.instances, l.host_memory),
            (MAX_TABLE_ELEMENTS, MAX_INSTANCES, DEFAULT_HOST_MEMORY_LIMIT),
            "defaults are what the pool allows"
        );
    }

    #[test]
    fn operational_keys_are_validated() {
        let c = parse(&format!(
            "metrics_addr = \"127.0.0.1:9464\"\nreload = false\nreload_debounce = \"250ms\"\n{}",
            activity("\n[activity.price.record]\ndir = \"rec\"\nredact = [\"email\"]")
        ))
        .unwrap();
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        assert!(!c.reload);
        assert_eq!(c.reload_debounce, Duration::from_millis(250));
        let r = c.activities[0].record.as_ref().unwrap();
        assert_eq!(
            (r.dir.as_path(), r.max_bytes, r.redact.as_slice()),
            (
                Path::new("/etc/wa/rec"),
                64 * 1024,
                &["email".to_string()][..]
            )
        );
        let e = err(&format!("metrics_addr = \"localhost\"\n{}", activity("")));
        assert!(
            e.contains("`metrics_addr` = \"localhost\": expected a socket address"),
            "{e}"
        );
        let e = err(&format!("reload_debounce = \"soon\"\n{}", activity("")));
        assert!(e.contains("`reload_debounce` = \"soon\""), "{e}");
        let e = err(&activity("\n[activity.price.record]\ndir = \"\""));
        assert!(e.contains("`activity.price.record.dir`"), "{e}");
        let e = err(&activity(
            "\n[activity.price.record]\ndir = \"r\"\nmax_bytes = \"huge\"",
        ));
        assert!(
            e.contains("`activity.price.record.max_bytes` = \"huge\""),
            "{e}"
        );
    }

    #[test]
    fn bad_toml_names_the_file() {
        let e = err("[activity.price\n");
        assert!(e.starts_with("/etc/wa/worker.toml: "), "{e}");
    }

    #[test]
    fn endpoint_must_be_a_url() {
        let e = err(&format!("endpoint = \"localhost:4566\"\n{}", activity("")));
        assert!(
            e.contains("`endpoint` = \"localhost:4566\": expected an http:// or https:// URL"),
            "{e}"
        );
    }

    /// One Step Functions activity and a task list with a versioned type, an
    /// unversioned one, and a second version of the first.
    const NAMED: &str = "[activity.price]\narn = \"arn:aws:states:us-east-1:000000000000:activity:price\"\n\
                         component = \"p.wasm\"\n\n\
                         [swf.orders]\ndomain = \"shop\"\ntask_list = \"pricing\"\n\n\
                         [[swf.orders.activity]]\ntype = \"ship\"\nversion = \"1\"\ncomponent = \"s.wasm\"\n\n\
                         [[swf.orders.activity]]\ntype = \"ship\"\ncomponent = \"s.wasm\"\n\n\
                         [[swf.orders.activity]]\ntype = \"ship\"\nversion = \"2\"\ncomponent = \"s.wasm\"\n";

    /// Every activity and SWF type of `c` with its limits.
    fn all_limits(c: &Config) -> Vec<(ActivityId, TaskLimits)> {
        (c.activities.iter().map(|a| (a.id(), a.limits)))
            .chain(
                c.task_lists
                    .iter()
                    .flat_map(|l| l.types.iter().map(|t| (t.id.clone(), t.limits))),
            )
            .collect()
    }

    /// `text` with `key` (a path as [`ActivityId::key`] writes it) set to
    /// `value`, written into the table the path names, as a person would.
    fn set_key(text: &str, key: &str, value: &str) -> String {
        let (table, field) = key.rsplit_once('.').unwrap();
        let (header, nth) = match table.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
            Some((array, index)) => (format!("[[{array}]]"), index.parse::<usize>().unwrap()),
            None => (format!("[{table}]"), 0),
        };
        let mut seen = 0;
        let mut out = String::new();
        for line in text.lines() {
            out.push_str(line);
            out.push('\n');
            if line.trim() == header {
                if seen == nth {
                    out.push_str(&format!("{field} = {value}\n"));
                }
                seen += 1;
            }
        }
        assert!(seen > nth, "no table {table} ({header} #{nth}) in:\n{text}");
        out
    }

    #[test]
    fn one_name_and_one_key_path_per_activity_and_swf_type() {
        let c = parse(NAMED).unwrap();
        let ids: Vec<ActivityId> = all_limits(&c).into_iter().map(|(id, _)| id).collect();
        let names: Vec<String> = ids.iter().map(ActivityId::name).collect();
        assert_eq!(
            names,
            ["price", "orders/ship@1", "orders/ship", "orders/ship@2"]
        );
        assert_eq!(ids[1].to_string(), "orders/ship@1", "Display is the name");
        assert_eq!(ids[0].key("task_timeout"), "activity.price.task_timeout");
        assert_eq!(ids[2].key("fuel"), "swf.orders.activity[1].fuel");
        assert_eq!(ids[0].key_hint("fuel"), "activity.price.fuel");
        assert_eq!(
            ids[1].key_hint("memory_limit"),
            "swf.orders.activity[0].memory_limit (in the [[swf.orders.activity]] entry with \
             type = \"ship\" and version = \"1\")"
        );
        assert!(
            ids[2]
                .key_hint("memory_limit")
                .ends_with("type = \"ship\" and no version)"),
            "{}",
            ids[2].key_hint("memory_limit")
        );
        // Names that are not bare TOML keys are quoted in paths, as in the file.
        let odd = parse(
            "[activity.\"pay.v2\"]\narn = \"arn:aws:states:us-east-1:000000000000:activity:p\"\n\
             component = \"p.wasm\"\n\n[swf.\"eu orders\"]\ndomain = \"d\"\ntask_list = \"t\"\n\
             [[swf.\"eu orders\".activity]]\ntype = \"ship\"\ncomponent = \"s.wasm\"\n",
        )
        .unwrap();
        let odd = all_limits(&odd);
        assert_eq!(odd[0].0.name(), "pay.v2");
        assert_eq!(odd[0].0.key("fuel"), "activity.\"pay.v2\".fuel");
        assert_eq!(odd[1].0.name(), "eu orders/ship");
        assert_eq!(odd[1].0.key("fuel"), "swf.\"eu orders\".activity[0].fuel");
    }

    #[test]
    fn config_errors_in_swf_entries_use_the_same_key_path() {
        let e = err(&NAMED.replace(
            "type = \"ship\"\ncomponent",
            "type = \"ship\"\nfuel = 0\ncomponent",
        ));
        assert!(e.contains("`swf.orders.activity[1].fuel` = \"0\""), "{e}");
    }

    #[test]
    fn two_activities_with_one_name_are_refused() {
        // Type "ship@1" of any version would be named like type "ship" version "1".
        let e = err(&NAMED.replace("type = \"ship\"\ncomponent", "type = \"ship@1\"\ncomponent"));
        assert!(
            e.contains(
                "`swf.orders.activity[1].type` = \"ship@1\": expected a name that does not make it \
                 \"orders/ship@1\" in logs and metrics, as swf.orders.activity[0] already is"
            ),
            "{e}"
        );
        let e = err(&format!(
            "{NAMED}\n[activity.\"orders/ship@2\"]\narn = \"arn:aws:states:us-east-1:000000000000:activity:o\"\n\
             component = \"o.wasm\"\n"
        ));
        assert!(
            e.contains("`swf.orders.activity[2].type` = \"ship\"")
                && e.contains("as activity.\"orders/ship@2\" already is"),
            "{e}"
        );
    }

    /// Every "raise KEY" a failure cause gives names a key that exists: set
    /// in the file where the key says, it changes that activity's (or SWF
    /// type's) limit and no other's.
    #[test]
    fn every_limit_hint_names_a_key_that_sets_that_limit() {
        use crate::report::{LimitSource, Report, from_outcome};
        use crate::runtime::{Fault, HostLimit, Outcome};
        type Get = fn(&TaskLimits) -> String;
        let faults: [(Fault, &str, &str, Get); 6] = [
            (
                Fault::Timeout {
                    limit: Duration::from_secs(1),
                },
                "task_timeout",
                "\"7s\"",
                |l| format!("{:?}", l.timeout),
            ),
            (
                Fault::MemoryLimit {
                    limit: 1 << 20,
                    requested: 2 << 20,
                    trap: "t".into(),
                },
                "memory_limit",
                "\"48MiB\"",
                |l| l.memory.to_string(),
            ),
            (Fault::FuelExhausted { limit: 1 }, "fuel", "12345", |l| {
                format!("{:?}", l.fuel)
            }),
            (
                Fault::TableLimit {
                    limit: 1,
                    requested: 2,
                },
                "table_elements",
                "777",
                |l| l.table_elements.to_string(),
            ),
            (
                Fault::InstanceLimit {
                    limit: 1,
                    detail: "d".into(),
                },
                "max_instances",
                "7",
                |l| l.instances.to_string(),
            ),
            (
                Fault::HostResources {
                    kind: HostLimit::Memory,
                    limit: 1,
                    used: 2,
                },
                "host_memory_limit",
                "\"3MiB\"",
                |l| l.host_memory.to_string(),
            ),
        ];
        let before = all_limits(&parse(NAMED).unwrap());
        for (id, _) in &before {
            for (fault, field, value, get) in &faults {
                let report = from_outcome(
                    Outcome::Fault(fault.clone()),
                    LimitSource::Activity(id),
                    &crate::service::swf::LIMITS,
                    &crate::redact::Redactor::default(),
                );
                let Report::Failure { cause, .. } = report else {
                    panic!("{report:?}")
                };
                let key = cause
                    .split("raise ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or_else(|| panic!("no \"raise KEY\" in {cause:?}"));
                assert_eq!(key, id.key(field), "{cause}");
                assert!(cause.contains(&id.key_hint(field)), "{cause}");
                let after = all_limits(
                    &parse(&set_key(NAMED, key, value))
                        .unwrap_or_else(|e| panic!("{key} = {value}: {e}")),
                );
                for ((bid, b), (aid, a)) in before.iter().zip(&after) {
                    assert_eq!(bid, aid);
                    if bid == id {
                        assert_ne!(get(b), get(a), "{key} did not change {bid}");
                    } else {
                        assert_eq!(b, a, "{key} changed {bid}, not {id}");
                    }
                }
            }
        }
    }
}
