//! Helpers shared by unit tests of several modules.

use std::sync::{Arc, Mutex};

/// What a test's log subscriber wrote; `text()` reads it.
#[derive(Clone, Default)]
pub(crate) struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs of this thread go to the returned capture until the guard drops.
pub(crate) fn capture_logs() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let out = CapturedLogs::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (out, tracing::subscriber::set_default(subscriber))
}
