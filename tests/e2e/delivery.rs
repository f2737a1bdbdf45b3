//! Delivering results through every answer AWS documents for a report.
//!
//! The embedded endpoint's fault rules answer, in turn, each documented
//! error of SendTaskSuccess/SendTaskFailure (and SWF's RespondActivityTask*),
//! the errors common to all AWS services (expired and refused credentials,
//! throttling), and what a proxy answers (403, 408, 5xx, bodies that are not
//! JSON); some reports are applied and their responses lost, so the retry is
//! answered as AWS answers a repeat (the task is closed). No success may be
//! turned into a failure or lost, and the worker's outcomes and metrics must
//! match what the executions recorded.

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

/// Waits until every one of `total` tasks logged how it ended; returns how
/// many were unconfirmed (at least one, at most `dropped`).
fn every_task_ended(worker: &Worker, total: usize, dropped: usize) -> usize {
    let unconfirmed = wait_until(Duration::from_secs(20), "every task's last line", || {
        let unconfirmed = worker.log_count("task result probably delivered");
        let ended =
            worker.log_count("task succeeded") + worker.log_count("task failed") + unconfirmed;
        (ended == total).then_some(unconfirmed)
    });
    assert!(
        (1..=dropped).contains(&unconfirmed),
        "{unconfirmed} unconfirmed of {dropped} lost responses\n{}",
        worker.log()
    );
    unconfirmed
}

#[tokio::test(flavor = "multi_thread")]
async fn swf_answers_never_convert_or_lose_a_result() {
    let svc = Service::start(Backend::Embedded);
    let swf = Swf::connect(&svc).await;
    swf.register_activity("answered", "1", 30).await;
    let list = unique("acts");
    for rule in say_nothing_answers("RespondActivityTaskCompleted") {
        svc.add_fault(rule).await;
    }
    svc.add_fault(json!({"op": "RespondActivityTaskCompleted", "fault": "error", "code": "OperationNotPermittedFault", "count": 1}))
        .await;
    svc.add_fault(
        json!({"op": "RespondActivityTaskCompleted", "fault": "drop_response", "count": 2}),
    )
    .await;
    svc.add_fault(json!({"op": "RespondActivityTaskFailed", "fault": "error", "code": "ExpiredTokenException", "count": 1}))
        .await;
    let toml = format!(
        "[swf.answers]\ndomain = \"{}\"\ntask_list = \"{list}\"\nmax_concurrent = 6\n\n\
         [[swf.answers.activity]]\ntype = \"answered\"\nversion = \"1\"\ncomponent = \"{}\"\n\
         heartbeat_interval = \"1s\"\n",
        swf.domain,
        guests().scenario.display()
    );
    let worker = Worker::start(&toml, &svc);
    let _decider = swf.decider();
    let ty = activity_type("answered", "1");
    let mut ok = Vec::new();
    for i in 0..8 {
        let input = json!({"action": "echo", "value": {"n": i}}).to_string();
        ok.push((i, swf.start(&ty, &list, &input).await));
    }
    let failing = json!({"action": "fail", "error": "Nope", "cause": "c"}).to_string();
    let bad = swf.start(&ty, &list, &failing).await;
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
    let closed = swf.wait_activity_closed(&bad, DONE).await;
    let attrs = closed
        .activity_task_failed_event_attributes()
        .unwrap_or_else(|| panic!("{closed:?}"));
    assert_eq!(attrs.reason(), Some("Nope"));
    let faults = svc.faults().await;
    assert!(
        unfired(&faults).is_empty(),
        "answers never given: {:?}",
        unfired(&faults)
    );
    let dropped = fired(&faults, "RespondActivityTaskCompleted", "drop_response") as usize;
    every_task_ended(&worker, ok.len() + 1, dropped);
    assert_eq!(
        worker.log_count("task result not delivered"),
        0,
        "{}",
        worker.log()
    );
}

/// LocalStack answers a repeated success as a closed task (`InvalidToken`)
/// as AWS does (`TaskTimedOut`): through a fault proxy that loses responses
/// and answers as AWS and proxies do in bad moments, every success arrives
/// unconverted and the lost responses are counted as unconfirmed.
#[tokio::test(flavor = "multi_thread")]
async fn localstack_success_survives_lost_responses_and_answers_that_say_nothing() {
    use crate::fault_proxy::{Fault, FaultProxy};
    let svc = Service::start(Backend::LocalStack);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("proxied").await;
    let sm = sfn.create_state_machine(&activity, 300, None).await;
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
    let worker = Worker::start(
        &activity_toml(
            "proxied",
            &activity,
            &guests().scenario,
            "max_concurrent = 4",
        ),
        &svc.through(&proxy.url),
    );
    let mut executions = Vec::new();
    for i in 0..5 {
        executions.push((
            i,
            sfn.start(&sm, &json!({"action": "echo", "value": {"n": i}}))
                .await,
        ));
    }
    for (i, e) in &executions {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(done.output_json(), json!({"n": i}), "{done:?}");
    }
    assert!(
        proxy.unfired().is_empty(),
        "answers never given: {:?}",
        proxy.unfired()
    );
    every_task_ended(&worker, executions.len(), proxy.dropped() as usize);
    assert_eq!(
        worker.log_count("task result not delivered"),
        0,
        "{}",
        worker.log()
    );
}
