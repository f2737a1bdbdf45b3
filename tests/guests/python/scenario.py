"""Adversarial basics for Python guests: behaviour chosen by the input's
`action`. Built by tests/guests/build-polyglot.sh for the `activity-http`
world, so the `http` action can exercise the SDK's wasi:http client."""

import hashlib
import json
import sys
import time

import wasm_activity
from wasm_activity import Failure, Level, log


def run(task):
    action = task.get("action")
    if action == "echo":
        log(Level.INFO, "python scenario echo")
        return {"echo": task.get("value"), "language": "python"}
    if action == "sleep":
        # Holds a live instance for `ms` (the benchmarks' in-flight memory).
        time.sleep(task.get("ms", 0) / 1000)
        return {"slept_ms": task.get("ms", 0), "language": "python"}
    if action == "fail":
        raise Failure(task.get("error", "Planned"), task.get("cause", "failed on purpose"))
    if action == "spin":
        n = 0
        while True:
            n += 1
    if action == "alloc":
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))
    if action == "http":
        # Sends `size` bytes (a repeating pattern) and reports what came back.
        body = bytes(i % 251 for i in range(task.get("size", 0)))
        response = wasm_activity.http_request(
            task.get("method", "POST"),
            task["url"],
            headers={"content-type": "application/octet-stream", "x-scenario": "python"},
            body=body,
        )
        return {
            "status": response.status,
            "sent_sha256": hashlib.sha256(body).hexdigest(),
            "received_sha256": hashlib.sha256(response.body).hexdigest(),
            "received_len": len(response.body),
            "echo_method": response.header("X-Echo-Method"),
            "ok": response.ok,
        }
    if action == "say":
        # Guest text that tries to leak a secret and forge host log lines.
        text = task["text"]
        log(Level.WARN, text)
        print(text)
        print(text, file=sys.stderr)
        wasm_activity.progress(text)
        raise Failure(task.get("error", "Said"), text)
    if action == "log_loop":
        message = "y" * (task["kib"] * 1024)
        deadline = time.monotonic() + task["ms"] / 1000
        calls = 0
        while time.monotonic() < deadline:
            log(Level.INFO, message)
            calls += 1
        return {"calls": calls}
    if action == "fields_bomb":
        # Host memory outside linear memory: wasi:http header fields, kept.
        from wit_world.imports import types

        value = b"v" * 1024
        kept = []
        for _ in range(task["count"]):
            kept.append(types.Fields.from_list([(f"x-h{k}", value) for k in range(task["kib"])]))
        return {"fields": len(kept)}
    raise Failure("UnknownAction", f"no such action: {action!r}")


class Handler(wasm_activity.export_handler(run)):
    """Adds what the SDK would never do: a trap and output that is not JSON."""

    def handle(self, input):
        action = json.loads(input).get("action")
        if action == "trap":
            # Not caught by the SDK: an uncaught exception traps the instance.
            raise RuntimeError("python guest trapped on purpose")
        if action == "bad_output":
            return "<html>nope</html>"
        return super().handle(input)
