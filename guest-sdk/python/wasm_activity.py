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

Outbound HTTP: `http_request(method, url, ...)` and `http_get(url)` send a
request through `wasi:http` and return a `Response`. Build the component for
the `activity-http` world (`-w activity-http` instead of `-w activity`) so it
imports `wasi:http`, and list the origin under `[activity.NAME.http] allow`
in the worker config: the host refuses every other origin before a
connection is made, and the call raises `HttpError("HttpRequestDenied", ...)`.
In plain CPython the same functions use `urllib`, so handlers that call HTTP
services stay unit-testable.
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
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

try:
    # Only in components built for the `activity-http` world. Imported here,
    # not in http_request: a component can import modules only while
    # componentize-py snapshots it at build time.
    from wit_world.imports import outgoing_handler as _http
    from wit_world.imports import types as _http_types
    from wit_world.imports.streams import StreamError_Closed as _StreamClosed
except ImportError:
    _http = _http_types = _StreamClosed = None

__all__ = [
    "INVALID_INPUT",
    "INVALID_OUTPUT",
    "Failure",
    "HttpError",
    "InvalidInput",
    "Level",
    "Response",
    "call",
    "cancelled",
    "export_handler",
    "http_get",
    "http_request",
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


class HttpError(Exception):
    """An HTTP request that got no response: refused by the host
    (`HttpRequestDenied`: the origin is not allow-listed), connection
    refused, timed out, a malformed URL or header, ...

    `code` is the `wasi:http` error-code name (`ConnectionRefused`, say), or
    `NoHttp` when the component was built without the `activity-http` world.
    An unhandled `HttpError` fails the task with `HttpError` as the error name
    and this message as the cause; catch it to report your own failure.
    """

    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Response:
    """An HTTP response, read completely: `status` (int), `headers` (list of
    `(name, value)` string pairs, names lower-case), `body` (bytes)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self):
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def header(self, name):
        """The first value of header `name` (case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def text(self):
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        """The body parsed as JSON; raises `ValueError` if it is not."""
        return json.loads(self.body)


def http_get(url, headers=None, timeout=None):
    """`http_request("GET", url, ...)`."""
    return http_request("GET", url, headers=headers, timeout=timeout)


def http_request(method, url, headers=None, body=None, timeout=None):
    """Sends one HTTP request and returns the whole `Response`.

    `headers` is a dict or a list of `(name, value)` pairs; `body` is bytes
    or str (sent as UTF-8); `timeout` (seconds) bounds connecting and each
    wait for response bytes. Any status, 4xx and 5xx included, is a
    `Response`; `HttpError` means there was none. The task's own timeout
    still applies to the whole call.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError("HttpRequestUriInvalid", f"{method} {url}: expected an http:// or https:// URL")
    if isinstance(body, str):
        body = body.encode("utf-8")
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if body and not any(str(k).lower() == "content-length" for k, _ in pairs):
        pairs.append(("content-length", str(len(body))))
    if _host is None:
        return _urllib_request(method, url, pairs, body, timeout)
    return _wasi_request(method, url, parts, pairs, body, timeout)


def _urllib_request(method, url, pairs, body, timeout):
    request = urllib.request.Request(url, data=body, method=method, headers=dict(pairs))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Response(r.status, _lower(r.getheaders()), r.read())
    except urllib.error.HTTPError as e:  # a response with a 4xx/5xx status
        return Response(e.code, _lower(e.headers.items()), e.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        # ConnectionRefusedError -> ConnectionRefused, like the wasi:http names.
        code = type(getattr(e, "reason", e)).__name__.removesuffix("Error")
        raise HttpError(code, f"{method} {url}: {e}") from None


def _lower(headers):
    return [(k.lower(), v) for k, v in headers]


_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_CHUNK = 64 * 1024


def _wasi_request(method, url, parts, pairs, body, timeout):
    if _http is None:
        raise HttpError(
            "NoHttp",
            "this component has no wasi:http import; build it with "
            "`componentize-py -d wit -w activity-http ...` (not `-w activity`)",
        )
    types = _http_types

    def fail(what, err):
        value = getattr(err, "value", err)
        code = type(value).__name__.split("_", 1)[-1]
        detail = getattr(value, "value", None)
        if hasattr(detail, "to_debug_string"):  # a wasi:io error resource
            detail = detail.to_debug_string()
        suffix = f" ({detail})" if detail is not None else ""
        return HttpError(code, f"{method} {url}: {what}{suffix}")

    upper = method.upper()
    wasi_method = (
        getattr(types, "Method_" + upper.capitalize())()
        if upper in _METHODS
        else types.Method_Other(method)
    )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query

    try:
        fields = types.Fields.from_list([(str(k), str(v).encode("utf-8")) for k, v in pairs])
    except Err as e:
        raise fail("bad header", e) from None
    request = types.OutgoingRequest(fields)
    request.set_method(wasi_method)
    request.set_scheme(types.Scheme_Http() if parts.scheme == "http" else types.Scheme_Https())
    request.set_authority(parts.netloc)
    request.set_path_with_query(path)
    options = None
    if timeout is not None:
        nanos = int(timeout * 1e9)
        options = types.RequestOptions()
        options.set_connect_timeout(nanos)
        options.set_first_byte_timeout(nanos)
        options.set_between_bytes_timeout(nanos)
    outgoing = request.body()
    try:
        future = _http.handle(request, options)
    except Err as e:
        raise fail("refused", e) from None

    # The request is under way; stream the body (the host reads it as we
    # write), then wait for the response head.
    with outgoing.write() as stream:
        data = memoryview(body or b"")
        while data:
            try:
                permit = stream.check_write()
                if permit == 0:
                    with stream.subscribe() as ready:
                        ready.block()
                    continue
                stream.write(bytes(data[:permit]))
                data = data[permit:]
            except Err:
                break  # the connection failed; the future says why
        try:
            stream.blocking_flush()
        except Err:
            pass
    types.OutgoingBody.finish(outgoing, None)

    with future:
        while (result := future.get()) is None:
            with future.subscribe() as ready:
                ready.block()
    # The outer result is Err only for a second get() after Ok; this is the first.
    inner = result.value
    if isinstance(inner, Err):
        raise fail("no response", inner)
    with inner.value as response:
        status = response.status()
        with response.headers() as fields:
            headers = [(k.lower(), v.decode("utf-8", errors="replace")) for k, v in fields.entries()]
        incoming = response.consume()
        chunks = []
        with incoming.stream() as stream:
            while True:
                try:
                    chunks.append(stream.blocking_read(_CHUNK))
                except Err as e:
                    if isinstance(e.value, _StreamClosed):
                        break
                    raise fail("response body cut off", e) from None
        types.IncomingBody.finish(incoming).__exit__(None, None, None)
    return Response(status, headers, b"".join(chunks))


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
