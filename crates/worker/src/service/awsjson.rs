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
        // The two SDKs' resolvers are distinct types with the same shape.
        macro_rules! resolve_with {
            ($sdk:ident) => {{
                use $sdk::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
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
            }};
        }
        let resolved = match self {
            Protocol::StepFunctions => resolve_with!(aws_sdk_sfn),
            Protocol::Swf => resolve_with!(aws_sdk_swf),
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
mod tests;
