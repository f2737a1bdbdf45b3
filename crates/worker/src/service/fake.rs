//! An in-memory [`ActivityService`] for unit tests: tasks are queued by the
//! test, every call is recorded with the (possibly paused) tokio clock, and
//! scripted errors can be injected per call kind.

use super::{
    ActivityService, HeartbeatAck, Operation, ReportLimits, ServiceError, Task, TaskToken, Verdict,
};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    Heartbeat(String, Option<String>),
    Complete(String, String),
    Fail(String, String, String),
    Cancel(String, String),
}

#[derive(Default)]
pub(crate) struct FakeService {
    pub(crate) tasks: Mutex<VecDeque<Task>>,
    pub(crate) calls: Mutex<Vec<(Instant, Call)>>,
    pub(crate) heartbeat_errors: Mutex<VecDeque<ServiceError>>,
    pub(crate) report_errors: Mutex<VecDeque<ServiceError>>,
    pub(crate) cancel_after_heartbeats: Mutex<Option<usize>>,
    pub(crate) limits: Option<ReportLimits>,
    /// Polls in flight plus tasks handed out and not yet reported: what
    /// holds a worker slot as the service sees it.
    pub(crate) busy: AtomicUsize,
    /// The most `busy` ever was.
    pub(crate) max_busy: AtomicUsize,
    /// Polls made.
    pub(crate) polls: AtomicUsize,
    /// Scripted polls, in order: how long each is held, then its answer
    /// (the queue of tasks is used once these run out).
    pub(crate) poll_script: Mutex<VecDeque<ScriptedPoll>>,
}

/// How long a scripted poll is held, and its answer.
pub(crate) type ScriptedPoll = (std::time::Duration, Result<Option<Task>, ServiceError>);

impl FakeService {
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }

    pub(crate) fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }

    fn enter(&self) {
        let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_busy.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        let _ = self
            .busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(1))
            });
    }

    /// Reports delivered (complete, fail or cancel answered Ok).
    pub(crate) fn reports(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| !matches!(c, Call::Heartbeat(..)))
            .collect()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push((Instant::now(), call));
    }

    fn heartbeats(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Heartbeat(..)))
            .count()
    }
}

#[async_trait]
impl ActivityService for FakeService {
    fn describe(&self) -> String {
        "fake".into()
    }

    fn limits(&self) -> ReportLimits {
        self.limits.unwrap_or(super::sfn::LIMITS)
    }

    async fn poll(&self) -> Result<Option<Task>, ServiceError> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.enter();
        let scripted = self.poll_script.lock().unwrap().pop_front();
        if let Some((held, answer)) = scripted {
            tokio::time::sleep(held).await;
            if !matches!(answer, Ok(Some(_))) {
                self.leave();
            }
            return answer;
        }
        let task = self.tasks.lock().unwrap().pop_front();
        if task.is_none() {
            // Like a long poll that comes back empty.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            self.leave();
        }
        Ok(task)
    }

    async fn heartbeat(
        &self,
        token: &TaskToken,
        details: Option<&str>,
    ) -> Result<HeartbeatAck, ServiceError> {
        self.record(Call::Heartbeat(
            token.as_str().into(),
            details.map(str::to_string),
        ));
        if let Some(e) = self.heartbeat_errors.lock().unwrap().pop_front() {
            return Err(e);
        }
        let cancel = self
            .cancel_after_heartbeats
            .lock()
            .unwrap()
            .is_some_and(|n| self.heartbeats() >= n);
        Ok(HeartbeatAck {
            cancel_requested: cancel,
        })
    }

    async fn complete(&self, token: &TaskToken, output: &str) -> Result<(), ServiceError> {
        self.record(Call::Complete(token.as_str().into(), output.into()));
        self.report_answer()
    }

    async fn cancel(&self, token: &TaskToken, details: &str) -> Result<(), ServiceError> {
        self.record(Call::Cancel(token.as_str().into(), details.into()));
        self.report_answer()
    }

    async fn fail(&self, token: &TaskToken, error: &str, cause: &str) -> Result<(), ServiceError> {
        self.record(Call::Fail(
            token.as_str().into(),
            error.into(),
            cause.into(),
        ));
        self.report_answer()
    }
}

impl FakeService {
    /// The next scripted report error, or Ok (and the task's slot is free).
    fn report_answer(&self) -> Result<(), ServiceError> {
        match self.report_errors.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => {
                self.leave();
                Ok(())
            }
        }
    }
}

pub(crate) fn transient() -> ServiceError {
    ServiceError::new(Verdict::Throttled, "ThrottlingException", "slow down")
}

pub(crate) fn gone() -> ServiceError {
    ServiceError::new(Verdict::TaskGone, "TaskTimedOut", "task timed out")
}

/// The answer a real service gives to `code` on `operation`.
pub(crate) fn answer(operation: Operation, code: &str) -> ServiceError {
    let verdict = super::answers::classify(operation, Some(code), Some(400));
    ServiceError::new(verdict, code, "scripted")
}
