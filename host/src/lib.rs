//! wasm-activity: serve AWS Step Functions activities by running each task in
//! a sandboxed WebAssembly component.
//!
//! # Layout
//!
//! * [`config`]: the TOML file, raw and validated.
//! * [`service`]: the services that hand out tasks, behind one trait
//!   ([`service::ActivityService`]); Step Functions in [`service::sfn`].
//! * [`runtime`]: the wasmtime engine, component loading and caching, the
//!   per-task sandbox and its limits.
//! * [`registry`]: the served activities and their swappable handlers.
//! * [`poller`]: long-polls with a concurrency slot taken first.
//! * [`task`]: one task from poll to delivered result.
//! * [`heartbeat`]: heartbeats on the guest's behalf.
//! * [`report`]: what the service is told, validated and retried.
//! * [`shutdown`]: staged shutdown.
//! * [`endpoint`]: the embedded local Step Functions endpoint.
//! * [`dev`]: `wasm-activity dev`, the worker against the embedded endpoint.
//! * [`cli`]: the `wasm-activity` command line.
//!
//! The entry point for embedding is [`run`].

pub mod backoff;
pub mod cli;
pub mod config;
pub mod dev;
pub mod endpoint;
pub mod heartbeat;
pub mod metrics;
pub mod poller;
pub mod registry;
pub mod report;
pub mod runtime;
pub mod service;
pub mod shutdown;
pub mod task;
pub mod tenant;

use crate::config::Config;
use crate::poller::Poller;
use crate::registry::{Activity, ActivitySettings, Route, TypeRoute};
use crate::runtime::{Handler, LoadError, Runtime, RuntimeOptions};
use crate::service::sfn::{POLL_READ_TIMEOUT, SfnClients};
use crate::service::swf::SwfClients;
use crate::service::{StepFunctions, Swf};
use crate::shutdown::Shutdown;
use crate::tenant::TenantGate;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// Instance slots kept beyond the sum of all activities' concurrency (for
/// `check` and `invoke`, and headroom).
const EXTRA_INSTANCES: u32 = 4;
/// SWF heartbeat interval when neither the config nor the registered type
/// says.
const DEFAULT_SWF_HEARTBEAT: Duration = Duration::from_secs(10);
/// After the grace period, how long stopped tasks get to deliver their
/// `WorkerShutdown` reports (on top of polls still in flight).
const REPORT_AFTER_GRACE: Duration = Duration::from_secs(30);

/// Why [`run`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine could not be created.
    #[error(transparent)]
    Engine(#[from] runtime::EngineError),
    /// An activity's component could not be loaded.
    #[error("activity {activity}: {source}")]
    Load {
        /// The `[activity.NAME]` key.
        activity: String,
        /// Why.
        source: LoadError,
    },
    /// An activity's capabilities could not be granted (a secret is missing).
    #[error("activity {activity}: {message}")]
    Grant {
        /// The activity.
        activity: String,
        /// What is missing.
        message: String,
    },
    /// The metrics endpoint could not listen.
    #[error("cannot serve metrics on {addr}: {source} (change `metrics_addr`)")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No AWS region could be found.
    #[error("no AWS region configured: set `region` in {0} or the AWS_REGION environment variable")]
    NoRegion(String),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// True if every running task finished within the grace period.
    pub clean: bool,
}

/// The engine sizing a config needs: an instance slot per concurrent task
/// (Step Functions activities and SWF task lists), memory for the largest
/// limit.
pub fn runtime_options(config: &Config) -> RuntimeOptions {
    let slots: usize = config
        .activities
        .iter()
        .map(|a| a.max_concurrent)
        .sum::<usize>()
        + config
            .task_lists
            .iter()
            .map(|t| t.max_concurrent)
            .sum::<usize>();
    let memories = config.activities.iter().map(|a| a.limits.memory).chain(
        config
            .task_lists
            .iter()
            .flat_map(|t| t.types.iter().map(|ty| ty.limits.memory)),
    );
    let fuel = config.activities.iter().any(|a| a.limits.fuel.is_some())
        || config
            .task_lists
            .iter()
            .flat_map(|t| &t.types)
            .any(|t| t.limits.fuel.is_some());
    RuntimeOptions {
        max_instances: u32::try_from(slots)
            .unwrap_or(u32::MAX)
            .saturating_add(EXTRA_INSTANCES),
        max_memory: memories.max().unwrap_or_default(),
        cache_dir: config.cache_dir.clone(),
        fuel,
    }
}

/// Loads components, in parallel on blocking threads: one per entry, each
/// tagged with what it is for (the name in errors and logs).
pub async fn load_components<K>(
    runtime: &Arc<Runtime>,
    wanted: Vec<(K, String, PathBuf)>,
) -> Result<Vec<(K, Handler)>, RunError> {
    let mut loads = Vec::new();
    for (key, name, path) in wanted {
        let runtime = runtime.clone();
        loads.push((
            key,
            name,
            tokio::task::spawn_blocking(move || runtime.load(&path)),
        ));
    }
    let mut loaded = Vec::new();
    for (key, name, load) in loads {
        let handler = load
            .await
            .expect("component loading panicked")
            .map_err(|source| RunError::Load {
                activity: name.clone(),
                source,
            })?;
        tracing::info!(
            activity = %name,
            component = %handler.path.display(),
            version = %handler.version,
            cached = handler.from_cache,
            load_ms = handler.load_time.as_millis() as u64,
            "component loaded"
        );
        loaded.push((key, handler));
    }
    Ok(loaded)
}

/// Loads the AWS SDK configuration: the config's region and endpoint if set,
/// else the SDK's default chains (`AWS_REGION`, `AWS_ENDPOINT_URL`, profiles,
/// instance metadata).
pub async fn aws_sdk_config(config: &Config) -> Result<aws_config::SdkConfig, RunError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(RunError::NoRegion(config.path.display().to_string()));
    }
    Ok(sdk)
}

/// Serves every activity in `config` until `shutdown` resolves, then drains:
/// no new polls, polls in flight return and their tasks run, running tasks
/// get the grace period, and tasks still running after it are stopped and
/// reported as `WasmActivity.WorkerShutdown`.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, RunError> {
    let sdk = aws_sdk_config(&config).await?;
    serve(config, &sdk, shutdown).await
}

/// [`run`] with an AWS SDK configuration chosen by the caller (`dev` points
/// it at the embedded endpoint with fixed credentials).
pub async fn serve(
    config: Config,
    sdk: &aws_config::SdkConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, RunError> {
    let runtime = Arc::new(Runtime::new(runtime_options(&config))?);
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    let _stop_metrics = stop_metrics.clone().drop_guard();
    if let Some(addr) = config.metrics_addr {
        metrics::serve(addr, stop_metrics.clone())
            .await
            .map_err(|source| RunError::Metrics { addr, source })?;
    }
    let stages = Shutdown::new();
    let tasks = TaskTracker::new();
    let mut pollers = tokio::task::JoinSet::new();
    let mut served = 0;
    let gates: std::collections::HashMap<String, Arc<TenantGate>> = config
        .tenants
        .iter()
        .map(|t| (t.name.clone(), TenantGate::new(t)))
        .collect();
    let gate =
        |tenant: &Option<String>, memory: u64| tenant.as_ref().map(|t| (gates[t].clone(), memory));

    // Step Functions: one poller per activity ARN.
    let wanted = config
        .activities
        .iter()
        .map(|a| (a.clone(), a.name.clone(), a.component.clone()))
        .collect();
    let sfn = SfnClients::new(sdk);
    for (a, handler) in load_components(&runtime, wanted).await? {
        let settings = ActivitySettings::for_activity(&a).map_err(|message| RunError::Grant {
            activity: a.name.clone(),
            message,
        })?;
        metrics::global().component_version(&a.name, None, &handler.version);
        let activity = Activity::new(settings, handler);
        tracing::info!(activity = %a.name, arn = %a.arn, max_concurrent = a.max_concurrent, pollers = a.pollers, "serving");
        let poller = Poller {
            name: a.name.clone(),
            config_key: format!("activity.{}.arn", a.name),
            pollers: a.pollers,
            route: Route::One(activity),
            service: Arc::new(StepFunctions::new(sfn.clone(), &a.arn, &config.worker_name)),
            slots: Arc::new(Semaphore::new(a.max_concurrent)),
            tenant: gate(&a.tenant, a.limits.memory),
            tasks: tasks.clone(),
            shutdown: stages.clone(),
        };
        pollers.spawn(poller.run());
        served += 1;
    }

    // SWF: one poller per task list, dispatching by activity type.
    if !config.task_lists.is_empty() {
        let swf = SwfClients::new(sdk);
        for list in &config.task_lists {
            let wanted = list
                .types
                .iter()
                .map(|t| {
                    (
                        t.clone(),
                        format!("swf.{}/{}", list.name, t.name),
                        t.component.clone(),
                    )
                })
                .collect();
            let mut routes = Vec::new();
            for (t, handler) in load_components(&runtime, wanted).await? {
                let interval = match (t.heartbeat_interval, &t.version) {
                    (Some(i), _) => i,
                    (None, Some(version)) => swf
                        .default_heartbeat_interval(&list.domain, &t.name, version)
                        .await
                        .unwrap_or(DEFAULT_SWF_HEARTBEAT),
                    (None, None) => DEFAULT_SWF_HEARTBEAT,
                };
                let settings =
                    ActivitySettings::for_type(list, &t, interval).map_err(|message| {
                        RunError::Grant {
                            activity: format!("swf.{}/{}", list.name, t.name),
                            message,
                        }
                    })?;
                metrics::global().component_version(&settings.name, None, &handler.version);
                let activity = Activity::new(settings, handler);
                routes.push(TypeRoute {
                    name: t.name.clone(),
                    version: t.version.clone(),
                    activity,
                });
            }
            tracing::info!(
                task_list = %list.task_list, domain = %list.domain, types = routes.len(),
                max_concurrent = list.max_concurrent, pollers = list.pollers, "serving"
            );
            let poller = Poller {
                name: list.name.clone(),
                config_key: format!("swf.{}", list.name),
                pollers: list.pollers,
                route: Route::ByType(routes),
                service: Arc::new(Swf::new(
                    swf.clone(),
                    &list.domain,
                    &list.task_list,
                    &config.worker_name,
                )),
                slots: Arc::new(Semaphore::new(list.max_concurrent)),
                tenant: gate(
                    &list.types[0].tenant,
                    list.types
                        .iter()
                        .map(|t| t.limits.memory)
                        .max()
                        .unwrap_or_default(),
                ),
                tasks: tasks.clone(),
                shutdown: stages.clone(),
            };
            pollers.spawn(poller.run());
            served += 1;
        }
    }
    metrics::global().set_ready(true);
    tracing::info!(worker = %config.worker_name, sources = served, "worker running");

    shutdown.await;
    metrics::global().set_ready(false);
    stages.initiate();
    tracing::info!(
        running = tasks.len(),
        grace = %humantime::format_duration(config.shutdown_grace),
        "shutting down: no new polls; waiting for running tasks and for polls in flight (up to 60 s, \
         so no task handed out meanwhile is lost); a second signal exits at once"
    );
    tasks.close();
    let drain = async {
        while pollers.join_next().await.is_some() {}
        tasks.wait().await;
    };
    tokio::pin!(drain);
    let grace = tokio::time::sleep(config.shutdown_grace);
    tokio::pin!(grace);
    let mut in_grace = true;
    let drained = loop {
        tokio::select! {
            () = &mut drain => break true,
            () = &mut grace, if in_grace => {
                in_grace = false;
                if !tasks.is_empty() {
                    tracing::warn!(
                        running = tasks.len(),
                        "grace period over: stopping running tasks and reporting them as WasmActivity.WorkerShutdown"
                    );
                }
                stages.expire_grace();
            }
            // Created once, when the grace period ends: polls in flight return
            // within their read timeout, then stopped tasks report.
            () = tokio::time::sleep(POLL_READ_TIMEOUT + REPORT_AFTER_GRACE), if !in_grace => break false,
        }
    };
    if !drained {
        tracing::error!(
            running = tasks.len(),
            "tasks still reporting long after the grace period; exiting anyway"
        );
    }
    let clean = drained && stages.handed_back() == 0;
    tracing::info!(clean, "worker stopped");
    Ok(RunSummary { clean })
}
