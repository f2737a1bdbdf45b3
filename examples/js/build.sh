#!/usr/bin/env bash
# Builds examples/js/order_pricing.wasm. The exact commands:
#
#   npm install @bytecodealliance/componentize-js@0.23.0
#   componentize-js examples/js/app.js --wit wit -n activity -o examples/js/order_pricing.wasm
#
# (run from the repository root). This script installs componentize-js into a
# cache first unless COMPONENTIZE_JS names one. `fetch` stays available: the
# host offers wasi:http to activities granted `http` origins.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/guest-tools.sh
guest_tools js
"$COMPONENTIZE_JS" examples/js/app.js --wit wit -n activity -o examples/js/order_pricing.wasm
