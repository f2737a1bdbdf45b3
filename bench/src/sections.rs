//! The benchmark sections, one function each: what is measured, against
//! which workers, and how the figures are checked before they are reported.
//! `main.rs` runs them in order and renders BENCHMARKS.md.

use crate::fake::Work;
use crate::workers::{HostOptions, Kind, Paths};
use crate::{Bench, Series, difference, ratio};
use crate::{inproc, workers, workload};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const HOST_DEFAULT: fn(&Paths) -> HostOptions<'_> = |p| HostOptions {
    component: &p.rust_example,
    heartbeat: "10s",
    reload: false,
    // "worker running" and reload lines, not one line per task.
    log: HOST_LOG,
    pollers: None,
    aws_client: "lean",
    memory_limit: "16MiB",
    otlp_endpoint: "",
};

const HOST_LOG: &str =
    "warn,wasm_activity=info,wasm_activity_worker::task=warn,wasm_activity_worker::heartbeat=warn";

pub(crate) async fn transform(b: &mut Bench) -> anyhow::Result<()> {
    let kinds = [Kind::Host, Kind::Native, Kind::Boto3];
    let host = HOST_DEFAULT(&b.paths);
    let running = b.start_all(&kinds, 64, "price", &host, "transform")?;
    b.md.push_str("## The JSON transform: host vs native vs boto3\n\n");
    let _ = writeln!(
        b.md,
        "**The service call floor**: one `SendTaskHeartbeat` costs {:.1} µs of CPU through the host's \
         client (the lean AWS JSON client: `aws-sigv4` signing, one pooled hyper connection) and {:.1} µs \
         through `aws-sdk-sfn` with the host's settings ({:.2}x; medians of single calls on one thread, \
         warm connection, the fake service on other threads). Every task needs two such calls (the poll \
         that hands it out and its report): the host makes them through its lean client, the native \
         worker through the SDK, as a hand-written worker would.\n",
        b.lean_call_us,
        b.sdk_call_us,
        b.lean_call_us / b.sdk_call_us,
    );
    b.md.push_str(
        "The order-pricing example (same code in every worker: the Rust guest, the same crate compiled \
         natively, and the Python example's `price` in CPython), 64 tasks in flight, against the loopback \
         fake service. CPU is the worker process's own (all threads); latency is from the service handing \
         out a task to receiving its result.\n\n",
    );
    for latency_ms in [0u64, 1] {
        b.fake.set_latency(Duration::from_millis(latency_ms));
        for (label, bytes, n_rust, n_py) in [
            ("1 KiB", 1024, 3000, 600),
            ("100 KiB", 100 * 1024, 400, 100),
        ] {
            let work = workload::orders(bytes, 8);
            let tasks = |k: Kind| b.tasks(if k == Kind::Boto3 { n_py } else { n_rust });
            let s = b.compare(&running, &work, 64, tasks).await?;
            let _ = writeln!(b.md, "### {label} input, {latency_ms} ms service latency\n");
            b.table(&running, &s);
            let extra = difference(&s[0].cpu_us, &s[1].cpu_us);
            let host_vs_native = ratio(&s[0].cpu_us, &s[1].cpu_us);
            let boto3_vs_host = ratio(&s[2].cpu_us, &s[0].cpu_us);
            let boto3_vs_native = ratio(&s[2].cpu_us, &s[1].cpu_us);
            let boto3_vs_floor = Series::med(&s[2].cpu_us) / (2.0 * b.sdk_call_us);
            let _ = writeln!(
                b.md,
                "Host CPU per task: {extra:+.1} µs vs native ({host_vs_native:.2}x; medians of per-round \
                 differences and ratios); boto3 uses {boto3_vs_host:.1}x the host's CPU per task, \
                 {boto3_vs_native:.1}x the native worker's, and {boto3_vs_floor:.1}x the two SDK calls \
                 alone.\n"
            );
            if latency_ms == 0 {
                if bytes == 1024 {
                    b.target(
                        "Host CPU/task at most 0.5x the native SDK worker's at 1 KiB",
                        format!("{host_vs_native:.2}x ({extra:+.1} µs)"),
                        host_vs_native <= 0.5,
                    );
                } else {
                    b.target(
                        "Host CPU/task within 1.4x of native at 100 KiB",
                        format!("{host_vs_native:.2}x"),
                        host_vs_native <= 1.4,
                    );
                }
                b.target(
                    &format!("At least 20x less CPU/task than boto3 ({label})"),
                    format!(
                        "{boto3_vs_host:.1}x (native worker {boto3_vs_native:.1}x; the SDK's two calls \
                         alone {boto3_vs_floor:.1}x)"
                    ),
                    boto3_vs_host >= 20.0,
                );
            }
        }
    }
    b.fake.set_latency(Duration::ZERO);
    Ok(())
}

pub(crate) async fn in_flight(b: &mut Bench) -> anyhow::Result<()> {
    b.md.push_str("## Throughput at 1, 64 and 1,000 tasks in flight\n\n");
    b.md.push_str(
        "Each worker runs N tasks at once (the host: `max_concurrent = pollers = N`; the baselines: N poll \
         loops/threads). Two workloads: the 1 KiB transform (CPU-bound at high N on 2 cores) and a task \
         that waits 20 ms (the host: the scenario guest sleeping through WASI; the baselines: a 20 ms \
         sleep), whose ideal throughput is N / 20 ms. 1 ms service latency.\n\n",
    );
    b.fake.set_latency(Duration::from_millis(1));
    let sleep_guest = workload::action(serde_json::json!({"action": "sleep", "ms": 20}));
    let orders = workload::orders(1024, 8);
    let mut unloaded = [0.020f64; 2];
    for n in b.args.in_flight.clone() {
        let kinds = [Kind::Host, Kind::Native, Kind::Boto3];
        let host_price = HOST_DEFAULT(&b.paths);
        let running = b.start_all(&kinds, n, "price", &host_price, "price")?;
        let scale = |k: Kind| if k == Kind::Boto3 { 4 } else { 1 };
        let s = b
            .compare(&running, &orders, n as u64, |k| {
                b.tasks(
                    match n {
                        1 => 400,
                        64 => 3000,
                        _ => 4000,
                    } / scale(k),
                )
            })
            .await?;
        let _ = writeln!(b.md, "### {n} in flight: 1 KiB transform\n");
        b.table(&running, &s);
        drop(running);

        let host_sleep = HostOptions {
            component: &b.paths.scenario,
            ..HOST_DEFAULT(&b.paths)
        };
        let running = b.start_all(&kinds, n, "sleep20", &host_sleep, "sleep")?;
        let sleep_work: Vec<Work> = sleep_guest.clone();
        let per_round = match n {
            1 => 50,
            64 => 3200,
            _ => 8000,
        };
        let s = b
            .compare(&running, &sleep_work, n as u64, |k| {
                b.tasks(per_round / scale(k))
            })
            .await?;
        // One task's full cycle when nothing else runs (N = 1): hand-out to
        // report (p50), plus the poll's and the report's service latency.
        if n == 1 {
            unloaded = [0, 1].map(|i| (Series::med(&s[i].p50_ms) + 2.0) / 1000.0);
        }
        let cycle = unloaded[0];
        let ideal = n as f64 / cycle;
        let _ = writeln!(b.md, "### {n} in flight: 20 ms task\n");
        b.table(&running, &s);
        let achieved = Series::med(&s[0].tps) / ideal;
        let native = Series::med(&s[1].tps) / (n as f64 / unloaded[1]);
        let _ = writeln!(
            b.md,
            "Host: {:.0} tasks/s = {achieved:.2} x N / latency, where latency is one task's cycle with \
             nothing else running (p50 at N = 1 plus 2 ms of service latency: {:.1} ms); the native worker \
             reaches {native:.2} of its own.\n",
            Series::med(&s[0].tps),
            cycle * 1000.0
        );
        if n <= 64 {
            b.target(
                &format!("Latency-bound throughput >= 0.95 x N / latency (N = {n})"),
                format!("{achieved:.2} (native {native:.2})"),
                achieved >= 0.95,
            );
        }
        if n == 1000 {
            drop(running);
            memory_per_task(b).await?;
        }
    }
    b.fake.set_latency(Duration::ZERO);
    Ok(())
}

/// Fills the precompile cache with `components`, as `wasm-activity check`
/// does in a deploy pipeline, so a host started afterwards loads them
/// without compiling (and without compilation's memory in its RSS).
fn precompile(b: &Bench, components: &[PathBuf]) -> anyhow::Result<()> {
    let mut config = format!(
        "endpoint = \"http://127.0.0.1:9\"\nregion = \"us-east-1\"\ncache_dir = \"{}\"\n",
        b.paths.cache_dir.display()
    );
    for (i, p) in components.iter().enumerate() {
        let _ = writeln!(
            config,
            "[activity.c{i}]\narn = \"{}\"\ncomponent = \"{}\"",
            workers::arn(&format!("c{i}")),
            p.display()
        );
    }
    let check_config = b.paths.work_dir.join("precompile.toml");
    std::fs::write(&check_config, config)?;
    let status = std::process::Command::new(&b.paths.host)
        .args(["check", "--config"])
        .arg(&check_config)
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "precompiling {components:?} failed");
    Ok(())
}

/// One fresh host's resident memory: when started, and its peaks with 500
/// and then 1,000 sleeping Rust guests in flight.
struct MemoryRun {
    pollers: usize,
    /// Tasks in flight at each of the two peaks.
    in_flight: [u64; 2],
    idle_kib: u64,
    peak_kib: [u64; 2],
    /// Proportional resident memory (PSS) at each peak.
    pss_kib: [u64; 2],
    /// Sockets the host held at its peak (its HTTP connections).
    sockets: usize,
}

impl MemoryRun {
    /// The marginal cost of one in-flight task: the difference between the
    /// two peaks over the tasks added.
    fn per_task_kib(&self) -> f64 {
        self.peak_kib[1].saturating_sub(self.peak_kib[0]) as f64
            / (self.in_flight[1] - self.in_flight[0]) as f64
    }

    /// The same for proportional memory (PSS).
    fn pss_per_task_kib(&self) -> f64 {
        self.pss_kib[1].saturating_sub(self.pss_kib[0]) as f64
            / (self.in_flight[1] - self.in_flight[0]) as f64
    }
}

/// Peak RSS of a fresh host running `component`'s `sleep` action with
/// `in_flight[0]` and then `in_flight[1]` tasks at once.
async fn memory_run(
    b: &Bench,
    pollers: usize,
    host: HostOptions<'_>,
    in_flight: [u64; 2],
    tag: &str,
    measure_pss: bool,
) -> anyhow::Result<MemoryRun> {
    let host = HostOptions {
        pollers: Some(pollers),
        ..host
    };
    let slots = in_flight[1] as usize;
    let running = b.start_all(&[Kind::Host], slots, "", &host, &format!("{tag}-{pollers}"))?;
    let (_, arn, worker) = &running[0];
    let idle_kib = worker.rss_kib().0;
    // A 1 KiB input, as in the target; the guest ignores the padding.
    let input = serde_json::json!({"action": "sleep", "ms": 1500, "pad": "x".repeat(980)});
    let work = workload::action(input);
    let mut peak_kib = [0; 2];
    let mut pss_kib = [0; 2];
    let mut sockets = 0;
    for (i, in_flight) in in_flight.into_iter().enumerate() {
        let fake = b.fake.clone();
        let (arn, work) = (arn.clone(), work.clone());
        let total = in_flight * 2;
        let round = tokio::spawn(async move {
            fake.round(&arn, &work, in_flight, total, Duration::from_secs(300))
                .await
        });
        while !round.is_finished() {
            let rss = worker.rss_kib().0;
            if rss > peak_kib[i] {
                peak_kib[i] = rss;
                sockets = worker.sockets();
            }
            if measure_pss {
                pss_kib[i] = pss_kib[i].max(worker.pss_kib());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let result = round.await??;
        b.check_round("memory host", &result);
        anyhow::ensure!(
            result.max_outstanding == in_flight,
            "the host held at most {} tasks at once, not {in_flight}",
            result.max_outstanding
        );
    }
    Ok(MemoryRun {
        pollers,
        in_flight,
        idle_kib,
        peak_kib,
        pss_kib,
        sockets,
    })
}

/// Resident memory per in-flight task, with a poller count that keeps 1,000
/// slots busy here (16) and with one long poll per slot (1,000).
pub(crate) async fn memory_per_task(b: &mut Bench) -> anyhow::Result<()> {
    let python = b.paths.root.join("tests/guests/python/scenario.wasm");
    precompile(b, &[b.paths.scenario.clone(), python.clone()])?;
    let rust = HostOptions {
        component: &b.paths.scenario,
        ..HOST_DEFAULT(&b.paths)
    };
    let runs = [
        memory_run(b, 16, rust, [500, 1000], "memory", false).await?,
        memory_run(b, 1000, rust, [500, 1000], "memory", false).await?,
    ];
    let mib = |kib: u64| kib as f64 / 1024.0;
    let _ = writeln!(
        b.md,
        "### Memory at 1,000 in flight\n\nRust guests that sleep 1.5 s on a 1 KiB input, so each task holds a live \
         instance (its linear memory, fiber stack, store, WASI context) and its task state. A fresh host with the \
         component precompiled; peak RSS with 500 and then 1,000 tasks in flight, and the difference over 500 as \
         the cost of one more task.\n\n\
         | pollers | at start MiB | 500 in flight MiB | 1,000 in flight MiB | KiB per extra task | sockets at peak |\n\
         |---:|---:|---:|---:|---:|---:|"
    );
    for r in &runs {
        let _ = writeln!(
            b.md,
            "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
            r.pollers,
            mib(r.idle_kib),
            mib(r.peak_kib[0]),
            mib(r.peak_kib[1]),
            r.per_task_kib(),
            r.sockets
        );
    }
    let [few, many] = &runs;
    let _ = writeln!(
        b.md,
        "\n16 pollers keep 1,000 slots busy against this service. With one long poll per slot (pollers = 1,000) \
         every poll holds an HTTP/1.1 connection of its own in the client's connection pool, about 30 KiB of \
         hyper buffers each, which adds {:.1} MiB at 1,000 in flight; a native worker with 1,000 polls pays the \
         same. The targets are read from the 16-poller host.\n",
        mib(many.peak_kib[1]) - mib(few.peak_kib[1])
    );
    b.target(
        "<= 100 KiB resident per in-flight task (Rust guest, 16 pollers)",
        format!("{:.0} KiB", few.per_task_kib()),
        few.per_task_kib() <= 100.0,
    );
    b.target(
        "1,000 in flight under 150 MiB total (16 pollers)",
        format!(
            "{:.1} MiB (1,000 pollers: {:.1} MiB)",
            mib(few.peak_kib[1]),
            mib(many.peak_kib[1])
        ),
        mib(few.peak_kib[1]) < 150.0,
    );

    // Python: the scenario guest sleeping in `time.sleep`, 16 pollers. The
    // quick run stops at 200 in flight (each Python instance's pages).
    let steps = if b.args.quick {
        [100, 200]
    } else {
        [500, 1000]
    };
    let py = memory_run(
        b,
        16,
        HostOptions {
            component: &python,
            memory_limit: "64MiB",
            ..HOST_DEFAULT(&b.paths)
        },
        steps,
        "memory-python",
        true,
    )
    .await?;
    let per_task_mib = py.per_task_kib() / 1024.0;
    let pss_mib = py.pss_per_task_kib() / 1024.0;
    let _ = writeln!(
        b.md,
        "Python guests (the Python scenario guest sleeping 1.5 s in `time.sleep`, 16 pollers): {:.1} MiB at \
         start, {:.1} MiB with {} in flight, {:.1} MiB with {}: {per_task_mib:.2} MiB of RSS per extra task \
         but {pss_mib:.2} MiB of PSS. RSS counts the component's copy-on-write memory image once per instance \
         that read it, though every instance maps the same pages; PSS counts each page once, divided among \
         its mappings, so it is what one more task costs the machine: what the interpreter's start and the \
         task wrote of its linear memory, its store and its stack.\n",
        mib(py.idle_kib),
        mib(py.peak_kib[0]),
        steps[0],
        mib(py.peak_kib[1]),
        steps[1],
    );
    b.target(
        &format!(
            "<= 4 MiB resident per in-flight Python task ({} in flight)",
            steps[1]
        ),
        format!("{pss_mib:.2} MiB PSS ({per_task_mib:.2} MiB RSS)"),
        pss_mib <= 4.0,
    );
    Ok(())
}

pub(crate) async fn heartbeats(b: &mut Bench) -> anyhow::Result<()> {
    let with = HostOptions {
        component: &b.paths.scenario,
        heartbeat: "1s",
        ..HOST_DEFAULT(&b.paths)
    };
    let without = HostOptions {
        component: &b.paths.scenario,
        heartbeat: "1h",
        ..HOST_DEFAULT(&b.paths)
    };
    // Host with and without heartbeats, the same host on the SDK's client
    // (the baseline for the heartbeat target), then the native worker with
    // and without: the same 3 s task, the same 1 s interval.
    let mut running = b.start_all(&[Kind::Host], 1000, "", &with, "hb-on")?;
    running.extend(b.start_all(&[Kind::Host], 1000, "", &without, "hb-off")?);
    let with_sdk = HostOptions {
        aws_client: "sdk",
        ..with
    };
    let without_sdk = HostOptions {
        aws_client: "sdk",
        ..without
    };
    running.extend(b.start_all(&[Kind::Host], 1000, "", &with_sdk, "hb-on-sdk")?);
    running.extend(b.start_all(&[Kind::Host], 1000, "", &without_sdk, "hb-off-sdk")?);
    let native_on = "sleep:3000,heartbeat:1000";
    running.extend(b.start_all(&[Kind::Native], 1000, native_on, &with, "hb-on")?);
    running.extend(b.start_all(&[Kind::Native], 1000, "sleep:3000", &with, "hb-off")?);
    let work = workload::action(serde_json::json!({"action": "sleep", "ms": 3000}));
    let s = b.compare(&running, &work, 1000, |_| b.tasks(2000)).await?;
    let cost = |on: &Series, off: &Series| {
        let (cpu_on, cpu_off) = (Series::med(&on.cpu_us), Series::med(&off.cpu_us));
        let beats = Series::med(&on.heartbeats);
        let share = (cpu_on - cpu_off) / cpu_on * 100.0;
        (cpu_on, cpu_off, beats, (cpu_on - cpu_off) / beats, share)
    };
    let (on, off, beats, per_beat, share) = cost(&s[0], &s[1]);
    let (s_on, s_off, s_beats, s_per_beat, s_share) = cost(&s[2], &s[3]);
    let (n_on, n_off, n_beats, n_per_beat, n_share) = cost(&s[4], &s[5]);
    let _ = writeln!(
        b.md,
        "## Heartbeats at 1,000 in flight\n\nSix workers, 1,000 tasks in flight each, every task waiting 3 s \
         (the host: the scenario guest sleeping; the native worker: a sleep): the host heartbeating every \
         second and effectively never (interval 1 h: its heartbeat timers still run), the same two on the \
         SDK's client (`aws_client = \"sdk\"`, the host before the lean client), and the native worker \
         heartbeating every second (a timer beside the task, as a hand-written worker would) and not at all. \
         Medians of {} interleaved rounds.\n\n| worker | heartbeats per task | CPU µs/task with | without | \
         per heartbeat µs | heartbeats' share of task CPU |\n|---|---:|---:|---:|---:|---:|\n\
         | wasm-activity (Rust guest) | {beats:.1} | {on:.1} | {off:.1} | {per_beat:.0} | {share:.1}% |\n\
         | wasm-activity, SDK client | {s_beats:.1} | {s_on:.1} | {s_off:.1} | {s_per_beat:.0} | {s_share:.1}% |\n\
         | native Rust worker | {n_beats:.1} | {n_on:.1} | {n_off:.1} | {n_per_beat:.0} | {n_share:.1}% |\n\n\
         One heartbeat is one service call: {:.0} µs through the lean client and {:.0} µs through the SDK \
         on an idle thread (see *The service call floor*), more in a process serving 1,000 tasks \
         (wake-ups, a busier connection pool). At this aggressive interval heartbeats are a large share of \
         the CPU of a task that only waits, whoever sends them; at the default 10 s interval the host's \
         share would be {:.1}%, and a task doing real work proportionally less.\n",
        b.args.rounds,
        b.lean_call_us,
        b.sdk_call_us,
        share / 10.0,
    );
    let per_beat_ratio = per_beat / s_per_beat;
    b.target(
        "CPU per heartbeat at most half the SDK client's (same host, same run)",
        format!("{per_beat_ratio:.2}x ({per_beat:.0} µs vs {s_per_beat:.0} µs)"),
        per_beat_ratio <= 0.5,
    );
    b.target(
        "Heartbeats <= 1% of task CPU (1 s interval, guest that only sleeps)",
        format!(
            "{share:.1}% ({per_beat:.0} µs per heartbeat; native worker {n_share:.1}%, {n_per_beat:.0} µs)"
        ),
        share <= 1.0,
    );
    Ok(())
}

/// Appends a custom section (id 0) to a component: a different file (new
/// content hash, so a reload) that behaves the same.
fn variant(bytes: &[u8], index: usize) -> Vec<u8> {
    let name = b"bench-variant";
    let payload = index.to_le_bytes();
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

pub(crate) async fn hot_swap(b: &mut Bench) -> anyhow::Result<()> {
    let swaps = if b.args.quick { 5 } else { 40 };
    let dir = b.paths.work_dir.join("swap");
    std::fs::create_dir_all(&dir)?;
    let original = std::fs::read(&b.paths.rust_example)?;
    let mut variants = Vec::new();
    for i in 0..swaps {
        let p = b.paths.work_dir.join(format!("variant-{i}.wasm"));
        std::fs::write(&p, variant(&original, i))?;
        variants.push(p);
    }
    // Precompile every variant, as a deploy pipeline would.
    precompile(b, &variants)?;

    let live = dir.join("handler.wasm");
    std::fs::copy(&b.paths.rust_example, &live)?;
    let host = HostOptions {
        component: &live,
        heartbeat: "10s",
        reload: true,
        log: HOST_LOG,
        pollers: None,
        aws_client: "lean",
        memory_limit: "16MiB",
        otlp_endpoint: "",
    };
    let running = b.start_all(&[Kind::Host], 64, "", &host, "swap")?;
    let arn = running[0].1.clone();
    let work = workload::orders(1024, 8);
    let total = b.tasks(40_000);
    let fake = b.fake.clone();
    let round = tokio::spawn(async move {
        fake.round(&arn, &work, 64, total, Duration::from_secs(600))
            .await
    });
    for (i, v) in variants.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tmp = dir.join(format!(".handler-{i}.tmp"));
        std::fs::copy(v, &tmp)?;
        std::fs::rename(&tmp, &live)?;
    }
    let r = round.await??;
    let log = std::fs::read_to_string(b.paths.work_dir.join("swap-host-64.log"))?;
    let mut took: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("component reloaded"))
        .filter_map(|l| {
            l.split("took_us=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .map(|us| us / 1000.0)
        .collect();
    took.sort_by(f64::total_cmp);
    let p = |q: f64| {
        took.get(((took.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let lost = total - r.ok;
    b.check_round("hot-swap host", &r);
    if lost > 0 {
        b.problem(format!("hot swap: {lost} of {total} tasks lost"));
    }
    let _ = writeln!(
        b.md,
        "## Hot swap under load\n\n{} swaps of a precompiled Rust component (renamed over the configured file every \
         200 ms) while 64 tasks stay in flight: {} reloads seen, load-and-swap p50 {:.2} ms, p99 {:.2} ms, max \
         {:.2} ms (the host's own time from noticing the change to new tasks using the new version; the \
         watcher's debounce, 10 ms here, comes before it). {} tasks, {} ok, {} wrong or failed: {lost} lost.\n",
        variants.len(),
        took.len(),
        p(0.5),
        p(0.99),
        took.last().copied().unwrap_or(f64::NAN),
        total,
        r.ok,
        r.wrong + r.failed
    );
    b.target(
        "Hot swap p99 <= 10 ms",
        format!("{:.2} ms", p(0.99)),
        p(0.99) <= 10.0,
    );
    b.target(
        "0 lost tasks during hot swaps",
        format!("{lost}"),
        lost == 0 && took.len() >= variants.len() / 2,
    );
    Ok(())
}

pub(crate) async fn in_process(b: &mut Bench) -> anyhow::Result<()> {
    let input = workload::orders(1024, 1)[0].input.to_string();
    b.md.push_str(
        "## Instantiation per guest language\n\nIn process, on the host library: compile (no cache); then, as a \
         restarted worker does, create the runtime (engine, instance pool, linker: once per process), load \
         the component from the precompile cache and run the first task (1 KiB order), medians of 7 such \
         starts, each in a fresh process; then 2,000 bare instantiations, and the whole task (instantiate, transform, drop) when warm.\n\n| guest | \
         component | compile | runtime | load from cache | first task after start (load + run) | first \
         instantiate | warm instantiate p50 | p99 | warm task p50 | page faults per warm task |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let samples = if b.args.quick { 200 } else { 2000 };
    for (language, path) in inproc::language_components(&b.paths.root) {
        if !path.exists() {
            anyhow::bail!("{} is missing; scripts/bench.sh builds it", path.display());
        }
        let i = inproc::instantiation(language, &path, &input, samples).await?;
        let _ = writeln!(
            b.md,
            "| {} | {:.0} KiB | {:.0} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} µs | {:.1} µs | {:.1} µs | {:.0} µs | {:.0} |",
            i.language,
            i.size as f64 / 1024.0,
            i.compile.as_secs_f64() * 1e3,
            i.engine.as_secs_f64() * 1e3,
            i.load_cached.as_secs_f64() * 1e3,
            i.first_task.as_secs_f64() * 1e3,
            i.first.as_secs_f64() * 1e6,
            i.warm_p50.as_secs_f64() * 1e6,
            i.warm_p99.as_secs_f64() * 1e6,
            i.task_p50.as_secs_f64() * 1e6,
            i.task_faults,
        );
        if language == "Rust" {
            let p50 = i.warm_p50.as_secs_f64() * 1e6;
            let p99 = i.warm_p99.as_secs_f64() * 1e6;
            let first = i.first_task.as_secs_f64() * 1e3;
            b.target(
                "Warm instantiate p50 <= 15 µs (Rust guest)",
                format!("{p50:.1} µs"),
                p50 <= 15.0,
            );
            b.target(
                "Warm instantiate p99 <= 50 µs (Rust guest)",
                format!("{p99:.1} µs"),
                p99 <= 50.0,
            );
            b.target(
                "First task after start <= 1 ms with a warm cache (load + first run)",
                format!(
                    "{first:.2} ms (+{:.2} ms runtime creation)",
                    i.engine.as_secs_f64() * 1e3
                ),
                first <= 1.0,
            );
        }
        // Which phase bounds a polyglot task: creating the instance, or the
        // call (the interpreter's first-call setup, JSON, the handler).
        let instantiate = i.warm_p50.as_secs_f64() * 1e6;
        let task = i.task_p50.as_secs_f64() * 1e6;
        let call = task - instantiate;
        let phases = format!(
            "instantiate {instantiate:.0} µs + call {call:.0} µs, {:.0} page faults; bounded by {}",
            i.task_faults,
            if instantiate >= call {
                "instantiation"
            } else {
                "the call"
            }
        );
        match language {
            "Python" => {
                b.target(
                    "Python whole 1 KiB task <= 1 ms (warm)",
                    format!("{:.2} ms ({phases})", task / 1e3),
                    task <= 1000.0,
                );
                b.target(
                    "Python warm instantiate p50 <= 100 µs",
                    format!("{instantiate:.0} µs"),
                    instantiate <= 100.0,
                );
            }
            "JavaScript" => b.target(
                "JavaScript whole 1 KiB task <= 0.3 ms (warm)",
                format!("{:.2} ms ({phases})", task / 1e3),
                task <= 300.0,
            ),
            _ => {}
        }
    }
    b.md.push_str(
        "\n### The transform alone: guest vs native\n\nCPU per call on one thread: the Rust guest in a fresh \
         instance (instantiate, copy in, transform, copy out, drop) vs the same crate compiled natively, \
         through the same SDK entry point.\n\n| input | guest µs | native µs | ratio |\n|---|---:|---:|---:|\n",
    );
    for (label, bytes) in [("1 KiB", 1024), ("100 KiB", 100 * 1024)] {
        let order = workload::orders(bytes, 1)[0].input.to_string();
        let component = b.paths.rust_example.clone();
        let runs = if b.args.quick { 50 } else { 500 };
        let (guest, native) = inproc::on_one_thread(move || {
            Box::pin(async move { inproc::transform_alone(&component, &order, runs).await })
        })?;
        let _ = writeln!(
            b.md,
            "| {label} | {guest:.1} | {native:.1} | {:.2}x |",
            guest / native
        );
    }
    b.md.push_str("\n## Epoch interruption vs none\n\nThe same guest on two runtimes, one with epoch interruption (deadlines, fair yielding, stopping runaway guests) and one without, interleaved, CPU per task on one thread.\n\n| workload | with epochs µs/task | without µs/task | ratio (median of rounds) |\n|---|---:|---:|---:|\n");
    let rounds = b.args.rounds;
    let quick = b.args.quick;
    let (example, scenario) = (b.paths.rust_example.clone(), b.paths.scenario.clone());
    let transform_input = input.clone();
    let costs = inproc::on_one_thread(move || {
        Box::pin(async move {
            anyhow::Ok([
                inproc::epoch_cost(
                    "1 KiB transform (Rust guest)",
                    &example,
                    &transform_input,
                    if quick { 200 } else { 2000 },
                    rounds,
                )
                .await?,
                inproc::epoch_cost(
                    "CPU-heavy guest (3M hash rounds)",
                    &scenario,
                    r#"{"action":"work","rounds":3000000}"#,
                    if quick { 5 } else { 40 },
                    rounds,
                )
                .await?,
            ])
        })
    })?;
    for c in costs {
        let _ = writeln!(
            b.md,
            "| {} | {:.1} | {:.1} | {:.3} |",
            c.workload, c.with_us, c.without_us, c.ratio
        );
    }
    b.md.push('\n');
    Ok(())
}
