//! Shared pieces of the end-to-end tests: guest components built from source
//! by the test run, the real `wasm-activity` binary as a child process, and
//! a Step Functions client for the service under test (LocalStack, started
//! by `scripts/test.sh`).

#![allow(dead_code)]

use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

// The guest builders, in a file of their own; still `support::guests()` and
// `support::polyglot()`.
#[path = "support/build.rs"]
pub mod build;
pub use build::{guests, polyglot};

pub const REGION: &str = "us-east-1";
pub const ROLE: &str = "arn:aws:iam::000000000000:role/wasm-activity-test";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The binary under test: cargo's, or `WASM_ACTIVITY_TEST_BIN` (a copy
/// taken right after the build, when several checkouts share one target
/// directory and another build may replace cargo's while tests run).
pub fn binary() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("WASM_ACTIVITY_TEST_BIN") {
            return bin;
        }
        // This test binary is target/<profile>/deps/NAME-HASH; the host
        // binary is built into target/<profile>/.
        let exe = std::env::current_exe().expect("the test binary's path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|dir| dir.join("wasm-activity"))
            .expect("a target directory");
        assert!(
            bin.is_file(),
            "{} not found: build it first with `cargo build -p wasm-activity` (scripts/test.sh \
             does), or point WASM_ACTIVITY_TEST_BIN at it",
            bin.display()
        );
        bin.display().to_string()
    })
}

/// Where test workers cache precompiled components, shared across tests.
pub fn cache_dir() -> PathBuf {
    repo_root().join("target/test-artifact-cache")
}

/// A unique name for activities, state machines, temp files.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs the binary to completion.
pub fn run_cli(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running wasm-activity")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what`
/// after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// LocalStack's endpoint (started by scripts/test.sh).
pub fn localstack_url() -> String {
    std::env::var("WASM_ACTIVITY_TEST_LOCALSTACK")
        .unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

/// The Python with boto3 that scripts/test.sh installs (LocalStack's venv).
pub fn python_with_boto3() -> std::path::PathBuf {
    let python = std::env::var("WASM_ACTIVITY_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            let cache = std::env::var("WASM_ACTIVITY_CACHE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| dirs_home().join(".cache/wasm-activity-dev"));
            cache.join("localstack-venv/bin/python")
        });
    assert!(
        python.exists(),
        "{} not found: run the tests with scripts/test.sh, which installs boto3 (or set WASM_ACTIVITY_TEST_PYTHON)",
        python.display()
    );
    python
}

fn dirs_home() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
}

/// Which Step Functions implementation a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// LocalStack, independent of this project.
    LocalStack,
    /// This project's own endpoint (`wasm-activity serve-local`).
    Embedded,
}

/// A Step Functions implementation for one test; an embedded endpoint is a
/// `serve-local` process of its own (so fault rules never leak between
/// tests), killed on drop.
pub struct Service {
    pub backend: Backend,
    pub url: String,
    process: Option<(Child, std::io::BufReader<std::process::ChildStdout>)>,
}

impl Service {
    pub fn start(backend: Backend) -> Service {
        match backend {
            Backend::LocalStack => Service {
                backend,
                url: localstack_url(),
                process: None,
            },
            Backend::Embedded => Service::embedded("5s"),
        }
    }

    /// An embedded endpoint whose long polls are held `poll_timeout`.
    pub fn embedded(poll_timeout: &str) -> Service {
        use std::io::BufRead;
        let mut child = Command::new(binary())
            .args(["serve-local", "--port", "0", "--poll-timeout", poll_timeout])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting wasm-activity serve-local");
        // Kept open: the endpoint prints more lines.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from serve-local: {line:?}"))
            .to_string();
        Service {
            backend: Backend::Embedded,
            url,
            process: Some((child, out)),
        }
    }

    /// The same backend reached through `url` (a proxy in front of it).
    pub fn through(&self, url: &str) -> Service {
        Service {
            backend: self.backend,
            url: url.to_string(),
            process: None,
        }
    }

    /// Adds a fault rule (embedded endpoint only).
    pub async fn add_fault(&self, rule: serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/_local/faults", self.url))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "adding fault {rule} failed: {}",
            r.status()
        );
    }

    /// Removes all fault rules.
    pub async fn clear_faults(&self) {
        reqwest::Client::new()
            .delete(format!("{}/_local/faults", self.url))
            .send()
            .await
            .unwrap();
    }

    /// The fault rules with how often each fired.
    pub async fn faults(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_local/faults", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The live page's data.
    pub async fn state(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_local/state", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `wasm-activity run` process; killed on drop.
pub struct Worker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Worker {
    /// Writes `config` (TOML; the endpoint is added) and starts the worker.
    pub fn start(config: &str, service: &Service) -> Worker {
        Worker::start_with_cache(config, service, &cache_dir())
    }

    /// [`Worker::start`] with its own cache (precompiled components and the
    /// component store) in `cache`.
    pub fn start_with_cache(config: &str, service: &Service, cache: &Path) -> Worker {
        Worker::start_with_env(config, service, cache, &[])
    }

    /// [`Worker::start_with_cache`] with extra environment variables.
    pub fn start_with_env(
        config: &str,
        service: &Service,
        cache: &Path,
        env: &[(&str, &str)],
    ) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.toml");
        let config = format!(
            "endpoint = \"{}\"\nregion = \"{REGION}\"\ncache_dir = \"{}\"\n{config}",
            service.url,
            cache.display()
        );
        std::fs::write(&path, config).unwrap();
        let log = dir.path().join("worker.log");
        let child = Command::new(binary())
            .args(["run", "--config"])
            .arg(&path)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info,wasm_activity=debug")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting wasm-activity run");
        let mut worker = Worker {
            child: Some(child),
            dir,
            log,
        };
        worker.wait_for_log("worker running", Duration::from_secs(60));
        worker
    }

    /// The worker's metrics URL (`http://ADDR/metrics`), from its log.
    pub fn metrics_url(&self) -> String {
        let log = self.log();
        log.lines()
            .find_map(|l| l.split("metrics on ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
            .to_string()
    }

    /// Replaces the worker's config file (same header: endpoint, region,
    /// cache) with `body`, as a deploy tool would: write, then rename.
    pub fn rewrite_config(&self, service: &Service, body: &str) {
        let path = self.dir.path().join("worker.toml");
        let tmp = self.dir.path().join("worker.toml.tmp");
        let text = format!(
            "endpoint = \"{}\"\nregion = \"{REGION}\"\ncache_dir = \"{}\"\n{body}",
            service.url,
            cache_dir().display()
        );
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// How many times the log contains `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the worker's log contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return;
            }
            if let Some(status) = self.try_wait() {
                panic!("worker exited ({status}) before logging {needle:?}; its log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "worker did not log {needle:?} within {timeout:?}; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM without waiting.
    pub fn send_term(&self) {
        let pid = self.child.as_ref().expect("worker already stopped").id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("worker already stopped").id()
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("worker already stopped");
        wait_until(timeout, "the worker to exit", || child.try_wait().unwrap())
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("worker already stopped");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        wait_until(timeout, "the worker to exit after SIGTERM", || {
            child.try_wait().unwrap()
        })
    }

    /// The worker's exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- worker log ----\n{}", self.log());
        }
    }
}

/// A Step Functions client for driving the service under test.
pub struct Sfn {
    pub client: Client,
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: ExecutionStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Finished {
    pub fn output_json(&self) -> serde_json::Value {
        let out = self
            .output
            .as_deref()
            .unwrap_or_else(|| panic!("no output: {self:?}"));
        serde_json::from_str(out).unwrap()
    }
}

impl Sfn {
    /// Connects and checks the service answers, failing loudly if it does not.
    pub async fn connect(service: &Service) -> Sfn {
        let conf = aws_sdk_sfn::config::Builder::new()
            .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
            .region(aws_sdk_sfn::config::Region::new(REGION))
            .endpoint_url(&service.url)
            .credentials_provider(aws_sdk_sfn::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        let client = Client::from_conf(conf);
        if let Err(e) = client.list_activities().max_results(1).send().await {
            panic!(
                "the {:?} Step Functions endpoint {} does not answer ({}); run the tests with \
                 scripts/test.sh, which starts LocalStack",
                service.backend,
                service.url,
                aws_sdk_sfn::error::DisplayErrorContext(e)
            );
        }
        Sfn { client }
    }

    pub async fn create_activity(&self, prefix: &str) -> String {
        let out = self
            .client
            .create_activity()
            .name(unique(prefix))
            .send()
            .await
            .unwrap();
        out.activity_arn().to_string()
    }

    /// A one-state machine whose Task state runs `activity`.
    pub async fn create_state_machine(
        &self,
        activity: &str,
        timeout_s: u32,
        heartbeat_s: Option<u32>,
    ) -> String {
        let mut task = serde_json::json!({
            "Type": "Task",
            "Resource": activity,
            "TimeoutSeconds": timeout_s,
            "End": true
        });
        if let Some(h) = heartbeat_s {
            task["HeartbeatSeconds"] = h.into();
        }
        self.create_state_machine_from(
            &serde_json::json!({ "StartAt": "Work", "States": { "Work": task } }),
        )
        .await
    }

    /// A state machine from a full definition.
    pub async fn create_state_machine_from(&self, definition: &serde_json::Value) -> String {
        let out = self
            .client
            .create_state_machine()
            .name(unique("sm"))
            .role_arn(ROLE)
            .definition(definition.to_string())
            .send()
            .await
            .unwrap();
        out.state_machine_arn().to_string()
    }

    /// The execution's history events, in order.
    pub async fn history(&self, execution: &str) -> Vec<aws_sdk_sfn::types::HistoryEvent> {
        self.client
            .get_execution_history()
            .execution_arn(execution)
            .send()
            .await
            .unwrap()
            .events()
            .to_vec()
    }

    /// The history's event types, in order.
    pub async fn event_types(&self, execution: &str) -> Vec<String> {
        self.history(execution)
            .await
            .iter()
            .map(|e| e.r#type().as_str().to_string())
            .collect()
    }

    pub async fn start(&self, state_machine: &str, input: &serde_json::Value) -> String {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine)
            .name(unique("ex"))
            .input(input.to_string())
            .send()
            .await
            .unwrap();
        out.execution_arn().to_string()
    }

    /// Waits until the execution is no longer running.
    pub async fn wait(&self, execution: &str, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self
                .client
                .describe_execution()
                .execution_arn(execution)
                .send()
                .await
                .unwrap();
            if *d.status() != ExecutionStatus::Running {
                let mut finished = Finished {
                    status: d.status().clone(),
                    output: d.output().map(str::to_string),
                    error: d.error().map(str::to_string),
                    cause: d.cause().map(str::to_string),
                };
                if finished.error.is_none() && finished.status != ExecutionStatus::Succeeded {
                    let (error, cause) = self.failure_from_history(execution).await;
                    finished.error = error;
                    finished.cause = cause;
                }
                return finished;
            }
            assert!(
                Instant::now() < deadline,
                "execution {execution} still running after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn failure_from_history(&self, execution: &str) -> (Option<String>, Option<String>) {
        let h = self
            .client
            .get_execution_history()
            .execution_arn(execution)
            .reverse_order(true)
            .send()
            .await
            .unwrap();
        for e in h.events() {
            if let Some(d) = e.execution_failed_event_details() {
                return (d.error().map(str::to_string), d.cause().map(str::to_string));
            }
            if let Some(d) = e.activity_failed_event_details() {
                return (d.error().map(str::to_string), d.cause().map(str::to_string));
            }
            if let Some(d) = e.activity_timed_out_event_details() {
                return (d.error().map(str::to_string), d.cause().map(str::to_string));
            }
        }
        (None, None)
    }

    /// The ActivitySucceeded/ActivityFailed events of an execution: what
    /// workers reported.
    pub async fn activity_results(
        &self,
        execution: &str,
    ) -> Vec<aws_sdk_sfn::types::HistoryEventType> {
        use aws_sdk_sfn::types::HistoryEventType as T;
        let h = self
            .client
            .get_execution_history()
            .execution_arn(execution)
            .send()
            .await
            .unwrap();
        h.events()
            .iter()
            .map(|e| e.r#type().clone())
            .filter(|t| matches!(t, T::ActivitySucceeded | T::ActivityFailed))
            .collect()
    }

    /// Waits until the execution's activity task has been handed to a worker.
    pub async fn wait_activity_started(&self, execution: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let h = self
                .client
                .get_execution_history()
                .execution_arn(execution)
                .send()
                .await
                .unwrap();
            if h.events()
                .iter()
                .any(|e| e.r#type() == &aws_sdk_sfn::types::HistoryEventType::ActivityStarted)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no worker took the task of {execution} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `[activity.NAME]` TOML for a component.
pub fn activity_toml(name: &str, arn: &str, component: &Path, extra: &str) -> String {
    format!(
        "[activity.{name}]\narn = \"{arn}\"\ncomponent = \"{}\"\n{extra}\n",
        component.display()
    )
}

/// Runs the binary to completion with extra environment variables.
pub fn run_cli_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running wasm-activity")
}

/// One test per backend for each scenario `async fn name(backend: Backend)`:
/// `per_backend!([module => Backend, ...] [scenario, ...])`.
#[macro_export]
macro_rules! per_backend {
    ([$($module:ident => $backend:ident),+ $(,)?] $names:tt) => {
        $($crate::per_backend!(@module $module $backend $names);)+
    };
    (@module $module:ident $backend:ident [$($name:ident),* $(,)?]) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                super::$name($crate::support::Backend::$backend).await
            })*
        }
    };
}

/// Outcome per input file, parsed from `dev`'s output.
#[derive(Debug)]
pub struct DevOutcome {
    /// SUCCEEDED, FAILED, ...
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

pub fn parse_dev_output(stdout: &str) -> BTreeMap<String, DevOutcome> {
    let mut out = BTreeMap::new();
    for block in stdout.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (head, rest) = block.trim().split_once('\n').unwrap_or((block.trim(), ""));
        let (file, status) = head.rsplit_once(": ").unwrap();
        let name = Path::new(file)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut o = DevOutcome {
            status: status.to_string(),
            output: None,
            error: None,
            cause: None,
        };
        if status == "SUCCEEDED" {
            o.output = serde_json::from_str(rest).ok();
        } else {
            // "  error: E\n  cause: C..." where the cause may span lines.
            if let Some((error, cause)) = rest.split_once("\n  cause: ") {
                o.error = error.strip_prefix("  error: ").map(str::to_string);
                o.cause = Some(cause.to_string());
            }
        }
        out.insert(name, o);
    }
    out
}

/// What `wasm-activity dev` printed for a directory of inputs.
pub struct DevRun {
    /// Outcome per input file name.
    pub results: BTreeMap<String, DevOutcome>,
    /// Standard output (the results).
    pub stdout: String,
    /// Standard error (the log, at `info`).
    pub log: String,
}

/// Writes each case as `inputs/NAME.json` and runs `dev` on them with the
/// config, `extra` arguments and `env`.
pub fn run_dev(
    config: &Path,
    inputs: &Path,
    cases: &[(&str, Value)],
    extra: &[&str],
    env: &[(&str, &str)],
) -> DevRun {
    std::fs::create_dir_all(inputs).unwrap();
    for (name, input) in cases {
        std::fs::write(inputs.join(format!("{name}.json")), input.to_string()).unwrap();
    }
    let out = Command::new(binary())
        .args(["dev", "--port", "0"])
        .args(extra)
        .arg("--config")
        .arg(config)
        .arg("--input")
        .arg(inputs)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("running wasm-activity dev");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    DevRun {
        results: parse_dev_output(&stdout),
        stdout,
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Scrapes `url` until `ready` holds for the text, or panics with `what`.
pub async fn scrape_until(url: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How often the embedded endpoint's fault rules for `op` and `fault` fired.
pub fn fired(faults: &serde_json::Value, op: &str, fault: &str) -> u64 {
    faults
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["op"] == op && r["fault"] == fault)
        .map(|r| r["fired"].as_u64().unwrap())
        .sum()
}
