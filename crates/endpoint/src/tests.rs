//! End-to-end behaviour of both halves through `LocalEndpoint`, with
//! paused time so that timeouts and retries run instantly.
//!
//! One file of about a thousand lines, on purpose: each test is a short
//! scenario through the public API, and the two halves share setup helpers;
//! split by half, the helpers would be written twice or exported for tests.

use super::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

async fn endpoint() -> LocalEndpoint {
    LocalEndpoint::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        EndpointOptions::default(),
    )
    .await
    .unwrap()
}

async fn setup(ep: &LocalEndpoint, task: Value) -> (String, String) {
    let arn = ep
        .call("CreateActivity", json!({"name": "a"}))
        .await
        .unwrap()["activityArn"]
        .as_str()
        .unwrap()
        .to_string();
    let mut state = json!({"Type": "Task", "Resource": arn, "End": true});
    state
        .as_object_mut()
        .unwrap()
        .extend(task.as_object().unwrap().clone());
    let definition = json!({"StartAt": "S", "States": {"S": state}}).to_string();
    let sm = ep
        .call(
            "CreateStateMachine",
            json!({"name": "m", "definition": definition, "roleArn": "arn:aws:iam::0:role/r"}),
        )
        .await
        .unwrap()["stateMachineArn"]
        .as_str()
        .unwrap()
        .to_string();
    (arn, sm)
}

async fn start(ep: &LocalEndpoint, sm: &str, input: Value) -> String {
    ep.call(
        "StartExecution",
        json!({"stateMachineArn": sm, "input": input.to_string()}),
    )
    .await
    .unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn poll(ep: &LocalEndpoint, arn: &str) -> Option<String> {
    let out = ep
        .call(
            "GetActivityTask",
            json!({"activityArn": arn, "workerName": "w"}),
        )
        .await
        .unwrap();
    out["taskToken"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_task_is_handed_out_exactly_once_to_concurrent_pollers() {
    let ep = Arc::new(endpoint().await);
    let (arn, sm) = setup(&ep, json!({})).await;
    for i in 0..60 {
        start(&ep, &sm, json!({ "i": i })).await;
    }
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (ep, arn) = (ep.clone(), arn.clone());
        pollers.spawn(async move {
            let mut got = Vec::new();
            for _ in 0..5 {
                got.push(
                    poll(&ep, &arn)
                        .await
                        .expect("a task was queued for every poll"),
                );
            }
            got
        });
    }
    let mut all = Vec::new();
    while let Some(got) = pollers.join_next().await {
        all.extend(got.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (60, 60));
}

#[tokio::test(start_paused = true)]
async fn missed_heartbeats_time_the_task_out_and_its_token_says_so() {
    let ep = endpoint().await;
    let (arn, sm) = setup(&ep, json!({"TimeoutSeconds": 100, "HeartbeatSeconds": 5})).await;
    let exec = start(&ep, &sm, json!({})).await;
    let token = poll(&ep, &arn).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    ep.call("SendTaskHeartbeat", json!({"taskToken": token}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // 8 s after start but only 4 s after the last heartbeat: still alive.
    ep.call("SendTaskHeartbeat", json!({"taskToken": token}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let done = ep.shared.wait_execution(&exec).await.unwrap();
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["error"], "States.HeartbeatTimeout");
    let e = ep
        .call(
            "SendTaskSuccess",
            json!({"taskToken": token, "output": "{}"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "TaskTimedOut");
}

#[tokio::test(start_paused = true)]
async fn task_timeout_counts_from_scheduling_even_if_no_worker_polls() {
    let ep = endpoint().await;
    let (_arn, sm) = setup(&ep, json!({"TimeoutSeconds": 30})).await;
    let exec = start(&ep, &sm, json!({})).await;
    let done = ep.shared.wait_execution(&exec).await.unwrap();
    assert_eq!(
        (done["status"].as_str(), done["error"].as_str()),
        (Some("FAILED"), Some("States.Timeout"))
    );
}

#[tokio::test(start_paused = true)]
async fn retry_waits_with_backoff_then_gives_up_with_the_last_error() {
    let ep = endpoint().await;
    let (arn, sm) = setup(
        &ep,
        json!({"Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 3.0}]}),
    )
    .await;
    let exec = start(&ep, &sm, json!({})).await;
    let t0 = tokio::time::Instant::now();
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let token = poll(&ep, &arn).await.unwrap();
        attempts.push(t0.elapsed().as_secs());
        ep.call(
            "SendTaskFailure",
            json!({"taskToken": token, "error": "Boom", "cause": "c"}),
        )
        .await
        .unwrap();
    }
    // Retries after 2 s and then 2 * 3 = 6 s more.
    assert_eq!(attempts, vec![0, 2, 8]);
    let done = ep.shared.wait_execution(&exec).await.unwrap();
    assert_eq!(
        (done["error"].as_str(), done["cause"].as_str()),
        (Some("Boom"), Some("c"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_repeated_report_is_answered_task_timed_out_as_on_aws() {
    let ep = endpoint().await;
    let (arn, sm) = setup(&ep, json!({})).await;
    start(&ep, &sm, json!({})).await;
    let token = poll(&ep, &arn).await.unwrap();
    let success = json!({"taskToken": token, "output": "{\"a\":1}"});
    ep.call("SendTaskSuccess", success.clone()).await.unwrap();
    // The same report again (its first response lost), a different
    // one, a failure, a heartbeat: the task is closed for all of them.
    for (op, req) in [
        ("SendTaskSuccess", success),
        (
            "SendTaskSuccess",
            json!({"taskToken": token, "output": "{}"}),
        ),
        ("SendTaskFailure", json!({"taskToken": token, "error": "E"})),
        ("SendTaskHeartbeat", json!({"taskToken": token})),
    ] {
        let e = ep.call(op, req).await.unwrap_err();
        assert_eq!(e.code, "TaskTimedOut", "{op}");
    }
    assert_eq!(ep.shared.page_state()["completions"], 1);
}

#[tokio::test(start_paused = true)]
async fn empty_poll_returns_no_token_after_the_poll_timeout() {
    let ep = endpoint().await;
    let (arn, _) = setup(&ep, json!({})).await;
    let t0 = tokio::time::Instant::now();
    assert_eq!(poll(&ep, &arn).await, None);
    assert_eq!(t0.elapsed(), Duration::from_secs(60));
}

fn pollers(ep: &LocalEndpoint) -> u64 {
    ep.shared.page_state()["activities"][0]["pollers"]
        .as_u64()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_poll_whose_client_goes_away_stops_counting_at_once() {
    let ep = endpoint().await;
    let (arn, sm) = setup(&ep, json!({})).await;
    // 1,000 polls abandoned mid-wait (their futures dropped, as when
    // the connection closes), then a working poll gets its task.
    for _ in 0..MAX_ABANDONED {
        let poll = ep.call("GetActivityTask", json!({"activityArn": arn}));
        let abandoned = tokio::time::timeout(Duration::from_millis(1), poll).await;
        assert!(abandoned.is_err());
    }
    assert_eq!(pollers(&ep), 0);
    start(&ep, &sm, json!({})).await;
    assert!(poll(&ep, &arn).await.is_some());
    assert_eq!(pollers(&ep), 0);
}

const MAX_ABANDONED: usize = 1_001;

async fn swf(ep: &LocalEndpoint, op: &str, req: Value) -> Result<Value, ApiError> {
    ep.swf.dispatch(op, &req).await
}

/// A domain, an activity type `t` version 1 and a workflow type, and a
/// started workflow with its first decision task taken: (token).
async fn swf_workflow(ep: &LocalEndpoint) -> String {
    swf(
        ep,
        "RegisterDomain",
        json!({"name": "d", "workflowExecutionRetentionPeriodInDays": "1"}),
    )
    .await
    .unwrap();
    swf(
        ep,
        "RegisterActivityType",
        json!({"domain": "d", "name": "t", "version": "1"}),
    )
    .await
    .unwrap();
    // No decision task timeout, so paused-clock tests can wait long.
    swf(
        ep,
        "RegisterWorkflowType",
        json!({"domain": "d", "name": "w", "version": "1",
               "defaultExecutionStartToCloseTimeout": "86400", "defaultTaskStartToCloseTimeout": "NONE"}),
    )
    .await
    .unwrap();
    swf(
        ep,
        "StartWorkflowExecution",
        json!({"domain": "d", "workflowId": "wf", "workflowType": {"name": "w", "version": "1"},
               "taskList": {"name": "decisions"}}),
    )
    .await
    .unwrap();
    decision_token(ep).await
}

async fn decision_token(ep: &LocalEndpoint) -> String {
    let d = swf(
        ep,
        "PollForDecisionTask",
        json!({"domain": "d", "taskList": {"name": "decisions"}}),
    )
    .await
    .unwrap();
    d["taskToken"].as_str().unwrap().to_string()
}

async fn history(ep: &LocalEndpoint) -> Vec<String> {
    let h = swf(
        ep,
        "GetWorkflowExecutionHistory",
        json!({"domain": "d", "execution": {"workflowId": "wf"}}),
    )
    .await
    .unwrap();
    h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect()
}

/// Completes decision task `token` with `decisions`, which must be accepted.
async fn decide(ep: &LocalEndpoint, token: &str, decisions: Value) {
    swf(
        ep,
        "RespondDecisionTaskCompleted",
        json!({"taskToken": token, "decisions": decisions}),
    )
    .await
    .unwrap();
}

/// A poll on the activity task list `acts`.
async fn poll_acts(ep: &LocalEndpoint) -> Value {
    swf(
        ep,
        "PollForActivityTask",
        json!({"domain": "d", "taskList": {"name": "acts"}}),
    )
    .await
    .unwrap()
}

/// [`swf_workflow`] with activity `a` scheduled and started: the task.
async fn swf_running_task(ep: &LocalEndpoint) -> Value {
    let token = swf_workflow(ep).await;
    decide(ep, &token, json!([schedule("a", json!({}))])).await;
    poll_acts(ep).await
}

/// The first event of type `kind` in the open execution `workflow_id`.
async fn event(ep: &LocalEndpoint, workflow_id: &str, kind: &str) -> Option<Value> {
    let h = swf(
        ep,
        "GetWorkflowExecutionHistory",
        json!({"domain": "d", "execution": {"workflowId": workflow_id}}),
    )
    .await
    .unwrap();
    h["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["eventType"] == kind)
        .cloned()
}

fn schedule(id: &str, extra: Value) -> Value {
    let mut attrs = json!({"activityType": {"name": "t", "version": "1"}, "activityId": id,
                           "taskList": {"name": "acts"}});
    attrs
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"decisionType": "ScheduleActivityTask", "scheduleActivityTaskDecisionAttributes": attrs})
}

#[tokio::test(start_paused = true)]
async fn a_refused_decision_request_changes_nothing_and_can_be_sent_again() {
    let ep = endpoint().await;
    let token = swf_workflow(&ep).await;
    let before = history(&ep).await;
    let e = swf(&ep, "RespondDecisionTaskCompleted", json!({"taskToken": token, "decisions": [
        schedule("a1", json!({})),
        {"decisionType": "StartTimer", "startTimerDecisionAttributes": {"timerId": "t", "startToFireTimeout": "5"}}
    ]}))
    .await
    .unwrap_err();
    assert_eq!(e.code, "ValidationException");
    assert_eq!(
        history(&ep).await,
        before,
        "a refused request left events behind"
    );
    // The same token still works.
    decide(&ep, &token, json!([schedule("a1", json!({}))])).await;
    let h = history(&ep).await;
    assert_eq!(
        &h[h.len() - 2..],
        ["DecisionTaskCompleted", "ActivityTaskScheduled"]
    );
    let task = poll_acts(&ep).await;
    assert_eq!(task["activityId"], "a1");
}

#[tokio::test(start_paused = true)]
async fn schedule_to_start_times_out_a_task_nobody_takes() {
    let ep = endpoint().await;
    let token = swf_workflow(&ep).await;
    decide(
        &ep,
        &token,
        json!([schedule("late", json!({"scheduleToStartTimeout": "2"}))]),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let timed_out = event(&ep, "wf", "ActivityTaskTimedOut")
        .await
        .unwrap_or_else(|| panic!("no ActivityTaskTimedOut"));
    assert_eq!(
        timed_out["activityTaskTimedOutEventAttributes"]["timeoutType"],
        "SCHEDULE_TO_START"
    );
    // And it is no longer handed out.
    let none = tokio::time::timeout(
        Duration::from_secs(120),
        swf(
            &ep,
            "PollForActivityTask",
            json!({"domain": "d", "taskList": {"name": "acts"}}),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(none["taskToken"], "");
}

#[tokio::test(start_paused = true)]
async fn cancelling_an_unknown_activity_id_fails_as_documented() {
    let ep = endpoint().await;
    let token = swf_workflow(&ep).await;
    swf(&ep, "RespondDecisionTaskCompleted", json!({"taskToken": token, "decisions": [
        {"decisionType": "RequestCancelActivityTask", "requestCancelActivityTaskDecisionAttributes": {"activityId": "never"}}
    ]}))
    .await
    .unwrap();
    let failed = event(&ep, "wf", "RequestCancelActivityTaskFailed")
        .await
        .unwrap_or_else(|| panic!("no RequestCancelActivityTaskFailed"));
    assert_eq!(
        failed["requestCancelActivityTaskFailedEventAttributes"]["cause"],
        "ACTIVITY_ID_UNKNOWN"
    );
    assert!(
        !history(&ep)
            .await
            .contains(&"ActivityTaskCancelRequested".to_string())
    );
    // The decider is asked to decide again.
    assert!(history(&ep).await.last().unwrap() == "DecisionTaskScheduled");
}

#[tokio::test(start_paused = true)]
async fn deprecation_is_answered_as_documented() {
    let ep = endpoint().await;
    let token = swf_workflow(&ep).await;
    let t = json!({"domain": "d", "activityType": {"name": "t", "version": "1"}});
    swf(&ep, "DeprecateActivityType", t.clone()).await.unwrap();
    assert_eq!(
        swf(&ep, "DeprecateActivityType", t.clone())
            .await
            .unwrap_err()
            .code,
        "TypeDeprecatedFault"
    );
    let described = swf(&ep, "DescribeActivityType", t).await.unwrap();
    assert_eq!(described["typeInfo"]["status"], "DEPRECATED");
    decide(&ep, &token, json!([schedule("a", json!({}))])).await;
    assert!(
        history(&ep)
            .await
            .contains(&"ScheduleActivityTaskFailed".to_string())
    );
    swf(&ep, "DeprecateDomain", json!({"name": "d"}))
        .await
        .unwrap();
    assert_eq!(
        swf(&ep, "DeprecateDomain", json!({"name": "d"}))
            .await
            .unwrap_err()
            .code,
        "DomainDeprecatedFault"
    );
    let e = swf(
        &ep,
        "RegisterActivityType",
        json!({"domain": "d", "name": "u", "version": "1"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "OperationNotPermittedFault");
    assert_eq!(
        swf(&ep, "DeprecateDomain", json!({"name": "x".repeat(257)}))
            .await
            .unwrap_err()
            .code,
        "ValidationException"
    );
}

#[tokio::test(start_paused = true)]
async fn swf_polls_are_limited_and_abandoned_ones_do_not_count() {
    let ep = endpoint().await;
    swf_workflow(&ep).await;
    let poll = || {
        swf(
            &ep,
            "PollForActivityTask",
            json!({"domain": "d", "taskList": {"name": "acts"}}),
        )
    };
    for _ in 0..MAX_ABANDONED {
        assert!(
            tokio::time::timeout(Duration::from_millis(1), poll())
                .await
                .is_err()
        );
    }
    // Not refused: the abandoned polls are gone.
    let polls: Vec<_> = (0..1000).map(|_| Box::pin(poll())).collect();
    let mut polls: Vec<_> = polls
        .into_iter()
        .map(|mut p| {
            assert!(futures_util::FutureExt::now_or_never(p.as_mut()).is_none());
            p
        })
        .collect();
    // The 1,001st waiting poll is refused.
    let e = tokio::time::timeout(Duration::from_secs(1), poll())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, "LimitExceededFault");
    polls.clear();
    assert!(
        tokio::time::timeout(Duration::from_millis(1), poll())
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_may_name_a_task_scheduled_by_the_same_request() {
    let ep = endpoint().await;
    let token = swf_workflow(&ep).await;
    swf(&ep, "RespondDecisionTaskCompleted", json!({"taskToken": token, "decisions": [
        schedule("both", json!({})),
        {"decisionType": "RequestCancelActivityTask", "requestCancelActivityTaskDecisionAttributes": {"activityId": "both"}}
    ]}))
    .await
    .unwrap();
    // Queued, so canceled at once, and never handed out.
    assert!(
        history(&ep)
            .await
            .contains(&"ActivityTaskCanceled".to_string())
    );
    let none = poll_acts(&ep).await;
    assert_eq!(none["taskToken"], "");
}

#[tokio::test(start_paused = true)]
async fn closing_a_workflow_closes_its_activity_tasks() {
    let ep = endpoint().await;
    let task = swf_running_task(&ep).await;
    swf(
        &ep,
        "SignalWorkflowExecution",
        json!({"domain": "d", "workflowId": "wf", "signalName": "close"}),
    )
    .await
    .unwrap();
    let token = decision_token(&ep).await;
    decide(
        &ep,
        &token,
        json!([
            {"decisionType": "CompleteWorkflowExecution"},
            schedule("after-close", json!({}))
        ]),
    )
    .await;
    let e = swf(
        &ep,
        "RespondActivityTaskCompleted",
        json!({"taskToken": task["taskToken"], "result": "r"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "UnknownResourceFault");
    // Nothing after the closing decision was scheduled.
    let none = poll_acts(&ep).await;
    assert_eq!(none["taskToken"], "");
}

/// Pins `n` polls and polls each once, so that all of them are waiting.
fn waiting_polls<F: std::future::Future + Send>(
    n: usize,
    mut poll: impl FnMut() -> F,
) -> Vec<std::pin::Pin<Box<F>>> {
    (0..n)
        .map(|_| {
            let mut p = Box::pin(poll());
            assert!(futures_util::FutureExt::now_or_never(p.as_mut()).is_none());
            p
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn sfn_polls_are_limited_exactly() {
    let ep = endpoint().await;
    let (arn, sm) = setup(&ep, json!({})).await;
    let get = || ep.call("GetActivityTask", json!({"activityArn": arn}));
    let mut polls = waiting_polls(sfn::MAX_POLLERS, get);
    assert_eq!(pollers(&ep), 1_000);
    // The 1,001st waiting poll is refused, and does not count.
    let e = tokio::time::timeout(Duration::from_secs(1), get())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, "ActivityWorkerLimitExceeded", "{}", e.message);
    assert_eq!(pollers(&ep), 1_000);
    polls.pop();
    // One slot free: a poll waits again and gets the next task.
    start(&ep, &sm, json!({"after": "limit"})).await;
    polls.clear();
    assert!(poll(&ep, &arn).await.is_some());
    assert_eq!(pollers(&ep), 0);
}

fn swf_state(ep: &LocalEndpoint) -> Value {
    ep.swf.page_state()
}

#[tokio::test(start_paused = true)]
async fn swf_waiting_polls_show_in_the_state_and_empty_lists_are_forgotten() {
    let ep = endpoint().await;
    swf_workflow(&ep).await;
    let acts = || {
        swf(
            &ep,
            "PollForActivityTask",
            json!({"domain": "d", "taskList": {"name": "acts"}}),
        )
    };
    let decisions = || {
        swf(
            &ep,
            "PollForDecisionTask",
            json!({"domain": "d", "taskList": {"name": "decisions"}}),
        )
    };
    let a = waiting_polls(3, acts);
    let d = waiting_polls(2, decisions);
    let mut lists: Vec<(String, String, u64)> = swf_state(&ep)["taskLists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["taskList"].as_str().unwrap().to_string(),
                l["pollers"].as_u64().unwrap(),
            )
        })
        .collect();
    lists.sort();
    assert_eq!(
        lists,
        [
            ("activity".into(), "acts".into(), 3),
            ("decision".into(), "decisions".into(), 2)
        ]
    );
    drop((a, d));
    // Polls on ever new names leave nothing behind once they end.
    for i in 0..50 {
        let p = swf(
            &ep,
            "PollForActivityTask",
            json!({"domain": "d", "taskList": {"name": format!("l{i}")}}),
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(1), p)
                .await
                .is_err()
        );
    }
    assert_eq!(swf_state(&ep)["taskLists"], json!([]), "{}", swf_state(&ep));
}

async fn timed_out_type(ep: &LocalEndpoint, workflow_id: &str) -> Option<Value> {
    event(ep, workflow_id, "ActivityTaskTimedOut")
        .await
        .map(|e| e["activityTaskTimedOutEventAttributes"]["timeoutType"].clone())
}

#[tokio::test(start_paused = true)]
async fn schedule_to_close_times_out_a_running_task() {
    let ep = endpoint().await;
    let token = swf_workflow(&ep).await;
    decide(
        &ep,
        &token,
        json!([schedule(
            "slow",
            json!({"scheduleToCloseTimeout": "5", "startToCloseTimeout": "100"})
        )]),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let task = poll_acts(&ep).await;
    assert_eq!(task["activityId"], "slow");
    // Started 2 s in: still running at 4 s, timed out at 5 s overall.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(timed_out_type(&ep, "wf").await, None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        timed_out_type(&ep, "wf").await,
        Some(json!("SCHEDULE_TO_CLOSE"))
    );
    let e = swf(
        &ep,
        "RespondActivityTaskCompleted",
        json!({"taskToken": task["taskToken"], "result": "late"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "UnknownResourceFault");
}

#[tokio::test(start_paused = true)]
async fn an_execution_times_out_and_its_tasks_and_tokens_go_with_it() {
    let ep = endpoint().await;
    let task = swf_running_task(&ep).await;
    let short = swf(
        &ep,
        "StartWorkflowExecution",
        json!({"domain": "d", "workflowId": "short", "workflowType": {"name": "w", "version": "1"},
               "taskList": {"name": "decisions"}, "executionStartToCloseTimeout": "10"}),
    )
    .await
    .unwrap();
    assert_eq!(swf_state(&ep)["openExecutions"], 2);
    tokio::time::sleep(Duration::from_secs(11)).await;
    let h = swf(
        &ep,
        "GetWorkflowExecutionHistory",
        json!({"domain": "d", "execution": {"workflowId": "short", "runId": short["runId"]}}),
    )
    .await
    .unwrap();
    let last = h["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["eventType"], "WorkflowExecutionTimedOut", "{h}");
    assert_eq!(
        last["workflowExecutionTimedOutEventAttributes"]["timeoutType"],
        "START_TO_CLOSE"
    );
    assert_eq!(swf_state(&ep)["openExecutions"], 1);
    // Its pending decision task is gone: the next one is wf's, not short's.
    assert_eq!(
        swf_state(&ep)["taskLists"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["kind"] == "decision")
            .map(|l| l["queued"].clone()),
        None
    );
    // The first workflow (86,400 s) is still open and its task still works.
    swf(
        &ep,
        "RespondActivityTaskCompleted",
        json!({"taskToken": task["taskToken"], "result": "r"}),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_decision_task_times_out_and_is_scheduled_again() {
    let ep = endpoint().await;
    swf_workflow(&ep).await;
    swf(
        &ep,
        "StartWorkflowExecution",
        json!({"domain": "d", "workflowId": "slow-decider", "workflowType": {"name": "w", "version": "1"},
               "taskList": {"name": "decisions"}, "taskStartToCloseTimeout": "5"}),
    )
    .await
    .unwrap();
    let token = decision_token(&ep).await;
    assert_eq!(swf_state(&ep)["decisionTasks"], 2);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let h = swf(
        &ep,
        "GetWorkflowExecutionHistory",
        json!({"domain": "d", "execution": {"workflowId": "slow-decider"}}),
    )
    .await
    .unwrap();
    let types: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        &types[types.len() - 2..],
        ["DecisionTaskTimedOut", "DecisionTaskScheduled"]
    );
    assert_eq!(swf_state(&ep)["decisionTasks"], 1);
    let e = swf(
        &ep,
        "RespondDecisionTaskCompleted",
        json!({"taskToken": token, "decisions": []}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "UnknownResourceFault");
    // The new decision task is handed out; once answered, its timer ends.
    let timers = ep.swf.running_tasks();
    let token = decision_token(&ep).await;
    assert_eq!(ep.swf.running_tasks(), timers + 1);
    decide(&ep, &token, json!([])).await;
    tokio::task::yield_now().await;
    assert_eq!(ep.swf.running_tasks(), timers);
}

#[tokio::test(start_paused = true)]
async fn an_execution_without_a_start_to_close_timeout_is_refused() {
    let ep = endpoint().await;
    swf_workflow(&ep).await;
    swf(
        &ep,
        "RegisterWorkflowType",
        json!({"domain": "d", "name": "bare", "version": "1"}),
    )
    .await
    .unwrap();
    let start = |timeout: Option<&str>| {
        let mut r = json!({"domain": "d", "workflowId": "bare", "workflowType": {"name": "bare", "version": "1"},
                           "taskList": {"name": "decisions"}, "taskStartToCloseTimeout": "NONE"});
        if let Some(t) = timeout {
            r["executionStartToCloseTimeout"] = json!(t);
        }
        swf(&ep, "StartWorkflowExecution", r)
    };
    for t in [None, Some("NONE")] {
        let e = start(t).await.unwrap_err();
        assert_eq!(e.code, "DefaultUndefinedFault", "{t:?}");
        assert!(
            e.message.contains("executionStartToCloseTimeout"),
            "{}",
            e.message
        );
    }
    start(Some("60")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn finished_executions_beyond_the_bound_are_forgotten_on_both_halves() {
    let ep = endpoint().await;
    let (_arn, sm) = setup(&ep, json!({})).await;
    let mut first = None;
    for _ in 0..=sfn::MAX_EXECUTIONS {
        let exec = start(&ep, &sm, json!({})).await;
        ep.call("StopExecution", json!({"executionArn": exec}))
            .await
            .unwrap();
        first.get_or_insert(exec);
    }
    let e = ep
        .call("DescribeExecution", json!({"executionArn": first.unwrap()}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "ExecutionDoesNotExist");
    assert_eq!(ep.shared.page_state()["executions"], sfn::MAX_EXECUTIONS);

    let token = swf_workflow(&ep).await;
    let complete = json!([{"decisionType": "CompleteWorkflowExecution"}]);
    decide(&ep, &token, json!(complete)).await;
    // With "wf", one more than the bound closed.
    let mut runs = Vec::new();
    for i in 0..=swf::MAX_CLOSED_EXECUTIONS {
        let started = swf(
            &ep,
            "StartWorkflowExecution",
            json!({"domain": "d", "workflowId": format!("wf{i}"), "workflowType": {"name": "w", "version": "1"},
                   "taskList": {"name": "decisions"}}),
        )
        .await
        .unwrap();
        if i < 2 {
            runs.push(started["runId"].clone());
        }
        let token = decision_token(&ep).await;
        swf(
            &ep,
            "RespondDecisionTaskCompleted",
            json!({"taskToken": token, "decisions": complete}),
        )
        .await
        .unwrap();
    }
    let forgotten = swf(
        &ep,
        "GetWorkflowExecutionHistory",
        json!({"domain": "d", "execution": {"workflowId": "wf0", "runId": runs[0]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(forgotten.code, "UnknownResourceFault");
    swf(
        &ep,
        "GetWorkflowExecutionHistory",
        json!({"domain": "d", "execution": {"workflowId": "wf1", "runId": runs[1]}}),
    )
    .await
    .unwrap();
    assert_eq!(swf_state(&ep)["openExecutions"], 0);
    assert_eq!(swf_state(&ep)["decisionTasks"], 0);
}

#[tokio::test]
async fn shutdown_ends_execution_drivers_and_swf_timers() {
    let ep = endpoint().await;
    let (_arn, sm) = setup(&ep, json!({"TimeoutSeconds": 3600})).await;
    start(&ep, &sm, json!({})).await;
    let token = swf_workflow(&ep).await;
    decide(
        &ep,
        &token,
        json!([schedule("a", json!({"scheduleToCloseTimeout": "3600"}))]),
    )
    .await;
    let (shared, swf_half) = (ep.shared.clone(), ep.swf.clone());
    // A driver waiting on its task; the execution's and the task's timers.
    assert_eq!(shared.running_tasks(), 1);
    assert_eq!(swf_half.running_tasks(), 2);
    tokio::time::timeout(Duration::from_secs(10), ep.shutdown())
        .await
        .expect("shutdown returns while drivers and timers wait");
    assert_eq!((shared.running_tasks(), swf_half.running_tasks()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn open_executions_beyond_the_quota_are_refused_until_one_closes() {
    let state = swf::SwfState::with_max_open(2);
    let call = |op: &'static str, req: Value| {
        let state = state.clone();
        async move { state.dispatch(op, &req).await }
    };
    call(
        "RegisterDomain",
        json!({"name": "d", "workflowExecutionRetentionPeriodInDays": "1"}),
    )
    .await
    .unwrap();
    call(
        "RegisterWorkflowType",
        json!({"domain": "d", "name": "w", "version": "1", "defaultTaskList": {"name": "decisions"},
               "defaultExecutionStartToCloseTimeout": "60", "defaultTaskStartToCloseTimeout": "NONE"}),
    )
    .await
    .unwrap();
    let start = |id: &str| {
        call(
            "StartWorkflowExecution",
            json!({"domain": "d", "workflowId": id, "workflowType": {"name": "w", "version": "1"}}),
        )
    };
    start("a").await.unwrap();
    start("b").await.unwrap();
    let e = start("c").await.unwrap_err();
    assert_eq!(e.code, "LimitExceededFault");
    assert!(
        e.message.contains("domain d") && e.message.contains('2'),
        "{}",
        e.message
    );
    // "a" and "b" time out after 60 s: their slots are free again.
    tokio::time::sleep(Duration::from_secs(61)).await;
    start("c").await.unwrap();
    assert_eq!(state.page_state()["openExecutions"], 1);
}

#[tokio::test(start_paused = true)]
async fn the_page_names_swf_types_and_tasks_as_the_worker_does_and_shows_a_set_worker() {
    use axum::extract::State;
    let ep = endpoint().await;
    swf_running_task(&ep).await;
    swf(
        &ep,
        "RegisterActivityType",
        json!({"domain": "d", "name": "ship", "version": "2", "defaultTaskList": {"name": "orders"}}),
    )
    .await
    .unwrap();
    let state = swf_state(&ep);
    let types = state["activityTypes"].as_array().unwrap();
    let named: Vec<(&str, Option<&str>)> = types
        .iter()
        .map(|t| (t["type"].as_str().unwrap(), t["name"].as_str()))
        .collect();
    assert!(named.contains(&("ship", Some("orders/ship@2"))), "{state}");
    assert!(
        named.contains(&("t", None)),
        "no default task list, no worker name: {state}"
    );
    assert_eq!(state["tasks"][0]["name"], "acts/t@1", "{state}");
    assert_eq!(state["tasks"][0]["domain"], "d");
    assert_eq!(state["tasks"][0]["status"], "running");

    let page = || {
        crate::page::state(
            State(ep.shared.clone()),
            State(ep.swf.clone()),
            State(ep.worker.clone()),
        )
    };
    assert!(page().await.0.get("worker").is_none());
    ep.show_worker(|| json!({"tasks": [{"task": "abc"}]}));
    assert_eq!(page().await.0["worker"]["tasks"][0]["task"], "abc");
}
