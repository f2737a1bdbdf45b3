#!/usr/bin/env bash
# The test command: installs and starts everything the tests need, from
# scratch, then runs lints, unit tests and end-to-end tests.
#
#   scripts/test.sh
#
# Needs: rustup (for the wasm32-wasip2 target), node and npm (JavaScript
# guests), Python 3.13 for LocalStack
# (pyenv installs it if missing), curl, and apt (for Chromium, which the live
# page test drives). Runs as root for the packaging checks (chroot). Caches what it
# installs under ~/.cache/wasm-activity-dev, outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Rust target wasm32-wasip2 (guest components)"
rustup target add wasm32-wasip2

step "Python, JavaScript and C guest toolchains (componentize-py, componentize-js, jco, clang + wasi-libc)"
scripts/guest-tools.sh install

step "Chromium (headless, for the live page test)"
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
chromium --version

step "component sources: a CNCF distribution registry and oras-py (S3 comes with LocalStack)"
WASM_ACTIVITY_TEST_ORAS_PYTHON="$(scripts/component-peers.sh install)"
export WASM_ACTIVITY_TEST_ORAS_PYTHON

step "LocalStack Step Functions, SWF and S3 on 127.0.0.1:4566"
scripts/localstack.sh start
trap 'scripts/localstack.sh stop' EXIT
# The protocol test drives the embedded endpoint with boto3 from this venv.
export WASM_ACTIVITY_TEST_PYTHON="${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}/localstack-venv/bin/python"

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
scripts/module-graph.py crates/worker/src crates/artifacts/src crates/endpoint/src crates/cli/src >/dev/null

step "unit tests: host (worker core on a paused clock), guest SDK, bench harness (plain cargo test: needs only Rust)"
cargo test

step "end-to-end and hostile-guest tests: the real binary against LocalStack, the embedded endpoint, real guests (builds the test guests)"
cargo build -p wasm-activity
cargo test -p wasm-activity-e2e

step "Python guest SDK unit tests (plain CPython)"
python3 -m unittest discover -s guest-sdk/python

step "example handler's own unit tests"
cargo test --manifest-path examples/rust/Cargo.toml

step "benchmark harness smoke run (release builds; every worker's output is checked; last: it stops LocalStack)"
scripts/bench.sh --quick

step "production kit: the static binary in an empty root, systemd-analyze verify, IAM policies against the code's AWS calls, Kubernetes manifests"
scripts/package-check.sh

step "all tests passed"
