//! `wasm-activity invoke`: one task, locally, through the real binary.

use crate::support::{guests, run_cli, stderr, stdout};
use serde_json::{Value, json};

fn invoke(component: &std::path::Path, input: &str, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["invoke", component.to_str().unwrap(), "--input", input];
    args.extend_from_slice(extra);
    let out = run_cli(&args);
    let code = out.status.code().unwrap();
    let json = serde_json::from_str(stdout(&out).trim()).unwrap_or(Value::Null);
    (code, json, stderr(&out))
}

fn scenario(input: Value, extra: &[&str]) -> (i32, Value, String) {
    invoke(&guests().scenario, &input.to_string(), extra)
}

#[test]
fn example_prices_an_order() {
    let input = format!(
        "@{}",
        crate::support::repo_root()
            .join("examples/orders/input.json")
            .display()
    );
    let (code, out, err) = invoke(&guests().example, &input, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["total_cents"], 6010);
    assert_eq!(out["discount_cents"], 982);
    assert_eq!(
        out["lines"][0],
        json!({"sku": "WIDGET-1", "quantity": 3, "line_total_cents": 5997})
    );
}

#[test]
fn example_rejects_an_invalid_order() {
    let input = json!({"order_id": "B-1", "currency": "usd", "customer": {"tier": "standard"}, "items": []});
    let (code, out, _) = invoke(&guests().example, &input.to_string(), &[]);
    assert_eq!(code, 1);
    assert_eq!(out["error"], "InvalidOrder");
    assert_eq!(out["cause"], "order B-1 has no items");
}

#[test]
fn input_that_is_not_json_is_invalid_input() {
    let (code, out, _) = invoke(&guests().scenario, "{not json", &[]);
    assert_eq!(code, 1);
    assert_eq!(out["error"], "InvalidInput");
    assert!(
        out["cause"]
            .as_str()
            .unwrap()
            .contains("task input is not valid"),
        "{out}"
    );
}

#[test]
fn panic_is_a_trap_with_the_panic_message_and_backtrace() {
    let (code, out, _) = scenario(json!({"action": "panic", "message": "kaboom-42"}), &[]);
    assert_eq!(code, 1);
    assert_eq!(out["error"], "WasmActivity.Trap");
    let cause = out["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("wasm trap: wasm `unreachable` instruction executed"),
        "{cause}"
    );
    assert!(cause.contains("kaboom-42"), "{cause}");
    assert!(cause.contains("wasm backtrace"), "{cause}");
}

#[test]
fn runaway_recursion_traps_with_a_bounded_backtrace() {
    let (code, out, _) = scenario(json!({"action": "recurse"}), &[]);
    assert_eq!(code, 1);
    assert_eq!(out["error"], "WasmActivity.Trap");
    let cause = out["cause"].as_str().unwrap();
    assert!(cause.lines().count() < 60, "{cause}");
}

#[test]
fn spinning_guest_is_stopped_at_its_timeout() {
    let started = std::time::Instant::now();
    let (code, out, _) = scenario(json!({"action": "spin"}), &["--timeout", "1s"]);
    assert_eq!(code, 1);
    assert_eq!(out["error"], "WasmActivity.Timeout");
    assert!(
        out["cause"].as_str().unwrap().contains("time limit of 1s"),
        "{out}"
    );
    assert!(
        out["cause"].as_str().unwrap().contains("--timeout"),
        "{out}"
    );
    // Generous bound: the point is that it stops, not how fast on a noisy box.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn sleeping_guest_is_stopped_at_its_timeout() {
    let (code, out, _) = scenario(
        json!({"action": "sleep", "ms": 60000}),
        &["--timeout", "1s"],
    );
    assert_eq!(code, 1);
    assert_eq!(out["error"], "WasmActivity.Timeout");
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let (code, out, _) = scenario(
        json!({"action": "alloc", "mib": 64}),
        &["--memory-limit", "16MiB"],
    );
    assert_eq!(code, 1);
    assert_eq!(out["error"], "WasmActivity.MemoryLimit");
    let cause = out["cause"].as_str().unwrap();
    assert!(cause.contains("memory limit is 16.0 MiB"), "{cause}");
    assert!(cause.contains("--memory-limit"), "{cause}");
}

#[test]
fn allocation_within_the_limit_succeeds() {
    let (code, out, err) = scenario(
        json!({"action": "alloc", "mib": 8}),
        &["--memory-limit", "32MiB"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["allocated_mib"], 8);
}

#[test]
fn guest_output_becomes_host_log_lines_tagged_with_the_task() {
    let out = crate::support::run_cli_env(
        &[
            "invoke",
            guests().scenario.to_str().unwrap(),
            "--input",
            r#"{"action":"print","lines":3}"#,
        ],
        &[("RUST_LOG", "info")],
    );
    assert!(out.status.success());
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("stdout line") || l.contains("stderr line"))
        .collect();
    assert_eq!(lines.len(), 6, "{err}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("task=\"input\"") && l.contains("guest")),
        "{err}"
    );
}

#[test]
fn missing_component_is_a_clear_error() {
    let (code, _, err) = invoke(std::path::Path::new("/nonexistent/handler.wasm"), "{}", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read component /nonexistent/handler.wasm"),
        "{err}"
    );
}

#[test]
fn a_directory_of_inputs_is_checked_against_expected_results() {
    let root = crate::support::repo_root();
    let component = guests().example.to_str().unwrap().to_string();
    let inputs = root.join("examples/orders/inputs");
    let expected = root.join("examples/orders/expected");
    let out = run_cli(&[
        "invoke",
        &component,
        "--input",
        inputs.to_str().unwrap(),
        "--expect",
        expected.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let files = std::fs::read_dir(&inputs).unwrap().count();
    assert!(files >= 9, "examples/orders/inputs lost files");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("PASS ")).count(),
        files,
        "{text}"
    );

    // A changed expectation is reported with both values, and fails the run.
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&expected).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let ok = dir.path().join("order-ok.json");
    let mut want: Value = serde_json::from_str(&std::fs::read_to_string(&ok).unwrap()).unwrap();
    want["total_cents"] = json!(1);
    std::fs::write(&ok, want.to_string()).unwrap();
    let out = run_cli(&[
        "invoke",
        &component,
        "--input",
        inputs.to_str().unwrap(),
        "--expect",
        dir.path().to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL order-ok.json\n  expected: "), "{text}");
    assert!(text.contains("\"total_cents\":6010"), "{text}");
    assert!(text.contains("PASS order-empty.json"), "{text}");
}

#[test]
fn a_directory_of_inputs_prints_one_result_per_file() {
    let root = crate::support::repo_root();
    let out = run_cli(&[
        "invoke",
        guests().example.to_str().unwrap(),
        "--input",
        root.join("examples/orders/inputs").to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "some example orders are invalid:\n{text}"
    );
    assert!(
        text.contains("order-ok.json: {\"order_id\":\"A-1001\""),
        "{text}"
    );
    assert!(
        text.contains("order-empty.json: {\"error\":\"InvalidOrder\""),
        "{text}"
    );
}

#[test]
fn input_dash_reads_standard_input() {
    use std::io::Write;
    let mut child = std::process::Command::new(crate::support::binary())
        .args([
            "invoke",
            guests().scenario.to_str().unwrap(),
            "--input",
            "-",
        ])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"action": "echo", "value": 7}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "7");
}

/// An input or expected file that cannot be read is "could not run" (2),
/// not a failed task (1).
#[test]
fn unreadable_inputs_exit_2_not_1() {
    let (code, _, err) = scenario_raw("@/nonexistent/input.json", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot read input file /nonexistent/input.json"),
        "{err}"
    );
    let (code, _, err) = scenario_raw(
        r#"{"action": "echo", "value": 1}"#,
        &["--expect", "/nonexistent/expected.json"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read expected result"), "{err}");
}

fn scenario_raw(input: &str, extra: &[&str]) -> (i32, Value, String) {
    invoke(&guests().scenario, input, extra)
}

/// A file name given without `@` is not sent to the handler as text.
#[test]
fn a_file_name_without_at_gets_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.json");
    std::fs::write(&file, r#"{"action": "echo", "value": 1}"#).unwrap();
    let (code, _, err) = scenario_raw(file.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("write --input @"), "{err}");
}
