#!/usr/bin/env bash
# Builds {{name}}.wasm:
#   rustup target add wasm32-wasip2
#   cargo build --release --target wasm32-wasip2
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
target_dir="${CARGO_TARGET_DIR:-target}"
cp "$target_dir"/wasm32-wasip2/release/{{crate}}.wasm {{name}}.wasm
echo "built {{name}}.wasm"
