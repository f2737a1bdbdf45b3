//! Starting the three workers under test against a Step Functions endpoint:
//! the host (`wasm-activity run`), the native Rust worker and the boto3
//! worker, each on its own activity ARN with `concurrency` tasks in flight.

use crate::procs::Worker;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where the binaries, components and interpreters are.
#[derive(Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub host: PathBuf,
    pub native: PathBuf,
    pub python: PathBuf,
    pub rust_example: PathBuf,
    pub scenario: PathBuf,
    pub work_dir: PathBuf,
    pub cache_dir: PathBuf,
}

/// Which worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Host,
    Native,
    Boto3,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Host => "wasm-activity (Rust guest)",
            Kind::Native => "native Rust worker",
            Kind::Boto3 => "Python boto3 worker",
        }
    }
    pub fn short(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::Native => "native",
            Kind::Boto3 => "boto3",
        }
    }
}

/// Host settings beyond the defaults.
#[derive(Clone, Copy)]
pub struct HostOptions<'a> {
    pub component: &'a Path,
    pub heartbeat: &'a str,
    pub reload: bool,
    pub log: &'a str,
    /// Long polls at once; None: one per task slot.
    pub pollers: Option<usize>,
    /// The host's client for polls, heartbeats and reports: `lean` or `sdk`.
    pub aws_client: &'a str,
    /// The activity's `memory_limit`.
    pub memory_limit: &'a str,
    /// `otlp_endpoint`: where traces and metrics go; empty for none.
    pub otlp_endpoint: &'a str,
}

pub fn arn(name: &str) -> String {
    format!("arn:aws:states:us-east-1:000000000000:activity:{name}")
}

/// Starts a worker of `kind` polling `arn` at `endpoint`. `work` is `price`
/// or `sleep20` for the baselines (the native worker also takes `sleep:MS`
/// and `,heartbeat:MS`); the host's work is its component.
pub fn start(
    paths: &Paths,
    kind: Kind,
    endpoint: &str,
    arn: &str,
    concurrency: usize,
    work: &str,
    host: &HostOptions,
) -> anyhow::Result<Worker> {
    let tag = arn.rsplit(':').next().unwrap_or("worker");
    let log = paths.work_dir.join(format!("{tag}.log"));
    let command = match kind {
        Kind::Host => {
            let config = paths.work_dir.join(format!("{tag}.toml"));
            std::fs::write(
                &config,
                format!(
                    "endpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nworker_name = \"bench-host\"\n\
                     cache_dir = \"{}\"\nreload = {}\nreload_debounce = \"10ms\"\nshutdown_grace = \"1s\"\n\
                     aws_client = \"{}\"\n\
                     [activity.bench]\narn = \"{arn}\"\ncomponent = \"{}\"\nmax_concurrent = {concurrency}\n\
                     pollers = {}\nheartbeat_interval = \"{}\"\ntask_timeout = \"60s\"\nmemory_limit = \"{}\"\n",
                    paths.cache_dir.display(),
                    host.reload,
                    host.aws_client,
                    host.component.display(),
                    host.pollers.unwrap_or(concurrency).min(1000),
                    host.heartbeat,
                    host.memory_limit,
                ),
            )?;
            if !host.otlp_endpoint.is_empty() {
                // A top-level key: before the [activity] table.
                let body = std::fs::read_to_string(&config)?;
                std::fs::write(
                    &config,
                    format!("otlp_endpoint = \"{}\"\n{body}", host.otlp_endpoint),
                )?;
            }
            let mut c = Command::new(&paths.host);
            c.args(["run", "--config"])
                .arg(&config)
                .env("RUST_LOG", host.log)
                .env("AWS_ACCESS_KEY_ID", "bench")
                .env("AWS_SECRET_ACCESS_KEY", "bench")
                .env("AWS_EC2_METADATA_DISABLED", "true");
            c
        }
        Kind::Native => {
            let mut c = Command::new(&paths.native);
            c.args(["--endpoint", endpoint, "--arn", arn, "--work", work])
                .arg("--concurrency")
                .arg(concurrency.to_string());
            c
        }
        Kind::Boto3 => {
            let mut c = Command::new(&paths.python);
            c.arg(paths.root.join("bench/boto3_worker.py"))
                .args(["--endpoint", endpoint, "--arn", arn, "--work", work])
                .arg("--concurrency")
                .arg(concurrency.to_string());
            c
        }
    };
    let mut worker = Worker::spawn(kind.short(), command, &log)?;
    if kind == Kind::Host {
        let log = log.clone();
        worker.wait_for("running", Duration::from_secs(120), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("worker running"))
        })?;
    }
    Ok(worker)
}
