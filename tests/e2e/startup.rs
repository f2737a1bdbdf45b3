//! What `run` says about the AWS configuration it starts with, and what it
//! refuses: a worker without credentials or region must stop with the fix,
//! not look alive while every poll fails.

use crate::support::{Backend, Service, Sfn, Worker, activity_toml, binary, fired, guests};
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
        "region_from=config file",
        &format!("endpoint={}", svc.url),
        "endpoint_from=config file",
        "credentials=environment (AWS_ACCESS_KEY_ID)",
        "worker=",
    ] {
        assert!(line.contains(expected), "missing {expected} in {line}");
    }
}

/// Runs `run` for a config without `region` and `endpoint` under `env`
/// (and `profile` as the AWS config file); returns its AWS configuration
/// line. No endpoint is ever called: the metrics address is taken, so `run`
/// stops right after that line, before any poll.
fn start_up_line(env: &[(&str, &str)], profile: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::fs::write(
        &config,
        format!(
            "worker_name = \"told-worker\"\nmetrics_addr = \"{}\"\n{}",
            taken.local_addr().unwrap(),
            activity_toml(
                "told",
                "arn:aws:states:eu-west-2:000000000000:activity:told",
                &guests().scenario,
                ""
            )
        ),
    )
    .unwrap();
    let aws_config = dir.path().join("aws-config");
    std::fs::write(&aws_config, profile.unwrap_or("")).unwrap();
    let log = dir.path().join("log");
    let mut cmd = Command::new(binary());
    cmd.args(["run", "--config"])
        .arg(&config)
        .env_clear()
        .env("HOME", dir.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", &aws_config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "AKIDSTARTUP")
        .env("AWS_SECRET_ACCESS_KEY", "s3cr3t-startup")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "run did not stop:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("cannot serve metrics"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("AWS configuration"))
        .unwrap_or_else(|| panic!("no AWS configuration line:\n{text}"))
        .to_string();
    assert!(
        !line.contains("s3cr3t") && !line.contains("AKIDSTARTUP"),
        "a secret part in {line}"
    );
    assert!(line.contains("worker=told-worker"), "{line}");
    line
}

#[test]
fn start_up_names_the_endpoint_and_region_source_in_use() {
    let closed = "http://127.0.0.1:1";
    // (environment, AWS config file, what the line says)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a [&'a str]);
    let cases: [Case; 4] = [
        (
            &[("AWS_REGION", "eu-west-2"), ("AWS_ENDPOINT_URL", closed)],
            None,
            &[
                "region_from=AWS_REGION",
                "endpoint=http://127.0.0.1:1",
                "endpoint_from=AWS_ENDPOINT_URL",
            ],
        ),
        (
            &[
                ("AWS_DEFAULT_REGION", "eu-west-2"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:2"),
                ("AWS_ENDPOINT_URL_SFN", closed),
            ],
            None,
            &[
                "region_from=AWS_DEFAULT_REGION",
                "endpoint=http://127.0.0.1:1",
                "endpoint_from=AWS_ENDPOINT_URL_SFN",
            ],
        ),
        (
            &[("AWS_PROFILE", "ops")],
            Some("[profile ops]\nregion = eu-west-2\n"),
            &[
                "region_from=profile ops",
                "endpoint=AWS",
                "endpoint_from=none set",
            ],
        ),
        (
            &[],
            Some("[default]\nregion = eu-west-2\nendpoint_url = http://127.0.0.1:1\n"),
            &[
                "region_from=profile default",
                "endpoint=http://127.0.0.1:1",
                "endpoint_from=profile default",
            ],
        ),
    ];
    for (env, profile, expected) in cases {
        let line = start_up_line(env, profile);
        for e in expected {
            assert!(
                line.contains(e),
                "{env:?} {profile:?}: missing {e} in {line}"
            );
        }
    }
}

/// Refused credentials are said once per change, not per refusal: a
/// worker whose keys were revoked would else bury the fix in repeats.
#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_are_said_once_per_change() {
    let svc = Service::embedded("1s");
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("refused").await;
    let refusals = 30;
    let refuse = |code: &str| {
        serde_json::json!({"op": "GetActivityTask", "fault": "error", "code": code,
            "status": 400, "count": refusals})
    };
    svc.add_fault(refuse("UnrecognizedClientException")).await;
    let worker = Worker::start(
        &activity_toml(
            "refused",
            &activity,
            &guests().scenario,
            "pollers = 10\nmax_concurrent = 10",
        ),
        &svc,
    );
    let said = |worker: &Worker| {
        worker
            .log()
            .lines()
            .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && l.contains("credentials"))
            .count()
    };
    let all_fired = |want: u64| {
        let svc = &svc;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let faults = svc.faults().await;
                if fired(&faults, "GetActivityTask", "error") == want {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "refusals not all given: {faults}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    all_fired(refusals).await;
    let mut worker = worker;
    // Accepted again: the poller says it recovered.
    worker.wait_for_log("works again", Duration::from_secs(90));
    let first = said(&worker);
    // One warning (fetching again) and one poll error with the fix.
    assert!((1..=2).contains(&first), "{first} lines:\n{}", worker.log());
    assert_eq!(
        worker.log_count("refused the worker's credentials; fetching"),
        1
    );

    // After an acceptance, a new run of refusals is news once more.
    svc.clear_faults().await;
    svc.add_fault(refuse("ExpiredTokenException")).await;
    all_fired(refusals).await;
    let second = said(&worker);
    assert!(
        (first + 1..=first + 2).contains(&second),
        "{first} then {second} lines:\n{}",
        worker.log()
    );
    assert_eq!(
        worker.log_count("refused the worker's credentials; fetching"),
        2
    );
}
