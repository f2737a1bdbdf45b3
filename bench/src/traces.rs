//! The traces section: what a collector that is down or stalls costs tasks
//! (nothing, against one that answers) and what traces cost at all. Its own
//! file beside sections.rs, with the stand-in collectors it needs.

use crate::sections::HOST_DEFAULT;
use crate::workers::{HostOptions, Kind};
use crate::{Bench, Series, ratio, workload};
use std::fmt::Write as _;

/// Traces cost CPU, but a collector that is down or stalls must not cost
/// tasks anything: the same host with traces off, to a collector that
/// answers, to a closed port and to one that accepts and never answers.
pub(crate) async fn otlp_collector(b: &mut Bench) -> anyhow::Result<()> {
    let answering = collector::answering().await?;
    let down = collector::closed_port()?;
    let stalled = collector::stalling().await?;
    let variants = [
        ("traces off", String::new()),
        ("collector answering", answering),
        ("collector down (closed port)", down),
        ("collector stalled (never answers)", stalled),
    ];
    let mut running = Vec::new();
    for (i, (_, url)) in variants.iter().enumerate() {
        let host = HostOptions {
            otlp_endpoint: url,
            ..HOST_DEFAULT(&b.paths)
        };
        running.extend(b.start_all(&[Kind::Host], 64, "", &host, &format!("otlp{i}"))?);
    }
    let work = workload::orders(1024, 8);
    let s = b.compare(&running, &work, 64, |_| b.tasks(3000)).await?;
    let _ = writeln!(
        b.md,
        "## Traces with the collector up, down or stalled\n\nFour hosts on the 1 KiB transform, 64 in \
         flight: traces off, sent to a collector that answers at once, to a closed port, and to a collector \
         that accepts connections and never answers. Spans go to a bounded queue that the task path never \
         waits on; an export thread sends them and what does not fit is dropped and counted. Medians of {} \
         interleaved rounds.\n\n| host | CPU µs/task | tasks/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|",
        b.args.rounds
    );
    for ((label, _), s) in variants.iter().zip(&s) {
        let _ = writeln!(
            b.md,
            "| {label} | {:.1} | {:.0} | {:.2} | {:.2} |",
            Series::med(&s.cpu_us),
            Series::med(&s.tps),
            Series::med(&s.p50_ms),
            Series::med(&s.p99_ms),
        );
    }
    // Making spans costs CPU whatever the collector does, and at this
    // throughput CPU is latency; what the collector's state must not change
    // is measured against the one that answers.
    fn p50(s: &Series) -> &[f64] {
        &s.p50_ms
    }
    fn p99(s: &Series) -> &[f64] {
        &s.p99_ms
    }
    fn cpu(s: &Series) -> &[f64] {
        &s.cpu_us
    }
    let vs = |i: usize, j: usize, f: fn(&Series) -> &[f64]| ratio(f(&s[i]), f(&s[j]));
    let _ = writeln!(
        b.md,
        "\nTraces cost CPU whoever receives them: with a collector that answers, {:.2}x the CPU per task \
         of traces off (the spans: task, instantiate, guest run, heartbeats, each report attempt, \
         exported as protobuf over HTTP; with traces off a task costs the host {:.0} µs), and at this throughput CPU is latency (p50 {:.2}x). Against the \
         collector that answers, a collector that is down gives p50 {:.2}x and p99 {:.2}x; one that \
         stalls, p50 {:.2}x and p99 {:.2}x (medians of per-round ratios).\n",
        vs(1, 0, cpu),
        Series::med(&s[0].cpu_us),
        vs(1, 0, p50),
        vs(2, 1, p50),
        vs(2, 1, p99),
        vs(3, 1, p50),
        vs(3, 1, p99),
    );
    let worst = vs(2, 1, p50).max(vs(3, 1, p50));
    b.target(
        "Collector down or stalled: task p50 within 1.2x of a collector that answers (same run)",
        format!(
            "down {:.2}x, stalled {:.2}x (p99 {:.2}x, {:.2}x; traces on cost {:.2}x the CPU of off)",
            vs(2, 1, p50),
            vs(3, 1, p50),
            vs(2, 1, p99),
            vs(3, 1, p99),
            vs(1, 0, cpu),
        ),
        worst <= 1.2,
    );
    Ok(())
}

/// Stand-in OTLP collectors on 127.0.0.1 for [`otlp_collector`].
mod collector {
    /// Answers every export 200 with an empty (valid) protobuf response.
    pub(super) async fn answering() -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().fallback(|| async {
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }

    /// A port nothing listens on: connections are refused.
    pub(super) fn closed_port() -> anyhow::Result<String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        drop(listener);
        Ok(url)
    }

    /// Accepts connections, reads nothing and never answers.
    pub(super) async fn stalling() -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Ok(url)
    }
}
