"""Unit tests of the Python guest SDK in plain CPython (no component):
`python3 -m unittest discover -s guest-sdk/python`."""

import unittest

import wasm_activity
from wasm_activity import INVALID_INPUT, INVALID_OUTPUT, Failure, InvalidInput, call


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


if __name__ == "__main__":
    unittest.main()
