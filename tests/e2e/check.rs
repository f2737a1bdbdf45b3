//! `wasm-activity check`: config and component validation through the real binary.

use crate::support::{activity_toml, guests, run_cli, stdout, unique};
use std::path::Path;

const ARN: &str = "arn:aws:states:us-east-1:000000000000:activity:check";

fn check(config: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.toml");
    std::fs::write(&path, config).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&out), crate::support::stderr(&out));
    (out.status.code().unwrap(), text, path.display().to_string())
}

fn with_component(component: &Path) -> String {
    format!(
        "region = \"us-east-1\"\ncache_dir = \"{}\"\n{}",
        crate::support::cache_dir().display(),
        activity_toml(
            "price",
            ARN,
            component,
            "max_concurrent = 3\ntask_timeout = \"30s\""
        )
    )
}

/// A file under the temp dir that is removed when the test drops it.
fn write_temp(name: &str, bytes: &[u8]) -> tempfile::TempPath {
    let path = std::env::temp_dir().join(unique(name));
    std::fs::write(&path, bytes).unwrap();
    tempfile::TempPath::try_from_path(path).unwrap()
}

#[test]
fn good_config_passes_with_a_summary() {
    let (code, text, _) = check(&with_component(&guests().example));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("activity price: ok"), "{text}");
    assert!(text.contains(ARN), "{text}");
    assert!(text.contains("at most 3 at once"), "{text}");
    assert!(text.contains("timeout 30s"), "{text}");
    assert!(text.contains("version "), "{text}");
}

#[test]
fn check_prints_the_tenant_table_and_grants() {
    let config = with_component(&guests().example).replace(
        "max_concurrent = 3",
        "max_concurrent = 3\ntenant = \"acme\"\nenv = { MODE = \"x\" }",
    ) + "\n[activity.price.http]\nallow = [\"https://api.example.com\"]\n\n\
         [tenant.acme]\nmax_concurrent = 5\nmax_memory = \"128MiB\"\n";
    let (code, text, _) = check(&config);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("tenants:"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("acme"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.contains('5') && row.contains("128.0 MiB") && row.contains("price"),
        "{row}"
    );
    assert!(
        text.contains("grants:       env MODE; http to https://api.example.com"),
        "{text}"
    );
    assert!(text.contains("tenant:       acme"), "{text}");
}

#[test]
fn unknown_key_fails_naming_file_and_key() {
    let config = with_component(&guests().example).replace("max_concurrent", "max_concurency");
    let (code, text, path) = check(&config);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&path), "{text}");
    assert!(text.contains("activity.price.max_concurency"), "{text}");
    assert!(text.contains("unknown field `max_concurency`"), "{text}");
}

#[test]
fn bad_value_fails_naming_key_value_and_expected_form() {
    let config = with_component(&guests().example).replace("\"30s\"", "\"thirty\"");
    let (code, text, _) = check(&config);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("`activity.price.task_timeout` = \"thirty\": expected a positive duration"),
        "{text}"
    );
}

#[test]
fn file_that_is_not_wasm_fails() {
    let bogus = write_temp("bogus.wasm", b"this is not wasm");
    let (code, text, _) = check(&with_component(&bogus));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("activity price: FAILED"), "{text}");
    assert!(
        text.contains("is not a valid WebAssembly component")
            && text.contains("WebAssembly magic bytes")
            && text.contains("(set in activity.price.component)"),
        "{text}"
    );
}

#[test]
fn core_module_fails_with_a_hint() {
    let module = write_temp("core.wasm", &wat_module());
    let (code, text, _) = check(&with_component(&module));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("is a core WebAssembly module, not a component"),
        "{text}"
    );
}

#[test]
fn component_of_another_world_fails() {
    let other = write_temp("other.wat", b"(component)");
    let (code, text, _) = check(&with_component(&other));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("does not implement the world wasm-activity:handler/activity@0.1.0"),
        "{text}"
    );
}

#[test]
fn missing_component_fails() {
    let (code, text, _) = check(&with_component(Path::new("/nonexistent.wasm")));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("cannot read component /nonexistent.wasm: No such file")
            && text.contains("(set in activity.price.component)"),
        "{text}"
    );
    assert_eq!(text.matches("No such file").count(), 1, "{text}");
}

/// A relative component path is taken from the config file's directory,
/// and the error names the path it resolved to and the key.
#[test]
fn a_relative_component_path_is_resolved_against_the_configs_directory() {
    let (code, text, config) = check(&with_component(Path::new("handlers/missing.wasm")));
    assert_eq!(code, 1, "{text}");
    let resolved = Path::new(&config)
        .parent()
        .unwrap()
        .join("handlers/missing.wasm");
    assert!(
        text.contains(&format!("cannot read component {}", resolved.display()))
            && text.contains("(set in activity.price.component)"),
        "{text}"
    );
}

/// A first load of a component not in the cache says it is compiling
/// (a large one takes seconds, and says so every few seconds).
#[test]
fn a_first_check_of_an_uncached_component_says_compiling() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.toml");
    std::fs::write(
        &path,
        format!(
            "region = \"us-east-1\"\ncache_dir = \"{}\"\n{}",
            cache.path().display(),
            activity_toml("price", ARN, &guests().example, "")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::binary())
        .args(["check", "--config", path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let log = crate::support::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}{}", stdout(&out));
    assert!(
        log.contains(&format!("compiling {}", guests().example.display())),
        "{log}"
    );
    // Compiled once: the next check loads it from the cache, silently.
    let out = std::process::Command::new(crate::support::binary())
        .args(["check", "--config", path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let log = crate::support::stderr(&out);
    assert!(!log.contains("compiling"), "{log}");
}

/// What `run` refuses when it prepares an activity, `check` refuses too:
/// secrets it cannot read.
#[test]
fn secrets_that_cannot_be_read_fail() {
    let config = with_component(&guests().example).replace(
        "max_concurrent = 3",
        "max_concurrent = 3\nsecrets = { KEY = { env = \"WA_CHECK_UNSET_VARIABLE\" } }",
    );
    let (code, text, _) = check(&config);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("activity price: FAILED")
            && text.contains("WA_CHECK_UNSET_VARIABLE is not set")
            && text.contains("(set in activity.price.secrets)"),
        "{text}"
    );
    let config = with_component(&guests().example).replace(
        "max_concurrent = 3",
        "max_concurrent = 3\nsecrets = { KEY = { file = \"/nonexistent/secret\" } }",
    );
    let (code, text, _) = check(&config);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cannot read /nonexistent/secret"), "{text}");
}

#[test]
fn an_arn_of_another_region_fails() {
    let config =
        with_component(&guests().example).replace("us-east-1\"\ncache", "eu-west-1\"\ncache");
    let (code, text, _) = check(&config);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("`activity.price.arn`") && text.contains("an activity in region eu-west-1"),
        "{text}"
    );
    // With the region from the environment, as `run` would take it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.toml");
    std::fs::write(
        &path,
        with_component(&guests().example).replace("region = \"us-east-1\"\n", ""),
    )
    .unwrap();
    let out = crate::support::run_cli_env(
        &["check", "--config", path.to_str().unwrap()],
        &[("AWS_REGION", "eu-west-1")],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("region eu-west-1: FAILED") && text.contains("(AWS_REGION)"),
        "{text}"
    );
}

#[test]
fn decimal_sizes_and_typos_fail_with_the_fix() {
    for decimal in ["64MB", "64M"] {
        let config = with_component(&guests().example).replace(
            "max_concurrent = 3",
            &format!("max_concurrent = 3\nmemory_limit = \"{decimal}\""),
        );
        let (code, text, _) = check(&config);
        assert_eq!(code, 1, "{decimal}: {text}");
        assert!(
            text.contains("memory_limit") && text.contains("write \"64MiB\""),
            "{decimal}: {text}"
        );
    }
    let config = with_component(&guests().example).replace("task_timeout", "task_timout");
    let (code, text, _) = check(&config);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("did you mean `task_timeout`?"), "{text}");
}

#[test]
fn a_missing_config_file_is_said_once() {
    let out = run_cli(&["check", "--config", "/nonexistent/worker.toml"]);
    let text = crate::support::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("No such file").count(), 1, "{text}");
}

/// `check --aws` asks the service, read-only, about what the config names.
#[tokio::test(flavor = "multi_thread")]
async fn check_aws_finds_what_the_service_does_not_have() {
    let svc = crate::support::Service::start(crate::support::Backend::Embedded);
    let sfn = crate::support::Sfn::connect(&svc).await;
    let there = sfn.create_activity("there").await;
    let gone = there.replace(":activity:", ":activity:gone-");
    let config = format!(
        "endpoint = \"{}\"\n{}{}\n[swf.orders]\ndomain = \"{}\"\ntask_list = \"l\"\n\
         [[swf.orders.activity]]\ntype = \"ship\"\nversion = \"1\"\ncomponent = \"{}\"\n",
        svc.url,
        with_component(&guests().example).replace(ARN, &there),
        activity_toml("gone", &gone, &guests().example, ""),
        unique("nodomain"),
        guests().example.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.toml");
    std::fs::write(&path, config).unwrap();
    let out = crate::support::run_cli_env(
        &["check", "--aws", "--config", path.to_str().unwrap()],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let text = format!("{}{}", stdout(&out), crate::support::stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("activity price: ok, {there} exists")),
        "{text}"
    );
    assert!(
        text.contains("activity gone: FAILED") && text.contains("create-activity --name gone-"),
        "{text}"
    );
    assert!(
        text.contains("is not registered; register it (aws swf register-domain"),
        "{text}"
    );
    assert!(
        text.contains("not tried (a poll could take a task)"),
        "{text}"
    );
}

/// `check --aws` looks up each versioned SWF type (registered, and
/// missing with the fix), and an AccessDenied answer is "cannot tell", not
/// a problem: the worker does not need that call to serve.
#[tokio::test(flavor = "multi_thread")]
async fn check_aws_looks_up_versioned_types_and_cannot_tell_when_denied() {
    let svc = crate::support::Service::start(crate::support::Backend::Embedded);
    let sfn = crate::support::Sfn::connect(&svc).await;
    let swf = crate::swf_support::Swf::connect(&svc).await;
    swf.register_activity("ship", "1", 30).await;
    let denied = sfn.create_activity("denied").await;
    svc.add_fault(
        serde_json::json!({"op": "DescribeActivity", "fault": "error",
        "code": "AccessDeniedException", "status": 400}),
    )
    .await;
    let example = guests().example.display().to_string();
    let config = format!(
        "endpoint = \"{}\"\n{}\n[swf.orders]\ndomain = \"{}\"\ntask_list = \"l\"\n\
         [[swf.orders.activity]]\ntype = \"ship\"\nversion = \"1\"\ncomponent = \"{example}\"\n\
         [[swf.orders.activity]]\ntype = \"pack\"\nversion = \"2\"\ncomponent = \"{example}\"\n",
        svc.url,
        with_component(&guests().example).replace(ARN, &denied),
        swf.domain,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.toml");
    std::fs::write(&path, config).unwrap();
    let out = crate::support::run_cli_env(
        &["check", "--aws", "--config", path.to_str().unwrap()],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let text = format!("{}{}", stdout(&out), crate::support::stderr(&out));
    // The missing type is the one problem; the denied call is not one.
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("1 problem(s) found"), "{text}");
    assert!(
        text.contains(&format!("endpoint {} (config file)", svc.url)),
        "{text}"
    );
    // The service's answers, after the config's summary.
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start}:\n{text}"))
            .to_string()
    };
    assert!(
        line("  activity price:").contains(
            "cannot tell: the credentials may not call states:DescribeActivity \
             (AccessDeniedException)"
        ),
        "{text}"
    );
    assert!(
        line("  type orders/ship@1:").contains("ok, registered"),
        "{text}"
    );
    let pack = line("  type orders/pack@2:");
    assert!(
        pack.contains("FAILED: type pack 2 is not registered in")
            && pack.contains("register-activity-type"),
        "{text}"
    );
}

/// The smallest core module, in binary form.
fn wat_module() -> Vec<u8> {
    b"\0asm\x01\0\0\0".to_vec()
}

/// `run` refuses to start if it cannot listen on `metrics_addr`: so does
/// `check`.
#[test]
fn a_metrics_address_in_use_fails() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = format!(
        "metrics_addr = \"{addr}\"\n{}",
        with_component(&guests().example)
    );
    let (code, text, _) = check(&config);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("metrics_addr {addr}: FAILED"))
            && text.contains("fix `metrics_addr`"),
        "{text}"
    );
}

/// Only OTLP/HTTP with protobuf is spoken: a variable asking for gRPC is
/// refused by `check`, as by `run`, naming the variable and the fix.
#[test]
fn an_otlp_protocol_that_is_not_spoken_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.toml");
    std::fs::write(
        &path,
        format!(
            "otlp_endpoint = \"http://127.0.0.1:4317\"\n{}",
            with_component(&guests().example)
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    for args in [
        vec!["check", "--config", config],
        vec!["run", "--config", config],
    ] {
        let out = crate::support::run_cli_env(&args, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        let text = format!("{}{}", stdout(&out), crate::support::stderr(&out));
        assert_ne!(out.status.code(), Some(0), "{args:?}: {text}");
        assert!(
            text.contains("OTEL_EXPORTER_OTLP_PROTOCOL = \"grpc\"")
                && text.contains("http/protobuf")
                && text.contains("4318"),
            "{args:?}: {text}"
        );
    }
}
