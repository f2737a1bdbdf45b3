//! The subset of the Amazon States Language the local endpoint runs.
//!
//! Enough to start activity tasks the way AWS does: `Task` states whose
//! `Resource` is an activity ARN, chained by `Next`/`End`, with
//! `TimeoutSeconds`, `HeartbeatSeconds` and `Retry`. Everything else is
//! refused at `CreateStateMachine` with an error naming the field, rather
//! than accepted and run differently from AWS.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// AWS's default for a Task state's `TimeoutSeconds` (99999999 s).
const DEFAULT_TASK_TIMEOUT: u64 = 99_999_999;

/// A parsed, validated state machine definition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Definition {
    /// The first state.
    pub start_at: String,
    /// States by name.
    pub states: BTreeMap<String, TaskState>,
    /// Execution-wide `TimeoutSeconds`.
    pub timeout: Option<Duration>,
}

/// An activity Task state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskState {
    /// The activity ARN.
    pub resource: String,
    /// The next state, or `None` for `End`.
    pub next: Option<String>,
    /// `TimeoutSeconds`.
    pub timeout_seconds: u64,
    /// `HeartbeatSeconds`.
    pub heartbeat_seconds: Option<u64>,
    /// `Retry`, in order.
    pub retry: Vec<Retrier>,
}

/// One `Retry` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Retrier {
    /// `ErrorEquals`.
    pub error_equals: Vec<String>,
    /// `IntervalSeconds` (default 1).
    pub interval_seconds: u64,
    /// `MaxAttempts` (default 3).
    pub max_attempts: u32,
    /// `BackoffRate` (default 2.0).
    pub backoff_rate: f64,
}

impl Retrier {
    /// True if this retrier handles `error` (AWS matching rules for the
    /// `States.ALL`, `States.TaskFailed` and `States.Timeout` wildcards).
    pub(crate) fn matches(&self, error: &str) -> bool {
        self.error_equals.iter().any(|e| match e.as_str() {
            "States.ALL" => true,
            "States.TaskFailed" => error != "States.Timeout",
            "States.Timeout" => error == "States.Timeout" || error == "States.HeartbeatTimeout",
            other => other == error,
        })
    }

    /// The wait before retry number `attempt` (1-based).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = self.backoff_rate.powi(attempt.saturating_sub(1) as i32);
        Duration::from_secs_f64(
            (self.interval_seconds as f64 * factor).min(DEFAULT_TASK_TIMEOUT as f64),
        )
    }
}

/// Why a definition was refused; becomes `InvalidDefinition`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DefinitionError(pub String);

const SUPPORTED: &str = "this local endpoint runs activity Task states chained by Next/End, with \
                         TimeoutSeconds, HeartbeatSeconds and Retry";

fn unsupported(field: &str, place: &str) -> DefinitionError {
    DefinitionError(format!("unsupported field '{field}' {place}: {SUPPORTED}"))
}

fn object<'a>(v: &'a Value, place: &str) -> Result<&'a Map<String, Value>, DefinitionError> {
    v.as_object()
        .ok_or_else(|| DefinitionError(format!("{place} must be a JSON object")))
}

fn string(v: &Value, what: &str) -> Result<String, DefinitionError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| DefinitionError(format!("{what} must be a string")))
}

fn positive(v: &Value, what: &str) -> Result<u64, DefinitionError> {
    v.as_u64()
        .filter(|n| (1..=DEFAULT_TASK_TIMEOUT).contains(n))
        .ok_or_else(|| {
            DefinitionError(format!(
                "{what} must be a whole number from 1 to {DEFAULT_TASK_TIMEOUT}"
            ))
        })
}

/// Parses and validates a definition.
pub(crate) fn parse(text: &str) -> Result<Definition, DefinitionError> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| DefinitionError(format!("the definition is not valid JSON: {e}")))?;
    let root = object(&root, "the definition")?;
    for key in root.keys() {
        if !matches!(
            key.as_str(),
            "StartAt" | "States" | "Comment" | "TimeoutSeconds" | "Version"
        ) {
            return Err(unsupported(key, "at the top level"));
        }
    }
    let start_at = string(
        root.get("StartAt")
            .ok_or_else(|| DefinitionError("missing 'StartAt'".into()))?,
        "'StartAt'",
    )?;
    let timeout = root
        .get("TimeoutSeconds")
        .map(|v| positive(v, "'TimeoutSeconds'").map(Duration::from_secs))
        .transpose()?;
    let states_json = object(
        root.get("States")
            .ok_or_else(|| DefinitionError("missing 'States'".into()))?,
        "'States'",
    )?;
    if states_json.is_empty() {
        return Err(DefinitionError("'States' must not be empty".into()));
    }
    let mut states = BTreeMap::new();
    for (name, state) in states_json {
        states.insert(name.clone(), parse_state(name, state)?);
    }
    if !states.contains_key(&start_at) {
        return Err(DefinitionError(format!(
            "'StartAt' names state '{start_at}', which does not exist"
        )));
    }
    for (name, state) in &states {
        if let Some(next) = &state.next
            && !states.contains_key(next)
        {
            return Err(DefinitionError(format!(
                "state '{name}': 'Next' names state '{next}', which does not exist"
            )));
        }
    }
    Ok(Definition {
        start_at,
        states,
        timeout,
    })
}

fn parse_state(name: &str, value: &Value) -> Result<TaskState, DefinitionError> {
    let place = format!("in state '{name}'");
    let state = object(value, &format!("state '{name}'"))?;
    for key in state.keys() {
        if !matches!(
            key.as_str(),
            "Type"
                | "Resource"
                | "Next"
                | "End"
                | "TimeoutSeconds"
                | "HeartbeatSeconds"
                | "Retry"
                | "Comment"
        ) {
            return Err(unsupported(key, &place));
        }
    }
    let kind = state.get("Type").and_then(Value::as_str).unwrap_or("");
    if kind != "Task" {
        return Err(DefinitionError(format!(
            "unsupported state type '{kind}' in state '{name}' (field 'Type'): {SUPPORTED}"
        )));
    }
    let resource = string(
        state
            .get("Resource")
            .ok_or_else(|| DefinitionError(format!("state '{name}' is missing 'Resource'")))?,
        &format!("'Resource' {place}"),
    )?;
    if !resource.contains(":activity:") {
        return Err(DefinitionError(format!(
            "unsupported 'Resource' {place}: {resource:?} is not an activity ARN; {SUPPORTED}"
        )));
    }
    let end = match state.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(DefinitionError(format!(
                "'End' {place} must be true or false"
            )));
        }
    };
    let next = state
        .get("Next")
        .map(|v| string(v, &format!("'Next' {place}")))
        .transpose()?;
    match (&next, end) {
        (Some(_), true) => {
            return Err(DefinitionError(format!(
                "state '{name}' has both 'Next' and 'End'"
            )));
        }
        (None, false) => {
            return Err(DefinitionError(format!(
                "state '{name}' needs 'Next' or \"End\": true"
            )));
        }
        _ => {}
    }
    let timeout_seconds = state
        .get("TimeoutSeconds")
        .map(|v| positive(v, &format!("'TimeoutSeconds' {place}")))
        .transpose()?
        .unwrap_or(DEFAULT_TASK_TIMEOUT);
    let heartbeat_seconds = state
        .get("HeartbeatSeconds")
        .map(|v| positive(v, &format!("'HeartbeatSeconds' {place}")))
        .transpose()?;
    if let Some(h) = heartbeat_seconds
        && h >= timeout_seconds
    {
        return Err(DefinitionError(format!(
            "'HeartbeatSeconds' ({h}) {place} must be smaller than 'TimeoutSeconds' ({timeout_seconds})"
        )));
    }
    let retry = match state.get("Retry") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, r)| parse_retrier(r, &format!("in Retry[{i}] of state '{name}'")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(DefinitionError(format!("'Retry' {place} must be an array"))),
    };
    Ok(TaskState {
        resource,
        next,
        timeout_seconds,
        heartbeat_seconds,
        retry,
    })
}

fn parse_retrier(value: &Value, place: &str) -> Result<Retrier, DefinitionError> {
    let r = object(value, place)?;
    for key in r.keys() {
        if !matches!(
            key.as_str(),
            "ErrorEquals" | "IntervalSeconds" | "MaxAttempts" | "BackoffRate" | "Comment"
        ) {
            return Err(unsupported(key, place));
        }
    }
    let error_equals: Vec<String> = match r.get("ErrorEquals") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|e| string(e, &format!("'ErrorEquals' entries {place}")))
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(DefinitionError(format!(
                "'ErrorEquals' {place} must be a non-empty array of error names"
            )));
        }
    };
    let interval_seconds = r
        .get("IntervalSeconds")
        .map(|v| positive(v, &format!("'IntervalSeconds' {place}")))
        .transpose()?
        .unwrap_or(1);
    let max_attempts = match r.get("MaxAttempts") {
        None => 3,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                DefinitionError(format!("'MaxAttempts' {place} must be a whole number >= 0"))
            })?,
    };
    let backoff_rate = match r.get("BackoffRate") {
        None => 2.0,
        Some(v) => v.as_f64().filter(|b| *b >= 1.0).ok_or_else(|| {
            DefinitionError(format!("'BackoffRate' {place} must be a number >= 1.0"))
        })?,
    };
    Ok(Retrier {
        error_equals,
        interval_seconds,
        max_attempts,
        backoff_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:states:us-east-1:000000000000:activity:a";

    fn task(extra: Value) -> Value {
        let mut t = json!({"Type": "Task", "Resource": ARN, "End": true});
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        t
    }

    fn def(states: Value) -> String {
        json!({"StartAt": "A", "States": states}).to_string()
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().0
    }

    #[test]
    fn chain_with_timeouts_and_retry_parses() {
        let d = parse(&def(json!({
            "A": {"Type": "Task", "Resource": ARN, "Next": "B", "TimeoutSeconds": 60, "HeartbeatSeconds": 10,
                  "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 4, "BackoffRate": 1.5}]},
            "B": task(json!({}))
        })))
        .unwrap();
        let a = &d.states["A"];
        assert_eq!(a.next.as_deref(), Some("B"));
        assert_eq!((a.timeout_seconds, a.heartbeat_seconds), (60, Some(10)));
        assert_eq!(
            a.retry[0],
            Retrier {
                error_equals: vec!["Boom".into()],
                interval_seconds: 2,
                max_attempts: 4,
                backoff_rate: 1.5
            }
        );
        assert_eq!(d.states["B"].next, None);
        assert_eq!(d.states["B"].timeout_seconds, DEFAULT_TASK_TIMEOUT);
    }

    #[test]
    fn retry_defaults_follow_aws() {
        let d = parse(&def(
            json!({"A": task(json!({"Retry": [{"ErrorEquals": ["States.ALL"]}]}))}),
        ))
        .unwrap();
        let r = &d.states["A"].retry[0];
        assert_eq!(
            (r.interval_seconds, r.max_attempts, r.backoff_rate),
            (1, 3, 2.0)
        );
        assert_eq!(r.delay(1), Duration::from_secs(1));
        assert_eq!(r.delay(3), Duration::from_secs(4));
    }

    #[test]
    fn wildcards_match_like_aws() {
        let r = |e: &str| Retrier {
            error_equals: vec![e.into()],
            interval_seconds: 1,
            max_attempts: 1,
            backoff_rate: 1.0,
        };
        assert!(r("States.ALL").matches("Anything"));
        assert!(r("States.TaskFailed").matches("Boom"));
        assert!(!r("States.TaskFailed").matches("States.Timeout"));
        assert!(r("States.Timeout").matches("States.HeartbeatTimeout"));
        assert!(r("Boom").matches("Boom") && !r("Boom").matches("Bang"));
    }

    #[test]
    fn unsupported_fields_are_named() {
        assert!(
            err(&def(json!({"A": task(json!({"ResultPath": "$.x"}))})))
                .contains("unsupported field 'ResultPath' in state 'A'")
        );
        assert!(err(&def(json!({"A": task(json!({"Catch": []}))}))).contains("'Catch'"));
        assert!(err(&json!({"StartAt": "A", "States": {"A": task(json!({}))}, "QueryLanguage": "JSONata"}).to_string())
            .contains("unsupported field 'QueryLanguage' at the top level"));
        assert!(
            err(&def(json!({"A": {"Type": "Pass", "End": true}})))
                .contains("unsupported state type 'Pass'")
        );
        assert!(
            err(&def(json!({"A": task(json!({"Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "FULL"}]}))})))
                .contains("unsupported field 'JitterStrategy' in Retry[0] of state 'A'")
        );
        assert!(
            err(&def(json!({"A": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:f", "End": true}})))
                .contains("not an activity ARN")
        );
    }

    #[test]
    fn structural_errors_are_explained() {
        assert!(err("{").contains("not valid JSON"));
        assert!(
            err(&json!({"StartAt": "X", "States": {"A": task(json!({}))}}).to_string())
                .contains("'StartAt' names state 'X'")
        );
        assert!(
            err(&def(
                json!({"A": {"Type": "Task", "Resource": ARN, "Next": "Z"}})
            ))
            .contains("'Next' names state 'Z'")
        );
        assert!(
            err(&def(json!({"A": {"Type": "Task", "Resource": ARN}}))).contains("needs 'Next' or")
        );
        assert!(
            err(&def(
                json!({"A": task(json!({"TimeoutSeconds": 5, "HeartbeatSeconds": 5}))})
            ))
            .contains("must be smaller")
        );
    }
}
