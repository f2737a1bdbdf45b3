//! `check`: everything `run` would refuse, found without serving.
//!
//! A config that passes `check` and then fails `run` costs a deploy, so
//! `check` goes through the same steps `run` does, in the same code: the
//! config's validation, the region the ARNs must be in, each activity's
//! secrets and component, and an instance of each. What only the service
//! knows (does the activity exist, may these credentials call it) is asked
//! with `--aws`, by read-only calls: nothing is polled, so no task is taken.

use crate::config::Config;
use crate::registry::ActivitySettings;
use crate::runtime::{Runtime, TaskContext, TaskControl};
use crate::startup::RunError;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Instances `check` creates per activity to time instantiation.
const INSTANTIATE_SAMPLES: usize = 20;

/// "12 us" or "1.3 ms".
fn micros(d: std::time::Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} us")
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

/// Checks the config at `path`; with `aws`, also asks the service.
pub async fn check(path: &Path, aws: bool) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(path)?;
    // `run` refuses these before anything else; so does check.
    crate::telemetry::check_protocol()?;
    let options = crate::runtime_options(&config);
    let runtime = Arc::new(Runtime::new(options.clone())?);
    println!("config {}: ok", config.path.display());
    println!("  worker name:  {}", config.worker_name);
    println!(
        "  region:       {}",
        config
            .region
            .as_deref()
            .unwrap_or("(from AWS_REGION / profile)")
    );
    println!(
        "  endpoint:     {}",
        config
            .endpoint
            .as_deref()
            .unwrap_or("(from AWS_ENDPOINT_URL, else AWS)")
    );
    println!(
        "  shutdown:     grace {}",
        humantime::format_duration(config.shutdown_grace)
    );
    println!(
        "  engine:       {} allocator, {} instance slots, linear memory up to {} each",
        if runtime.is_pooling() {
            "pooling"
        } else {
            "on-demand"
        },
        options.max_instances,
        bytesize::ByteSize(options.max_memory).display().iec()
    );
    println!(
        "  cache:        {}",
        runtime
            .cache()
            .dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "(off)".into())
    );
    // S3 references are fetched with the worker's AWS configuration, as
    // `run` does; without one, they fail with that said.
    let uses_s3 = config
        .activities
        .iter()
        .map(|a| &a.component)
        .chain(
            config
                .task_lists
                .iter()
                .flat_map(|l| l.types.iter().map(|t| &t.component)),
        )
        .any(|c| matches!(c.source, wasm_activity_artifacts::Source::S3(_)));
    let sdk = if uses_s3 {
        crate::aws_sdk_config(&config).await.ok()
    } else {
        None
    };
    let fetcher = crate::artifacts::fetcher(&config, &runtime, sdk.as_ref());
    println!(
        "  components:   store {}, tags and S3 keys re-resolved every {}",
        fetcher
            .store()
            .map(|s| format!(
                "{} (up to {})",
                s.dir().display(),
                bytesize::ByteSize(config.components.store_max)
                    .display()
                    .iec()
            ))
            .unwrap_or_else(|| "(off)".into()),
        humantime::format_duration(config.components.refresh)
    );
    let mut problems = 0;
    problems += check_region(&config).await;
    // `run` refuses to start if it cannot listen there.
    if let Some(addr) = config.metrics_addr {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => drop(listener),
            Err(e) => {
                problems += 1;
                println!(
                    "metrics_addr {addr}: FAILED\n  cannot listen there: {e} (another process \
                     uses it, or the address is not this host's); fix `metrics_addr`"
                );
            }
        }
    }
    for activity in &config.activities {
        let load = crate::artifacts::load(
            &runtime,
            &fetcher,
            &activity.name,
            activity.id().key("component"),
            &activity.component,
        )
        .await;
        let settings =
            ActivitySettings::for_activity(activity).map_err(|message| RunError::Grant {
                activity: activity.name.clone(),
                key: activity.id().key("secrets"),
                message,
            });
        match load.and_then(|loaded| Ok((loaded, settings?))) {
            Ok((loaded, settings)) => {
                let handler = loaded.handler;
                println!("activity {}: ok", activity.name);
                println!("  arn:          {}", activity.arn);
                println!(
                    "  component:    {} ({}, version {}, {} in {} ms)",
                    handler.path.display(),
                    bytesize::ByteSize(handler.size).display().iec(),
                    handler.version,
                    if handler.from_cache {
                        "loaded from cache"
                    } else {
                        "compiled"
                    },
                    handler.load_time.as_millis()
                );
                println!("  digest:       {} ({})", loaded.digest, loaded.origin);
                println!(
                    "  tasks:        at most {} at once, {} poller(s), heartbeat every {}",
                    activity.max_concurrent,
                    activity.pollers,
                    humantime::format_duration(activity.heartbeat_interval)
                );
                let ctx = TaskContext {
                    activity: activity.name.as_str().into(),
                    task_id: "check".into(),
                    limits: activity.limits,
                    control: Arc::new(TaskControl::new()),
                    grants: settings.grants.clone(),
                };
                match handler.instantiate_time(&ctx, INSTANTIATE_SAMPLES).await {
                    Ok(t) => {
                        println!(
                            "  instantiate:  first {}, then p50 {} (max {}) over {INSTANTIATE_SAMPLES}; \
                             host memory {} of host_memory_limit {}",
                            micros(t.first),
                            micros(t.warm_p50),
                            micros(t.warm_max),
                            bytesize::ByteSize(t.host_memory).display().iec(),
                            bytesize::ByteSize(activity.limits.host_memory)
                                .display()
                                .iec()
                        );
                        // What `run` would refuse at every task: say so now.
                        if t.host_memory * 2 > activity.limits.host_memory {
                            problems += 1;
                            println!(
                                "  host memory:  FAILED: instantiating alone holds {} of the host's memory, \
                                 over half of host_memory_limit ({}); raise {}",
                                bytesize::ByteSize(t.host_memory).display().iec(),
                                bytesize::ByteSize(activity.limits.host_memory)
                                    .display()
                                    .iec(),
                                activity.id().key_hint("host_memory_limit")
                            );
                        }
                    }
                    Err(e) => {
                        problems += 1;
                        println!("  instantiate:  FAILED: {}", crate::redact::Inert(&e));
                    }
                }
                println!("  limits:       {}", activity.limits);
                println!("  grants:       {}", activity.capabilities);
                if let Some(t) = &activity.tenant {
                    println!("  tenant:       {t}");
                }
            }
            Err(e) => {
                problems += 1;
                println!("activity {}: FAILED", activity.name);
                println!("  {e}");
            }
        }
    }
    if !config.tenants.is_empty() {
        println!("tenants:");
        println!(
            "  {:<16} {:>14} {:>12}  activities",
            "name", "max_concurrent", "max_memory"
        );
        for t in &config.tenants {
            let members: Vec<String> = config
                .activities
                .iter()
                .filter(|a| a.tenant.as_ref() == Some(&t.name))
                .map(|a| a.name.clone())
                .chain(
                    config
                        .task_lists
                        .iter()
                        .filter(|l| l.types.iter().any(|ty| ty.tenant.as_ref() == Some(&t.name)))
                        .map(|l| format!("swf.{}", l.name)),
                )
                .collect();
            println!(
                "  {:<16} {:>14} {:>12}  {}",
                t.name,
                t.max_concurrent
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                t.max_memory
                    .map(|m| bytesize::ByteSize(m).display().iec().to_string())
                    .unwrap_or_else(|| "-".into()),
                if members.is_empty() {
                    "(none)".to_string()
                } else {
                    members.join(", ")
                }
            );
        }
    }
    for list in &config.task_lists {
        println!(
            "swf {}: domain {}, task list {}, at most {} at once, {} poller(s)",
            list.name, list.domain, list.task_list, list.max_concurrent, list.pollers
        );
        for t in &list.types {
            let label = format!("{} ({})", t.id, t.id.table());
            let name = t.id.name();
            let load = crate::artifacts::load(
                &runtime,
                &fetcher,
                &name,
                t.id.key_hint("component"),
                &t.component,
            )
            .await;
            let interval = t.heartbeat_interval.unwrap_or_default();
            let settings =
                ActivitySettings::for_type(t, interval).map_err(|message| RunError::Grant {
                    activity: name.clone(),
                    key: t.id.key_hint("secrets"),
                    message,
                });
            match load.and_then(|loaded| settings.map(|settings| (loaded, settings))) {
                Ok((loaded, settings)) => {
                    let handler = loaded.handler;
                    println!(
                        "  type {label}: ok, {} (version {}, {}, {}), heartbeat {}, {}",
                        handler.path.display(),
                        handler.version,
                        loaded.digest,
                        loaded.origin,
                        t.heartbeat_interval
                            .map(|i| format!("every {}", humantime::format_duration(i)))
                            .unwrap_or_else(|| "from the registered type".into()),
                        t.limits
                    );
                    // As for activities: an instance with the type's own
                    // grants, as every task of it would get.
                    let ctx = TaskContext {
                        activity: t.id.name().into(),
                        task_id: "check".into(),
                        limits: t.limits,
                        control: Arc::new(TaskControl::new()),
                        grants: settings.grants.clone(),
                    };
                    if let Err(e) = handler.instantiate_time(&ctx, 1).await {
                        problems += 1;
                        println!("    instantiate: FAILED: {}", crate::redact::Inert(&e));
                    }
                }
                Err(e) => {
                    problems += 1;
                    println!("  type {label}: FAILED\n    {e}");
                }
            }
        }
    }
    if aws {
        problems += crate::probe::probe(&config).await?;
    }
    if problems > 0 {
        println!("{problems} problem(s) found");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The region `run` would use, found as the SDK finds it but without asking
/// instance metadata (`check` must not wait on a network), and the ARNs
/// checked against it. Returns the problems found.
async fn check_region(config: &Config) -> usize {
    let Some((region, from)) = crate::startup::local_region(config).await else {
        println!(
            "region: none in the config, AWS_REGION, AWS_DEFAULT_REGION or the profile; `run` \
             takes one from instance metadata, and refuses to start without one"
        );
        return 0;
    };
    match config.check_arn_regions(&region, &from.phrase()) {
        Ok(()) => 0,
        Err(e) => {
            println!("region {region}: FAILED\n  {e}");
            1
        }
    }
}
