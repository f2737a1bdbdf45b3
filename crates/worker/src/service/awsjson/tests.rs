//! The lean client against a local fake service: requests signed and
//! shaped as the SDK sends them, answers sorted as the SDK sorts them.

use super::*;
use crate::config::AwsClient;
use crate::service::sfn::{SfnClients, StepFunctions};
use crate::service::swf::{Swf, SwfClients};
use crate::service::{ActivityService, TaskToken};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the test server says to every request, byte for byte; `None`
/// closes the connection once the request is read.
type Script = Arc<Mutex<Option<Vec<u8>>>>;

/// A loopback server answering every request with the script's bytes;
/// its URL and the requests it read.
async fn server(script: Script) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (script, log) = (script.clone(), log.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 65536];
                // One request per connection: read the head, then the
                // body its Content-Length announces.
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            log.lock().unwrap().push(text);
                            break;
                        }
                    }
                }
                let answer = script.lock().unwrap().clone();
                if let Some(bytes) = answer {
                    let _ = socket.write_all(&bytes).await;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, seen)
}

fn answer(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

fn sdk_config(url: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"),
        ))
        .build()
}

/// Each operation of both services, through one client.
async fn each_call(
    url: &str,
    client: AwsClient,
) -> Vec<(&'static str, Result<String, ServiceError>)> {
    let sdk = sdk_config(url);
    let sfn = StepFunctions::new(
        SfnClients::new(&sdk, client),
        "arn:aws:states:us-east-1:1:activity:a",
        "w",
    );
    let swf = Swf::new(SwfClients::new(&sdk, client), "d", "tl", "w");
    let token = TaskToken::new("tok");
    let show = |t: Option<crate::service::Task>| {
        format!(
            "{:?}",
            t.map(|t| (t.token.as_str().to_string(), t.input, t.activity_type))
        )
    };
    vec![
        ("sfn poll", sfn.poll().await.map(show)),
        (
            "sfn heartbeat",
            sfn.heartbeat(&token, None).await.map(|a| format!("{a:?}")),
        ),
        (
            "sfn complete",
            sfn.complete(&token, "{}").await.map(|()| "ok".into()),
        ),
        (
            "sfn fail",
            sfn.fail(&token, "E", "c").await.map(|()| "ok".into()),
        ),
        ("swf poll", swf.poll().await.map(show)),
        (
            "swf heartbeat",
            swf.heartbeat(&token, Some("d"))
                .await
                .map(|a| format!("{a:?}")),
        ),
        (
            "swf complete",
            swf.complete(&token, "{}").await.map(|()| "ok".into()),
        ),
        (
            "swf fail",
            swf.fail(&token, "E", "c").await.map(|()| "ok".into()),
        ),
        (
            "swf cancel",
            swf.cancel(&token, "d").await.map(|()| "ok".into()),
        ),
    ]
}

/// Every class of answer of the delivery table, through the SDK and the
/// lean client: the same verdict and code (or the same parsed answer)
/// for every operation of both services.
#[tokio::test]
async fn the_lean_client_sorts_every_answer_as_the_sdk_does() {
    let json = [("content-type", "application/x-amz-json-1.0")];
    let typed = |code: &str| format!("{{\"__type\":\"{code}\",\"message\":\"m\"}}");
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("success", Some(answer("200 OK", &json, "{}"))),
        (
            "a task",
            Some(answer(
                "200 OK",
                &json,
                r#"{"taskToken":"t1","input":"{\"a\":1}","activityType":{"name":"n","version":"1"},"cancelRequested":true}"#,
            )),
        ),
        ("empty success body", Some(answer("200 OK", &[], ""))),
        (
            "task gone",
            Some(answer("400 Bad Request", &json, &typed("TaskTimedOut"))),
        ),
        (
            "namespaced code",
            Some(answer(
                "400 Bad Request",
                &json,
                &typed("com.amazonaws.swf.base.model#UnknownResourceFault"),
            )),
        ),
        (
            "code in a header",
            Some(answer(
                "400 Bad Request",
                &[(
                    "x-amzn-ErrorType",
                    "TaskDoesNotExist:http://internal.amazon.com/",
                )],
                "{}",
            )),
        ),
        (
            "output refused",
            Some(answer("400 Bad Request", &json, &typed("InvalidOutput"))),
        ),
        (
            "KMS throttling",
            Some(answer(
                "400 Bad Request",
                &json,
                &typed("KmsThrottlingException"),
            )),
        ),
        (
            "expired token",
            Some(answer(
                "400 Bad Request",
                &json,
                &typed("ExpiredTokenException"),
            )),
        ),
        (
            "unknown 400 code",
            Some(answer("400 Bad Request", &json, &typed("SomethingNew"))),
        ),
        (
            "400 not JSON",
            Some(answer(
                "400 Bad Request",
                &[("content-type", "text/html")],
                "<html>no</html>",
            )),
        ),
        ("403 not JSON", Some(answer("403 Forbidden", &[], "denied"))),
        ("408", Some(answer("408 Request Timeout", &[], ""))),
        ("429", Some(answer("429 Too Many Requests", &[], ""))),
        (
            "500 typed",
            Some(answer(
                "500 Internal Server Error",
                &json,
                &typed("InternalFailure"),
            )),
        ),
        (
            "503 bare",
            Some(answer("503 Service Unavailable", &[], "busy")),
        ),
        (
            "200 not JSON",
            Some(answer("200 OK", &[], "<html>proxy</html>")),
        ),
        (
            "cut mid-body",
            Some(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"taskTo".to_vec()),
        ),
        ("dropped after the request", None),
    ];
    for (case, script) in cases {
        let script: Script = Arc::new(Mutex::new(script));
        let (url, _) = server(script).await;
        let sdk = each_call(&url, AwsClient::Sdk).await;
        let lean = each_call(&url, AwsClient::Lean).await;
        for ((op, a), (_, b)) in sdk.iter().zip(&lean) {
            // The verdict decides what the worker does; the code is for
            // the log, and where the answer named none, the SDKs of the
            // two services word that differently.
            let sorted = |r: &Result<String, ServiceError>| match r {
                Ok(v) => Ok(v.clone()),
                Err(e) => Err(e.verdict),
            };
            if case == "200 not JSON" && a.is_ok() {
                // The SDK takes any body of some successes as the
                // answer; the lean client never does (see `send`).
                assert_eq!(sorted(b), Err(Verdict::NoAnswer), "{op}");
                continue;
            }
            assert_eq!(sorted(a), sorted(b), "{case}, {op}: SDK {a:?}, lean {b:?}");
            if let (Err(a), Err(b)) = (a, b) {
                let named = |code: &str| {
                    !(code.starts_with("HTTP ") || ["ResponseError", "Unknown"].contains(&code))
                };
                if named(&a.code) {
                    assert_eq!(a.code, b.code, "{case}, {op}");
                }
            }
        }
    }
    // Nothing listening: nothing was sent, through either client.
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    for (op, r) in each_call(&url, AwsClient::Lean).await {
        let e = r.unwrap_err();
        assert_eq!(
            (e.verdict, e.code.as_str()),
            (Verdict::NotSent, "ConnectError"),
            "{op}"
        );
    }
}

/// The request the lean client sends: the AWS JSON 1.0 envelope, signed
/// for the service and region with the headers the SDK signs.
#[tokio::test]
async fn requests_carry_the_envelope_and_a_sigv4_signature() {
    let script: Script = Arc::new(Mutex::new(Some(answer("200 OK", &[], "{}"))));
    let (url, seen) = server(script).await;
    each_call(&url, AwsClient::Lean).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 9);
    for (request, (target, scope)) in seen.iter().zip([
        (
            "AWSStepFunctions.GetActivityTask",
            "us-east-1/states/aws4_request",
        ),
        (
            "AWSStepFunctions.SendTaskHeartbeat",
            "us-east-1/states/aws4_request",
        ),
        (
            "AWSStepFunctions.SendTaskSuccess",
            "us-east-1/states/aws4_request",
        ),
        (
            "AWSStepFunctions.SendTaskFailure",
            "us-east-1/states/aws4_request",
        ),
        (
            "SimpleWorkflowService.PollForActivityTask",
            "us-east-1/swf/aws4_request",
        ),
        (
            "SimpleWorkflowService.RecordActivityTaskHeartbeat",
            "us-east-1/swf/aws4_request",
        ),
        (
            "SimpleWorkflowService.RespondActivityTaskCompleted",
            "us-east-1/swf/aws4_request",
        ),
        (
            "SimpleWorkflowService.RespondActivityTaskFailed",
            "us-east-1/swf/aws4_request",
        ),
        (
            "SimpleWorkflowService.RespondActivityTaskCanceled",
            "us-east-1/swf/aws4_request",
        ),
    ]) {
        let lower = request.to_ascii_lowercase();
        assert!(request.starts_with("POST / HTTP/1.1\r\n"), "{request}");
        assert!(
            lower.contains(&format!("x-amz-target: {}", target.to_ascii_lowercase())),
            "{request}"
        );
        assert!(
            lower.contains("content-type: application/x-amz-json-1.0"),
            "{request}"
        );
        assert!(lower.contains("credential=akidtest/"), "{request}");
        assert!(lower.contains(&scope.to_ascii_lowercase()), "{request}");
        assert!(
            lower
                .contains("signedheaders=content-length;content-type;host;x-amz-date;x-amz-target"),
            "{request}"
        );
    }
    assert!(
        seen[0].ends_with(
            r#"{"activityArn":"arn:aws:states:us-east-1:1:activity:a","workerName":"w"}"#
        )
    );
    assert!(seen[4].ends_with(r#"{"domain":"d","taskList":{"name":"tl"},"identity":"w"}"#));
    assert!(seen[5].ends_with(r#"{"taskToken":"tok","details":"d"}"#));
}

#[test]
fn a_clock_off_by_minutes_is_corrected_and_seconds_are_not() {
    let sdk = sdk_config("http://127.0.0.1:1");
    let client = AwsJson::new(Protocol::StepFunctions, &sdk);
    let sent = SystemTime::now();
    let with_date = |date: SystemTime| Answer {
        status: http::StatusCode::OK,
        date: Some(date),
        error_type: None,
        body: Bytes::new(),
    };
    client.measure_skew(sent, &with_date(sent + Duration::from_secs(30)));
    assert_eq!(client.skew_ms.load(Ordering::Relaxed), 0);
    client.measure_skew(sent, &with_date(sent + Duration::from_secs(600)));
    let skew = client.skew_ms.load(Ordering::Relaxed);
    assert!((590_000..=600_000).contains(&skew), "{skew}");
    let signing = client.signing_time();
    assert!(signing > SystemTime::now() + Duration::from_secs(580));
    client.measure_skew(sent, &with_date(sent - Duration::from_secs(600)));
    assert!(client.signing_time() < SystemTime::now() - Duration::from_secs(580));
}

/// The endpoint is the one the SDK's own resolver gives: partitions,
/// FIPS, dual-stack, and a per-service `AWS_ENDPOINT_URL_<ID>` over the
/// general one unless the endpoint was set in code.
#[test]
fn endpoints_are_resolved_as_the_sdk_resolves_them() {
    #[derive(Debug)]
    struct PerService;
    impl aws_types::service_config::LoadServiceConfig for PerService {
        fn load_config(
            &self,
            key: aws_types::service_config::ServiceConfigKey<'_>,
        ) -> Option<String> {
            (key.env() == "AWS_ENDPOINT_URL" && key.service_id() == "SWF")
                .then(|| "http://127.0.0.1:9999".to_string())
        }
    }
    let resolve =
        |protocol: Protocol,
         build: &dyn Fn(aws_types::sdk_config::Builder) -> aws_types::sdk_config::Builder| {
            let sdk = build(
                SdkConfig::builder()
                    .behavior_version(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new("us-east-1")),
            )
            .build();
            protocol.resolve(&sdk)
        };
    let plain = |b| b;
    assert_eq!(
        resolve(Protocol::StepFunctions, &plain).unwrap(),
        "https://states.us-east-1.amazonaws.com"
    );
    assert_eq!(
        resolve(Protocol::Swf, &plain).unwrap(),
        "https://swf.us-east-1.amazonaws.com"
    );
    let fips = |b: aws_types::sdk_config::Builder| b.use_fips(true);
    assert_eq!(
        resolve(Protocol::StepFunctions, &fips).unwrap(),
        "https://states-fips.us-east-1.amazonaws.com"
    );
    let china = |b: aws_types::sdk_config::Builder| b.region(aws_config::Region::new("cn-north-1"));
    assert_eq!(
        resolve(Protocol::StepFunctions, &china).unwrap(),
        "https://states.cn-north-1.amazonaws.com.cn"
    );
    // From the environment: the per-service variable wins for its
    // service only.
    let env = |b: aws_types::sdk_config::Builder| {
        b.service_config(PerService)
            .endpoint_url("http://127.0.0.1:8888")
    };
    let swf = resolve(Protocol::Swf, &env).unwrap();
    let sfn = resolve(Protocol::StepFunctions, &env).unwrap();
    assert_eq!(sfn, "http://127.0.0.1:8888");
    assert_eq!(swf, "http://127.0.0.1:9999");
    let no_region = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    assert!(Protocol::StepFunctions.resolve(&no_region).is_err());
}

#[test]
fn error_codes_are_reduced_to_their_name() {
    assert_eq!(sanitize_error_code("TaskTimedOut"), "TaskTimedOut");
    assert_eq!(
        sanitize_error_code("com.amazonaws.swf.base.model#UnknownResourceFault"),
        "UnknownResourceFault"
    );
    assert_eq!(
        sanitize_error_code("ThrottlingException:http://internal.amazon.com/coral/"),
        "ThrottlingException"
    );
}
