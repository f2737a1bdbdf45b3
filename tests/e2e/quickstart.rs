//! The README's Quickstart, run as written, top to bottom, from an empty
//! directory: the commands are read from the README itself, so a step that
//! stops working, or moves out of order, fails here.

use crate::support::{binary, repo_root};

/// The one Quickstart line the test does not run: it installs the host,
/// which this test run has just built (and puts on PATH instead).
const INSTALL: &str = "cargo install --locked --path crates/cli";

/// The shell commands of the README's Quickstart, in order.
fn quickstart_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("<!-- quickstart:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- quickstart:end -->").next())
        .expect("README.md marks its Quickstart with quickstart:begin/end comments");
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            _ if in_sh && !line.trim().is_empty() => commands.push(line.to_string()),
            _ => {}
        }
    }
    commands
}

#[test]
fn quickstart_runs_as_written_from_an_empty_directory() {
    let commands = quickstart_commands();
    assert_eq!(
        commands.iter().filter(|c| c.starts_with(INSTALL)).count(),
        1,
        "the Quickstart installs the host with `{INSTALL}`: {commands:#?}"
    );
    let mut script = String::from("set -euo pipefail\n");
    for c in &commands {
        if !c.starts_with(INSTALL) {
            script.push_str(&format!("echo '+ {}'\n{c}\n", c.replace('\'', "")));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // The binary under test, on PATH under the name the README uses
    // (WASM_ACTIVITY_TEST_BIN may name a copy called something else).
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(binary(), bin.path().join("wasm-activity")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        // The handler's dependencies are built once per test run, not per test.
        .env("CARGO_TARGET_DIR", repo_root().join("target/scaffold"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Quickstart failed:\n{stdout}\n{stderr}"
    );
    for expected in [
        "PASS input.json",
        "input.json: SUCCEEDED",
        "activity greet: ok",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in:\n{stdout}\n{stderr}"
        );
    }
}
