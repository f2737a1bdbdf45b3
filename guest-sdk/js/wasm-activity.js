// Write wasm-activity handlers in JavaScript.
//
// A handler is a plain function from the task input (parsed JSON) to a
// JSON-serializable result (or a Promise of one). `exportHandler` turns it
// into the `handler` export componentize-js looks for in your entry module,
// so the handler never sees the WIT bindings:
//
//   import { exportHandler, Failure, InvalidInput, log } from './wasm-activity.js';
//
//   function price(order) {
//     if (typeof order !== 'object' || order === null) throw new InvalidInput('expected an object');
//     if (!order.items?.length) throw new Failure('InvalidOrder', 'the order has no items');
//     log('info', 'order accepted');
//     return { accepted: true };
//   }
//
//   export const handler = exportHandler(price);
//
// Build (componentize-js 0.23.0, from npm):
//
//   componentize-js app.js --wit wit -n activity -o handler.wasm
//
// Failures, the same as the Rust SDK:
// * Input that is not valid JSON fails the task with `InvalidInput` and the
//   parse error as the cause; the handler is not called. Throw
//   `new InvalidInput(cause)` when the JSON does not have the shape you need.
// * `throw new Failure(error, cause)` reports a handled failure.
// * Any other thrown value is reported as a failure named after its
//   constructor (`TypeError`, say) with its message as the cause.
// * A result that cannot be serialized to JSON fails with `InvalidOutput`.
//
// `fetch()` works for origins the activity's config allows
// (`[activity.X.capabilities] http = [...]`); anything else is refused by the
// host. Handlers may be async: return a Promise or use an async function.

import * as host from 'wasm-activity:handler/host@0.1.0';

/** The error name reported when the task input is not valid JSON (or not the shape the handler needs). */
export const INVALID_INPUT = 'InvalidInput';
/** The error name reported when the handler's result is not JSON-serializable. */
export const INVALID_OUTPUT = 'InvalidOutput';

/**
 * A handled failure: the task fails with `error` as its error name and
 * `cause` as the detail. On Step Functions `error` is what `Retry` and
 * `Catch` match on: keep it short and stable, not starting with `States.`.
 */
export class Failure extends Error {
  constructor(error, cause) {
    super(`${error}: ${cause}`);
    this.name = 'Failure';
    this.error = String(error);
    this.cause = String(cause);
  }
}

/** The task input does not have the shape the handler needs. */
export class InvalidInput extends Failure {
  constructor(cause) {
    super(INVALID_INPUT, cause);
    this.name = 'InvalidInput';
  }
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error']);

/**
 * Writes one line to the host's log, tagged with the activity and task.
 * `level` is one of 'trace', 'debug', 'info', 'warn', 'error'. Lines count
 * against the task's log budget. `console.log` also reaches the host log.
 */
export function log(level, message) {
  host.log(LEVELS.has(level) ? level : 'info', String(message));
}

/**
 * Records the latest progress report (sent with SWF heartbeats as the
 * details, at most 2,048 characters; logged at debug level on Step Functions).
 */
export function progress(details) {
  host.progress(String(details));
}

/** True once the task should stop (cancelled, timed out, or host shutdown). */
export function cancelled() {
  return host.cancelled();
}

// componentize-js turns a thrown `{error, cause}` into the `err` case.
function failure(error, cause) {
  return { error: String(error), cause: String(cause) };
}

function asFailure(e) {
  if (e instanceof Failure) return failure(e.error, e.cause);
  if (e instanceof Error) return failure(e.constructor?.name || 'Error', e.message);
  return failure('Error', typeof e === 'string' ? e : JSON.stringify(e));
}

async function run(func, input) {
  let value;
  try {
    value = JSON.parse(input);
  } catch (e) {
    throw failure(INVALID_INPUT, `the task input is not JSON: ${e.message}`);
  }
  let result;
  try {
    result = await func(value);
  } catch (e) {
    throw asFailure(e);
  }
  let text;
  try {
    text = JSON.stringify(result);
  } catch (e) {
    throw failure(INVALID_OUTPUT, `the handler's result is not JSON-serializable: ${e.message}`);
  }
  if (text === undefined) {
    throw failure(INVALID_OUTPUT, `the handler returned ${typeof result}, which has no JSON form`);
  }
  return text;
}

/**
 * The `handler` export for `func`: `export const handler = exportHandler(func);`
 */
export function exportHandler(func) {
  return { handle: (input) => run(func, input) };
}
