#!/usr/bin/env bash
# Builds {{name}}.wasm with clang + wasi-libc, then wraps the core module
# into a component with jco:
#   apt-get install clang lld libclang-rt-dev-wasm32 wasi-libc
#   npm install -g @bytecodealliance/jco@1.35.0
# Set CLANG or JCO to use tools that are not on PATH.
set -euo pipefail
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
JCO="${JCO:-jco}"
command -v "$CLANG" >/dev/null || { echo "error: clang not found; apt-get install clang lld libclang-rt-dev-wasm32 wasi-libc" >&2; exit 1; }
command -v "$JCO" >/dev/null || { echo "error: jco not found; npm install -g @bytecodealliance/jco@1.35.0" >&2; exit 1; }
mkdir -p build
"$CLANG" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror \
  -I sdk -I sdk/bindings -I sdk/vendor/cjson \
  handler.c sdk/wasm_activity.c sdk/bindings/activity.c sdk/vendor/cjson/cJSON.c \
  sdk/bindings/activity_component_type.o \
  -Wl,--strip-all -o build/{{name}}.core.wasm
"$JCO" new build/{{name}}.core.wasm --wasi-reactor -o {{name}}.wasm
