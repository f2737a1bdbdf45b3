//! `dev` checks its arguments before it starts anything: a command line
//! that cannot run fails with an error naming the flag, the value and the
//! choices, never with a panic, and no endpoint, worker or component load.

use crate::support::{activity_toml, binary, guests};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `dev` with `args`; returns (exit code, stdout, stderr). Fails if
/// it has not exited within a minute (it must not start serving).
fn dev(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(binary())
        .args(["dev", "--port", "0", "--config"])
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("running wasm-activity dev");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dev {args:?} still running after 60 s; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code(),
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
    )
}

#[test]
fn dev_with_several_activities_and_no_or_a_wrong_activity_fails_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    let scenario = &guests().scenario;
    std::fs::write(
        &config,
        format!(
            "{}{}",
            activity_toml(
                "price",
                "arn:aws:states:us-east-1:000000000000:activity:price",
                scenario,
                ""
            ),
            activity_toml(
                "ship",
                "arn:aws:states:us-east-1:000000000000:activity:ship",
                scenario,
                ""
            )
        ),
    )
    .unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"action": "echo", "value": 1}"#).unwrap();
    let input = input.to_str().unwrap();
    let cases: [(&[&str], String); 2] = [
        (
            &["--input", input],
            format!(
                "error: --activity is needed with --input: {} has 2 Step Functions activities; say which \
                 one the inputs are for with --activity NAME, one of: price, ship",
                config.display()
            ),
        ),
        (
            &["--input", input, "--activity", "pirce"],
            format!(
                "error: --activity \"pirce\": {} has no [activity.pirce] table; choose one of: price, ship",
                config.display()
            ),
        ),
    ];
    // The panic was a race with the worker's start-up: repeat each case.
    for (args, expected) in &cases {
        for run in 0..5 {
            let (code, stdout, stderr) = dev(&config, args);
            assert_eq!(code, Some(1), "run {run} of {args:?}: {stderr}");
            assert_eq!(stderr.trim_end(), expected, "run {run} of {args:?}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(
                stdout.is_empty(),
                "nothing started, nothing printed: {stdout}"
            );
        }
    }
}

#[test]
fn dev_refuses_inputs_it_cannot_read_and_activity_without_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        activity_toml(
            "price",
            "arn:aws:states:us-east-1:000000000000:activity:price",
            &guests().scenario,
            "",
        ),
    )
    .unwrap();
    let missing = dir.path().join("missing.json");
    let (code, _, stderr) = dev(&config, &["--input", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: --input {}: cannot read it: ",
            missing.display()
        )),
        "{stderr}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, stderr) = dev(&config, &["--input", empty.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: --input {}: no input files",
            empty.display()
        )),
        "{stderr}"
    );
    // --activity only says where inputs go; alone it is a usage error.
    let (code, _, stderr) = dev(&config, &["--activity", "price"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--input"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
