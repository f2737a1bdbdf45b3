//! The hot operations (polls, heartbeats, reports) over the AWS JSON 1.0
//! protocol, without the SDK's orchestrator.
//!
//! Why: every task costs two service calls and every heartbeat one, and
//! through the SDK each call spent about 75-125 µs of CPU before a byte was
//! sent, most of it assembling the orchestrator's runtime components per
//! request (smithy-lang/smithy-rs#4127); that, not the sandbox, was most of
//! the host's CPU per task (BENCHMARKS.md, *The SDK call floor*). These
//! operations are fixed JSON envelopes, so what the orchestrator adds to them
//! is overhead.
//!
//! What is easy to get wrong stays the SDK's: the credentials come from the
//! same provider chain and cache as every SDK client of the worker
//! ([`super::credentials`]), the endpoint from the service's own generated
//! resolver (partitions, FIPS, dual-stack, `AWS_ENDPOINT_URL` and its
//! per-service forms), the signature from `aws-sigv4`, the SDK's signer.
//! What is here is the envelope (`X-Amz-Target`, the JSON body, the error
//! shape), one pooled HTTP/1.1 client, the SDK's timeouts and its clock-skew
//! rule (the service's `Date` header, measured at the request's midpoint),
//! and sorting answers through the same table as the SDK path
//! ([`super::answers`]). `aws_client = "sdk"` in the config puts these
//! operations back on the SDK; a differential test checks both send
//! equivalent, verifiable requests.

use super::answers::{Operation, Verdict};
use super::{ServiceError, credentials};
use crate::redact::{escape, truncate_chars};
use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, DATE, HOST, HeaderValue, USER_AGENT};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// Largest answer read: a Step Functions task input is at most 256 KiB,
/// which JSON escaping can grow up to six times, plus the token.
const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;
/// Skew below this is the `Date` header's one-second grain and network
/// time, not a wrong clock (the SDK's threshold).
const SKEW_THRESHOLD_MS: i64 = 4 * 60 * 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CONTENT_TYPE_JSON_1_0: &str = "application/x-amz-json-1.0";

/// A service spoken to in AWS JSON 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    StepFunctions,
    Swf,
}

impl Protocol {
    /// The `X-Amz-Target` prefix.
    fn target(self) -> &'static str {
        match self {
            Protocol::StepFunctions => "AWSStepFunctions",
            Protocol::Swf => "SimpleWorkflowService",
        }
    }

    /// The SigV4 signing name.
    fn signing_name(self) -> &'static str {
        match self {
            Protocol::StepFunctions => "states",
            Protocol::Swf => "swf",
        }
    }

    /// The SDK's service id, which names `AWS_ENDPOINT_URL_<ID>` and the
    /// profile's `[services]` section.
    fn service_id(self) -> &'static str {
        match self {
            Protocol::StepFunctions => "SFN",
            Protocol::Swf => "SWF",
        }
    }

    /// The endpoint the SDK client of this service would use.
    fn resolve(self, sdk: &SdkConfig) -> Result<String, String> {
        use futures_util::FutureExt;
        let region = sdk.region().map(|r| r.to_string());
        let endpoint_url = endpoint_url(self.service_id(), sdk);
        let (fips, dual_stack) = (sdk.use_fips(), sdk.use_dual_stack());
        let resolved = match self {
            Protocol::StepFunctions => {
                use aws_sdk_sfn::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
                let params = Params::builder()
                    .set_region(region)
                    .set_use_fips(fips)
                    .set_use_dual_stack(dual_stack)
                    .set_endpoint(endpoint_url)
                    .build()
                    .map_err(|e| e.to_string())?;
                DefaultResolver::new()
                    .resolve_endpoint(&params)
                    .now_or_never()
            }
            Protocol::Swf => {
                use aws_sdk_swf::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
                let params = Params::builder()
                    .set_region(region)
                    .set_use_fips(fips)
                    .set_use_dual_stack(dual_stack)
                    .set_endpoint(endpoint_url)
                    .build()
                    .map_err(|e| e.to_string())?;
                DefaultResolver::new()
                    .resolve_endpoint(&params)
                    .now_or_never()
            }
        };
        match resolved {
            Some(Ok(endpoint)) => Ok(endpoint.url().to_string()),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the endpoint resolver did not answer at once".into()),
        }
    }
}

/// `AWS_ENDPOINT_URL_<SERVICE>` (or the profile's per-service setting) when
/// the endpoint was not set in code, as the SDK's config conversion does.
fn endpoint_url(service_id: &str, sdk: &SdkConfig) -> Option<String> {
    if sdk.get_origin("endpoint_url").is_client_config() {
        return sdk.endpoint_url().map(str::to_string);
    }
    let key = aws_types::service_config::ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|conf| conf.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_string))
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The process's pooled HTTP/1.1 client, over plain TCP or TLS as the
/// endpoint asks: one pool, and the system's certificates read once.
fn http_client() -> HttpClient {
    static CLIENT: std::sync::OnceLock<HttpClient> = std::sync::OnceLock::new();
    CLIENT.get_or_init(new_http_client).clone()
}

fn new_http_client() -> HttpClient {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // The system's roots (SSL_CERT_FILE overrides them), as the SDK's own
    // client uses; a system without any gets Mozilla's.
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
        .or_else(|_| {
            hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_webpki_roots(provider)
        })
        .expect("aws-lc-rs supports rustls's default protocol versions");
    let connector = tls.https_or_http().enable_http1().wrap_connector(tcp);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// One service's hot operations, shared by every activity polling it.
#[derive(Debug)]
pub(crate) struct AwsJson {
    protocol: Protocol,
    http: HttpClient,
    /// The endpoint's URL, or why there is none (reported by every call,
    /// as the SDK would).
    endpoint: Result<http::Uri, String>,
    region: Option<aws_types::region::Region>,
    credentials: Option<SharedCredentialsProvider>,
    skew_correction: bool,
    /// The service's clock minus ours, in milliseconds, as last measured.
    skew_ms: AtomicI64,
    user_agent: HeaderValue,
}

impl AwsJson {
    /// The client for `protocol` with `sdk`'s region, endpoint and
    /// credentials.
    pub(crate) fn new(protocol: Protocol, sdk: &SdkConfig) -> AwsJson {
        let endpoint = protocol.resolve(sdk).and_then(|url| {
            url.parse::<http::Uri>()
                .map_err(|e| format!("endpoint {url:?} is not a URL: {e}"))
        });
        AwsJson {
            protocol,
            http: http_client(),
            endpoint,
            region: sdk.region().cloned(),
            credentials: sdk.credentials_provider(),
            skew_correction: !sdk.disable_clock_skew_correction().unwrap_or(false),
            skew_ms: AtomicI64::new(0),
            user_agent: HeaderValue::from_static(concat!(
                "wasm-activity/",
                env!("CARGO_PKG_VERSION")
            )),
        }
    }

    /// Calls `action` with `input`; the answer, parsed, or the error sorted
    /// for `operation`.
    pub(crate) async fn call<I: Serialize, O: DeserializeOwned>(
        &self,
        operation: Operation,
        action: &str,
        input: &I,
        read_timeout: Duration,
    ) -> Result<O, ServiceError> {
        let body = self.answer(operation, action, input, read_timeout).await?;
        // An empty answer is an empty object, as the SDK reads it.
        let body: &[u8] = if body.trim_ascii().is_empty() {
            b"{}"
        } else {
            &body
        };
        serde_json::from_slice(body).map_err(|e| {
            ServiceError::new(
                Verdict::NoAnswer,
                "ResponseError",
                format!("the service's answer is not the expected JSON: {e}"),
            )
        })
    }

    /// Calls `action`, whose answer has no content. The answer must still
    /// be a JSON object, as AWS JSON always sends: a success status over
    /// some other body (a proxy's page) proves nothing, so a report is sent
    /// again rather than taken as delivered. (The SDK is stricter for some
    /// operations than for others here; this is its stricter reading.)
    pub(crate) async fn send<I: Serialize>(
        &self,
        operation: Operation,
        action: &str,
        input: &I,
        read_timeout: Duration,
    ) -> Result<(), ServiceError> {
        /// Any JSON object.
        #[derive(serde::Deserialize)]
        struct Object {}
        let Object {} = self.call(operation, action, input, read_timeout).await?;
        Ok(())
    }

    /// The body of a success answer to `action`, or the error sorted for
    /// `operation`. The whole attempt (connect, send, answer) has
    /// `read_timeout` plus the connect timeout, as the SDK clients do.
    async fn answer<I: Serialize>(
        &self,
        operation: Operation,
        action: &str,
        input: &I,
        read_timeout: Duration,
    ) -> Result<Bytes, ServiceError> {
        let body = serde_json::to_vec(input).map_err(|e| {
            ServiceError::new(Verdict::Misconfigured, "InvalidRequest", e.to_string())
        })?;
        let request = self.signed(action, body).await?;
        let sent = SystemTime::now();
        let sent_at = std::time::Instant::now();
        let limit = read_timeout + CONNECT_TIMEOUT;
        let answer = tokio::time::timeout(limit, self.exchange(operation, request))
            .await
            .map_err(|_| {
                ServiceError::new(
                    Verdict::NoAnswer,
                    "Timeout",
                    format!("no answer within {}s", limit.as_secs()),
                )
            })??;
        self.measure_skew(sent, &answer);
        if !answer.status.is_success() {
            return Err(self.refusal(operation, &answer));
        }
        credentials::accepted(operation, sent_at);
        Ok(answer.body)
    }

    /// The request for `action`, signed with SigV4 by the SDK's signer.
    async fn signed(
        &self,
        action: &str,
        body: Vec<u8>,
    ) -> Result<http::Request<Full<Bytes>>, ServiceError> {
        let misconfigured =
            |e: String| ServiceError::new(Verdict::Misconfigured, "InvalidRequest", e);
        let uri = self.endpoint.clone().map_err(|e| {
            misconfigured(format!(
                "cannot resolve the {} endpoint: {e}",
                self.protocol.service_id()
            ))
        })?;
        let region = self
            .region
            .as_ref()
            .ok_or_else(|| misconfigured("no AWS region configured".into()))?;
        let provider = self.credentials.as_ref().ok_or_else(|| {
            ServiceError::new(
                Verdict::Credentials,
                "NoCredentials",
                "no credentials provider",
            )
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            ServiceError::new(
                Verdict::Credentials,
                "NoCredentials",
                super::error_causes(&e),
            )
        })?;
        let authority = uri
            .authority()
            .ok_or_else(|| misconfigured(format!("endpoint {uri} has no host")))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| misconfigured(format!("endpoint host {authority}: {e}")))?;
        let target = HeaderValue::from_str(&format!("{}.{action}", self.protocol.target()))
            .map_err(|e| misconfigured(e.to_string()))?;
        let mut request = http::Request::post(&uri)
            .header(HOST, host)
            .header(CONTENT_TYPE, CONTENT_TYPE_JSON_1_0)
            .header(CONTENT_LENGTH, body.len())
            .header("x-amz-target", target)
            .body(())
            .map_err(|e| misconfigured(e.to_string()))?;
        let identity = Identity::from(credentials);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region.as_ref())
            .name(self.protocol.signing_name())
            .time(self.signing_time())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| misconfigured(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            uri.to_string(),
            request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or_default())),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| misconfigured(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| misconfigured(format!("cannot sign the request: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        // Added after signing, as the SDK does: proxies rewrite it.
        request
            .headers_mut()
            .insert(USER_AGENT, self.user_agent.clone());
        Ok(request.map(|()| Full::new(Bytes::from(body))))
    }

    /// Now, by the service's clock when ours is known to be off.
    fn signing_time(&self) -> SystemTime {
        let skew = self.skew_ms.load(Ordering::Relaxed);
        let now = SystemTime::now();
        let shift = Duration::from_millis(skew.unsigned_abs());
        if skew >= 0 {
            now + shift
        } else {
            now.checked_sub(shift).unwrap_or(now)
        }
    }

    /// Records the skew between the service's `Date` and the midpoint of the
    /// exchange; small differences count as none.
    fn measure_skew(&self, sent: SystemTime, answer: &Answer) {
        let Some(server) = answer.date.filter(|_| self.skew_correction) else {
            return;
        };
        let received = SystemTime::now();
        let midpoint = sent + received.duration_since(sent).unwrap_or_default() / 2;
        let skew = match server.duration_since(midpoint) {
            Ok(ahead) => ahead.as_millis() as i64,
            Err(behind) => -(behind.duration().as_millis() as i64),
        };
        let skew = if skew.abs() > SKEW_THRESHOLD_MS {
            skew
        } else {
            0
        };
        let before = self.skew_ms.swap(skew, Ordering::Relaxed);
        if skew != 0 && before == 0 {
            tracing::warn!(
                skew_seconds = skew / 1000,
                "this machine's clock differs from the service's; requests are signed with the \
                 service's time (fix the clock: NTP, chrony)"
            );
        }
    }

    /// Sends `request`; the status, the `Date` and the (bounded) body.
    async fn exchange(
        &self,
        operation: Operation,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Answer, ServiceError> {
        let response = self.http.request(request).await.map_err(|e| {
            if e.is_connect() {
                ServiceError::new(Verdict::NotSent, "ConnectError", super::error_causes(&e))
            } else {
                ServiceError::new(Verdict::NoAnswer, "NetworkError", super::error_causes(&e))
            }
        })?;
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let date = header(DATE.as_str())
            // A cached answer's date says nothing about the clocks.
            .filter(|_| response.headers().get("age").is_none())
            .and_then(|d| {
                aws_smithy_types::DateTime::from_str(
                    &d,
                    aws_smithy_types::date_time::Format::HttpDate,
                )
                .ok()
            })
            .and_then(|d| SystemTime::try_from(d).ok());
        let error_type = header("x-amzn-errortype");
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| {
                // As for the SDK's unreadable answers: an error status
                // still says what it says; a success whose body is lost
                // proves nothing.
                let status = Some(status.as_u16()).filter(|s| *s >= 400);
                let verdict = match status {
                    Some(_) => super::answers::classify(operation, None, status),
                    None => Verdict::NoAnswer,
                };
                let message = format!(
                    "the answer could not be read (over {MAX_ANSWER_BYTES} bytes, or the \
                     connection broke): {}",
                    super::error_causes(&*e)
                );
                ServiceError::new(verdict, "ResponseError", message)
            })?
            .to_bytes();
        Ok(Answer {
            status,
            date,
            error_type,
            body,
        })
    }

    /// An error answer, sorted for `operation`.
    fn refusal(&self, operation: Operation, answer: &Answer) -> ServiceError {
        #[derive(serde::Deserialize, Default)]
        struct ErrorBody {
            #[serde(rename = "__type", alias = "code")]
            kind: Option<String>,
            #[serde(alias = "Message", alias = "errorMessage")]
            message: Option<String>,
        }
        let parsed: ErrorBody = serde_json::from_slice(&answer.body).unwrap_or_default();
        let code = answer
            .error_type
            .as_deref()
            .or(parsed.kind.as_deref())
            .map(sanitize_error_code)
            .filter(|c| !c.is_empty());
        let status = answer.status.as_u16();
        let verdict = super::answers::classify(operation, code.as_deref(), Some(status));
        if verdict == Verdict::Credentials {
            credentials::refused(operation, code.as_deref().unwrap_or("unknown"));
        }
        let message = parsed
            .message
            .unwrap_or_else(|| "(no message from the service)".into());
        ServiceError::new(
            verdict,
            code.unwrap_or_else(|| format!("HTTP {status}")),
            truncate_chars(&escape(&message), 600),
        )
    }
}

/// What came back.
struct Answer {
    status: http::StatusCode,
    date: Option<SystemTime>,
    error_type: Option<String>,
    body: Bytes,
}

/// An error code as AWS JSON 1.0 sends it (`aws.protocoltests#Code`,
/// `Code:http://internal.amazon.com/...`), reduced to `Code`.
fn sanitize_error_code(raw: &str) -> String {
    let raw = raw.split(':').next().unwrap_or(raw);
    let raw = raw.rsplit('#').next().unwrap_or(raw);
    raw.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::sfn::{SfnClients, StepFunctions};
    use crate::service::swf::{Swf, SwfClients};
    use crate::service::{ActivityService, AwsClient, TaskToken};
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
                lower.contains(
                    "signedheaders=content-length;content-type;host;x-amz-date;x-amz-target"
                ),
                "{request}"
            );
        }
        assert!(seen[0].ends_with(
            r#"{"activityArn":"arn:aws:states:us-east-1:1:activity:a","workerName":"w"}"#
        ));
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
        let resolve = |protocol: Protocol,
                       build: &dyn Fn(
            aws_types::sdk_config::Builder,
        ) -> aws_types::sdk_config::Builder| {
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
        let china =
            |b: aws_types::sdk_config::Builder| b.region(aws_config::Region::new("cn-north-1"));
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
}
