#!/usr/bin/env bash
# The main job, end to end, with no AWS account: builds the host and the
# example handler, starts LocalStack's Step Functions on 127.0.0.1, creates
# the example's activity and a state machine that uses it, runs
# `wasm-activity run --config examples/rust/worker.toml`, starts executions
# and prints their results.
#
#   scripts/demo.sh [INPUT.json ...]     (default: examples/rust/input.json and an invalid order)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "building the host (release) and the example handler (wasm32-wasip2)"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
cargo build --release -p wasm-activity
cargo build --manifest-path examples/rust/Cargo.toml --release --target wasm32-wasip2

step "starting LocalStack (installs it once, a few minutes)"
scripts/localstack.sh start

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_EC2_METADATA_DISABLED=true
PY="${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}/localstack-venv/bin/python"

step "creating the activity and a state machine"
STATE_MACHINE="$("$PY" - <<'PYEOF'
import boto3, json
sfn = boto3.client("stepfunctions")
arn = sfn.create_activity(name="price-order")["activityArn"]   # idempotent
definition = {"StartAt": "Price", "States": {"Price": {
    "Type": "Task", "Resource": arn, "TimeoutSeconds": 60, "HeartbeatSeconds": 30, "End": True}}}
machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
sm = machines.get("price-order-demo") or sfn.create_state_machine(
    name="price-order-demo", roleArn="arn:aws:iam::000000000000:role/demo",
    definition=json.dumps(definition))["stateMachineArn"]
print(sm)
PYEOF
)"

step "running the worker: target/release/wasm-activity run --config examples/rust/worker.toml"
target/release/wasm-activity run --config examples/rust/worker.toml &
WORKER=$!
# A first SIGTERM drains: no new polls, but polls in flight may take up to
# 60 s to come back empty. The demo hands out no more tasks, so it sends the
# second signal (exit at once) after a moment instead of waiting.
cleanup() {
  kill -TERM "$WORKER" 2>/dev/null || true; sleep 1; kill -TERM "$WORKER" 2>/dev/null || true
  wait "$WORKER" 2>/dev/null || true; scripts/localstack.sh stop
}
trap cleanup EXIT

inputs=("$@")
if [ ${#inputs[@]} -eq 0 ]; then
  inputs=(examples/rust/input.json)
  bad="$(mktemp)"; echo '{"order_id":"B-2","currency":"usd","customer":{"tier":"standard"},"items":[]}' >"$bad"
  inputs+=("$bad")
fi

step "starting executions and waiting for their results"
"$PY" - "$STATE_MACHINE" "${inputs[@]}" <<'PYEOF'
import boto3, json, sys, time
sfn = boto3.client("stepfunctions")
sm, files = sys.argv[1], sys.argv[2:]
runs = [(f, sfn.start_execution(stateMachineArn=sm, input=open(f).read())["executionArn"]) for f in files]
for f, arn in runs:
    deadline = time.time() + 120
    while True:
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] != "RUNNING" or time.time() > deadline:
            break
        time.sleep(0.5)
    print(f"\n{f}: {d['status']}")
    if d["status"] == "SUCCEEDED":
        print(json.dumps(json.loads(d["output"]), indent=2))
    else:
        print(f"  error: {d.get('error')}\n  cause: {d.get('cause')}")
PYEOF
