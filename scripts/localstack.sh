#!/usr/bin/env bash
# Installs (once, cached outside the clone) and starts/stops LocalStack's
# Step Functions on 127.0.0.1 for the end-to-end tests.
#
#   scripts/localstack.sh install   # venv with pinned packages (~2-3 min the first time)
#   scripts/localstack.sh start     # starts it and waits until Step Functions is running
#   scripts/localstack.sh stop
#
# LocalStack needs Python 3.13 (on 3.11/3.12 it starts but serves nothing);
# the pins below are the ones it needs to start. See ../shared/notes in the
# workspace or ARCHITECTURE.md for what it does and does not implement.
set -euo pipefail

CACHE="${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}"
VENV="$CACHE/localstack-venv"
PORT="${LOCALSTACK_PORT:-4566}"
PIDFILE="$CACHE/localstack.pid"
LOG="$CACHE/localstack.log"
PINS=('localstack-core[runtime]==2026.3.0' 'cbor2<6' 'pyopenssl==25.3.0' 'cryptography<47' service_identity boto3)
STAMP="$VENV/.installed-$(printf '%s ' "${PINS[@]}" | sha256sum | cut -c1-16)"

find_python() {
  for py in "${PYTHON313:-}" "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/3.13.0/bin/python" \
            "$(command -v python3.13 || true)"; do
    if [ -n "$py" ] && "$py" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      echo "$py"; return
    fi
  done
  if command -v pyenv >/dev/null; then
    echo "installing Python 3.13 with pyenv" >&2
    pyenv install -s 3.13.0 >&2
    echo "$(pyenv root)/versions/3.13.0/bin/python"; return
  fi
  echo "error: LocalStack needs Python 3.13; install it (pyenv install 3.13.0) or set PYTHON313" >&2
  exit 1
}

install() {
  if [ -f "$STAMP" ]; then return; fi
  mkdir -p "$CACHE"
  local py; py="$(find_python)"
  echo "installing LocalStack into $VENV (a few minutes, once)" >&2
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
  touch "$STAMP"
}

healthy() {
  curl -fsS "http://127.0.0.1:$PORT/_localstack/health" 2>/dev/null | grep -q '"stepfunctions": "\(running\|available\)"'
}

start() {
  install
  if healthy; then echo "LocalStack already running on 127.0.0.1:$PORT" >&2; return; fi
  mkdir -p "$CACHE"
  GATEWAY_LISTEN="127.0.0.1:$PORT" GATEWAY_SERVER=hypercorn DNS_ADDRESS=0 SERVICES=stepfunctions,swf,s3 \
    EAGER_SERVICE_LOADING=1 LOCALSTACK_TELEMETRY_DISABLED=1 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
    nohup "$VENV/bin/python" -m localstack.runtime.main >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 120); do
    if healthy; then echo "LocalStack ready on 127.0.0.1:$PORT" >&2; return; fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "error: LocalStack exited during start; its log ($LOG) ends:" >&2; tail -30 "$LOG" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "error: LocalStack did not become ready within 60 s; its log ($LOG) ends:" >&2; tail -30 "$LOG" >&2
  exit 1
}

stop() {
  [ -f "$PIDFILE" ] || return 0
  local pid; pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  # Its SIGTERM shutdown sometimes hangs: give it 10 s, then kill.
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
