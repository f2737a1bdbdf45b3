//! Python, JavaScript and C handlers through the same host as Rust ones:
//! the order-pricing example gives identical results in every language, the
//! adversarial basics (trap, output that is not JSON, timeout) are reported
//! the same way, a JavaScript guest reaches an allowed HTTP server with
//! fetch() and a Python one through wasi:http, and nothing else, and
//! `wasm-activity new` projects build and pass
//! `invoke` in every language.

use crate::support::{
    Backend, Service, Sfn, Worker, activity_toml, cache_dir, polyglot, repo_root, run_cli, stdout,
};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

crate::per_backend!(
    [localstack => LocalStack, embedded => Embedded]
    [examples_give_identical_results_in_every_language, adversarial_basics_in_every_language]
);

/// The order inputs shared by the examples, as (file name, JSON).
fn order_inputs() -> Vec<(String, Value)> {
    let dir = repo_root().join("examples/orders/inputs");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect();
    inputs.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(inputs.len() >= 9, "examples/orders/inputs lost files");
    inputs
}

/// A result with an `InvalidInput` cause reduced to its error name: parse
/// errors read differently per language; everything else must match exactly.
fn comparable(result: Value) -> Value {
    if result.get("error") == Some(&json!("InvalidInput")) {
        json!({"error": "InvalidInput"})
    } else {
        result
    }
}

#[test]
fn invoke_gives_identical_results_in_every_language() {
    let root = repo_root();
    let mut by_language = BTreeMap::new();
    for (language, component) in &polyglot().examples {
        let out = run_cli(&[
            "invoke",
            component.to_str().unwrap(),
            "--input",
            root.join("examples/orders/inputs").to_str().unwrap(),
            "--expect",
            root.join("examples/orders/expected").to_str().unwrap(),
        ]);
        let text = stdout(&out);
        assert!(out.status.success(), "{language}: {text}");
        assert_eq!(
            text.matches("PASS ").count(),
            order_inputs().len(),
            "{language}: {text}"
        );

        // Without --expect: the printed results themselves, byte for byte.
        let out = run_cli(&[
            "invoke",
            component.to_str().unwrap(),
            "--input",
            root.join("examples/orders/inputs").to_str().unwrap(),
        ]);
        let lines: BTreeMap<String, Value> = stdout(&out)
            .lines()
            .map(|l| {
                let (name, json) = l.split_once(": ").unwrap();
                (
                    name.to_string(),
                    comparable(serde_json::from_str(json).unwrap()),
                )
            })
            .collect();
        by_language.insert(*language, (stdout(&out), lines));
    }
    let (rust_text, rust) = &by_language["rust"];
    for (language, (text, results)) in &by_language {
        assert_eq!(
            results, rust,
            "{language} differs from rust:\n{text}\nrust:\n{rust_text}"
        );
    }
    // Successful outputs are the same bytes, not just the same JSON.
    let ok_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("order-ok.json: "))
            .unwrap()
            .to_string()
    };
    for (language, (text, _)) in &by_language {
        assert_eq!(ok_line(text), ok_line(rust_text), "{language}");
    }
}

#[test]
fn check_reports_instantiate_time_per_language() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!(
        "endpoint = \"http://127.0.0.1:9\"\nregion = \"us-east-1\"\ncache_dir = \"{}\"\n",
        cache_dir().display()
    );
    for (language, component) in &polyglot().examples {
        let arn = format!("arn:aws:states:us-east-1:000000000000:activity:{language}");
        config.push_str(&activity_toml(
            language,
            &arn,
            component,
            "memory_limit = \"64MiB\"",
        ));
    }
    let path = dir.path().join("worker.toml");
    std::fs::write(&path, config).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("  instantiate:  first ").count(), 4, "{text}");
    for language in ["rust", "python", "js", "c"] {
        assert!(text.contains(&format!("activity {language}: ok")), "{text}");
    }
}

/// One worker serving each component on an activity of its own (named
/// after its language), with a one-state machine per activity.
async fn serve_each(
    svc: &Service,
    sfn: &Sfn,
    prefix: &str,
    components: &[(&'static str, std::path::PathBuf)],
    extra: &str,
) -> (Worker, Vec<(&'static str, String)>) {
    let mut config = format!("worker_name = \"polyglot-{prefix}\"\n");
    let mut machines = Vec::new();
    for (language, component) in components {
        let activity = sfn.create_activity(&format!("{prefix}-{language}")).await;
        machines.push((
            *language,
            sfn.create_state_machine(&activity, 300, None).await,
        ));
        config.push_str(&activity_toml(
            language,
            &activity,
            component,
            &format!("{extra}\nmemory_limit = \"64MiB\""),
        ));
    }
    (Worker::start(&config, svc), machines)
}

/// One worker serving the example in all four languages; every order goes
/// through every language's activity, and all four report the same result.
async fn examples_give_identical_results_in_every_language(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let (_worker, machines) = serve_each(
        &svc,
        &sfn,
        "price",
        &polyglot().examples,
        "max_concurrent = 4",
    )
    .await;

    let inputs = order_inputs();
    let mut executions = Vec::new();
    for (name, input) in &inputs {
        for (language, machine) in &machines {
            executions.push((name.clone(), *language, sfn.start(machine, input).await));
        }
    }
    let mut results: BTreeMap<String, BTreeMap<&str, Value>> = BTreeMap::new();
    for (name, language, execution) in executions {
        let done = sfn.wait(&execution, Duration::from_secs(240)).await;
        let result = match &done.status {
            ExecutionStatus::Succeeded => done.output_json(),
            ExecutionStatus::Failed => json!({"error": done.error, "cause": done.cause}),
            other => panic!("{name} in {language}: {other:?} {done:?}"),
        };
        results
            .entry(name)
            .or_default()
            .insert(language, comparable(result));
    }
    for (name, per_language) in &results {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("examples/orders/expected").join(name))
                .unwrap(),
        )
        .unwrap();
        for (language, result) in per_language {
            assert_eq!(
                result, &per_language["rust"],
                "{name}: {language} differs from rust"
            );
            if expected.get("cause").is_some() || expected.get("error").is_none() {
                assert_eq!(result, &expected, "{name}: {language}");
            } else {
                assert_eq!(result["error"], expected["error"], "{name}: {language}");
            }
        }
    }
}

/// Traps, output that is not JSON and runaway loops in Python, JavaScript
/// and C guests fail their task with the host's error names, and the worker
/// goes on serving.
async fn adversarial_basics_in_every_language(backend: Backend) {
    let svc = Service::start(backend);
    let sfn = Sfn::connect(&svc).await;
    let (_worker, machines) = serve_each(
        &svc,
        &sfn,
        "adv",
        &polyglot().scenarios,
        "max_concurrent = 4\ntask_timeout = \"3s\"",
    )
    .await;

    let cases = [
        ("trap", "WasmActivity.Trap"),
        ("bad_output", "WasmActivity.InvalidOutput"),
        ("spin", "WasmActivity.Timeout"),
        ("fail", "Planned"),
    ];
    let mut executions = Vec::new();
    for (language, machine) in &machines {
        for (action, error) in cases {
            let e = sfn.start(machine, &json!({ "action": action })).await;
            executions.push((*language, action, Some(error), e));
        }
        // Started last: the worker still serves after all of the above.
        let e = sfn
            .start(machine, &json!({"action": "echo", "value": 7}))
            .await;
        executions.push((*language, "echo", None, e));
    }
    for (language, action, error, execution) in executions {
        let done = sfn.wait(&execution, Duration::from_secs(240)).await;
        match error {
            Some(error) => {
                assert_eq!(
                    done.status,
                    ExecutionStatus::Failed,
                    "{language} {action}: {done:?}"
                );
                assert_eq!(
                    done.error.as_deref(),
                    Some(error),
                    "{language} {action}: {done:?}"
                );
            }
            None => {
                assert_eq!(
                    done.status,
                    ExecutionStatus::Succeeded,
                    "{language}: {done:?}"
                );
                assert_eq!(done.output_json(), json!({"echo": 7, "language": language}));
            }
        }
        if action == "trap" {
            let cause = done.cause.unwrap_or_default();
            let says = match language {
                "python" => "python guest trapped on purpose",
                "c" => "c guest trapped on purpose",
                _ => "unreachable",
            };
            assert!(cause.contains(says), "{language} trap cause: {cause}");
        }
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1: `respond(method, path, body)`
/// gives the status line's code and text, extra headers and the body of each
/// answer. Returns its URL and a count of the connections it accepted.
fn http_server(
    respond: impl Fn(&str, &str, Vec<u8>) -> (&'static str, String, Vec<u8>) + Send + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                continue;
            }
            let mut parts = request_line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, headers, body) = respond(method, path, body);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    (url, hits)
}

/// An inventory service: `GET /stock/SKU` answers `{"available": N}`.
fn inventory_server() -> (String, Arc<AtomicUsize>) {
    http_server(|_, path, _| {
        let sku = path.strip_prefix("/stock/").unwrap_or("");
        let available = if sku == "gadget" { 0 } else { 5 };
        let body = json!({ "available": available }).to_string();
        (
            "200 OK",
            "content-type: application/json\r\n".into(),
            body.into_bytes(),
        )
    })
}

/// Starts a worker on the embedded endpoint serving `component` as activity
/// `name`, allowed to reach `origin`; returns what the test drives it with.
async fn worker_with_http(
    name: &str,
    component: &Path,
    origin: &str,
) -> (Service, Sfn, String, Worker) {
    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity(name).await;
    let machine = sfn.create_state_machine(&activity, 120, None).await;
    let config = format!(
        "{}\n[activity.{name}.http]\nallow = [\"{origin}\"]\n",
        activity_toml(
            name,
            &activity,
            component,
            "memory_limit = \"64MiB\"\ntask_timeout = \"30s\""
        )
    );
    let worker = Worker::start(&config, &svc);
    (svc, sfn, machine, worker)
}

#[tokio::test(flavor = "multi_thread")]
async fn js_fetch_reaches_an_allowed_local_server_and_nothing_else() {
    stock_check_reaches_an_allowed_local_server_and_nothing_else("js").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_wasi_http_reaches_an_allowed_local_server_and_nothing_else() {
    stock_check_reaches_an_allowed_local_server_and_nothing_else("python").await;
}

/// Runs the stock-check example in `language` against two local inventory
/// servers: the allow-listed one answers, the other must see no connection.
async fn stock_check_reaches_an_allowed_local_server_and_nothing_else(language: &str) {
    let component = &polyglot()
        .stock_checks
        .iter()
        .find(|(l, _)| *l == language)
        .unwrap()
        .1;
    let (allowed, allowed_hits) = inventory_server();
    let (other, other_hits) = inventory_server();
    let (_svc, sfn, machine, _worker) = worker_with_http("stock", component, &allowed).await;

    let lines = json!([{"sku": "widget-1", "quantity": 3}, {"sku": "gadget", "quantity": 1}]);
    let ok = sfn
        .start(&machine, &json!({"inventory_url": allowed, "lines": lines}))
        .await;
    let denied = sfn
        .start(&machine, &json!({"inventory_url": other, "lines": lines}))
        .await;

    let ok = sfn.wait(&ok, Duration::from_secs(120)).await;
    assert_eq!(ok.status, ExecutionStatus::Succeeded, "{ok:?}");
    assert_eq!(
        ok.output_json(),
        json!({
            "lines": [
                {"sku": "widget-1", "quantity": 3, "available": 5, "ok": true},
                {"sku": "gadget", "quantity": 1, "available": 0, "ok": false}
            ],
            "all_available": false
        })
    );
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 2);

    let denied = sfn.wait(&denied, Duration::from_secs(120)).await;
    assert_eq!(denied.status, ExecutionStatus::Failed, "{denied:?}");
    assert_eq!(
        denied.error.as_deref(),
        Some("InventoryUnreachable"),
        "{denied:?}"
    );
    assert!(
        denied.cause.as_deref().unwrap_or("").contains(&other),
        "{denied:?}"
    );
    if language == "python" {
        // The Python SDK names the host's refusal in the cause.
        assert!(
            denied
                .cause
                .as_deref()
                .unwrap_or("")
                .contains("HttpRequestDenied"),
            "{denied:?}"
        );
    }
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        0,
        "the host let a request through to an origin the config does not allow"
    );
}

/// An echo service: answers each request with its own body and an
/// `x-echo-method` header; `/missing` answers 404.
fn echo_server() -> String {
    http_server(|method, path, body| {
        let status = if path == "/missing" {
            "404 Not Found"
        } else {
            "200 OK"
        };
        (status, format!("x-echo-method: {method}\r\n"), body)
    })
    .0
}

/// The Python SDK's wasi:http client streams a request body larger than the
/// host's pipe buffers, reads the whole response, and hands back 4xx
/// statuses as responses rather than errors.
#[tokio::test(flavor = "multi_thread")]
async fn python_http_request_round_trips_a_large_body() {
    let echo = echo_server();
    let python = &polyglot().scenarios.iter().find(|(l, _)| *l == "python");
    let (_svc, sfn, machine, _worker) = worker_with_http("pyhttp", &python.unwrap().1, &echo).await;

    let size = 300_000;
    let big = sfn
        .start(
            &machine,
            &json!({"action": "http", "url": format!("{echo}/echo"), "size": size}),
        )
        .await;
    let missing = sfn
        .start(
            &machine,
            &json!({"action": "http", "method": "PUT", "url": format!("{echo}/missing"), "size": 10}),
        )
        .await;

    let big = sfn.wait(&big, Duration::from_secs(120)).await;
    assert_eq!(big.status, ExecutionStatus::Succeeded, "{big:?}");
    let out = big.output_json();
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["received_len"], size, "{out}");
    assert_eq!(out["received_sha256"], out["sent_sha256"], "{out}");
    assert_eq!(out["echo_method"], "POST", "{out}");

    let missing = sfn.wait(&missing, Duration::from_secs(120)).await;
    assert_eq!(missing.status, ExecutionStatus::Succeeded, "{missing:?}");
    let out = missing.output_json();
    assert_eq!(out["status"], 404, "{out}");
    assert_eq!(out["ok"], false, "{out}");
    assert_eq!(out["echo_method"], "PUT", "{out}");
    assert_eq!(out["received_len"], 10, "{out}");
}

/// Runs `wasm-activity new`, the project's build script (with the cached
/// toolchains) and `invoke --expect` on its sample input.
fn scaffold_builds_and_passes(language: &str, dir: &Path) {
    polyglot(); // toolchains installed, and no concurrent npm/pip installs
    let name = format!("hello-{language}");
    let out = run_cli(&["new", language, &name, "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let project = dir.join(&name);
    // The build script finds (or installs) its own toolchain, as on a
    // user's machine; the cache is the test run's, where its pinned
    // versions are already installed. Only the JavaScript toolchain comes
    // from the run (a project's `npm install` would fetch it again).
    let cache = std::env::var("WASM_ACTIVITY_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/wasm-activity-dev",
            std::env::var("HOME").unwrap()
        )
    });
    let js = if language == "js" {
        format!(
            "source {} && guest_tools js && ",
            repo_root().join("scripts/guest-tools.sh").display()
        )
    } else {
        String::new()
    };
    let build = Command::new("bash")
        .arg("-c")
        .arg(format!("{js}cd {} && ./build.sh", project.display()))
        .env("WASM_ACTIVITY_CACHE", &cache)
        .env_remove("COMPONENTIZE_PY")
        .env_remove("COMPONENTIZE_JS")
        .env_remove("JCO")
        .env_remove("CLANG")
        // Rust projects share one target dir so the test does not rebuild
        // wit-bindgen for every run.
        .env("CARGO_TARGET_DIR", repo_root().join("target/scaffold"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{language} project build failed:\n{}\n{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let out = Command::new(crate::support::binary())
        .current_dir(&project)
        .args([
            "invoke",
            &format!("{name}.wasm"),
            "--input",
            "@input.json",
            "--expect",
            "expected.json",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{language}: {out:?}");
    assert_eq!(stdout(&out).trim(), "PASS input.json");
}

#[test]
fn new_projects_build_and_pass_invoke_in_every_language() {
    let dir = tempfile::tempdir().unwrap();
    for language in ["rust", "python", "js", "c"] {
        scaffold_builds_and_passes(language, dir.path());
    }
}
