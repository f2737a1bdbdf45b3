//! The `wasm-activity` command line.
//!
//! Output meant for people and scripts goes to stdout (the `check` summary,
//! the `invoke` result); logs go to stderr, filtered by `RUST_LOG`.
//!
//! What a guest returned is printed inert: JSON through
//! [`wasm_activity_worker::redact::escape_json`] (still the same JSON), other text through
//! [`wasm_activity_worker::redact::escape`], so a handler's output cannot print a line of
//! its own or drive the terminal.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wasm_activity_worker::config::{ComponentRef, Config, Digest, Source, TaskLimits};
use wasm_activity_worker::local::{LocalError, LocalHandler};
use wasm_activity_worker::redact::{Inert, escape_json, is_inert};
use wasm_activity_worker::report::Report;

/// Serve AWS Step Functions activities with sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "wasm-activity", version, about)]
pub struct Cli {
    /// Log format on stderr: human-readable lines, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line, with the task's span fields.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll the configured activities and run their tasks until SIGINT/SIGTERM.
    ///
    /// Exit status: 0 after a clean drain, 1 if the worker could not start,
    /// 2 if tasks were still running when the grace period ran out, 130 on
    /// a second signal (exit at once).
    Run {
        /// The worker configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the worker against an embedded local Step Functions endpoint: no
    /// AWS account needed.
    ///
    /// With --input, starts one execution per input file (a directory means
    /// its *.json files), prints each result and exits: 0 if all succeeded,
    /// 1 otherwise. Without it, prints the endpoint URL and AWS CLI commands
    /// and runs until Ctrl-C.
    Dev {
        /// The worker configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Input files or directories of *.json files.
        #[arg(long, short)]
        input: Vec<PathBuf>,
        /// Which activity the inputs are for (needed if the config has several).
        #[arg(long, requires = "input")]
        activity: Option<String>,
        /// Port for the endpoint on 127.0.0.1.
        #[arg(long, default_value_t = 4599)]
        port: u16,
    },
    /// Run only the embedded local Step Functions endpoint (on 127.0.0.1),
    /// for your own workers, the AWS CLI or boto3.
    ServeLocal {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 4599)]
        port: u16,
        /// Region used in ARNs.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Account id used in ARNs.
        #[arg(long, default_value = "000000000000")]
        account: String,
        /// How long GetActivityTask waits for a task. AWS holds polls 60 s;
        /// tests shorten it so workers drain quickly.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        poll_timeout: std::time::Duration,
    },
    /// Re-run recorded tasks (see `[activity.NAME.record]`) against a
    /// component and report which results changed.
    ///
    /// Exit status: 0 if no result changed, 1 if some did, 2 if the
    /// component could not be run.
    Replay {
        /// The directory of recordings.
        dir: PathBuf,
        /// The component to run them against: a .wasm file, oci://...,
        /// s3://... or https://... (with --sha256).
        #[arg(long)]
        component: String,
        #[command(flatten)]
        fetch: FetchArgs,
        /// Wall-clock limit per task.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Linear memory limit, e.g. "64MiB".
        #[arg(long, default_value = "64MiB", value_parser = size_arg)]
        memory_limit: u64,
    },
    /// Create a handler project (SDK, WIT contract, build script, sample
    /// input and expected output, worker config) that builds and passes
    /// `invoke` out of the box.
    New {
        /// The handler's language.
        #[arg(value_enum)]
        language: crate::scaffold::Language,
        /// Project name: directory, crate and component file name.
        name: String,
        /// Where to create the project directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Publish a component the way the worker fetches it: to an OCI
    /// registry (oci://REGISTRY/REPOSITORY:TAG, the wasm artifact layout) or
    /// to S3 (s3://BUCKET/KEY). Prints the component's digest (what a
    /// `sha256 =` pin names) and the registry's or bucket's own version.
    ///
    /// Exit status: 0 if published, 1 if the registry or bucket refused it,
    /// 2 if the file is not a component.
    Push {
        /// The component file (.wasm).
        file: PathBuf,
        /// Where to publish it: oci://REGISTRY/REPOSITORY:TAG or s3://BUCKET/KEY.
        target: String,
        /// A registry reached over plain HTTP (host:port); repeatable. For
        /// local test registries only.
        #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
        insecure: Vec<String>,
    },
    /// Validate a config and load every component; print a summary.
    ///
    /// Exit status: 0 if everything is usable, 1 otherwise.
    Check {
        /// The worker configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Also ask the service (read-only calls, with the worker's
        /// credentials) whether each activity, domain and type exists.
        #[arg(long)]
        aws: bool,
    },
    /// Run a handler locally, without any service, on one input or a
    /// directory of inputs.
    ///
    /// Prints the output JSON on success (exit 0), or {"error", "cause"} on
    /// failure (exit 1); exit 2 if the component could not be run at all or
    /// an input or expected file cannot be read.
    /// With a directory, prints one result per *.json file. With --expect,
    /// compares each result with the expected JSON (a file, or a directory
    /// holding a file of the same name per input) and exits 0 only if all
    /// match. An expected `{"error": NAME}` without a cause matches any
    /// failure named NAME.
    Invoke {
        /// The component to run: a .wasm file, oci://REGISTRY/REPO:TAG,
        /// s3://BUCKET/KEY or https://... (with --sha256).
        component: String,
        #[command(flatten)]
        fetch: FetchArgs,
        /// The task input: JSON text, @FILE, - (standard input), or a
        /// directory of *.json files.
        #[arg(long, short)]
        input: String,
        /// Expected results: a JSON file, or a directory with one file per input.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Wall-clock limit, e.g. "30s".
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Linear memory limit, e.g. "64MiB".
        #[arg(long, default_value = "64MiB", value_parser = size_arg)]
        memory_limit: u64,
        /// Host memory the handler may make the host hold for it, e.g. "16MiB".
        #[arg(long, default_value = "16MiB", value_parser = size_arg)]
        host_memory_limit: u64,
        /// CPU fuel budget (roughly, wasm instructions); unmetered if absent.
        #[arg(long)]
        fuel: Option<u64>,
    },
}

/// How `invoke` and `replay` fetch a component named by reference.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// The SHA-256 the component must have (sha256:HEX); required for
    /// https:// references. A different component is refused.
    #[arg(long)]
    sha256: Option<String>,
    /// A registry or http:// host reached over plain HTTP (host:port);
    /// repeatable. For local test servers only.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure: Vec<String>,
}

impl FetchArgs {
    /// The reference `text` with these arguments' pin, relative paths from
    /// the current directory.
    fn reference(&self, text: &str) -> Result<ComponentRef, String> {
        let pin = self
            .sha256
            .as_deref()
            .map(|p| Digest::parse(p).map_err(|e| format!("--sha256 {p:?}: expected {e}")))
            .transpose()?;
        let cwd = std::env::current_dir().unwrap_or_default();
        ComponentRef::parse(text, pin, &cwd)
            .map_err(|e| format!("component {text:?}: expected {e}"))
    }
}

/// A size argument, in the config's units (see [`wasm_activity_worker::config::parse_size`]).
fn size_arg(text: &str) -> Result<u64, String> {
    wasm_activity_worker::config::parse_size(text)
        .map_err(|why| format!("expected a size such as \"64MiB\"{why}"))
}

/// Sets up logging to stderr; `RUST_LOG` overrides the default `info`.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // oci-client logs registry tokens at debug level: never shown.
        .add_directive("oci_client=info".parse().expect("a static directive"));
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let output = match format {
        LogFormat::Human => output
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => output
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    // The filter applies to the log output only: traces (off until the
    // worker finds an OTLP endpoint) have their own, and spans made for
    // traces only stay out of the logs.
    let hide = tracing_subscriber::filter::filter_fn(wasm_activity_worker::telemetry::for_logs);
    tracing_subscriber::registry()
        .with(wasm_activity_worker::telemetry::layer())
        .with(output.with_filter(filter).with_filter(hide))
        .init();
}

/// Runs a parsed command line.
pub async fn execute(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run { config } => run(&config).await,
        Command::Check { config, aws } => wasm_activity_worker::check::check(&config, aws).await,
        Command::New {
            language,
            name,
            dir,
        } => new_project(language, &name, &dir),
        Command::Dev {
            config,
            input,
            activity,
            port,
        } => dev(&config, &input, activity.as_deref(), port).await,
        Command::Push {
            file,
            target,
            insecure,
        } => push(&file, &target, &insecure).await,
        Command::Replay {
            dir,
            component,
            fetch,
            timeout,
            memory_limit,
        } => {
            let limits = TaskLimits {
                timeout,
                memory: memory_limit,
                ..TaskLimits::default()
            };
            replay(&dir, &component, &fetch, limits).await
        }
        Command::ServeLocal {
            port,
            region,
            account,
            poll_timeout,
        } => serve_local(port, region, account, poll_timeout).await,
        Command::Invoke {
            component,
            fetch,
            input,
            expect,
            timeout,
            memory_limit,
            host_memory_limit,
            fuel,
        } => {
            let limits = TaskLimits {
                timeout,
                memory: memory_limit,
                host_memory: host_memory_limit,
                fuel,
                ..TaskLimits::default()
            };
            invoke(&component, &fetch, &input, expect.as_deref(), limits).await
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(1)
    })
}

async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(path)?;
    let shutdown = async {
        wasm_activity_worker::shutdown::signal().await;
        tokio::spawn(async {
            wasm_activity_worker::shutdown::signal().await;
            eprintln!("second signal: exiting at once");
            std::process::exit(130);
        });
    };
    let summary = wasm_activity_worker::run(config, shutdown).await?;
    Ok(if summary.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn dev(
    path: &Path,
    inputs: &[PathBuf],
    activity: Option<&str>,
    port: u16,
) -> anyhow::Result<ExitCode> {
    use crate::dev::{DevPlan, DevSession, banner, format_result};
    let config = Config::from_file(path)?;
    let task_lists: Vec<String> = config.task_lists.iter().map(|t| t.name.clone()).collect();
    // Every argument is checked before anything starts.
    let plan = DevPlan::new(config, inputs, activity)?;
    if !task_lists.is_empty() {
        eprintln!(
            "note: dev runs the config's Step Functions activities only; to try its SWF task lists ({}), \
             start `wasm-activity serve-local` (it speaks SWF too) and point `run` at it with a decider",
            task_lists.join(", ")
        );
    }
    // A project made by `new` has a sample input beside its config: the
    // printed start-execution command uses it.
    let example = path
        .parent()
        .map(|dir| dir.join("input.json"))
        .filter(|p| p.is_file())
        .and_then(|p| std::path::absolute(p).ok());
    let session = DevSession::start(&plan, port).await?;
    let Some(target) = session.target.clone() else {
        println!(
            "{}",
            banner(
                &session.endpoint.url(),
                &session.region,
                &session.activities,
                example.as_deref()
            )
        );
        tokio::select! {
            () = wasm_activity_worker::shutdown::signal() => {}
            // The worker ends on its own only if it failed to start.
            () = session.worker_stopped() => {}
        }
        session.stop().await?;
        return Ok(ExitCode::SUCCESS);
    };
    enum Ended {
        Ran(Result<Vec<crate::dev::DevResult>, crate::dev::DevError>),
        Signal,
        WorkerStopped,
    }
    let ended = tokio::select! {
        r = session.run_inputs(&target, &plan.inputs) => Ended::Ran(r),
        () = wasm_activity_worker::shutdown::signal() => Ended::Signal,
        // It failed to start: stop() below says why.
        () = session.worker_stopped() => Ended::WorkerStopped,
    };
    // Stopped on every path, so no worker task outlives the runtime.
    session.stop().await?;
    let results = match ended {
        Ended::Ran(results) => results?,
        Ended::Signal => return Ok(ExitCode::from(130)),
        Ended::WorkerStopped => bail!("the worker stopped before the inputs were run"),
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    for r in &results {
        println!("{}\n", format_result(r, &cwd));
    }
    let ok = results.iter().all(|r| r.succeeded());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn serve_local(
    port: u16,
    region: String,
    account: String,
    poll_timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    use wasm_activity_endpoint::{EndpointOptions, LocalEndpoint};
    let options = EndpointOptions {
        region,
        account,
        poll_timeout,
    };
    let endpoint =
        LocalEndpoint::start(std::net::SocketAddr::from(([127, 0, 0, 1], port)), options)
            .await
            .with_context(|| {
                format!("cannot listen on 127.0.0.1:{port} (pick another port with --port)")
            })?;
    // Tests and scripts read the first line to find the port, and may close
    // the pipe after it: the endpoint keeps serving whether or not anyone
    // reads the rest (println! would panic on the closed pipe).
    let url = endpoint.url();
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stdout(),
        "listening on {url}\nstate is in memory only; live page at {url}/ ; Ctrl-C stops"
    );
    wasm_activity_worker::shutdown::signal().await;
    endpoint.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn new_project(
    language: crate::scaffold::Language,
    name: &str,
    dir: &Path,
) -> anyhow::Result<ExitCode> {
    let project = crate::scaffold::create(language, name, dir)?;
    println!("created {}", project.display());
    println!("  cd {} && ./build.sh", project.display());
    println!("  wasm-activity invoke {name}.wasm --input @input.json --expect expected.json");
    Ok(ExitCode::SUCCESS)
}

/// One input to `invoke`: a name for the report and the JSON text.
fn read_inputs(input: &str) -> anyhow::Result<Vec<(String, String)>> {
    if input == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the input from standard input")?;
        return Ok(vec![("stdin".into(), text)]);
    }
    let path = Path::new(input);
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read input directory {input}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("input directory {input} has no *.json files");
        }
        return files
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read input file {}", f.display()))?;
                Ok((
                    f.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    text,
                ))
            })
            .collect();
    }
    match input.strip_prefix('@') {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read input file {file}"))?;
            let name = Path::new(file)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            Ok(vec![(name, text)])
        }
        None if serde_json::from_str::<serde_json::Value>(input).is_err()
            && Path::new(input).is_file() =>
        {
            bail!(
                "--input {input:?} is not JSON, but names a file: write --input @{input} to read it"
            )
        }
        None => Ok(vec![("input".into(), input.to_string())]),
    }
}

/// The expected result for input `name`.
fn expected(expect: &Path, name: &str) -> anyhow::Result<serde_json::Value> {
    let file = if expect.is_dir() {
        expect.join(name)
    } else {
        expect.to_path_buf()
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read expected result {}", file.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("expected result {} is not JSON", file.display()))
}

/// True if `got` is what `want` describes. An expected failure that names
/// only its `error` matches any cause, so one expected file can cover
/// handlers in different languages whose parse errors read differently.
fn matches_expected(want: &serde_json::Value, got: &serde_json::Value) -> bool {
    match want.as_object() {
        Some(w) if w.len() == 1 && w.contains_key("error") => {
            got.get("error") == w.get("error") && got.get("cause").is_some()
        }
        _ => want == got,
    }
}

/// Loads a component for local runs; `Err` carries the exit status after
/// printing why it could not be loaded.
async fn load_local(
    component: &str,
    fetch: &FetchArgs,
    limits: TaskLimits,
) -> anyhow::Result<Result<LocalHandler, ExitCode>> {
    let component = match fetch.reference(component) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Err(ExitCode::from(2)));
        }
    };
    match LocalHandler::load(&component, limits, &fetch.insecure).await {
        Ok(handler) => Ok(Ok(handler)),
        Err(e @ (LocalError::Load(_) | LocalError::Fetch(_))) => {
            eprintln!("error: {e:#}");
            Ok(Err(ExitCode::from(2)))
        }
        Err(e) => Err(e.into()),
    }
}

/// What `push` publishes to.
const PUSH_TARGETS: &str = "oci://REGISTRY/REPOSITORY:TAG or s3://BUCKET/KEY";

/// `push`: publishes a component; see [`Command::Push`].
async fn push(file: &Path, target: &str, insecure: &[String]) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let target = match Source::parse(target, &cwd) {
        Ok(t @ (Source::Oci(_) | Source::S3(_))) => t,
        Ok(_) => {
            eprintln!("error: push target {target:?}: expected {PUSH_TARGETS}");
            return Ok(ExitCode::from(2));
        }
        Err(e) if !target.starts_with("oci://") && !target.starts_with("s3://") => {
            eprintln!("error: push target {target:?}: expected {PUSH_TARGETS} ({e})");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("error: push target {target:?}: expected {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // Refuse what the worker would refuse, before publishing it.
    let limits = TaskLimits::default();
    if let Err(e) = LocalHandler::load(&ComponentRef::file(file), limits, &[]).await {
        eprintln!("error: {e:#}; not pushed");
        return Ok(ExitCode::from(2));
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let fetcher = wasm_activity_worker::local::local_fetcher(&target, insecure).await;
    match fetcher.push(bytes, &target).await {
        Ok(pushed) => {
            println!("pushed {} to {target}", file.display());
            println!("  digest:   {}", pushed.digest);
            println!("  revision: {}", pushed.revision);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn replay(
    dir: &Path,
    component: &str,
    fetch: &FetchArgs,
    limits: TaskLimits,
) -> anyhow::Result<ExitCode> {
    let recordings = wasm_activity_worker::record::read_dir(dir)
        .with_context(|| format!("cannot read recordings in {}", dir.display()))?;
    if recordings.is_empty() {
        bail!("{} holds no recordings (*.json)", dir.display());
    }
    let handler = match load_local(component, fetch, limits).await? {
        Ok(handler) => handler,
        Err(code) => return Ok(code),
    };
    let mut changed = 0;
    for (path, rec) in &recordings {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let report = handler.run(&name, &rec.input.to_string()).await;
        let mut now =
            wasm_activity_worker::record::result_of(&report).unwrap_or(serde_json::Value::Null);
        wasm_activity_worker::record::redact(&mut now, &rec.redacted);
        if now == rec.result {
            println!("same    {name}");
        } else {
            changed += 1;
            println!(
                "changed {name}\n  recorded (version {}): {}\n  now (version {}):      {}",
                Inert(&rec.version),
                escape_json(&rec.result.to_string()),
                handler.version(),
                escape_json(&now.to_string())
            );
        }
    }
    println!("{} recordings, {changed} changed", recordings.len());
    Ok(if changed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn invoke(
    component: &str,
    fetch: &FetchArgs,
    input: &str,
    expect: Option<&Path>,
    limits: TaskLimits,
) -> anyhow::Result<ExitCode> {
    // Inputs that cannot be read are "could not run" (2), not a failed
    // task (1): a script must be able to tell them apart.
    let could_not_run = |e: anyhow::Error| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    };
    let inputs = match read_inputs(input) {
        Ok(inputs) => inputs,
        Err(e) => return Ok(could_not_run(e)),
    };
    let handler = match load_local(component, fetch, limits).await? {
        Ok(handler) => handler,
        Err(code) => return Ok(code),
    };
    let single = inputs.len() == 1 && expect.is_none();
    let mut all_ok = true;
    for (name, text) in &inputs {
        let (ok, result, shown) = match invoke_outcome(handler.run(name, text).await, single) {
            Ok(shown) => shown,
            Err(e) => return Ok(could_not_run(e)),
        };
        match expect {
            Some(expect) => {
                let want = match expected(expect, name) {
                    Ok(want) => want,
                    Err(e) => return Ok(could_not_run(e)),
                };
                if matches_expected(&want, &result) {
                    println!("PASS {name}");
                } else {
                    all_ok = false;
                    println!(
                        "FAIL {name}\n  expected: {}\n  got:      {}",
                        escape_json(&want.to_string()),
                        escape_json(&result.to_string())
                    );
                }
            }
            None if single => println!("{shown}"),
            None => {
                all_ok &= ok;
                println!("{name}: {shown}");
            }
        }
        if single {
            all_ok = ok;
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What `invoke` shows for one task: whether it succeeded, its result as
/// JSON, and the line to print. A task stopped without a result (canceled,
/// or ended elsewhere) has none: it could not be run, exit 2 in the
/// exit-code table, not a failed task (1).
fn invoke_outcome(
    report: Report,
    single: bool,
) -> anyhow::Result<(bool, serde_json::Value, String)> {
    match report {
        Report::Success { output } => {
            let value = serde_json::from_str(&output).unwrap_or(serde_json::Value::Null);
            Ok((true, value, shown_output(output)))
        }
        Report::Failure { error, cause } => {
            if single {
                eprintln!("task failed: {}: {}", Inert(&error), Inert(&cause));
            }
            let value = serde_json::json!({ "error": error, "cause": cause });
            let shown = escape_json(&value.to_string()).into_owned();
            Ok((false, value, shown))
        }
        Report::Canceled { details } | Report::Nothing { reason: details } => {
            bail!("the task was stopped without a result: {}", Inert(&details))
        }
    }
}

/// A handler's (valid JSON) output as `invoke` prints it: as it is, unless
/// it holds a line break or control character (JSON allows some between
/// tokens, and DEL, C1 and U+2028 inside strings), then re-written
/// compactly with those escaped: the same JSON value on one inert line.
fn shown_output(output: String) -> String {
    if is_inert(&output) {
        return output;
    }
    match serde_json::from_str::<serde_json::Value>(&output) {
        Ok(value) => escape_json(&value.to_string()).into_owned(),
        Err(_) => wasm_activity_worker::redact::escape(&output).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Report, invoke_outcome, matches_expected, shown_output};
    use serde_json::json;

    #[test]
    fn invoke_prints_a_handlers_output_on_one_inert_line() {
        assert_eq!(shown_output(r#"{"a":1}"#.into()), r#"{"a":1}"#);
        let evil = "{\"a\":\r\n\"x\u{85}\u{2028}\"}";
        let shown = shown_output(evil.into());
        assert_eq!(shown, r#"{"a":"x\u0085\u2028"}"#);
        assert!(wasm_activity_worker::redact::is_inert(&shown));
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(evil).unwrap()
        );
    }

    #[test]
    fn a_stopped_task_could_not_be_run_and_a_failed_one_failed() {
        for stopped in [
            Report::Canceled {
                details: "asked".into(),
            },
            Report::Nothing {
                reason: "gone".into(),
            },
        ] {
            let e = invoke_outcome(stopped, true).unwrap_err();
            assert!(e.to_string().contains("stopped without a result"), "{e}");
        }
        let failed = Report::Failure {
            error: "E".into(),
            cause: "c".into(),
        };
        assert!(!invoke_outcome(failed, false).unwrap().0);
    }

    #[test]
    fn an_expected_error_name_alone_matches_any_cause() {
        let got = json!({"error": "InvalidInput", "cause": "expected an object"});
        assert!(matches_expected(&json!({"error": "InvalidInput"}), &got));
        assert!(!matches_expected(&json!({"error": "InvalidOrder"}), &got));
        assert!(!matches_expected(
            &json!({"error": "InvalidInput", "cause": "something else"}),
            &got
        ));
        // A successful output is compared whole.
        assert!(matches_expected(&json!({"a": 1}), &json!({"a": 1})));
        assert!(!matches_expected(
            &json!({"error": "E"}),
            &json!({"error": "E"})
        ));
    }
}
