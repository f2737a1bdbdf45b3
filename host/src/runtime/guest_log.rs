//! Guest output as host log lines.
//!
//! A guest's `log` calls, stdout and stderr all become tracing events with
//! target `guest`, tagged with the activity and task, so `RUST_LOG=guest=warn`
//! filters them like any other log. A guest is untrusted: output is split
//! into lines of bounded length and counted against the task's log budget;
//! once the budget is spent, further output is dropped with a single notice.
//! The last few KiB of stderr are kept aside so a trap report can show what
//! the guest printed before it died (a Rust panic message, a Python
//! traceback).

use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line emitted as one event; longer lines are split.
const MAX_LINE: usize = 8 * 1024;
/// Bytes of stderr kept for trap reports.
const STDERR_TAIL: usize = 4 * 1024;
/// How much a guest may write in one go (WASI `check-write`).
const WRITE_PERMIT: usize = 64 * 1024;

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestLevel {
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
}

#[derive(Debug, Default)]
struct State {
    remaining: u64,
    dropped: u64,
    notice_given: bool,
    stdout_line: Vec<u8>,
    stderr_line: Vec<u8>,
    stderr_tail: VecDeque<u8>,
}

/// One task's log sink.
#[derive(Debug)]
pub struct GuestLog {
    activity: Arc<str>,
    task: Arc<str>,
    grants: Arc<super::Grants>,
    state: Mutex<State>,
}
impl GuestLog {
    /// A sink for one task with a budget of `budget` bytes.
    pub fn new(
        activity: Arc<str>,
        task: Arc<str>,
        budget: u64,
        grants: Arc<super::Grants>,
    ) -> Arc<Self> {
        Arc::new(GuestLog {
            activity,
            task,
            grants,
            state: Mutex::new(State {
                remaining: budget,
                ..State::default()
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A `log(level, message)` call from the guest.
    pub fn log(&self, level: GuestLevel, message: &str) {
        let mut state = self.lock();
        for line in message.lines() {
            for chunk in chunks(line.as_bytes()) {
                self.emit(&mut state, level, Source::Log, chunk);
            }
        }
    }

    fn write(&self, source: Source, bytes: &[u8]) {
        let mut state = self.lock();
        if source == Source::Stderr {
            state.stderr_tail.extend(bytes.iter().copied());
            let excess = state.stderr_tail.len().saturating_sub(STDERR_TAIL);
            state.stderr_tail.drain(..excess);
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let buf = match source {
                Source::Stderr => &mut state.stderr_line,
                _ => &mut state.stdout_line,
            };
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    buf.extend_from_slice(&rest[..i]);
                    rest = &rest[i + 1..];
                    let line = std::mem::take(buf);
                    self.emit_output(&mut state, source, &line);
                }
                None => {
                    buf.extend_from_slice(rest);
                    rest = &[];
                    if buf.len() >= MAX_LINE {
                        let line = std::mem::take(buf);
                        self.emit_output(&mut state, source, &line);
                    }
                }
            }
        }
    }

    fn emit_output(&self, state: &mut State, source: Source, line: &[u8]) {
        let level = if source == Source::Stderr {
            GuestLevel::Warn
        } else {
            GuestLevel::Info
        };
        for chunk in chunks(line) {
            self.emit(state, level, source, chunk);
        }
    }

    /// Emits what is left in the line buffers; called when the task ends.
    pub fn flush(&self) {
        let mut state = self.lock();
        for source in [Source::Stdout, Source::Stderr] {
            let line = match source {
                Source::Stderr => std::mem::take(&mut state.stderr_line),
                _ => std::mem::take(&mut state.stdout_line),
            };
            if !line.is_empty() {
                self.emit_output(&mut state, source, &line);
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
    /// redacted.
    pub fn stderr_tail(&self) -> String {
        let state = self.lock();
        let (a, b) = state.stderr_tail.as_slices();
        let mut bytes = a.to_vec();
        bytes.extend_from_slice(b);
        self.redact(String::from_utf8_lossy(&bytes).trim_end())
            .into_owned()
    }

    /// `text` with the task's secret values replaced.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.grants.redact(text)
    }
    fn emit(&self, state: &mut State, level: GuestLevel, source: Source, bytes: &[u8]) {
        let cost = bytes.len() as u64 + 1;
        if cost > state.remaining {
            state.remaining = 0;
            state.dropped += cost;
            if !state.notice_given {
                state.notice_given = true;
                tracing::warn!(
                    target: "guest",
                    activity = %self.activity,
                    task = %self.task,
                    "guest log budget spent; dropping further guest output for this task"
                );
            }
            return;
        }
        state.remaining -= cost;
        let text = String::from_utf8_lossy(bytes);
        let text = self.grants.redact(&text);
        let text = text.trim_end_matches('\r');
        let (activity, task, stream) = (&*self.activity, &*self.task, source.as_str());
        match level {
            GuestLevel::Trace => tracing::trace!(target: "guest", activity, task, stream, "{text}"),
            GuestLevel::Debug => tracing::debug!(target: "guest", activity, task, stream, "{text}"),
            GuestLevel::Info => tracing::info!(target: "guest", activity, task, stream, "{text}"),
            GuestLevel::Warn => tracing::warn!(target: "guest", activity, task, stream, "{text}"),
            GuestLevel::Error => tracing::error!(target: "guest", activity, task, stream, "{text}"),
        }
    }

    /// The guest's stdout, as a WASI output stream.
    pub fn stdout(self: &Arc<Self>) -> GuestStream {
        GuestStream {
            log: self.clone(),
            source: Source::Stdout,
        }
    }

    /// The guest's stderr, as a WASI output stream.
    pub fn stderr(self: &Arc<Self>) -> GuestStream {
        GuestStream {
            log: self.clone(),
            source: Source::Stderr,
        }
    }
}

/// Splits a line into pieces of at most [`MAX_LINE`] bytes; an empty line
/// stays one empty piece.
fn chunks(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty: &[u8] = &[];
    let first = line.is_empty().then_some(empty);
    first.into_iter().chain(line.chunks(MAX_LINE))
}

/// A guest stdout or stderr stream feeding a [`GuestLog`].
#[derive(Debug, Clone)]
pub struct GuestStream {
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

    fn sink(budget: u64) -> Arc<GuestLog> {
        GuestLog::new("act".into(), "task".into(), budget, Default::default())
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
        let log = sink(20);
        let mut s = log.stdout();
        s.write(Bytes::from_static(b"0123456789\n")).unwrap(); // 11 bytes
        s.write(Bytes::from_static(b"0123456789\n")).unwrap(); // over budget
        let state = log.lock();
        assert_eq!(state.remaining, 0);
        assert_eq!(state.dropped, 11);
        assert!(state.notice_given);
    }

    #[test]
    fn partial_lines_wait_for_newline_or_flush() {
        let log = sink(1 << 20);
        let mut s = log.stdout();
        s.write(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(log.lock().stdout_line, b"abc");
        s.write(Bytes::from_static(b"def\nxyz")).unwrap();
        assert_eq!(log.lock().stdout_line, b"xyz");
        log.flush();
        assert!(log.lock().stdout_line.is_empty());
    }

    #[test]
    fn endless_line_is_split_not_buffered_forever() {
        let log = sink(u64::MAX);
        let mut s = log.stdout();
        for _ in 0..100 {
            s.write(Bytes::from(vec![b'x'; 1000])).unwrap();
            assert!(log.lock().stdout_line.len() < MAX_LINE);
        }
    }
}
