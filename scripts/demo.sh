#!/usr/bin/env bash
# The main job, end to end, with nothing else installed and no AWS account:
# builds the host and the example handler, then runs
#   wasm-activity dev --config examples/rust/worker.toml --input examples/orders/inputs
# which starts the embedded local Step Functions endpoint, runs the worker
# against it, starts one execution per input file and prints each result.
#
#   scripts/demo.sh                 # the example inputs (several are invalid orders, on purpose)
#   scripts/demo.sh my-input.json   # your own inputs (files or directories)
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
cargo build --release -p wasm-activity
cargo build --manifest-path examples/rust/Cargo.toml --release --target wasm32-wasip2

inputs=("$@")
[ ${#inputs[@]} -gt 0 ] || inputs=(examples/orders/inputs)
args=()
for i in "${inputs[@]}"; do args+=(--input "$i"); done

status=0
target/release/wasm-activity dev --config examples/rust/worker.toml "${args[@]}" || status=$?
# dev exits 1 when some execution failed (the example's invalid orders do),
# 2 or more when something could not run at all.
if [ "$status" -gt 1 ]; then exit "$status"; fi
