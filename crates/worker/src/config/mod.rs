//! The worker configuration file.
//!
//! Parsing is two-staged so that every mistake is reported in the user's
//! terms: serde reads the TOML into raw structs that reject unknown keys, and
//! [`Config::from_raw`] turns them into validated types, resolving human
//! units (`"30s"`, `"64MiB"`) and paths (relative to the config file). Every
//! error names the file, the key, the bad value and what was expected, and
//! where the value is written (line and column) when it is.
//!
//! The stages live in files of their own, so each can be read alone:
//! `raw` is the file as serde reads it (the keys tables share declared
//! once; values keep their position), `validate` and `task` turn it into the
//! validated types of `types` and [`ActivityId`], which the rest of the
//! worker reads and compares (a reload restarts a source only if its
//! validated config is not equal to the running one). Nothing here imports
//! from the runtime or the services: the HTTP allow-list is parsed here,
//! once, into [`OriginPattern`]s the runtime matches requests against.

mod activity_id;
mod origin;
mod raw;
mod task;
#[cfg(test)]
pub(crate) mod tests;
mod types;
mod validate;

pub use activity_id::ActivityId;
pub use activity_id::toml_key;
pub use origin::OriginPattern;
pub use origin::default_port;
pub use types::*;

use raw::RawConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use wasm_activity_artifacts::{ComponentRef, Digest, Source};

/// How often mutable component references are re-resolved by default.
const DEFAULT_COMPONENT_REFRESH: Duration = Duration::from_secs(30);
/// The component store's default bound: dozens of Python or JavaScript
/// versions.
pub(crate) const DEFAULT_COMPONENT_STORE_MAX: u64 = 2 * 1024 * 1024 * 1024;

/// Largest output Step Functions accepts for SendTaskSuccess, in bytes.
pub(crate) const SFN_MAX_PAYLOAD: u64 = crate::aws::SFN_MAX_PAYLOAD as u64;
/// Largest result SWF accepts for RespondActivityTaskCompleted.
pub(crate) const SWF_MAX_RESULT: u64 = crate::aws::SWF_MAX_RESULT as u64;
const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);
/// Table elements per table: interpreters (CPython) need tens of thousands.
/// Also the most `table_elements` may be set to: the instance pool reserves
/// tables of this size, so a larger setting could never be honoured.
pub(crate) const MAX_TABLE_ELEMENTS: u32 = 100_000;
/// Core instances one task may create: a Python component has a dozen. Also
/// the most `max_instances` may be set to, for the same reason as tables:
/// the pool reserves exactly this many per instance slot, so one tenant's
/// tasks can never use up what another's need.
pub(crate) const MAX_INSTANCES: u32 = 25;
/// Host memory held on a guest's behalf (HTTP fields and bodies, streams,
/// resource handles, text lifted out of its memory), per task.
pub(crate) const DEFAULT_HOST_MEMORY_LIMIT: u64 = 16 * 1024 * 1024;
const MIN_HOST_MEMORY_LIMIT: u64 = 1024 * 1024;
const MAX_HOST_MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;

const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_MAX_CONCURRENT: usize = 4;
const DEFAULT_POLLERS: usize = 1;
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
const DEFAULT_LOG_LIMIT: u64 = 1024 * 1024;
/// Step Functions allows 1,000 pollers per activity ARN; more is an error on
/// the service side, so refuse it here.
const MAX_POLLERS: usize = crate::aws::MAX_POLLERS;
/// A wasm32 guest cannot address more than 4 GiB.
const MAX_MEMORY_LIMIT: u64 = 4 * 1024 * 1024 * 1024;
const MIN_MEMORY_LIMIT: u64 = 1024 * 1024;

/// A configuration error: which file, which key, what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    // The OS error is part of the message, not a source: `{:#}` would
    // print it twice.
    #[error("cannot read config file {}: {cause}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with the key path and position.
        message: String,
    },
    /// A key has a value of the right type but not an acceptable one.
    #[error("{}: `{key}` = {value}: expected {expected}{}", path.display(), Position::suffix(at))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Dotted key path, e.g. `activity.resize.memory_limit`.
        key: String,
        /// The value as written.
        value: String,
        /// What would have been accepted.
        expected: String,
        /// Where the value is written in the file, if it is (a value can
        /// also be missing, or be a default, or come from a cross-check).
        at: Option<Position>,
    },
}

impl ConfigError {
    /// The error with where the bad value is written, if it is `Invalid`.
    fn at(self, at: Option<Position>) -> ConfigError {
        match self {
            ConfigError::Invalid {
                path,
                key,
                value,
                expected,
                ..
            } => ConfigError::Invalid {
                path,
                key,
                value,
                expected,
                at,
            },
            other => other,
        }
    }
}

/// Where in the config file a value is written, as an editor counts: lines
/// and columns (characters) from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub(crate) line: usize,
    /// Column, in characters, from 1.
    pub(crate) column: usize,
}

impl Position {
    /// The position of byte `offset` of `text`.
    fn of(text: &str, offset: usize) -> Position {
        let before = &text[..offset.min(text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// ` (line L, column C)` after an error, or nothing.
    fn suffix(at: &Option<Position>) -> String {
        at.map(|p| format!(" (line {}, column {})", p.line, p.column))
            .unwrap_or_default()
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Config::from_toml(&text, path)
    }

    /// Validates TOML text as if it had been read from `path`.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        let de = toml::Deserializer::parse(text).map_err(|e| syntax(e.to_string()))?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            // A value read as `Spanned` is, to serde, a field of a struct
            // of toml's own: not a key the user wrote.
            let key = (e.path().to_string().split('.'))
                .filter(|segment| !segment.starts_with("$__serde_spanned_private"))
                .collect::<Vec<_>>()
                .join(".");
            let mut inner = e.into_inner().to_string();
            if let Some(hint) = did_you_mean(&inner) {
                inner = format!("{}; did you mean `{hint}`?", inner.trim_end());
            }
            syntax(if key == "." {
                inner
            } else {
                format!("at `{key}`: {inner}")
            })
        })?;
        Config::from_raw(raw, path, text)
    }
}

/// The known key closest to the unknown one in a serde "unknown field
/// `x`, expected one of `a`, `b`" message, if one is close enough to be a
/// typo of it.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected")?.1;
    let candidates = expected.split('`').skip(1).step_by(2);
    let (best, distance) = candidates
        .map(|c| (c, strsim::levenshtein(&unknown.to_lowercase(), c)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= (unknown.len() / 3).max(2)).then(|| best.to_string())
}

/// A size in binary units (`KiB`, `MiB`, `GiB`, `TiB`) or bytes (`B` or no
/// unit). Decimal units are refused rather than read: "64MB" is 61.0 MiB,
/// which is not what anyone writing a memory limit means, and a guest's
/// memory grows in 64 KiB pages. The error (after the value) says why.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let unit_at = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ' '))
        .unwrap_or(trimmed.len());
    let unit = trimmed[unit_at..].trim();
    let binary = ["KiB", "MiB", "GiB", "TiB"];
    let known =
        unit.is_empty() || unit == "B" || binary.iter().any(|u| u.eq_ignore_ascii_case(unit));
    if !known {
        let number = trimmed[..unit_at].trim();
        let hint = match unit.to_ascii_uppercase().trim_end_matches('B') {
            "K" => {
                format!(" (write \"{number}KiB\"; decimal units such as {unit} are not accepted)")
            }
            "M" => {
                format!(" (write \"{number}MiB\"; decimal units such as {unit} are not accepted)")
            }
            "G" => {
                format!(" (write \"{number}GiB\"; decimal units such as {unit} are not accepted)")
            }
            "T" => {
                format!(" (write \"{number}TiB\"; decimal units such as {unit} are not accepted)")
            }
            _ => format!(" (unknown unit {unit:?}: use KiB, MiB, GiB or TiB)"),
        };
        return Err(hint);
    }
    trimmed
        .parse::<bytesize::ByteSize>()
        .map(|b| b.0)
        .map_err(|_| String::new())
}
