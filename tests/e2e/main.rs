//! End-to-end tests: the real `wasm-activity` binary, real guest components
//! built from source, and a real Step Functions implementation (LocalStack).
//! Run them with `scripts/test.sh`, which installs and starts what they need.

mod check;
mod invoke;
mod step_functions;
mod support;
