//! The config file as serde reads it: every table rejects unknown keys.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Raw TOML shape; see [`Config`] for meanings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) region: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) worker_name: Option<String>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) cache_dir: Option<String>,
    pub(super) metrics_addr: Option<String>,
    pub(super) reload: Option<bool>,
    pub(super) reload_debounce: Option<String>,
    #[serde(default)]
    pub(super) activity: BTreeMap<String, RawActivity>,
    #[serde(default)]
    pub(super) swf: BTreeMap<String, RawTaskList>,
    #[serde(default)]
    pub(super) tenant: BTreeMap<String, RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTaskList {
    pub(super) domain: String,
    pub(super) task_list: String,
    pub(super) max_concurrent: Option<i64>,
    pub(super) pollers: Option<i64>,
    #[serde(default)]
    pub(super) activity: Vec<RawActivityType>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawActivityType {
    #[serde(rename = "type")]
    pub(super) name: String,
    pub(super) version: Option<String>,
    pub(super) component: String,
    pub(super) heartbeat_interval: Option<String>,
    pub(super) task_timeout: Option<String>,
    pub(super) memory_limit: Option<String>,
    pub(super) host_memory_limit: Option<String>,
    pub(super) log_limit: Option<String>,
    pub(super) cancel_grace: Option<String>,
    pub(super) tenant: Option<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) env_passthrough: Vec<String>,
    #[serde(default)]
    pub(super) preopen: Vec<RawPreopen>,
    #[serde(default)]
    pub(super) secrets: BTreeMap<String, RawSecret>,
    #[serde(default)]
    pub(super) sockets: Vec<String>,
    pub(super) name_lookup: Option<bool>,
    pub(super) fuel: Option<i64>,
    pub(super) output_limit: Option<String>,
    pub(super) table_elements: Option<i64>,
    pub(super) max_instances: Option<i64>,
    pub(super) http: Option<RawHttp>,
    pub(super) record: Option<RawRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawActivity {
    pub(super) arn: String,
    pub(super) component: String,
    pub(super) max_concurrent: Option<i64>,
    pub(super) pollers: Option<i64>,
    pub(super) heartbeat_interval: Option<String>,
    pub(super) task_timeout: Option<String>,
    pub(super) memory_limit: Option<String>,
    pub(super) host_memory_limit: Option<String>,
    pub(super) log_limit: Option<String>,
    pub(super) tenant: Option<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) env_passthrough: Vec<String>,
    #[serde(default)]
    pub(super) preopen: Vec<RawPreopen>,
    #[serde(default)]
    pub(super) secrets: BTreeMap<String, RawSecret>,
    #[serde(default)]
    pub(super) sockets: Vec<String>,
    pub(super) name_lookup: Option<bool>,
    pub(super) fuel: Option<i64>,
    pub(super) output_limit: Option<String>,
    pub(super) table_elements: Option<i64>,
    pub(super) max_instances: Option<i64>,
    pub(super) http: Option<RawHttp>,
    pub(super) record: Option<RawRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) allow: Vec<String>,
    pub(super) timeout: Option<String>,
    pub(super) max_response: Option<String>,
    pub(super) max_request: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecord {
    pub(super) dir: String,
    pub(super) max_bytes: Option<String>,
    #[serde(default)]
    pub(super) redact: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPreopen {
    pub(super) host: String,
    pub(super) guest: String,
    pub(super) mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    pub(super) env: Option<String>,
    pub(super) file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    pub(super) max_concurrent: Option<i64>,
    pub(super) max_memory: Option<String>,
    pub(super) task_timeout: Option<String>,
    pub(super) memory_limit: Option<String>,
    pub(super) host_memory_limit: Option<String>,
    pub(super) log_limit: Option<String>,
    pub(super) fuel: Option<i64>,
    pub(super) output_limit: Option<String>,
}

/// The per-task fields Step Functions activities and SWF types share, moved
/// out of either raw struct so they are validated in one place.
pub(super) struct RawTask {
    pub(super) task_timeout: Option<String>,
    pub(super) memory_limit: Option<String>,
    pub(super) host_memory_limit: Option<String>,
    pub(super) log_limit: Option<String>,
    pub(super) cancel_grace: Option<String>,
    pub(super) tenant: Option<String>,
    pub(super) env: BTreeMap<String, String>,
    pub(super) env_passthrough: Vec<String>,
    pub(super) preopen: Vec<RawPreopen>,
    pub(super) secrets: BTreeMap<String, RawSecret>,
    pub(super) sockets: Vec<String>,
    pub(super) name_lookup: Option<bool>,
    pub(super) fuel: Option<i64>,
    pub(super) output_limit: Option<String>,
    pub(super) table_elements: Option<i64>,
    pub(super) max_instances: Option<i64>,
    pub(super) http: Option<RawHttp>,
    pub(super) record: Option<RawRecord>,
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
pub(super) use raw_task;
