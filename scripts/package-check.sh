#!/usr/bin/env bash
# Tests of the production kit in deploy/ (scripts/test.sh runs this; it runs alone too):
#
#   1. the static binary, built as deploy/Containerfile builds it, serves Step Functions tasks from a
#      root directory holding only itself and the CA bundle (plus the test's config, component and
#      cache directory), as a user with no passwd entry: DNS, TLS with the bundle's roots (AWS SDK
#      and https:// component fetch), the JIT, the cache, a clean drain on SIGTERM;
#   2. deploy/wasm-activity.service passes `systemd-analyze verify` without a warning;
#   3. the IAM policies in deploy/iam grant every AWS operation the code calls, and nothing more;
#   4. the Kubernetes manifests and the unit match the worker: probe paths and port, cache mount,
#      grace periods covering the worker's shutdown.
#
# Needs root (chroot, the DNS responder on 127.0.0.1:53), rustup with wasm32-wasip2, openssl,
# systemd-analyze and PyYAML (taken from LocalStack's venv, or installed into a cache venv).
# Everything it starts listens on 127.0.0.1 and is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}"
say() { printf -- '--- [%ss] %s\n' "$SECONDS" "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "error: scripts/package-check.sh needs root (chroot into the test root, DNS on 127.0.0.1:53)" >&2
  exit 1
fi
missing=()
for tool in openssl:openssl systemd-analyze:systemd readelf:binutils file:file chroot:coreutils python3:python3; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PyYAML for the manifests: LocalStack's venv has it (scripts/test.sh installs that venv first);
# otherwise a venv of its own.
PY="$CACHE/localstack-venv/bin/python"
if ! { [ -x "$PY" ] && "$PY" -c 'import yaml, tomllib' 2>/dev/null; }; then
  PY="$CACHE/package-check-venv/bin/python"
  if ! { [ -x "$PY" ] && "$PY" -c 'import yaml' 2>/dev/null; }; then
    python3 -m venv "$CACHE/package-check-venv"
    "$PY" -m pip install -q 'pyyaml==6.0.2'
  fi
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say "static binary, built by deploy/build-static.sh (the Containerfile's build)"
start=$SECONDS
# With the benchmark harness, as scripts/bench.sh builds it: the same
# package set resolves the same features, so after the bench step this is
# the same build, not a second one.
deploy/build-static.sh "$WORK/wasm-activity" -p wasm-activity-bench
echo "built in $((SECONDS - start)) s"
file "$WORK/wasm-activity" | tee "$WORK/file.txt"
grep -Eq 'statically linked|static-pie linked' "$WORK/file.txt" || { echo "error: not a static binary" >&2; exit 1; }
ldd "$WORK/wasm-activity" >"$WORK/ldd.txt" 2>&1 || true
if grep -q '\.so' "$WORK/ldd.txt" || ! grep -Eq 'statically linked|not a dynamic executable' "$WORK/ldd.txt"; then
  echo "error: ldd lists shared libraries:" >&2; cat "$WORK/ldd.txt" >&2; exit 1
fi

say "the static binary in a root holding only itself, the CA bundle, a config and a component"
rustup target add wasm32-wasip2 >/dev/null 2>&1
cargo build -q --release --target wasm32-wasip2 --manifest-path examples/rust/Cargo.toml --target-dir examples/rust/target
"$PY" scripts/package-check.py chroot "$WORK/wasm-activity" "$WORK"

say "systemd-analyze verify deploy/wasm-activity.service"
# A root holding the unit as installed (ExecStart's /usr/local/bin/wasm-activity is the binary
# above) and the system's own units it refers to. verify exits 0 on unknown keys and unparsable
# values (it only warns), so any output fails; the typo'd copy proves warnings are seen.
verify() {
  local root="$WORK/systemd-root"
  rm -rf "$root"
  mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
  ln "$WORK/wasm-activity" "$root/usr/local/bin/wasm-activity" 2>/dev/null ||
    cp "$WORK/wasm-activity" "$root/usr/local/bin/wasm-activity"
  cp "$1" "$root/etc/systemd/system/wasm-activity.service"
  local rc=0
  systemd-analyze verify --root="$root" wasm-activity.service >"$WORK/verify.txt" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] && [ ! -s "$WORK/verify.txt" ]
}
if ! verify deploy/wasm-activity.service; then
  echo "error: systemd-analyze verify:" >&2; cat "$WORK/verify.txt" >&2; exit 1
fi
sed 's/^ProtectSystem=strict/ProtectSytem=strict/' deploy/wasm-activity.service >"$WORK/typo.service"
if verify "$WORK/typo.service"; then
  echo "error: systemd-analyze verify did not notice an unknown key; the check above proves nothing" >&2; exit 1
fi
echo "ok: no warnings (a misspelt key in a copy: $(head -c 120 "$WORK/verify.txt"))"

say "IAM policies against the AWS calls in crates/*/src"
"$PY" scripts/package-check.py iam
"$PY" scripts/package-check.py iam --self-test

say "Kubernetes manifests and the systemd unit against the worker"
"$PY" scripts/package-check.py manifests
"$PY" scripts/package-check.py manifests --self-test

say "package checks passed"
