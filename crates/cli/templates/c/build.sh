#!/usr/bin/env bash
# Builds {{name}}.wasm with clang + wasi-libc, then wraps the core module
# into a component with jco 1.35.0. What is missing is installed first:
# clang, lld and wasi-libc from Debian (apt-get, as root or with sudo), jco
# from npm into ${WASM_ACTIVITY_CACHE:-~/.cache/wasm-activity-dev}/guest-tools.
# Set CLANG or JCO to use your own instead.
set -euo pipefail
cd "$(dirname "$0")"
tools="${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}/guest-tools"
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ -z "${CLANG:-}" ]; then
  CLANG=clang
  if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ] ||
    ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
    echo "installing clang, lld and wasi-libc from Debian (once)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang lld libclang-rt-dev-wasm32 wasi-libc >/dev/null
  fi
fi
if [ -z "${JCO:-}" ]; then
  dir="$tools/jco"
  if [ ! -f "$dir/.installed-jco-1.35.0" ]; then
    command -v npm >/dev/null || {
      echo "installing node and npm from Debian (once)" >&2
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
    }
    echo "installing @bytecodealliance/jco@1.35.0 into $dir (once)" >&2
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && echo '{"private":true}' >package.json &&
      npm install -s --no-audit --no-fund @bytecodealliance/jco@1.35.0 >&2)
    touch "$dir/.installed-jco-1.35.0"
  fi
  JCO="$dir/node_modules/.bin/jco"
fi
mkdir -p build
"$CLANG" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror \
  -I sdk -I sdk/bindings -I sdk/vendor/cjson \
  handler.c sdk/wasm_activity.c sdk/bindings/activity.c sdk/vendor/cjson/cJSON.c \
  sdk/bindings/activity_component_type.o \
  -Wl,--strip-all -o build/{{name}}.core.wasm
"$JCO" new build/{{name}}.core.wasm --wasi-reactor -o {{name}}.wasm
