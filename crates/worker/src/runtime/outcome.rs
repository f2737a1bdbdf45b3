//! How a guest run ended, told plainly.
//!
//! wasmtime reports a trap, an exhausted fuel budget, a memory limit, a
//! host budget or an interrupt as an error chain; an operator needs one of
//! the documented outcomes with the setting to change. Every run's ending
//! is sorted here, once.

use super::{
    Interrupt, MAX_BACKTRACE_FRAMES, StopReason, TaskContext, bindings, limits, stopped,
    task_store::TaskState,
};
use std::time::Duration;

/// How a guest run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler returned output (not yet validated).
    Output(String),
    /// The handler returned a failure.
    Failure {
        /// Error name as the guest gave it.
        error: String,
        /// Cause as the guest gave it.
        cause: String,
    },
    /// The host ended the run.
    Fault(Fault),
}

/// A run the host ended or could not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The guest trapped (panic, unreachable, stack overflow, ...).
    Trap {
        /// The trap, e.g. "wasm trap: call stack exhausted".
        message: String,
        /// Backtrace and the guest's last stderr output.
        detail: String,
    },
    /// The task ran past its timeout.
    Timeout {
        /// The limit.
        limit: Duration,
    },
    /// The guest asked for more memory than its limit and then failed.
    MemoryLimit {
        /// The limit in bytes.
        limit: u64,
        /// The total it asked for.
        requested: u64,
        /// The trap that followed.
        trap: String,
    },
    /// The host stopped the guest.
    Stopped(StopReason),
    /// The instance could not be created.
    Instantiate(String),
    /// The guest used up its CPU fuel.
    FuelExhausted {
        /// The budget.
        limit: u64,
    },
    /// A table grew past the limit and the guest then failed.
    TableLimit {
        /// The limit in elements.
        limit: u32,
        /// What it asked for.
        requested: u64,
    },
    /// The guest created more instances, memories or tables than allowed.
    InstanceLimit {
        /// The limit.
        limit: u32,
        /// The error.
        detail: String,
    },
    /// The guest made the host hold more for it than its budget allows.
    HostResources {
        /// Which budget.
        kind: HostLimit,
        /// The limit (bytes, or handles).
        limit: u64,
        /// How much it held when stopped (bytes, or handles).
        used: u64,
    },
    /// The guest called `exit` (WASI `proc_exit`) instead of returning.
    Exit {
        /// The status it exited with.
        code: i32,
    },
}

/// A budget for what the host holds on a guest's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLimit {
    /// Host memory (`host_memory_limit`).
    Memory,
    /// Host resource handles (a fixed cap, [`limits::MAX_HOST_RESOURCES`]).
    Handles,
    /// One `wasi:http` fields resource's size (a fixed cap,
    /// [`limits::MAX_HTTP_FIELDS_BYTES`]).
    HttpFields,
}
/// Where a run failed: creating the instance or calling the handler.
pub(super) enum Stage {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

type GuestResult = Result<String, bindings::exports::wasm_activity::handler::handler::Failure>;

pub(super) fn classify(
    result: Result<GuestResult, Stage>,
    store: &wasmtime::Store<TaskState>,
    ctx: &TaskContext,
) -> Outcome {
    let err = match result {
        Ok(Ok(output)) => return Outcome::Output(output),
        Ok(Err(failure)) => {
            return Outcome::Failure {
                error: failure.error,
                cause: failure.cause,
            };
        }
        Err(Stage::Call(e)) => e,
        Err(Stage::Instantiate(e)) => return Outcome::Fault(instantiate_fault(e, store, ctx)),
    };
    match err.downcast_ref::<Interrupt>() {
        Some(Interrupt::Deadline) => {
            return Outcome::Fault(Fault::Timeout {
                limit: ctx.limits.timeout,
            });
        }
        Some(Interrupt::Stopped) => return stopped(ctx),
        Some(Interrupt::HostMemory) | None => {}
    }
    if let Some(fault) = host_limit_fault(&err, store) {
        return Outcome::Fault(fault);
    }
    if let Some(code) = exit_code(&err) {
        return Outcome::Fault(Fault::Exit { code });
    }
    if matches!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::OutOfFuel)
    ) && let Some(limit) = ctx.limits.fuel
    {
        return Outcome::Fault(Fault::FuelExhausted { limit });
    }
    let trap = trap_message(&err);
    if let Some(requested) = store.data().limiter().table_refused() {
        return Outcome::Fault(Fault::TableLimit {
            limit: ctx.limits.table_elements,
            requested: requested as u64,
        });
    }
    if let Some(requested) = store.data().limiter().refused() {
        return Outcome::Fault(Fault::MemoryLimit {
            limit: ctx.limits.memory,
            requested: requested as u64,
            trap,
        });
    }
    Outcome::Fault(Fault::Trap {
        message: trap,
        detail: trap_detail(&err, &store.data().log().stderr_tail()),
    })
}

fn instantiate_fault(
    err: wasmtime::Error,
    store: &wasmtime::Store<TaskState>,
    ctx: &TaskContext,
) -> Fault {
    if let Some(requested) = store.data().limiter().refused() {
        return Fault::MemoryLimit {
            limit: ctx.limits.memory,
            requested: requested as u64,
            trap: format!("{err:#}"),
        };
    }
    if let Some(fault) = host_limit_fault(&err, store) {
        return fault;
    }
    if let Some(code) = exit_code(&err) {
        return Fault::Exit { code };
    }
    let message = format!("{err:#}");
    if message.contains("resource limit exceeded") {
        return Fault::InstanceLimit {
            limit: ctx.limits.instances,
            detail: message,
        };
    }
    if err.downcast_ref::<wasmtime::Trap>().is_some() {
        return Fault::Trap {
            message: trap_message(&err),
            detail: trap_detail(&err, &store.data().log().stderr_tail()),
        };
    }
    Fault::Instantiate(format!("{err:#}"))
}

/// The status of a WASI `exit`, if that is how the run ended.
fn exit_code(err: &wasmtime::Error) -> Option<i32> {
    err.chain()
        .find_map(|c| c.downcast_ref::<wasmtime_wasi::I32Exit>())
        .map(|e| e.0)
}

/// The host budget a failed run ran into, if any: host memory (counted by
/// the meter), or host resource handles (the table refused a new entry).
fn host_limit_fault(err: &wasmtime::Error, store: &wasmtime::Store<TaskState>) -> Option<Fault> {
    let meter = store.data().meter();
    if meter.exceeded() || matches!(err.downcast_ref::<Interrupt>(), Some(Interrupt::HostMemory)) {
        return Some(Fault::HostResources {
            kind: HostLimit::Memory,
            limit: meter.limit() as u64,
            used: meter.peak() as u64,
        });
    }
    let table_full = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    });
    if table_full {
        return Some(Fault::HostResources {
            kind: HostLimit::Handles,
            limit: limits::MAX_HOST_RESOURCES as u64,
            used: limits::MAX_HOST_RESOURCES as u64,
        });
    }
    let fields_full = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<wasmtime_wasi_http::FieldMapError>(),
            Some(
                wasmtime_wasi_http::FieldMapError::TotalSizeTooBig
                    | wasmtime_wasi_http::FieldMapError::TooManyFields
            )
        )
    });
    fields_full.then_some(Fault::HostResources {
        kind: HostLimit::HttpFields,
        limit: limits::MAX_HTTP_FIELDS_BYTES as u64,
        used: limits::MAX_HTTP_FIELDS_BYTES as u64,
    })
}

/// The trap, said plainly. A Rust or C guest keeps its stack in linear
/// memory, so when deep recursion runs it out the trap is an out-of-bounds
/// access; the backtrace tells the two apart.
fn trap_message(err: &wasmtime::Error) -> String {
    let Some(trap) = err.downcast_ref::<wasmtime::Trap>() else {
        return format!("{err:#}");
    };
    match trap {
        wasmtime::Trap::StackOverflow => {
            "stack overflow: the handler recursed too deeply (wasm call stack exhausted)".into()
        }
        wasmtime::Trap::MemoryOutOfBounds => match recursion(err) {
            Some(func) => format!(
                "stack overflow: the handler recursed too deeply in {func} and ran out of its \
                 stack in linear memory (reported by wasm as {trap})"
            ),
            None => trap.to_string(),
        },
        _ => trap.to_string(),
    }
}

/// The function that fills a full-length backtrace, if one does: the mark
/// of unbounded recursion.
fn recursion(err: &wasmtime::Error) -> Option<String> {
    let bt = err.downcast_ref::<wasmtime::WasmBacktrace>()?;
    let frames = bt.frames();
    if frames.len() < MAX_BACKTRACE_FRAMES {
        return None;
    }
    let key = |f: &wasmtime::FrameInfo| (f.module().name().map(str::to_owned), f.func_index());
    let mut counts = std::collections::HashMap::new();
    for f in frames {
        *counts.entry(key(f)).or_insert(0usize) += 1;
    }
    let (top, count) = counts.into_iter().max_by_key(|(_, c)| *c)?;
    if count * 2 < frames.len() {
        return None;
    }
    let frame = frames.iter().find(|f| key(f) == top)?;
    Some(
        frame
            .func_name()
            .map(str::to_string)
            .unwrap_or_else(|| format!("function #{}", frame.func_index())),
    )
}

/// The guest's last stderr lines first (a panic message or traceback says
/// more than a backtrace), then the wasm backtrace.
fn trap_detail(err: &wasmtime::Error, stderr_tail: &str) -> String {
    let mut detail = String::new();
    let stderr_tail = stderr_tail.trim();
    if !stderr_tail.is_empty() {
        detail.push_str("guest stderr (last lines):\n");
        detail.push_str(stderr_tail);
    }
    if let Some(bt) = err.downcast_ref::<wasmtime::WasmBacktrace>() {
        if !detail.is_empty() {
            detail.push('\n');
        }
        detail.push_str(bt.to_string().trim_end());
    }
    detail
}
