//! The `wasm-activity` binary; the work is in the library.

use clap::Parser;
use std::process::ExitCode;

// Every task allocates and frees its inputs, outputs, HTTP buffers and WASI
// context on whichever runtime thread it lands on; glibc's malloc spends a
// large share of the host's CPU on that pattern (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = wasm_activity::cli::Cli::parse();
    wasm_activity::cli::init_logging(cli.log_format);
    wasm_activity::cli::execute(cli).await
}
