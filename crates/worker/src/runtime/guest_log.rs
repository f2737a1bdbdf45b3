//! Guest output as host log lines.
//!
//! A guest's `log` calls, stdout and stderr all become tracing events with
//! target `guest`, tagged with the activity and task, so `RUST_LOG=guest=warn`
//! filters them like any other log. A guest is hostile, so:
//!
//! * **Budget in bytes and lines.** Every emitted line costs its length, and
//!   at least [`MIN_LINE_COST`]: a log event costs the host far more than
//!   the bytes of its message, so a megabyte of newlines must not become a
//!   million events. Once the budget is spent, further output is dropped
//!   with a single notice, and a call does no more work than the budget it
//!   found (what does not fit is counted, not looked at).
//! * **Secrets redacted before anything is split or cut.** stdout and
//!   stderr are byte streams: they are redacted as a stream (keeping back
//!   bytes that could be the start of a secret, see
//!   [`crate::redact::Redactor::redact_window`]) before they are split into
//!   lines and lines longer than [`MAX_LINE`] into pieces, so no secret is
//!   cut in two where neither half matches.
//! * **Inert text.** Each line is escaped ([`crate::redact::escape`]): a
//!   guest's CR, ESC, NUL or U+2028 cannot end the host's log line, move the
//!   cursor or paint the terminal.
//!
//! The last few KiB of stderr are kept aside so a trap report can show what
//! the guest printed before it died (a Rust panic message, a Python
//! traceback); they too are redacted, including a secret cut at their start.

use super::control::MAX_PROGRESS_BYTES;
use crate::redact::{Redactor, escape};
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line emitted as one event, in bytes of redacted text; longer
/// lines are split.
const MAX_LINE: usize = 8 * 1024;
/// The least a line costs from the log budget, however short: bounds the
/// number of events a budget allows (budget / `MIN_LINE_COST`).
pub(crate) const MIN_LINE_COST: u64 = 128;
/// Bytes of stderr kept for trap reports.
const STDERR_TAIL: usize = 4 * 1024;
/// How much a guest may write in one go (WASI `check-write`).
const WRITE_PERMIT: usize = 64 * 1024;

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuestLevel {
    /// `trace`
    Trace,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
}

impl GuestLevel {
    fn as_str(self) -> &'static str {
        match self {
            GuestLevel::Trace => "trace",
            GuestLevel::Debug => "debug",
            GuestLevel::Info => "info",
            GuestLevel::Warn => "warn",
            GuestLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Log,
    Stdout,
    Stderr,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Log => "log",
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
        }
    }

    fn level(self) -> GuestLevel {
        if self == Source::Stderr {
            GuestLevel::Warn
        } else {
            GuestLevel::Info
        }
    }
}

/// One output stream on its way to log lines.
#[derive(Debug, Default)]
struct Stream {
    /// Raw bytes not yet redacted: they could be the start of a secret.
    raw: Vec<u8>,
    /// The last raw bytes already redacted, so a secret that began in them
    /// is still recognised.
    context: Vec<u8>,
    /// Redacted bytes of the current line.
    line: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    remaining: u64,
    dropped: u64,
    /// Events emitted (what the tests count).
    lines: u64,
    notice_given: bool,
    stdout: Stream,
    stderr: Stream,
    stderr_tail: VecDeque<u8>,
    stderr_total: u64,
}

impl State {
    fn stream(&mut self, source: Source) -> &mut Stream {
        match source {
            Source::Stderr => &mut self.stderr,
            _ => &mut self.stdout,
        }
    }
}

/// One task's log sink.
#[derive(Debug)]
pub(crate) struct GuestLog {
    activity: Arc<str>,
    task: Arc<str>,
    redactor: Redactor,
    state: Mutex<State>,
}
impl GuestLog {
    /// A sink for one task with a budget of `budget` bytes, redacting the
    /// secret values in `grants`.
    pub(crate) fn new(
        activity: Arc<str>,
        task: Arc<str>,
        budget: u64,
        grants: Arc<super::Grants>,
    ) -> Arc<Self> {
        Arc::new(GuestLog {
            activity,
            task,
            redactor: grants.redactor(),
            state: Mutex::new(State {
                remaining: budget,
                ..State::default()
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A `log(level, message)` call from the guest: one event per line (a
    /// trailing newline ends the last line; it does not add an empty one).
    pub(crate) fn log(&self, level: GuestLevel, message: &str) {
        let mut state = self.lock();
        let bytes = message.as_bytes();
        // No more is looked at than the budget could emit; a secret cut at
        // that point is kept back by the redactor and dropped.
        let Some(cap) = self.admit(&mut state, bytes.len()) else {
            return;
        };
        let cut = cap < bytes.len();
        let (text, end) = self.redactor.redact_window(&bytes[..cap], 0, cut);
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        let mut done = 0;
        if !text.is_empty() || (!message.is_empty() && !cut) {
            for line in text.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !self.emit_line(&mut state, level, Source::Log, line) {
                    break;
                }
                done += line.len() + 1;
            }
        }
        let left = text.len().saturating_sub(done) + (bytes.len() - end);
        if left > 0 {
            state.dropped += left as u64;
            self.spend(&mut state);
        }
    }

    fn write(&self, source: Source, bytes: &[u8]) {
        let mut state = self.lock();
        if source == Source::Stderr {
            // Only what can end up in the tail is looked at.
            let keep = STDERR_TAIL + self.redactor.max_len();
            let recent = &bytes[bytes.len().saturating_sub(keep)..];
            state.stderr_tail.extend(recent.iter().copied());
            let excess = state.stderr_tail.len().saturating_sub(keep);
            state.stderr_tail.drain(..excess);
            state.stderr_total += bytes.len() as u64;
        }
        let Some(cap) = self.admit(&mut state, bytes.len()) else {
            return;
        };
        state.stream(source).raw.extend_from_slice(&bytes[..cap]);
        self.pump(&mut state, source, false);
        if cap < bytes.len() {
            // Cut by the budget: what could be a secret's start goes too.
            let held = std::mem::take(&mut state.stream(source).raw).len();
            state.dropped += (bytes.len() - cap + held) as u64;
            self.spend(&mut state);
        }
    }

    /// Redacts what can be decided of `source`'s raw bytes (all of them at
    /// the `end` of the stream) and emits the complete lines, and pieces of
    /// [`MAX_LINE`] of a longer one.
    fn pump(&self, state: &mut State, source: Source, end: bool) {
        let keep = self.redactor.max_len().saturating_sub(1);
        let stream = state.stream(source);
        let mut window = std::mem::take(&mut stream.context);
        let from = window.len();
        window.append(&mut stream.raw);
        let (text, upto) = self.redactor.redact_window(&window, from, !end);
        let start = stream.line.len();
        stream.line.extend_from_slice(&text);
        stream.raw = window[upto..].to_vec();
        stream.context = window[upto.saturating_sub(keep)..upto].to_vec();
        let mut line = std::mem::take(&mut stream.line);
        let mut at = 0;
        let mut search = start;
        loop {
            if let Some(i) = line[search..].iter().position(|&b| b == b'\n') {
                let nl = search + i;
                let text = line[at..nl].strip_suffix(b"\r").unwrap_or(&line[at..nl]);
                self.emit_line(state, source.level(), source, text);
                at = nl + 1;
                search = at;
            } else if line.len() - at >= MAX_LINE {
                let cut = at + char_floor(&line[at..], MAX_LINE);
                self.emit_line(state, source.level(), source, &line[at..cut]);
                at = cut;
                search = at;
            } else {
                break;
            }
        }
        line.drain(..at);
        if end && !line.is_empty() {
            self.emit_line(state, source.level(), source, &line);
            line.clear();
        }
        state.stream(source).line = line;
    }

    /// How many of `len` new bytes the budget lets in to be looked at;
    /// `None` once it is spent (they are counted as dropped).
    fn admit(&self, state: &mut State, len: usize) -> Option<usize> {
        if state.remaining == 0 {
            state.dropped += len as u64;
            self.spend(state);
            return None;
        }
        Some(len.min(usize::try_from(state.remaining).unwrap_or(usize::MAX)))
    }

    /// Gives the budget-spent notice once and stops all further output.
    fn spend(&self, state: &mut State) {
        state.remaining = 0;
        if !state.notice_given {
            state.notice_given = true;
            tracing::warn!(
                target: "guest",
                activity = %self.activity,
                task = %self.task,
                "guest log budget spent; dropping further guest output for this task"
            );
        }
    }

    /// Emits whatever the stdout and stderr buffers hold; called when the
    /// task ends.
    pub(crate) fn flush(&self) {
        let mut state = self.lock();
        for source in [Source::Stdout, Source::Stderr] {
            if state.remaining == 0 {
                let s = state.stream(source);
                let held = (s.raw.len() + s.line.len()) as u64;
                s.raw.clear();
                s.line.clear();
                state.dropped += held;
            } else {
                self.pump(&mut state, source, true);
            }
        }
        if state.dropped > 0 {
            tracing::warn!(
                target: "guest",
                activity = %self.activity,
                task = %self.task,
                "guest log budget exceeded: {} bytes of output were dropped",
                state.dropped
            );
        }
    }

    /// The last bytes the guest wrote to stderr, lossily decoded, secrets
    /// redacted (a secret cut at the start of the kept bytes included).
    pub(crate) fn stderr_tail(&self) -> String {
        let state = self.lock();
        let (a, b) = state.stderr_tail.as_slices();
        let mut bytes = a.to_vec();
        bytes.extend_from_slice(b);
        // Bytes before the tail are gone: the first ones kept serve only to
        // recognise a secret that began before them.
        let context = if state.stderr_total > bytes.len() as u64 {
            bytes
                .len()
                .saturating_sub(STDERR_TAIL)
                .max(self.redactor.max_len().saturating_sub(1))
                .min(bytes.len())
        } else {
            0
        };
        let (text, _) = self.redactor.redact_window(&bytes, context, false);
        String::from_utf8_lossy(&text).trim_end().to_string()
    }

    /// A guest's progress report as it may be kept and sent: at most
    /// [`MAX_PROGRESS_BYTES`] of it looked at, redacted (a secret cut at
    /// that point dropped).
    pub(crate) fn progress_details(&self, details: &str) -> String {
        let bytes = details.as_bytes();
        let cap = char_floor(bytes, MAX_PROGRESS_BYTES);
        let (text, _) = self
            .redactor
            .redact_window(&bytes[..cap], 0, cap < bytes.len());
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Emits one line (split into pieces of at most [`MAX_LINE`]), each
    /// piece escaped and charged at least [`MIN_LINE_COST`]. `line` is
    /// already redacted. Returns false once the budget is spent.
    fn emit_line(&self, state: &mut State, level: GuestLevel, source: Source, line: &[u8]) -> bool {
        let mut rest = line;
        loop {
            let cut = char_floor(rest, MAX_LINE);
            if !self.emit(state, level, source, &rest[..cut]) {
                return false;
            }
            rest = &rest[cut..];
            if rest.is_empty() {
                return true;
            }
        }
    }

    fn emit(&self, state: &mut State, level: GuestLevel, source: Source, bytes: &[u8]) -> bool {
        if state.remaining == 0 {
            state.dropped += bytes.len() as u64;
            self.spend(state);
            return false;
        }
        let text = String::from_utf8_lossy(bytes);
        let text = escape(&text);
        let cost = (text.len() as u64 + 1).max(MIN_LINE_COST);
        if cost > state.remaining {
            state.dropped += bytes.len() as u64;
            self.spend(state);
            return false;
        }
        state.remaining -= cost;
        state.lines += 1;
        let (activity, task, stream) = (&*self.activity, &*self.task, source.as_str());
        match level {
            GuestLevel::Trace => tracing::trace!(target: "guest", activity, task, stream, "{text}"),
            GuestLevel::Debug => tracing::debug!(target: "guest", activity, task, stream, "{text}"),
            GuestLevel::Info => tracing::info!(target: "guest", activity, task, stream, "{text}"),
            GuestLevel::Warn => tracing::warn!(target: "guest", activity, task, stream, "{text}"),
            GuestLevel::Error => tracing::error!(target: "guest", activity, task, stream, "{text}"),
        }
        crate::journal::global().line(activity, task, level.as_str(), stream, &text);
        true
    }

    /// The guest's stdout, as a WASI output stream.
    pub(crate) fn stdout(self: &Arc<Self>) -> GuestStream {
        GuestStream {
            log: self.clone(),
            source: Source::Stdout,
        }
    }

    /// The guest's stderr, as a WASI output stream.
    pub(crate) fn stderr(self: &Arc<Self>) -> GuestStream {
        GuestStream {
            log: self.clone(),
            source: Source::Stderr,
        }
    }
}

/// The largest length up to `max` at which `bytes` can be cut without
/// splitting a UTF-8 character (`max` itself for bytes that are not UTF-8
/// there, and at least 1 byte of a non-empty input). Every byte cut in the
/// runtime (log lines, progress reports) is made here.
pub(super) fn char_floor(bytes: &[u8], max: usize) -> usize {
    if bytes.len() <= max {
        return bytes.len();
    }
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| i > 0 && bytes[i] & 0xC0 != 0x80)
        .unwrap_or(max.max(1))
}

/// A guest stdout or stderr stream feeding a [`GuestLog`].
#[derive(Debug, Clone)]
pub(crate) struct GuestStream {
    log: Arc<GuestLog>,
    source: Source,
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        // The stream contract: no more than `check_write` allowed.
        if bytes.len() > WRITE_PERMIT {
            return Err(wasmtime_wasi::p2::StreamError::Trap(wasmtime::format_err!(
                "a guest wrote {} bytes to its stdout or stderr at once; check-write allows {WRITE_PERMIT}",
                bytes.len()
            )));
        }
        self.log.write(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.log.write(self.source, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Capabilities, Secret, SecretSource};

    fn sink(budget: u64) -> Arc<GuestLog> {
        GuestLog::new("act".into(), "task".into(), budget, Default::default())
    }

    /// A sink whose grants hold `secret` (read from a file).
    fn secret_sink(budget: u64, secret: &str) -> (Arc<GuestLog>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, secret).unwrap();
        let caps = Capabilities {
            secrets: vec![Secret {
                name: "S".into(),
                source: SecretSource::File(file),
            }],
            ..Capabilities::default()
        };
        let grants = Arc::new(super::super::Grants::resolve(&caps).unwrap());
        (
            GuestLog::new("act".into(), "task".into(), budget, grants),
            dir,
        )
    }

    /// Runs `f` with guest events written to a buffer, in the human or the
    /// JSON format; returns what was written.
    fn capture(json: bool, f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let builder = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE);
        if json {
            tracing::subscriber::with_default(builder.json().finish(), f);
        } else {
            tracing::subscriber::with_default(builder.finish(), f);
        }
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_journal_keeps_a_running_tasks_lines_redacted_and_as_text() {
        let (log, _dir) = secret_sink(64 * 1024, "hunter2-secret");
        // The sink is named act/task; a unique activity keeps parallel
        // tests apart.
        let log = Arc::new(GuestLog {
            activity: "journal-redaction".into(),
            task: "t1".into(),
            redactor: log.redactor.clone(),
            state: Mutex::new(State {
                remaining: 64 * 1024,
                ..State::default()
            }),
        });
        let running = crate::journal::global().start("journal-redaction", "t1", "v7");
        // Under a subscriber, as the other tests here (the interest of
        // these callsites is cached per process).
        let out = capture(false, || {
            log.log(GuestLevel::Warn, "token=hunter2-secret");
            log.log(GuestLevel::Info, "<script>alert(1)</script>");
        });
        assert!(!out.contains("hunter2"), "{out}");
        running.finish("succeeded", None);
        let v = crate::health::live_view();
        let task = v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["activity"] == "journal-redaction")
            .expect("the task is in the journal");
        assert_eq!(task["version"], "v7");
        let lines: Vec<&str> = task["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["text"].as_str().unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(!lines[0].contains("hunter2"), "{lines:?}");
        assert!(lines[0].starts_with("token="), "{lines:?}");
        assert_eq!(task["lines"][0]["level"], "warn");
        // Kept as text; the page sets it with textContent.
        assert_eq!(lines[1], "<script>alert(1)</script>");
    }

    #[test]
    fn stderr_tail_keeps_the_last_bytes() {
        let log = sink(1 << 20);
        let mut s = log.stderr();
        for i in 0..2000 {
            s.write(Bytes::from(format!("line {i}\n"))).unwrap();
        }
        let tail = log.stderr_tail();
        assert!(tail.ends_with("line 1999"), "{tail}");
        assert!(tail.len() <= STDERR_TAIL);
    }

    #[test]
    fn budget_stops_emitting_and_counts_drops() {
        let log = sink(2 * MIN_LINE_COST + 10);
        let mut s = log.stdout();
        for _ in 0..3 {
            s.write(Bytes::from_static(b"0123456789\n")).unwrap();
        }
        {
            let state = log.lock();
            assert_eq!(state.lines, 2, "each short line costs MIN_LINE_COST");
            assert_eq!(state.remaining, 0);
            // The 10 bytes the budget let in wait for their newline.
            assert_eq!(state.dropped, 1);
            assert!(state.notice_given);
        }
        log.flush();
        assert_eq!(log.lock().dropped, 11);
        assert_eq!(log.lock().lines, 2);
    }

    #[test]
    fn a_budget_spent_exactly_still_gives_the_notice() {
        let log = sink(2 * MIN_LINE_COST);
        for _ in 0..3 {
            log.log(GuestLevel::Info, "short");
        }
        let state = log.lock();
        assert_eq!(state.lines, 2);
        assert!(state.notice_given, "the third line was dropped silently");
    }

    #[test]
    fn a_megabyte_of_newlines_is_at_most_budget_over_min_cost_lines() {
        let budget = 1 << 20;
        let log = sink(budget);
        let newlines = "\n".repeat(1 << 20);
        log.log(GuestLevel::Info, &newlines);
        let mut out = log.stdout();
        for chunk in newlines.as_bytes().chunks(WRITE_PERMIT) {
            out.write(Bytes::copy_from_slice(chunk)).unwrap();
        }
        let state = log.lock();
        assert!(state.lines <= budget / MIN_LINE_COST, "{}", state.lines);
        assert_eq!(state.remaining, 0);
        assert!(state.dropped >= (2 << 20) - budget, "{}", state.dropped);
    }

    #[test]
    fn once_the_budget_is_spent_a_call_only_counts() {
        let log = sink(MIN_LINE_COST);
        log.log(GuestLevel::Info, "one");
        let huge = "x".repeat(16 << 20);
        log.log(GuestLevel::Info, &huge);
        let mut out = log.stdout();
        for chunk in huge.as_bytes().chunks(WRITE_PERMIT) {
            out.write(Bytes::copy_from_slice(chunk)).unwrap();
        }
        assert!(
            out.write(Bytes::from(vec![b'x'; WRITE_PERMIT + 1]))
                .is_err(),
            "a write past check-write is refused"
        );
        let state = log.lock();
        assert_eq!(state.lines, 1);
        assert_eq!(state.dropped, 2 * (16 << 20));
        assert!(state.stdout.raw.is_empty() && state.stdout.line.is_empty());
    }

    #[test]
    fn partial_lines_wait_for_newline_or_flush() {
        let log = sink(1 << 20);
        let mut s = log.stdout();
        s.write(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(log.lock().stdout.line, b"abc");
        s.write(Bytes::from_static(b"def\nxyz")).unwrap();
        assert_eq!(log.lock().stdout.line, b"xyz");
        log.flush();
        assert!(log.lock().stdout.line.is_empty());
        assert_eq!(log.lock().lines, 2);
    }

    #[test]
    fn endless_line_is_split_not_buffered_forever() {
        let log = sink(u64::MAX);
        let mut s = log.stdout();
        for _ in 0..100 {
            s.write(Bytes::from(vec![b'x'; 1000])).unwrap();
            let state = log.lock();
            assert!(state.stdout.line.len() < MAX_LINE);
            assert!(state.stdout.raw.is_empty());
        }
    }

    #[test]
    fn a_secret_straddling_the_line_limit_is_redacted_not_split() {
        let secret = "SECRET-abcdefghij";
        // log(): a line longer than MAX_LINE with the secret across the cut.
        let (log, _dir) = secret_sink(u64::MAX, secret);
        let line = format!("{}{secret}{}", "a".repeat(MAX_LINE - 5), "b".repeat(10));
        let out = capture(false, || log.log(GuestLevel::Info, &line));
        assert!(
            !out.contains("SECRET") && !out.contains("abcdefghij"),
            "{out}"
        );
        assert!(
            out.contains("aaaa[reda"),
            "the marker is what is split: {out}"
        );
        // stdout: no newline, flushed at MAX_LINE; the secret arrives in
        // three writes, the first ending inside it at the limit.
        let (log, _dir) = secret_sink(u64::MAX, secret);
        let out = capture(true, || {
            let mut s = log.stdout();
            let first = format!("{}SECR", "a".repeat(MAX_LINE - 4));
            s.write(Bytes::from(first)).unwrap();
            s.write(Bytes::from_static(b"ET-abcde")).unwrap();
            s.write(Bytes::from_static(b"fghij tail")).unwrap();
            log.flush();
        });
        assert!(!out.contains("SECR") && !out.contains("fghij"), "{out}");
        assert!(out.contains("acted] tail"), "{out}");
    }

    #[test]
    fn a_secret_cut_by_the_budget_is_dropped_not_half_emitted() {
        let secret = "SECRET-abcdefghij";
        // The budget ends 6 bytes into the secret.
        let msg = format!("{}{secret}", "a".repeat(4 * MIN_LINE_COST as usize - 6));
        let (log, _dir) = secret_sink(4 * MIN_LINE_COST, secret);
        let out = capture(false, || log.log(GuestLevel::Info, &msg));
        assert!(out.contains("aaaa") && !out.contains("SECR"), "{out}");
        let (log, _dir) = secret_sink(4 * MIN_LINE_COST, secret);
        let out = capture(false, || {
            log.stdout().write(Bytes::from(format!("{msg}\n"))).unwrap();
            log.flush();
        });
        assert!(!out.contains("SECR"), "{out}");
        assert!(
            log.lock().dropped >= 17,
            "the secret was counted as dropped"
        );
    }

    #[test]
    fn a_secret_cut_at_the_start_of_the_stderr_tail_is_redacted() {
        let secret = "SECRET-abcdefghij";
        let (log, _dir) = secret_sink(u64::MAX, secret);
        let mut s = log.stderr();
        // The kept bytes (STDERR_TAIL + the secret's length) start 12 bytes
        // into the secret: its last 5 are kept.
        s.write(Bytes::from(format!(
            "{secret}{}",
            "z".repeat(STDERR_TAIL + 12)
        )))
        .unwrap();
        assert_eq!(log.lock().stderr_tail.front(), Some(&b'f'));
        let tail = log.stderr_tail();
        assert!(
            !tail.contains("fghij") && !tail.contains("SECR"),
            "{}",
            &tail[..40]
        );
        assert!(tail.len() <= STDERR_TAIL);
    }

    #[test]
    fn progress_is_redacted_before_it_is_cut() {
        let secret = "SECRET-abcdefghij";
        let (log, _dir) = secret_sink(u64::MAX, secret);
        let details = format!("{}{secret}", "p".repeat(MAX_PROGRESS_BYTES - 4));
        let kept = log.progress_details(&details);
        assert!(kept.len() <= MAX_PROGRESS_BYTES);
        assert!(!kept.contains("SECR"), "{}", &kept[kept.len() - 20..]);
        assert_eq!(log.progress_details("a SECRET-abcdefghij"), "a [redacted]");
    }

    #[test]
    fn guest_text_cannot_forge_a_log_line_in_either_format() {
        let evil = "ok\r2025-01-01T00:00:00Z  INFO forged\u{1b}[2J\u{0}\u{85}x\u{2028}y\u{202e}z";
        for json in [false, true] {
            let log = sink(1 << 20);
            let out = capture(json, || {
                log.log(GuestLevel::Info, evil);
                log.stdout()
                    .write(Bytes::from(format!("{evil}\n")))
                    .unwrap();
                log.stderr().write(Bytes::from(evil)).unwrap();
                log.flush();
            });
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 3, "{out}");
            for line in &lines {
                assert!(line.contains("INFO forged"), "{line}");
                assert!(
                    !line.chars().any(
                        |c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202e}')
                    ),
                    "{line:?}"
                );
                if json {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    let msg = v["fields"]["message"].as_str().unwrap();
                    assert!(msg.starts_with("ok\\r2025"), "{msg}");
                    assert!(
                        msg.contains("\\u{1b}[2J\\u{0}\\u{85}x\\u{2028}y\\u{202e}z"),
                        "{msg}"
                    );
                }
            }
        }
    }
}
