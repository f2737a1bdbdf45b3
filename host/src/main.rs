//! The `wasm-activity` binary; the work is in the library.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = wasm_activity::cli::Cli::parse();
    wasm_activity::cli::init_logging(cli.log_format);
    wasm_activity::cli::execute(cli).await
}
