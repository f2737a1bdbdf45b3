//! `wasm-activity dev`: the worker and a local Step Functions endpoint in one
//! process, so a handler runs end to end with nothing else installed.
//!
//! The config's activities are created on the embedded endpoint under the
//! same names (their ARNs are rewritten to the endpoint's region and
//! account), each gets a one-state machine to start executions with, and the
//! unchanged worker polls the endpoint through the same AWS SDK client it
//! uses against AWS.
//!
//! Results are printed inert (see [`crate::redact`]): the output as
//! escaped JSON, error and cause escaped, so a handler cannot print lines of
//! its own into the summary.

use crate::config::{ActivityConfig, Config};
use crate::endpoint::{ApiError, EndpointOptions, LocalEndpoint};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// What `dev` could not do.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The endpoint could not listen.
    #[error("cannot listen on {addr}: {source} (pick another port with --port)")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// An input file or directory could not be read.
    #[error("cannot read input {}: {source}", path.display())]
    Input {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The endpoint refused a setup call.
    #[error("setting up the local endpoint failed: {0:?}")]
    Endpoint(ApiError),
    /// `--activity` is needed or names no activity.
    #[error("{0}")]
    Activity(String),
    /// The worker failed.
    #[error(transparent)]
    Worker(#[from] crate::RunError),
}

/// One activity as set up on the local endpoint.
#[derive(Debug, Clone)]
pub struct LocalActivity {
    /// The `[activity.NAME]` key.
    pub name: String,
    /// Its ARN on the endpoint.
    pub arn: String,
    /// A state machine with one Task state running it.
    pub state_machine: String,
}

/// An input file's execution result.
#[derive(Debug, Clone)]
pub struct DevResult {
    /// The input file.
    pub input: PathBuf,
    /// DescribeExecution of the finished execution.
    pub execution: Value,
}

impl DevResult {
    /// True if the execution succeeded.
    pub fn succeeded(&self) -> bool {
        self.execution["status"] == "SUCCEEDED"
    }
}

/// The input files named by `paths`: files as given, directories expanded
/// to their `*.json` files in name order.
pub fn input_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DevError> {
    let mut files = Vec::new();
    for path in paths {
        let err = |source| DevError::Input {
            path: path.clone(),
            source,
        };
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(err)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            std::fs::metadata(path).map_err(err)?;
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The endpoint, the worker running against it, and the activities set up.
pub struct DevSession {
    /// The endpoint.
    pub endpoint: LocalEndpoint,
    /// The activities, in config order.
    pub activities: Vec<LocalActivity>,
    stop_worker: CancellationToken,
    worker: tokio::task::JoinHandle<Result<crate::RunSummary, crate::RunError>>,
}

fn activity_name(a: &ActivityConfig) -> String {
    a.arn.rsplit(':').next().unwrap_or(&a.name).to_string()
}

/// A one-state machine for an activity, with timeouts that fit its limits.
fn definition(a: &ActivityConfig, arn: &str) -> String {
    let timeout = a.limits.timeout.as_secs() + 60;
    let heartbeat = (a.heartbeat_interval.as_secs() * 3).clamp(10, timeout - 1);
    json!({
        "Comment": format!("wasm-activity dev: runs activity {}", a.name),
        "StartAt": a.name,
        "States": { a.name.clone(): {
            "Type": "Task", "Resource": arn, "TimeoutSeconds": timeout, "HeartbeatSeconds": heartbeat, "End": true
        }}
    })
    .to_string()
}

impl DevSession {
    /// Starts the endpoint on `127.0.0.1:port`, sets up the config's
    /// activities on it, and starts the worker.
    pub async fn start(mut config: Config, port: u16) -> Result<DevSession, DevError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let options = EndpointOptions::default();
        let endpoint = LocalEndpoint::start(addr, options.clone())
            .await
            .map_err(|source| DevError::Listen { addr, source })?;
        let mut activities = Vec::new();
        for a in &mut config.activities {
            let created = endpoint
                .call("CreateActivity", json!({ "name": activity_name(a) }))
                .await
                .map_err(DevError::Endpoint)?;
            let arn = created["activityArn"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let sm = endpoint
                .call(
                    "CreateStateMachine",
                    json!({
                        "name": a.name,
                        "definition": definition(a, &arn),
                        "roleArn": format!("arn:aws:iam::{}:role/wasm-activity-dev", options.account),
                    }),
                )
                .await
                .map_err(DevError::Endpoint)?;
            activities.push(LocalActivity {
                name: a.name.clone(),
                arn: arn.clone(),
                state_machine: sm["stateMachineArn"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
            a.arn = arn;
        }
        config.endpoint = Some(endpoint.url());
        config.region = Some(options.region.clone());
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(options.region.clone()))
            .endpoint_url(endpoint.url())
            .credentials_provider(aws_sdk_sfn::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "wasm-activity-dev",
            ))
            .load()
            .await;
        let stop_worker = CancellationToken::new();
        let stop = stop_worker.clone();
        let worker = tokio::spawn(async move {
            crate::serve(
                config,
                &sdk,
                crate::ServeOptions {
                    watch_config: false,
                },
                stop.cancelled_owned(),
            )
            .await
        });
        Ok(DevSession {
            endpoint,
            activities,
            stop_worker,
            worker,
        })
    }

    /// The activity inputs go to: `name`, or the only one.
    pub fn target(&self, name: Option<&str>) -> Result<&LocalActivity, DevError> {
        match name {
            Some(n) => self.activities.iter().find(|a| a.name == n).ok_or_else(|| {
                let known: Vec<&str> = self.activities.iter().map(|a| a.name.as_str()).collect();
                DevError::Activity(format!(
                    "--activity {n:?} is not in the config (it has: {})",
                    known.join(", ")
                ))
            }),
            None if self.activities.len() == 1 => Ok(&self.activities[0]),
            None => Err(DevError::Activity(format!(
                "the config has {} activities; say which one the inputs are for with --activity NAME",
                self.activities.len()
            ))),
        }
    }

    /// Starts one execution per input file on `activity` and waits for all.
    pub async fn run_inputs(
        &self,
        activity: &LocalActivity,
        files: &[PathBuf],
    ) -> Result<Vec<DevResult>, DevError> {
        let mut started = Vec::new();
        for file in files {
            let input = std::fs::read_to_string(file).map_err(|source| DevError::Input {
                path: file.clone(),
                source,
            })?;
            let out = self
                .endpoint
                .call(
                    "StartExecution",
                    json!({ "stateMachineArn": activity.state_machine, "input": input }),
                )
                .await;
            started.push((file.clone(), out));
        }
        let mut results = Vec::new();
        for (file, out) in started {
            let execution = match out {
                Ok(out) => {
                    let arn = out["executionArn"].as_str().unwrap_or_default().to_string();
                    self.endpoint
                        .shared()
                        .wait_execution(&arn)
                        .await
                        .map_err(DevError::Endpoint)?
                }
                // Bad input (not JSON, too large): report it like a failed run.
                Err(e) => json!({ "status": "NOT STARTED", "error": e.code, "cause": e.message }),
            };
            results.push(DevResult {
                input: file,
                execution,
            });
        }
        Ok(results)
    }

    /// Stops the worker (its polls are released at once) and the endpoint.
    pub async fn stop(self) -> Result<crate::RunSummary, DevError> {
        self.stop_worker.cancel();
        self.endpoint.release_polls();
        let summary = self.worker.await.expect("worker task panicked")?;
        self.endpoint.shutdown().await;
        Ok(summary)
    }

    /// True if the worker stopped on its own (it failed to start).
    pub fn worker_finished(&self) -> bool {
        self.worker.is_finished()
    }
}

/// Prints a result the way `dev --input` shows it; what came from the
/// handler is escaped.
pub fn format_result(result: &DevResult, root: &Path) -> String {
    use crate::redact::{Inert, escape_json};
    let name = result
        .input
        .strip_prefix(root)
        .unwrap_or(&result.input)
        .display();
    let e = &result.execution;
    let status = e["status"].as_str().unwrap_or("?");
    if result.succeeded() {
        let output = e["output"]
            .as_str()
            .and_then(|o| serde_json::from_str::<Value>(o).ok())
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
            .unwrap_or_default();
        format!("{name}: {}\n{}", Inert(status), escape_json(&output))
    } else {
        format!(
            "{name}: {}\n  error: {}\n  cause: {}",
            Inert(status),
            Inert(e["error"].as_str().unwrap_or("(none)")),
            Inert(e["cause"].as_str().unwrap_or("(none)"))
        )
    }
}

/// The banner `dev` prints when it keeps running.
pub fn banner(url: &str, activities: &[LocalActivity], example_input: Option<&Path>) -> String {
    let input = example_input
        .map(|p| format!("file://{}", p.display()))
        .unwrap_or_else(|| "'{}'".into());
    let mut text = format!(
        "Local Step Functions endpoint: {url}  (state in memory only; live page: {url}/)\n\
         Any credentials work, e.g. AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1.\n"
    );
    for a in activities {
        text.push_str(&format!(
            "\nactivity {}: {}\n  state machine: {}\n  start one:\n    aws stepfunctions start-execution --endpoint-url {url} \\\n      --state-machine-arn {} --input {input}\n  see it:\n    aws stepfunctions describe-execution --endpoint-url {url} --execution-arn <executionArn from above>\n",
            a.name, a.arn, a.state_machine, a.state_machine
        ));
    }
    text.push_str(
        "\nHandler edits are picked up: rebuild the component and new tasks run the new build \
         (running ones finish on the old one).\nPress Ctrl-C to stop.\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_print_inert() {
        let failed = DevResult {
            input: PathBuf::from("/in/a.json"),
            execution: json!({"status": "FAILED", "error": "E\nb.json: SUCCEEDED", "cause": "c\r\u{1b}[2Jx"}),
        };
        let text = format_result(&failed, Path::new("/in"));
        assert_eq!(
            text,
            "a.json: FAILED\n  error: E\\nb.json: SUCCEEDED\n  cause: c\\r\\u{1b}[2Jx"
        );
        let ok = DevResult {
            input: PathBuf::from("/in/a.json"),
            execution: json!({"status": "SUCCEEDED", "output": "{\"k\":\"v\\u2028\\nb.json: FAILED\"}"}),
        };
        let text = format_result(&ok, Path::new("/in"));
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains(r#""k": "v\u2028\nb.json: FAILED""#), "{text}");
    }
}
