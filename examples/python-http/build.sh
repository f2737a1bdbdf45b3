#!/usr/bin/env bash
# Builds examples/python-http/stock_check.wasm. The exact commands:
#
#   pip install componentize-py==0.25.1
#   componentize-py -d wit -w activity-http componentize app \
#       -p examples/python-http -p guest-sdk/python -o examples/python-http/stock_check.wasm
#
# (run from the repository root). This script installs componentize-py into a
# cache first unless COMPONENTIZE_PY names one.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/guest-tools.sh
guest_tools python
"$COMPONENTIZE_PY" -d wit -w activity-http componentize app \
  -p examples/python-http -p guest-sdk/python -o examples/python-http/stock_check.wasm
