//! Delivering results through every answer AWS documents for a report.
//!
//! The embedded endpoint's fault rules answer, in turn, each documented
//! error of SendTaskSuccess/SendTaskFailure (and SWF's RespondActivityTask*),
//! the errors common to all AWS services (expired and refused credentials,
//! throttling), and what a proxy answers (403, 408, 5xx, bodies that are not
//! JSON); some reports are applied and their responses lost, so the retry is
//! answered as AWS answers a repeat (the task is closed). Heartbeats get the
//! same answers while tasks run. No success may be turned into a failure or
//! lost, no task may be ended by an answer that says nothing about it, and
//! the worker's outcomes and metrics must match what the executions
//! recorded.
//!
//! Longer than most files (about 850 lines) on purpose: it is the answer
//! table run end to end, one test per service and peer, and reads best whole.

use crate::support::{
    Backend, Service, Sfn, Worker, activity_toml, fired, guests, scrape_until, unique, wait_until,
};
use crate::swf_support::{Swf, activity_type};
use aws_sdk_swf::types::EventType;
use serde_json::{Value, json};
use std::time::Duration;

const DONE: Duration = Duration::from_secs(180);

/// Answers to a report that say nothing about its output or the task.
fn say_nothing_answers(op: &str) -> Vec<Value> {
    let mut rules: Vec<Value> = [
        ("KmsThrottlingException", 400),
        ("KmsAccessDeniedException", 400),
        ("KmsInvalidStateException", 400),
        ("ExpiredTokenException", 400),
        ("UnrecognizedClientException", 400),
        ("InvalidClientTokenId", 403),
        ("AccessDeniedException", 400),
        ("ThrottlingException", 400),
        ("ValidationException", 400),
        ("ServiceUnavailable", 503),
    ]
    .into_iter()
    .map(|(code, status)| json!({"op": op, "fault": "error", "code": code, "status": status, "count": 1}))
    .collect();
    for (status, body) in [
        (403, "<html>Forbidden</html>"),
        (408, "<html>Request Timeout</html>"),
        (400, "Bad Request"),
        (502, "<html>Bad Gateway</html>"),
    ] {
        rules.push(json!({"op": op, "fault": "body", "status": status, "body": body, "count": 1}));
    }
    rules.push(json!({"op": op, "fault": "server_error", "count": 1}));
    rules.push(json!({"op": op, "fault": "reset", "count": 1}));
    rules
}

fn unfired(faults: &Value) -> Vec<Value> {
    faults
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["count"]
                .as_u64()
                .is_some_and(|c| r["fired"].as_u64() < Some(c))
        })
        .cloned()
        .collect()
}

/// The sum of every sample whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The finished-tasks counter of `activity`, of every outcome if `outcome`
/// is empty.
fn finished(activity: &str, outcome: &str) -> String {
    let prefix =
        format!("wasm_activity_tasks_finished_total{{activity=\"{activity}\",tenant=\"-\",");
    if outcome.is_empty() {
        prefix
    } else {
        format!("{prefix}outcome=\"{outcome}\"")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn step_functions_answers_never_convert_or_lose_a_result() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("answers").await;
    let sm = sfn.create_state_machine(&activity, 300, Some(30)).await;
    for rule in say_nothing_answers("SendTaskSuccess") {
        svc.add_fault(rule).await;
    }
    for (code, status) in [
        ("KmsThrottlingException", 400),
        ("ExpiredTokenException", 400),
        ("InternalFailure", 500),
    ] {
        svc.add_fault(json!({"op": "SendTaskFailure", "fault": "error", "code": code, "status": status, "count": 1}))
            .await;
    }
    svc.add_fault(json!({"op": "SendTaskFailure", "fault": "body", "status": 400, "body": "oops", "count": 1}))
        .await;
    // Applied, then the response is lost: the retry is told the task is
    // closed, as AWS tells it.
    svc.add_fault(json!({"op": "SendTaskSuccess", "fault": "drop_response", "count": 3}))
        .await;
    svc.add_fault(json!({"op": "SendTaskFailure", "fault": "drop_response", "count": 1}))
        .await;
    let worker = Worker::start(
        &format!(
            "metrics_addr = \"127.0.0.1:0\"\n{}",
            activity_toml(
                "answers",
                &activity,
                &guests().scenario,
                "max_concurrent = 6\nheartbeat_interval = \"1s\"",
            )
        ),
        &svc,
    );
    let (successes, failures) = (10, 4);
    let mut ok = Vec::new();
    for i in 0..successes {
        ok.push((
            i,
            sfn.start(&sm, &json!({"action": "echo", "value": {"n": i}}))
                .await,
        ));
    }
    let mut bad = Vec::new();
    for i in 0..failures {
        bad.push(
            sfn.start(
                &sm,
                &json!({"action": "fail", "error": "Nope", "cause": format!("no {i}")}),
            )
            .await,
        );
    }
    for (i, e) in &ok {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(
            done.output_json(),
            json!({"n": i}),
            "execution {e} did not succeed with its output: {done:?}"
        );
    }
    for e in &bad {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(done.error.as_deref(), Some("Nope"), "{done:?}");
    }
    let faults = svc.faults().await;
    assert!(
        unfired(&faults).is_empty(),
        "answers never given: {:?}",
        unfired(&faults)
    );
    assert_eq!(svc.state().await["completions"], successes + failures);

    // Every report is counted once, and a report whose response was lost
    // is "unconfirmed", not "undelivered". (A dropped response can still
    // reach the client as a 200 whose empty body was never needed: that
    // report was delivered, and is counted so.)
    let dropped = fired(&faults, "SendTaskSuccess", "drop_response")
        + fired(&faults, "SendTaskFailure", "drop_response");
    assert_eq!(dropped, 4);
    let metrics = scrape_until(&worker.metrics_url(), "every task counted", |m| {
        sample(m, &finished("answers", "")) == successes + failures
    })
    .await;
    let unconfirmed = sample(&metrics, &finished("answers", "unconfirmed"));
    assert!((1..=dropped).contains(&unconfirmed), "{metrics}");
    assert_eq!(
        sample(&metrics, &finished("answers", "undelivered")),
        0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, &finished("answers", "succeeded"))
            + sample(&metrics, &finished("answers", "failed"))
            + unconfirmed,
        successes + failures,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "wasm_activity_tasks_finished_total{activity=\"answers\",tenant=\"-\",outcome=\"failed\",error=\"WasmActivity"
        ),
        0,
        "a result was converted: {metrics}"
    );
    let log = worker.log();
    assert!(
        log.contains("fetching them again"),
        "refused credentials were not fetched again:\n{log}"
    );
    assert_eq!(
        worker.log_count("task result probably delivered"),
        unconfirmed as usize
    );
}

/// A failure whose report meets a KMS key the service cannot use (a setting
/// outside the worker) is retried, with the fix said once, until the key is
/// fixed; then a proxy's 403/408/502 pages to another failure, and every
/// heartbeat answer that says nothing about the task while tasks run: the
/// tasks survive, heartbeats go on, and every result arrives as it was.
#[tokio::test(flavor = "multi_thread")]
async fn step_functions_failures_and_heartbeats_survive_answers_that_say_nothing() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("beats").await;
    let sm = sfn.create_state_machine(&activity, 300, Some(10)).await;
    let worker = Worker::start(
        &format!(
            "metrics_addr = \"127.0.0.1:0\"\n{}",
            activity_toml(
                "beats",
                &activity,
                &guests().scenario,
                "max_concurrent = 4\nheartbeat_interval = \"250ms\"",
            )
        ),
        &svc,
    );
    let failing = |cause: &str| json!({"action": "fail", "error": "Nope", "cause": cause});
    let fix = "this does not heal by itself";

    // A KMS key the service cannot use, until someone fixes it.
    let op = "SendTaskFailure";
    svc.add_fault(
        json!({"op": op, "fault": "error", "code": "KmsInvalidStateException", "count": 1}),
    )
    .await;
    svc.add_fault(json!({"op": op, "fault": "error", "code": "KmsAccessDeniedException"}))
        .await;
    let first = sfn.start(&sm, &failing("kms")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fired(&svc.faults().await, op, "error") < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the failure was not retried: {}",
            svc.faults().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running = sfn
        .client
        .describe_execution()
        .execution_arn(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        running.status(),
        &aws_sdk_sfn::types::ExecutionStatus::Running
    );
    // The key is fixed: the retries go through.
    svc.clear_faults().await;
    let done = sfn.wait(&first, DONE).await;
    assert_eq!(
        (done.error.as_deref(), done.cause.as_deref()),
        (Some("Nope"), Some("kms")),
        "{done:?}"
    );
    assert_eq!(
        sfn.activity_results(&first).await,
        [aws_sdk_sfn::types::HistoryEventType::ActivityFailed]
    );
    let log = worker.log();
    let said: Vec<&str> = log.lines().filter(|l| l.contains(fix)).collect();
    assert_eq!(said.len(), 1, "the fix must be said once:\n{log}");
    assert!(said[0].contains("KmsInvalidStateException"), "{}", said[0]);
    assert!(
        log.lines()
            .filter(|l| l.contains("reporting the result failed (")
                && l.contains("KmsAccessDeniedException"))
            .count()
            >= 2,
        "{log}"
    );
    assert!(!log.contains("fetching them again"), "{log}");

    // Heartbeat answers while two tasks sleep; a proxy's pages to a failure.
    let beat = "SendTaskHeartbeat";
    let beat_faults = heartbeat_answers(beat);
    for rule in &beat_faults {
        svc.add_fault(rule.clone()).await;
    }
    for (status, body) in [
        (403, "<html>Forbidden</html>"),
        (408, "<html>Request Timeout</html>"),
        (502, "<html>Bad Gateway</html>"),
    ] {
        svc.add_fault(
            json!({"op": op, "fault": "body", "status": status, "body": body, "count": 1}),
        )
        .await;
    }
    let mut sleeping = Vec::new();
    for _ in 0..2 {
        sleeping.push(
            sfn.start(&sm, &json!({"action": "sleep", "ms": 4000}))
                .await,
        );
    }
    for e in &sleeping {
        sfn.wait_activity_started(e, DONE).await;
    }
    all_fired(&svc, beat).await;
    let beats = scrape_until(
        &worker.metrics_url(),
        "every heartbeat answer counted",
        |m| heartbeats(m, "failed") == beat_faults.len() as u64,
    )
    .await;
    let beats_ok = heartbeats(&beats, "ok");
    assert!(
        worker.log().contains("fetching them again"),
        "an expired token to a heartbeat did not fetch the credentials again:\n{}",
        worker.log()
    );
    let second = sfn.start(&sm, &failing("pages")).await;
    for e in &sleeping {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(done.output_json()["slept_ms"], 4000, "{done:?}");
    }
    let done = sfn.wait(&second, DONE).await;
    assert_eq!(
        (done.error.as_deref(), done.cause.as_deref()),
        (Some("Nope"), Some("pages")),
        "{done:?}"
    );
    assert_eq!(
        sfn.activity_results(&second).await,
        [aws_sdk_sfn::types::HistoryEventType::ActivityFailed]
    );
    let faults = svc.faults().await;
    assert!(
        unfired(&faults).is_empty(),
        "answers never given: {:?}",
        unfired(&faults)
    );
    assert_eq!(worker.log_count(fix), 1, "{}", worker.log());
    assert_eq!(
        worker.log_count("stopping the guest"),
        0,
        "{}",
        worker.log()
    );

    let metrics = scrape_until(&worker.metrics_url(), "every task counted", |m| {
        sample(m, &finished("beats", "")) == 4
    })
    .await;
    assert_eq!(
        sample(&metrics, &finished("beats", "succeeded")),
        2,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("{},error=\"Nope\"", finished("beats", "failed"))
        ),
        2,
        "{metrics}"
    );
    assert_eq!(heartbeats(&metrics, "failed"), beat_faults.len() as u64);
    assert!(
        heartbeats(&metrics, "ok") > beats_ok,
        "no heartbeat after the faults: {metrics}"
    );
    // Each sleeping task heartbeated after its faults, within the state's
    // HeartbeatSeconds.
    for line in worker
        .log()
        .lines()
        .filter(|l| l.contains("task succeeded"))
    {
        let field = |name: &str| -> u64 {
            line.split(&format!("{name}="))
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line}"))
        };
        assert!(field("heartbeats") >= 1, "{line}");
        assert!(field("heartbeat_gap_ms") < 10_000, "{line}");
    }
}

/// Waits until every one of `total` tasks logged how it ended; returns how
/// many were unconfirmed (at least one, at most `dropped`).
fn every_task_ended(worker: &Worker, total: usize, dropped: usize) -> usize {
    let unconfirmed = wait_until(Duration::from_secs(20), "every task's last line", || {
        let unconfirmed = worker.log_count("task result probably delivered");
        let ended = worker.log_count("task succeeded")
            + worker.log_count("task failed")
            + worker.log_count("task canceled")
            + unconfirmed;
        (ended == total).then_some(unconfirmed)
    });
    assert!(
        (1..=dropped).contains(&unconfirmed),
        "{unconfirmed} unconfirmed of {dropped} lost responses\n{}",
        worker.log()
    );
    unconfirmed
}

/// Answers to a heartbeat that say nothing about the task: expired
/// credentials, throttling, a proxy's 403/408/502 pages, 5xx, a reset.
/// (SendTaskHeartbeat documents no KMS errors, unlike the reports.)
fn heartbeat_answers(op: &str) -> Vec<Value> {
    let mut rules: Vec<Value> = [
        ("ExpiredTokenException", 400),
        ("ThrottlingException", 400),
        ("ServiceUnavailable", 503),
    ]
    .into_iter()
    .map(|(code, status)| json!({"op": op, "fault": "error", "code": code, "status": status, "count": 1}))
    .collect();
    for (status, body) in [
        (403, "<html>Forbidden</html>"),
        (408, "<html>Request Timeout</html>"),
        (502, "<html>Bad Gateway</html>"),
    ] {
        rules.push(json!({"op": op, "fault": "body", "status": status, "body": body, "count": 1}));
    }
    rules.push(json!({"op": op, "fault": "server_error", "count": 1}));
    rules.push(json!({"op": op, "fault": "reset", "count": 1}));
    rules
}

/// Heartbeats counted by result (`ok` or `failed`).
fn heartbeats(metrics: &str, result: &str) -> u64 {
    sample(
        metrics,
        &format!("wasm_activity_heartbeats_total{{result=\"{result}\"}}"),
    )
}

/// Waits until every fault rule for `op` has fired as often as asked.
async fn all_fired(svc: &Service, op: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let faults = svc.faults().await;
        let left: Vec<Value> = unfired(&faults)
            .into_iter()
            .filter(|r| r["op"] == op)
            .collect();
        if left.is_empty() {
            return faults;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{op} answers never given: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn swf_answers_never_convert_or_lose_a_result() {
    let svc = Service::start(Backend::Embedded);
    let swf = Swf::connect(&svc).await;
    swf.register_activity("answered", "1", 30).await;
    let list = unique("acts");
    // Each report operation gets every answer that says nothing about what
    // it reports, its own documented OperationNotPermittedFault, and then
    // lost responses (the retry is told the task is closed).
    let reports = [
        ("RespondActivityTaskCompleted", 2),
        ("RespondActivityTaskFailed", 1),
        ("RespondActivityTaskCanceled", 1),
    ];
    for (op, drops) in reports {
        for rule in say_nothing_answers(op) {
            svc.add_fault(rule).await;
        }
        svc.add_fault(
            json!({"op": op, "fault": "error", "code": "OperationNotPermittedFault", "count": 1}),
        )
        .await;
        svc.add_fault(json!({"op": op, "fault": "drop_response", "count": drops}))
            .await;
    }
    let beat = "RecordActivityTaskHeartbeat";
    let mut beat_faults = heartbeat_answers(beat);
    beat_faults.push(
        json!({"op": beat, "fault": "error", "code": "OperationNotPermittedFault", "count": 1}),
    );
    for rule in &beat_faults {
        svc.add_fault(rule.clone()).await;
    }
    let toml = format!(
        "metrics_addr = \"127.0.0.1:0\"\n\
         [swf.answers]\ndomain = \"{}\"\ntask_list = \"{list}\"\nmax_concurrent = 16\n\n\
         [[swf.answers.activity]]\ntype = \"answered\"\nversion = \"1\"\ncomponent = \"{}\"\n\
         heartbeat_interval = \"250ms\"\n",
        swf.domain,
        guests().scenario.display()
    );
    let worker = Worker::start(&toml, &svc);
    let _decider = swf.decider();
    let ty = activity_type("answered", "1");

    // Tasks that run until canceled take every heartbeat answer first (no
    // other task runs yet): they survive them and go on heartbeating.
    let waiting = json!({"action": "wait_cancel", "max_ms": 120_000}).to_string();
    let mut cancel = Vec::new();
    for _ in 0..3 {
        cancel.push(swf.start(&ty, &list, &waiting).await);
    }
    for w in &cancel {
        swf.wait_activity_started(w, DONE).await;
    }
    all_fired(&svc, beat).await;
    let beats = scrape_until(
        &worker.metrics_url(),
        "every heartbeat answer counted",
        |m| heartbeats(m, "failed") == beat_faults.len() as u64,
    )
    .await;
    let beats_ok = heartbeats(&beats, "ok");
    assert!(
        worker.log().contains("fetching them again"),
        "an expired token to a heartbeat did not fetch the credentials again:\n{}",
        worker.log()
    );
    assert_eq!(
        worker.log_count("stopping the guest"),
        0,
        "a heartbeat answer stopped a task:\n{}",
        worker.log()
    );

    let mut ok = Vec::new();
    for i in 0..8 {
        let input = json!({"action": "echo", "value": {"n": i}}).to_string();
        ok.push((i, swf.start(&ty, &list, &input).await));
    }
    let mut bad = Vec::new();
    for i in 0..4 {
        let failing = json!({"action": "fail", "error": "Nope", "cause": format!("c{i}")});
        bad.push(swf.start(&ty, &list, &failing.to_string()).await);
    }
    for w in &cancel {
        swf.signal_cancel(w).await;
    }
    for (i, e) in &ok {
        let closed = swf.wait_activity_closed(e, DONE).await;
        assert_eq!(
            closed.event_type(),
            &EventType::ActivityTaskCompleted,
            "{closed:?}"
        );
        let result = closed
            .activity_task_completed_event_attributes()
            .and_then(|a| a.result())
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(result).unwrap(),
            json!({"n": i})
        );
    }
    for (i, e) in bad.iter().enumerate() {
        let closed = swf.wait_activity_closed(e, DONE).await;
        let attrs = closed
            .activity_task_failed_event_attributes()
            .unwrap_or_else(|| panic!("{closed:?}"));
        assert_eq!(attrs.reason(), Some("Nope"));
        assert_eq!(attrs.details(), Some(format!("c{i}").as_str()));
    }
    for e in &cancel {
        let closed = swf.wait_activity_closed(e, DONE).await;
        let attrs = closed
            .activity_task_canceled_event_attributes()
            .unwrap_or_else(|| panic!("{closed:?}"));
        assert_eq!(
            attrs.details(),
            Some("Cancelled: the host asked the handler to stop")
        );
    }
    let faults = svc.faults().await;
    assert!(
        unfired(&faults).is_empty(),
        "answers never given: {:?}",
        unfired(&faults)
    );
    let total = (ok.len() + bad.len() + cancel.len()) as u64;
    let dropped: u64 = reports
        .iter()
        .map(|(op, _)| fired(&faults, op, "drop_response"))
        .sum();
    assert_eq!(dropped, 4);
    every_task_ended(&worker, total as usize, dropped as usize);
    assert_eq!(
        worker.log_count("task result not delivered"),
        0,
        "{}",
        worker.log()
    );

    // Every task counted once, by what it delivered; a lost response is
    // "unconfirmed", never "undelivered"; no result became a WasmActivity
    // failure; heartbeats went on after their faults.
    let activity = "answers/answered@1";
    let metrics = scrape_until(&worker.metrics_url(), "every task counted", |m| {
        sample(m, &finished(activity, "")) == total
    })
    .await;
    let count = |outcome: &str| sample(&metrics, &finished(activity, outcome));
    let unconfirmed = count("unconfirmed");
    assert!((1..=dropped).contains(&unconfirmed), "{metrics}");
    assert_eq!(count("undelivered"), 0, "{metrics}");
    assert_eq!(
        count("succeeded") + count("failed") + count("canceled") + unconfirmed,
        total,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("{},error=\"WasmActivity", finished(activity, "failed"))
        ),
        0,
        "a result was converted: {metrics}"
    );
    // A report applied whose answer was lost closes the task while the
    // worker retries it: a heartbeat then may be told so, and fails.
    assert!(heartbeats(&metrics, "failed") >= beat_faults.len() as u64);
    assert!(
        heartbeats(&metrics, "ok") > beats_ok,
        "no heartbeat after the faults: {metrics}"
    );
}

/// LocalStack answers a repeated success as a closed task (`InvalidToken`)
/// as AWS does (`TaskTimedOut`), but accepts a repeated failure; the fault
/// proxy answers that one as AWS would. Through it, losing responses and
/// answering as AWS and proxies do in bad moments, every success and
/// failure arrives unconverted, heartbeats survive their faults, and the
/// lost responses are counted as unconfirmed.
#[tokio::test(flavor = "multi_thread")]
async fn localstack_success_survives_lost_responses_and_answers_that_say_nothing() {
    use crate::fault_proxy::{Fault, FaultProxy};
    let svc = Service::start(Backend::LocalStack);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("proxied").await;
    let sm = sfn.create_state_machine(&activity, 300, Some(30)).await;
    let proxy = FaultProxy::start(&svc.url).await;
    let op = "SendTaskSuccess";
    for code in [
        "KmsThrottlingException",
        "ExpiredTokenException",
        "KmsAccessDeniedException",
    ] {
        proxy.add(op, Fault::Error { code, status: 400 }, 1);
    }
    proxy.add(
        op,
        Fault::Body {
            status: 403,
            body: "<html>Forbidden</html>",
        },
        1,
    );
    proxy.add(
        op,
        Fault::Body {
            status: 400,
            body: "Bad Request",
        },
        1,
    );
    proxy.add(
        op,
        Fault::Body {
            status: 502,
            body: "<html>Bad Gateway</html>",
        },
        1,
    );
    proxy.add(op, Fault::DropResponse, 2);
    // A failure applied whose answer a gateway loses: the retry is told
    // the task is closed.
    let fail = "SendTaskFailure";
    proxy.add(
        fail,
        Fault::Error {
            code: "KmsThrottlingException",
            status: 400,
        },
        1,
    );
    proxy.add(
        fail,
        Fault::Applied {
            status: 504,
            body: "<html>Gateway Timeout</html>",
        },
        1,
    );
    let beat = "SendTaskHeartbeat";
    for code in ["ExpiredTokenException", "ThrottlingException"] {
        proxy.add(beat, Fault::Error { code, status: 400 }, 1);
    }
    for (status, body) in [
        (403, "<html>Forbidden</html>"),
        (408, "<html>Request Timeout</html>"),
        (502, "<html>Bad Gateway</html>"),
    ] {
        proxy.add(beat, Fault::Body { status, body }, 1);
    }
    let beat_faults = 5;
    let worker = Worker::start(
        &format!(
            "metrics_addr = \"127.0.0.1:0\"\n{}",
            activity_toml(
                "proxied",
                &activity,
                &guests().scenario,
                "max_concurrent = 8\nheartbeat_interval = \"250ms\"",
            )
        ),
        &svc.through(&proxy.url),
    );

    // Two sleeping tasks take every heartbeat answer before anything else
    // runs, and go on heartbeating.
    let mut sleeping = Vec::new();
    for _ in 0..2 {
        sleeping.push(
            sfn.start(&sm, &json!({"action": "sleep", "ms": 4000}))
                .await,
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !proxy.unfired_for(beat).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "heartbeat answers never given: {:?}",
            proxy.unfired_for(beat)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let beats = scrape_until(
        &worker.metrics_url(),
        "every heartbeat answer counted",
        |m| heartbeats(m, "failed") == beat_faults,
    )
    .await;
    let beats_ok = heartbeats(&beats, "ok");
    assert!(
        worker.log().contains("fetching them again"),
        "an expired token to a heartbeat did not fetch the credentials again:\n{}",
        worker.log()
    );

    let mut executions = Vec::new();
    for i in 0..5 {
        executions.push((
            i,
            sfn.start(&sm, &json!({"action": "echo", "value": {"n": i}}))
                .await,
        ));
    }
    let mut failures = Vec::new();
    for i in 0..2 {
        failures.push((
            i,
            sfn.start(
                &sm,
                &json!({"action": "fail", "error": "Nope", "cause": format!("no {i}")}),
            )
            .await,
        ));
    }
    for (i, e) in &executions {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(done.output_json(), json!({"n": i}), "{done:?}");
    }
    for (i, e) in &failures {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(
            (done.error.as_deref(), done.cause.clone()),
            (Some("Nope"), Some(format!("no {i}"))),
            "{done:?}"
        );
    }
    for e in &sleeping {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(done.output_json()["slept_ms"], 4000, "{done:?}");
    }
    assert!(
        proxy.unfired().is_empty(),
        "answers never given: {:?}",
        proxy.unfired()
    );
    let total = executions.len() + failures.len() + sleeping.len();
    every_task_ended(&worker, total, proxy.dropped() as usize);
    assert_eq!(
        worker.log_count("task result not delivered"),
        0,
        "{}",
        worker.log()
    );
    // The failure whose answer the gateway lost was applied: its retry was
    // told the task is closed, and it is counted so.
    assert_eq!(
        worker
            .log()
            .lines()
            .filter(|l| l.contains("task result probably delivered") && l.contains("failed"))
            .count(),
        1,
        "{}",
        worker.log()
    );

    let metrics = scrape_until(&worker.metrics_url(), "every task counted", |m| {
        sample(m, &finished("proxied", "")) == total as u64
    })
    .await;
    let count = |outcome: &str| sample(&metrics, &finished("proxied", outcome));
    let unconfirmed = count("unconfirmed");
    assert!(
        (1..=u64::from(proxy.dropped())).contains(&unconfirmed),
        "{metrics}"
    );
    assert_eq!(count("undelivered"), 0, "{metrics}");
    assert_eq!(
        count("succeeded") + count("failed") + unconfirmed,
        total as u64,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("{},error=\"WasmActivity", finished("proxied", "failed"))
        ),
        0,
        "a result was converted: {metrics}"
    );
    // A report applied whose answer was lost closes the task while the
    // worker retries it: a heartbeat then may be told so, and fails.
    assert!(heartbeats(&metrics, "failed") >= beat_faults, "{metrics}");
    assert!(
        heartbeats(&metrics, "ok") > beats_ok,
        "no heartbeat after the faults: {metrics}"
    );
}
