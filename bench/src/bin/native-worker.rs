//! The native baseline: the Step Functions activity worker a team would
//! write by hand in Rust, with the same AWS SDK client the host uses and the
//! same pricing code the example guest runs (`order_pricing::price` through
//! `wasm_activity_guest::call`, so parsing and serializing match too).
//!
//! `native-worker --endpoint URL --arn ARN --concurrency N [--work price|sleep20]`
//! runs N poll loops (one task each at a time) until killed.

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
    /// `price`: the order-pricing transform; `sleep20`: wait 20 ms (I/O-like).
    #[arg(long, default_value = "price")]
    work: String,
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

async fn poll_loop(client: Client, arn: String, sleep: bool) {
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
        let result = if sleep {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(r#"{"slept_ms":20}"#.to_string())
        } else {
            wasm_activity_guest::call(order_pricing::price, input)
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
    let sleep = args.work == "sleep20";
    let mut loops = Vec::new();
    for _ in 0..args.concurrency {
        loops.push(tokio::spawn(poll_loop(
            client.clone(),
            args.arn.clone(),
            sleep,
        )));
    }
    for l in loops {
        let _ = l.await;
    }
}
