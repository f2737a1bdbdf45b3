//! The `wasm-activity` binary: the command line, `dev`, `new`, `invoke` and
//! `replay`; serving is the worker library's (`wasm-activity-worker`).

mod cli;
mod dev;
mod scaffold;

use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

// Every task allocates and frees its inputs, outputs, HTTP buffers and WASI
// context on whichever runtime thread it lands on; glibc's malloc spends a
// large share of the host's CPU on that pattern (see BENCHMARKS.md).
// Built with `no_thp`: mimalloc would otherwise ask for transparent huge
// pages, and every 2 MiB region a few live tasks touch becomes resident
// whole (~60 MiB more at idle and at 1,000 tasks in flight here).
// Wrapped to count what each task's guest makes the host allocate
// (runtime::host_memory).
#[global_allocator]
static ALLOCATOR: wasm_activity_worker::MeteredAllocator<mimalloc::MiMalloc> =
    wasm_activity_worker::MeteredAllocator(mimalloc::MiMalloc);

/// How long exiting waits for blocking work still running: a read that
/// never returns (a config file swapped for a named pipe, a hung mount)
/// must not keep a stopped worker's process alive.
const EXIT_WAIT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    let code = runtime.block_on(cli::execute(cli));
    runtime.shutdown_timeout(EXIT_WAIT);
    code
}
