#!/usr/bin/env bash
# Builds examples/js-fetch/stock_check.wasm. The exact commands:
#
#   npm install @bytecodealliance/componentize-js@0.23.0
#   componentize-js examples/js-fetch/app.js --wit wit -n activity -o examples/js-fetch/stock_check.wasm
#
# (run from the repository root). This script installs componentize-js into a
# cache first unless COMPONENTIZE_JS names one.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/guest-tools.sh
guest_tools js
"$COMPONENTIZE_JS" examples/js-fetch/app.js --wit wit -n activity -o examples/js-fetch/stock_check.wasm
