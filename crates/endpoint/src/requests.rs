//! Typed requests of the operations workers make, validated as the AWS API
//! references document them.
//!
//! A request is decoded into its operation's struct (unknown members
//! refused) and checked field by field before anything is applied, so a
//! validation cannot be forgotten by a handler and a refused request changes
//! nothing. Lengths are in characters, as the references count them; the
//! error is `ValidationException` with AWS's wording.

use crate::error::ApiError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes `req` into `T` and validates it.
pub(crate) fn parse<T: DeserializeOwned + Validate>(req: &Value) -> Result<T, ApiError> {
    let parsed: T = serde_json::from_value(req.clone())
        .map_err(|e| ApiError::validation(format!("1 validation error detected: {e}")))?;
    parsed.validate()?;
    Ok(parsed)
}

/// Field constraints from the API reference.
pub(crate) trait Validate {
    fn validate(&self) -> Result<(), ApiError>;
}

/// `value`'s length in characters must be within `min..=max`.
pub(crate) fn length(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must \
             have length greater than or equal to {min}"
        )));
    }
    if n > max {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must \
             have length less than or equal to {max}"
        )));
    }
    Ok(())
}

/// `length`, for a member that may be absent.
pub(crate) fn optional(
    field: &str,
    value: &Option<String>,
    min: usize,
    max: usize,
) -> Result<(), ApiError> {
    match value {
        Some(v) => length(field, v, min, max),
        None => Ok(()),
    }
}

/// A member that must be one of `allowed`.
pub(crate) fn one_of(
    field: &str,
    value: &Option<String>,
    allowed: &[&str],
) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at '{field}' failed to satisfy constraint: \
             Member must satisfy enum value set: [{}]",
            v.escape_debug(),
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// The pagination members of a list request: `maxResults` and `nextToken`.
pub(crate) fn page(
    max_results: Option<i64>,
    next_token: &Option<String>,
    token_max: usize,
) -> Result<(), ApiError> {
    if max_results.is_some_and(|n| !(0..=1000).contains(&n)) {
        return Err(ApiError::validation(
            "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: \
             Member must have value between 0 and 1000",
        ));
    }
    optional("nextToken", next_token, 1, token_max)
}

/// Parses `req` as `T`, expecting a ValidationException; returns its message.
#[cfg(test)]
pub(crate) fn refused<T: DeserializeOwned + Validate + std::fmt::Debug>(req: Value) -> String {
    let e = parse::<T>(&req).unwrap_err();
    assert_eq!(e.code, "ValidationException", "{req}");
    e.message
}
