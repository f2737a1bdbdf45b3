#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: builds the release host, the native baseline,
# the guests in every language, starts LocalStack (for the full-stack
# figure; its venv also provides boto3 for the Python baseline) and runs the
# harness (bench/). About 15 minutes on 2 cores.
#
#   scripts/bench.sh            # full run, writes BENCHMARKS.md
#   scripts/bench.sh --quick    # smoke run of the harness (fewer tasks), same report shape,
#                               # written to target/BENCHMARKS-quick.md
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

step "toolchains and LocalStack"
rustup target add wasm32-wasip2
scripts/guest-tools.sh install
scripts/localstack.sh start
trap 'scripts/localstack.sh stop' EXIT
PYTHON="${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}/localstack-venv/bin/python"

step "release builds: host (static, as the image ships it), native baseline, guests"
# One release build for the benchmarks and the packaging check: the host and
# the harness are built exactly as deploy/build-static.sh builds the image's
# binary, so scripts/package-check.sh finds them built.
deploy/build-static.sh target/static/wasm-activity -p wasm-activity-bench
BIN_DIR=target/x86_64-unknown-linux-gnu/release
cargo build --release --target wasm32-wasip2 --manifest-path examples/rust/Cargo.toml
cargo build --release --target wasm32-wasip2 --manifest-path tests/guests/Cargo.toml --target-dir target/guests
tests/guests/build-polyglot.sh

step "benchmarks"
"$BIN_DIR/wasm-activity-bench" --root . --bin-dir "$BIN_DIR" --python "$PYTHON" \
  --localstack "http://127.0.0.1:${LOCALSTACK_PORT:-4566}" "$@"
