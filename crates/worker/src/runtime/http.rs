//! Outbound HTTP for guests (`wasi:http`), allowed only to listed origins.
//!
//! Every request a guest makes goes through [`HttpGate`]: its origin must
//! match the activity's allow-list, or the request fails inside the guest
//! with `HTTP request denied` and the host logs it. Allowed requests go
//! through one shared, pooled `reqwest` client (connections and TLS sessions
//! are reused across tasks), with a per-request timeout and a response size
//! limit.
//!
//! Host names are resolved by the host, and addresses that lead inside
//! (loopback, private, link-local such as the cloud metadata service at
//! 169.254.169.254, unique-local, unspecified) are refused for names, so an
//! allowed name cannot be pointed at the inside by DNS. Such addresses are
//! reachable only when an origin names the IP literal itself.
//!
//! A request's URL is the guest's text and often carries a token, so log
//! lines never show it whole: scheme, host, port and path only (the query,
//! where tokens travel, is reduced to its length), with the activity's
//! secret values redacted and control characters escaped; error messages
//! are logged without their URL, redacted and escaped too.

use super::host_memory::{Outside, outside};
use crate::config::{OriginPattern, default_port};
use crate::redact::{Redactor, escape, truncate_chars};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// True for addresses that lead inside a network rather than to the
/// internet: never reachable through a host name.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 0
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // fe80::/10 link local
        }
    }
}

/// An activity's HTTP grant.
#[derive(Debug, Clone)]
pub(crate) struct HttpPolicy {
    /// Allowed origins.
    pub(crate) allow: Vec<OriginPattern>,
    /// Per-request timeout (connect to end of body).
    pub(crate) timeout: Duration,
    /// Largest response body read, in bytes.
    pub(crate) max_response: u64,
    /// Largest request body sent, in bytes.
    pub(crate) max_request: u64,
    /// The activity's secret values, kept out of log lines.
    pub(crate) redactor: Redactor,
}

/// Longest URL shown in a log line, in characters (after redaction).
const MAX_LOGGED_URL: usize = 512;

/// `uri` as a log line may show it: no user info, the query as its length
/// only, secrets redacted, then cut, then escaped.
fn loggable_uri(uri: &http::Uri, redactor: &Redactor) -> String {
    let scheme = uri.scheme_str().unwrap_or("-");
    let host = uri.host().unwrap_or("-");
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let text = format!("{scheme}://{host}{port}{}", uri.path());
    let text = truncate_chars(&redactor.redact(&text), MAX_LOGGED_URL);
    let query = uri
        .query()
        .map(|q| format!("?({} bytes of query not shown)", q.len()))
        .unwrap_or_default();
    format!("{}{query}", escape(&text))
}

/// Guest-derived text for a log line: redacted, cut, escaped.
/// Longest host a span shows (a DNS name is at most 253 characters).
const MAX_SPAN_HOST: usize = 253;

/// The method as a span shows it: a standard one, else `_OTHER` (as
/// OpenTelemetry's HTTP conventions say), since an extension method is any
/// token the guest chose.
fn span_method(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "_OTHER",
    }
}

fn loggable(text: &str, redactor: &Redactor) -> String {
    escape(&truncate_chars(&redactor.redact(text), MAX_LOGGED_URL * 2)).into_owned()
}

impl HttpPolicy {
    /// Why a request to `uri` is not allowed, or `Ok`.
    pub(crate) fn check(&self, uri: &http::Uri) -> Result<(), String> {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().ok_or("the request has no host")?;
        let port = uri.port_u16().unwrap_or_else(|| default_port(scheme));
        if self.allow.iter().any(|p| p.matches(scheme, host, port)) {
            Ok(())
        } else {
            Err(format!("{scheme}://{host}:{port} is not an allowed origin"))
        }
    }
}

/// DNS resolution that never hands out inside addresses for names.
#[derive(Debug, Clone, Default)]
struct OutsideOnlyResolver;

impl reqwest::dns::Resolve for OutsideOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves only to internal addresses, which names may not reach"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The one client all guests' requests share.
pub(crate) fn shared_client() -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(OutsideOnlyResolver))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        // A proxy would resolve names itself, past the check that keeps
        // names from reaching inside addresses.
        .no_proxy()
        .build()
        .expect("building the HTTP client")
}

/// The `wasi:http` hooks of one task.
pub(crate) struct HttpGate {
    /// The activity's grant; `None` denies everything.
    pub(crate) policy: Option<Arc<HttpPolicy>>,
    /// The shared client.
    pub(crate) client: reqwest::Client,
    /// For log lines.
    pub(crate) activity: Arc<str>,
    /// For log lines.
    pub(crate) task: Arc<str>,
    /// The task's host memory meter. Response chunks are allocated by the
    /// pooled connection's own task, outside any metered poll; they are
    /// charged here so that freeing them is not counted as credit.
    pub(crate) meter: Arc<super::host_memory::HostMeter>,
    /// Requests of this task in flight ([`super::limits::MAX_HTTP_IN_FLIGHT`]).
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    /// Warnings logged for this task so far; past [`MAX_WARNINGS`] they are
    /// counted, not logged, so a guest cannot flood the host log with them.
    pub(crate) warnings: Arc<std::sync::atomic::AtomicU32>,
}

/// HTTP warnings logged per task.
const MAX_WARNINGS: u32 = 5;

/// Whether to log one more warning for a task (the last one says the rest
/// are suppressed).
fn may_warn(warnings: &std::sync::atomic::AtomicU32, activity: &str, task: &str) -> bool {
    let n = warnings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if n == MAX_WARNINGS {
        tracing::warn!(%activity, %task, "further guest HTTP warnings for this task are not logged");
    }
    n < MAX_WARNINGS
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let policy = self.policy.clone();
        let client = self.client.clone();
        let meter = self.meter.clone();
        let in_flight = self.in_flight.clone();
        let warnings = self.warnings.clone();
        let (activity, task) = (self.activity.clone(), self.task.clone());
        // A child of the guest's span, made here (the request's future runs
        // on a task of its own). Method and host only: no path or query.
        // Both are the guest's text: the method only if it is a standard
        // one, the host only once the grant allowed it, redacted and cut.
        let span = tracing::info_span!(
            target: "wasm_activity_otel",
            "guest http request",
            otel.kind = "client",
            http.request.method = span_method(request.method()),
            server.address = tracing::field::Empty,
            outcome = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        );
        let request_span = span.clone();
        let request = async move {
            let uri = request.uri().clone();
            let warn = || may_warn(&warnings, &activity, &task);
            let Some(policy) = policy else {
                // No grant, no secrets to redact with: the URL is not shown.
                request_span.record("outcome", "denied");
                if warn() {
                    tracing::warn!(%activity, %task, "guest HTTP request denied: the activity has no http grant");
                }
                return Err(HttpError::HttpRequestDenied);
            };
            let shown = loggable_uri(&uri, &policy.redactor);
            if let Err(why) = policy.check(&uri) {
                request_span.record("outcome", "denied");
                if warn() {
                    let why = loggable(&why, &policy.redactor);
                    tracing::warn!(%activity, %task, uri = %shown, "guest HTTP request denied: {why}");
                }
                return Err(HttpError::HttpRequestDenied);
            }
            let host = policy.redactor.redact(uri.host().unwrap_or(""));
            request_span.record(
                "server.address",
                escape(&truncate_chars(&host, MAX_SPAN_HOST)).as_ref(),
            );
            let _permit = in_flight
                .acquire_owned()
                .await
                .map_err(|_| HttpError::InternalError(None))?;
            let (mut parts, body) = request.into_parts();
            // The host's trace context replaces whatever the guest set: a
            // guest cannot graft its requests onto another trace. With
            // traces off, the guest's headers pass as they are.
            if let Some(traceparent) = crate::telemetry::traceparent(&request_span)
                && let Ok(value) = http::HeaderValue::from_str(&traceparent)
            {
                parts.headers.remove("tracestate");
                parts.headers.insert("traceparent", value);
            }
            let body = http_body_util::Limited::new(body, policy.max_request as usize)
                .collect()
                .await
                .map_err(|_| HttpError::HttpRequestBodySize(None))?
                .to_bytes();
            let sent = body.len();
            let response = client
                .request(parts.method, uri.to_string())
                .headers(parts.headers)
                .body(body)
                .timeout(policy.timeout)
                .send()
                .await
                .map_err(|e| {
                    let kind = if e.is_timeout() {
                        HttpError::ConnectionTimeout
                    } else if e.is_connect() {
                        HttpError::ConnectionRefused
                    } else {
                        HttpError::DestinationUnavailable
                    };
                    if warn() {
                        let why = loggable(&e.without_url().to_string(), &policy.redactor);
                        tracing::warn!(%activity, %task, uri = %shown, "guest HTTP request failed: {why}");
                    }
                    kind
                })?;
            // The body went to the connection, which frees it outside this
            // task's polls.
            meter.release(sent);
            let status = response.status();
            request_span.record("http.response.status_code", status.as_u16());
            let headers = response.headers().clone();
            // Sized once from the announced length (within the limit): a
            // doubling Vec would hold up to twice the body in host memory.
            let expected = response
                .content_length()
                .unwrap_or(0)
                .min(policy.max_response);
            let mut body = Vec::with_capacity(expected as usize);
            let mut stream = response;
            // Chunks share the connection's read buffer, allocated and
            // reused by the connection's own task: they are received and
            // dropped outside the meter, and only the copy kept is charged.
            while let Some(chunk) = Outside(Box::pin(stream.chunk()))
                .await
                .map_err(|_| HttpError::ConnectionTerminated)?
            {
                if (body.len() + chunk.len()) as u64 > policy.max_response {
                    if warn() {
                        tracing::warn!(%activity, %task, uri = %shown, limit = policy.max_response, "guest HTTP response too large");
                    }
                    outside(|| drop(chunk));
                    return Err(HttpError::HttpResponseBodySize(Some(policy.max_response)));
                }
                let before = body.capacity();
                outside(|| {
                    body.extend_from_slice(&chunk);
                    drop(chunk);
                });
                meter.charge(body.capacity() - before);
                // The guest may be parked meanwhile: stop here, and tell the
                // task (its run watches the meter) that the budget is spent.
                if meter.check() {
                    return Err(HttpError::HttpResponseBodySize(Some(policy.max_response)));
                }
            }
            tracing::debug!(%activity, %task, uri = %shown, %status, bytes = body.len(), "guest HTTP request");
            let mut builder = http::Response::builder().status(status);
            if let Some(h) = builder.headers_mut() {
                *h = headers;
            }
            let body: WasiBody = Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync();
            let response = builder
                .body(body)
                .map_err(|_| HttpError::HttpProtocolError)?;
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        };
        Box::new(tracing::Instrument::instrument(request, span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> HttpPolicy {
        HttpPolicy {
            allow: origins
                .iter()
                .map(|o| OriginPattern::parse(o).unwrap())
                .collect(),
            timeout: Duration::from_secs(1),
            max_response: 1024,
            max_request: 1024,
            redactor: Redactor::default(),
        }
    }

    #[test]
    fn logged_urls_hide_queries_user_info_and_secrets() {
        let red = Redactor::new(["s3cr3t/k3y", "tok"]);
        let uri: http::Uri =
            "https://user:pw@api.example.com:8443/v1/s3cr3t%2Fk3y/x?key=s3cr3t%2Fk3y&a=tok"
                .parse()
                .unwrap();
        let shown = loggable_uri(&uri, &red);
        assert_eq!(
            shown,
            "https://api.example.com:8443/v1/[redacted]/x?(22 bytes of query not shown)"
        );
        assert!(!shown.contains("pw") && !shown.contains("tok"));
        // The host is the guest's too.
        let uri: http::Uri = "http://tok.evil.com/".parse().unwrap();
        assert_eq!(loggable_uri(&uri, &red), "http://[redacted].evil.com/");
        // Errors and reasons: redacted and escaped.
        assert_eq!(
            loggable("bad tok\r\nINFO forged", &red),
            "bad [redacted]\\r\\nINFO forged"
        );
    }

    fn allowed(p: &HttpPolicy, url: &str) -> bool {
        p.check(&url.parse().unwrap()).is_ok()
    }

    #[test]
    fn exact_origins_match_scheme_host_and_port() {
        let p = policy(&["https://api.example.com", "http://127.0.0.1:8080"]);
        assert!(allowed(&p, "https://api.example.com/v1/orders?x=1"));
        assert!(allowed(&p, "https://API.example.com:443/"));
        assert!(!allowed(&p, "http://api.example.com/"), "scheme differs");
        assert!(
            !allowed(&p, "https://api.example.com:8443/"),
            "port differs"
        );
        assert!(!allowed(&p, "https://evil.com/?https://api.example.com"));
        assert!(!allowed(&p, "https://api.example.com.evil.com/"));
        assert!(allowed(&p, "http://127.0.0.1:8080/x"));
        assert!(!allowed(&p, "http://127.0.0.1:8081/x"));
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        let p = policy(&["https://*.example.com"]);
        assert!(allowed(&p, "https://a.example.com/"));
        assert!(allowed(&p, "https://a.b.example.com/"));
        assert!(
            !allowed(&p, "https://example.com/"),
            "the apex is not a subdomain"
        );
        assert!(!allowed(&p, "https://badexample.com/"));
        assert!(!allowed(&p, "https://example.com.attacker.net/"));
    }

    #[test]
    fn ip_literals_match_only_listed_ips_never_names_or_wildcards() {
        let p = policy(&["https://*.example.com", "https://api.example.com"]);
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "https://169.254.169.254/",
            "https://10.0.0.1/",
            "https://192.168.1.1/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://127.0.0.1/",
        ] {
            assert!(!allowed(&p, url), "{url}");
        }
        let p = policy(&["http://[::1]:9000"]);
        assert!(allowed(&p, "http://[::1]:9000/"));
    }

    #[test]
    fn internal_addresses_are_recognised_for_the_resolver() {
        for ip in [
            "169.254.169.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "127.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd12::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "100.128.0.1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
