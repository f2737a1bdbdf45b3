//! Prometheus metrics.
//!
//! One process-wide registry, so the poller, task, heartbeat and runtime
//! code record where things happen without threading a handle through every
//! call. They are served over HTTP with health and readiness by
//! [`crate::health::serve`].
//!
//! Label values must come from bounded sets, or a time series per value
//! fills the registry and every scraper. The one label a guest chooses, the
//! error name of a failed task, goes through [`ErrorLabels`]: the host's own
//! error names always, at most [`MAX_ERROR_LABELS`] other names per
//! activity, the rest counted as [`OTHER_ERROR_LABEL`]. The text encoder
//! writes label values as they are, so those names are also escaped there.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Labels for per-activity metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActivityLabels {
    /// Activity name.
    pub(crate) activity: String,
    /// Tenant, or `-`.
    pub(crate) tenant: String,
}

/// Labels for finished tasks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FinishedLabels {
    /// Activity name.
    pub(crate) activity: String,
    /// Tenant, or `-`.
    pub(crate) tenant: String,
    /// `succeeded`, `failed`, `canceled`, `abandoned`, `unconfirmed` (a
    /// closed-task answer after an attempt that may have been applied),
    /// `undelivered`.
    pub(crate) outcome: String,
    /// Error name for failures, else empty.
    pub(crate) error: String,
}

/// Labels for per-source metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceLabels {
    /// Activity or task list name.
    pub(crate) source: String,
}

/// Labels for polls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PollLabels {
    /// Activity or task list name.
    pub(crate) source: String,
    /// `task`, `empty` or `error`.
    pub(crate) result: String,
}

/// Labels for results of an operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    /// `ok` or `failed`.
    pub(crate) result: String,
}

/// Labels naming the component version an activity runs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ComponentLabels {
    /// Activity name.
    pub(crate) activity: String,
    /// Component version (content hash prefix).
    pub(crate) version: String,
}

/// Distinct guest error names kept as label values, per activity.
pub(crate) const MAX_ERROR_LABELS: usize = 20;
/// The error label of every guest error name past [`MAX_ERROR_LABELS`].
pub(crate) const OTHER_ERROR_LABEL: &str = "other";

/// The bounded set of error label values, per activity.
#[derive(Debug, Default)]
pub(crate) struct ErrorLabels {
    seen: Mutex<HashMap<String, HashSet<String>>>,
}

impl ErrorLabels {
    /// The label value for `error` in `activity`: the host's error names
    /// (and the empty name) as they are; a guest's name escaped (see
    /// [`crate::redact::escape`]; `\` and `"` as the text format wants) if
    /// it is one of the first [`MAX_ERROR_LABELS`] of this activity, else
    /// [`OTHER_ERROR_LABEL`].
    pub(crate) fn label(&self, activity: &str, error: &str) -> String {
        if error.is_empty() || crate::names::ALL.contains(&error) {
            return error.to_string();
        }
        let value = crate::redact::escape(error)
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let names = seen.entry(activity.to_string()).or_default();
        if names.contains(&value) {
            return value;
        }
        if names.len() < MAX_ERROR_LABELS {
            names.insert(value.clone());
            return value;
        }
        OTHER_ERROR_LABEL.to_string()
    }
}

/// A label value as text again: the text format's `\\` and `\"` undone
/// (what [`ErrorLabels::label`] added for `/metrics`), for a trace
/// attribute, which needs no such escaping.
pub(crate) fn unescape_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut chars = label.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Every metric the host exports.
pub(crate) struct Metrics {
    registry: Registry,
    /// Tasks started.
    pub(crate) tasks_started: Family<ActivityLabels, Counter>,
    /// Tasks finished, by outcome and error name.
    pub(crate) tasks_finished: Family<FinishedLabels, Counter>,
    /// Task duration, poll return to result delivered.
    pub(crate) task_seconds: Family<ActivityLabels, Histogram>,
    /// Time to create a task's instance, by activity and component version.
    pub(crate) instantiate_seconds: Family<ComponentLabels, Histogram>,
    /// Tasks running now.
    pub(crate) in_flight: Family<ActivityLabels, Gauge>,
    /// Polls by result.
    pub(crate) polls: Family<PollLabels, Counter>,
    /// Heartbeats by result.
    pub(crate) heartbeats: Family<ResultLabels, Counter>,
    /// Component reloads by result.
    pub(crate) reloads: Family<ResultLabels, Counter>,
    /// 1 for the component version each activity runs now.
    pub(crate) component: Family<ComponentLabels, Gauge>,
    /// 1 while a source is serving (see [`crate::health`]), else 0.
    source_serving: Family<SourceLabels, Gauge>,
    /// Polls of a source that failed in a row.
    source_poll_failures: Family<SourceLabels, Gauge>,
    /// Finished spans that never reached the OTLP collector (see
    /// [`crate::telemetry`]): the export queue was full or the export failed.
    pub(crate) otlp_spans_dropped: Counter,
    error_labels: ErrorLabels,
}

fn histogram() -> Histogram {
    // 10 us .. ~20 min
    Histogram::new(exponential_buckets(0.000_01, 4.0, 14))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("wasm_activity");
        let m = Metrics {
            tasks_started: Family::default(),
            tasks_finished: Family::default(),
            task_seconds: Family::new_with_constructor(histogram),
            instantiate_seconds: Family::new_with_constructor(histogram),
            in_flight: Family::default(),
            polls: Family::default(),
            heartbeats: Family::default(),
            reloads: Family::default(),
            component: Family::default(),
            source_serving: Family::default(),
            source_poll_failures: Family::default(),
            otlp_spans_dropped: Counter::default(),
            error_labels: ErrorLabels::default(),
            registry: Registry::default(),
        };
        // Name, help text, field: one row a metric.
        macro_rules! register {
            ($($name:literal, $help:literal, $field:ident;)*) => {
                $(registry.register($name, $help, m.$field.clone());)*
            };
        }
        register! {
            "tasks_started", "Tasks started", tasks_started;
            "tasks_finished", "Tasks finished, by outcome and error name", tasks_finished;
            "task_seconds", "Task duration from poll to delivered result", task_seconds;
            "instantiate_seconds", "Time to create a task's instance", instantiate_seconds;
            "tasks_in_flight", "Tasks running now", in_flight;
            "polls", "Long polls, by result", polls;
            "heartbeats", "Heartbeats sent, by result", heartbeats;
            "reloads", "Component reloads, by result", reloads;
            "component", "The component version each activity runs (1)", component;
            "source_serving",
                "1 while the service accepts a source's polls (see /readyz), else 0",
                source_serving;
            "source_poll_failures", "Polls of a source that failed in a row", source_poll_failures;
            "otlp_spans_dropped",
                "Finished spans not delivered to the OTLP collector (queue full or export failed)",
                otlp_spans_dropped;
        }
        Metrics { registry, ..m }
    }

    /// The registry in Prometheus text format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    /// Records whether a source is serving and how many of its polls
    /// failed in a row.
    pub(crate) fn source_serving(&self, source: &str, serving: bool) {
        let labels = SourceLabels {
            source: source.into(),
        };
        self.source_serving
            .get_or_create(&labels)
            .set(i64::from(serving));
    }

    /// See [`Metrics::source_serving`].
    pub(crate) fn source_poll_failures(&self, source: &str, failures: u32) {
        let labels = SourceLabels {
            source: source.into(),
        };
        self.source_poll_failures
            .get_or_create(&labels)
            .set(i64::from(failures));
    }

    /// Drops a source's gauges once it is no longer served.
    pub(crate) fn forget_source(&self, source: &str) {
        let labels = SourceLabels {
            source: source.into(),
        };
        self.source_serving.remove(&labels);
        self.source_poll_failures.remove(&labels);
    }

    /// The `error` label value for a failed task of `activity` (see
    /// [`ErrorLabels::label`]).
    pub(crate) fn error_label(&self, activity: &str, error: &str) -> String {
        self.error_labels.label(activity, error)
    }

    /// Records a heartbeat.
    pub(crate) fn heartbeat(&self, ok: bool) {
        self.heartbeats
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
    }

    /// Records a poll's result.
    pub(crate) fn poll(&self, source: &str, result: &str) {
        self.polls
            .get_or_create(&PollLabels {
                source: source.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Records which component version an activity now runs.
    pub(crate) fn component_version(&self, activity: &str, old: Option<&str>, new: &str) {
        if let Some(old) = old {
            self.component.remove(&ComponentLabels {
                activity: activity.into(),
                version: old.into(),
            });
        }
        self.component
            .get_or_create(&ComponentLabels {
                activity: activity.into(),
                version: new.into(),
            })
            .set(1);
    }
}

/// The process's metrics.
pub(crate) fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Seconds as the histograms record them.
pub(crate) fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_text_again_for_a_trace() {
        let labels = ErrorLabels::default();
        let label = labels.label("a", "Quote\"Back\\slash");
        assert_eq!(label, "Quote\\\"Back\\\\slash");
        assert_eq!(unescape_label(&label), "Quote\"Back\\slash");
        assert_eq!(unescape_label("plain"), "plain");
    }

    #[test]
    fn metrics_encode_with_labels() {
        let m = Metrics::new();
        m.tasks_finished
            .get_or_create(&FinishedLabels {
                activity: "price".into(),
                tenant: "acme".into(),
                outcome: "failed".into(),
                error: "InvalidOrder".into(),
            })
            .inc();
        m.poll("price", "empty");
        m.component_version("price", None, "abc");
        m.component_version("price", Some("abc"), "def");
        let text = m.encode();
        assert!(
            text.contains(r#"wasm_activity_tasks_finished_total{activity="price",tenant="acme",outcome="failed",error="InvalidOrder"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wasm_activity_polls_total{source="price",result="empty"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wasm_activity_component{activity="price",version="def"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"version="abc""#), "{text}");
    }

    #[test]
    fn error_labels_are_capped_per_activity_host_names_always_kept() {
        let l = ErrorLabels::default();
        for i in 0..MAX_ERROR_LABELS {
            assert_eq!(l.label("a", &format!("E{i}")), format!("E{i}"));
        }
        assert_eq!(l.label("a", "E0"), "E0", "a known name keeps its label");
        assert_eq!(l.label("a", "Fresh"), OTHER_ERROR_LABEL);
        assert_eq!(l.label("a", "WasmActivity.Fake"), OTHER_ERROR_LABEL);
        for host in crate::names::ALL {
            assert_eq!(l.label("a", host), host);
        }
        assert_eq!(l.label("a", ""), "");
        assert_eq!(
            l.label("b", "Fresh"),
            "Fresh",
            "each activity has its own cap"
        );
    }

    #[test]
    fn an_error_label_cannot_forge_an_exposition_line() {
        let m = Metrics::new();
        let evil = "x\"} 1\nwasm_activity_forged_total 99\n#\\";
        let error = m.error_label("price", evil);
        m.tasks_finished
            .get_or_create(&FinishedLabels {
                activity: "price".into(),
                tenant: "-".into(),
                outcome: "failed".into(),
                error,
            })
            .inc();
        let text = m.encode();
        assert!(
            !text.lines().any(|l| l.starts_with("wasm_activity_forged")),
            "{text}"
        );
        assert!(
            text.contains(r#"error="x\"} 1\\nwasm_activity_forged_total 99\\n#\\"} 1"#),
            "{text}"
        );
    }
}
