#!/usr/bin/env bash
# Builds {{name}}.wasm:
#   pip install componentize-py==0.25.1
#   componentize-py -d wit -w activity-http componentize app -p . -o {{name}}.wasm
# (`activity-http` is the handler contract plus wasi:http, which the SDK's
# http_request uses; with `-w activity` the component makes no HTTP requests.)
# Set COMPONENTIZE_PY to use a componentize-py that is not on PATH.
set -euo pipefail
cd "$(dirname "$0")"
COMPONENTIZE_PY="${COMPONENTIZE_PY:-componentize-py}"
command -v "$COMPONENTIZE_PY" >/dev/null || {
  echo "error: componentize-py not found; install it with: pip install componentize-py==0.25.1" >&2
  exit 1
}
"$COMPONENTIZE_PY" -d wit -w activity-http componentize app -p . -o {{name}}.wasm
