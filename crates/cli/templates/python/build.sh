#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py 0.25.1:
#   componentize-py -d wit -w activity-http componentize app -p . -o {{name}}.wasm
# (`activity-http` is the handler contract plus wasi:http, which the SDK's
# http_request uses; with `-w activity` the component makes no HTTP requests.)
# componentize-py is installed on first use into a virtualenv under
# ${WASM_ACTIVITY_CACHE:-~/.cache/wasm-activity-dev}/guest-tools (needs python3
# with venv); set COMPONENTIZE_PY to use your own instead.
set -euo pipefail
cd "$(dirname "$0")"
PIN="componentize-py==0.25.1"
if [ -z "${COMPONENTIZE_PY:-}" ]; then
  venv="${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}/guest-tools/python"
  if [ ! -f "$venv/.installed-$PIN" ]; then
    python3 -c 'import venv, ensurepip' 2>/dev/null || {
      echo "error: building needs python3 with venv (apt-get install python3-venv)" >&2
      exit 1
    }
    echo "installing $PIN into $venv (once)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$PIN"
    touch "$venv/.installed-$PIN"
  fi
  COMPONENTIZE_PY="$venv/bin/componentize-py"
fi
"$COMPONENTIZE_PY" -d wit -w activity-http componentize app -p . -o {{name}}.wasm
