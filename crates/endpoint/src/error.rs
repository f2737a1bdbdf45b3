//! The one error type of every operation, in AWS's terms (HTTP status plus
//! `__type` code), so that a handler's error is what a client would see
//! from AWS; how it goes on the wire is the HTTP layer's business.

use axum::http::StatusCode;

/// An API error: HTTP status, AWS error code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// AWS error code (`__type`).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// A 400 with the given code.
    pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// A 400 `ValidationException`.
    pub(crate) fn validation(message: impl Into<String>) -> ApiError {
        ApiError::bad_request("ValidationException", message)
    }
}
