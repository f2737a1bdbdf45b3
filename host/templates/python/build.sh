#!/usr/bin/env bash
# Builds {{name}}.wasm:
#   pip install componentize-py==0.25.1
#   componentize-py -d wit -w activity componentize app -p . -o {{name}}.wasm
# Set COMPONENTIZE_PY to use a componentize-py that is not on PATH.
set -euo pipefail
cd "$(dirname "$0")"
COMPONENTIZE_PY="${COMPONENTIZE_PY:-componentize-py}"
command -v "$COMPONENTIZE_PY" >/dev/null || {
  echo "error: componentize-py not found; install it with: pip install componentize-py==0.25.1" >&2
  exit 1
}
"$COMPONENTIZE_PY" -d wit -w activity componentize app -p . -o {{name}}.wasm
