"""Write wasm-activity handlers in Python.

A handler is a plain function from the task input (parsed JSON: dict, list,
str, int, float, bool or None) to a JSON-serializable result.
`export_handler` turns it into the `Handler` class componentize-py looks for
in your app module, so the handler never sees the generated WIT bindings::

    import wasm_activity
    from wasm_activity import Failure, InvalidInput, log, Level

    def price(order):
        if not isinstance(order, dict):
            raise InvalidInput("expected an object")
        if not order.get("items"):
            raise Failure("InvalidOrder", "the order has no items")
        log(Level.INFO, "order accepted")
        return {"accepted": True}

    Handler = wasm_activity.export_handler(price)

Build (componentize-py 0.25.1, from PyPI)::

    componentize-py -d wit -w activity componentize app \\
        -p . -p guest-sdk/python -o handler.wasm

Failures, the same as the Rust SDK:

* Input that is not valid JSON fails the task with `InvalidInput` and the
  parse error as the cause; the handler is not called. Raise
  `InvalidInput(cause)` yourself when the JSON does not have the shape you
  need.
* `raise Failure(error, cause)` reports a handled failure.
* Any other exception is reported as a failure named after the exception
  type (`KeyError`, say) with its message as the cause, so a bug in a handler
  still produces a readable error instead of a trap.
* A result that cannot be serialized to JSON fails with `InvalidOutput`.
"""

import json
import sys
from enum import Enum

try:
    from componentize_py_types import Err
    from wit_world import exports
    from wit_world.exports import handler as _handler
    from wit_world.imports import host as _host
except ImportError:
    # Plain CPython (a handler's unit tests, `call`): no component, no host.
    # log() writes to stderr, progress() does nothing, cancelled() is False.
    exports = _handler = _host = None

__all__ = [
    "INVALID_INPUT",
    "INVALID_OUTPUT",
    "Failure",
    "InvalidInput",
    "Level",
        "call",
    "cancelled",
    "export_handler",
    "log",
    "progress",
]

#: The error name reported when the task input is not valid JSON (or not the
#: shape the handler needs).
INVALID_INPUT = "InvalidInput"
#: The error name reported when the handler's result is not JSON-serializable.
INVALID_OUTPUT = "InvalidOutput"


class Failure(Exception):
    """A handled failure: the task fails with `error` as its error name and
    `cause` as the detail.

    On Step Functions `error` is what a state machine's `Retry` and `Catch`
    match on; keep it short and stable (at most 256 characters, not starting
    with `States.`). On SWF the pair becomes `reason` and `details`.
    """

    def __init__(self, error, cause):
        super().__init__(f"{error}: {cause}")
        self.error = str(error)
        self.cause = str(cause)


class InvalidInput(Failure):
    """The task input does not have the shape the handler needs."""

    def __init__(self, cause):
        super().__init__(INVALID_INPUT, cause)


class Level(Enum):
    """Severity of a log line sent to the host with `log`."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


def log(level, message):
    """Writes one line to the host's log, tagged with the activity and task.

    Lines count against the task's log budget; past it the host drops them.
    `print()` also reaches the host log (as stdout lines, at info level).
    """
    if _host is None:
        print(f"{level.name}: {message}", file=sys.stderr)
    else:
        _host.log(_host.LogLevel(level.value), str(message))


def progress(details):
    """Records the latest progress report (sent with SWF heartbeats as the
    details, at most 2,048 characters; logged at debug level on Step
    Functions)."""
    if _host is not None:
        _host.progress(str(details))


def cancelled():
    """True once the task should stop: cancelled by the service, timed out,
    or the host is shutting down. Check it between steps of long work."""
    return _host is not None and _host.cancelled()


def _to_json(value):
    # Compact, like the Rust SDK's serde_json output; non-ASCII kept as is.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def call(func, text):
    """Runs `func` on a JSON input exactly as the component would: parse
    (failing with `InvalidInput`), call, serialize. Returns the output JSON
    text or raises `Failure`. Works in plain CPython too, for a handler's
    unit tests."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"the task input is not JSON: {e}") from None
    try:
        result = func(value)
    except Failure:
        raise
    except Exception as e:  # a bug in the handler: report it, do not trap
        raise Failure(type(e).__name__, str(e) or repr(e)) from e
    try:
        return _to_json(result)
    except (TypeError, ValueError) as e:
        raise Failure(INVALID_OUTPUT, f"the handler's result is not JSON-serializable: {e}") from None


def _run(func, text):
    try:
        return call(func, text)
    except Failure as f:
        raise Err(_handler.Failure(error=f.error, cause=f.cause)) from None


def export_handler(func):
    """Returns the `Handler` class for `func`; bind it in your app module as
    `Handler = wasm_activity.export_handler(func)`. In plain CPython it
    returns None (there is nothing to export to)."""
    if exports is None:
        return None

    class Handler(exports.Handler):
        def handle(self, input):
            return _run(func, input)

    Handler.__doc__ = f"Runs {getattr(func, '__name__', 'the handler')} for each task."
    return Handler
