#!/usr/bin/env bash
# Builds the statically linked wasm-activity binary that deploy/Containerfile ships, and refuses a
# binary that is not static. Used by the Containerfile and by scripts/package-check.sh, so the test
# runs the binary built exactly as the image's.
#
#   deploy/build-static.sh OUT [-p PACKAGE...]   # writes OUT (honours CARGO_TARGET_DIR)
#
# glibc, linked statically (+crt-static): no musl target or toolchain to install, and glibc's
# resolver (files and dns, built into libc since 2.34) works without any shared library, so DNS
# names resolve in an image with nothing but the binary. The explicit --target keeps build scripts
# and proc-macros (which must be dynamic) unaffected by the flag. The binary's allocator is mimalloc.
#
# getrandom_backend="linux_getrandom": the getrandom crate (0.3+, under wasmtime-wasi's and the AWS
# SDK's random numbers) otherwise finds the getrandom(2) wrapper with dlsym, which a static binary
# cannot do, and falls back to reading /dev/urandom: the binary would need /dev. This calls the
# statically linked wrapper (Linux 3.17+).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: deploy/build-static.sh OUT [-p PACKAGE...]}"
shift
triple=x86_64-unknown-linux-gnu
# Extra packages (scripts/bench.sh adds the benchmark harness) share the one build.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
  cargo build --release --locked -p wasm-activity "$@" --target "$triple"
bin="${CARGO_TARGET_DIR:-target}/$triple/release/wasm-activity"
# A dynamic executable names a program interpreter (ld-linux) and NEEDED libraries.
if readelf -lW "$bin" | grep -q 'program interpreter' || readelf -dW "$bin" | grep -q '(NEEDED)'; then
  echo "error: $bin is not statically linked:" >&2
  readelf -dW "$bin" | grep '(NEEDED)' >&2 || true
  exit 1
fi
mkdir -p "$(dirname "$out")"
cp "$bin" "$out"
echo "static binary: $out"
