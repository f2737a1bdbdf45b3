//! A test guest whose behaviour the task input chooses, so one component
//! covers the end-to-end scenarios: `{"action": "...", ...}`.

use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasm_activity_guest::{Failure, Level, cancelled, log, progress};

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Action {
    /// Returns `value` as the output.
    Echo { value: Value },
    /// Fails with the given error name and cause.
    Fail { error: String, cause: String },
    /// Fails with `Flaky` until the wall clock passes `until_ms`, then
    /// succeeds (instances are fresh per task, so the clock is the state).
    FailUntil { until_ms: u64 },
    /// Panics (a trap) with `message`.
    Panic { message: String },
    /// Sleeps `ms` milliseconds in steps, then reports when it ran.
    Sleep { ms: u64 },
        /// Spins on the CPU forever.
    Spin,
    /// Spins on the CPU for `ms` milliseconds of wall time, then succeeds.
    SpinFor { ms: u64 },
    /// CPU-bound work: `rounds` steps of a hash chain (the benchmarks'
    /// CPU-heavy guest).
    Work { rounds: u64 },
    /// Allocates and touches `mib` MiB.
    Alloc { mib: usize },
    /// Recurses until the stack runs out.
    Recurse,
    /// Polls `cancelled()` until it turns true (or `max_ms` passes).
    WaitCancel { max_ms: u64 },
    /// Prints `lines` lines to stdout and stderr.
    Print { lines: usize },
    /// Returns `output` as the raw output text (need not be JSON).
    Raw { output: String },
    /// Returns a JSON string of `kib` KiB.
    HugeOutput { kib: usize },
    /// Reads a file; returns its text.
    ReadFile { path: String },
    /// Writes a file.
    WriteFile { path: String, content: String },
    /// Lists a directory.
    ListDir { path: String },
    /// Returns every environment variable the guest can see.
    Env,
        /// Logs `text` and then fails with it in the cause.
    Leak { text: String },
        /// GETs `url` through wasi:http with `headers`; returns status and body.
    HttpGet {
        url: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// Returns which build of this component ran (1, or 2 with feature v2).
    Version,
    /// Makes the host hold memory: `count` wasi:http `fields`, each with
    /// `kib` KiB of header values, all kept alive.
    FieldsBomb { count: usize, kib: usize },
    /// Makes the host hold resource handles: `count` pollables, kept alive.
    HandleBomb { count: usize },
    /// Calls `get-random-bytes(len)` in a loop for `ms` milliseconds.
    RandomLoop { len: u64, ms: u64 },
    /// Calls `log()` with a `kib` KiB message in a loop for `ms` milliseconds.
    LogLoop { kib: usize, ms: u64 },
    /// Logs `text` once through `log()`, prints it to stdout and stderr,
    /// reports it as progress, then fails with `error` and `text` as cause.
    Say { text: String, error: String },
    /// Calls `exit(code)`.
    Exit { code: i32 },
    /// Starts `count` GETs of `url` without reading them, then sleeps
    /// `ms`: the host reads the responses while the guest is parked.
    HttpHoard { url: String, count: usize, ms: u64 },
}

/// The build variant, reported by `version`.
const VERSION: u32 = if cfg!(feature = "v2") { 2 } else { 1 };

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let mut buf = std::hint::black_box([0u8; 256]);
    buf[(depth % 256) as usize] = depth as u8;
    recurse(depth + 1) + u64::from(std::hint::black_box(buf)[0])
}

/// A GET of `url`, sent but not awaited.
fn http_start(url: &str) -> Result<wasi::http::types::FutureIncomingResponse, Failure> {
    http_start_with(url, &[])
}

fn http_start_with(
    url: &str,
    headers: &[(String, String)],
) -> Result<wasi::http::types::FutureIncomingResponse, Failure> {
    use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
    let err = |e: String| Failure::new("HttpError", format!("GET {url}: {e}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| err("no scheme".into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| err(format!("header {name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    request.set_method(&Method::Get).map_err(|()| err("method".into()))?;
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    request.set_scheme(Some(&scheme)).map_err(|()| err("scheme".into()))?;
    request.set_authority(Some(authority)).map_err(|()| err("authority".into()))?;
    request.set_path_with_query(Some(path)).map_err(|()| err("path".into()))?;
    wasi::http::outgoing_handler::handle(request, None).map_err(|e| err(format!("{e:?}")))
}

fn http_get(url: &str, headers: &[(String, String)]) -> Result<Value, Failure> {
    let err = |e: String| Failure::new("HttpError", format!("GET {url}: {e}"));
    let future = http_start_with(url, headers)?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or_else(|| err("no response".into()))?
        .map_err(|()| err("response taken twice".into()))?
        .map_err(|e| err(format!("{e:?}")))?;
    let status = response.status();
    let body = response.consume().map_err(|()| err("body".into()))?;
    let stream = body.stream().map_err(|()| err("body stream".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(err(format!("reading the body: {e:?}"))),
        }
    }
    Ok(json!({ "status": status, "body": String::from_utf8_lossy(&bytes) }))
}

fn io_failure(what: &str, path: &str, e: std::io::Error) -> Failure {
    Failure::new("IoError", format!("{what} {path}: {e}"))
}

/// Raw entry point: parses the action itself so `raw` can return non-JSON.
fn handle_raw(input: String) -> Result<String, Failure> {
    let action: Action = serde_json::from_str(&input)
        .map_err(|e| Failure::new(wasm_activity_guest::INVALID_INPUT, format!("task input is not valid: {e}")))?;
    match action {
        Action::Raw { output } => Ok(output),
        action => handle(action).map(|v| v.to_string()),
    }
}

fn handle(action: Action) -> Result<Value, Failure> {
    match action {
        Action::Raw { output } => Ok(Value::String(output)),
        Action::HugeOutput { kib } => Ok(Value::String("x".repeat(kib * 1024))),
        Action::ReadFile { path } => std::fs::read_to_string(&path)
            .map(Value::String)
            .map_err(|e| io_failure("reading", &path, e)),
        Action::WriteFile { path, content } => std::fs::write(&path, content)
            .map(|()| json!({ "written": path }))
            .map_err(|e| io_failure("writing", &path, e)),
        Action::ListDir { path } => {
            let entries = std::fs::read_dir(&path).map_err(|e| io_failure("listing", &path, e))?;
            let mut names: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            Ok(json!(names))
        }
                        Action::HttpGet { url, headers } => http_get(&url, &headers),
        Action::Version => Ok(json!({ "version": VERSION })),
        Action::Env => Ok(json!(std::env::vars().collect::<std::collections::BTreeMap<_, _>>())),
        Action::Leak { text } => {
            log(Level::Warn, &format!("leaking {text}"));
            eprintln!("stderr leak {text}");
            Err(Failure::new("Leaked", format!("the secret is {text}")))
        }
        Action::Echo { value } => Ok(value),
        Action::Fail { error, cause } => Err(Failure::new(error, cause)),
        Action::FailUntil { until_ms } => {
            if now_ms() < u128::from(until_ms) {
                Err(Failure::new("Flaky", format!("not before {until_ms}")))
            } else {
                Ok(json!({ "succeeded_at_ms": now_ms() }))
            }
        }
        Action::Panic { message } => panic!("{message}"),
        Action::Sleep { ms } => {
            let started = now_ms();
            let mut left = ms;
            while left > 0 {
                let step = left.min(100);
                std::thread::sleep(Duration::from_millis(step));
                left -= step;
                progress(&format!("{} ms to go", left));
            }
            Ok(json!({ "slept_ms": ms, "started_ms": started, "finished_ms": now_ms() }))
        }
                Action::Work { rounds } => {
            let mut x: u64 = 1;
            for i in 0..rounds {
                x = std::hint::black_box((x ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17));
            }
            Ok(json!({ "rounds": rounds, "hash": x }))
        }
        Action::SpinFor { ms } => {
            let started = now_ms();
            let mut x: u64 = 1;
            let mut spins: u64 = 0;
            while now_ms() < started + u128::from(ms) {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                spins += 1;
            }
            Ok(json!({ "spun_ms": ms, "spins": spins }))
        }
        Action::Spin => {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        Action::Alloc { mib } => {
            let mut blocks = Vec::new();
            for _ in 0..mib {
                blocks.push(vec![1u8; 1 << 20]);
            }
            Ok(json!({ "allocated_mib": blocks.len() }))
        }
        Action::Recurse => Ok(json!(recurse(0))),
        Action::WaitCancel { max_ms } => {
            let started = now_ms();
            while !cancelled() {
                if now_ms() - started > u128::from(max_ms) {
                    return Ok(json!({ "cancelled": false }));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            log(Level::Info, "saw cancellation");
            Err(Failure::new("Cancelled", "the host asked the handler to stop"))
        }
        Action::FieldsBomb { count, kib } => {
            use wasi::http::types::Fields;
            let value = vec![b'v'; 1024];
            let mut kept = Vec::new();
            for i in 0..count {
                let fields = Fields::new();
                for k in 0..kib {
                    if fields.append(&format!("x-h{k}"), &value).is_err() {
                        break;
                    }
                }
                kept.push(fields);
                if i % 64 == 0 && cancelled() {
                    break;
                }
            }
            Ok(json!({ "fields": kept.len() }))
        }
        Action::HandleBomb { count } => {
            let kept: Vec<_> = (0..count)
                .map(|_| wasi::clocks::monotonic_clock::subscribe_duration(1_000_000_000))
                .collect();
            Ok(json!({ "handles": kept.len() }))
        }
        Action::RandomLoop { len, ms } => {
            let started = now_ms();
            let mut calls = 0u64;
            while now_ms() - started < u128::from(ms) {
                let bytes = wasi::random::random::get_random_bytes(len);
                std::hint::black_box(bytes);
                calls += 1;
            }
            Ok(json!({ "calls": calls }))
        }
        Action::LogLoop { kib, ms } => {
            let message = "y".repeat(kib * 1024);
            let started = now_ms();
            let mut calls = 0u64;
            while now_ms() - started < u128::from(ms) {
                log(Level::Info, &message);
                calls += 1;
            }
            Ok(json!({ "calls": calls }))
        }
        Action::Say { text, error } => {
            log(Level::Warn, &text);
            println!("{text}");
            eprintln!("{text}");
            progress(&text);
            Err(Failure::new(error, text))
        }
        Action::Exit { code } => std::process::exit(code),
        Action::HttpHoard { url, count, ms } => {
            let pending = (0..count).map(|_| http_start(&url)).collect::<Result<Vec<_>, _>>()?;
            std::thread::sleep(Duration::from_millis(ms));
            Ok(json!({ "pending": pending.len() }))
        }
        Action::Print { lines } => {
            for i in 0..lines {
                println!("stdout line {i}");
                eprintln!("stderr line {i}");
            }
            Ok(json!({ "printed": lines }))
        }
    }
}

wasm_activity_guest::export_raw_handler!(handle_raw);
