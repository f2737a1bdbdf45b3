//! The full stack: the same workers against a real Step Functions
//! implementation (the embedded endpoint, and LocalStack when given), driven
//! by executions of a one-state machine, so every task also costs the
//! service its execution bookkeeping.

use crate::Bench;
use crate::sections::HOST_DEFAULT;
use crate::workers::{self, HostOptions, Kind};
use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::ExecutionStatus;
use std::fmt::Write as _;
use std::io::BufRead;
use std::time::{Duration, Instant};

/// A Step Functions client for `url` with dummy credentials.
pub(crate) fn client(url: &str) -> Client {
    let config = aws_sdk_sfn::config::Builder::new()
        .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
        .region(aws_sdk_sfn::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .build();
    Client::from_conf(config)
}

/// Starts `tasks` executions for one worker and waits for all of them.
async fn one(
    b: &Bench,
    sfn: &Client,
    url: &str,
    kind: Kind,
    tasks: usize,
    input: &str,
) -> anyhow::Result<(f64, f64, usize)> {
    let name = format!("bench-{}-{}", kind.short(), std::process::id());
    let activity = sfn
        .create_activity()
        .name(&name)
        .send()
        .await?
        .activity_arn()
        .to_string();
    let definition = serde_json::json!({
        "StartAt": "Price",
        "States": { "Price": { "Type": "Task", "Resource": activity, "TimeoutSeconds": 300, "End": true } }
    });
    let machine = sfn
        .create_state_machine()
        .name(&name)
        .role_arn("arn:aws:iam::000000000000:role/bench")
        .definition(definition.to_string())
        .send()
        .await?
        .state_machine_arn()
        .to_string();
    let host: HostOptions = HOST_DEFAULT(&b.paths);
    let worker = workers::start(&b.paths, kind, url, &activity, 16, "price", &host)?;
    let cpu_before = worker.cpu_ns();
    let started = Instant::now();
    let mut executions = Vec::new();
    for _ in 0..tasks {
        executions.push(
            sfn.start_execution()
                .state_machine_arn(&machine)
                .input(input)
                .send()
                .await?
                .execution_arn()
                .to_string(),
        );
    }
    let mut succeeded = 0;
    let deadline = Instant::now() + Duration::from_secs(900);
    for e in &executions {
        loop {
            let d = sfn.describe_execution().execution_arn(e).send().await?;
            match d.status() {
                ExecutionStatus::Running => {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "executions still running after 15 minutes"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                ExecutionStatus::Succeeded => {
                    succeeded += 1;
                    break;
                }
                _ => break,
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_us = (worker.cpu_ns() - cpu_before) as f64 / 1000.0 / tasks as f64;
    Ok((tasks as f64 / elapsed, cpu_us, succeeded))
}

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let mut endpoint = std::process::Command::new(&b.paths.host)
        .args(["serve-local", "--port", "0", "--poll-timeout", "10s"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(endpoint.stdout.take().expect("piped"));
    stdout.read_line(&mut line)?;
    // Keep reading, so the endpoint never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let embedded = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow::anyhow!("unexpected serve-local output {line:?}"))?
        .to_string();
    let mut services = vec![(
        "embedded endpoint",
        embedded,
        if b.args.quick { 40 } else { 400 },
    )];
    if let Some(url) = b.args.localstack.clone() {
        services.push(("LocalStack", url, if b.args.quick { 10 } else { 100 }));
    }
    let input = crate::workload::orders(1024, 1)[0].input.to_string();
    b.md.push_str(
        "## Full stack: a real Step Functions implementation\n\nThe same workers (16 tasks in flight), each \
         serving its own activity while executions of a one-state machine are started for it; throughput \
         from the first StartExecution to the last execution seen succeeded. These rates are bounded by the \
         service implementation (LocalStack checks for new tasks about once a second), so read the CPU \
         column.\n\n| service | worker | executions | succeeded | tasks/s | worker CPU µs/task |\n|---|---|---:|---:|---:|---:|\n",
    );
    for (service, url, tasks) in services {
        let sfn = client(&url);
        for kind in [Kind::Host, Kind::Native, Kind::Boto3] {
            let (tps, cpu, ok) = one(b, &sfn, &url, kind, tasks, &input).await?;
            if ok < tasks {
                b.problem(format!(
                    "full stack, {service}: {}: {ok} of {tasks} executions succeeded",
                    kind.label()
                ));
            }
            let _ = writeln!(
                b.md,
                "| {service} | {} | {tasks} | {ok} | {tps:.0} | {cpu:.0} |",
                kind.label()
            );
        }
    }
    b.md.push('\n');
    let _ = endpoint.kill();
    let _ = endpoint.wait();
    Ok(())
}
