#!/usr/bin/env bash
# Builds examples/python/order_pricing.wasm. The exact commands:
#
#   pip install componentize-py==0.25.1
#   componentize-py -d wit -w activity componentize app \
#       -p examples/python -p guest-sdk/python -o examples/python/order_pricing.wasm
#
# (run from the repository root). This script installs componentize-py into a
# cache first unless COMPONENTIZE_PY names one.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/guest-tools.sh
guest_tools python
"$COMPONENTIZE_PY" -d wit -w activity componentize app \
  -p examples/python -p guest-sdk/python -o examples/python/order_pricing.wasm
