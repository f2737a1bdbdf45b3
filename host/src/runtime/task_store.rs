//! What a task's store holds, and the host interface the guest imports.
//!
//! The WASI context is built deny-by-default: no preopened directories, no
//! environment, no arguments, no sockets, no name lookup, empty stdin; stdout
//! and stderr go to the task's [`GuestLog`]. Clocks and randomness are
//! available, as any program expects.

use super::TaskContext;
use super::bindings::wasm_activity::handler::host;
use super::control::TaskControl;
use super::guest_log::{GuestLevel, GuestLog};
use super::limits::TaskLimiter;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The data in one task's store.
pub struct TaskState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: TaskLimiter,
    log: Arc<GuestLog>,
    control: Arc<TaskControl>,
    deadline: Instant,
}

impl TaskState {
    pub fn new(ctx: &TaskContext, deadline: Instant) -> TaskState {
        let log = GuestLog::new(
            ctx.activity.clone(),
            ctx.task_id.clone(),
            ctx.limits.log_bytes,
        );
        let wasi = WasiCtxBuilder::new()
            .stdout(log.stdout())
            .stderr(log.stderr())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        TaskState {
            wasi,
            table: ResourceTable::new(),
            limiter: TaskLimiter::new(ctx.limits.memory),
            log,
            control: ctx.control.clone(),
            deadline,
        }
    }

    pub fn limiter(&self) -> &TaskLimiter {
        &self.limiter
    }

    pub fn limiter_mut(&mut self) -> &mut TaskLimiter {
        &mut self.limiter
    }

    pub fn log(&self) -> &Arc<GuestLog> {
        &self.log
    }

    pub fn control(&self) -> &TaskControl {
        &self.control
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
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
        tracing::debug!(target: "guest", progress = %details, "progress");
        self.control.set_progress(details);
    }

    fn cancelled(&mut self) -> bool {
        self.control.is_cancel_requested()
    }
}
