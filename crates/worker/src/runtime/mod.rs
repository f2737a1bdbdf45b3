//! The WebAssembly side: one engine, components compiled once, a fresh
//! sandboxed instance per task.
//!
//! Why it is built this way:
//! * One [`Engine`] with the pooling allocator: instance slots are reserved up
//!   front and reused, so creating an instance per task costs microseconds and
//!   no state leaks between tasks (each task gets a fresh [`wasmtime::Store`]).
//! * Epoch interruption with one engine-wide ticker thread: every running
//!   guest yields to the async executor at each tick, so a guest spinning on
//!   the CPU cannot starve pollers or heartbeats, and deadlines and stop
//!   requests take effect within a tick. No per-task thread, no per-task
//!   timer thread.
//! * Components are compiled once per content hash (and cached on disk, see
//!   [`cache`]) and kept as an instance-pre, so a task never compiles or
//!   resolves imports.
//! * By default a guest gets no filesystem, no network, no environment
//!   variables and no arguments; its stdout and stderr become host log lines.
//! * Guests run on their own threads ([`guest_pool`]), never on the runtime
//!   that polls, heartbeats and reports: a guest inside a long host call
//!   holds its thread, and epoch interruption cannot reach it there.
//! * What the host holds for a guest outside its linear memory is counted
//!   ([`host_memory`]) and bounded per task like its linear memory is.

pub(crate) mod cache;
pub(crate) mod control;
pub(crate) mod grants;
pub(crate) mod guest_log;
mod guest_pool;
mod host_memory;
pub use host_memory::MeteredAllocator;
pub(crate) mod http;
pub(crate) mod limits;
mod outcome;
mod task_store;

use crate::config::{MAX_INSTANCES, MAX_TABLE_ELEMENTS, TaskLimits};
use guest_pool::GuestPool;
use host_memory::{HostMeter, Metered};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config as EngineConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

pub(crate) use cache::ArtifactCache;
pub use control::{StopReason, TaskControl};
pub use grants::Grants;
pub use outcome::{Fault, HostLimit, Outcome};
use outcome::{Stage, classify};
use task_store::TaskState;

/// How often the epoch ticks; a running guest yields (and deadlines are
/// checked) at this interval.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Wasm stack a guest may use before it traps with a stack overflow.
const MAX_WASM_STACK: usize = 1024 * 1024;
/// Native stack for the fiber a guest runs on: the wasm stack plus room for
/// host calls.
const ASYNC_STACK: usize = 2 * 1024 * 1024;
/// Frames kept in a trap's backtrace: enough to locate the fault, few
/// enough that a runaway recursion does not fill the failure cause.
const MAX_BACKTRACE_FRAMES: usize = 32;
/// Per pool slot, how much linear memory, table and fiber stack stays
/// resident between tasks (see `engine_config`).
const KEEP_RESIDENT_MEMORY: usize = 2 << 20;
const KEEP_RESIDENT_TABLE: usize = 64 << 10;
const KEEP_RESIDENT_STACK: usize = 256 << 10;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "activity",
        exports: { default: async },
    });
}

/// Errors loading a component.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    // The OS error is part of the message, not a source: `{:#}` would print
    // it twice.
    #[error("cannot read component {}: {cause}", path.display())]
    Read {
        /// The component file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The bytes are not a valid component.
    #[error("{} is not a valid WebAssembly component: {reason}", path.display())]
    Invalid {
        /// The component file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The component does not implement the `wasm-activity:handler/activity` world.
    #[error(
        "{} does not implement the world wasm-activity:handler/activity@0.1.0: {reason} \
         (build it against wit/handler.wit, e.g. with the wasm-activity-guest crate)",
        path.display()
    )]
    WrongWorld {
        /// The component file.
        path: PathBuf,
        /// The mismatch.
        reason: String,
    },
}

/// The export the world requires, without its version (`@0.1.x` are all
/// compatible).
const HANDLER_EXPORT: &str = "wasm-activity:handler/handler@0.";

/// Errors setting up the engine.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the WebAssembly engine: {0}")]
pub struct EngineError(String);

/// How big to make the engine's instance pool.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Instances alive at once, at most (sum of all activities' concurrency).
    pub max_instances: u32,
    /// Largest memory limit of any activity, in bytes.
    pub max_memory: u64,
    /// Where to cache precompiled components (`None`: the user cache dir).
    pub cache_dir: Option<PathBuf>,
    /// Meter CPU fuel (needed if any activity sets `fuel`; costs some speed
    /// for every guest, so it is off otherwise).
    pub fuel: bool,
    /// Epoch interruption (deadlines, fair yielding, stopping a spinning
    /// guest). Always on in the worker; the benchmarks turn it off to
    /// measure what it costs. Without it a CPU-bound guest cannot be stopped.
    pub epoch_interruption: bool,
}
impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            max_instances: 16,
            max_memory: TaskLimits::default().memory,
            cache_dir: None,
            fuel: false,
            epoch_interruption: true,
        }
    }
}

/// The shared engine, linker and compile cache.
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<TaskState>>,
    cache: ArtifactCache,
    pooling: bool,
    fuel: bool,
    epoch: bool,
    http_client: reqwest::Client,
    pool: Arc<GuestPool>,
    _ticker: Option<EpochTicker>,
}
impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

fn engine_config(options: &RuntimeOptions, pooling: bool) -> EngineConfig {
    let mut config = EngineConfig::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(options.epoch_interruption)
        .consume_fuel(options.fuel)
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(ASYNC_STACK)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(MAX_BACKTRACE_FRAMES));
    if pooling {
        let instances = options.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            // Exactly the per-task maximum per slot: no task can take what
            // another slot's task may need.
            .total_core_instances(instances.saturating_mul(MAX_INSTANCES))
            .max_core_instances_per_component(MAX_INSTANCES)
            .total_memories(instances.saturating_mul(limits::MAX_MEMORIES))
            .max_memories_per_component(limits::MAX_MEMORIES)
            .total_tables(instances.saturating_mul(limits::MAX_TABLES))
            .max_tables_per_component(limits::MAX_TABLES)
            .table_elements(MAX_TABLE_ELEMENTS as usize)
            .total_stacks(instances)
            .max_memory_size(usize::try_from(options.max_memory).unwrap_or(usize::MAX))
            .max_core_instance_size(2 << 20)
            .max_component_instance_size(2 << 20)
            // Reset a slot's memory by rewriting the pages the last task
            // dirtied (found with the PAGEMAP_SCAN ioctl, Linux 6.7+)
            // instead of discarding them with madvise: no page faults on the
            // next task and no TLB-shootdown IPIs. Pages stay resident only
            // up to these sizes per slot; see BENCHMARKS.md.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .async_stack_keep_resident(KEEP_RESIDENT_STACK);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

impl Runtime {
    /// Creates the engine. Falls back to on-demand allocation (and says so)
    /// if the pool cannot be reserved, e.g. under a low `ulimit -v`.
    pub fn new(options: RuntimeOptions) -> Result<Runtime, EngineError> {
        let (engine, pooling) = match Engine::new(&engine_config(&options, true)) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!(
                    "pooling allocator unavailable ({e:#}); allocating instances on demand"
                );
                let engine = Engine::new(&engine_config(&options, false))
                    .map_err(|e| EngineError(format!("{e:#}")))?;
                (engine, false)
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        bindings::Activity::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        let cache = ArtifactCache::new(&engine, options.cache_dir.clone());
        let ticker = options
            .epoch_interruption
            .then(|| EpochTicker::start(&engine));
        let pool = GuestPool::new()
            .map_err(|e| EngineError(format!("cannot start the guest threads: {e}")))?;
        if !host_memory::is_metered() {
            tracing::warn!(
                "host memory budgets (host_memory_limit) are not enforced: this process's global \
                 allocator is not wasm_activity::MeteredAllocator"
            );
        }
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            cache,
            pooling,
            fuel: options.fuel,
            epoch: options.epoch_interruption,
            http_client: http::shared_client(),
            pool,
            _ticker: ticker,
        })
    }

    /// True if instances come from the pooling allocator.
    pub(crate) fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// The precompiled-component cache.
    pub(crate) fn cache(&self) -> &ArtifactCache {
        &self.cache
    }

    /// Loads a component file: compiles it (or loads the cached artifact),
    /// checks it implements the world, and prepares it for instantiation.
    ///
    /// This is blocking work (compilation can take seconds); call it from a
    /// blocking thread when on the async runtime.
    pub fn load(&self, path: &Path) -> Result<Handler, LoadError> {
        let started = Instant::now();
        let bytes = std::fs::read(path).map_err(|cause| LoadError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        self.load_bytes(path, bytes, started)
    }

    /// [`Runtime::load`] for bytes already read (or fetched): `path` names
    /// where they came from (a file, or a reference such as `oci://...`) in
    /// logs and errors. Blocking, like `load`.
    pub fn load_bytes(
        &self,
        path: &Path,
        bytes: Vec<u8>,
        started: Instant,
    ) -> Result<Handler, LoadError> {
        let digest = cache::sha256_hex(&bytes);
        let (component, cached) = match self.cache.load(&self.engine, &digest) {
            Some(component) => (component, true),
            None => {
                // A 20 MiB Python or JavaScript component takes seconds to
                // compile: say so, rather than look hung.
                let size = bytesize::ByteSize(bytes.len() as u64).display().iec();
                let cache = self
                    .cache
                    .dir()
                    .map(|d| format!("; cached in {} for later loads", d.display()))
                    .unwrap_or_default();
                tracing::info!(
                    "compiling {} ({size}) for this machine{cache}",
                    path.display()
                );
                let component =
                    with_progress(path, COMPILE_PROGRESS, || self.compile(path, &bytes))?;
                self.cache.store(&digest, &component);
                tracing::info!("compiled {} in {:.1?}", path.display(), started.elapsed());
                (component, false)
            }
        };
        let wrong_world = |reason: String| LoadError::WrongWorld {
            path: path.to_path_buf(),
            reason,
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| wrong_world(format!("{e:#}")))?;
        let pre = bindings::ActivityPre::new(pre).map_err(|e| wrong_world(format!("{e:#}")))?;
        check_handler_signature(&self.engine, &component).map_err(wrong_world)?;
        Ok(Handler {
            path: path.to_path_buf(),
            version: digest[..12].to_string(),
            digest,
            size: bytes.len() as u64,
            from_cache: cached,
            load_time: started.elapsed(),
            fuel: self.fuel,
            epoch: self.epoch,
            http_client: self.http_client.clone(),
            pool: self.pool.clone(),
            pre,
        })
    }

    fn compile(&self, path: &Path, bytes: &[u8]) -> Result<Component, LoadError> {
        let invalid = |reason: String| LoadError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        if wasmparser_is_core_module(bytes) {
            return Err(invalid(
                "it is a core WebAssembly module, not a component; build for the wasm32-wasip2 \
                 target, or wrap it with `wasm-tools component new`"
                    .into(),
            ));
        }
        if let Some(reason) = not_wasm(bytes) {
            return Err(invalid(reason));
        }
        Component::new(&self.engine, bytes).map_err(|e| invalid(format!("{e:#}")))
    }
}

/// Why `bytes` are neither a binary component nor the text format (which
/// the engine also takes), if so: otherwise a wrong file gets the text
/// parser's error about its first character.
fn not_wasm(bytes: &[u8]) -> Option<String> {
    if bytes.starts_with(b"\0asm") {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]);
    let start = text.trim_start();
    if start.starts_with('(') || start.starts_with(";;") {
        return None;
    }
    Some(if bytes.is_empty() {
        "the file is empty; was the build interrupted?".to_string()
    } else {
        "it does not start with the WebAssembly magic bytes (\\0asm), so it is not a .wasm \
         file; point the config at the component the build writes (for Rust, \
         target/wasm32-wasip2/release/NAME.wasm)"
            .to_string()
    })
}

/// Checks that the component's `handle` has exactly the world's type,
/// `func(input: string) -> result<string, failure>` with `failure` a record
/// of `error: string, cause: string`. Finding the export by name is not
/// enough: wasmtime checks a function's type only when an instance is
/// created, so a wrong signature would otherwise load, hot-reload over a
/// good version, and then fail every task.
fn check_handler_signature(engine: &Engine, component: &Component) -> Result<(), String> {
    use wasmtime::component::types::{ComponentItem, Type};
    let ty = component.component_type();
    // The export the bindings use: the exact version if present, else the
    // newest compatible one.
    let exports: Vec<_> = ty
        .exports(engine)
        .filter(|(name, _)| name.starts_with(HANDLER_EXPORT))
        .collect();
    let exact = format!("{HANDLER_EXPORT}1.0");
    let Some((name, export)) = exports
        .iter()
        .find(|(name, _)| *name == exact)
        .or_else(|| exports.iter().max_by(|a, b| a.0.cmp(b.0)))
        .cloned()
    else {
        return Err("it exports no wasm-activity:handler/handler@0.1 interface".into());
    };
    let ComponentItem::ComponentInstance(instance) = export.ty else {
        return Err(format!("its export {name} is not an interface instance"));
    };
    let Some(handle) = instance.get_export(engine, "handle") else {
        return Err(format!("its export {name} has no `handle` function"));
    };
    let ComponentItem::ComponentFunc(func) = handle.ty else {
        return Err(format!("{name}#handle is not a function"));
    };
    let expected = "func(input: string) -> result<string, failure>, failure = record { error: string, cause: string }";
    let wrong = |what: &str| {
        format!("{name}#handle has the wrong type ({what}); the world requires {expected}")
    };
    let params: Vec<Type> = func.params().map(|(_, t)| t).collect();
    if !matches!(params.as_slice(), [Type::String]) {
        return Err(wrong(&format!("its parameters are {params:?}")));
    }
    let results: Vec<Type> = func.results().collect();
    let [Type::Result(result)] = results.as_slice() else {
        return Err(wrong(&format!("it returns {results:?}")));
    };
    if !matches!(result.ok(), Some(Type::String)) {
        return Err(wrong(&format!("its success type is {:?}", result.ok())));
    }
    let Some(Type::Record(failure)) = result.err() else {
        return Err(wrong(&format!("its error type is {:?}", result.err())));
    };
    let fields: Vec<(&str, bool)> = failure
        .fields()
        .map(|f| (f.name, matches!(f.ty, Type::String)))
        .collect();
    if fields != [("error", true), ("cause", true)] {
        return Err(wrong(&format!(
            "its failure record has fields {:?}",
            failure.fields().map(|f| (f.name, f.ty)).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

/// A core module starts with the magic and version 1; a component with the
/// magic and a layer-1 version field (0x0d 0x00 0x01 0x00).
fn wasmparser_is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// A component ready to run tasks.
pub struct Handler {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of the component bytes, hex.
    pub digest: String,
    /// Short form of the digest, shown in logs as the component version.
    pub version: String,
    /// Size of the component file in bytes.
    pub size: u64,
    /// True if the compiled form came from the artifact cache.
    pub from_cache: bool,
    /// Time to read, compile or load, and prepare it.
    pub load_time: Duration,
    fuel: bool,
    epoch: bool,
    http_client: reqwest::Client,
    pool: Arc<GuestPool>,
    pre: bindings::ActivityPre<TaskState>,
}
impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What a task gets to know about itself while running.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// Activity name, for logs.
    pub activity: Arc<str>,
    /// Task id, for logs.
    pub task_id: Arc<str>,
    /// Budgets.
    pub limits: TaskLimits,
    /// Shared signals (stop, cancel, progress).
    pub control: Arc<TaskControl>,
    /// What the guest may reach.
    pub grants: Arc<Grants>,
}
/// Why the epoch callback interrupted a guest.
#[derive(Debug, Clone, Copy, thiserror::Error)]
enum Interrupt {
    #[error("task deadline reached")]
    Deadline,
    #[error("task stopped by the host")]
    Stopped,
    #[error("the task's host memory budget is spent")]
    HostMemory,
}

impl Handler {
    /// A fresh store for one instance: the task's limiter, its fuel budget
    /// (unmetered activities get all the fuel there is) and the epoch
    /// callback that yields every tick and interrupts a stopped or overdue
    /// guest.
    fn store(&self, state: TaskState, fuel: Option<u64>) -> wasmtime::Store<TaskState> {
        let mut store = wasmtime::Store::new(self.pre.engine(), state);
        store.limiter(|s| s.limiter_mut());
        // At every call into and return from the host: a spent host budget
        // stops the guest before the next host call can allocate more (the
        // resource table's free list and growing an existing resource would
        // otherwise get past a full table).
        store.call_hook(|ctx, hook| {
            if matches!(
                hook,
                wasmtime::CallHook::CallingHost | wasmtime::CallHook::ReturningFromHost
            ) && ctx.data().meter().exceeded()
            {
                return Err(Interrupt::HostMemory.into());
            }
            Ok(())
        });
        if self.fuel {
            let _ = store.set_fuel(fuel.unwrap_or(u64::MAX));
        }
        if self.epoch {
            store.set_epoch_deadline(1);
        }
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            if state.control().is_stopped() {
                return Err(Interrupt::Stopped.into());
            }
            if state.meter().exceeded() {
                return Err(Interrupt::HostMemory.into());
            }
            if Instant::now() >= state.deadline() {
                return Err(Interrupt::Deadline.into());
            }
            Ok(wasmtime::UpdateDeadline::Yield(1))
        });
        store
    }

    /// Runs one task in a fresh instance, on the guest threads.
    ///
    /// The deadline and stop requests are watched here, on the caller's
    /// runtime, so they take effect even while every guest thread is busy;
    /// the guest's future is then aborted and dropped on its own thread at
    /// its next await.
    pub async fn run(&self, input: &str, ctx: &TaskContext) -> Outcome {
        let deadline = tokio::time::Instant::now() + ctx.limits.timeout;
        let meter = HostMeter::new(ctx.limits.host_memory);
        let state = match TaskState::new(ctx, deadline.into_std(), &self.http_client, &meter) {
            Ok(state) => state,
            Err(e) => return Outcome::Fault(Fault::Instantiate(e)),
        };
        let store = self.store(state, ctx.limits.fuel);
        let guest = Budgeted {
            inner: Some(Box::pin(self.guest(store, input.to_owned(), ctx.clone()))),
            meter: meter.clone(),
        };
        // The caller's span (activity, tenant, task, version) goes with the
        // guest, so its log lines name the task on the guest threads too.
        let guest = self.pool.spawn(tracing::Instrument::in_current_span(guest));
        let outcome = tokio::select! {
            joined = guest => joined.unwrap_or_else(|e| Outcome::Fault(Fault::Trap {
                message: format!("the host task running the guest failed: {e}"),
                detail: String::new(),
            })),
            () = ctx.control.stopped() => stopped(ctx),
            () = tokio::time::sleep_until(deadline + EPOCH_TICK * 2) => Outcome::Fault(Fault::Timeout { limit: ctx.limits.timeout }),
            // An HTTP response filling host memory while the guest waits.
            () = meter.tripped() => Outcome::Fault(Fault::HostResources {
                kind: HostLimit::Memory,
                limit: meter.limit() as u64,
                used: meter.peak() as u64,
            }),
        };
        // The guest's last output is flushed when its store is dropped, on
        // its own thread (TaskState's Drop).
        outcome
    }

    /// Instantiates and calls the handler: what runs on a guest thread.
    fn guest(
        &self,
        mut store: wasmtime::Store<TaskState>,
        input: String,
        ctx: TaskContext,
    ) -> impl Future<Output = Outcome> + Send + 'static {
        let pre = self.pre.clone();
        let labels = crate::metrics::ComponentLabels {
            activity: ctx.activity.to_string(),
            version: self.version.clone(),
        };
        async move {
            use tracing::Instrument as _;
            let started = Instant::now();
            let instance = pre
                .instantiate_async(&mut store)
                .instrument(tracing::info_span!(target: "wasm_activity_otel", "instantiate"))
                .await;
            crate::metrics::global()
                .instantiate_seconds
                .get_or_create(&labels)
                .observe(crate::metrics::seconds(started.elapsed()));
            let result = match instance {
                Ok(instance) => instance
                    .wasm_activity_handler_handler()
                    .call_handle(&mut store, &input)
                    .instrument(tracing::info_span!(target: "wasm_activity_otel", "guest run"))
                    .await
                    .map_err(Stage::Call),
                Err(e) => Err(Stage::Instantiate(e)),
            };
            classify(result, &store, &ctx)
        }
    }
}

/// A guest's future, charged to its task's host meter and stopped as soon as
/// the task holds more host memory than its budget (checked after every
/// poll; the epoch callback and every WASI call check it too).
struct Budgeted<F> {
    inner: Option<Pin<Box<F>>>,
    meter: Arc<HostMeter>,
}

impl<F: Future<Output = Outcome>> Future for Budgeted<F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        let meter = this.meter.clone();
        meter.scope(|| {
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Pending;
            };
            match inner.as_mut().poll(cx) {
                Poll::Ready(outcome) => Poll::Ready(outcome),
                Poll::Pending if meter.exceeded() => {
                    let used = meter.live() as u64;
                    this.inner = None; // drops the store here, inside the scope
                    Poll::Ready(Outcome::Fault(Fault::HostResources {
                        kind: HostLimit::Memory,
                        limit: meter.limit() as u64,
                        used,
                    }))
                }
                Poll::Pending => Poll::Pending,
            }
        })
    }
}

/// How long creating an instance takes, measured by [`Handler::instantiate_time`].
#[derive(Debug, Clone, Copy)]
pub struct InstantiateTime {
    /// The first instance after loading (cold pool slot, lazy init).
    pub first: Duration,
    /// Median of the instances after it.
    pub warm_p50: Duration,
    /// 99th percentile of the instances after it.
    pub warm_p99: Duration,
    /// Slowest of the instances after it.
    pub warm_max: Duration,
    /// Most host memory one instantiation held (counted against
    /// `host_memory_limit`; 0 if the process allocator does not meter).
    pub host_memory: u64,
}

impl Handler {
    /// Creates `samples + 1` instances the way a task does (fresh store,
    /// with `ctx`'s limits and grants) without calling the handler, and
    /// reports how long that took. `check` prints it: Python and JavaScript
    /// guests cost far more here than Rust or C ones.
    pub async fn instantiate_time(
        &self,
        ctx: &TaskContext,
        samples: usize,
    ) -> Result<InstantiateTime, String> {
        let mut times = Vec::with_capacity(samples + 1);
        let mut host_memory = 0;
        for _ in 0..=samples {
            let deadline = Instant::now() + ctx.limits.timeout;
            let meter = HostMeter::new(ctx.limits.host_memory);
            let state = TaskState::new(ctx, deadline, &self.http_client, &meter)?;
            let mut store = self.store(state, None);
            let started = Instant::now();
            Metered::new(meter.clone(), self.pre.instantiate_async(&mut store))
                .await
                .map_err(|e| format!("{e:#}"))?;
            times.push(started.elapsed());
            host_memory = host_memory.max(meter.peak() as u64);
        }
        let first = times.remove(0);
        times.sort();
        Ok(InstantiateTime {
            host_memory,
            first,
            warm_p50: times.get(times.len() / 2).copied().unwrap_or(first),
            warm_p99: times.get(times.len() * 99 / 100).copied().unwrap_or(first),
            warm_max: times.last().copied().unwrap_or(first),
        })
    }
}

fn stopped(ctx: &TaskContext) -> Outcome {
    let reason = ctx
        .control
        .stop_reason()
        .cloned()
        .unwrap_or(StopReason::Shutdown);
    Outcome::Fault(Fault::Stopped(reason))
}

/// The one thread that advances the engine's epoch.
///
/// It lives as long as the engine, not as long as the [`Runtime`]: a
/// [`Handler`] keeps the engine alive, and a guest running without ticks
/// would never reach its deadline. The thread holds only a weak reference
/// and ends once the last engine handle is gone.
struct EpochTicker;

impl EpochTicker {
    fn start(engine: &Engine) -> EpochTicker {
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch ticker thread");
        EpochTicker
    }
}

/// How often a compile still running says so.
const COMPILE_PROGRESS: Duration = Duration::from_secs(5);

/// Runs `compile` (blocking, on the caller's thread: never the async loop),
/// saying "still compiling" every `every` from a thread of its own (with the
/// caller's log subscriber) until it is done: a first compile of a large
/// component takes tens of seconds, and silence looks like a hang.
fn with_progress<T>(path: &Path, every: Duration, compile: impl FnOnce() -> T) -> T {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let name = path.display().to_string();
    let started = Instant::now();
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let progress = std::thread::Builder::new()
        .name("compile-progress".into())
        .spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(every)
                {
                    tracing::info!("still compiling {name} ({} s)", started.elapsed().as_secs());
                }
            })
        });
    let result = compile();
    drop(done);
    if let Ok(progress) = progress {
        let _ = progress.join();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::not_wasm;

    #[test]
    fn only_binary_wasm_and_the_text_format_reach_the_compiler() {
        assert_eq!(not_wasm(b"\0asm\x0d\0\x01\0"), None);
        assert_eq!(not_wasm(b"  (component)"), None);
        assert_eq!(not_wasm(b";; a comment\n(component)"), None);
        assert!(not_wasm(b"").unwrap().contains("empty"));
        let e = not_wasm(b"#!/bin/sh\necho hi\n").unwrap();
        assert!(
            e.contains("magic bytes") && e.contains("wasm32-wasip2"),
            "{e}"
        );
    }

    /// A compile that takes longer than the period says so while it runs,
    /// with the caller's log subscriber.
    #[test]
    fn a_long_compile_says_it_is_still_compiling() {
        use std::time::{Duration, Instant};
        let (out, _log) = crate::testing::capture_logs();
        let text = || out.text();
        let path = std::path::Path::new("/big.wasm");
        // The "compile": busy until the progress thread has spoken twice.
        let said = super::with_progress(path, Duration::from_millis(10), || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while text().matches("still compiling /big.wasm (0 s)").count() < 2 {
                assert!(Instant::now() < deadline, "no progress: {}", text());
                std::thread::yield_now();
            }
            text().matches("still compiling").count()
        });
        assert!(said >= 2);
    }
}
