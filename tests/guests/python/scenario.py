"""Adversarial basics for Python guests: behaviour chosen by the input's
`action`. Built by tests/guests/build-polyglot.sh."""

import json

import wasm_activity
from wasm_activity import Failure, Level, log


def run(task):
    action = task.get("action")
    if action == "echo":
        log(Level.INFO, "python scenario echo")
        return {"echo": task.get("value"), "language": "python"}
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
