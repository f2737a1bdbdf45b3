//! The settings of one task: limits, capabilities, tenant, recording.

use super::raw::*;
use super::validate::{Validator, valid_env_name};
use super::*;

impl Validator<'_> {
    /// Limits, capabilities and tenant of one activity (or SWF type) at
    /// `prefix`; unset limits come from its tenant's defaults, then the
    /// built-in ones.
    pub(super) fn task(
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
            let allow = h
                .allow
                .iter()
                .map(|origin| {
                    OriginPattern::parse(origin).map_err(|_| {
                        self.invalid(
                            &hkey("allow"),
                            origin,
                            "origins like \"https://api.example.com\", \"https://*.example.com\" or \"http://127.0.0.1:8080\"",
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            capabilities.http = Some(HttpGrant {
                allow,
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
