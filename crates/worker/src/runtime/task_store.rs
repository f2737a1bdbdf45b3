//! What a task's store holds, and the host interface the guest imports.
//!
//! The WASI context is built deny-by-default: no preopened directories, no
//! environment, no arguments, no sockets, no name lookup, empty stdin; stdout
//! and stderr go to the task's [`GuestLog`]. Clocks and randomness are
//! available, as any program expects.
//!
//! Every WASI and `wasi:http` call reaches the task's state through
//! [`WasiView::ctx`] or [`WasiHttpView::http`], which makes them the place to
//! enforce the host budgets: once the task holds more host memory than its
//! budget, its resource table takes no new entries, so the call that would
//! allocate more fails and the guest is stopped.

use super::TaskContext;
use super::bindings::wasm_activity::handler::host;
use super::control::TaskControl;
use super::guest_log::{GuestLevel, GuestLog};
use super::host_memory::{HostMeter, Metered};
use super::http::HttpGate;
use super::limits::{self, TaskLimiter};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};
/// The data in one task's store.
pub(crate) struct TaskState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_gate: MeteredHooks,
    table: ResourceTable,
    meter: Arc<HostMeter>,
    limiter: TaskLimiter,
    log: Arc<GuestLog>,
    control: Arc<TaskControl>,
    deadline: Instant,
}

impl TaskState {
    /// The store data for one task: WASI built from the activity's grants
    /// and nothing else. Fails only if a granted directory cannot be opened.
    pub(crate) fn new(
        ctx: &TaskContext,
        deadline: Instant,
        http_client: &reqwest::Client,
        meter: &Arc<HostMeter>,
    ) -> Result<TaskState, String> {
        let log = GuestLog::new(
            ctx.activity.clone(),
            ctx.task_id.clone(),
            ctx.limits.log_bytes,
            ctx.grants.clone(),
        );
        let grants = &ctx.grants;
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(log.stdout())
            .stderr(log.stderr())
            .max_random_size(limits::MAX_RANDOM_BYTES)
            // File I/O on the guest's own thread rather than the blocking
            // pool: it is the guest's work, and what it allocates and frees
            // is then counted in the guest's poll (a read buffer allocated
            // elsewhere and freed here would count as credit).
            .allow_blocking_current_thread(true);
        for (k, v) in grants.env.iter().chain(grants.secrets.iter()) {
            wasi.env(k, v);
        }
        for p in &grants.preopens {
            let perms = if p.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
                format!(
                    "cannot open the granted directory {}: {e:#}",
                    p.host.display()
                )
            })?;
        }
        let sockets = grants.sockets.clone();
        let any_socket = !sockets.is_empty();
        wasi.allow_tcp(any_socket)
            .allow_udp(any_socket)
            .allow_ip_name_lookup(grants.name_lookup)
            .socket_addr_check(move |addr, _use| {
                let allowed = sockets.contains(&addr);
                Box::pin(async move { allowed })
            });
        let wasi = wasi.build();
        let http_gate = HttpGate {
            policy: grants.http.clone(),
            client: http_client.clone(),
            activity: ctx.activity.clone(),
            task: ctx.task_id.clone(),
            meter: meter.clone(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(limits::MAX_HTTP_IN_FLIGHT)),
            warnings: Arc::default(),
        };
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits::MAX_HTTP_FIELDS_BYTES);
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits::MAX_HOST_RESOURCES);
        Ok(TaskState {
            wasi,
            http,
            http_gate: MeteredHooks {
                gate: http_gate,
                meter: meter.clone(),
            },
            table,
            meter: meter.clone(),
            limiter: TaskLimiter::with_tables(
                ctx.limits.memory,
                ctx.limits.table_elements,
                ctx.limits.instances,
            ),
            log,
            control: ctx.control.clone(),
            deadline,
        })
    }
    pub(crate) fn limiter(&self) -> &TaskLimiter {
        &self.limiter
    }

    pub(crate) fn limiter_mut(&mut self) -> &mut TaskLimiter {
        &mut self.limiter
    }

    pub(crate) fn log(&self) -> &Arc<GuestLog> {
        &self.log
    }

    pub(crate) fn control(&self) -> &TaskControl {
        &self.control
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(crate) fn meter(&self) -> &Arc<HostMeter> {
        &self.meter
    }

    /// Called at every WASI and HTTP call: past the host memory budget, no
    /// new resource may be created (the guest is stopped at its next poll
    /// or epoch tick anyway; this keeps it from allocating meanwhile).
    fn enforce_budget(&mut self) {
        if self.meter.exceeded() {
            self.table.set_max_capacity(0);
        }
    }
}

impl Drop for TaskState {
    fn drop(&mut self) {
        // The guest can write no more: what the log holds back (a partial
        // line, a possible secret's start) is final and can be emitted.
        self.log.flush();
    }
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.enforce_budget();
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for TaskState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.enforce_budget();
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_gate,
        }
    }
}

/// The task's [`HttpGate`], with the futures it returns charged to the
/// task's meter: wasmtime-wasi-http runs them as tasks of their own, outside
/// the guest's polls, and they buffer request and response bodies.
struct MeteredHooks {
    gate: HttpGate,
    meter: Arc<HostMeter>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for MeteredHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let inner = self
            .meter
            .scope(|| self.gate.send_request(request, options, fut));
        Box::new(Metered::new(self.meter.clone(), Box::into_pin(inner)))
    }
}

impl host::Host for TaskState {
    fn log(&mut self, level: host::LogLevel, message: String) {
        let level = match level {
            host::LogLevel::Trace => GuestLevel::Trace,
            host::LogLevel::Debug => GuestLevel::Debug,
            host::LogLevel::Info => GuestLevel::Info,
            host::LogLevel::Warn => GuestLevel::Warn,
            host::LogLevel::Error => GuestLevel::Error,
        };
        self.log.log(level, &message);
    }

    fn progress(&mut self, details: String) {
        // Redacted (a bounded head of it) before anything cuts or logs it.
        let details = self.log.progress_details(&details);
        // Logged like a guest log line: redacted, escaped, budgeted.
        self.log
            .log(GuestLevel::Debug, &format!("progress: {details}"));
        self.control.set_progress(details);
    }

    fn cancelled(&mut self) -> bool {
        self.control.is_cancel_requested()
    }
}
