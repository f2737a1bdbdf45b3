//! The native baseline: the Step Functions activity worker a team would
//! write by hand in Rust, with the same AWS SDK client the host uses and the
//! same pricing code the example guest runs (`order_pricing::price` through
//! `wasm_activity_guest::call`, so parsing and serializing match too).
//!
//! `native-worker --endpoint URL --arn ARN --concurrency N [--work WORK]`
//! runs N poll loops (one task each at a time) until killed. WORK is
//! `price` (the default), `sleep20`, or `sleep:MS`, optionally followed by
//! `,heartbeat:MS` to heartbeat while a task runs, as a hand-written worker
//! would.

use aws_sdk_sfn::Client;
use clap::Parser;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    arn: String,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// `price`: the order-pricing transform; `sleep20` or `sleep:MS`: wait
    /// (I/O-like); `,heartbeat:MS` adds heartbeats.
    #[arg(long, default_value = "price")]
    work: String,
}

/// What each task does.
#[derive(Clone, Copy)]
struct Work {
    /// None: price the order; Some: sleep this long.
    sleep: Option<Duration>,
    heartbeat: Option<Duration>,
}

fn parse_work(spec: &str) -> Work {
    let mut work = Work {
        sleep: None,
        heartbeat: None,
    };
    for part in spec.split(',') {
        let ms = |v: &str| Duration::from_millis(v.parse().expect("WORK: milliseconds"));
        match part.split_once(':') {
            None if part == "price" => {}
            None if part == "sleep20" => work.sleep = Some(Duration::from_millis(20)),
            Some(("sleep", v)) => work.sleep = Some(ms(v)),
            Some(("heartbeat", v)) => work.heartbeat = Some(ms(v)),
            _ => panic!(
                "unknown --work part {part:?} (expected price, sleep20, sleep:MS, heartbeat:MS)"
            ),
        }
    }
    work
}

async fn client(endpoint: &str) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .read_timeout(Duration::from_secs(70))
                .build(),
        )
        .load()
        .await;
    Client::new(&config)
}

async fn poll_loop(client: Client, arn: String, work: Work) {
    loop {
        let task = match client
            .get_activity_task()
            .activity_arn(&arn)
            .worker_name("native-worker")
            .send()
            .await
        {
            Ok(task) => task,
            Err(e) => {
                eprintln!(
                    "poll failed: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(e)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(token) = task.task_token().filter(|t| !t.is_empty()) else {
            continue;
        };
        let input = task.input().unwrap_or("{}");
        let run = async {
            match work.sleep {
                Some(d) => {
                    tokio::time::sleep(d).await;
                    Ok(format!(r#"{{"slept_ms":{}}}"#, d.as_millis()))
                }
                None => wasm_activity_guest::call(order_pricing::price, input),
            }
        };
        let result = match work.heartbeat {
            None => run.await,
            Some(every) => {
                tokio::pin!(run);
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tokio::select! {
                        r = &mut run => break r,
                        _ = tick.tick() => {
                            if let Err(e) = client.send_task_heartbeat().task_token(token).send().await {
                                eprintln!("heartbeat failed: {}", aws_sdk_sfn::error::DisplayErrorContext(e));
                            }
                        }
                    }
                }
            }
        };
        let sent = match result {
            Ok(output) => client
                .send_task_success()
                .task_token(token)
                .output(output)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_sfn::error::DisplayErrorContext(e).to_string()),
            Err(f) => client
                .send_task_failure()
                .task_token(token)
                .error(f.error)
                .cause(f.cause)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_sfn::error::DisplayErrorContext(e).to_string()),
        };
        if let Err(e) = sent {
            eprintln!("report failed: {e}");
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = client(&args.endpoint).await;
    let work = parse_work(&args.work);
    let mut loops = Vec::new();
    for _ in 0..args.concurrency {
        loops.push(tokio::spawn(poll_loop(
            client.clone(),
            args.arn.clone(),
            work,
        )));
    }
    for l in loops {
        let _ = l.await;
    }
}
