//! The lean AWS JSON client and the AWS SDK send equivalent, correctly
//! signed requests for the worker's hot operations: the same worker runs
//! the same Step Functions and SWF tasks once with `aws_client = "lean"`
//! and once with `"sdk"`, behind a proxy (`tests/protocol/sigv4_proxy.py`)
//! that recomputes every request's SigV4 signature with botocore, a signer
//! this project did not write, and records what was sent.

use crate::support::{
    Backend, REGION, Service, Sfn, Worker, activity_toml, guests, python_with_boto3, repo_root,
    unique,
};
use crate::swf_support::{Swf, activity_type};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DONE: Duration = Duration::from_secs(90);
/// The credentials `Worker::start` gives the worker.
const ACCESS_KEY: &str = "test";
const SECRET_KEY: &str = "test";
const CLIENTS: [&str; 2] = ["lean", "sdk"];
/// The hot operations this test makes the worker call, each of which must
/// be seen under both clients.
const HOT: [&str; 9] = [
    "AWSStepFunctions.GetActivityTask",
    "AWSStepFunctions.SendTaskHeartbeat",
    "AWSStepFunctions.SendTaskSuccess",
    "AWSStepFunctions.SendTaskFailure",
    "SimpleWorkflowService.PollForActivityTask",
    "SimpleWorkflowService.RecordActivityTaskHeartbeat",
    "SimpleWorkflowService.RespondActivityTaskCompleted",
    "SimpleWorkflowService.RespondActivityTaskFailed",
    "SimpleWorkflowService.RespondActivityTaskCanceled",
];
/// Every hot request must sign at least these.
const MUST_SIGN: [&str; 3] = ["host", "x-amz-date", "x-amz-target"];

/// `tests/protocol/sigv4_proxy.py` in front of an endpoint; killed on drop.
struct SigV4Proxy {
    url: String,
    child: Child,
}

impl SigV4Proxy {
    fn start(upstream: &str) -> SigV4Proxy {
        let script = repo_root().join("tests/protocol/sigv4_proxy.py");
        let mut child = Command::new(python_with_boto3())
            .arg(&script)
            .args([upstream, ACCESS_KEY, SECRET_KEY])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tests/protocol/sigv4_proxy.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = match line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("sigv4_proxy.py did not print its port (is botocore installed?): {line:?}");
            }
        };
        SigV4Proxy {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// Tags the requests that follow.
    async fn tag(&self, tag: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/_tag", self.url))
            .body(tag.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "setting the tag: {}", r.status());
    }

    /// Everything recorded so far.
    async fn log(&self) -> Vec<Value> {
        reqwest::get(format!("{}/_log", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for SigV4Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every key of a JSON body, nested ones as `outer.inner`.
fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Object(map) = value {
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.insert(path.clone());
            key_paths(v, &path, out);
        }
    }
}

fn text(record: &Value, key: &str) -> String {
    record[key].as_str().unwrap_or("<none>").to_string()
}

/// `(region, service)` of the record's credential scope.
fn region_service(record: &Value) -> (String, String) {
    let scope = text(record, "scope");
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        [_, region, service, _] => (region.to_string(), service.to_string()),
        _ => ("<bad scope>".into(), scope),
    }
}

fn pretty(records: &[&Value]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string_pretty(r).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// One worker with `aws_client = client` serving one Step Functions
/// activity and one SWF task list; runs a task that succeeds after being
/// heartbeated, one that fails and (SWF) one that is canceled.
async fn run_client(client: &str, through: &Service, sfn: &Sfn, swf: &Swf) {
    // A fresh activity and task list per client: a long poll the previous
    // worker abandoned may still be open upstream for a few seconds.
    let activity = sfn.create_activity(&format!("signed-{client}")).await;
    let sm = sfn.create_state_machine(&activity, 60, Some(30)).await;
    let list = unique("signed");
    let scenario = &guests().scenario;
    let config = format!(
        "aws_client = \"{client}\"\n{}\n[swf.signed]\ndomain = \"{}\"\ntask_list = \"{list}\"\n\
         max_concurrent = 4\n\n[[swf.signed.activity]]\ntype = \"signed\"\nversion = \"1\"\n\
         component = \"{}\"\nheartbeat_interval = \"200ms\"\n\n\
         [[swf.signed.activity]]\ntype = \"described\"\nversion = \"1\"\ncomponent = \"{}\"\n",
        activity_toml(
            "signed",
            &activity,
            scenario,
            "max_concurrent = 4\nheartbeat_interval = \"200ms\""
        ),
        swf.domain,
        scenario.display(),
        scenario.display()
    );
    let mut worker = Worker::start(&config, through);

    let sleep = json!({"action": "sleep", "ms": 1500});
    let fail = json!({"action": "fail", "error": "Signed.Failure", "cause": "on purpose"});
    let sfn_ok = sfn.start(&sm, &sleep).await;
    let sfn_bad = sfn.start(&sm, &fail).await;
    let ty = activity_type("signed", "1");
    let swf_ok = swf.start(&ty, &list, &sleep.to_string()).await;
    let swf_bad = swf.start(&ty, &list, &fail.to_string()).await;
    let swf_cancel = swf
        .start(
            &ty,
            &list,
            &json!({"action": "wait_cancel", "max_ms": 60000}).to_string(),
        )
        .await;

    swf.wait_activity_started(&swf_cancel, DONE).await;
    swf.signal_cancel(&swf_cancel).await;

    let done = sfn.wait(&sfn_ok, DONE).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Succeeded,
        "{client}: {done:?}"
    );
    let done = sfn.wait(&sfn_bad, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{client}: {done:?}");
    assert_eq!(done.error.as_deref(), Some("Signed.Failure"), "{client}");
    let e = swf.wait_activity_closed(&swf_ok, DONE).await;
    assert!(
        e.activity_task_completed_event_attributes().is_some(),
        "{client}: {e:?}"
    );
    let e = swf.wait_activity_closed(&swf_bad, DONE).await;
    let failed = e
        .activity_task_failed_event_attributes()
        .unwrap_or_else(|| panic!("{client}: {e:?}"));
    assert_eq!(failed.reason(), Some("Signed.Failure"), "{client}");
    let e = swf.wait_activity_closed(&swf_cancel, DONE).await;
    assert!(
        e.activity_task_canceled_event_attributes().is_some(),
        "{client}: {e:?}"
    );
    let status = worker.terminate(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "{client}: the worker did not stop cleanly:\n{}",
        worker.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lean_and_sdk_clients_send_equivalent_requests_that_botocore_verifies() {
    let svc = Service::start(Backend::Embedded);
    let proxy = SigV4Proxy::start(&svc.url);
    let through = svc.through(&proxy.url);
    // The test drives the service directly: only the worker goes through
    // the proxy.
    let sfn = Sfn::connect(&svc).await;
    let swf = Swf::connect(&svc).await;
    swf.register_activity("signed", "1", 30).await;
    // Never run: without a heartbeat_interval in the config, the worker
    // asks for its registered timeout (DescribeActivityType, a call that is
    // not hot and so always goes through the SDK).
    swf.register_activity("described", "1", 30).await;
    let _decider = swf.decider();

    // A control: a request signed with another secret must not verify.
    proxy.tag("control").await;
    let wrong = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::new()
            .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
            .region(aws_sdk_sfn::config::Region::new(REGION))
            .endpoint_url(&proxy.url)
            .credentials_provider(aws_sdk_sfn::config::Credentials::new(
                ACCESS_KEY,
                "not-the-secret",
                None,
                None,
                "test",
            ))
            .build(),
    );
    wrong
        .list_activities()
        .max_results(1)
        .send()
        .await
        .expect("the embedded endpoint does not check signatures");

    for client in CLIENTS {
        proxy.tag(client).await;
        run_client(client, &through, &sfn, &swf).await;
    }

    let log = proxy.log().await;
    let control: Vec<&Value> = log.iter().filter(|r| r["tag"] == "control").collect();
    assert_eq!(control.len(), 1, "{}", pretty(&control));
    assert_eq!(
        control[0]["verified"],
        false,
        "a request signed with the wrong secret verified: the proxy checks nothing\n{}",
        pretty(&control)
    );
    // ... because botocore computed another signature, not because the
    // check broke down.
    assert_eq!(
        control[0]["why"],
        "signature mismatch",
        "{}",
        pretty(&control)
    );

    // Every request of both workers, startup probes included, verifies.
    let ours: Vec<&Value> = log
        .iter()
        .filter(|r| CLIENTS.contains(&r["tag"].as_str().unwrap_or("")))
        .collect();
    let unverified: Vec<&Value> = ours
        .iter()
        .copied()
        .filter(|r| r["verified"] != true)
        .collect();
    assert!(
        unverified.is_empty(),
        "{} of {} requests did not verify with botocore:\n{}",
        unverified.len(),
        ours.len(),
        pretty(&unverified)
    );

    // The hot requests by target and client.
    let mut by: BTreeMap<&str, BTreeMap<&str, Vec<&Value>>> = BTreeMap::new();
    for r in &ours {
        let target = r["target"].as_str().unwrap_or("");
        if HOT.contains(&target) {
            let tag = r["tag"].as_str().unwrap();
            by.entry(target)
                .or_default()
                .entry(tag)
                .or_default()
                .push(r);
        }
    }
    let mut problems = Vec::new();
    for (target, tags) in &by {
        for client in CLIENTS {
            if !tags.contains_key(client) {
                let seen: Vec<&&str> = tags.keys().collect();
                problems.push(format!("{target}: sent by {seen:?} but not by {client}"));
            }
        }
    }
    for target in HOT {
        for client in CLIENTS {
            if !by.get(target).is_some_and(|t| t.contains_key(client)) {
                problems.push(format!("{target}: never sent by {client}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The call that is not hot went through the SDK under both.
    for client in CLIENTS {
        let described: Vec<&Value> = ours
            .iter()
            .copied()
            .filter(|r| {
                r["tag"] == client && r["target"] == "SimpleWorkflowService.DescribeActivityType"
            })
            .collect();
        if described.is_empty() {
            problems.push(format!("{client}: no DescribeActivityType at startup"));
        }
        for r in described {
            let ua = text(r, "user_agent");
            if !ua.starts_with("aws-sdk-rust/") {
                problems.push(format!(
                    "{client}: DescribeActivityType was not sent by the SDK: User-Agent {ua:?}"
                ));
            }
        }
    }

    // Each worker used the client it was told to: the lean client names
    // itself in User-Agent, the SDK names the SDK.
    for (target, tags) in &by {
        for (client, agent) in [("lean", "wasm-activity/"), ("sdk", "aws-sdk-rust/")] {
            for r in &tags[client] {
                let ua = text(r, "user_agent");
                if !ua.starts_with(agent) {
                    problems.push(format!(
                        "{target}: a {client} request's User-Agent is {ua:?}, not {agent}..."
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Per target, what a service could tell apart.
    println!(
        "{:<52} {:>6} {:>6}  signed headers",
        "target", "lean", "sdk"
    );
    for (target, tags) in &by {
        let (lean, sdk) = (&tags["lean"], &tags["sdk"]);
        let set = |records: &[&Value], f: &dyn Fn(&Value) -> String| -> BTreeSet<String> {
            records.iter().map(|r| f(r)).collect()
        };
        let content_type = |r: &Value| text(r, "content_type");
        let scope = |r: &Value| format!("{:?}", region_service(r));
        let access_key = |r: &Value| text(r, "access_key");
        let method_path = |r: &Value| format!("{} {}", text(r, "method"), text(r, "path"));
        let keys = |r: &Value| {
            let mut keys = BTreeSet::new();
            key_paths(&r["body"], "", &mut keys);
            format!("{keys:?}")
        };
        for (what, f) in [
            ("content types", &content_type as &dyn Fn(&Value) -> String),
            ("credential scopes (region, service)", &scope),
            ("access keys", &access_key),
            ("methods and paths", &method_path),
            ("JSON body keys", &keys),
        ] {
            let (l, s) = (set(lean, f), set(sdk, f));
            if l != s {
                problems.push(format!("{target}: {what} differ: lean {l:?}, sdk {s:?}"));
            }
        }
        let content_types = set(lean, &content_type);
        if content_types != BTreeSet::from(["application/x-amz-json-1.0".to_string()]) {
            problems.push(format!("{target}: lean content types {content_types:?}"));
        }
        let service = if target.starts_with("AWSStepFunctions.") {
            "states"
        } else {
            "swf"
        };
        for client in CLIENTS {
            let scopes: BTreeSet<(String, String)> =
                tags[client].iter().map(|r| region_service(r)).collect();
            let want = BTreeSet::from([(REGION.to_string(), service.to_string())]);
            if scopes != want {
                problems.push(format!(
                    "{target}: {client} signed for {scopes:?}, not {want:?}"
                ));
            }
            for r in &tags[client] {
                let signed: Vec<&str> = r["signed_headers"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let missing: Vec<&str> = MUST_SIGN
                    .into_iter()
                    .filter(|h| !signed.contains(h))
                    .collect();
                if !missing.is_empty() {
                    problems.push(format!(
                        "{target}: a {client} request does not sign {missing:?}: {signed:?}"
                    ));
                }
            }
        }
        let headers = |records: &[&Value]| -> BTreeSet<String> {
            records
                .iter()
                .map(|r| {
                    r["signed_headers"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(";")
                        })
                        .unwrap_or_default()
                })
                .collect()
        };
        println!(
            "{target:<52} {:>6} {:>6}  lean {:?}\n{:<67}sdk  {:?}",
            lean.len(),
            sdk.len(),
            headers(lean),
            "",
            headers(sdk)
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
