//! Traces over OTLP/HTTP: each task is a trace, exported to the collector
//! an operator already runs.
//!
//! Why it is shaped this way:
//!
//! * The task path must never wait on the collector. A finished span is
//!   handed to a bounded queue with `try_send` and nothing else; one thread
//!   of its own batches the queue and exports (its HTTP client blocks that
//!   thread only). When the queue is full or an export fails, the spans are
//!   dropped and counted (`wasm_activity_otlp_spans_dropped_total`, and a
//!   warning each time the count has grown), never retried at the tasks'
//!   expense.
//! * The `tracing` subscriber is installed before the config file is read,
//!   so the OpenTelemetry layer is always there but filtered off (a dynamic
//!   per-layer filter: no span data is built) until [`start`] learns an
//!   endpoint from the config or the `OTEL_EXPORTER_OTLP_*` variables.
//! * Spans that exist only for traces (slot wait, instantiate, guest run,
//!   heartbeat, report attempt, guest HTTP request) use the target
//!   [`SPAN_TARGET`], which [`for_logs`] hides from the log output: a log
//!   line still names the task span, as before.
//! * Only bounded values become attributes: names, ids, digests, outcomes,
//!   error labels (see `metrics::ErrorLabels`), service error codes. Guest
//!   log lines become span events as the log budget already let them
//!   through, redacted and escaped as in the logs.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The target of spans made for traces only (hidden from logs).
pub const SPAN_TARGET: &str = "wasm_activity_otel";

/// Spans a queue holds before new ones are dropped
/// (`OTEL_BSP_MAX_QUEUE_SIZE`).
const DEFAULT_QUEUE: usize = 2048;
/// Spans one export carries at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
const DEFAULT_BATCH: usize = 512;
/// How long a span may wait for a batch to fill (`OTEL_BSP_SCHEDULE_DELAY`, ms).
const DEFAULT_DELAY: Duration = Duration::from_secs(1);
/// How long stopping waits for the last export.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

static ENABLED: AtomicBool = AtomicBool::new(false);
static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

/// What the span processor (on the task threads) shares with the export
/// thread.
#[derive(Debug, Default)]
struct Shared {
    queue: OnceLock<SyncSender<SpanData>>,
    resource: Mutex<Option<Resource>>,
    stopping: AtomicBool,
    dropped: AtomicU64,
    done: Mutex<Option<Receiver<()>>>,
}

impl Shared {
    fn drop_spans(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        crate::metrics::global().otlp_spans_dropped.inc_by(n as u64);
    }
}

/// Hands each finished span to the export thread's queue, or counts it
/// dropped; never blocks.
#[derive(Debug, Clone)]
struct QueueProcessor(Arc<Shared>);

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        let Some(queue) = self.0.queue.get() else {
            return;
        };
        match queue.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.0.drop_spans(1),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.0.resource.lock().unwrap_or_else(|e| e.into_inner()) = Some(resource.clone());
    }
}

/// The OpenTelemetry layer for the process's subscriber: off until
/// [`start`] turns it on. Install it once, beside the log output (filtered
/// with [`for_logs`]).
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let shared = SHARED.get_or_init(Arc::default).clone();
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "wasm-activity".into());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(QueueProcessor(shared))
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("wasm-activity");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(
            tracing_subscriber::filter::filter_fn(|m| {
                *m.level() <= tracing::Level::INFO
                    && ENABLED.load(Ordering::Relaxed)
                    && (m.target().starts_with("wasm_activity") || m.target() == "guest")
            })
            // Debug and trace callsites stay disabled once and for all
            // (when the log filter does not want them either).
            .with_max_level_hint(tracing::level_filters::LevelFilter::INFO),
        )
}

/// Whether the log output shows `meta`: not the spans made for traces only.
pub fn for_logs(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() != SPAN_TARGET
}

/// Where traces go, from the config's `otlp_endpoint` and the standard
/// variables; `None` when neither names a collector.
fn traces_endpoint(config: Option<&str>) -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if sdk_disabled() || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none") {
        return None;
    }
    if let Some(url) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(url);
    }
    let base = var("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| config.map(str::to_string))?;
    Some(format!("{}/v1/traces", base.trim_end_matches('/')))
}

/// `OTEL_SDK_DISABLED=true`: no traces and no OTLP metrics, whatever
/// else is set.
pub(crate) fn sdk_disabled() -> bool {
    std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The only protocol spoken is OTLP/HTTP with protobuf: a variable asking
/// for another (gRPC to port 4317, JSON) is refused rather than answered
/// with requests its collector cannot read.
pub(crate) fn check_protocol() -> Result<(), TelemetryError> {
    for name in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ] {
        if let Ok(value) = std::env::var(name)
            && !value.trim().is_empty()
            && value.trim() != "http/protobuf"
        {
            return Err(TelemetryError::Protocol {
                name,
                value: crate::redact::escape(&crate::redact::truncate_chars(&value, 40))
                    .into_owned(),
            });
        }
    }
    Ok(())
}

/// Why traces could not be turned on.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter refused its settings.
    #[error(
        "cannot export traces to {endpoint}: {source} (fix `otlp_endpoint` or the OTEL_EXPORTER_OTLP_* variables)"
    )]
    Exporter {
        /// The traces endpoint.
        endpoint: String,
        /// What the exporter said.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A protocol other than OTLP/HTTP with protobuf was asked for.
    #[error(
        "{name} = {value:?}: only OTLP/HTTP with protobuf is spoken (set it to \"http/protobuf\" or \
         unset it, and point the endpoint at the collector's HTTP port, usually 4318)"
    )]
    Protocol {
        /// The variable.
        name: &'static str,
        /// Its value, cut and escaped.
        value: String,
    },
}

/// Turns traces on when a collector is configured: the export thread starts
/// and the layer starts recording. Does nothing when none is (or the layer
/// was not installed, or traces are on already). Call [`stop`] at exit.
pub(crate) fn start(config_endpoint: Option<&str>) -> Result<(), TelemetryError> {
    check_protocol()?;
    let Some(shared) = SHARED.get() else {
        return Ok(());
    };
    let Some(endpoint) = traces_endpoint(config_endpoint) else {
        return Ok(());
    };
    if shared.queue.get().is_some() {
        return Ok(());
    }
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    let queue_size = setting("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE);
    let batch = setting("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_BATCH).min(queue_size);
    let delay = Duration::from_millis(setting(
        "OTEL_BSP_SCHEDULE_DELAY",
        DEFAULT_DELAY.as_millis() as usize,
    ) as u64);
    let (tx, rx) = std::sync::mpsc::sync_channel(queue_size);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let thread_shared = shared.clone();
    let (built_tx, built_rx) = std::sync::mpsc::sync_channel(1);
    let target = endpoint.clone();
    // The exporter's blocking HTTP client is built, used and dropped on this
    // thread only: it must not live on the tasks' runtime.
    std::thread::Builder::new()
        .name("otlp-export".into())
        .spawn(move || {
            let built = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(target)
                .build();
            let mut exporter = match built {
                Ok(exporter) => {
                    let _ = built_tx.send(Ok(()));
                    exporter
                }
                Err(e) => {
                    let _ = built_tx.send(Err(e));
                    return;
                }
            };
            if let Some(resource) = thread_shared
                .resource
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                exporter.set_resource(resource);
            }
            export_loop(rx, exporter, &thread_shared, batch, delay);
            let _ = done_tx.send(());
        })
        .expect("spawning the OTLP export thread");
    match built_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(source)) => return Err(TelemetryError::Exporter { endpoint, source }),
        Err(_) => unreachable!("the export thread answers before it can end"),
    }
    // The drop warning has a thread of its own: the export thread may be
    // the one waiting on a stalled collector.
    let watched = shared.clone();
    std::thread::Builder::new()
        .name("otlp-drops".into())
        .spawn(move || watch_drops(&watched))
        .expect("spawning the OTLP drop watcher");
    *shared.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(done_rx);
    let _ = shared.queue.set(tx);
    ENABLED.store(true, Ordering::Relaxed);
    tracing::info!(%endpoint, queue = queue_size, "exporting traces over OTLP/HTTP");
    Ok(())
}

/// Calls [`stop`] when dropped.
pub(crate) struct StopOnDrop;

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        stop();
    }
}

/// Stops recording and exports what is queued, waiting at most a few
/// seconds for the collector.
pub(crate) fn stop() {
    let Some(shared) = SHARED.get() else {
        return;
    };
    if !ENABLED.swap(false, Ordering::Relaxed) {
        return;
    }
    shared.stopping.store(true, Ordering::Relaxed);
    let done = shared.done.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(done) = done
        && done.recv_timeout(FLUSH_TIMEOUT).is_err()
    {
        tracing::warn!(
            "the OTLP collector did not take the last spans within {FLUSH_TIMEOUT:?}; exiting without them"
        );
    }
}

/// Logs a warning each time (checked every second) the count of dropped
/// spans has grown, until traces stop.
fn watch_drops(shared: &Shared) {
    let mut warned = 0;
    while !shared.stopping.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped != warned {
            warned = dropped;
            tracing::warn!(
                dropped_total = dropped,
                "spans were dropped on the way to the OTLP collector (it is slow or unreachable, \
                 or the queue is too small: OTEL_BSP_MAX_QUEUE_SIZE); tasks are not affected"
            );
        }
    }
}

/// The export thread: a batch goes out when it is full or its oldest span
/// has waited `delay`; the queue is drained once more when stopping.
fn export_loop(
    rx: Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    shared: &Shared,
    batch_size: usize,
    delay: Duration,
) {
    let mut batch = Vec::with_capacity(batch_size);
    let mut due = Instant::now() + delay;
    loop {
        let stopping = shared.stopping.load(Ordering::Relaxed);
        // Wakes at least every 100 ms to notice a stop.
        let wait = due
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        match rx.recv_timeout(wait) {
            Ok(span) => {
                batch.push(span);
                if batch.len() < batch_size && Instant::now() < due && !stopping {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() < due && !stopping => continue,
            Err(_) => {}
        }
        if stopping {
            while let Ok(span) = rx.try_recv() {
                batch.push(span);
            }
        }
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(batch_size));
            let sent = std::mem::replace(&mut batch, rest);
            let n = sent.len();
            if futures_executor::block_on(exporter.export(sent)).is_err() {
                shared.drop_spans(n);
            }
            if !stopping {
                break;
            }
        }
        due = Instant::now() + delay;
        if stopping {
            return;
        }
    }
}

/// Sets an attribute the trace has and the log lines do not (traces on).
pub(crate) fn set_attribute(span: &tracing::Span, key: &'static str, value: &str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if ENABLED.load(Ordering::Relaxed) {
        span.set_attribute(key, value.to_string());
    }
}

/// Adds an event that happened at `at` (before the span began, for the
/// poll that handed the task out) with one number (traces on).
pub(crate) fn add_event_at(
    span: &tracing::Span,
    name: &'static str,
    at: std::time::SystemTime,
    key: &'static str,
    value: i64,
) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if ENABLED.load(Ordering::Relaxed) {
        span.add_event_with_timestamp(name, at, vec![opentelemetry::KeyValue::new(key, value)]);
    }
}

/// Marks the span's status as an error (traces on).
pub(crate) fn set_error(span: &tracing::Span) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if ENABLED.load(Ordering::Relaxed) {
        span.set_status(opentelemetry::trace::Status::error(""));
    }
}

/// The W3C `traceparent` of the current span, when traces are on.
pub(crate) fn traceparent(span: &tracing::Span) -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_endpoint_gets_its_path_from_a_base_url() {
        // The variables are not set in the unit tests' environment.
        assert_eq!(traces_endpoint(None), None);
        assert_eq!(
            traces_endpoint(Some("http://127.0.0.1:4318/")).as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
    }
}
