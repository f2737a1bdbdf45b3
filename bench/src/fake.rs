//! A loopback fake of the four Step Functions calls an activity worker
//! makes, with a configurable response latency, so the benchmarks see the
//! worker's own cost and not a service's.
//!
//! It runs one closed-loop round at a time: `in_flight` tasks are handed out,
//! and each report releases the next task until `total` have been reported.
//! It checks every output against the expected bytes, and records each
//! task's latency from hand-out to report.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One task the fake hands out: input and the output a correct worker returns.
#[derive(Clone)]
pub struct Work {
    pub input: Arc<str>,
    /// None: any successful output counts as correct.
    pub expected: Option<Arc<str>>,
}

/// What a finished round measured.
#[derive(Debug, Default, Clone)]
pub struct RoundResult {
    pub ok: u64,
    pub wrong: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Per task, hand-out to report, sorted.
    pub latencies: Vec<Duration>,
    /// The most tasks handed out and not yet reported at one time.
    pub max_outstanding: u64,
    /// Heartbeats received for this round's tasks.
    pub heartbeats: u64,
}

impl RoundResult {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
    pub fn tasks_per_second(&self) -> f64 {
        (self.ok + self.wrong + self.failed) as f64 / self.elapsed.as_secs_f64()
    }
}

struct Round {
    id: u64,
    arn: String,
    work: Vec<Work>,
    total: u64,
    issued: u64,
    pending: VecDeque<(String, usize)>,
    outstanding: HashMap<String, (usize, Instant)>,
    started: Instant,
    result: RoundResult,
}

#[derive(Default)]
struct State {
    latency_us: AtomicU64,
    round: Mutex<Option<Round>>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    done: Notify,
}

impl State {
    fn waker(&self, arn: &str) -> Arc<Notify> {
        self.wakers
            .lock()
            .unwrap()
            .entry(arn.to_string())
            .or_default()
            .clone()
    }
}

/// The running fake service.
#[derive(Clone)]
pub struct FakeSfn {
    state: Arc<State>,
    pub url: String,
}

const POLL_TIMEOUT: Duration = Duration::from_secs(5);

impl FakeSfn {
    pub async fn start() -> anyhow::Result<FakeSfn> {
        let state = Arc::new(State::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(FakeSfn { state, url })
    }

    pub fn set_latency(&self, latency: Duration) {
        self.state
            .latency_us
            .store(latency.as_micros() as u64, Ordering::SeqCst);
    }

    /// Runs one closed-loop round on `arn`; returns when every task has been
    /// reported, or fails after `timeout`.
    pub async fn round(
        &self,
        arn: &str,
        work: &[Work],
        in_flight: u64,
        total: u64,
        timeout: Duration,
    ) -> anyhow::Result<RoundResult> {
        let waker = self.state.waker(arn);
        let done = self.state.done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        {
            static ROUNDS: AtomicU64 = AtomicU64::new(0);
            let mut round = Round {
                id: ROUNDS.fetch_add(1, Ordering::SeqCst),
                arn: arn.to_string(),
                work: work.to_vec(),
                total,
                issued: 0,
                pending: VecDeque::new(),
                outstanding: HashMap::new(),
                started: Instant::now(),
                result: RoundResult::default(),
            };
            for _ in 0..in_flight.min(total) {
                release(&mut round);
            }
            *self.state.round.lock().unwrap() = Some(round);
        }
        for _ in 0..in_flight.min(total) {
            waker.notify_one();
        }
        let finished = tokio::time::timeout(timeout, done).await;
        let round = self.state.round.lock().unwrap().take();
        let round = round.expect("the round is still set");
        if finished.is_err() {
            anyhow::bail!(
                "round on {arn} timed out after {timeout:?}: {} of {} reported, {} outstanding",
                round.result.ok + round.result.wrong + round.result.failed,
                total,
                round.outstanding.len()
            );
        }
        let mut result = round.result;
        result.latencies.sort();
        Ok(result)
    }
}

fn release(round: &mut Round) {
    let index = (round.issued as usize) % round.work.len();
    let token = format!("tok-{}-{}", round.id, round.issued);
    round.issued += 1;
    round.pending.push_back((token, index));
}

fn reply(body: Value) -> Response {
    (
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

fn error(kind: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.0")],
        json!({ "__type": kind, "message": kind }).to_string(),
    )
        .into_response()
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = Duration::from_micros(state.latency_us.load(Ordering::Relaxed));
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error("SerializationException");
    };
    let op = target.rsplit('.').next().unwrap_or("");
    match op {
        "GetActivityTask" => get_task(&state, &body).await,
        "SendTaskSuccess" | "SendTaskFailure" => report(&state, &body, op == "SendTaskSuccess"),
        "SendTaskHeartbeat" => {
            let token = body["taskToken"].as_str().unwrap_or("");
            if let Some(round) = state.round.lock().unwrap().as_mut()
                && round.outstanding.contains_key(token)
            {
                round.result.heartbeats += 1;
            }
            reply(json!({}))
        }
        _ => error("UnknownOperationException"),
    }
}

async fn get_task(state: &State, body: &Value) -> Response {
    let arn = body["activityArn"].as_str().unwrap_or("").to_string();
    let waker = state.waker(&arn);
    let deadline = tokio::time::Instant::now() + POLL_TIMEOUT;
    loop {
        let notified = waker.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut guard = state.round.lock().unwrap();
            if let Some(round) = guard.as_mut().filter(|r| r.arn == arn)
                && let Some((token, index)) = round.pending.pop_front()
            {
                let input = round.work[index].input.clone();
                round
                    .outstanding
                    .insert(token.clone(), (index, Instant::now()));
                round.result.max_outstanding =
                    (round.result.max_outstanding).max(round.outstanding.len() as u64);
                return reply(json!({ "taskToken": token, "input": &*input }));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return reply(json!({}));
        }
    }
}

fn report(state: &State, body: &Value, success: bool) -> Response {
    let token = body["taskToken"].as_str().unwrap_or("");
    let mut guard = state.round.lock().unwrap();
    let Some(round) = guard.as_mut() else {
        return error("TaskDoesNotExist");
    };
    let Some((index, handed_out)) = round.outstanding.remove(token) else {
        return error("TaskDoesNotExist");
    };
    round.result.latencies.push(handed_out.elapsed());
    if !success {
        round.result.failed += 1;
    } else if round.work[index]
        .expected
        .as_deref()
        .is_none_or(|want| body["output"].as_str() == Some(want))
    {
        round.result.ok += 1;
    } else {
        round.result.wrong += 1;
    }
    let reported = round.result.ok + round.result.wrong + round.result.failed;
    let mut wake = None;
    if round.issued < round.total {
        release(round);
        wake = Some(round.arn.clone());
    }
    if reported == round.total {
        round.result.elapsed = round.started.elapsed();
        state.done.notify_one();
    }
    drop(guard);
    if let Some(arn) = wake {
        state.waker(&arn).notify_one();
    }
    reply(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fullstack::client;

    /// A worker through the real SDK: polls, answers right for the first
    /// task and wrong for the second; the round counts both and ends.
    #[tokio::test]
    async fn a_round_hands_out_tasks_and_checks_every_output() {
        let fake = FakeSfn::start().await.unwrap();
        let work = vec![Work {
            input: "{\"n\":1}".into(),
            expected: Some("{\"ok\":true}".into()),
        }];
        let sfn = client(&fake.url);
        let worker = tokio::spawn(async move {
            for output in ["{\"ok\":true}", "{\"ok\":false}"] {
                let task = sfn
                    .get_activity_task()
                    .activity_arn("arn:a")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(task.input(), Some("{\"n\":1}"));
                sfn.send_task_heartbeat()
                    .task_token(task.task_token().unwrap())
                    .send()
                    .await
                    .unwrap();
                sfn.send_task_success()
                    .task_token(task.task_token().unwrap())
                    .output(output)
                    .send()
                    .await
                    .unwrap();
            }
        });
        let result = fake
            .round("arn:a", &work, 1, 2, Duration::from_secs(30))
            .await
            .unwrap();
        worker.await.unwrap();
        assert_eq!((result.ok, result.wrong, result.failed), (1, 1, 0));
        assert_eq!(result.latencies.len(), 2);
        assert_eq!(result.heartbeats, 2);
    }

    #[tokio::test]
    async fn an_unknown_token_is_refused_and_an_idle_poll_comes_back_empty() {
        let fake = FakeSfn::start().await.unwrap();
        let sfn = client(&fake.url);
        let err = sfn
            .send_task_success()
            .task_token("nope")
            .output("{}")
            .send()
            .await
            .unwrap_err();
        assert!(
            format!("{}", aws_sdk_sfn::error::DisplayErrorContext(err))
                .contains("TaskDoesNotExist")
        );
        let empty = sfn
            .get_activity_task()
            .activity_arn("arn:idle")
            .send()
            .await
            .unwrap();
        assert!(empty.task_token().is_none());
    }
}
