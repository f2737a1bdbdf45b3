use super::*;

const ARN: &str = "arn:aws:states:us-east-1:000000000000:activity:price";

pub(crate) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/etc/wa/worker.toml"))
}

fn activity(extra: &str) -> String {
    format!("[activity.price]\narn = \"{ARN}\"\ncomponent = \"price.wasm\"\n{extra}")
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn sizes_take_binary_units_and_refuse_decimal_ones_with_the_fix() {
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("512 kib"), Ok(512 << 10));
    assert_eq!(parse_size("1048576"), Ok(1 << 20));
    assert_eq!(parse_size("4096B"), Ok(4096));
    for (text, fix) in [
        ("64MB", "64MiB"),
        ("64M", "64MiB"),
        ("2G", "2GiB"),
        ("100kb", "100KiB"),
    ] {
        let e = parse_size(text).unwrap_err();
        assert!(e.contains(&format!("write \"{fix}\"")), "{text}: {e}");
    }
    assert!(
        parse_size("64 furlongs")
            .unwrap_err()
            .contains("unknown unit")
    );
    let e = err(&activity("memory_limit = \"64MB\""));
    assert!(
        e.contains("`activity.price.memory_limit` = \"64MB\"") && e.contains("write \"64MiB\""),
        "{e}"
    );
}

#[test]
fn a_typo_in_a_key_gets_the_key_it_meant() {
    let e = err(&activity("memry_limit = \"64MiB\""));
    assert!(e.contains("did you mean `memory_limit`?"), "{e}");
    let e = err(&activity("Memory_limit = \"64MiB\""));
    assert!(e.contains("did you mean `memory_limit`?"), "{e}");
    let e = err(&format!("worker_nmae = \"w\"\n{}", activity("")));
    assert!(e.contains("did you mean `worker_name`?"), "{e}");
    // Nothing close: no guess.
    let e = err(&activity("zzzzzzzzzz = 1"));
    assert!(
        e.contains("unknown field") && !e.contains("did you mean"),
        "{e}"
    );
}

#[test]
fn an_activity_of_another_region_is_refused() {
    let e = err(&format!("region = \"eu-west-1\"\n{}", activity("")));
    assert!(
        e.contains("`activity.price.arn`")
            && e.contains("an activity in region eu-west-1 (the config's `region`)"),
        "{e}"
    );
    let c = parse(&activity("")).unwrap();
    c.check_arn_regions("us-east-1", "AWS_REGION").unwrap();
    let e = c
        .check_arn_regions("us-west-2", "AWS_REGION")
        .unwrap_err()
        .to_string();
    assert!(e.contains("in region us-west-2 (AWS_REGION)"), "{e}");
}

#[test]
fn a_missing_config_file_says_its_os_error_once() {
    let e = Config::from_file(Path::new("/nonexistent/worker.toml")).unwrap_err();
    let shown = format!("{:#}", anyhow::Error::from(e));
    assert_eq!(shown.matches("No such file").count(), 1, "{shown}");
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(&activity("")).unwrap();
    assert_eq!(c.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
    assert!(c.worker_name.starts_with("wasm-activity@"));
    let a = &c.activities[0];
    assert_eq!(a.name, "price");
    assert_eq!(a.component.as_file(), Some(Path::new("/etc/wa/price.wasm")));
    assert_eq!(
        (a.max_concurrent, a.pollers),
        (DEFAULT_MAX_CONCURRENT, DEFAULT_POLLERS)
    );
    assert_eq!(a.limits, TaskLimits::default());
}

#[test]
fn human_units_are_parsed() {
    let c = parse(&format!(
        "shutdown_grace = \"1m\"\n{}",
        activity(
            "max_concurrent = 8\npollers = 2\nheartbeat_interval = \"2s\"\ntask_timeout = \"1h 30m\"\n\
             memory_limit = \"128MiB\"\nlog_limit = \"64KiB\""
        )
    ))
    .unwrap();
    let a = &c.activities[0];
    assert_eq!(c.shutdown_grace, Duration::from_secs(60));
    assert_eq!((a.max_concurrent, a.pollers), (8, 2));
    assert_eq!(a.heartbeat_interval, Duration::from_secs(2));
    assert_eq!(a.limits.timeout, Duration::from_secs(5400));
    assert_eq!(a.limits.memory, 128 << 20);
    assert_eq!(a.limits.log_bytes, 64 << 10);
}

#[test]
fn absolute_component_path_is_kept() {
    let c = parse(&activity("").replace("price.wasm", "/opt/h.wasm")).unwrap();
    assert_eq!(
        c.activities[0].component.as_file(),
        Some(Path::new("/opt/h.wasm"))
    );
}

#[test]
fn bad_duration_names_file_key_value_and_form() {
    let e = err(&activity("task_timeout = \"soon\""));
    assert!(e.starts_with("/etc/wa/worker.toml: `activity.price.task_timeout` = \"soon\": expected a positive duration"), "{e}");
}

#[test]
fn bad_size_is_reported() {
    let e = err(&activity("memory_limit = \"lots\""));
    assert!(
        e.contains("`activity.price.memory_limit` = \"lots\": expected a size such as \"64MiB\""),
        "{e}"
    );
    let e = err(&activity("memory_limit = \"8GiB\""));
    assert!(e.contains("between 1.0 MiB and 4.0 GiB"), "{e}");
}

#[test]
fn unknown_key_is_refused_with_its_path() {
    let e = err(&activity("max_concurency = 3"));
    assert!(
        e.starts_with("/etc/wa/worker.toml: at `activity.price.max_concurency`"),
        "{e}"
    );
    assert!(
        e.contains("unknown field `max_concurency`, expected one of"),
        "{e}"
    );
    assert!(e.contains("line 4"), "{e}");
    let e = err(&format!("regoin = \"x\"\n{}", activity("")));
    assert!(e.contains("unknown field `regoin`"), "{e}");
}

#[test]
fn wrong_type_is_reported_with_path() {
    let e = err(&activity("max_concurrent = \"4\""));
    assert!(e.contains("at `activity.price.max_concurrent`"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
    let e = err(&activity("env_passthrough = [\"A\", 1]"));
    assert!(
        e.contains("at `activity.price.env_passthrough[1]`: "),
        "{e}"
    );
}

#[test]
fn counts_are_range_checked() {
    let e = err(&activity("max_concurrent = 0"));
    assert!(
        e.contains(
            "`activity.price.max_concurrent` = \"0\": expected a whole number from 1 to 10000"
        ),
        "{e}"
    );
    let e = err(&activity("max_concurrent = 2\npollers = 3"));
    assert!(e.contains("expected at most max_concurrent (2)"), "{e}");
}

#[test]
fn arn_must_be_an_activity_arn() {
    let bad = activity("").replace(ARN, "arn:aws:states:us-east-1:000000000000:stateMachine:x");
    let e = err(&bad);
    assert!(e.contains("`activity.price.arn`"), "{e}");
    assert!(e.contains("expected a Step Functions activity ARN"), "{e}");
}

#[test]
fn duplicate_arn_is_refused() {
    let two = format!(
        "{}\n[activity.other]\narn = \"{ARN}\"\ncomponent = \"o.wasm\"\n",
        activity("")
    );
    let e = err(&two);
    assert!(
        e.contains("`activity.price.arn`") || e.contains("`activity.other.arn`"),
        "{e}"
    );
    assert!(e.contains("not already served"), "{e}");
}

#[test]
fn no_activity_is_an_error() {
    let e = err("worker_name = \"w\"\n");
    assert!(e.contains("`activity`"), "{e}");
}

const SWF: &str = "[swf.orders]\ndomain = \"shop\"\ntask_list = \"pricing\"\nmax_concurrent = 3\n\n\
                   [[swf.orders.activity]]\ntype = \"price\"\nversion = \"1\"\ncomponent = \"p.wasm\"\n\n\
                   [[swf.orders.activity]]\ntype = \"ship\"\ncomponent = \"s.wasm\"\nheartbeat_interval = \"2s\"\n\
                   cancel_grace = \"1s\"\n";

#[test]
fn swf_task_lists_map_types_to_components() {
    let c = parse(SWF).unwrap();
    assert!(c.activities.is_empty());
    let t = &c.task_lists[0];
    assert_eq!(
        (t.domain.as_str(), t.task_list.as_str(), t.max_concurrent),
        ("shop", "pricing", 3)
    );
    assert_eq!(t.types[0].name, "price");
    assert_eq!(t.types[0].version.as_deref(), Some("1"));
    assert_eq!(t.types[0].heartbeat_interval, None);
    assert_eq!(t.types[0].limits.output_bytes, SWF_MAX_RESULT);
    assert_eq!(
        t.types[1].component.as_file(),
        Some(Path::new("/etc/wa/s.wasm"))
    );
    assert_eq!(t.types[1].heartbeat_interval, Some(Duration::from_secs(2)));
    assert_eq!(t.types[1].limits.cancel_grace, Duration::from_secs(1));
}

#[test]
fn step_functions_and_swf_in_one_config() {
    let c = parse(&format!("{}\n{SWF}", activity(""))).unwrap();
    assert_eq!((c.activities.len(), c.task_lists.len()), (1, 1));
}

#[test]
fn swf_mistakes_name_their_keys() {
    let e = err(&SWF.replace("type = \"ship\"", "type = \"price\"\nversion = \"1\""));
    assert!(
        e.contains("`swf.orders.activity[1].type` = \"price\""),
        "{e}"
    );
    let e = err(&SWF.replace("cancel_grace = \"1s\"", "cancel_grace = \"later\""));
    assert!(e.contains("`swf.orders.activity[1].cancel_grace`"), "{e}");
    let e = err("[swf.x]\ndomain = \"d\"\ntask_list = \"t\"\n");
    assert!(e.contains("`swf.x.activity`"), "{e}");
    let e = err(&SWF.replace("domain = \"shop\"", "domain = \"shop\"\nregion = \"x\""));
    assert!(e.contains("unknown field `region`"), "{e}");
}

#[test]
fn capabilities_are_parsed_and_deny_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.toml");
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let text = activity(
        "env = { A = \"1\" }\nsecrets = { KEY = { env = \"HOST_KEY\" }, CERT = { file = \"cert.pem\" } }\n\
         sockets = [\"127.0.0.1:5432\"]\nname_lookup = true\n\
         [[activity.price.preopen]]\nhost = \"data\"\nguest = \"/data\"\nmode = \"read-write\"",
    );
    let c = Config::from_toml(&text, &path).unwrap();
    let caps = &c.activities[0].capabilities;
    assert_eq!(caps.env, vec![("A".to_string(), "1".to_string())]);
    assert_eq!(
        caps.preopens,
        vec![Preopen {
            host: dir.path().join("data"),
            guest: "/data".into(),
            writable: true
        }]
    );
    assert_eq!(caps.secrets.len(), 2);
    assert!(caps.secrets.contains(&Secret {
        name: "CERT".into(),
        source: SecretSource::File(dir.path().join("cert.pem"))
    }));
    assert_eq!(caps.sockets, vec!["127.0.0.1:5432".parse().unwrap()]);
    assert!(caps.name_lookup);
    // Nothing granted: nothing reachable.
    assert_eq!(
        parse(&activity("")).unwrap().activities[0].capabilities,
        Capabilities::default()
    );
}

#[test]
fn capability_mistakes_name_their_keys() {
    let e = err(&activity(
        "[[activity.price.preopen]]\nhost = \"/nonexistent-dir\"\nguest = \"/d\"",
    ));
    assert!(e.contains("`activity.price.preopen[0].host` = \"/nonexistent-dir\": expected an existing directory"), "{e}");
    let e = err(&activity(
        "[[activity.price.preopen]]\nhost = \"/tmp\"\nguest = \"d\"",
    ));
    assert!(e.contains("`activity.price.preopen[0].guest`"), "{e}");
    let e = err(&activity(
        "[[activity.price.preopen]]\nhost = \"/tmp\"\nguest = \"/d\"\nmode = \"rw\"",
    ));
    assert!(
        e.contains("expected \"read-only\" or \"read-write\""),
        "{e}"
    );
    let e = err(&activity("secrets = { K = { env = \"A\", file = \"b\" } }"));
    assert!(
        e.contains("`activity.price.secrets.K`") && e.contains("exactly one of"),
        "{e}"
    );
    let e = err(&activity("sockets = [\"localhost:80\"]"));
    assert!(
        e.contains("`activity.price.sockets` = \"localhost:80\""),
        "{e}"
    );
    let e = err(&activity("env = { \"BAD-NAME\" = \"x\" }"));
    assert!(e.contains("`activity.price.env` = \"BAD-NAME\""), "{e}");
}

#[test]
fn budgets_are_parsed_and_output_limit_is_capped_by_the_service() {
    let c = parse(&activity(
        "fuel = 1000000\noutput_limit = \"1KiB\"\ntable_elements = 500\nmax_instances = 8",
    ))
    .unwrap();
    let l = c.activities[0].limits;
    assert_eq!(
        (l.fuel, l.output_bytes, l.table_elements, l.instances),
        (Some(1_000_000), 1024, 500, 8)
    );
    let e = err(&activity("output_limit = \"1MiB\""));
    assert!(e.contains("`activity.price.output_limit`"), "{e}");
    let e = err(&activity("fuel = 0"));
    assert!(e.contains("`activity.price.fuel` = \"0\""), "{e}");
}

#[test]
fn tenants_give_caps_and_defaults() {
    let text = format!(
        "[tenant.acme]\nmax_concurrent = 6\nmax_memory = \"256MiB\"\nmemory_limit = \"32MiB\"\ntask_timeout = \"1m\"\n\n{}",
        activity("tenant = \"acme\"\ntask_timeout = \"10s\"")
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.tenants,
        vec![TenantConfig {
            name: "acme".into(),
            max_concurrent: Some(6),
            max_memory: Some(256 << 20)
        }]
    );
    let a = &c.activities[0];
    assert_eq!(a.tenant.as_deref(), Some("acme"));
    assert_eq!(a.limits.memory, 32 << 20, "tenant default");
    assert_eq!(a.limits.timeout, Duration::from_secs(10), "own value wins");
    let e = err(&activity("tenant = \"nobody\""));
    assert!(e.contains("`activity.price.tenant` = \"nobody\": expected the name of a [tenant.NAME] table (defined: none)"), "{e}");
    let e = err(&format!(
        "[tenant.small]\nmax_memory = \"16MiB\"\n\n{}",
        activity("tenant = \"small\"")
    ));
    assert!(e.contains("at most tenant small's max_memory"), "{e}");
    // A task reserves its host memory under the tenant's cap too.
    let e = err(&format!(
        "[tenant.small]\nmax_memory = \"40MiB\"\n\n{}",
        activity("tenant = \"small\"\nmemory_limit = \"32MiB\"")
    ));
    assert!(
        e.contains(
            "`activity.price.memory_limit` = \"32.0 MiB\": expected memory_limit + host_memory_limit \
             (32.0 MiB from activity.price.memory_limit + 16.0 MiB from the default host_memory_limit \
             = 48.0 MiB) at most tenant small's max_memory (40.0 MiB)"
        ) && e.contains("raise `tenant.small.max_memory` to at least 48.0 MiB"),
        "{e}"
    );
    // A value inherited from the tenant is named where it is written.
    let e = err(&format!(
        "[tenant.small]\nmax_memory = \"40MiB\"\nmemory_limit = \"30MiB\"\n\n{}",
        activity("tenant = \"small\"\nhost_memory_limit = \"12MiB\"")
    ));
    assert!(
        e.starts_with("/etc/wa/worker.toml: `activity.price.memory_limit` = \"30.0 MiB\"")
            && e.contains(
                "(30.0 MiB from tenant.small.memory_limit + 12.0 MiB from activity.price.host_memory_limit = 42.0 MiB)"
            ),
        "{e}"
    );
    // And each SWF type under its key.
    let e = err(&format!(
        "[tenant.small]\nmax_memory = \"40MiB\"\n\n{}",
        SWF.replace(
            "component = \"s.wasm\"",
            "component = \"s.wasm\"\ntenant = \"small\""
        )
        .replace(
            "version = \"1\"",
            "version = \"1\"\ntenant = \"small\"\nmemory_limit = \"8MiB\""
        )
    ));
    assert!(
        e.contains("`swf.orders.activity[1].memory_limit` = \"64.0 MiB\"")
            && e.contains("to at least 80.0 MiB"),
        "{e}"
    );
    let c = parse(&format!(
        "[tenant.small]\nmax_memory = \"40MiB\"\nhost_memory_limit = \"4MiB\"\n\n{}",
        activity("tenant = \"small\"\nmemory_limit = \"32MiB\"")
    ))
    .unwrap();
    assert_eq!(
        c.activities[0].limits.host_memory,
        4 << 20,
        "tenant default"
    );
    assert_eq!(c.activities[0].limits.reserved_memory(), 36 << 20);
}

#[test]
fn limits_the_instance_pool_cannot_honour_are_refused() {
    let e = err(&activity("table_elements = 100001"));
    assert!(
        e.contains(
            "`activity.price.table_elements` = \"100001\": expected a whole number from 1 to 100000"
        ),
        "{e}"
    );
    let e = err(&activity("max_instances = 26"));
    assert!(
        e.contains("`activity.price.max_instances` = \"26\": expected a whole number from 1 to 25"),
        "{e}"
    );
    let e = err(&activity(
        "[activity.price.http]\nallow = [\"https://api.example.com\"]\nmax_response = \"8MiB\"",
    ));
    assert!(
        e.contains("`activity.price.http.max_response` = \"8.0 MiB\": expected max_response + max_request (8.0 MiB + 1.0 MiB) at most half of host_memory_limit (16.0 MiB)"),
        "{e}"
    );
    let e = err(&activity("host_memory_limit = \"100KiB\""));
    assert!(e.contains("`activity.price.host_memory_limit`"), "{e}");
    let c = parse(&activity("")).unwrap();
    let l = c.activities[0].limits;
    assert_eq!(
        (l.table_elements, l.instances, l.host_memory),
        (MAX_TABLE_ELEMENTS, MAX_INSTANCES, DEFAULT_HOST_MEMORY_LIMIT),
        "defaults are what the pool allows"
    );
}

#[test]
fn the_otlp_endpoint_is_an_http_url() {
    let c = parse(&format!(
        "otlp_endpoint = \"http://127.0.0.1:4318/\"\n{}",
        activity("")
    ))
    .unwrap();
    assert_eq!(c.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    assert_eq!(parse(&activity("")).unwrap().otlp_endpoint, None);
    for bad in [
        "127.0.0.1:4318",
        "grpc://collector:4317",
        "http://c:4318/?k=v",
    ] {
        let e = err(&format!("otlp_endpoint = \"{bad}\"\n{}", activity("")));
        assert!(
            e.contains("`otlp_endpoint`") && e.contains("an http:// or https:// URL"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn operational_keys_are_validated() {
    let c = parse(&format!(
        "metrics_addr = \"127.0.0.1:9464\"\nreload = false\nreload_debounce = \"250ms\"\n{}",
        activity("\n[activity.price.record]\ndir = \"rec\"\nredact = [\"email\"]")
    ))
    .unwrap();
    assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
    assert!(!c.reload);
    assert_eq!(c.reload_debounce, Duration::from_millis(250));
    let r = c.activities[0].record.as_ref().unwrap();
    assert_eq!(
        (r.dir.as_path(), r.max_bytes, r.redact.as_slice()),
        (
            Path::new("/etc/wa/rec"),
            64 * 1024,
            &["email".to_string()][..]
        )
    );
    let e = err(&format!("metrics_addr = \"localhost\"\n{}", activity("")));
    assert!(
        e.contains("`metrics_addr` = \"localhost\": expected a socket address"),
        "{e}"
    );
    let e = err(&format!("reload_debounce = \"soon\"\n{}", activity("")));
    assert!(e.contains("`reload_debounce` = \"soon\""), "{e}");
    let e = err(&activity("\n[activity.price.record]\ndir = \"\""));
    assert!(e.contains("`activity.price.record.dir`"), "{e}");
    let e = err(&activity(
        "\n[activity.price.record]\ndir = \"r\"\nmax_bytes = \"huge\"",
    ));
    assert!(
        e.contains("`activity.price.record.max_bytes` = \"huge\""),
        "{e}"
    );
}

#[test]
fn bad_toml_names_the_file() {
    let e = err("[activity.price\n");
    assert!(e.starts_with("/etc/wa/worker.toml: "), "{e}");
}

#[test]
fn endpoint_must_be_a_url() {
    let e = err(&format!("endpoint = \"localhost:4566\"\n{}", activity("")));
    assert!(
        e.contains("`endpoint` = \"localhost:4566\": expected an http:// or https:// URL"),
        "{e}"
    );
}

/// One Step Functions activity and a task list with a versioned type, an
/// unversioned one, and a second version of the first.
pub(crate) const NAMED: &str = "[activity.price]\narn = \"arn:aws:states:us-east-1:000000000000:activity:price\"\n\
                     component = \"p.wasm\"\n\n\
                     [swf.orders]\ndomain = \"shop\"\ntask_list = \"pricing\"\n\n\
                     [[swf.orders.activity]]\ntype = \"ship\"\nversion = \"1\"\ncomponent = \"s.wasm\"\n\n\
                     [[swf.orders.activity]]\ntype = \"ship\"\ncomponent = \"s.wasm\"\n\n\
                     [[swf.orders.activity]]\ntype = \"ship\"\nversion = \"2\"\ncomponent = \"s.wasm\"\n";

/// Every activity and SWF type of `c` with its limits.
pub(crate) fn all_limits(c: &Config) -> Vec<(ActivityId, TaskLimits)> {
    (c.activities.iter().map(|a| (a.id(), a.limits)))
        .chain(
            c.task_lists
                .iter()
                .flat_map(|l| l.types.iter().map(|t| (t.id.clone(), t.limits))),
        )
        .collect()
}

/// `text` with `key` (a path as [`ActivityId::key`] writes it) set to
/// `value`, written into the table the path names, as a person would.
pub(crate) fn set_key(text: &str, key: &str, value: &str) -> String {
    let (table, field) = key.rsplit_once('.').unwrap();
    let (header, nth) = match table.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((array, index)) => (format!("[[{array}]]"), index.parse::<usize>().unwrap()),
        None => (format!("[{table}]"), 0),
    };
    let mut seen = 0;
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == header {
            if seen == nth {
                out.push_str(&format!("{field} = {value}\n"));
            }
            seen += 1;
        }
    }
    assert!(seen > nth, "no table {table} ({header} #{nth}) in:\n{text}");
    out
}

#[test]
fn one_name_and_one_key_path_per_activity_and_swf_type() {
    let c = parse(NAMED).unwrap();
    let ids: Vec<ActivityId> = all_limits(&c).into_iter().map(|(id, _)| id).collect();
    let names: Vec<String> = ids.iter().map(ActivityId::name).collect();
    assert_eq!(
        names,
        ["price", "orders/ship@1", "orders/ship", "orders/ship@2"]
    );
    assert_eq!(ids[1].to_string(), "orders/ship@1", "Display is the name");
    assert_eq!(ids[0].key("task_timeout"), "activity.price.task_timeout");
    assert_eq!(ids[2].key("fuel"), "swf.orders.activity[1].fuel");
    assert_eq!(ids[0].key_hint("fuel"), "activity.price.fuel");
    assert_eq!(
        ids[1].key_hint("memory_limit"),
        "swf.orders.activity[0].memory_limit (in the [[swf.orders.activity]] entry with \
         type = \"ship\" and version = \"1\")"
    );
    assert!(
        ids[2]
            .key_hint("memory_limit")
            .ends_with("type = \"ship\" and no version)"),
        "{}",
        ids[2].key_hint("memory_limit")
    );
    // Names that are not bare TOML keys are quoted in paths, as in the file.
    let odd = parse(
        "[activity.\"pay.v2\"]\narn = \"arn:aws:states:us-east-1:000000000000:activity:p\"\n\
         component = \"p.wasm\"\n\n[swf.\"eu orders\"]\ndomain = \"d\"\ntask_list = \"t\"\n\
         [[swf.\"eu orders\".activity]]\ntype = \"ship\"\ncomponent = \"s.wasm\"\n",
    )
    .unwrap();
    let odd = all_limits(&odd);
    assert_eq!(odd[0].0.name(), "pay.v2");
    assert_eq!(odd[0].0.key("fuel"), "activity.\"pay.v2\".fuel");
    assert_eq!(odd[1].0.name(), "eu orders/ship");
    assert_eq!(odd[1].0.key("fuel"), "swf.\"eu orders\".activity[0].fuel");
}

#[test]
fn config_errors_in_swf_entries_use_the_same_key_path() {
    let e = err(&NAMED.replace(
        "type = \"ship\"\ncomponent",
        "type = \"ship\"\nfuel = 0\ncomponent",
    ));
    assert!(e.contains("`swf.orders.activity[1].fuel` = \"0\""), "{e}");
}

#[test]
fn two_activities_with_one_name_are_refused() {
    // Type "ship@1" of any version would be named like type "ship" version "1".
    let e = err(&NAMED.replace("type = \"ship\"\ncomponent", "type = \"ship@1\"\ncomponent"));
    assert!(
        e.contains(
            "`swf.orders.activity[1].type` = \"ship@1\": expected a name that does not make it \
             \"orders/ship@1\" in logs and metrics, as swf.orders.activity[0] already is"
        ),
        "{e}"
    );
    let e = err(&format!(
        "{NAMED}\n[activity.\"orders/ship@2\"]\narn = \"arn:aws:states:us-east-1:000000000000:activity:o\"\n\
         component = \"o.wasm\"\n"
    ));
    assert!(
        e.contains("`swf.orders.activity[2].type` = \"ship\"")
            && e.contains("as activity.\"orders/ship@2\" already is"),
        "{e}"
    );
}

#[test]
fn invalid_values_say_where_they_are_written() {
    let e = err(&activity("task_timeout = \"soon\""));
    assert!(
        e.ends_with("expected a positive duration such as \"500ms\", \"30s\", \"5m\" or \"1h 30m\" (line 4, column 16)"),
        "{e}"
    );
    // A value inherited from a tenant is shown where the tenant sets it.
    let e = err(&format!(
        "[tenant.acme]\nfuel = 0\n\n{}",
        activity("tenant = \"acme\"")
    ));
    assert!(
        e.contains("`activity.price.fuel` = \"0\"") && e.ends_with("(line 2, column 8)"),
        "{e}"
    );
    let e = err(&activity("sockets = [\"127.0.0.1:1\", \"nowhere\"]"));
    assert!(e.ends_with("(line 4, column 27)"), "{e}");
    // A missing value has no position.
    let e = err("[swf.x]\ndomain = \"d\"\ntask_list = \"t\"\n");
    assert!(!e.contains("(line"), "{e}");
}

fn with_component(component: &str, extra: &str, top: &str) -> String {
    format!("{top}\n[activity.price]\narn = \"{ARN}\"\ncomponent = \"{component}\"\n{extra}")
}

#[test]
fn components_are_files_registries_buckets_or_pinned_urls() {
    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let c = parse(&with_component(
        "oci://127.0.0.1:5000/acme/price:1.2",
        "",
        "",
    ))
    .unwrap();
    let a = &c.activities[0];
    assert!(a.component.is_mutable_remote());
    assert_eq!(
        a.component.to_string(),
        "oci://127.0.0.1:5000/acme/price:1.2"
    );
    assert_eq!(c.components.refresh, Duration::from_secs(30));
    assert_eq!(c.components.store_max, 2 << 30);

    let pinned = parse(&with_component(
        "s3://handlers/price.wasm",
        &format!("sha256 = \"sha256:{HEX}\""),
        "component_refresh = \"5s\"\ncomponent_store_max = \"1GiB\"",
    ))
    .unwrap();
    assert_eq!(pinned.activities[0].component.pin.unwrap().hex(), HEX);
    assert!(!pinned.activities[0].component.is_mutable_remote());
    assert_eq!(pinned.components.refresh, Duration::from_secs(5));

    // A URL needs a pin; the error names the key to add and where.
    let e = err(&with_component("https://example.com/price.wasm", "", ""));
    assert!(
        e.contains("`activity.price.sha256`") && e.contains("sha256 = ") && e.contains("line 4"),
        "{e}"
    );
    // A bad pin, a bad reference, an unknown scheme.
    let e = err(&with_component("price.wasm", "sha256 = \"abc\"", ""));
    assert!(
        e.contains("`activity.price.sha256` = \"abc\"") && e.contains("64 hex digits"),
        "{e}"
    );
    let e = err(&with_component("oci://ghcr.io/acme/price", "", ""));
    assert!(
        e.contains("`activity.price.component`") && e.contains("no implicit `latest`"),
        "{e}"
    );
    let e = err(&with_component("gs://bucket/price.wasm", "", ""));
    assert!(e.contains("`gs://` is not a supported scheme"), "{e}");

    // Plain http:// only for hosts listed as insecure.
    let http = "http://127.0.0.1:8080/price.wasm";
    let pin = format!("sha256 = \"{HEX}\"");
    let e = err(&with_component(http, &pin, ""));
    assert!(
        e.contains("insecure_registries") && e.contains("\"127.0.0.1:8080\""),
        "{e}"
    );
    parse(&with_component(
        http,
        &pin,
        "insecure_registries = [\"127.0.0.1:8080\"]",
    ))
    .unwrap();
    let e = err(&with_component(
        "a.wasm",
        "",
        "insecure_registries = [\"http://127.0.0.1:5000\"]",
    ));
    assert!(
        e.contains("`insecure_registries[0]`") && e.contains("no scheme"),
        "{e}"
    );
}
