//! Raw tables to validated types: units, paths, ranges and cross-checks.
//! The per-task keys (limits, capabilities, tenant, recording) are checked
//! in `task`, once for Step Functions activities and SWF types alike.

use super::raw::*;
use super::*;
use std::collections::BTreeMap;
use toml::Spanned;

/// Checks raw values against what they may be, naming the file, the key,
/// the value and where it is written.
pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    /// The file's text, to turn a value's byte span into line and column.
    pub(super) text: &'a str,
    /// The limits each tenant gives its activities by default.
    pub(super) tenants: &'a BTreeMap<String, RawLimits>,
    pub(super) tenant_caps: &'a [TenantConfig],
    /// Hosts that may be reached over plain HTTP.
    pub(super) insecure: &'a [String],
}

impl Config {
    pub(super) fn from_raw(raw: RawConfig, path: &Path, text: &str) -> Result<Config, ConfigError> {
        let no_tenants = BTreeMap::new();
        let v = Validator {
            path,
            text,
            tenants: &no_tenants,
            tenant_caps: &[],
            insecure: &[],
        };
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));

        if let Some(region) = &raw.region
            && (region.get_ref().is_empty()
                || !region
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(v.invalid_at(
                region,
                "region",
                region.get_ref(),
                "an AWS region name such as \"us-east-1\"",
            ));
        }
        if let Some(endpoint) = &raw.endpoint
            && !(endpoint.get_ref().starts_with("http://")
                || endpoint.get_ref().starts_with("https://"))
        {
            return Err(v.invalid_at(
                endpoint,
                "endpoint",
                endpoint.get_ref(),
                "an http:// or https:// URL such as \"http://127.0.0.1:4566\"",
            ));
        }
        let worker_name = match &raw.worker_name {
            Some(name)
                if name.get_ref().is_empty()
                    || name.get_ref().len() > crate::aws::MAX_WORKER_NAME =>
            {
                return Err(v.invalid_at(
                    name,
                    "worker_name",
                    name.get_ref(),
                    &format!("1 to {} characters", crate::aws::MAX_WORKER_NAME),
                ));
            }
            Some(name) => name.get_ref().clone(),
            None => default_worker_name(),
        };
        let shutdown_grace = v.duration(
            "shutdown_grace",
            raw.shutdown_grace.as_ref(),
            DEFAULT_SHUTDOWN_GRACE,
        )?;
        let cache_dir = raw.cache_dir.map(|d| base.join(d));
        let metrics_addr = match &raw.metrics_addr {
            None => None,
            Some(a) => Some(a.get_ref().parse().map_err(|_| {
                v.invalid_at(
                    a,
                    "metrics_addr",
                    a.get_ref(),
                    "a socket address such as \"127.0.0.1:9464\"",
                )
            })?),
        };
        let otlp_endpoint = match &raw.otlp_endpoint {
            None => None,
            Some(e) => {
                let text = e.get_ref().trim_end_matches('/');
                let ok = text.parse::<http::Uri>().is_ok_and(|u| {
                    matches!(u.scheme_str(), Some("http" | "https"))
                        && u.host().is_some()
                        && u.query().is_none()
                });
                if !ok {
                    return Err(v.invalid_at(
                        e,
                        "otlp_endpoint",
                        e.get_ref(),
                        "an http:// or https:// URL of an OTLP/HTTP collector such as \"http://127.0.0.1:4318\"",
                    ));
                }
                Some(text.to_string())
            }
        };

        if raw.activity.is_empty() && raw.swf.is_empty() {
            return Err(v.invalid(
                "activity",
                "(none)",
                "at least one [activity.NAME] table (Step Functions) or [swf.NAME] table (SWF)",
            ));
        }
        let (tenants, tenant_defaults) = v.tenants(raw.tenant)?;
        let v = Validator {
            tenants: &tenant_defaults,
            tenant_caps: &tenants,
            ..v
        };
        let components = v.component_settings(
            raw.component_refresh.as_ref(),
            raw.component_store_max.as_ref(),
            &raw.insecure_registries,
        )?;
        let v = Validator {
            insecure: &components.insecure,
            ..v
        };
        let region = raw.region.map(Spanned::into_inner);
        let activities = v.activities(raw.activity, &base, region.as_deref())?;
        let task_lists = v.task_lists(raw.swf, &base)?;
        v.unique_names(&activities, &task_lists)?;
        let aws_client = match &raw.aws_client {
            None => AwsClient::default(),
            Some(c) => match c.get_ref().as_str() {
                "lean" => AwsClient::Lean,
                "sdk" => AwsClient::Sdk,
                other => {
                    return Err(v.invalid_at(
                        c,
                        "aws_client",
                        other,
                        "\"lean\" (the default) or \"sdk\"",
                    ));
                }
            },
        };
        let reload_debounce = v.duration(
            "reload_debounce",
            raw.reload_debounce.as_ref(),
            Duration::from_millis(100),
        )?;
        Ok(Config {
            path: path.to_path_buf(),
            region,
            endpoint: raw.endpoint.map(Spanned::into_inner),
            worker_name,
            shutdown_grace,
            cache_dir,
            metrics_addr,
            otlp_endpoint,
            reload: raw.reload.unwrap_or(true),
            reload_debounce,
            components,
            aws_client,
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
    name.truncate(crate::aws::MAX_WORKER_NAME);
    name
}

impl Validator<'_> {
    /// `key` = `value` is not what was `expected`; where it is written is
    /// not known (a missing value, or one computed from others).
    pub(super) fn invalid(&self, key: &str, value: &str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            value: format!("{value:?}"),
            expected: expected.to_string(),
            at: None,
        }
    }

    /// [`Validator::invalid`] for a value written where `at` is.
    pub(super) fn invalid_at<T>(
        &self,
        at: &Spanned<T>,
        key: &str,
        value: &str,
        expected: &str,
    ) -> ConfigError {
        self.invalid(key, value, expected)
            .at(Some(Position::of(self.text, at.span().start)))
    }

    pub(super) fn duration(
        &self,
        key: &str,
        value: Option<&Text>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(text) = value else {
            return Ok(default);
        };
        match humantime::parse_duration(text.get_ref()) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(self.invalid_at(
                text,
                key,
                text.get_ref(),
                "a positive duration such as \"500ms\", \"30s\", \"5m\" or \"1h 30m\"",
            )),
        }
    }

    pub(super) fn bytes(
        &self,
        key: &str,
        value: Option<&Text>,
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
        let bytes = parse_size(text.get_ref())
            .map_err(|why| self.invalid_at(text, key, text.get_ref(), &expected(&why)))?;
        if bytes < min || bytes > max {
            return Err(self.invalid_at(text, key, text.get_ref(), &expected("")));
        }
        Ok(bytes)
    }

    pub(super) fn count(
        &self,
        key: &str,
        value: Option<&Int>,
        default: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        let Some(n) = value else { return Ok(default) };
        match usize::try_from(*n.get_ref()) {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid_at(
                n,
                key,
                &n.get_ref().to_string(),
                &format!("a whole number from 1 to {max}"),
            )),
        }
    }

    /// `max_concurrent` and `pollers` of an activity or task list.
    fn concurrency(
        &self,
        key: &dyn Fn(&str) -> String,
        max_concurrent: Option<&Int>,
        pollers: Option<&Int>,
        why: &str,
    ) -> Result<(usize, usize), ConfigError> {
        let max_concurrent = self.count(
            &key("max_concurrent"),
            max_concurrent,
            DEFAULT_MAX_CONCURRENT,
            10_000,
        )?;
        let written = pollers;
        let pollers = self.count(
            &key("pollers"),
            written,
            DEFAULT_POLLERS.min(max_concurrent),
            MAX_POLLERS,
        )?;
        if pollers > max_concurrent {
            return Err(self
                .invalid(
                    &key("pollers"),
                    &pollers.to_string(),
                    &format!("at most max_concurrent ({max_concurrent}){why}"),
                )
                .at(written.map(|p| Position::of(self.text, p.span().start))));
        }
        Ok((max_concurrent, pollers))
    }

    /// The tenants' caps, and the limits they give their activities.
    fn tenants(
        &self,
        raw: BTreeMap<String, RawTenant>,
    ) -> Result<(Vec<TenantConfig>, BTreeMap<String, RawLimits>), ConfigError> {
        let mut tenants = Vec::with_capacity(raw.len());
        let mut defaults = BTreeMap::new();
        for (name, mut t) in raw {
            let key = |k: &str| format!("tenant.{name}.{k}");
            let max_concurrent = t
                .max_concurrent
                .as_ref()
                .map(|n| self.count(&key("max_concurrent"), Some(n), 1, 100_000))
                .transpose()?;
            let max_memory = t
                .max_memory
                .as_ref()
                .map(|m| self.bytes(&key("max_memory"), Some(m), 0, MIN_MEMORY_LIMIT, 1 << 40))
                .transpose()?;
            defaults.insert(name.clone(), t.take_limits());
            tenants.push(TenantConfig {
                name,
                max_concurrent,
                max_memory,
            });
        }
        Ok((tenants, defaults))
    }

    /// The `[activity.NAME]` tables, each ARN served once and, if the
    /// config names a region, of that region.
    fn activities(
        &self,
        raw: BTreeMap<String, RawActivity>,
        base: &Path,
        region: Option<&str>,
    ) -> Result<Vec<ActivityConfig>, ConfigError> {
        let mut activities = Vec::with_capacity(raw.len());
        let mut arns_at = Vec::with_capacity(raw.len());
        for (name, a) in raw {
            arns_at.push(Position::of(self.text, a.arn.span().start));
            activities.push(self.activity(&name, a, base)?);
        }
        for (i, a) in activities.iter().enumerate() {
            if let Some(other) = activities[..i].iter().find(|b| b.arn == a.arn) {
                return Err(self
                    .invalid(
                        &a.id().key("arn"),
                        &a.arn,
                        &format!("an ARN not already served by [activity.{}]", other.name),
                    )
                    .at(Some(arns_at[i])));
            }
        }
        if let Some(region) = region
            && let Some(i) = arn_region_mismatch(&activities, region)
        {
            let e = arn_region_error(self.path, &activities[i], region, "the config's `region`");
            return Err(e.at(Some(arns_at[i])));
        }
        Ok(activities)
    }

    fn activity(
        &self,
        name: &str,
        mut raw: RawActivity,
        base: &Path,
    ) -> Result<ActivityConfig, ConfigError> {
        let id = ActivityId::StepFunctions {
            name: name.to_string(),
        };
        let key = |k: &str| id.key(k);
        if !is_activity_arn(raw.arn.get_ref()) {
            return Err(self.invalid_at(
                &raw.arn,
                &key("arn"),
                raw.arn.get_ref(),
                "a Step Functions activity ARN such as \
                 \"arn:aws:states:us-east-1:123456789012:activity:my-activity\" (at most 256 characters)",
            ));
        }
        let component =
            self.component(&key("component"), &raw.component, raw.sha256.as_ref(), base)?;
        let (max_concurrent, pollers) = self.concurrency(
            &key,
            raw.max_concurrent.as_ref(),
            raw.pollers.as_ref(),
            ": each poll holds a free task slot, so extra pollers would never poll",
        )?;
        let heartbeat_interval = self.duration(
            &key("heartbeat_interval"),
            raw.heartbeat_interval.as_ref(),
            DEFAULT_HEARTBEAT_INTERVAL,
        )?;
        let (limits, task) = raw.take_shared();
        let task = self.task(&id.table(), limits, task, None, base, SFN_MAX_PAYLOAD)?;
        Ok(ActivityConfig {
            name: name.to_string(),
            arn: raw.arn.into_inner(),
            component,
            max_concurrent,
            pollers,
            heartbeat_interval,
            limits: task.limits,
            capabilities: task.capabilities,
            tenant: task.tenant,
            record: task.record,
        })
    }

    /// A component reference (a path relative to the config file's
    /// directory, or `oci://`, `s3://`, `https://`) and its `sha256` pin.
    fn component(
        &self,
        key: &str,
        raw: &Text,
        sha256: Option<&Text>,
        base: &Path,
    ) -> Result<ComponentRef, ConfigError> {
        let pin_key = key.replace("component", "sha256");
        let pin = match sha256 {
            None => None,
            Some(text) => Some(
                Digest::parse(text.get_ref())
                    .map_err(|e| self.invalid_at(text, &pin_key, text.get_ref(), &e))?,
            ),
        };
        let component = ComponentRef::parse(raw.get_ref(), pin, base).map_err(|e| {
            let key = if e.starts_with("a pin") {
                &pin_key
            } else {
                key
            };
            self.invalid_at(raw, key, raw.get_ref(), &e)
        })?;
        if let Some(host) = component.source.plain_http_host()
            && !self.insecure.contains(&host)
        {
            return Err(self.invalid_at(
                raw,
                key,
                raw.get_ref(),
                &format!(
                    "an https:// URL; plain http:// only for hosts listed in `insecure_registries` \
                     (add \"{host}\" there for a local test server)"
                ),
            ));
        }
        Ok(component)
    }

    /// The top-level keys for fetched components.
    fn component_settings(
        &self,
        refresh: Option<&Text>,
        store_max: Option<&Text>,
        insecure: &[Text],
    ) -> Result<ComponentSettings, ConfigError> {
        let refresh = self.duration("component_refresh", refresh, DEFAULT_COMPONENT_REFRESH)?;
        let store_max = self.bytes(
            "component_store_max",
            store_max,
            DEFAULT_COMPONENT_STORE_MAX,
            wasm_activity_artifacts::MAX_COMPONENT_BYTES,
            u64::MAX,
        )?;
        let mut hosts = Vec::with_capacity(insecure.len());
        for (i, host) in insecure.iter().enumerate() {
            let text = host.get_ref();
            let ok = !text.is_empty()
                && !text.contains("://")
                && !text.contains('/')
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if !ok {
                return Err(self.invalid_at(
                    host,
                    &format!("insecure_registries[{i}]"),
                    text,
                    "a registry host and port as written in references, such as \"127.0.0.1:5000\" \
                     (no scheme, no path)",
                ));
            }
            hosts.push(text.clone());
        }
        Ok(ComponentSettings {
            refresh,
            store_max,
            insecure: hosts,
        })
    }

    /// The `[swf.NAME]` tables, each (domain, task list) served once.
    fn task_lists(
        &self,
        raw: BTreeMap<String, RawTaskList>,
        base: &Path,
    ) -> Result<Vec<TaskListConfig>, ConfigError> {
        let mut task_lists = Vec::with_capacity(raw.len());
        let mut at = Vec::with_capacity(raw.len());
        for (name, t) in raw {
            at.push(Position::of(self.text, t.task_list.span().start));
            task_lists.push(self.task_list(&name, t, base)?);
        }
        for (i, t) in task_lists.iter().enumerate() {
            if let Some(other) = task_lists[..i]
                .iter()
                .find(|o| o.domain == t.domain && o.task_list == t.task_list)
            {
                return Err(self
                    .invalid(
                        &format!("swf.{}.task_list", toml_key(&t.name)),
                        &t.task_list,
                        &format!(
                            "a task list not already served by [swf.{}] in domain {:?}",
                            other.name, t.domain
                        ),
                    )
                    .at(Some(at[i])));
            }
        }
        Ok(task_lists)
    }

    fn task_list(
        &self,
        name: &str,
        raw: RawTaskList,
        base: &Path,
    ) -> Result<TaskListConfig, ConfigError> {
        let key = |k: &str| format!("swf.{}.{k}", toml_key(name));
        for (k, value) in [("domain", &raw.domain), ("task_list", &raw.task_list)] {
            if value.get_ref().is_empty() || value.get_ref().chars().count() > crate::aws::MAX_NAME
            {
                return Err(self.invalid_at(
                    value,
                    &key(k),
                    value.get_ref(),
                    &format!("1 to {} characters", crate::aws::MAX_NAME),
                ));
            }
        }
        let (max_concurrent, pollers) =
            self.concurrency(&key, raw.max_concurrent.as_ref(), raw.pollers.as_ref(), "")?;
        if raw.activity.is_empty() {
            return Err(self.invalid(
                &key("activity"),
                "(none)",
                "at least one [[swf.NAME.activity]] entry with `type` and `component`",
            ));
        }
        let mut types: Vec<ActivityTypeConfig> = Vec::new();
        let mut tenants_at = Vec::new();
        for (i, t) in raw.activity.into_iter().enumerate() {
            tenants_at.push(
                t.tenant
                    .as_ref()
                    .map(|t| Position::of(self.text, t.span().start)),
            );
            let t = self.activity_type(name, i, t, &types, base)?;
            types.push(t);
        }
        // The tenant's caps are taken before polling, when the type of the
        // next task is not known yet: one task list, one tenant.
        if let Some((i, t)) = (types.iter().enumerate()).find(|(_, t)| t.tenant != types[0].tenant)
        {
            return Err(self
                .invalid(
                    &t.id.key("tenant"),
                    t.tenant.as_deref().unwrap_or("(none)"),
                    &format!(
                        "the same tenant as the task list's other types ({}): tenant caps are taken \
                         before polling, when the next task's type is not known",
                        types[0].tenant.as_deref().unwrap_or("none")
                    ),
                )
                .at(tenants_at[i]));
        }
        Ok(TaskListConfig {
            name: name.to_string(),
            domain: raw.domain.into_inner(),
            task_list: raw.task_list.into_inner(),
            max_concurrent,
            pollers,
            types,
        })
    }

    /// The `index`th `[[swf.LIST.activity]]` entry, given the ones before it.
    fn activity_type(
        &self,
        list: &str,
        index: usize,
        mut t: RawActivityType,
        before: &[ActivityTypeConfig],
        base: &Path,
    ) -> Result<ActivityTypeConfig, ConfigError> {
        let type_name = t.name.get_ref().clone();
        let id = ActivityId::SwfType {
            list: list.to_string(),
            index,
            type_name: type_name.clone(),
            version: t.version.clone(),
        };
        let key = |k: &str| id.key(k);
        if type_name.is_empty() || type_name.chars().count() > crate::aws::MAX_NAME {
            return Err(self.invalid_at(
                &t.name,
                &key("type"),
                &type_name,
                &format!(
                    "an activity type name of 1 to {} characters",
                    crate::aws::MAX_NAME
                ),
            ));
        }
        if before
            .iter()
            .any(|o| o.name == type_name && o.version == t.version)
        {
            return Err(self.invalid_at(
                &t.name,
                &key("type"),
                &type_name,
                "a type (and version) not already mapped in this task list",
            ));
        }
        let component = self.component(&key("component"), &t.component, t.sha256.as_ref(), base)?;
        let heartbeat_interval = match t.heartbeat_interval.as_ref() {
            None => None,
            Some(text) => Some(self.duration(
                &key("heartbeat_interval"),
                Some(text),
                DEFAULT_HEARTBEAT_INTERVAL,
            )?),
        };
        let (limits, task) = t.take_shared();
        let cancel_grace = t.cancel_grace.as_ref();
        let task = self.task(
            &id.table(),
            limits,
            task,
            cancel_grace,
            base,
            SWF_MAX_RESULT,
        )?;
        Ok(ActivityTypeConfig {
            id,
            name: type_name,
            version: t.version,
            component,
            heartbeat_interval,
            limits: task.limits,
            capabilities: task.capabilities,
            tenant: task.tenant,
            record: task.record,
        })
    }

    /// Logs and metrics tell activities apart by name alone.
    fn unique_names(
        &self,
        activities: &[ActivityConfig],
        task_lists: &[TaskListConfig],
    ) -> Result<(), ConfigError> {
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
                return Err(self.invalid(
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
        Ok(())
    }
}

pub(super) fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// The first activity whose ARN names a region other than `region`: the
/// worker's clients call one region, and the service refuses an ARN of
/// another one, so no task of it would ever be polled.
fn arn_region_mismatch(activities: &[ActivityConfig], region: &str) -> Option<usize> {
    activities
        .iter()
        .position(|a| a.arn.split(':').nth(3) != Some(region))
}

/// The error for `a`, of a region other than `region` (which came from
/// `from`).
fn arn_region_error(path: &Path, a: &ActivityConfig, region: &str, from: &str) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        key: a.id().key("arn"),
        value: format!("{:?}", a.arn),
        expected: format!(
            "an activity in region {region} ({from}): a worker polls one region; change the \
             region, or serve this activity from a worker of its own region"
        ),
        at: None,
    }
}

impl Config {
    /// Refuses an activity ARN of a region other than `region`, the one the
    /// worker's clients use (from `from`, for the error).
    pub(crate) fn check_arn_regions(&self, region: &str, from: &str) -> Result<(), ConfigError> {
        match arn_region_mismatch(&self.activities, region) {
            Some(i) => Err(arn_region_error(
                &self.path,
                &self.activities[i],
                region,
                from,
            )),
            None => Ok(()),
        }
    }
}

/// `arn:<partition>:states:<region>:<account>:activity:<name>`, 1-256 chars.
fn is_activity_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    arn.len() <= crate::aws::MAX_NAME
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
