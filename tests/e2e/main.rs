//! End-to-end tests: the real `wasm-activity` binary, real guest components
//! built from source, and real Step Functions implementations (LocalStack and
//! the project's embedded endpoint).
//! Run them with `scripts/test.sh`, which installs and starts what they need.

mod check;
mod components;
mod delivery;
mod dev_args;
mod fault_proxy;
mod invoke;
mod live_page;
mod local_endpoint;
mod many_hosts;
mod observability;
mod otlp;
mod polyglot;
mod quickstart;
mod reload;
mod reload_races;
mod sandbox;
mod signing;
mod startup;
mod step_functions;
mod support;
mod swf;
mod swf_naming;
mod swf_support;
