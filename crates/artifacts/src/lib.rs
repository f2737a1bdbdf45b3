//! Components named by reference (a file, `oci://`, `s3://`, `https://`),
//! fetched, verified by digest and kept in a content-addressed store, so a
//! fleet of workers can run the same handler version from one published
//! artifact and a worker can restart while its registry is down.
//!
//! The worker resolves each reference through one [`Fetcher`]; `wasm-activity
//! push` publishes through the same one, so what is pushed is exactly what is
//! fetched.

mod credentials;
mod error;
mod fetch;
mod oci;
mod reference;
mod s3;
mod store;

pub use error::{FetchError, MAX_COMPONENT_BYTES};
pub use fetch::{Fetcher, Origin, Pushed, Resolved, Settings};
pub use reference::{ComponentRef, Digest, OciRef, S3Ref, Source};
pub use store::Store;
