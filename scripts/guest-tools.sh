#!/usr/bin/env bash
# Installs (once, cached outside the clone) the toolchains that build Python,
# JavaScript and C guest components, at pinned versions:
#
#   scripts/guest-tools.sh install   # all of them (~1 min the first time)
#   scripts/guest-tools.sh env       # prints `export ...` lines for the tools
#
# Build scripts source this file: it then sets COMPONENTIZE_PY,
# COMPONENTIZE_JS, JCO and CLANG (installing what is missing) unless they are
# already set, so a user's own installs win.
#
# Versions: componentize-py 0.25.1 (PyPI), componentize-js 0.23.0 and
# jco 1.35.0 (npm; jco wraps C core modules into components), Debian's clang
# with wasi-libc for C. Rust guests need only `rustup target add wasm32-wasip2`.
set -euo pipefail

GUEST_TOOLS_CACHE="${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}/guest-tools"
GUEST_TOOLS_PY_PIN="componentize-py==0.25.1"
GUEST_TOOLS_NPM_PINS=("@bytecodealliance/componentize-js@0.23.0")
# jco has a directory of its own, laid out as the C projects `new` creates
# expect it (and componentize-py's venv as the Python ones do), so the
# projects made by `wasm-activity new` find them: they use this root by default.
GUEST_TOOLS_JCO_PIN="1.35.0"

guest_tools_python() {
  for py in "${PYTHON3:-}" python3.13 python3.12 python3.11 python3; do
    if [ -n "$py" ] && command -v "$py" >/dev/null && "$py" -c 'import venv, ensurepip' 2>/dev/null; then
      command -v "$py"; return
    fi
  done
  echo "error: building Python guests needs python3 with venv (apt-get install python3-venv)" >&2
  return 1
}

guest_tools_install_python() {
  local venv="$GUEST_TOOLS_CACHE/python"
  local stamp="$venv/.installed-$GUEST_TOOLS_PY_PIN"
  [ -f "$stamp" ] && return
  echo "installing $GUEST_TOOLS_PY_PIN into $venv" >&2
  rm -rf "$venv"
  "$(guest_tools_python)" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$GUEST_TOOLS_PY_PIN"
  touch "$stamp"
}

guest_tools_install_node() {
  local dir="$GUEST_TOOLS_CACHE/node"
  local stamp; stamp="$dir/.installed-$(printf '%s ' "${GUEST_TOOLS_NPM_PINS[@]}" | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && return
    if ! command -v npm >/dev/null; then
    echo "installing node and npm from Debian" >&2
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
  fi
  echo "installing ${GUEST_TOOLS_NPM_PINS[*]} into $dir" >&2
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && echo '{"private":true}' >package.json &&
    npm install -s --no-audit --no-fund "${GUEST_TOOLS_NPM_PINS[@]}" >&2)
  touch "$stamp"
}

guest_tools_install_jco() {
  local dir="$GUEST_TOOLS_CACHE/jco"
  [ -f "$dir/.installed-jco-$GUEST_TOOLS_JCO_PIN" ] && return
  command -v npm >/dev/null || guest_tools_install_node
  echo "installing @bytecodealliance/jco@$GUEST_TOOLS_JCO_PIN into $dir" >&2
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && echo '{"private":true}' >package.json &&
    npm install -s --no-audit --no-fund "@bytecodealliance/jco@$GUEST_TOOLS_JCO_PIN" >&2)
  touch "$dir/.installed-jco-$GUEST_TOOLS_JCO_PIN"
}

guest_tools_install_clang() {
  if command -v clang >/dev/null && [ -f /usr/lib/wasm32-wasi/libc.a ] && command -v wasm-ld >/dev/null &&
    ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
    return
  fi
  echo "installing clang, lld and wasi-libc from Debian" >&2
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang lld libclang-rt-dev-wasm32 wasi-libc >/dev/null
}

guest_tools_export() {
  : "${COMPONENTIZE_PY:=$GUEST_TOOLS_CACHE/python/bin/componentize-py}"
  : "${COMPONENTIZE_JS:=$GUEST_TOOLS_CACHE/node/node_modules/.bin/componentize-js}"
  : "${JCO:=$GUEST_TOOLS_CACHE/jco/node_modules/.bin/jco}"
  : "${CLANG:=clang}"
  export COMPONENTIZE_PY COMPONENTIZE_JS JCO CLANG
}

# Installs what `want` (python, js, c or all) needs unless the user set the
# tool variables, then exports them.
guest_tools() {
  local want="${1:-all}"
  case "$want" in python | all) [ -n "${COMPONENTIZE_PY:-}" ] || guest_tools_install_python ;; esac
  case "$want" in js | all) [ -n "${COMPONENTIZE_JS:-}" ] || guest_tools_install_node ;; esac
  case "$want" in c | all) [ -n "${JCO:-}" ] || guest_tools_install_jco; guest_tools_install_clang ;; esac
  guest_tools_export
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    install) guest_tools all; echo "guest tools ready in $GUEST_TOOLS_CACHE" >&2 ;;
    env) guest_tools all; for v in COMPONENTIZE_PY COMPONENTIZE_JS JCO CLANG; do printf 'export %s=%q\n' "$v" "${!v}"; done ;;
    *) echo "usage: $0 install|env" >&2; exit 2 ;;
  esac
fi
