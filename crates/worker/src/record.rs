//! Recording tasks for replay.
//!
//! With `[activity.NAME.record]` on, the worker writes each finished task's
//! input and result to a directory, one JSON file per task, with listed
//! fields redacted. `wasm-activity replay DIR --component NEW.wasm` re-runs
//! the inputs against a new build and reports which results changed: a
//! check of a new version against real traffic before deploying it.
//!
//! Recordings sit on disk and get copied around, so beside the listed
//! fields every string, key and number that holds a secret value of the
//! activity is redacted too ([`redact_secrets`]); a recording whose text
//! would still hold one (a secret spanning JSON syntax) is not written.

use crate::config::RecordConfig;
use crate::redact::Redactor;
use crate::report::Report;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::redact::REDACTED;

/// One recorded task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recording {
    /// The activity that ran it.
    pub activity: String,
    /// The component version that ran it.
    pub version: String,
    /// The task id.
    pub task: String,
    /// The task input (redacted), as JSON, or as a string if it was not JSON.
    pub input: Value,
    /// `{"output": ...}`, `{"error", "cause"}` or `{"canceled": details}`.
    pub result: Value,
    /// The fields that were redacted (replay redacts its results the same way).
    #[serde(default)]
    pub redacted: Vec<String>,
}

/// A report as a recorded result; `None` for tasks the service ended.
pub fn result_of(report: &Report) -> Option<Value> {
    Some(match report {
        Report::Success { output } => {
            serde_json::json!({ "output": serde_json::from_str::<Value>(output).unwrap_or(Value::String(output.clone())) })
        }
        Report::Failure { error, cause } => serde_json::json!({ "error": error, "cause": cause }),
        Report::Canceled { details } => serde_json::json!({ "canceled": details }),
        Report::Nothing { .. } => return None,
    })
}

/// Replaces the values of `fields` in `value`: a plain name matches a key
/// at any depth, a dotted path matches from the top.
pub fn redact(value: &mut Value, fields: &[String]) {
    for field in fields {
        if field.contains('.') {
            let mut parts = field.split('.').peekable();
            let mut at = &mut *value;
            while let Some(part) = parts.next() {
                let Some(next) = at.get_mut(part) else { break };
                if parts.peek().is_none() {
                    *next = Value::String(REDACTED.into());
                    break;
                }
                at = next;
            }
        } else {
            redact_key(value, field);
        }
    }
}

/// Replaces secret values inside `value`'s strings and keys, and numbers
/// that spell one, with [`REDACTED`].
pub(crate) fn redact_secrets(value: &mut Value, redactor: &Redactor) {
    if redactor.is_empty() {
        return;
    }
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(r) = redactor.redact(s) {
                *s = r;
            }
        }
        Value::Number(n) => {
            if let std::borrow::Cow::Owned(r) = redactor.redact(&n.to_string()) {
                *value = Value::String(r);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_secrets(v, redactor)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                redact_secrets(&mut v, redactor);
                map.insert(redactor.redact(&k).into_owned(), v);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

fn redact_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == key {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_key(v, key);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_key(v, key)),
        _ => {}
    }
}

/// Writes a recording, unless the input is over the size cap, with the
/// listed fields and every secret value `redactor` knows redacted. Failures
/// are logged: recording must never fail a task.
pub(crate) async fn write(
    config: &RecordConfig,
    activity: &str,
    version: &str,
    task: &str,
    input: &str,
    report: &Report,
    redactor: &Redactor,
) {
    if input.len() as u64 > config.max_bytes {
        tracing::debug!(activity, task, "input over record.max_bytes; not recorded");
        return;
    }
    let Some(mut result) = result_of(report) else {
        return;
    };
    let mut input =
        serde_json::from_str(input).unwrap_or_else(|_| Value::String(input.to_string()));
    redact(&mut input, &config.redact);
    redact(&mut result, &config.redact);
    redact_secrets(&mut input, redactor);
    redact_secrets(&mut result, redactor);
    let recording = Recording {
        activity: activity.into(),
        version: version.into(),
        task: task.into(),
        input,
        result,
        redacted: config.redact.clone(),
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    let path = config.dir.join(format!("{stamp}-{task}.json"));
    let text = serde_json::to_string_pretty(&recording).expect("a recording serializes");
    if matches!(redactor.redact(&text), std::borrow::Cow::Owned(_)) {
        tracing::warn!(
            activity,
            task,
            "not recording the task: a secret value spans its JSON text"
        );
        return;
    }
    let written = async {
        tokio::fs::create_dir_all(&config.dir).await?;
        tokio::fs::write(&path, text).await
    };
    if let Err(e) = written.await {
        tracing::warn!(
            activity,
            task,
            "cannot record the task to {}: {e}",
            path.display()
        );
    }
}

/// The recordings in `dir`, oldest first.
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, Recording)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let rec: Recording = serde_json::from_str(&text).map_err(|e| {
            std::io::Error::other(format!("{} is not a recording: {e}", f.display()))
        })?;
        out.push((f, rec));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_at_any_depth_and_paths_from_the_top() {
        let mut v = json!({"email": "a@b", "customer": {"email": "c@d", "tier": "gold"}, "items": [{"email": "e"}]});
        redact(&mut v, &["email".into()]);
        assert_eq!(
            v,
            json!({"email": REDACTED, "customer": {"email": REDACTED, "tier": "gold"}, "items": [{"email": REDACTED}]})
        );
        let mut v = json!({"customer": {"tier": "gold", "card": {"number": "4111"}}, "tier": "x"});
        redact(
            &mut v,
            &["customer.card.number".into(), "missing.path".into()],
        );
        assert_eq!(
            v,
            json!({"customer": {"tier": "gold", "card": {"number": REDACTED}}, "tier": "x"})
        );
    }

    #[tokio::test]
    async fn recordings_round_trip_and_respect_the_size_cap() {
        let dir = tempfile::tempdir().unwrap();
        let config = RecordConfig {
            dir: dir.path().join("rec"),
            max_bytes: 100,
            redact: vec!["pin".into()],
        };
        let ok = Report::Success {
            output: r#"{"pin":"1234","n":1}"#.into(),
        };
        let none = Redactor::default();
        write(
            &config,
            "a",
            "v1",
            "t1",
            r#"{"pin":"1234","n":1}"#,
            &ok,
            &none,
        )
        .await;
        write(
            &config,
            "a",
            "v1",
            "t2",
            &format!("\"{}\"", "x".repeat(200)),
            &ok,
            &none,
        )
        .await;
        let recs = read_dir(&config.dir).unwrap();
        assert_eq!(recs.len(), 1, "the oversized input is skipped");
        let r = &recs[0].1;
        assert_eq!(r.input, json!({"pin": REDACTED, "n": 1}));
        assert_eq!(r.result, json!({"output": {"pin": REDACTED, "n": 1}}));
        assert_eq!(
            (r.activity.as_str(), r.version.as_str(), r.task.as_str()),
            ("a", "v1", "t1")
        );
    }

    #[tokio::test]
    async fn recordings_hold_no_secret_values() {
        let dir = tempfile::tempdir().unwrap();
        let config = RecordConfig {
            dir: dir.path().join("rec"),
            max_bytes: 10_000,
            redact: vec![],
        };
        let red = Redactor::new(["tok-9f3", "4242"]);
        let input =
            r#"{"auth":"Bearer tok-9f3","tok-9f3":1,"pin":4242,"url":"https://x/?k=tok-9f3"}"#;
        let out = Report::Success {
            output: r#"{"echo":"tok-9f3","n":[4242, 7]}"#.into(),
        };
        write(&config, "a", "v1", "t1", input, &out, &red).await;
        let fail = Report::Failure {
            error: "E".into(),
            cause: "saw tok-9f3".into(),
        };
        write(&config, "a", "v1", "t2", "\"plain tok-9f3\"", &fail, &red).await;
        // A secret spanning JSON syntax cannot be redacted inside values:
        // that recording is not written at all.
        let spanning = Redactor::new([r#"k": "v"#]);
        write(&config, "a", "v1", "t3", r#"{"k":"v"}"#, &fail, &spanning).await;
        let recs = read_dir(&config.dir).unwrap();
        assert_eq!(recs.len(), 2);
        for (path, rec) in &recs {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(
                !text.contains("tok-9f3") && !text.contains("4242"),
                "{text}"
            );
            assert!(text.contains(REDACTED), "{rec:?}");
        }
        assert_eq!(
            recs[0].1.input,
            json!({"auth": "Bearer [redacted]", "[redacted]": 1, "pin": "[redacted]", "url": "https://x/?k=[redacted]"})
        );
        assert_eq!(
            recs[0].1.result,
            json!({"output": {"echo": "[redacted]", "n": ["[redacted]", 7]}})
        );
    }
}
