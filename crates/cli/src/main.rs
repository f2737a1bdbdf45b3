//! The `wasm-activity` binary: the command line, `dev`, `new`, `invoke` and
//! `replay`; serving is the worker library's (`wasm-activity-worker`).

mod cli;
mod dev;
mod scaffold;

use clap::Parser;
use std::process::ExitCode;

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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format);
    cli::execute(cli).await
}
