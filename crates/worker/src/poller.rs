//! Long-polling one activity.
//!
//! A poller takes a concurrency slot *before* it polls: a task handed out is
//! a promise to run it, so the worker never asks for a task it has no room
//! for. Several pollers per activity keep a poll in flight while others'
//! tasks start. Empty polls poll again at once; errors back off with jitter.
//! On shutdown a poller starts no new poll but lets the one in flight return
//! (see [`crate::shutdown`]). Every poll's fate feeds the source's
//! [`SourceHealth`], which decides readiness and which errors are logged.

use crate::backoff::Backoff;
use crate::health::{self, Note, SourceHealth};
use crate::registry::Route;
use crate::service::{ActivityService, ServiceError, Task, Verdict};
use crate::shutdown::Shutdown;
use crate::slots::Slots;
use crate::task;
use crate::tenant::{Slot, TenantGate};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(60);

/// Everything the pollers of one activity (or SWF task list) share.
#[derive(Clone)]
pub(crate) struct Poller {
    /// Name for logs: the activity or task list key in the config.
    pub(crate) name: String,
    /// The config key to fix when the service says the source is wrong.
    pub(crate) config_key: String,
    /// Long polls in flight at once.
    pub(crate) pollers: usize,
    /// Where polled tasks run.
    pub(crate) route: Route,
    /// Where its tasks come from.
    pub(crate) service: Arc<dyn ActivityService>,
    /// Free task slots (`max_concurrent`), kept by the source's key across
    /// reloads.
    pub(crate) slots: Arc<Slots>,
    /// Free instance slots of the engine's pool, shared by every source and
    /// sized at start: a task takes one before its guest starts (heartbeating
    /// while it waits), so a reload that adds concurrency makes tasks wait
    /// instead of failing them. Idle polls hold none.
    pub(crate) pool: Arc<Semaphore>,
    /// The tenant's caps, and the memory one task reserves under them.
    pub(crate) tenant: Option<(Arc<TenantGate>, u64)>,
    /// Running tasks, awaited on shutdown.
    pub(crate) tasks: TaskTracker,
    /// Shutdown stages.
    pub(crate) shutdown: Shutdown,
}

impl Poller {
    /// Runs `pollers` poll loops until shutdown; returns when all have
    /// stopped and their polls in flight have returned.
    pub(crate) async fn run(self, health: Arc<SourceHealth>) {
        let mut loops = tokio::task::JoinSet::new();
        for index in 0..self.pollers {
            loops.spawn(self.clone().poll_loop(index, health.clone()));
        }
        while loops.join_next().await.is_some() {}
    }

    /// One long poll. A source's first poll that the service holds open for
    /// [`health::ACCEPTED_AFTER`] is accepted before it returns (see
    /// [`crate::health`]).
    async fn poll(&self, health: &SourceHealth) -> Result<Option<Task>, ServiceError> {
        let started = std::time::Instant::now();
        let poll = self.service.poll();
        if health.ever_accepted() {
            // Only a first acceptance can come early: no timer per poll.
            let result = poll.await;
            return self.outcome(health, started, result);
        }
        tokio::pin!(poll);
        tokio::select! {
            result = &mut poll => return self.outcome(health, started, result),
            () = tokio::time::sleep(health::ACCEPTED_AFTER) => {}
        }
        health.held_open();
        let result = poll.await;
        self.outcome(health, started, result)
    }

    fn outcome(
        &self,
        health: &SourceHealth,
        started: std::time::Instant,
        result: Result<Option<Task>, ServiceError>,
    ) -> Result<Option<Task>, ServiceError> {
        match &result {
            Ok(_) => self.note(health.accepted(started)),
            Err(e) => {
                let kind = format!("{:?}/{}", e.verdict, e.code);
                if health.failed(&kind, &e.to_string()) == Note::Quiet {
                    tracing::debug!(activity = %self.name, "polling failed again: {e}");
                } else {
                    self.log_poll_error(e);
                }
            }
        }
        result
    }

    fn note(&self, note: Note) {
        if let Note::Recovered(failures) = note {
            tracing::info!(
                activity = %self.name,
                "polling {} works again (after {failures} failed polls)",
                self.service.describe()
            );
        }
    }

    async fn poll_loop(self, index: usize, health: Arc<SourceHealth>) {
        let name = self.name.clone();
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        tracing::debug!(activity = %name, poller = index, "poller started");
        loop {
            let slot = tokio::select! {
                biased;
                () = self.shutdown.initiated() => break,
                slot = self.slots.acquire() => slot,
            };
            let tenant = match &self.tenant {
                None => None,
                Some((gate, memory)) => tokio::select! {
                    biased;
                    () = self.shutdown.initiated() => break,
                    permit = gate.acquire(*memory) => Some(permit),
                },
            };
            let slot = Slot::new(slot, tenant);
            if self.shutdown.is_initiated() {
                break;
            }
            // Not raced against shutdown: an abandoned poll can still be
            // handed a task, which would then be lost until it times out.
            let polling = std::time::Instant::now();
            match self.poll(&health).await {
                Ok(Some(task)) => {
                    let handed_out = task::HandOut::since(polling);
                    backoff.reset();
                    crate::metrics::global().poll(&name, "task");
                    match self.route.resolve(&task) {
                        Ok(activity) => {
                            let run = task::run(
                                task,
                                handed_out,
                                activity,
                                self.service.clone(),
                                slot,
                                self.pool.clone(),
                                self.shutdown.clone(),
                            );
                            self.tasks.spawn(run);
                        }
                        Err(reason) => {
                            self.tasks.spawn(task::refuse(
                                task,
                                reason,
                                self.service.clone(),
                                slot,
                            ));
                        }
                    }
                }
                Ok(None) => {
                    backoff.reset();
                    crate::metrics::global().poll(&name, "empty");
                }
                Err(e) => {
                    drop(slot);
                    crate::metrics::global().poll(&name, "error");
                    let delay = backoff.next_delay();
                    tracing::debug!(activity = %name, "polling {} again in {delay:.1?} ({e})", self.service.describe());
                    tokio::select! {
                        () = self.shutdown.initiated() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::debug!(activity = %name, poller = index, "poller stopped");
    }

    /// Logs a poll error with its fix: once per kind of error, not per
    /// retry (retries back off up to a minute, and go on until fixed).
    fn log_poll_error(&self, e: &ServiceError) {
        let name = self.name.as_str();
        let key = self.config_key.as_str();
        let what = self.service.describe();
        let (code, message) = (e.code.as_str(), e.message.as_str());
        match e.verdict {
            Verdict::Refused if code == "ActivityDoesNotExist" => tracing::error!(
                activity = name,
                "activity {what} does not exist ({message}); create it (aws stepfunctions create-activity) \
                 or fix {key}; polling again until it works"
            ),
            Verdict::Refused if code == "InvalidArn" => tracing::error!(
                activity = name,
                "the service says {what} is not a valid activity ARN ({message}); fix {key}; \
                 polling again until it works"
            ),
            Verdict::Refused | Verdict::Misconfigured => tracing::error!(
                activity = name,
                "polling {what} was refused: {e}; check {key}; polling again until it works"
            ),
            Verdict::Credentials => tracing::error!(
                activity = name,
                "polling {what} was refused for the worker's credentials: {e}; {} (states:GetActivityTask \
                 or swf:PollForActivityTask); polling again until it works",
                crate::service::credentials::FIX
            ),
            _ => tracing::warn!(
                activity = name,
                "polling {what} failed: {e}; polling again until it works"
            ),
        }
    }
}

/// The poll loop with a fake service and a scripted handler, on tokio's
/// paused clock: the slot rule, concurrency and shutdown stages.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;
    use crate::registry::testing::{Scripted, activity};
    use crate::registry::{Component, Route};
    use crate::service::TaskToken;
    use crate::service::fake::{Call, FakeService};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn task(n: usize) -> Task {
        Task {
            token: TaskToken::new(format!("token-{n}")),
            input: "{}".into(),
            activity_type: None,
        }
    }

    struct Rig {
        health: Health,
        service: Arc<FakeService>,
        shutdown: Shutdown,
        tasks: TaskTracker,
        running: Arc<AtomicUsize>,
        max_running: Arc<AtomicUsize>,
        runs: Arc<AtomicUsize>,
        poller: tokio::task::JoinHandle<()>,
    }

    /// A poller of one activity with `queued` tasks waiting, each taking
    /// `work` to run.
    fn start(queued: usize, max_concurrent: usize, pollers: usize, work: Duration) -> Rig {
        start_with(
            FakeService::default(),
            queued,
            max_concurrent,
            pollers,
            work,
        )
    }

    fn start_with(
        service: FakeService,
        queued: usize,
        max_concurrent: usize,
        pollers: usize,
        work: Duration,
    ) -> Rig {
        let service = Arc::new(service);
        service.tasks.lock().unwrap().extend((0..queued).map(task));
        let scripted = Scripted::new(work, "\"done\"");
        let (running, max_running, runs) = (
            scripted.running.clone(),
            scripted.max_running.clone(),
            scripted.runs.clone(),
        );
        let activity = activity(
            "core",
            Component::new("v1", scripted),
            Duration::from_secs(5),
        );
        let (shutdown, tasks) = (Shutdown::new(), TaskTracker::new());
        let poller = Poller {
            name: "core".into(),
            config_key: "activity.core.arn".into(),
            pollers,
            route: Route::One(activity),
            service: service.clone(),
            slots: Slots::new(max_concurrent),
            pool: Arc::new(Semaphore::new(64)),
            tenant: None,
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
        };
        let health = Health::default();
        health.set_started(true);
        let source = health.register("activity.core");
        Rig {
            health,
            service,
            shutdown,
            tasks,
            running,
            max_running,
            runs,
            poller: tokio::spawn(poller.run(source)),
        }
    }

    /// Advances the paused clock until `done` holds (at most an hour).
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_concurrent_and_a_slot_before_every_poll() {
        let rig = start(20, 3, 5, Duration::from_secs(10));
        until("20 reports", || rig.service.reports().len() == 20).await;
        assert!(rig.max_running.load(Ordering::SeqCst) <= 3);
        assert_eq!(
            rig.max_running.load(Ordering::SeqCst),
            3,
            "it did run 3 at once"
        );
        // Polls in flight plus tasks not yet reported never exceeded the
        // slots: each poll held a slot before it was made.
        assert_eq!(rig.service.max_busy.load(Ordering::SeqCst), 3);
        assert!(
            rig.service
                .reports()
                .iter()
                .all(|c| matches!(c, Call::Complete(_, o) if o == "\"done\""))
        );
        rig.shutdown.initiate();
        rig.poller.await.unwrap();
        rig.tasks.close();
        rig.tasks.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_polling_then_lets_tasks_finish_then_hands_them_back() {
        let rig = start(2, 4, 2, Duration::from_secs(600));
        until("both tasks running", || {
            rig.running.load(Ordering::SeqCst) == 2
        })
        .await;

        // Stage 1: no new polls; running tasks go on.
        rig.shutdown.initiate();
        rig.poller.await.unwrap();
        let polls = rig.service.polls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            rig.service.polls.load(Ordering::SeqCst),
            polls,
            "polled after shutdown"
        );
        assert_eq!(
            rig.running.load(Ordering::SeqCst),
            2,
            "tasks still run in the grace period"
        );
        assert!(rig.service.reports().is_empty());

        // Stage 2: the grace period ends; running tasks are stopped and
        // handed back as WorkerShutdown.
        rig.shutdown.expire_grace();
        rig.tasks.close();
        rig.tasks.wait().await;
        let reports = rig.service.reports();
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert!(
            reports.iter().all(
                |c| matches!(c, Call::Fail(_, e, _) if e == crate::report::names::WORKER_SHUTDOWN)
            ),
            "{reports:?}"
        );
        assert_eq!(rig.shutdown.handed_back(), 2);
        assert_eq!(rig.runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn tasks_that_finish_in_the_grace_period_are_reported_as_theirs() {
        let rig = start(1, 2, 1, Duration::from_secs(20));
        until("the task running", || {
            rig.running.load(Ordering::SeqCst) == 1
        })
        .await;
        rig.shutdown.initiate();
        rig.tasks.close();
        rig.tasks.wait().await;
        assert_eq!(
            rig.service.reports(),
            vec![Call::Complete("token-0".into(), "\"done\"".into())]
        );
        assert_eq!(rig.shutdown.handed_back(), 0);
        rig.poller.await.unwrap();
    }

    /// Shutdown does not abandon a poll in flight: the task it brings back
    /// runs and is reported as its own, and no poll follows it.
    #[tokio::test(start_paused = true)]
    async fn a_poll_in_flight_at_shutdown_brings_a_task_that_runs_and_is_reported() {
        let service = FakeService::default();
        service
            .poll_script
            .lock()
            .unwrap()
            .push_back((Duration::from_secs(30), Ok(Some(task(7)))));
        let rig = start_with(service, 0, 2, 1, Duration::from_secs(5));
        until("the poll in flight", || {
            rig.service.polls.load(Ordering::SeqCst) == 1
        })
        .await;
        rig.shutdown.initiate();
        rig.poller.await.unwrap();
        rig.tasks.close();
        rig.tasks.wait().await;
        assert_eq!(rig.runs.load(Ordering::SeqCst), 1, "the polled task ran");
        assert_eq!(
            rig.service.reports(),
            vec![Call::Complete("token-7".into(), "\"done\"".into())]
        );
        assert_eq!(rig.service.polls.load(Ordering::SeqCst), 1, "no poll after");
        assert_eq!(rig.shutdown.handed_back(), 0);
    }

    /// A peer that holds every poll open, then times it out, is failing: the
    /// 2 s that make a first poll "accepted" do not clear failures.
    #[tokio::test(start_paused = true)]
    async fn polls_held_open_then_failing_make_the_source_not_ready() {
        let service = FakeService::default();
        let timeout = || {
            Err(crate::service::ServiceError::new(
                Verdict::NoAnswer,
                "Timeout",
                "no answer within 70s",
            ))
        };
        service
            .poll_script
            .lock()
            .unwrap()
            .extend((0..6).map(|_| (Duration::from_secs(70), timeout())));
        let rig = start_with(service, 0, 2, 1, Duration::from_secs(1));
        until("ready after the first poll was held open", || {
            rig.health.readiness().is_ok()
        })
        .await;
        until("not ready after 3 held-then-failed polls", || {
            rig.health
                .readiness()
                .is_err_and(|e| e.contains("3 polls in a row failed"))
        })
        .await;
        rig.shutdown.initiate();
    }
}
