//! The settings of one task, a Step Functions activity's or an SWF type's
//! alike: limits (its own, else its tenant's defaults, else the built-in
//! ones), capabilities, tenant and recording.

use super::raw::*;
use super::validate::{Validator, valid_env_name};
use super::*;
use std::collections::BTreeMap;

/// What [`Validator::task`] makes of a table's per-task keys.
pub(super) struct TaskSettings {
    pub(super) limits: TaskLimits,
    pub(super) capabilities: Capabilities,
    pub(super) tenant: Option<String>,
    pub(super) record: Option<RecordConfig>,
}

/// Values a task's limits come from: its own, then its tenant's defaults.
struct LimitSources<'a> {
    own: &'a RawLimits,
    tenant: Option<&'a RawLimits>,
}

impl<'a> LimitSources<'a> {
    /// The value that applies of `field` (from the first that sets it).
    fn pick<T>(&self, field: impl Fn(&'a RawLimits) -> &'a Option<T>) -> Option<&'a T> {
        field(self.own)
            .as_ref()
            .or_else(|| self.tenant.and_then(|t| field(t).as_ref()))
    }
}

impl Validator<'_> {
    /// The settings of one activity (or SWF type) whose table is at
    /// `prefix`. `cancel_grace` is only an SWF type's; an output larger than
    /// `service_max_output` is one the service refuses.
    pub(super) fn task(
        &self,
        prefix: &str,
        limits: RawLimits,
        mut task: RawTask,
        cancel_grace: Option<&Text>,
        base: &Path,
        service_max_output: u64,
    ) -> Result<TaskSettings, ConfigError> {
        let tenant = self.tenant(prefix, task.tenant.as_ref())?;
        let sources = LimitSources {
            own: &limits,
            tenant: tenant.as_ref().and_then(|t| self.tenants.get(t)),
        };
        let limits = self.limits(prefix, &sources, &task, cancel_grace, service_max_output)?;
        if let Some(t) = &tenant {
            self.fits_tenant(prefix, t, &sources, &limits)?;
        }
        let raw_record = task.record.take();
        let capabilities = self.capabilities(prefix, task, base, limits.host_memory)?;
        let record = self.record(prefix, raw_record.as_ref(), base)?;
        Ok(TaskSettings {
            limits,
            capabilities,
            tenant,
            record,
        })
    }

    fn tenant(&self, prefix: &str, raw: Option<&Text>) -> Result<Option<String>, ConfigError> {
        match raw {
            None => Ok(None),
            Some(t) if self.tenants.contains_key(t.get_ref()) => Ok(Some(t.get_ref().clone())),
            Some(t) => {
                let known: Vec<&str> = self.tenants.keys().map(String::as_str).collect();
                Err(self.invalid_at(
                    t,
                    &format!("{prefix}.tenant"),
                    t.get_ref(),
                    &format!(
                        "the name of a [tenant.NAME] table (defined: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ))
            }
        }
    }

    fn limits(
        &self,
        prefix: &str,
        from: &LimitSources<'_>,
        task: &RawTask,
        cancel_grace: Option<&Text>,
        service_max_output: u64,
    ) -> Result<TaskLimits, ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        let timeout = self.duration(
            &key("task_timeout"),
            from.pick(|l| &l.task_timeout),
            DEFAULT_TASK_TIMEOUT,
        )?;
        let memory = self.bytes(
            &key("memory_limit"),
            from.pick(|l| &l.memory_limit),
            DEFAULT_MEMORY_LIMIT,
            MIN_MEMORY_LIMIT,
            MAX_MEMORY_LIMIT,
        )?;
        let host_memory = self.bytes(
            &key("host_memory_limit"),
            from.pick(|l| &l.host_memory_limit),
            DEFAULT_HOST_MEMORY_LIMIT,
            MIN_HOST_MEMORY_LIMIT,
            MAX_HOST_MEMORY_LIMIT,
        )?;
        let log_bytes = self.bytes(
            &key("log_limit"),
            from.pick(|l| &l.log_limit),
            DEFAULT_LOG_LIMIT,
            0,
            1 << 30,
        )?;
        let output_bytes = self.bytes(
            &key("output_limit"),
            from.pick(|l| &l.output_limit),
            service_max_output,
            2,
            service_max_output,
        )?;
        let cancel_grace =
            self.duration(&key("cancel_grace"), cancel_grace, DEFAULT_CANCEL_GRACE)?;
        let fuel = match from.pick(|l| &l.fuel) {
            None => None,
            Some(f) if *f.get_ref() > 0 => Some(*f.get_ref() as u64),
            Some(f) => {
                return Err(self.invalid_at(
                    f,
                    &key("fuel"),
                    &f.get_ref().to_string(),
                    "a positive number of fuel units",
                ));
            }
        };
        let table_elements = self.count(
            &key("table_elements"),
            task.table_elements.as_ref(),
            MAX_TABLE_ELEMENTS as usize,
            MAX_TABLE_ELEMENTS as usize,
        )? as u32;
        let instances = self.count(
            &key("max_instances"),
            task.max_instances.as_ref(),
            MAX_INSTANCES as usize,
            MAX_INSTANCES as usize,
        )? as u32;
        Ok(TaskLimits {
            timeout,
            memory,
            host_memory,
            log_bytes,
            output_bytes,
            cancel_grace,
            fuel,
            table_elements,
            instances,
        })
    }

    /// Caps are taken before polling and a task never gets more than its
    /// tenant's `max_memory`: a bigger reservation would make its pollers
    /// wait forever, so it is refused here (by `check`, `run` and reload).
    fn fits_tenant(
        &self,
        prefix: &str,
        tenant: &str,
        from: &LimitSources<'_>,
        limits: &TaskLimits,
    ) -> Result<(), ConfigError> {
        let Some(cap) = (self.tenant_caps.iter())
            .find(|c| c.name == tenant)
            .and_then(|c| c.max_memory)
        else {
            return Ok(());
        };
        let reserved = limits.reserved_memory();
        if reserved <= cap {
            return Ok(());
        }
        let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
        let named = |field: fn(&RawLimits) -> &Option<Text>, k: &str| {
            if field(from.own).is_some() {
                format!("{prefix}.{k}")
            } else if from.tenant.is_some_and(|d| field(d).is_some()) {
                format!("tenant.{tenant}.{k}")
            } else {
                format!("the default {k}")
            }
        };
        let memory_at = from.pick(|l| &l.memory_limit);
        Err(self
            .invalid(
                &format!("{prefix}.memory_limit"),
                &size(limits.memory),
                &format!(
                    "memory_limit + host_memory_limit ({} from {} + {} from {} = {}) at most tenant {tenant}'s \
                     max_memory ({}): one task must fit in its tenant, or its pollers would wait forever; \
                     lower them, or raise `tenant.{tenant}.max_memory` to at least {}",
                    size(limits.memory),
                    named(|l| &l.memory_limit, "memory_limit"),
                    size(limits.host_memory),
                    named(|l| &l.host_memory_limit, "host_memory_limit"),
                    size(reserved),
                    size(cap),
                    size(reserved),
                ),
            )
            .at(memory_at.map(|m| Position::of(self.text, m.span().start))))
    }

    /// What the guest may reach: environment, directories, secrets,
    /// sockets, name lookup and HTTP.
    fn capabilities(
        &self,
        prefix: &str,
        task: RawTask,
        base: &Path,
        host_memory: u64,
    ) -> Result<Capabilities, ConfigError> {
        Ok(Capabilities {
            env: self.env(prefix, task.env, task.env_passthrough)?,
            preopens: self.preopens(prefix, task.preopen, base)?,
            secrets: self.secrets(prefix, task.secrets, base)?,
            sockets: self.sockets(prefix, &task.sockets)?,
            name_lookup: task.name_lookup.unwrap_or(false),
            http: match &task.http {
                None => None,
                Some(h) => Some(self.http(prefix, h, host_memory)?),
            },
        })
    }

    fn env_name(&self, name: &Text, key: &str, what: &str) -> Result<(), ConfigError> {
        if valid_env_name(name.get_ref()) {
            return Ok(());
        }
        Err(self.invalid_at(
            name,
            key,
            name.get_ref(),
            &format!("{what} names of letters, digits and _"),
        ))
    }

    /// Explicit variables, then those passed through from the host's
    /// environment as it is now.
    fn env(
        &self,
        prefix: &str,
        explicit: BTreeMap<Text, String>,
        passthrough: Vec<Text>,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let mut env = Vec::new();
        for (k, v) in explicit {
            self.env_name(&k, &format!("{prefix}.env"), "environment variable")?;
            env.push((k.into_inner(), v));
        }
        for name in passthrough {
            let key = format!("{prefix}.env_passthrough");
            self.env_name(&name, &key, "environment variable")?;
            if let Ok(value) = std::env::var(name.get_ref()) {
                env.push((name.into_inner(), value));
            }
        }
        Ok(env)
    }

    fn preopens(
        &self,
        prefix: &str,
        raw: Vec<RawPreopen>,
        base: &Path,
    ) -> Result<Vec<Preopen>, ConfigError> {
        let mut preopens = Vec::new();
        for (i, p) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("{prefix}.preopen[{i}].{k}");
            let host = base.join(p.host.get_ref());
            if !host.is_dir() {
                return Err(self.invalid_at(
                    &p.host,
                    &key("host"),
                    p.host.get_ref(),
                    "an existing directory on the host",
                ));
            }
            if !p.guest.get_ref().starts_with('/') {
                return Err(self.invalid_at(
                    &p.guest,
                    &key("guest"),
                    p.guest.get_ref(),
                    "an absolute guest path such as \"/data\"",
                ));
            }
            let writable = match &p.mode {
                None => false,
                Some(m) if m.get_ref() == "read-only" => false,
                Some(m) if m.get_ref() == "read-write" => true,
                Some(m) => {
                    return Err(self.invalid_at(
                        m,
                        &key("mode"),
                        m.get_ref(),
                        "\"read-only\" or \"read-write\"",
                    ));
                }
            };
            preopens.push(Preopen {
                host,
                guest: p.guest.into_inner(),
                writable,
            });
        }
        Ok(preopens)
    }

    fn secrets(
        &self,
        prefix: &str,
        raw: BTreeMap<Text, RawSecret>,
        base: &Path,
    ) -> Result<Vec<Secret>, ConfigError> {
        let mut secrets = Vec::new();
        for (name, secret) in raw {
            self.env_name(&name, &format!("{prefix}.secrets"), "secret")?;
            let source = match (secret.env, secret.file) {
                (Some(var), None) => SecretSource::Env(var),
                (None, Some(file)) => SecretSource::File(base.join(file)),
                _ => {
                    return Err(self.invalid_at(
                        &name,
                        &format!("{prefix}.secrets.{}", name.get_ref()),
                        "(table)",
                        "exactly one of env = \"HOST_VARIABLE\" or file = \"/path/to/secret\"",
                    ));
                }
            };
            secrets.push(Secret {
                name: name.into_inner(),
                source,
            });
        }
        Ok(secrets)
    }

    fn sockets(
        &self,
        prefix: &str,
        raw: &[Text],
    ) -> Result<Vec<std::net::SocketAddr>, ConfigError> {
        raw.iter()
            .map(|addr| {
                addr.get_ref().parse().map_err(|_| {
                    self.invalid_at(
                        addr,
                        &format!("{prefix}.sockets"),
                        addr.get_ref(),
                        "socket addresses like \"127.0.0.1:5432\" or \"[::1]:8080\"",
                    )
                })
            })
            .collect()
    }

    fn http(&self, prefix: &str, h: &RawHttp, host_memory: u64) -> Result<HttpGrant, ConfigError> {
        let key = |k: &str| format!("{prefix}.http.{k}");
        let allow = (h.allow.iter())
            .map(|origin| {
                OriginPattern::parse(origin.get_ref()).map_err(|_| {
                    self.invalid_at(
                        origin,
                        &key("allow"),
                        origin.get_ref(),
                        "origins like \"https://api.example.com\", \"https://*.example.com\" or \
                         \"http://127.0.0.1:8080\"",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let http = HttpGrant {
            allow,
            timeout: self.duration(&key("timeout"), h.timeout.as_ref(), Duration::from_secs(30))?,
            max_response: self.bytes(
                &key("max_response"),
                h.max_response.as_ref(),
                1 << 20,
                1,
                1 << 30,
            )?,
            max_request: self.bytes(
                &key("max_request"),
                h.max_request.as_ref(),
                1 << 20,
                1,
                1 << 30,
            )?,
        };
        // Bodies are held in host memory while they are sent and read, so
        // they must fit in the task's host budget with room to spare.
        if (http.max_response + http.max_request).saturating_mul(2) > host_memory {
            let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
            return Err(self
                .invalid(
                    &key("max_response"),
                    &size(http.max_response),
                    &format!(
                        "max_response + max_request ({} + {}) at most half of host_memory_limit ({}): \
                         bodies are held in host memory; raise host_memory_limit or lower them",
                        size(http.max_response),
                        size(http.max_request),
                        size(host_memory)
                    ),
                )
                .at((h.max_response.as_ref()).map(|m| Position::of(self.text, m.span().start))));
        }
        Ok(http)
    }

    fn record(
        &self,
        prefix: &str,
        raw: Option<&RawRecord>,
        base: &Path,
    ) -> Result<Option<RecordConfig>, ConfigError> {
        let Some(r) = raw else { return Ok(None) };
        if r.dir.get_ref().is_empty() {
            return Err(self.invalid_at(
                &r.dir,
                &format!("{prefix}.record.dir"),
                "",
                "a directory to write recordings to",
            ));
        }
        Ok(Some(RecordConfig {
            dir: base.join(r.dir.get_ref()),
            max_bytes: self.bytes(
                &format!("{prefix}.record.max_bytes"),
                r.max_bytes.as_ref(),
                64 * 1024,
                1,
                1 << 30,
            )?,
            redact: r.redact.clone(),
        }))
    }
}
