//! Why a fetch fails, in one place below the fetcher and its sources
//! (registry, bucket), so each source can build the errors it finds without
//! importing the fetcher that calls it.

use std::path::PathBuf;

/// The largest component fetched: bigger than any Python or JavaScript
/// component (20-40 MiB), small enough that a wrong reference cannot fill
/// the disk or memory.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Why a registry's digest mismatch is refused.
pub(crate) const TAMPERED: &str =
    "the digest the registry names it by: the registry's copy is damaged or tampered with";

/// Why a reference could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot read component {path}: {cause}")]
    File {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{what} cannot be reached: {cause}")]
    Unreachable { what: String, cause: String },
    #[error("{what} was refused: {cause}; {fix}")]
    Denied {
        what: String,
        cause: String,
        fix: &'static str,
    },
    #[error("{what} does not exist: {cause}")]
    NotFound { what: String, cause: String },
    #[error("{what} holds {actual}, not {expected} ({by}): refused")]
    Mismatch {
        what: String,
        expected: String,
        actual: String,
        /// What named the expected digest, and what to do.
        by: &'static str,
    },
    #[error("{what} is not a wasm component artifact: {why}")]
    NotAComponent { what: String, why: String },
    #[error("{what} is {size} bytes, over the {MAX_COMPONENT_BYTES}-byte limit for a component")]
    TooLarge { what: String, size: u64 },
    #[error("{what}: {why}")]
    Unsupported { what: String, why: String },
}

/// Every cause of `e`, in its own words, joined with `: `, escaped and cut
/// short (a registry or proxy may answer with anything).
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    let clean: String = text.escape_debug().collect();
    if clean.chars().count() > 600 {
        format!("{}...", clean.chars().take(600).collect::<String>())
    } else {
        clean
    }
}
