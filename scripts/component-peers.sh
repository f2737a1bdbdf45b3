#!/usr/bin/env bash
# Installs what the component-source tests need beside LocalStack (which
# serves S3): the CNCF distribution registry (Debian's docker-registry; each
# test runs its own on 127.0.0.1, never the package's :5000 service), and
# oras-py with bcrypt in a venv (an OCI client independent of this
# project's, and htpasswd hashes for the registry-login test).
#
#   scripts/component-peers.sh install   # prints the venv's python
set -euo pipefail
CACHE="${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}"
VENV="$CACHE/oras-venv"
case "${1:-install}" in
  install)
    if ! command -v docker-registry >/dev/null; then
      if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-registry >/dev/null
      # The package starts a registry on all addresses: stop it.
      $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
      pkill -f '/etc/docker/registry/config.yml' >/dev/null 2>&1 || true
    fi
    docker-registry --version >&2
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import oras, bcrypt' 2>/dev/null; then
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q oras==0.2.43 bcrypt==4.3.0 >&2
    fi
    echo "$VENV/bin/python"
    ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
