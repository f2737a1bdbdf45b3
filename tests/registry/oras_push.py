"""Pushes a component with oras-py, a client independent of this project's
(oci-client + oci-wasm), in the wasm OCI artifact layout: an image manifest
whose config is `application/vnd.wasm.config.v0+json` and whose one layer is
the component, `application/wasm`.

    oras_push.py REGISTRY/REPOSITORY:TAG FILE.wasm [--user U --password P]

Prints the pushed manifest's digest.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile

import oras.client

parser = argparse.ArgumentParser()
parser.add_argument("target")
parser.add_argument("component")
parser.add_argument("--user")
parser.add_argument("--password")
args = parser.parse_args()

with open(args.component, "rb") as f:
    digest = "sha256:" + hashlib.sha256(f.read()).hexdigest()
config = {
    "created": "2026-01-01T00:00:00Z",
    "architecture": "wasm",
    "os": "wasip2",
    "layerDigests": [digest],
    "component": {"exports": [], "imports": []},
}
with tempfile.TemporaryDirectory() as tmp:
    config_path = os.path.join(tmp, "config.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    # oras-py names layers by path relative to the working directory.
    os.chdir(os.path.dirname(os.path.abspath(args.component)))
    client = oras.client.OrasClient(hostname=args.target.split("/")[0], insecure=True, auth_backend="basic")
    if args.user:
        client.login(username=args.user, password=args.password, insecure=True)
    response = client.push(
        target=args.target,
        files=[os.path.basename(args.component) + ":application/wasm"],
        manifest_config=config_path + ":application/vnd.wasm.config.v0+json",
        disable_path_validation=True,
        quiet=True,
    )
    if response.status_code not in (200, 201):
        sys.exit(f"push failed: HTTP {response.status_code}: {response.text}")
    print(response.headers.get("Docker-Content-Digest", ""))
