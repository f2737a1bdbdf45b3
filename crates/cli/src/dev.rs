//! `wasm-activity dev`: the worker and a local Step Functions endpoint in one
//! process, so a handler runs end to end with nothing else installed.
//!
//! The config's activities are created on the embedded endpoint under the
//! same names (their ARNs are rewritten to the endpoint's region and
//! account), each gets a one-state machine to start executions with, and the
//! unchanged worker polls the endpoint through the same AWS SDK client it
//! uses against AWS.
//!
//! Every argument is checked (see [`DevPlan::new`]) before anything starts:
//! no endpoint, worker or component loading for a command line that cannot
//! run.
//!
//! Results are printed inert (see [`wasm_activity_worker::redact`]): the output as
//! escaped JSON, error and cause escaped, so a handler cannot print lines of
//! its own into the summary.

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;
use wasm_activity_endpoint::{ApiError, EndpointOptions, LocalEndpoint};
use wasm_activity_worker::config::{ActivityConfig, Config};

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
    #[error("--input {}: cannot read it: {source}", path.display())]
    Input {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--input` named only directories without `*.json` files.
    #[error("--input {}: no input files (a directory gives its *.json files)", show_paths(.0))]
    NoInputs(Vec<PathBuf>),
    /// The endpoint refused a setup call.
    #[error("setting up the local endpoint failed: {0:?}")]
    Endpoint(ApiError),
    /// The config has no Step Functions activity for `dev` to run.
    #[error("{}: dev needs at least one [activity.NAME] (Step Functions) table", config.display())]
    NoActivity {
        /// The config file.
        config: PathBuf,
    },
    /// `--activity` names no `[activity.NAME]` of the config.
    #[error(
        "--activity {name:?}: {} has no [{}] table; choose one of: {}{}",
        config.display(),
        wasm_activity_worker::config::ActivityId::StepFunctions { name: name.clone() }.table(),
        choices.join(", "),
        if *has_swf { " (dev runs Step Functions activities only, not SWF types)" } else { "" }
    )]
    UnknownActivity {
        /// The name given.
        name: String,
        /// The config file.
        config: PathBuf,
        /// Its `[activity.NAME]` keys.
        choices: Vec<String>,
        /// Whether it also has SWF task lists (which `dev` does not run).
        has_swf: bool,
    },
    /// `--input` with several activities and no `--activity`.
    #[error(
        "--activity is needed with --input: {} has {} Step Functions activities; say which one the \
         inputs are for with --activity NAME, one of: {}",
        config.display(),
        choices.len(),
        choices.join(", ")
    )]
    ActivityNeeded {
        /// The config file.
        config: PathBuf,
        /// Its `[activity.NAME]` keys.
        choices: Vec<String>,
    },
    /// The worker failed.
    #[error(transparent)]
    Worker(#[from] wasm_activity_worker::RunError),
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

fn show_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `dev` command line, checked against its config: what to run, read and
/// resolved before anything starts.
#[derive(Debug)]
pub struct DevPlan {
    /// The config, its Step Functions activities only.
    pub config: Config,
    /// The `[activity.NAME]` the inputs go to; `None` without inputs.
    pub target: Option<String>,
    /// Each input file and its text, in order.
    pub inputs: Vec<(PathBuf, String)>,
}

impl DevPlan {
    /// Checks `--input` (every file read now) and `--activity` against
    /// `config`. SWF task lists are dropped: `dev` runs Step Functions
    /// activities.
    pub fn new(
        mut config: Config,
        inputs: &[PathBuf],
        activity: Option<&str>,
    ) -> Result<DevPlan, DevError> {
        let has_swf = !config.task_lists.is_empty();
        config.task_lists.clear();
        if config.activities.is_empty() {
            return Err(DevError::NoActivity {
                config: config.path.clone(),
            });
        }
        let choices = || config.activities.iter().map(|a| a.name.clone()).collect();
        let target = match activity {
            Some(name) if !config.activities.iter().any(|a| a.name == name) => {
                return Err(DevError::UnknownActivity {
                    name: name.to_string(),
                    config: config.path.clone(),
                    choices: choices(),
                    has_swf,
                });
            }
            Some(name) => Some(name.to_string()),
            None if inputs.is_empty() => None,
            None if config.activities.len() == 1 => Some(config.activities[0].name.clone()),
            None => {
                return Err(DevError::ActivityNeeded {
                    config: config.path.clone(),
                    choices: choices(),
                });
            }
        };
        let mut read = Vec::new();
        for file in input_files(inputs)? {
            let text = std::fs::read_to_string(&file).map_err(|source| DevError::Input {
                path: file.clone(),
                source,
            })?;
            read.push((file, text));
        }
        if !inputs.is_empty() && read.is_empty() {
            return Err(DevError::NoInputs(inputs.to_vec()));
        }
        Ok(DevPlan {
            config,
            target: target.filter(|_| !inputs.is_empty()),
            inputs: read,
        })
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
    /// The activity the inputs go to, if there are inputs.
    pub target: Option<LocalActivity>,
    /// The endpoint's region.
    pub region: String,
    stop_worker: CancellationToken,
    worker: tokio::task::JoinHandle<
        Result<wasm_activity_worker::RunSummary, wasm_activity_worker::RunError>,
    >,
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
    /// Starts the endpoint on `127.0.0.1:port`, sets up the plan's
    /// activities on it, and starts the worker.
    pub async fn start(plan: &DevPlan, port: u16) -> Result<DevSession, DevError> {
        let mut config = plan.config.clone();
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
        let target = (plan.target.as_ref())
            .and_then(|name| activities.iter().find(|a| &a.name == name))
            .cloned();
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
        // The worker's live view (versions, guest log lines, reloads,
        // polling health) on the endpoint's page: same process.
        endpoint.show_worker(wasm_activity_worker::live_view);
        let stop_worker = CancellationToken::new();
        let stop = stop_worker.clone();
        let worker = tokio::spawn(async move {
            wasm_activity_worker::serve(
                config,
                &sdk,
                wasm_activity_worker::ServeOptions {
                    watch_config: false,
                },
                stop.cancelled_owned(),
            )
            .await
        });
        Ok(DevSession {
            endpoint,
            activities,
            target,
            region: options.region.clone(),
            stop_worker,
            worker,
        })
    }

    /// Starts one execution per input file on `activity` and waits for all.
    pub async fn run_inputs(
        &self,
        activity: &LocalActivity,
        inputs: &[(PathBuf, String)],
    ) -> Result<Vec<DevResult>, DevError> {
        let mut started = Vec::new();
        for (file, input) in inputs {
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
    pub async fn stop(self) -> Result<wasm_activity_worker::RunSummary, DevError> {
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

    /// Returns once the worker has stopped on its own (it failed to start;
    /// [`DevSession::stop`] then says why).
    pub async fn worker_stopped(&self) {
        while !self.worker_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// Prints a result the way `dev --input` shows it; what came from the
/// handler is escaped.
pub fn format_result(result: &DevResult, root: &Path) -> String {
    use wasm_activity_worker::redact::{Inert, escape_json};
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
/// `text` as one POSIX shell word, whatever it holds.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

pub fn banner(
    url: &str,
    region: &str,
    activities: &[LocalActivity],
    example_input: Option<&Path>,
) -> String {
    // Each command works as pasted in a shell with no AWS setup: the
    // endpoint takes any credentials, but the CLI wants some, and a region.
    let input = example_input
        .map(|p| shell_quote(&format!("file://{}", p.display())))
        .unwrap_or_else(|| "'{}'".into());
    let aws = format!(
        "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws stepfunctions --endpoint-url {url} --region {region}"
    );
    let mut text = format!(
        "Local Step Functions endpoint: {url}  (state in memory only; live page: {url}/)\n\
         Any credentials work; the commands below bring their own.\n"
    );
    for a in activities {
        text.push_str(&format!(
            "\nactivity {}: {}\n  state machine: {}\n  start one:\n    {aws} \\\n      start-execution --state-machine-arn {} --input {input}\n  see them:\n    {aws} \\\n      list-executions --state-machine-arn {}\n",
            a.name,
            a.arn,
            a.state_machine,
            shell_quote(&a.state_machine),
            shell_quote(&a.state_machine)
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

    fn config(names: &[&str], swf: bool) -> Config {
        let mut text = String::new();
        for n in names {
            text.push_str(&format!(
                "[activity.{n}]\narn = \"arn:aws:states:us-east-1:000000000000:activity:{n}\"\n\
                 component = \"{n}.wasm\"\n"
            ));
        }
        if swf {
            text.push_str(
                "[swf.orders]\ndomain = \"d\"\ntask_list = \"t\"\n\
                 [[swf.orders.activity]]\ntype = \"ship\"\ncomponent = \"s.wasm\"\n",
            );
        }
        Config::from_toml(&text, Path::new("/etc/wa/worker.toml")).unwrap()
    }

    fn inputs(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let inputs = dir.path().join("inputs");
        std::fs::create_dir(&inputs).unwrap();
        for (name, text) in files {
            std::fs::write(inputs.join(name), text).unwrap();
        }
        (dir, inputs)
    }

    #[test]
    fn pasted_commands_quote_what_a_name_may_hold() {
        assert_eq!(shell_quote("a'b (c)!"), "'a'\\''b (c)!'");
        let text = banner(
            "http://127.0.0.1:1",
            "us-east-1",
            &[LocalActivity {
                name: "it's".into(),
                arn: "arn:aws:states:us-east-1:000000000000:activity:it's".into(),
                state_machine: "arn:aws:states:us-east-1:000000000000:stateMachine:it's".into(),
            }],
            None,
        );
        assert!(
            text.contains(
                "--state-machine-arn 'arn:aws:states:us-east-1:000000000000:stateMachine:it'\\''s'"
            ),
            "{text}"
        );
    }

    #[test]
    fn activity_is_chosen_before_anything_starts() {
        let (_dir, dir) = inputs(&[("b.json", "2"), ("a.json", "1"), ("notes.txt", "x")]);
        let plan = DevPlan::new(
            config(&["price", "ship"], true),
            std::slice::from_ref(&dir),
            Some("ship"),
        )
        .unwrap();
        assert_eq!(plan.target.as_deref(), Some("ship"));
        assert!(
            plan.config.task_lists.is_empty(),
            "dev runs Step Functions only"
        );
        let read: Vec<(String, &str)> = (plan.inputs.iter())
            .map(|(p, t)| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    t.as_str(),
                )
            })
            .collect();
        assert_eq!(
            read,
            [("a.json".to_string(), "1"), ("b.json".to_string(), "2")]
        );
        // The only activity needs no --activity; without inputs, none is chosen.
        let plan =
            DevPlan::new(config(&["price"], false), std::slice::from_ref(&dir), None).unwrap();
        assert_eq!(plan.target.as_deref(), Some("price"));
        let plan = DevPlan::new(config(&["price", "ship"], false), &[], None).unwrap();
        assert_eq!((plan.target, plan.inputs.len()), (None, 0));
    }

    #[test]
    fn missing_or_unknown_activity_names_the_flag_the_value_and_the_choices() {
        let (_dir, dir) = inputs(&[("a.json", "{}")]);
        let e = DevPlan::new(
            config(&["price", "ship"], false),
            std::slice::from_ref(&dir),
            None,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "--activity is needed with --input: /etc/wa/worker.toml has 2 Step Functions activities; \
             say which one the inputs are for with --activity NAME, one of: price, ship"
        );
        let e = DevPlan::new(
            config(&["price", "ship"], true),
            &[dir],
            Some("orders/ship"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "--activity \"orders/ship\": /etc/wa/worker.toml has no [activity.\"orders/ship\"] table; \
             choose one of: price, ship (dev runs Step Functions activities only, not SWF types)"
        );
        let e = DevPlan::new(config(&[], true), &[], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dev needs at least one [activity.NAME]"), "{e}");
    }

    #[test]
    fn unreadable_or_empty_inputs_are_refused_with_their_path() {
        let (_dir, dir) = inputs(&[("notes.txt", "x")]);
        let e = DevPlan::new(config(&["price"], false), std::slice::from_ref(&dir), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "--input {}: no input files (a directory gives its *.json files)",
                dir.display()
            )
        );
        let missing = dir.join("missing.json");
        let e = DevPlan::new(
            config(&["price"], false),
            std::slice::from_ref(&missing),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(&format!("--input {}: cannot read it: ", missing.display())),
            "{e}"
        );
    }

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
