#!/usr/bin/env bash
# Builds examples/c/order_pricing.wasm; the exact commands are in the comment
# at the top of order_pricing.c. This script installs clang, wasi-libc (apt)
# and jco (npm, into a cache) first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/guest-tools.sh
guest_tools c
mkdir -p examples/c/build
"$CLANG" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror \
  -I guest-sdk/c -I guest-sdk/c/bindings -I guest-sdk/c/vendor/cjson \
  examples/c/order_pricing.c guest-sdk/c/wasm_activity.c \
  guest-sdk/c/bindings/activity.c guest-sdk/c/vendor/cjson/cJSON.c \
  guest-sdk/c/bindings/activity_component_type.o \
  -Wl,--strip-all -o examples/c/build/order_pricing.core.wasm
"$JCO" new examples/c/build/order_pricing.core.wasm --wasi-reactor -o examples/c/order_pricing.wasm
