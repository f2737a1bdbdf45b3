#!/usr/bin/env bash
# Builds the Python, JavaScript and C guests the end-to-end tests run: the
# three order-pricing examples and the adversarial scenario guest per
# language (into tests/guests/<lang>/scenario.wasm).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/guest-tools.sh
guest_tools all

examples/python/build.sh
examples/js/build.sh
examples/c/build.sh
examples/js-fetch/build.sh
examples/python-http/build.sh

"$COMPONENTIZE_PY" -d wit -w activity-http componentize scenario \
  -p tests/guests/python -p guest-sdk/python -o tests/guests/python/scenario.wasm
"$COMPONENTIZE_JS" tests/guests/js/scenario.js --wit wit -n activity -o tests/guests/js/scenario.wasm
mkdir -p tests/guests/c/build
"$CLANG" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror -D_GNU_SOURCE \
  -I guest-sdk/c -I guest-sdk/c/bindings -I guest-sdk/c/vendor/cjson \
  tests/guests/c/scenario.c guest-sdk/c/wasm_activity.c \
  guest-sdk/c/bindings/activity.c guest-sdk/c/vendor/cjson/cJSON.c \
  guest-sdk/c/bindings/activity_component_type.o \
  -Wl,--strip-all -o tests/guests/c/build/scenario.core.wasm
"$JCO" new tests/guests/c/build/scenario.core.wasm --wasi-reactor -o tests/guests/c/scenario.wasm
