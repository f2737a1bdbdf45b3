//! Fault injection, off unless a test asks for it.
//!
//! A rule names an operation (or `*`), a fault, the probability it fires on a
//! matching request, and optionally how many times at most. Rules are set
//! over HTTP so that tests driving the real binary can use them:
//!
//! ```text
//! POST   /_local/faults   {"op": "SendTaskSuccess", "fault": "drop_response", "rate": 0.5, "count": 3}
//! GET    /_local/faults   the rules and how often each fired
//! DELETE /_local/faults   removes all rules
//! ```
//!
//! Faults: `throttle` (400 ThrottlingException), `server_error` (500
//! InternalFailure), `error` (any `code` and `status`, e.g. TaskTimedOut or
//! KmsThrottlingException), `body` (any `status` with a `body` that is not
//! the service's, as a proxy or load balancer answers), `reset` (the
//! connection drops before the request is applied), `delay` (`delay_ms`
//! before applying), `drop_response` (applied, then the connection drops:
//! the client cannot know it worked). None of them applies the request
//! except `delay` and `drop_response`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// What a rule does to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum FaultKind {
    /// 400 ThrottlingException.
    Throttle,
    /// 500 InternalFailure.
    ServerError,
    /// An error response with this code and status.
    Error {
        /// AWS error code, e.g. `TaskTimedOut`.
        code: String,
        /// HTTP status (default 400).
        #[serde(default = "default_status")]
        status: u16,
    },
    /// An answer that is not the service's: `status` with `body` as is.
    Body {
        /// HTTP status.
        #[serde(default = "default_status")]
        status: u16,
        /// The body, e.g. an HTML error page.
        #[serde(default)]
        body: String,
    },
    /// The connection drops before the request is applied.
    Reset,
    /// Wait before applying.
    Delay {
        /// Milliseconds.
        #[serde(rename = "delay_ms")]
        ms: u64,
    },
    /// Apply, then drop the connection instead of answering.
    DropResponse,
}

fn default_status() -> u16 {
    400
}

fn default_rate() -> f64 {
    1.0
}

fn any_op() -> String {
    "*".into()
}

/// One fault rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FaultRule {
    /// Operation name (`SendTaskSuccess`) or `*`.
    #[serde(default = "any_op")]
    pub op: String,
    /// The fault.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Probability of firing on a matching request, 0.0 to 1.0.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Fire at most this many times.
    #[serde(default)]
    pub count: Option<u64>,
    /// How many times it fired (reported, not set).
    #[serde(default)]
    pub fired: u64,
}

/// The active rules.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a rule.
    pub(crate) fn add(&self, rule: FaultRule) {
        self.lock().push(rule);
    }

    /// Removes every rule.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The fault to apply to a request for `op`, if any (first match wins).
    pub(crate) fn pick(&self, op: &str) -> Option<FaultKind> {
        let mut rules = self.lock();
        for rule in rules.iter_mut() {
            if rule.op != "*" && rule.op != op {
                continue;
            }
            if rule.count.is_some_and(|c| rule.fired >= c) {
                continue;
            }
            if fastrand::f64() < rule.rate {
                rule.fired += 1;
                return Some(rule.kind.clone());
            }
        }
        None
    }

    /// A snapshot of the rules with their counts.
    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }
}

pub(crate) async fn set(
    State(faults): State<Arc<Faults>>,
    Json(rule): Json<FaultRule>,
) -> Result<StatusCode, (StatusCode, String)> {
    if !(0.0..=1.0).contains(&rule.rate) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("rate {} is not between 0 and 1", rule.rate),
        ));
    }
    tracing::warn!(target: "wasm_activity::endpoint", ?rule, "fault injection rule added");
    faults.add(FaultRule { fired: 0, ..rule });
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn clear(State(faults): State<Arc<Faults>>) -> StatusCode {
    faults.clear();
    StatusCode::NO_CONTENT
}

pub(crate) async fn list(State(faults): State<Arc<Faults>>) -> Json<Vec<FaultRule>> {
    Json(faults.rules())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> FaultRule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rules_parse_from_json() {
        let r = rule(r#"{"op": "SendTaskHeartbeat", "fault": "error", "code": "TaskTimedOut"}"#);
        assert_eq!(
            r.kind,
            FaultKind::Error {
                code: "TaskTimedOut".into(),
                status: 400
            }
        );
        assert_eq!(r.rate, 1.0);
        let r = rule(r#"{"fault": "delay", "delay_ms": 250, "rate": 0.5}"#);
        assert_eq!(
            (r.op.as_str(), r.kind, r.rate),
            ("*", FaultKind::Delay { ms: 250 }, 0.5)
        );
        assert!(serde_json::from_str::<FaultRule>(r#"{"fault": "explode"}"#).is_err());
        let r = rule(r#"{"fault": "body", "status": 502, "body": "<html>bad gateway</html>"}"#);
        assert_eq!(
            r.kind,
            FaultKind::Body {
                status: 502,
                body: "<html>bad gateway</html>".into()
            }
        );
    }

    #[test]
    fn count_limits_firing_and_ops_must_match() {
        let f = Faults::default();
        f.add(rule(
            r#"{"op": "SendTaskSuccess", "fault": "throttle", "count": 2}"#,
        ));
        assert_eq!(f.pick("SendTaskHeartbeat"), None);
        assert_eq!(f.pick("SendTaskSuccess"), Some(FaultKind::Throttle));
        assert_eq!(f.pick("SendTaskSuccess"), Some(FaultKind::Throttle));
        assert_eq!(f.pick("SendTaskSuccess"), None);
        assert_eq!(f.rules()[0].fired, 2);
    }

    #[test]
    fn rate_zero_never_fires() {
        let f = Faults::default();
        f.add(rule(r#"{"fault": "reset", "rate": 0.0}"#));
        assert!((0..1000).all(|_| f.pick("GetActivityTask").is_none()));
    }
}
