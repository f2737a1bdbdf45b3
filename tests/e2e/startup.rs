//! What `run` says about the AWS configuration it starts with, and what it
//! refuses: a worker without credentials or region must stop with the fix,
//! not look alive while every poll fails.

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, binary, guests};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `run` with no AWS settings but `env`: no credentials, no profile
/// files, no instance metadata. Fails the test if it is still running after
/// 30 s (a retry loop instead of an error).
fn run_bare(region: bool, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    let region = if region {
        "region = \"us-east-1\"\n"
    } else {
        ""
    };
    std::fs::write(
        &config,
        format!(
            "{region}endpoint = \"http://127.0.0.1:1\"\n{}",
            activity_toml(
                "bare",
                "arn:aws:states:us-east-1:000000000000:activity:bare",
                &guests().scenario,
                ""
            )
        ),
    )
    .unwrap();
    let none = dir.path().join("none");
    let mut cmd = Command::new(binary());
    cmd.args(["run", "--config"])
        .arg(&config)
        .env_clear()
        .env("HOME", dir.path())
        .env("AWS_CONFIG_FILE", &none)
        .env("AWS_SHARED_CREDENTIALS_FILE", &none)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "run kept going without credentials:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn run_without_credentials_stops_with_the_fix() {
    let out = run_bare(true, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no usable AWS credentials"), "{stderr}");
    assert!(stderr.contains("AWS_ACCESS_KEY_ID"), "{stderr}");
    assert!(!stderr.contains("worker running"), "{stderr}");
}

#[test]
fn an_unknown_profile_is_named() {
    // With a region, the profile's credentials are what is missing.
    let out = run_bare(true, &[("AWS_PROFILE", "nope")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no usable AWS credentials") && stderr.contains("AWS_PROFILE is \"nope\""),
        "{stderr}"
    );
    // Without one, the region is missing, and the profile is the suspect.
    let out = run_bare(false, &[("AWS_PROFILE", "nope")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no AWS region configured") && stderr.contains("AWS_PROFILE is \"nope\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn start_up_logs_region_endpoint_and_credential_source() {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("told").await;
    let worker = Worker::start(
        &activity_toml("told", &activity, &guests().scenario, ""),
        &svc,
    );
    let line = worker
        .log()
        .lines()
        .find(|l| l.contains("AWS configuration"))
        .unwrap_or_else(|| panic!("no AWS configuration line:\n{}", worker.log()))
        .to_string();
    for expected in [
        "region=us-east-1",
        "region_from=\"config file\"",
        &format!("endpoint=\"{}\"", svc.url),
        "credentials=environment (AWS_ACCESS_KEY_ID)",
    ] {
        assert!(line.contains(expected), "missing {expected} in {line}");
    }
}
