//! Benchmarks inside this process, on the host library: compile and load
//! times, instantiate latency per guest language, the first task after start
//! with a warm precompile cache, and what epoch interruption costs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasm_activity_worker::config::TaskLimits;
use wasm_activity_worker::runtime::{
    Grants, Handler, Outcome, Runtime, RuntimeOptions, TaskContext, TaskControl,
};

pub struct Instantiation {
    pub language: &'static str,
    pub size: u64,
    pub compile: Duration,
    pub engine: Duration,
    pub load_cached: Duration,
    pub first_task: Duration,
    pub first: Duration,
    pub warm_p50: Duration,
    pub warm_p99: Duration,
    pub task_p50: Duration,
    /// Page faults per warm task (the whole process's minor and major).
    pub task_faults: f64,
}

/// Page faults of this process so far.
pub fn page_faults() -> u64 {
    // SAFETY: getrusage fills one rusage, which the zeroed value is.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    (usage.ru_minflt + usage.ru_majflt) as u64
}

pub fn options(cache: &Path, epoch: bool) -> RuntimeOptions {
    RuntimeOptions {
        max_instances: 8,
        max_memory: 64 << 20,
        cache_dir: Some(cache.to_path_buf()),
        fuel: false,
        epoch_interruption: epoch,
    }
}

pub fn context() -> TaskContext {
    TaskContext {
        activity: "bench".into(),
        task_id: "bench".into(),
        limits: TaskLimits::default(),
        control: Arc::new(TaskControl::new()),
        grants: Arc::new(Grants::default()),
    }
}

/// CPU time of the calling thread, in ns (CLOCK_THREAD_CPUTIME_ID).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs `f` on a fresh thread with a current-thread runtime, so a task
/// never moves between threads and the thread's CPU clock measures it.
pub fn on_one_thread<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
            .block_on(f())
    })
    .join()
    .expect("the measuring thread panicked")
}

fn expect_output(outcome: Outcome, what: &str) -> anyhow::Result<()> {
    match outcome {
        Outcome::Output(_) => Ok(()),
        other => anyhow::bail!("{what}: the task did not succeed: {other:?}"),
    }
}

/// Fresh starts per language for the first-task figure.
const RESTARTS: usize = 7;

/// The first argument that makes this binary one fresh start (see
/// [`first_task_child`]) instead of the benchmark.
pub const FIRST_TASK_CHILD: &str = "--first-task-child";

/// One fresh start, in its own process: `COMPONENT CACHE_DIR INPUT` ->
/// prints the runtime creation, load-from-cache and load-plus-first-task
/// times in ns.
pub async fn first_task_child(args: &[String]) -> anyhow::Result<()> {
    let [component, cache, input] = args else {
        anyhow::bail!("usage: {FIRST_TASK_CHILD} COMPONENT CACHE_DIR INPUT");
    };
    let started = Instant::now();
    let runtime = Runtime::new(options(Path::new(cache), true))?;
    let engine = started.elapsed();
    let started = Instant::now();
    let handler = runtime.load(Path::new(component))?;
    anyhow::ensure!(handler.from_cache, "the precompile cache was not used");
    let load_cached = handler.load_time;
    expect_output(handler.run(input, &context()).await, component)?;
    let first_task = started.elapsed();
    println!(
        "{} {} {}",
        engine.as_nanos(),
        load_cached.as_nanos(),
        first_task.as_nanos()
    );
    Ok(())
}

/// The first argument that makes this binary loop over one guest's tasks
/// (see [`profile_guest`]), for `perf record`.
pub const PROFILE_GUEST: &str = "--profile-guest";

/// `COMPONENT INPUT N instantiate|task`: N bare instantiations or whole
/// tasks of a warm component, on one thread; prints µs of CPU per each.
pub async fn profile_guest(args: &[String]) -> anyhow::Result<()> {
    let [component, input, n, what] = args else {
        anyhow::bail!("usage: {PROFILE_GUEST} COMPONENT INPUT N instantiate|task");
    };
    let n: usize = n.parse()?;
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new(options(cache.path(), true))?;
    let handler = runtime.load(Path::new(component))?;
    let ctx = context();
    // Tasks run on the guest threads: count the whole process.
    let process_ns = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec, which `ts` is.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    let faults = page_faults;
    let faults_before = faults();
    let before = process_ns();
    match what.as_str() {
        "instantiate" => {
            handler
                .instantiate_time(&ctx, n)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        "task" => {
            for _ in 0..n {
                expect_output(handler.run(input, &ctx).await, component)?;
            }
        }
        other => anyhow::bail!("{other}: instantiate or task"),
    }
    println!(
        "{:.1} µs, {:.1} page faults",
        (process_ns() - before) as f64 / n as f64 / 1000.0,
        (faults() - faults_before) as f64 / n as f64
    );
    Ok(())
}

pub async fn instantiation(
    language: &'static str,
    component: &Path,
    input: &str,
    samples: usize,
) -> anyhow::Result<Instantiation> {
    let cache = tempfile::tempdir()?;
    let size = std::fs::metadata(component)?.len();
    // Cold: compile and fill the cache.
    let compile = {
        let runtime = Runtime::new(options(cache.path(), true))?;
        let handler = runtime.load(component)?;
        handler.load_time
    };
    // Start as a restarted worker would, in a fresh process each time (a
    // fresh heap, as after a restart): new runtime (engine, pool, linker:
    // once per process), then load from the cache and run the first task.
    // One start is one sample of a noisy figure: take the median of several.
    let mut starts = Vec::new();
    for _ in 0..RESTARTS {
        let out = std::process::Command::new(std::env::current_exe()?)
            .arg(FIRST_TASK_CHILD)
            .arg(component)
            .arg(cache.path())
            .arg(input)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "{language}: first-task child failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        let ns: Vec<u64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(
            ns.len() == 3,
            "{language}: first-task child printed {text:?}"
        );
        starts.push([0, 1, 2].map(|i| Duration::from_nanos(ns[i])));
    }
    let median = |i: usize| {
        let mut v: Vec<Duration> = starts.iter().map(|s| s[i]).collect();
        v.sort();
        v[v.len() / 2]
    };
    let (engine, load_cached, first_task) = (median(0), median(1), median(2));
    let runtime = Runtime::new(options(cache.path(), true))?;
    let handler = runtime.load(component)?;
    let ctx = context();

    let times = handler
        .instantiate_time(&ctx, samples)
        .await
        .map_err(|e| anyhow::anyhow!("{language}: {e}"))?;
    let mut tasks = Vec::new();
    let faults_before = page_faults();
    for _ in 0..(samples / 10).max(20) {
        let t = Instant::now();
        expect_output(handler.run(input, &ctx).await, language)?;
        tasks.push(t.elapsed());
    }
    let task_faults = (page_faults() - faults_before) as f64 / tasks.len() as f64;
    tasks.sort();
    Ok(Instantiation {
        language,
        size,
        compile,
        engine,
        load_cached,
        first_task,
        first: times.first,
        warm_p50: times.warm_p50,
        warm_p99: times.warm_p99,
        task_p50: tasks[tasks.len() / 2],
        task_faults,
    })
}

/// CPU ns per task for `tasks` runs on this thread.
async fn cpu_per_task(handler: &Handler, input: &str, tasks: usize) -> anyhow::Result<f64> {
    let ctx = context();
    let before = thread_cpu_ns();
    for _ in 0..tasks {
        expect_output(handler.run(input, &ctx).await, "epoch benchmark")?;
    }
    Ok((thread_cpu_ns() - before) as f64 / tasks as f64)
}

/// The transform alone, in process: the guest in a fresh instance per call
/// vs the same code compiled natively; (guest µs, native µs) medians.
pub async fn transform_alone(
    component: &Path,
    input: &str,
    runs: usize,
) -> anyhow::Result<(f64, f64)> {
    let cache = tempfile::tempdir()?;
    let handler = Runtime::new(options(cache.path(), true))?.load(component)?;
    let ctx = context();
    let (mut guest, mut native) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = thread_cpu_ns();
        expect_output(handler.run(input, &ctx).await, "transform")?;
        guest.push((thread_cpu_ns() - t) as f64 / 1000.0);
        let t = thread_cpu_ns();
        let out = wasm_activity_guest::call(order_pricing::price, input);
        native.push((thread_cpu_ns() - t) as f64 / 1000.0);
        anyhow::ensure!(out.is_ok(), "native transform failed");
    }
    Ok((median(&mut guest), median(&mut native)))
}

pub struct EpochCost {
    pub workload: &'static str,
    pub with_us: f64,
    pub without_us: f64,
    /// Median of per-round with/without ratios.
    pub ratio: f64,
}

/// Runs the same guest with and without epoch interruption, interleaved.
pub async fn epoch_cost(
    workload: &'static str,
    component: &Path,
    input: &str,
    tasks: usize,
    rounds: usize,
) -> anyhow::Result<EpochCost> {
    let cache = tempfile::tempdir()?;
    let on = Runtime::new(options(cache.path(), true))?.load(component)?;
    let off = Runtime::new(options(cache.path(), false))?.load(component)?;
    // Warm both.
    cpu_per_task(&on, input, 5).await?;
    cpu_per_task(&off, input, 5).await?;
    let (mut with, mut without, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let a = cpu_per_task(&on, input, tasks).await?;
        let b = cpu_per_task(&off, input, tasks).await?;
        with.push(a);
        without.push(b);
        ratios.push(a / b);
    }
    Ok(EpochCost {
        workload,
        with_us: median(&mut with) / 1000.0,
        without_us: median(&mut without) / 1000.0,
        ratio: median(&mut ratios),
    })
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The example components per language, as built by the test run.
pub fn language_components(root: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        (
            "Rust",
            root.join("examples/rust/target/wasm32-wasip2/release/order_pricing.wasm"),
        ),
        ("C", root.join("examples/c/order_pricing.wasm")),
        ("JavaScript", root.join("examples/js/order_pricing.wasm")),
        ("Python", root.join("examples/python/order_pricing.wasm")),
    ]
}

/// CPU of one `SendTaskHeartbeat` through the host's service client (`client`:
/// the lean one, or the SDK with the host's settings: no SDK retries, the
/// host's timeouts) on one thread, against the fake service on other threads:
/// the floor that every heartbeat and, twice per task, every poll and report
/// pays, whatever the worker does around it. Median of `calls` calls on a
/// warm connection, in µs.
pub fn call_us(
    url: &str,
    calls: usize,
    client: wasm_activity_worker::config::AwsClient,
) -> anyhow::Result<f64> {
    use wasm_activity_worker::service::sfn::SfnClients;
    use wasm_activity_worker::service::{ActivityService, StepFunctions, TaskToken};
    let url = url.to_string();
    on_one_thread(move || {
        Box::pin(async move {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .endpoint_url(url)
                .credentials_provider(aws_sdk_sfn::config::Credentials::new(
                    "bench", "bench", None, None, "bench",
                ))
                .load()
                .await;
            let service = StepFunctions::new(
                SfnClients::new(&sdk, client),
                "arn:aws:states:us-east-1:000000000000:activity:sdk-floor",
                "bench",
            );
            let token = TaskToken::new("tok-floor-0");
            let mut samples = Vec::with_capacity(calls);
            for i in 0..calls + calls / 10 {
                let t = thread_cpu_ns();
                service
                    .heartbeat(&token, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("SendTaskHeartbeat to the fake service: {e}"))?;
                // The first tenth warms the connection and the SDK's caches.
                if i >= calls / 10 {
                    samples.push((thread_cpu_ns() - t) as f64 / 1000.0);
                }
            }
            Ok(median(&mut samples))
        })
    })
}
