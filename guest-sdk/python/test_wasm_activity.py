"""Unit tests of the Python guest SDK in plain CPython (no component):
`python3 -m unittest discover -s guest-sdk/python`."""

import http.server
import socket
import threading
import unittest

import wasm_activity
from wasm_activity import INVALID_INPUT, INVALID_OUTPUT, Failure, HttpError, InvalidInput, call


class CallTest(unittest.TestCase):
    def test_output_is_compact_json_with_order_kept(self):
        self.assertEqual(call(lambda x: {"b": x, "a": "é"}, "1"), '{"b":1,"a":"é"}')

    def test_input_that_is_not_json_fails_before_the_handler(self):
        called = []
        with self.assertRaises(Failure) as e:
            call(lambda x: called.append(x), "{nope")
        self.assertEqual(e.exception.error, INVALID_INPUT)
        self.assertEqual(called, [])

    def test_failures_keep_their_name_and_cause(self):
        def handler(_):
            raise Failure("InvalidOrder", "no items")

        with self.assertRaises(Failure) as e:
            call(handler, "{}")
        self.assertEqual((e.exception.error, e.exception.cause), ("InvalidOrder", "no items"))

    def test_invalid_input_raised_by_the_handler(self):
        def handler(_):
            raise InvalidInput("expected an object")

        with self.assertRaises(Failure) as e:
            call(handler, "[]")
        self.assertEqual(e.exception.error, INVALID_INPUT)

    def test_other_exceptions_are_named_after_their_type(self):
        with self.assertRaises(Failure) as e:
            call(lambda x: x["missing"], "{}")
        self.assertEqual(e.exception.error, "KeyError")

    def test_unserializable_results_are_invalid_output(self):
        with self.assertRaises(Failure) as e:
            call(lambda x: {1, 2}, "{}")
        self.assertEqual(e.exception.error, INVALID_OUTPUT)
        with self.assertRaises(Failure) as e:
            call(lambda x: float("nan"), "{}")
        self.assertEqual(e.exception.error, INVALID_OUTPUT)

    def test_outside_a_component_there_is_nothing_to_export(self):
        self.assertIsNone(wasm_activity.export_handler(lambda x: x))
        self.assertFalse(wasm_activity.cancelled())


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("X-Echo-Method", self.command)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args):
        pass


class HttpNativeTest(unittest.TestCase):
    """Outside a component, http_request goes through urllib, so handlers
    that call HTTP services can be unit-tested natively."""

    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def test_post_sends_the_body_and_reads_the_response(self):
        r = wasm_activity.http_request("POST", f"{self.url}/echo", body='{"a": 1}')
        self.assertEqual((r.status, r.ok), (200, True))
        self.assertEqual(r.json(), {"a": 1})
        self.assertEqual(r.header("x-echo-method"), "POST")

    def test_error_statuses_are_responses(self):
        r = wasm_activity.http_get(f"{self.url}/missing")
        self.assertEqual((r.status, r.ok), (404, False))

    def test_no_server_is_an_http_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with self.assertRaises(HttpError) as e:
            wasm_activity.http_get(f"http://127.0.0.1:{port}/", timeout=5)
        self.assertEqual(e.exception.code, "ConnectionRefused")
        self.assertIn(f"127.0.0.1:{port}", str(e.exception))

    def test_a_url_that_is_not_http_is_refused_before_sending(self):
        for url in ["ftp://127.0.0.1/x", "127.0.0.1:8080/stock", "http:///path"]:
            with self.assertRaises(HttpError) as e:
                wasm_activity.http_get(url)
            self.assertEqual(e.exception.code, "HttpRequestUriInvalid", url)
            self.assertIn(url, str(e.exception))

    def test_a_component_without_wasi_http_says_how_to_build_one(self):
        # Outside a component there are no wasi:http bindings either, so the
        # component path reports what a component built for `activity` would.
        parts = wasm_activity.urllib.parse.urlsplit("http://127.0.0.1/")
        with self.assertRaises(HttpError) as e:
            wasm_activity._wasi_request("GET", "http://127.0.0.1/", parts, [], None, None)
        self.assertEqual(e.exception.code, "NoHttp")
        self.assertIn("-w activity-http", str(e.exception))


if __name__ == "__main__":
    unittest.main()
