//! wasm-activity: serve AWS Step Functions activities by running each task in
//! a sandboxed WebAssembly component.
//!
//! # Layout
//!
//! Bottom to top (`scripts/module-graph.py` holds the order and fails an
//! import that reaches up):
//!
//! * [`redact`], `names`, `aws` (what the services accept), `backoff`,
//!   [`shutdown`] (staged shutdown), `slots`; `metrics`.
//! * [`config`]: the TOML file, raw and validated.
//! * `tenant`: caps across a tenant's activities, taken before polling.
//! * [`runtime`]: the wasmtime engine, component loading and caching, the
//!   per-task sandbox and its limits.
//! * [`service`]: the services that hand out tasks, behind one trait
//!   ([`service::ActivityService`]); Step Functions in [`service::sfn`].
//! * `registry`: the served activities and their swappable handlers.
//! * [`report`]: what the service is told, validated; `delivery`: retried
//!   until delivered; `heartbeat`: heartbeats on the guest's behalf.
//! * `task`: one task from poll to delivered result.
//! * `poller`: long-polls with a concurrency slot taken first.
//! * `sources`: the activities and task lists being served, and what a
//!   config reload changes in them; `reload`: watching the files.
//!
//! The command line (`wasm-activity`, with `dev` and `serve-local`) lives in
//! crates/cli, and the embedded local endpoint in crates/endpoint; neither
//! is a dependency of this crate.
//!
//! The entry point for embedding is [`run`].

mod artifacts;
mod aws;
pub(crate) mod backoff;
pub mod check;
pub mod config;
pub(crate) mod delivery;
mod health;
pub(crate) mod heartbeat;
pub(crate) mod journal;
pub mod local;
pub(crate) mod metrics;
mod names;
mod otlp_metrics;
pub(crate) mod poller;
mod probe;
pub mod record;
pub mod redact;
pub(crate) mod registry;
pub(crate) mod reload;
pub mod report;
pub mod runtime;
pub mod service;
pub mod shutdown;
mod slots;
mod sources;
mod startup;
pub(crate) mod task;
pub mod telemetry;
pub(crate) mod tenant;
#[cfg(test)]
mod testing;

use crate::config::Config;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::service::sfn::POLL_READ_TIMEOUT;
use crate::shutdown::Shutdown;
use crate::sources::Sources;
pub use crate::startup::RunError;
pub(crate) use crate::startup::aws_sdk_config;
pub use health::live_view;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

pub use runtime::MeteredAllocator;

// The unit tests count host memory the way the binary does.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: MeteredAllocator<std::alloc::System> = MeteredAllocator(std::alloc::System);

/// Instance slots kept beyond the sum of all activities' concurrency (for
/// `check` and `invoke`, and headroom).
const EXTRA_INSTANCES: u32 = 4;
/// After the grace period, how long stopped tasks get to deliver their
/// `WorkerShutdown` reports (on top of polls still in flight).
const REPORT_AFTER_GRACE: Duration = Duration::from_secs(30);

/// How [`serve`] behaves beyond the config.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Reload the config file when it changes (component files are watched
    /// whenever the config's `reload` is on).
    pub watch_config: bool,
}

fn start_watch(
    config: &Config,
    sources: &Sources,
    watch_config: bool,
) -> Option<(
    reload::Watcher,
    tokio::sync::mpsc::UnboundedReceiver<reload::Change>,
)> {
    if !config.reload {
        return None;
    }
    let config_path = watch_config.then_some(config.path.as_path());
    match reload::watch(
        config_path,
        sources.component_files(),
        config.reload_debounce,
    ) {
        Ok(watch) => Some(watch),
        Err(e) => {
            tracing::warn!("hot reload disabled: cannot watch files: {e}");
            None
        }
    }
}

/// Changes reported together: everything already queued when the first one
/// is taken, so a burst is one reload.
#[derive(Debug, Default)]
struct Batch {
    config: bool,
    components: std::collections::BTreeSet<std::path::PathBuf>,
}

impl Batch {
    fn take(
        first: reload::Change,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<reload::Change>,
    ) -> Batch {
        let mut batch = Batch::default();
        let mut next = Some(first);
        while let Some(change) = next {
            match change {
                reload::Change::Config => batch.config = true,
                reload::Change::Component(path) => {
                    batch.components.insert(path);
                }
            }
            next = rx.try_recv().ok();
        }
        batch
    }
}

/// Applies a batch of changes. A config change reloads the config, points
/// the watcher at the files the result uses (the same ones if it was
/// refused), then reloads every component file whose content is not what
/// runs, which covers the batch's component changes and any made while the
/// config was being prepared.
async fn apply_changes(
    batch: Batch,
    config: &mut Config,
    sources: &mut Sources,
    watch: &mut Option<(
        reload::Watcher,
        tokio::sync::mpsc::UnboundedReceiver<reload::Change>,
    )>,
    engine: &EngineLimits,
    watch_config: bool,
) {
    if !batch.config {
        for path in &batch.components {
            sources.reload_file(path).await;
        }
        return;
    }
    if let Some(new) = reload_config(config, sources, engine).await {
        *config = new;
    }
    if !config.reload {
        if watch.take().is_some() {
            tracing::info!(
                "reload = false: no longer watching files (restart the worker to watch them again)"
            );
        }
        return;
    }
    if let Some((watcher, _)) = watch {
        let config_path = watch_config.then_some(config.path.as_path());
        for (dir, e) in watcher.watch_files(
            config_path,
            sources.component_files(),
            config.reload_debounce,
        ) {
            tracing::warn!(
                dir = %dir.display(),
                "cannot watch {}: {e}; changes to files there are not reloaded",
                dir.display()
            );
        }
    }
    sources.reload_changed_components().await;
}

/// What the engine was built for when the worker started, which a reload
/// cannot change: the pool's linear memory per instance and fuel metering.
#[derive(Debug)]
struct EngineLimits {
    /// The largest `memory_limit` the pool can honour (`None`: instances
    /// are allocated on demand, without a pool).
    memory: Option<u64>,
    fuel: bool,
}

impl EngineLimits {
    fn of(config: &Config, runtime: &Runtime) -> EngineLimits {
        let options = runtime_options(config);
        EngineLimits {
            memory: runtime.is_pooling().then_some(options.max_memory),
            fuel: options.fuel,
        }
    }

    /// Refuses a config asking for what the running engine cannot give: a
    /// guest would silently get less memory than its `memory_limit`, or run
    /// unmetered despite its `fuel`.
    fn admits(&self, config: &Config) -> Result<(), config::ConfigError> {
        let tasks = config
            .activities
            .iter()
            .map(|a| (format!("activity.{}", a.name), a.limits))
            .chain(config.task_lists.iter().flat_map(|l| {
                l.types
                    .iter()
                    .enumerate()
                    .map(move |(i, t)| (format!("swf.{}.activity[{i}]", l.name), t.limits))
            }));
        let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
        for (prefix, limits) in tasks {
            if let Some(max) = self.memory
                && limits.memory > max
            {
                return Err(config::ConfigError::Invalid {
                    path: config.path.clone(),
                    key: format!("{prefix}.memory_limit"),
                    value: format!("{:?}", size(limits.memory)),
                    expected: format!(
                        "at most {}, the largest memory_limit when the worker started (the instance pool \
                         is sized then); restart the worker to raise it",
                        size(max)
                    ),
                    at: None,
                });
            }
            if let Some(fuel) = limits.fuel
                && !self.fuel
            {
                return Err(config::ConfigError::Invalid {
                    path: config.path.clone(),
                    key: format!("{prefix}.fuel"),
                    value: format!("\"{fuel}\""),
                    expected:
                        "no fuel: fuel metering is off in this worker (no activity set `fuel` \
                               when it started); restart the worker to turn it on"
                            .into(),
                    at: None,
                });
            }
        }
        Ok(())
    }
}

/// Reads the changed config and applies it; returns it, or `None` if it is
/// invalid or cannot be served (then everything keeps running as it was).
async fn reload_config(
    current: &Config,
    sources: &mut Sources,
    engine: &EngineLimits,
) -> Option<Config> {
    let m = metrics::global();
    let failed = || {
        m.reloads
            .get_or_create(&metrics::ResultLabels {
                result: "failed".into(),
            })
            .inc()
    };
    tracing::info!(config = %current.path.display(), "reloading config");
    // Read off the control plane: a config renamed over by a named pipe or
    // left on a hung mount must not stop this loop from seeing a shutdown.
    let path = current.path.clone();
    let read = tokio::task::spawn_blocking(move || Config::from_file(&path))
        .await
        .expect("reading the config panicked");
    let new = match read.and_then(|new| {
        engine.admits(&new)?;
        Ok(new)
    }) {
        Ok(new) => new,
        Err(e) => {
            failed();
            tracing::error!("config reload refused, the current config keeps running: {e}");
            journal::global().event(
                "config refused",
                &current.path.display().to_string(),
                &e.to_string(),
            );
            return None;
        }
    };
    if let Err(e) = sources.apply(&new).await {
        failed();
        tracing::error!("config reload refused, the current config keeps running: {e}");
        journal::global().event(
            "config refused",
            &current.path.display().to_string(),
            &e.to_string(),
        );
        return None;
    }
    m.reloads
        .get_or_create(&metrics::ResultLabels {
            result: "ok".into(),
        })
        .inc();
    if new.worker_name != current.worker_name
        || new.metrics_addr != current.metrics_addr
        || new.otlp_endpoint != current.otlp_endpoint
        || new.aws_client != current.aws_client
    {
        tracing::warn!(
            "worker_name, metrics_addr, otlp_endpoint and aws_client changes take effect at the next start"
        );
    }
    tracing::info!(sources = sources.len(), "config reloaded");
    journal::global().event(
        "config reloaded",
        &current.path.display().to_string(),
        &format!("{} sources", sources.len()),
    );
    Some(new)
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// True if every running task finished within the grace period.
    pub clean: bool,
}

/// Tasks the config runs at once, all sources together: the instance slots
/// the engine's pool is sized for at start.
fn task_slots(config: &Config) -> usize {
    config
        .activities
        .iter()
        .map(|a| a.max_concurrent)
        .sum::<usize>()
        + config
            .task_lists
            .iter()
            .map(|t| t.max_concurrent)
            .sum::<usize>()
}

/// The engine sizing a config needs: an instance slot per concurrent task
/// (Step Functions activities and SWF task lists), memory for the largest
/// limit.
pub(crate) fn runtime_options(config: &Config) -> RuntimeOptions {
    let slots = task_slots(config);
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
        epoch_interruption: true,
    }
}

/// Serves every activity in `config` until `shutdown` resolves, then drains:
/// no new polls, polls in flight return and their tasks run, running tasks
/// get the grace period, and tasks still running after it are stopped and
/// reported as `WasmActivity.WorkerShutdown`.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, RunError> {
    // Settings that cannot work are refused before anything is asked of AWS.
    telemetry::check_protocol()?;
    let sdk = aws_sdk_config(&config).await?;
    serve(config, &sdk, ServeOptions { watch_config: true }, shutdown).await
}

/// [`run`] with an AWS SDK configuration chosen by the caller (`dev` points
/// it at the embedded endpoint with fixed credentials).
pub async fn serve(
    config: Config,
    sdk: &aws_config::SdkConfig,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, RunError> {
    let runtime = Arc::new(Runtime::new(runtime_options(&config))?);
    let engine = EngineLimits::of(&config, &runtime);
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    let _stop_metrics = stop_metrics.clone().drop_guard();
    if let Some(addr) = config.metrics_addr {
        health::serve(addr, stop_metrics.clone())
            .await
            .map_err(|source| RunError::Metrics { addr, source })?;
    }
    // Traces: the export thread starts here and is flushed (a few seconds
    // at most) whichever way serving ends.
    telemetry::start(config.otlp_endpoint.as_deref())?;
    let _stop_telemetry = telemetry::StopOnDrop;
    // Metrics over OTLP, from the same registry, until serving ends.
    let metrics_push = otlp_metrics::start(config.otlp_endpoint.as_deref(), stop_metrics.clone());
    let stages = Shutdown::new();
    let tasks = TaskTracker::new();
    let fetcher = Arc::new(artifacts::fetcher(&config, &runtime, Some(sdk)));
    let mut sources = Sources::new(
        runtime.clone(),
        fetcher,
        sdk,
        &config,
        tasks.clone(),
        stages.clone(),
        // What the pool has beyond the tasks it was sized for stays free
        // for loading components on reload.
        task_slots(&config) + EXTRA_INSTANCES as usize / 2,
    );
    sources.apply(&config).await?;
    // Hot reload: component files always (when `reload` is on), the config
    // file when the caller owns it (`run`, not `dev`). Changes are applied
    // one batch at a time; what arrives meanwhile waits on the channel. The
    // watch is in place before the worker says it runs, so a deploy that
    // waits for that line and then swaps a file is seen.
    let mut config = config;
    let mut watch = start_watch(&config, &sources, options.watch_config);
    health::global().set_started(true);
    tracing::info!(worker = %config.worker_name, sources = sources.len(), "worker running");
    tokio::pin!(shutdown);
    // Tags and S3 keys are re-resolved on an interval, jittered so that a
    // fleet started together does not ask its registry all at once.
    let mut next_refresh = artifacts::next_refresh(&config);
    loop {
        let next_change = async {
            match &mut watch {
                Some((_, rx)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let refresh = async {
            if sources.has_mutable_remote() {
                tokio::time::sleep_until(next_refresh).await
            } else {
                std::future::pending().await
            }
        };
        let first = tokio::select! {
            () = &mut shutdown => break,
            () = refresh => {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = sources.refresh_remote() => {}
                }
                next_refresh = artifacts::next_refresh(&config);
                continue;
            }
            change = next_change => change,
        };
        let batch = match (first, &mut watch) {
            (Some(first), Some((_, rx))) => Batch::take(first, rx),
            _ => {
                watch = None;
                continue;
            }
        };
        // A reload waits for nothing but loading files, and stopping it
        // half way changes nothing (see `Sources::apply`).
        tokio::select! {
            () = &mut shutdown => break,
            () = apply_changes(batch, &mut config, &mut sources, &mut watch, &engine, options.watch_config) => {}
        }
    }
    health::global().set_started(false);
    stages.initiate();
    tracing::info!(
        running = tasks.len(),
        grace_s = config.shutdown_grace.as_secs_f64(),
        "shutting down: no new polls; waiting for running tasks and for polls in flight (up to 60 s, \
         so no task handed out meanwhile is lost); a second signal exits at once"
    );
    tasks.close();
    let pollers = sources.pollers();
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
    // The last metrics push carries the final counts (its own timeout
    // bounds it).
    stop_metrics.cancel();
    if let Some(push) = metrics_push {
        let _ = push.await;
    }
    Ok(RunSummary { clean })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[activity.a]\narn = \"arn:aws:states:us-east-1:000000000000:activity:a\"\n\
             component = \"a.wasm\"\n{extra}"
        );
        Config::from_toml(&text, std::path::Path::new("/etc/wa/worker.toml")).unwrap()
    }

    #[test]
    fn a_reload_may_not_ask_for_more_than_the_engine_was_built_for() {
        let engine = EngineLimits {
            memory: Some(64 << 20),
            fuel: false,
        };
        engine.admits(&config("memory_limit = \"64MiB\"")).unwrap();
        let e = engine
            .admits(&config("memory_limit = \"128MiB\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "/etc/wa/worker.toml: `activity.a.memory_limit` = \"128.0 MiB\": expected at most 64.0 MiB"
            ) && e.contains("restart the worker to raise it"),
            "{e}"
        );
        let e = engine
            .admits(&config("fuel = 1000"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`activity.a.fuel` = \"1000\"") && e.contains("restart the worker"),
            "{e}"
        );
        // Without a pool, memory is allocated on demand: any limit fits.
        let on_demand = EngineLimits {
            memory: None,
            fuel: true,
        };
        on_demand
            .admits(&config("memory_limit = \"1GiB\"\nfuel = 1000"))
            .unwrap();
    }
}
