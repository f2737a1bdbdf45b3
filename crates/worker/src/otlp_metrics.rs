//! The Prometheus metrics, also pushed over OTLP/HTTP for operators whose
//! pipeline is OpenTelemetry.
//!
//! The export reads the very registry `/metrics` serves (its text
//! encoding, parsed back), so the two can never disagree on a name, a
//! label or a value: there is one set of instruments, not two. A metric's
//! OTLP name is its Prometheus family name (`wasm_activity_tasks_started`:
//! a collector's Prometheus exporter adds `_total` back to a monotonic sum);
//! counters become cumulative monotonic sums, gauges gauges, histograms
//! cumulative explicit-bucket histograms with the same bounds.
//!
//! It runs as a task on the control-plane runtime, on an interval, with its
//! own HTTP client and timeout: a task never waits on it, and a failed push
//! is logged when the kind of failure changes and retried at the next tick.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often metrics are pushed (`OTEL_METRIC_EXPORT_INTERVAL`, ms).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// How long one push may take (`OTEL_EXPORTER_OTLP_METRICS_TIMEOUT` or
/// `OTEL_EXPORTER_OTLP_TIMEOUT`, ms).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Where metrics go: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (full URL), else
/// the base URL of `OTEL_EXPORTER_OTLP_ENDPOINT` or `otlp_endpoint` with
/// `/v1/metrics`; `None` when none is set or `OTEL_METRICS_EXPORTER=none`.
fn metrics_endpoint(config: Option<&str>) -> Option<String> {
    if crate::telemetry::sdk_disabled()
        || var("OTEL_METRICS_EXPORTER").is_some_and(|v| v.trim() == "none")
    {
        return None;
    }
    if let Some(url) = var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        return Some(url);
    }
    let base = var("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| config.map(str::to_string))?;
    Some(format!("{}/v1/metrics", base.trim_end_matches('/')))
}

/// `OTEL_EXPORTER_OTLP_*HEADERS`: `key=value` pairs, comma-separated,
/// percent-encoded values.
fn headers() -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    let text = var("OTEL_EXPORTER_OTLP_METRICS_HEADERS")
        .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
        .unwrap_or_default();
    for pair in text.split(',') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let v = percent_decode(v.trim());
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.trim().as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            map.insert(k, v);
        }
    }
    map
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn millis_var(names: &[&str], default: Duration) -> Duration {
    names
        .iter()
        .find_map(|n| var(n)?.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(default, Duration::from_millis)
}

/// Starts pushing metrics when a collector is configured; once `stop` is
/// cancelled the loop pushes one last time (the final counts of a short
/// run, bounded by the export timeout) and ends: await the handle to let it.
pub(crate) fn start(
    config: Option<&str>,
    stop: tokio_util::sync::CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let endpoint = metrics_endpoint(config)?;
    let interval = millis_var(&["OTEL_METRIC_EXPORT_INTERVAL"], DEFAULT_INTERVAL);
    let timeout = millis_var(
        &[
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ],
        DEFAULT_TIMEOUT,
    );
    let service = var("OTEL_SERVICE_NAME").unwrap_or_else(|| "wasm-activity".into());
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers())
        .build()
        .expect("a client with no TLS settings of its own builds");
    tracing::info!(%endpoint, ?interval, "exporting metrics over OTLP/HTTP");
    let started = unix_nanos(SystemTime::now());
    Some(tokio::spawn(async move {
        let mut last_error: Option<String> = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = false;
        loop {
            if !last {
                tokio::select! {
                    () = stop.cancelled() => last = true,
                    _ = tick.tick() => {}
                }
            }
            let body =
                request(&crate::metrics::global().encode(), &service, started).encode_to_vec();
            let sent = client
                .post(&endpoint)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            match sent {
                Ok(_) if last_error.take().is_some() => {
                    tracing::info!(%endpoint, "OTLP metrics export works again");
                }
                Ok(_) => {}
                Err(e) => {
                    let why = e.without_url().to_string();
                    if last_error.as_deref() != Some(why.as_str()) {
                        tracing::warn!(%endpoint, "OTLP metrics export failed: {why}; retried every {interval:?}");
                        last_error = Some(why);
                    }
                }
            }
            if last {
                return;
            }
        }
    }))
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
}

/// A sample's labels, in order.
type Labels = Vec<(String, String)>;

/// One sample line of the text format.
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// `name{k="v",...} value`, label values unescaped.
fn parse_sample(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = head.split_once('{') else {
        return Some(Sample {
            name: head.to_string(),
            labels: Vec::new(),
            value,
        });
    };
    let mut labels = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut val = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => val.push('\n'),
                    c => val.push(c),
                },
                '"' => break,
                c => val.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), val));
        match chars.peek() {
            Some(',') => {
                chars.next();
            }
            _ => break,
        }
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn attributes(labels: &[(String, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.clone())),
            }),
            ..Default::default()
        })
        .collect()
}

/// One family of the text format, as read.
#[derive(Default)]
struct Family {
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

/// The registry's text encoding as one OTLP request.
fn request(text: &str, service: &str, start: u64) -> ExportMetricsServiceRequest {
    let now = unix_nanos(SystemTime::now());
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut order = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                order.push(name.to_string());
                families.entry(name.to_string()).or_default().kind = kind.to_string();
            }
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                families.entry(name.to_string()).or_default().help =
                    help.trim_end_matches('.').to_string();
            }
        } else if !line.starts_with('#')
            && let Some(sample) = parse_sample(line)
            && let Some(family) = order.last().and_then(|f| families.get_mut(f))
        {
            family.samples.push(sample);
        }
    }
    let cumulative = AggregationTemporality::Cumulative as i32;
    let number = |s: &Sample| NumberDataPoint {
        attributes: attributes(&s.labels),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(s.value)),
        ..Default::default()
    };
    let metrics = order
        .iter()
        .filter_map(|name| {
            let f = &families[name];
            let data = match f.kind.as_str() {
                "counter" => metric::Data::Sum(Sum {
                    data_points: f.samples.iter().map(number).collect(),
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                }),
                "gauge" => metric::Data::Gauge(Gauge {
                    data_points: f.samples.iter().map(number).collect(),
                }),
                "histogram" => metric::Data::Histogram(Histogram {
                    data_points: histogram_points(name, &f.samples, start, now),
                    aggregation_temporality: cumulative,
                }),
                _ => return None,
            };
            Some(Metric {
                name: name.clone(),
                description: f.help.clone(),
                data: Some(data),
                ..Default::default()
            })
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: attributes(&[("service.name".into(), service.into())]),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "wasm-activity".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A histogram family's samples (`_bucket` with `le`, `_sum`, `_count`)
/// grouped by their other labels; buckets from cumulative to per-bucket.
fn histogram_points(
    name: &str,
    samples: &[Sample],
    start: u64,
    now: u64,
) -> Vec<HistogramDataPoint> {
    let mut points: BTreeMap<Labels, HistogramDataPoint> = BTreeMap::new();
    // Per label set: (upper bound, observations at or below it).
    let mut cumulative: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    for s in samples {
        let (le, labels): (Vec<_>, Vec<_>) = s.labels.iter().cloned().partition(|(k, _)| k == "le");
        let point = points
            .entry(labels.clone())
            .or_insert_with(|| HistogramDataPoint {
                attributes: attributes(&labels),
                start_time_unix_nano: start,
                time_unix_nano: now,
                ..Default::default()
            });
        match s.name.strip_prefix(name) {
            Some("_sum") => point.sum = Some(s.value),
            Some("_count") => point.count = s.value as u64,
            Some("_bucket") => {
                let bound = le.first().and_then(|(_, v)| {
                    if v == "+Inf" {
                        Some(f64::INFINITY)
                    } else {
                        v.parse().ok()
                    }
                });
                if let Some(bound) = bound {
                    cumulative.entry(labels).or_default().push((bound, s.value));
                }
            }
            _ => {}
        }
    }
    for (labels, mut buckets) in cumulative {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let point = points.get_mut(&labels).expect("made above");
        let mut below = 0.0;
        for (bound, count) in buckets {
            if bound.is_finite() {
                point.explicit_bounds.push(bound);
            }
            point.bucket_counts.push((count - below).max(0.0) as u64);
            below = count;
        }
    }
    points.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_becomes_the_same_metrics_in_otlp() {
        let text = "# HELP wasm_activity_tasks_finished Tasks finished.\n\
            # TYPE wasm_activity_tasks_finished counter\n\
            wasm_activity_tasks_finished_total{activity=\"a\",error=\"say \\\"hi\\\"\"} 3\n\
            # HELP wasm_activity_in_flight Tasks running now.\n\
            # TYPE wasm_activity_in_flight gauge\n\
            wasm_activity_in_flight{activity=\"a\"} 1\n\
            # HELP wasm_activity_task_seconds Task duration.\n\
            # TYPE wasm_activity_task_seconds histogram\n\
            wasm_activity_task_seconds_sum{activity=\"a\"} 0.5\n\
            wasm_activity_task_seconds_count{activity=\"a\"} 3\n\
            wasm_activity_task_seconds_bucket{le=\"0.1\",activity=\"a\"} 1\n\
            wasm_activity_task_seconds_bucket{le=\"1.0\",activity=\"a\"} 3\n\
            wasm_activity_task_seconds_bucket{le=\"+Inf\",activity=\"a\"} 3\n\
            # EOF\n";
        let r = request(text, "svc", 1);
        let metrics = &r.resource_metrics[0].scope_metrics[0].metrics;
        let names: Vec<_> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "wasm_activity_tasks_finished",
                "wasm_activity_in_flight",
                "wasm_activity_task_seconds"
            ]
        );
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("{:?}", metrics[0]);
        };
        assert!(sum.is_monotonic);
        let point = &sum.data_points[0];
        assert_eq!(point.value, Some(number_data_point::Value::AsDouble(3.0)));
        assert_eq!(
            point.attributes[1].value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("say \"hi\"".into()))
        );
        let Some(metric::Data::Histogram(h)) = &metrics[2].data else {
            panic!("{:?}", metrics[2]);
        };
        let p = &h.data_points[0];
        assert_eq!((p.count, p.sum), (3, Some(0.5)));
        assert_eq!(p.explicit_bounds, [0.1, 1.0]);
        assert_eq!(p.bucket_counts, [1, 2, 0]);
        assert_eq!(p.attributes.len(), 1, "le is not an attribute");
    }
}
