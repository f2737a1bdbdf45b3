#!/usr/bin/env bash
# Builds {{name}}.wasm:
#   npm install          # componentize-js 0.23.0, from package.json
#   npx componentize-js app.js --wit wit -n activity -o {{name}}.wasm
# Set COMPONENTIZE_JS to use a componentize-js that is not installed here.
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${COMPONENTIZE_JS:-}" ]; then
  [ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund
  COMPONENTIZE_JS=node_modules/.bin/componentize-js
fi
"$COMPONENTIZE_JS" app.js --wit wit -n activity -o {{name}}.wasm
