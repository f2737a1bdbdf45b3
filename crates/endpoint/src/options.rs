//! The endpoint's settings, apart from the server so that both halves can
//! read them without depending on the crate root.

use std::time::Duration;

/// Settings of a local endpoint.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// Region used in ARNs.
    pub region: String,
    /// Account id used in ARNs.
    pub account: String,
    /// How long GetActivityTask waits for a task (AWS: 60 s).
    pub poll_timeout: Duration,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            poll_timeout: Duration::from_secs(60),
        }
    }
}
