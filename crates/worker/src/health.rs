//! Whether the worker is serving: what `/readyz` answers, the per-source
//! polling gauges, and when a failing poll is worth a log line.
//!
//! A process that runs but polls nothing (no credentials, an activity that
//! does not exist, an endpoint that is down) must not look healthy, so
//! readiness is about the service handing out work, not about the process:
//! a source is *serving* once the service has accepted one of its polls and
//! until [`FAILING_AFTER`] polls in a row fail. A long poll that finds no
//! task is answered only after up to a minute, so a source's *first* poll
//! counts as accepted once the service has held it open for
//! [`ACCEPTED_AFTER`]: both services refuse a poll they will not serve
//! (unknown activity, bad credentials, a malformed request, throttling) at
//! once. Only an answer clears failures, though: a peer that holds every
//! poll open and then times it out is failing, not serving.
//!
//! Logs follow the same facts: a source's poll error is logged when it
//! differs from the last one logged (not every retry), and its recovery
//! once, so an expired or revoked credential is one line with its fix, not
//! a line per retry for hours.

use crate::metrics;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long the service must hold a poll open for it to count as accepted.
pub(crate) const ACCEPTED_AFTER: Duration = Duration::from_secs(2);

/// Polls failing in a row (across a source's pollers) that make the source
/// not serving.
pub(crate) const FAILING_AFTER: u32 = 3;

/// One source's polling health (`activity.NAME` or `swf.NAME`).
pub(crate) struct SourceHealth {
    key: String,
    /// False once the source is no longer served: its last polls may still
    /// return, and must not touch a newer source's gauges.
    active: AtomicBool,
    /// Set once any poll was accepted: after that, polls need no timer to
    /// be accepted early (read per poll, without the lock).
    ever_accepted: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    accepted: bool,
    failures: u32,
    /// The last error, for `/readyz`.
    last_error: Option<String>,
    /// What was last logged: an error's kind, or `None` once it recovered.
    logged: Option<String>,
    /// When the last failure came back: a poll started before it says
    /// nothing about now.
    failed_at: Option<Instant>,
}

/// What a poll result means for the log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// Nothing new to say.
    Quiet,
    /// A failure unlike the last one logged: log it.
    NewFailure,
    /// Polls work again after this many failures: log it once.
    Recovered(u32),
}

impl SourceHealth {
    fn new(key: &str) -> SourceHealth {
        let health = SourceHealth {
            key: key.to_string(),
            active: AtomicBool::new(true),
            ever_accepted: AtomicBool::new(false),
            state: Mutex::default(),
        };
        health.publish(&State::default());
        health
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The service has held a poll open for [`ACCEPTED_AFTER`]: enough for
    /// a source's first poll to count as accepted, not to clear failures.
    pub(crate) fn held_open(&self) {
        let mut s = self.state();
        if !s.accepted {
            s.accepted = true;
            self.ever_accepted.store(true, Ordering::Relaxed);
            self.publish(&s);
        }
    }

    /// Whether any of this source's polls was ever accepted.
    pub(crate) fn ever_accepted(&self) -> bool {
        self.ever_accepted.load(Ordering::Relaxed)
    }

    /// The service answered a poll started at `started`. A poll that
    /// started before the last failure came back proves nothing about now
    /// (several pollers overlap), so it changes nothing.
    pub(crate) fn accepted(&self, started: Instant) -> Note {
        let mut s = self.state();
        if s.failed_at.is_some_and(|at| started < at) {
            return Note::Quiet;
        }
        let failures = std::mem::take(&mut s.failures);
        s.accepted = true;
        self.ever_accepted.store(true, Ordering::Relaxed);
        s.last_error = None;
        let note = match s.logged.take() {
            Some(_) => Note::Recovered(failures),
            None => Note::Quiet,
        };
        self.publish(&s);
        note
    }

    /// A poll failed with an error of `kind` (what stays the same while the
    /// cause does: the verdict and code), described by `error`.
    pub(crate) fn failed(&self, kind: &str, error: &str) -> Note {
        let mut s = self.state();
        s.failures = s.failures.saturating_add(1);
        s.failed_at = Some(Instant::now());
        s.last_error = Some(error.to_string());
        let note = if s.logged.as_deref() == Some(kind) {
            Note::Quiet
        } else {
            s.logged = Some(kind.to_string());
            Note::NewFailure
        };
        self.publish(&s);
        note
    }

    fn serving(s: &State) -> bool {
        s.accepted && s.failures < FAILING_AFTER
    }

    fn publish(&self, s: &State) {
        if !self.active.load(Ordering::SeqCst) {
            return;
        }
        let m = metrics::global();
        m.source_serving(&self.key, Self::serving(s));
        m.source_poll_failures(&self.key, s.failures);
    }

    /// This source's polling health for the live view (`/tasks`).
    fn snapshot(&self) -> serde_json::Value {
        let s = self.state();
        serde_json::json!({
            "source": self.key,
            "serving": Self::serving(&s),
            "accepted": s.accepted,
            "failures": s.failures,
            "last_error": s.last_error.as_deref().map(|e| crate::redact::escape(e).into_owned()),
        })
    }

    /// Why this source is not serving, if it is not.
    fn not_serving(&self) -> Option<String> {
        let s = self.state();
        if Self::serving(&s) {
            return None;
        }
        let why = match (&s.last_error, s.accepted) {
            (Some(e), _) if s.failures >= FAILING_AFTER => {
                format!("{} polls in a row failed; the last: {e}", s.failures)
            }
            (Some(e), false) => format!("no poll accepted yet; the last failed: {e}"),
            _ => "no poll accepted yet".to_string(),
        };
        Some(format!("{}: {}", self.key, crate::redact::escape(&why)))
    }
}

/// The worker's readiness: started, and every source serving.
#[derive(Default)]
pub(crate) struct Health {
    started: AtomicBool,
    sources: Mutex<BTreeMap<String, Arc<SourceHealth>>>,
}

impl Health {
    fn sources(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<SourceHealth>>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the worker started (every source launched) or stopping.
    pub(crate) fn set_started(&self, started: bool) {
        self.started.store(started, Ordering::SeqCst);
    }

    /// A fresh health for source `key` (a replaced source starts over: its
    /// new poll target has not been accepted yet).
    pub(crate) fn register(&self, key: &str) -> Arc<SourceHealth> {
        let health = Arc::new(SourceHealth::new(key));
        self.sources().insert(key.to_string(), health.clone());
        health
    }

    /// Forgets `health` (its source is no longer served) unless a newer
    /// source took its key.
    pub(crate) fn deregister(&self, health: &Arc<SourceHealth>) {
        // Under the state lock, so no poll of it still returning can
        // publish after its gauges are forgotten (publish runs under it).
        {
            let _state = health.state();
            health.active.store(false, Ordering::SeqCst);
        }
        let mut sources = self.sources();
        if sources
            .get(&health.key)
            .is_some_and(|h| Arc::ptr_eq(h, health))
        {
            sources.remove(&health.key);
            metrics::global().forget_source(&health.key);
        }
    }

    /// Every source's polling health, by key.
    pub(crate) fn snapshot(&self) -> Vec<serde_json::Value> {
        self.sources().values().map(|s| s.snapshot()).collect()
    }

    /// `Ok` with a summary if ready, else `Err` with every reason, one per
    /// line.
    pub(crate) fn readiness(&self) -> Result<String, String> {
        if !self.started.load(Ordering::SeqCst) {
            return Err("not ready: the worker is starting or stopping\n".into());
        }
        let sources = self.sources();
        let mut reasons = String::new();
        for s in sources.values() {
            if let Some(why) = s.not_serving() {
                let _ = writeln!(reasons, "{why}");
            }
        }
        if reasons.is_empty() {
            Ok(format!("ready: {} sources serving\n", sources.len()))
        } else {
            Err(format!("not ready:\n{reasons}"))
        }
    }
}

/// The process's health.
pub(crate) fn global() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(Health::default)
}

/// Serves `/metrics`, `/healthz` (liveness: the process answers),
/// `/readyz` (readiness, above), and the live view (see
/// [`crate::journal`]: JSON at `/tasks`, a page at `/`) on `addr` until
/// `stop`. Optional (`metrics_addr`); bind it to 127.0.0.1 or a private
/// interface: the live view shows guest log lines (redacted).
pub(crate) async fn serve(
    addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(|| async { metrics::global().encode() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/tasks", get(|| async { axum::Json(live_view()) }))
        .route(
            "/",
            get(|| async { axum::response::Html(crate::journal::PAGE) }),
        )
        .route(
            "/readyz",
            get(|| async {
                match global().readiness() {
                    Ok(summary) => (StatusCode::OK, summary),
                    Err(reasons) => (StatusCode::SERVICE_UNAVAILABLE, reasons),
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    tracing::info!(
        "metrics on http://{bound}/metrics (health: /healthz, readiness: /readyz, live view: /, /tasks)"
    );
    Ok(bound)
}

/// The worker's live view as JSON (what `/tasks` serves): the journal with
/// this module's polling health beside it. For `dev` too, which shows it on
/// the embedded endpoint's page, in the same process.
pub fn live_view() -> serde_json::Value {
    crate::journal::global().to_json(global().snapshot())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_serves_from_its_first_accepted_poll_until_polls_keep_failing() {
        let health = Health::default();
        assert!(health.readiness().unwrap_err().contains("starting"));
        let a = health.register("activity.test-1");
        health.set_started(true);
        let e = health.readiness().unwrap_err();
        assert!(e.contains("activity.test-1: no poll accepted yet"), "{e}");

        assert_eq!(
            a.failed("Credentials/Expired", "ExpiredToken: gone"),
            Note::NewFailure
        );
        let e = health.readiness().unwrap_err();
        assert!(e.contains("the last failed: ExpiredToken: gone"), "{e}");

        assert_eq!(a.accepted(Instant::now()), Note::Recovered(1));
        assert_eq!(health.readiness().unwrap(), "ready: 1 sources serving\n");
        assert_eq!(a.accepted(Instant::now()), Note::Quiet);

        // Failures below the threshold keep it serving; the same error is
        // logged once.
        assert_eq!(
            a.failed("Unavailable/HTTP 503", "HTTP 503"),
            Note::NewFailure
        );
        assert_eq!(a.failed("Unavailable/HTTP 503", "HTTP 503"), Note::Quiet);
        assert!(health.readiness().is_ok());
        assert_eq!(a.failed("Unavailable/HTTP 503", "HTTP 503"), Note::Quiet);
        let e = health.readiness().unwrap_err();
        assert!(
            e.contains("activity.test-1: 3 polls in a row failed; the last: HTTP 503"),
            "{e}"
        );
        // A different error is news.
        let before = Instant::now();
        assert_eq!(a.failed("NoAnswer/Timeout", "Timeout"), Note::NewFailure);
        // A poll that started before that failure proves nothing.
        assert_eq!(a.accepted(before), Note::Quiet);
        assert!(health.readiness().is_err());
        let snapshot = health.snapshot();
        assert_eq!(snapshot[0]["source"], "activity.test-1");
        assert_eq!(snapshot[0]["serving"], false);
        assert_eq!(snapshot[0]["failures"], 4);
        assert_eq!(snapshot[0]["last_error"], "Timeout");
        assert_eq!(a.accepted(Instant::now()), Note::Recovered(4));
        assert!(health.readiness().is_ok());
        assert_eq!(health.snapshot()[0]["serving"], true);
    }

    #[test]
    fn a_replaced_source_starts_over_and_the_old_one_cannot_remove_it() {
        let health = Health::default();
        health.set_started(true);
        let old = health.register("swf.test-2");
        old.accepted(Instant::now());
        assert!(health.readiness().is_ok());
        let new = health.register("swf.test-2");
        assert!(
            health
                .readiness()
                .unwrap_err()
                .contains("swf.test-2: no poll accepted yet")
        );
        health.deregister(&old);
        assert!(health.readiness().is_err(), "the new source is still there");
        new.accepted(Instant::now());
        assert!(health.readiness().is_ok());
        health.deregister(&new);
        assert_eq!(health.readiness().unwrap(), "ready: 0 sources serving\n");
    }

    #[test]
    fn guest_free_reasons_are_still_escaped() {
        let health = Health::default();
        health.set_started(true);
        let a = health.register("activity.test-3");
        a.failed("x", "bad\nline\u{1b}[31m");
        let e = health.readiness().unwrap_err();
        assert_eq!(e.lines().count(), 2, "{e:?}");
        assert!(!e.contains('\u{1b}'), "{e:?}");
    }
}
