//! A local Step Functions endpoint, embedded in the binary.
//!
//! It exists so that nobody needs an AWS account or a 500 MB Python service
//! to run a handler end to end, so that handler authors can point the AWS CLI
//! or boto3 at it, and so that our tests can inject faults no real service
//! lets us inject. It speaks the real wire protocol (AWS JSON 1.0: `POST /`
//! with `X-Amz-Target: AWSStepFunctions.<Op>`, errors as `__type` + message),
//! so the unchanged AWS SDK client talks to it; any credentials are accepted
//! and requests are not signature-checked.
//!
//! State is in memory only and is lost when the process exits. The server is
//! axum on hyper, bound to 127.0.0.1.
//!
//! Besides the API it serves a live page at `/` (see [`page`]), its data at
//! `/_local/state`, and fault injection at `/_local/faults` (see [`faults`]).
//!
//! The crate's API is [`LocalEndpoint`], its [`EndpointOptions`], and the
//! [`ApiError`] an in-process call returns; everything else is private.

mod error;
mod faults;
mod http;
mod options;
mod page;
mod requests;
mod sfn;
mod support;
mod swf;
#[cfg(test)]
mod tests;

pub use error::ApiError;
pub use options::EndpointOptions;

use serde_json::Value;
use sfn::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use swf::SwfState;
use tokio_util::sync::CancellationToken;

/// A running local endpoint.
pub struct LocalEndpoint {
    shared: Arc<Shared>,
    swf: Arc<SwfState>,
    worker: Arc<page::WorkerView>,
    addr: SocketAddr,
    /// Set when the endpoint shuts down: waiting polls return empty at once.
    stopping: CancellationToken,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEndpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LocalEndpoint {
    /// Binds `addr` (use port 0 for any free port) and starts serving.
    pub async fn start(
        addr: SocketAddr,
        options: EndpointOptions,
    ) -> std::io::Result<LocalEndpoint> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stopping, halt) = (CancellationToken::new(), CancellationToken::new());
        let poll_timeout = options.poll_timeout;
        let shared = Shared::new(options, stopping.clone(), halt.clone());
        let swf = SwfState::new(poll_timeout, stopping.clone(), halt);
        let worker = Arc::new(page::WorkerView::default());
        let app = http::app(shared.clone(), swf.clone(), worker.clone());
        let stop = CancellationToken::new();
        let graceful = stop.clone();
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move { graceful.cancelled().await })
                .await;
            if let Err(e) = result {
                tracing::error!(target: "wasm_activity::endpoint", "local endpoint stopped: {e}");
            }
        });
        tracing::info!(target: "wasm_activity::endpoint", "local Step Functions endpoint on http://{addr} (state in memory only)");
        Ok(LocalEndpoint {
            shared,
            swf,
            worker,
            addr,
            stopping,
            stop,
            server,
        })
    }

    /// Shows a worker running in the same process on the live page: `view`
    /// returns its live view as JSON (the worker's `/tasks`), read at each
    /// refresh of `/_local/state` and shown under `worker`.
    pub fn show_worker(&self, view: impl Fn() -> Value + Send + Sync + 'static) {
        self.worker.set(Arc::new(view));
    }

    /// The endpoint URL for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the execution `arn` is no longer running; returns its
    /// description (as DescribeExecution answers it).
    pub async fn wait_execution(&self, arn: &str) -> Result<Value, ApiError> {
        self.shared.wait_execution(arn).await
    }

    /// Calls an operation in process, as a client would over HTTP.
    pub async fn call(&self, op: &str, request: Value) -> Result<Value, ApiError> {
        self.shared.dispatch(op, &request).await
    }

    /// Answers waiting polls with "no task" now, so workers polling this
    /// endpoint can drain without waiting out their long polls.
    pub fn release_polls(&self) {
        self.stopping.cancel();
    }

    /// Releases polls, stops the server, and waits for every task the
    /// endpoint started (execution drivers, SWF timers) to end.
    pub async fn shutdown(self) {
        self.release_polls();
        self.stop.cancel();
        let _ = self.server.await;
        self.shared.stopped().await;
        self.swf.stopped().await;
    }
}
