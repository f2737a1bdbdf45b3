//! The worker's live view: the last tasks of each activity with their guest
//! log lines, the last reload events, and per-source polling health, served
//! as JSON at `/tasks` and as a page at `/` on the metrics server.
//!
//! Only the worker knows which component version ran a task, what its guest
//! logged, and why a reload was refused; the service (or the embedded
//! endpoint) sees none of it. So the worker keeps a small journal of its own,
//! in memory, bounded everywhere a hostile guest or a long run could grow it:
//! [`TASKS_PER_ACTIVITY`] finished tasks per activity (for at most
//! [`MAX_ACTIVITIES`] activities, [`MAX_TASKS`] in all), [`LINES_PER_TASK`]
//! lines and [`BYTES_PER_TASK`] bytes of guest output per task (and never
//! more than the task's log budget: a line is kept only once the guest log
//! sink has charged it, redacted and escaped it), [`MAX_LINE_BYTES`] of
//! finished tasks' lines in all (the oldest tasks' lines go first, so the
//! page's JSON stays small enough to fetch every second), and
//! [`MAX_EVENTS`] reload events.
//!
//! Data flows one way: task.rs writes a task when it starts and when its
//! result is delivered, the guest log sink writes lines, the component and
//! config reloads write events, and the metrics server only reads.

use crate::redact::{escape, truncate_chars};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Finished tasks kept per activity.
pub(crate) const TASKS_PER_ACTIVITY: usize = 50;
/// Activities whose tasks are kept (a config names a bounded set; this bounds
/// what config reloads can add over a long run).
pub(crate) const MAX_ACTIVITIES: usize = 64;
/// Guest log lines kept per task (the first ones; the rest are counted).
pub(crate) const LINES_PER_TASK: usize = 50;
/// Bytes of guest log lines kept per task.
pub(crate) const BYTES_PER_TASK: usize = 16 * 1024;
/// Finished tasks kept, all activities together.
pub(crate) const MAX_TASKS: usize = 1000;
/// Bytes of guest log lines kept of finished tasks, all together.
pub(crate) const MAX_LINE_BYTES: usize = 1024 * 1024;
/// What a kept line costs at least, against both byte bounds: its text
/// plus the bookkeeping beside it, so a flood of empty lines is bounded
/// like a flood of long ones.
const LINE_COST: usize = 64;
/// Reload events kept.
pub(crate) const MAX_EVENTS: usize = 50;
/// Characters kept of an error name, a cause's first line or a reload
/// event's detail.
const MAX_TEXT: usize = 512;

/// One task as the journal shows it.
#[derive(Debug, Clone)]
struct Entry {
    activity: String,
    task: String,
    version: String,
    /// Wall-clock start, in milliseconds since the Unix epoch.
    started_ms: u64,
    started: Instant,
    /// Set when the result is delivered (or the task otherwise ends).
    finished: Option<Finished>,
    lines: Vec<Line>,
    bytes: usize,
    /// Lines the guest logged beyond what is kept.
    lines_dropped: u64,
}

impl Entry {
    /// Forgets the lines (to keep the journal's total bound).
    fn drop_lines(&mut self) -> usize {
        self.lines_dropped += self.lines.len() as u64;
        self.lines = Vec::new();
        std::mem::take(&mut self.bytes)
    }
}

#[derive(Debug, Clone)]
struct Finished {
    duration_ms: f64,
    outcome: String,
    error: Option<String>,
    cause: Option<String>,
}

#[derive(Debug, Clone)]
struct Line {
    level: &'static str,
    stream: &'static str,
    text: String,
}

#[derive(Debug, Clone)]
struct Event {
    at_ms: u64,
    kind: &'static str,
    subject: String,
    detail: String,
}

#[derive(Debug, Default)]
struct Inner {
    /// Tasks running now, by (activity, task id): bounded by the worker's
    /// concurrency.
    running: HashMap<(String, String), Entry>,
    /// Finished tasks per activity, oldest first.
    finished: BTreeMap<String, VecDeque<Entry>>,
    /// Tasks in `finished`, and the bytes of their lines.
    finished_tasks: usize,
    finished_bytes: usize,
    events: VecDeque<Event>,
}

impl Inner {
    /// The activity whose oldest finished task is oldest.
    fn oldest(&mut self, with_lines: bool) -> Option<&mut VecDeque<Entry>> {
        self.finished
            .values_mut()
            .filter(|tasks| !with_lines || tasks.iter().any(|e| e.bytes > 0))
            .min_by_key(|tasks| {
                tasks
                    .iter()
                    .find(|e| !with_lines || e.bytes > 0)
                    .map(|e| e.started)
            })
    }

    fn forget(&mut self, entry: Entry) {
        self.finished_tasks -= 1;
        self.finished_bytes -= entry.bytes;
    }
}

/// The journal (one per process, see [`global`]).
#[derive(Debug, Default)]
pub(crate) struct Journal {
    inner: Mutex<Inner>,
}

/// A task the journal holds as running; [`Running::finish`] moves it to the
/// finished tasks, and dropping it unfinished (a panic) forgets it.
#[must_use]
pub(crate) struct Running {
    journal: &'static Journal,
    key: Option<(String, String)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Text for the journal: escaped (no control characters), cut to [`MAX_TEXT`].
fn inert(text: &str) -> String {
    truncate_chars(&escape(text), MAX_TEXT)
}

impl Journal {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `task` of `activity` started on component `version`.
    pub(crate) fn start(&'static self, activity: &str, task: &str, version: &str) -> Running {
        let key = (activity.to_string(), task.to_string());
        let entry = Entry {
            activity: activity.to_string(),
            task: task.to_string(),
            version: version.to_string(),
            started_ms: now_ms(),
            started: Instant::now(),
            finished: None,
            lines: Vec::new(),
            bytes: 0,
            lines_dropped: 0,
        };
        self.lock().running.insert(key.clone(), entry);
        Running {
            journal: self,
            key: Some(key),
        }
    }

    /// A guest log line of a running task, already redacted, escaped and
    /// charged to the task's log budget by the guest log sink.
    pub(crate) fn line(
        &self,
        activity: &str,
        task: &str,
        level: &'static str,
        stream: &'static str,
        text: &str,
    ) {
        // A lookup by borrowed parts would need a second map; the key is
        // two short strings, made before the lock is taken.
        let key = (activity.to_string(), task.to_string());
        let cost = text.len().max(LINE_COST);
        let mut inner = self.lock();
        let Some(e) = inner.running.get_mut(&key) else {
            return;
        };
        if e.lines.len() >= LINES_PER_TASK || e.bytes + cost > BYTES_PER_TASK {
            e.lines_dropped += 1;
            return;
        }
        e.bytes += cost;
        e.lines.push(Line {
            level,
            stream,
            text: text.to_string(),
        });
    }

    /// A reload event: `kind` is `loaded`, `reloaded`, `refused`,
    /// `unreachable` (a tag or S3 key could not be re-resolved),
    /// `config reloaded` or `config refused`; `subject` the activity,
    /// component or config file; `detail` what happened (escaped and cut
    /// here).
    pub(crate) fn event(&self, kind: &'static str, subject: &str, detail: &str) {
        let mut inner = self.lock();
        inner.events.push_back(Event {
            at_ms: now_ms(),
            kind,
            subject: inert(subject),
            detail: inert(detail),
        });
        while inner.events.len() > MAX_EVENTS {
            inner.events.pop_front();
        }
    }

    fn finish(&self, key: (String, String), finished: Finished) {
        let mut inner = self.lock();
        let Some(mut entry) = inner.running.remove(&key) else {
            return;
        };
        entry.finished = Some(finished);
        if !inner.finished.contains_key(&entry.activity) && inner.finished.len() >= MAX_ACTIVITIES {
            // The activity whose newest task is oldest goes.
            let oldest = inner
                .finished
                .iter()
                .min_by_key(|(_, tasks)| tasks.back().map(|e| e.started))
                .map(|(name, _)| name.clone());
            if let Some(tasks) = oldest.and_then(|name| inner.finished.remove(&name)) {
                for e in tasks {
                    inner.forget(e);
                }
            }
        }
        inner.finished_tasks += 1;
        inner.finished_bytes += entry.bytes;
        let tasks = inner.finished.entry(entry.activity.clone()).or_default();
        tasks.push_back(entry);
        let gone = (tasks.len() > TASKS_PER_ACTIVITY).then(|| tasks.pop_front());
        if let Some(Some(e)) = gone {
            inner.forget(e);
        }
        while inner.finished_tasks > MAX_TASKS {
            let Some(e) = inner.oldest(false).and_then(|t| t.pop_front()) else {
                break;
            };
            inner.forget(e);
        }
        while inner.finished_bytes > MAX_LINE_BYTES {
            let Some(freed) = inner
                .oldest(true)
                .and_then(|t| t.iter_mut().find(|e| e.bytes > 0))
                .map(Entry::drop_lines)
            else {
                break;
            };
            inner.finished_bytes -= freed;
        }
        inner.finished.retain(|_, tasks| !tasks.is_empty());
    }

    /// The journal as `/tasks` serves it: running tasks, then finished ones,
    /// newest first; reload events newest first; and polling health.
    pub(crate) fn to_json(&self, sources: Vec<Value>) -> Value {
        // Copied under the lock (bounded: the byte bounds above), turned
        // into JSON after it, so a reader never holds up the guests' lines.
        let (mut running, mut finished, events) = {
            let inner = self.lock();
            let running: Vec<Entry> = inner.running.values().cloned().collect();
            let finished: Vec<Entry> = inner.finished.values().flatten().cloned().collect();
            (running, finished, inner.events.clone())
        };
        running.sort_by_key(|e| std::cmp::Reverse(e.started));
        finished.sort_by_key(|e| std::cmp::Reverse(e.started));
        let tasks: Vec<Value> = running.iter().chain(&finished).map(entry_json).collect();
        let events: Vec<Value> = events
            .iter()
            .rev()
            .map(|e| json!({ "at_ms": e.at_ms, "kind": e.kind, "subject": e.subject, "detail": e.detail }))
            .collect();
        json!({
            "now_ms": now_ms(),
            "bounds": {
                "tasks_per_activity": TASKS_PER_ACTIVITY,
                "activities": MAX_ACTIVITIES,
                "lines_per_task": LINES_PER_TASK,
                "bytes_per_task": BYTES_PER_TASK,
                "tasks": MAX_TASKS,
                "line_bytes": MAX_LINE_BYTES,
                "events": MAX_EVENTS,
            },
            "sources": sources,
            "tasks": tasks,
            "events": events,
        })
    }
}

fn entry_json(e: &Entry) -> Value {
    let lines: Vec<Value> = e
        .lines
        .iter()
        .map(|l| json!({ "level": l.level, "stream": l.stream, "text": l.text }))
        .collect();
    let (status, duration_ms, error, cause) = match &e.finished {
        Some(f) => (
            f.outcome.as_str(),
            f.duration_ms,
            f.error.clone(),
            f.cause.clone(),
        ),
        None => (
            "running",
            e.started.elapsed().as_micros() as f64 / 1000.0,
            None,
            None,
        ),
    };
    json!({
        "activity": e.activity,
        "task": e.task,
        "version": e.version,
        "started_ms": e.started_ms,
        "duration_ms": duration_ms,
        "status": status,
        "error": error,
        "cause": cause,
        "lines": lines,
        "lines_dropped": e.lines_dropped,
    })
}

impl Running {
    /// The task ended with `outcome` (`succeeded`, `failed`, ... as the
    /// `tasks_finished` metric names it); a failure carries its error name
    /// and cause, already redacted by the report.
    pub(crate) fn finish(mut self, outcome: &str, failure: Option<(&str, &str)>) {
        let Some(key) = self.key.take() else { return };
        let duration_ms = {
            let inner = self.journal.lock();
            inner
                .running
                .get(&key)
                .map(|e| e.started.elapsed().as_micros() as f64 / 1000.0)
                .unwrap_or_default()
        };
        self.journal.finish(
            key,
            Finished {
                duration_ms,
                outcome: outcome.to_string(),
                error: failure.map(|(e, _)| inert(e)),
                cause: failure.map(|(_, c)| inert(c.split('\n').next().unwrap_or(""))),
            },
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.journal.lock().running.remove(&key);
        }
    }
}

/// The live page at `/`: plain HTML and a little script reading `/tasks`
/// every second; guest text is only ever set as `textContent`.
pub(crate) const PAGE: &str = include_str!("journal.html");

/// The process's journal.
pub(crate) fn global() -> &'static Journal {
    static JOURNAL: OnceLock<Journal> = OnceLock::new();
    JOURNAL.get_or_init(Journal::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked() -> &'static Journal {
        Box::leak(Box::default())
    }

    #[test]
    fn more_tasks_than_the_bound_keeps_the_newest() {
        let j = leaked();
        for i in 0..TASKS_PER_ACTIVITY + 7 {
            let r = j.start("bounded", &format!("t{i}"), "v1");
            j.line("bounded", &format!("t{i}"), "info", "log", "hello");
            r.finish("succeeded", None);
        }
        let v = j.to_json(vec![]);
        let tasks = v["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), TASKS_PER_ACTIVITY);
        let ids: Vec<&str> = tasks.iter().map(|t| t["task"].as_str().unwrap()).collect();
        assert!(!ids.contains(&"t0"), "the oldest went: {ids:?}");
        assert!(ids.contains(&format!("t{}", TASKS_PER_ACTIVITY + 6).as_str()));
        assert_eq!(tasks[0]["version"], "v1");
        assert_eq!(tasks[0]["lines"][0]["text"], "hello");
    }

    #[test]
    fn lines_are_bounded_per_task_in_count_and_bytes() {
        let j = leaked();
        let r = j.start("lines", "t", "v1");
        for i in 0..LINES_PER_TASK + 10 {
            j.line("lines", "t", "info", "stdout", &format!("line {i}"));
        }
        let running = j.to_json(vec![]);
        assert_eq!(running["tasks"][0]["status"], "running");
        r.finish("failed", Some(("Boom", "first\nsecond")));
        let v = j.to_json(vec![]);
        let t = &v["tasks"][0];
        assert_eq!(t["lines"].as_array().unwrap().len(), LINES_PER_TASK);
        assert_eq!(t["lines_dropped"], 10);
        assert_eq!(t["error"], "Boom");
        assert_eq!(t["cause"], "first");

        let r = j.start("bytes", "t", "v1");
        let big = "x".repeat(BYTES_PER_TASK / 3 + 1);
        for _ in 0..5 {
            j.line("bytes", "t", "info", "log", &big);
        }
        r.finish("succeeded", None);
        let v = j.to_json(vec![]);
        let t = v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["activity"] == "bytes")
            .unwrap();
        assert_eq!(t["lines"].as_array().unwrap().len(), 2);
        assert_eq!(t["lines_dropped"], 3);
    }

    #[test]
    fn activities_and_events_are_bounded_and_event_text_is_inert() {
        let j = leaked();
        for i in 0..MAX_ACTIVITIES + 3 {
            j.start(&format!("a{i}"), "t", "v")
                .finish("succeeded", None);
        }
        assert_eq!(j.lock().finished.len(), MAX_ACTIVITIES);
        for i in 0..MAX_EVENTS + 5 {
            j.event("refused", "c.wasm", &format!("bad\u{1b}[31m {i}\nnext"));
        }
        let v = j.to_json(vec![]);
        let events = v["events"].as_array().unwrap();
        assert_eq!(events.len(), MAX_EVENTS);
        let detail = events[0]["detail"].as_str().unwrap();
        assert!(
            !detail.contains('\u{1b}') && !detail.contains('\n'),
            "{detail:?}"
        );
        assert!(
            detail.contains(&format!("{}", MAX_EVENTS + 4)),
            "newest first: {detail}"
        );
    }

    #[test]
    fn all_tasks_together_and_all_their_lines_are_bounded() {
        let j = leaked();
        let line = "y".repeat(BYTES_PER_TASK / 2);
        for i in 0..MAX_TASKS + 10 {
            let (a, t) = (format!("a{}", i % 40), format!("t{i}"));
            let r = j.start(&a, &t, "v");
            j.line(&a, &t, "info", "log", &line);
            r.finish("succeeded", None);
        }
        let inner = j.lock();
        let tasks: usize = inner.finished.values().map(VecDeque::len).sum();
        assert_eq!(tasks, MAX_TASKS);
        assert_eq!(inner.finished_tasks, MAX_TASKS);
        let bytes: usize = inner.finished.values().flatten().map(|e| e.bytes).sum();
        assert_eq!(bytes, inner.finished_bytes);
        assert!(bytes <= MAX_LINE_BYTES, "{bytes}");
        assert!(
            bytes > MAX_LINE_BYTES - BYTES_PER_TASK,
            "only what must go went: {bytes}"
        );
        // The newest task kept its lines; the oldest lost them.
        let newest = format!("t{}", MAX_TASKS + 9);
        let all: Vec<&Entry> = inner.finished.values().flatten().collect();
        assert!(all.iter().any(|e| e.task == newest && e.lines.len() == 1));
        let oldest = all.iter().min_by_key(|e| e.started).unwrap();
        assert!(oldest.lines.is_empty() && oldest.lines_dropped == 1);
    }

    /// A guest logging empty lines pays as much as one logging short ones:
    /// a thousand tasks of fifty empty lines stay within the byte bound.
    #[test]
    fn empty_lines_count_against_the_byte_bounds() {
        let j = leaked();
        for i in 0..MAX_TASKS {
            let (a, t) = (format!("a{}", i % 40), format!("t{i}"));
            let r = j.start(&a, &t, "v");
            for _ in 0..LINES_PER_TASK {
                j.line(&a, &t, "info", "log", "");
            }
            r.finish("succeeded", None);
        }
        let inner = j.lock();
        let lines: usize = inner
            .finished
            .values()
            .flatten()
            .map(|e| e.lines.len())
            .sum();
        assert!(lines * LINE_COST <= MAX_LINE_BYTES, "{lines} lines kept");
        assert!(inner.finished_bytes <= MAX_LINE_BYTES);
        assert_eq!(
            inner.finished_tasks, MAX_TASKS,
            "the tasks stay, their lines go"
        );
    }

    #[test]
    fn a_task_dropped_unfinished_is_forgotten() {
        let j = leaked();
        drop(j.start("gone", "t", "v"));
        assert!(j.to_json(vec![])["tasks"].as_array().unwrap().is_empty());
    }
}
