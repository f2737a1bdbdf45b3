//! Raw tables to validated types: units, paths, ranges and cross-checks.

use super::raw::*;
use super::*;
use std::collections::BTreeMap;

impl Config {
    pub(super) fn from_raw(raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
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

pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    pub(super) tenants: &'a BTreeMap<String, RawTenant>,
    pub(super) tenant_caps: &'a [TenantConfig],
}

impl Validator<'_> {
    pub(super) fn invalid(&self, key: &str, value: &str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            value: format!("{value:?}"),
            expected: expected.to_string(),
        }
    }

    pub(super) fn duration(
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

    pub(super) fn bytes(
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

    pub(super) fn count(
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

pub(super) fn valid_env_name(name: &str) -> bool {
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
