//! Write AWS Step Functions and SWF activity handlers as WebAssembly
//! components for the `wasm-activity` host.
//!
//! A handler is a plain function from a deserializable input to a
//! serializable output. [`export_handler!`] turns it into the component export
//! the host calls, so the handler never sees the generated WIT bindings:
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use wasm_activity_guest::Failure;
//!
//! #[derive(Deserialize)]
//! struct Order { id: String, quantity: u32 }
//!
//! #[derive(Serialize)]
//! struct Receipt { id: String, accepted: bool }
//!
//! fn handle(order: Order) -> Result<Receipt, Failure> {
//!     if order.quantity == 0 {
//!         return Err(Failure::new("EmptyOrder", format!("order {} has no items", order.id)));
//!     }
//!     wasm_activity_guest::log(wasm_activity_guest::Level::Info, "order accepted");
//!     Ok(Receipt { id: order.id, accepted: true })
//! }
//!
//! wasm_activity_guest::export_handler!(handle);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the resulting
//! `.wasm` file is a component the host can load directly.
//!
//! # Failures
//!
//! * Input that is not valid JSON for the handler's input type fails the task
//!   with the error name [`INVALID_INPUT`] and the parse error as the cause;
//!   the handler is not called.
//! * An `Err(e)` is reported with `e`'s error name and cause (see [`Failure`]).
//! * A panic traps the instance; the host reports `WasmActivity.Trap` with the
//!   panic message, which it reads from the guest's stderr.
#![deny(missing_docs)]

// The generated bindings name the runtime through this crate, so handler
// crates do not need their own `wit-bindgen` dependency.
extern crate self as wasm_activity_guest;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "activity",
        pub_export_macro: true,
        export_macro_name: "__export_activity_world",
        default_bindings_module: "wasm_activity_guest::wit",
        runtime_path: "wasm_activity_guest::__private::wit_bindgen::rt",
    });
}

use wit::wasm_activity::handler::host;

/// The error name reported when the task input is not valid JSON for the
/// handler's input type.
pub const INVALID_INPUT: &str = "InvalidInput";

/// The error name reported when the handler's output cannot be serialized.
pub const INVALID_OUTPUT: &str = "InvalidOutput";

/// A handled failure: the task fails with `error` as its error name and
/// `cause` as the detail.
///
/// On Step Functions, `error` is what a state machine's `Retry` and `Catch`
/// match on; keep it short and stable (at most 256 characters, not starting
/// with `States.`). On SWF the pair becomes `reason` and `details`.
///
/// Any [`std::error::Error`] converts into a `Failure` named after its type
/// (`ParseIntError`, say) with its message and sources as the cause, so `?`
/// works on ordinary errors. Return a `Failure` directly to choose the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Short, stable error name, for example `InvalidOrder`.
    pub error: String,
    /// What went wrong, for a person reading the execution history.
    pub cause: String,
}

impl Failure {
    /// A failure with the given error name and cause.
    pub fn new(error: impl Into<String>, cause: impl fmt::Display) -> Self {
        Failure {
            error: error.into(),
            cause: cause.to_string(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(err: E) -> Self {
        let full = std::any::type_name::<E>();
        // `core::num::error::ParseIntError` -> `ParseIntError`; generic
        // parameters are dropped so the name stays matchable.
        let base = full.split('<').next().unwrap_or(full);
        let name = base.rsplit("::").next().unwrap_or(base);
        let mut cause = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            cause.push_str(": ");
            cause.push_str(&s.to_string());
            source = s.source();
        }
        Failure {
            error: name.to_string(),
            cause,
        }
    }
}

/// Severity of a log line sent to the host with [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the handler recovered from.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one line to the host's log, tagged with the activity and task.
///
/// Lines count against the task's log budget; past it the host drops them.
///
/// Outside WebAssembly (a handler's native unit tests, [`call`]) there is no
/// host: the line goes to stderr.
pub fn log(level: Level, message: &str) {
    if cfg!(not(target_arch = "wasm32")) {
        eprintln!("{level:?}: {message}");
        return;
    }
    let level = match level {
        Level::Trace => host::LogLevel::Trace,
        Level::Debug => host::LogLevel::Debug,
        Level::Info => host::LogLevel::Info,
        Level::Warn => host::LogLevel::Warn,
        Level::Error => host::LogLevel::Error,
    };
    host::log(level, message);
}

/// Records progress; the host sends the latest value with its next heartbeat
/// where the service carries heartbeat details (SWF).
///
/// ```no_run
/// wasm_activity_guest::progress("42 of 100 rows");
/// ```
pub fn progress(details: &str) {
    // Natively there is no host and no heartbeat to carry it.
    if cfg!(target_arch = "wasm32") {
        host::progress(details);
    }
}

/// True once the task should stop (cancelled, timed out on the service side,
/// or the host is shutting down). Long-running handlers should check it
/// between steps and return early; the host stops handlers that do not.
///
/// ```no_run
/// for step in 0..100 {
///     if wasm_activity_guest::cancelled() {
///         break;
///     }
///     // ... do step ...
/// }
/// ```
pub fn cancelled() -> bool {
    // Natively nothing cancels a call.
    cfg!(target_arch = "wasm32") && host::cancelled()
}

/// Runs `handler` on a JSON input exactly as the exported component would:
/// parse (failing with [`INVALID_INPUT`]), call, serialize. Use it to test a
/// handler natively (`cargo test`), or to run the same handler code outside
/// WebAssembly; `log` then writes to stderr, `progress` does nothing and
/// `cancelled` is false.
///
/// ```
/// use wasm_activity_guest::Failure;
/// fn double(n: u32) -> Result<u32, Failure> { Ok(n * 2) }
/// assert_eq!(wasm_activity_guest::call(double, "21").unwrap(), "42");
/// assert_eq!(wasm_activity_guest::call(double, "\"x\"").unwrap_err().error, "InvalidInput");
/// ```
pub fn call<T, U, E>(handler: fn(T) -> Result<U, E>, input: &str) -> Result<String, Failure>
where
    T: DeserializeOwned,
    U: Serialize,
    E: Into<Failure>,
{
    __private::dispatch(input, handler)
}

/// Turns a handler function into the component's export.
///
/// The function takes any [`serde::de::DeserializeOwned`] input and returns
/// `Result<U, E>` where `U: Serialize` and `E: Into<Failure>`. Invoke the
/// macro once, at the crate root of a `cdylib` or binary built for
/// `wasm32-wasip2`.
#[macro_export]
macro_rules! export_handler {
    ($handler:path) => {
        #[doc(hidden)]
        fn __wasm_activity_typed_handler(
            input: ::std::string::String,
        ) -> ::std::result::Result<::std::string::String, $crate::Failure> {
            $crate::__private::dispatch(&input, $handler)
        }

        $crate::export_raw_handler!(__wasm_activity_typed_handler);
    };
}

/// Turns a handler on raw strings into the component's export: the
/// function gets the task input exactly as delivered and returns the output
/// text as is (the host still checks that it is JSON).
///
/// Use it when the input is not worth deserializing, or to control the
/// output bytes exactly.
///
/// ```no_run
/// fn handle(input: String) -> Result<String, wasm_activity_guest::Failure> {
///     Ok(input) // echo
/// }
/// wasm_activity_guest::export_raw_handler!(handle);
/// ```
#[macro_export]
macro_rules! export_raw_handler {
    ($handler:path) => {
        #[doc(hidden)]
        struct __WasmActivityRawHandler;

        impl $crate::wit::exports::wasm_activity::handler::handler::Guest for __WasmActivityRawHandler {
            fn handle(
                input: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::wit::exports::wasm_activity::handler::handler::Failure,
            > {
                let handler: fn(::std::string::String) -> ::std::result::Result<::std::string::String, $crate::Failure> =
                    $handler;
                handler(input).map_err(|f| $crate::wit::exports::wasm_activity::handler::handler::Failure {
                    error: f.error,
                    cause: f.cause,
                })
            }
        }

                // Exported only when built for WebAssembly: a native build of the
        // same crate (unit tests, `cdylib` next to `rlib`) has no host to
        // export to, and native linkers refuse the component export names.
        #[cfg(target_arch = "wasm32")]
        $crate::wit::__export_activity_world!(__WasmActivityRawHandler with_types_in $crate::wit);
    };
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use super::*;

    /// Parses the input, calls the handler, serializes the output.
    pub fn dispatch<T, U, E>(input: &str, handler: fn(T) -> Result<U, E>) -> Result<String, Failure>
    where
        T: DeserializeOwned,
        U: Serialize,
        E: Into<Failure>,
    {
        let parsed: T = serde_json::from_str(input)
            .map_err(|e| Failure::new(INVALID_INPUT, format!("task input is not valid: {e}")))?;
        let output = handler(parsed).map_err(Into::into)?;
        serde_json::to_string(&output).map_err(|e| {
            Failure::new(
                INVALID_OUTPUT,
                format!("handler output could not be serialized to JSON: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct In {
        n: u32,
    }

    fn double(i: In) -> Result<u32, Failure> {
        if i.n == 0 {
            return Err(Failure::new("Zero", "n must not be zero"));
        }
        Ok(i.n * 2)
    }

    fn parse(s: String) -> Result<i64, std::num::ParseIntError> {
        s.parse()
    }

    #[test]
    fn dispatch_serializes_output() {
        assert_eq!(__private::dispatch(r#"{"n":21}"#, double).unwrap(), "42");
    }

    #[test]
    fn bad_json_is_invalid_input_with_parse_error() {
        let f = __private::dispatch("{not json", double).unwrap_err();
        assert_eq!(f.error, INVALID_INPUT);
        assert!(f.cause.contains("key must be a string"), "{}", f.cause);
    }

    #[test]
    fn wrong_shape_is_invalid_input() {
        let f = __private::dispatch(r#"{"m":1}"#, double).unwrap_err();
        assert_eq!(f.error, INVALID_INPUT);
        assert!(f.cause.contains("missing field `n`"), "{}", f.cause);
    }

    #[test]
    fn handler_failure_keeps_name_and_cause() {
        let f = __private::dispatch(r#"{"n":0}"#, double).unwrap_err();
        assert_eq!(f, Failure::new("Zero", "n must not be zero"));
    }

    #[test]
    fn std_errors_are_named_after_their_type() {
        let f = __private::dispatch(r#""abc""#, parse).unwrap_err();
        assert_eq!(f.error, "ParseIntError");
        assert_eq!(f.cause, "invalid digit found in string");
    }
}
