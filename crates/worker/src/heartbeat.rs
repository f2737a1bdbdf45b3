//! Heartbeats on the guest's behalf.
//!
//! Each running task heartbeats from the moment the poll returned until the
//! result is delivered (a slow report must not let the task time out). The
//! loop is a future the task polls beside its guest and its report, in the
//! same tokio task: spawning it as a task of its own cost every task a spawn,
//! a cancellation and two cross-thread wake-ups, most of the host's extra
//! CPU over a native worker at low concurrency (see BENCHMARKS.md). Guest
//! code still cannot hold it up: a guest yields at every epoch tick (10 ms),
//! and the task's next poll checks the heartbeat's timer.
//!
//! What the service answers drives the task: `TaskTimedOut`,
//! `TaskDoesNotExist` or `InvalidToken` mean the task is over (execution
//! stopped or timed out), so the guest is stopped and nothing is reported; a
//! cancel request turns the guest's `cancelled()` true. Transient errors are
//! retried sooner than the interval, with jittered backoff, so one lost
//! heartbeat does not add up to a missed `HeartbeatSeconds`.
//!
//! The details sent are the guest's latest progress report. It was redacted
//! when the guest made it (the host interface, through the task's
//! `GuestLog`), before anything cut it; here it is cut to what the service
//! accepts (its [`ReportLimits`](crate::service::ReportLimits); none for
//! Step Functions, whose heartbeats carry no details), so a cut can only
//! shorten redacted text.

use crate::backoff::Backoff;
use crate::redact::truncate_chars;
use crate::runtime::{StopReason, TaskControl};
use crate::service::{ActivityService, TaskToken, Verdict};
use std::time::Duration;
use tokio::time::Instant;

/// Counts for the task's log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeartbeatStats {
    /// Heartbeats the service accepted.
    pub(crate) sent: u32,
    /// Heartbeats that failed.
    pub(crate) failed: u32,
    /// Longest time between accepted heartbeats (or from the start to the
    /// first), as the service saw them: what `HeartbeatSeconds` must exceed.
    pub(crate) max_gap: Duration,
}

/// One task's heartbeats: [`Heartbeat::run`] sends them for as long as it is
/// polled; dropping that future ends them (abandoning one in flight).
pub(crate) struct Heartbeat<'a> {
    service: &'a dyn ActivityService,
    token: &'a TaskToken,
    interval: Duration,
    control: &'a TaskControl,
    stats: HeartbeatStats,
}

const RETRY_BASE: Duration = Duration::from_millis(250);

impl<'a> Heartbeat<'a> {
    /// Heartbeats for `token` every `interval`, the first one `interval`
    /// from now.
    pub(crate) fn new(
        service: &'a dyn ActivityService,
        token: &'a TaskToken,
        interval: Duration,
        control: &'a TaskControl,
    ) -> Self {
        Heartbeat {
            service,
            token,
            interval,
            control,
            stats: HeartbeatStats::default(),
        }
    }

    /// What was sent so far.
    pub(crate) fn stats(&self) -> HeartbeatStats {
        self.stats
    }

    /// Heartbeats until the service says the task is over; then it has
    /// stopped the guest and returns. Otherwise it never returns: poll it
    /// beside the task's work and drop it when the result is delivered.
    pub(crate) async fn run(&mut self) {
        let (token, control, interval) = (self.token, self.control, self.interval);
        let mut backoff = Backoff::new(RETRY_BASE, interval);
        let mut next = Instant::now() + interval;
        let mut last = Instant::now();
        let details_limit = self.service.limits().heartbeat_details_chars;
        loop {
            tokio::time::sleep_until(next).await;
            let progress =
                details_limit.and_then(|max| Some(truncate_chars(&control.progress()?, max)));
            let span = tracing::info_span!(
                target: "wasm_activity_otel",
                "heartbeat",
                verdict = tracing::field::Empty,
                code = tracing::field::Empty,
            );
            let answer = tracing::Instrument::instrument(
                self.service.heartbeat(token, progress.as_deref()),
                span.clone(),
            )
            .await;
            match &answer {
                Ok(ack) => span.record(
                    "verdict",
                    if ack.cancel_requested {
                        "cancel requested"
                    } else {
                        "ok"
                    },
                ),
                Err(e) => span
                    .record("verdict", tracing::field::debug(&e.verdict))
                    .record("code", e.code.as_str()),
            };
            match answer {
                Ok(ack) => {
                    self.stats.sent += 1;
                    self.stats.max_gap = self.stats.max_gap.max(last.elapsed());
                    last = Instant::now();
                    crate::metrics::global().heartbeat(true);
                    backoff.reset();
                    if ack.cancel_requested && !control.is_cancel_requested() {
                        tracing::info!(task = %token.short_id(), "the service requested cancellation");
                        control.request_cancel();
                    }
                    next = Instant::now() + interval;
                }
                Err(e) if e.verdict == Verdict::TaskGone => {
                    self.stats.failed += 1;
                    crate::metrics::global().heartbeat(false);
                    tracing::info!(task = %token.short_id(), "heartbeat: {e}; stopping the guest");
                    control.stop(StopReason::TaskGone { code: e.code });
                    return;
                }
                Err(e) => {
                    self.stats.failed += 1;
                    crate::metrics::global().heartbeat(false);
                    // What will pass soon is retried sooner than the
                    // interval; what needs someone to fix a setting is
                    // tried again at the next interval.
                    let soon = matches!(
                        e.verdict,
                        Verdict::Throttled
                            | Verdict::Credentials
                            | Verdict::Unavailable
                            | Verdict::NoAnswer
                            | Verdict::NotSent
                    );
                    if soon {
                        let delay = backoff.next_delay().max(RETRY_BASE / 5);
                        tracing::warn!(task = %token.short_id(), "heartbeat failed ({e}); retrying in {delay:?}");
                        next = Instant::now() + delay;
                    } else {
                        tracing::warn!(task = %token.short_id(), "heartbeat refused ({e}); trying again at the next interval");
                        next = Instant::now() + interval;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::fake::{self, Call, FakeService};
    use crate::service::{ReportLimits, sfn, swf};
    use std::sync::Arc;
    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;

    const INTERVAL: Duration = Duration::from_secs(10);

    /// A heartbeat running in a task of its own, as the test's "task".
    struct Running {
        stop: CancellationToken,
        handle: JoinHandle<HeartbeatStats>,
    }

    impl Running {
        /// Drops the heartbeat, as a finished task does, and returns its counts.
        async fn stop(self) -> HeartbeatStats {
            self.stop.cancel();
            self.handle.await.unwrap()
        }
    }

    fn start(svc: &Arc<FakeService>, control: &Arc<TaskControl>) -> Running {
        let (svc, control) = (svc.clone(), control.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let handle = tokio::spawn(async move {
            let token = TaskToken::new("tok");
            let mut heartbeat = Heartbeat::new(svc.as_ref(), &token, INTERVAL, &control);
            tokio::select! {
                () = stopped.cancelled() => {}
                () = heartbeat.run() => {}
            }
            heartbeat.stats()
        });
        Running { stop, handle }
    }

    /// Lets spawned tasks run after a time jump.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn beats_every_interval_from_the_start() {
        let svc = Arc::new(FakeService::default());
        let control = Arc::new(TaskControl::new());
        let t0 = Instant::now();
        let hb = start(&svc, &control);
        tokio::time::sleep(Duration::from_secs(35)).await;
        settle().await;
        let stats = hb.stop().await;
        let offsets: Vec<u64> = svc
            .call_times()
            .iter()
            .map(|t| (*t - t0).as_secs())
            .collect();
        assert_eq!(offsets, vec![10, 20, 30]);
        assert_eq!((stats.sent, stats.failed), (3, 0));
        assert_eq!(stats.max_gap, INTERVAL, "the gaps the service saw");
        assert!(
            svc.calls()
                .iter()
                .all(|c| matches!(c, Call::Heartbeat(t, None) if t == "tok"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sends_latest_progress_as_details() {
        let svc = Arc::new(FakeService {
            limits: Some(swf::LIMITS),
            ..FakeService::default()
        });
        let control = Arc::new(TaskControl::new());
        let hb = start(&svc, &control);
        control.set_progress("1 of 3".into());
        control.set_progress("2 of 3".into());
        tokio::time::sleep(Duration::from_secs(11)).await;
        settle().await;
        hb.stop().await;
        assert_eq!(
            svc.calls(),
            vec![Call::Heartbeat("tok".into(), Some("2 of 3".into()))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn progress_details_are_cut_to_the_service_limit() {
        // Each service's own limit: SWF's, and one no service has.
        for max in [crate::aws::SWF_MAX_HEARTBEAT_DETAILS, 100] {
            let svc = Arc::new(FakeService {
                limits: Some(ReportLimits {
                    heartbeat_details_chars: Some(max),
                    ..swf::LIMITS
                }),
                ..FakeService::default()
            });
            let control = Arc::new(TaskControl::new());
            let hb = start(&svc, &control);
            control.set_progress("p".repeat(max * 4));
            tokio::time::sleep(Duration::from_secs(11)).await;
            settle().await;
            hb.stop().await;
            let calls = svc.calls();
            let [Call::Heartbeat(_, Some(details))] = calls.as_slice() else {
                panic!("{calls:?}")
            };
            assert_eq!(details.chars().count(), max);
            assert!(details.ends_with("characters cut]"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_whose_heartbeats_carry_no_details_gets_none() {
        let svc = Arc::new(FakeService {
            limits: Some(sfn::LIMITS),
            ..FakeService::default()
        });
        let control = Arc::new(TaskControl::new());
        let hb = start(&svc, &control);
        control.set_progress("1 of 3".into());
        tokio::time::sleep(Duration::from_secs(11)).await;
        settle().await;
        hb.stop().await;
        assert_eq!(svc.calls(), vec![Call::Heartbeat("tok".into(), None)]);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failure_is_retried_before_the_next_interval() {
        let svc = Arc::new(FakeService::default());
        svc.heartbeat_errors
            .lock()
            .unwrap()
            .push_back(fake::transient());
        let control = Arc::new(TaskControl::new());
        let t0 = Instant::now();
        let hb = start(&svc, &control);
        tokio::time::sleep(Duration::from_secs(15)).await;
        settle().await;
        let stats = hb.stop().await;
        let times = svc.call_times();
        assert_eq!(times.len(), 2, "{times:?}");
        // The retry comes within the first backoff ceiling, long before 20 s.
        assert!(
            times[1] - t0 <= Duration::from_secs(10) + RETRY_BASE,
            "{:?}",
            times[1] - t0
        );
        assert_eq!((stats.sent, stats.failed), (1, 1));
        assert!(!control.is_stopped());
    }

    #[tokio::test(start_paused = true)]
    async fn task_gone_stops_the_guest_and_the_loop() {
        let svc = Arc::new(FakeService::default());
        svc.heartbeat_errors.lock().unwrap().push_back(fake::gone());
        let control = Arc::new(TaskControl::new());
        let hb = start(&svc, &control);
        tokio::time::sleep(Duration::from_secs(60)).await;
        settle().await;
        assert!(control.is_stopped());
        assert_eq!(
            control.stop_reason(),
            Some(&StopReason::TaskGone {
                code: "TaskTimedOut".into()
            })
        );
        let stats = hb.stop().await;
        assert_eq!((stats.sent, stats.failed), (0, 1));
        assert_eq!(svc.calls().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_request_reaches_the_guest_without_stopping_it() {
        let svc = Arc::new(FakeService::default());
        *svc.cancel_after_heartbeats.lock().unwrap() = Some(2);
        let control = Arc::new(TaskControl::new());
        let hb = start(&svc, &control);
        tokio::time::sleep(Duration::from_secs(15)).await;
        settle().await;
        assert!(!control.is_cancel_requested());
        tokio::time::sleep(Duration::from_secs(10)).await;
        settle().await;
        assert!(control.is_cancel_requested());
        assert!(!control.is_stopped());
        hb.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_loop_without_another_beat() {
        let svc = Arc::new(FakeService::default());
        let control = Arc::new(TaskControl::new());
        let hb = start(&svc, &control);
        tokio::time::sleep(Duration::from_secs(5)).await;
        hb.stop().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(svc.calls().is_empty());
    }
}
