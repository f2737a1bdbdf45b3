//! Watching component files and the config file for changes.
//!
//! Editors and deploy tools replace files in different ways: writing in
//! place, truncating then writing, writing a temporary file and renaming it
//! over the old one, or switching a symlink. Watching the *directories*
//! that hold the files (not the files themselves, whose inode a rename
//! replaces) sees all of them. Events are debounced: a change is reported
//! once the file has been quiet for the debounce period, so a half-written
//! file is not compiled (and if it is, it fails to load and is refused).
//!
//! One watcher lives as long as the worker: a config reload changes *which*
//! files it watches ([`Watcher::watch_files`]) instead of starting a new one,
//! so a change reported while a reload runs waits on the channel and is
//! applied after it, never dropped with an old watcher.

use notify::{EventKind, RecursiveMode, Watcher as _};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A debounced change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Change {
    /// A component file changed.
    Component(PathBuf),
    /// The config file changed.
    Config,
}

type Files = Arc<Mutex<HashMap<PathBuf, Change>>>;

/// Keeps the watch alive; dropping it stops watching.
pub(crate) struct Watcher {
    inner: notify::RecommendedWatcher,
    files: Files,
    dirs: BTreeSet<PathBuf>,
    debounce: Arc<Mutex<Duration>>,
    debouncer: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.debouncer.abort();
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Watches `components` (and `config`, if given); changes arrive on the
/// returned channel after `debounce` of quiet.
pub(crate) fn watch(
    config: Option<&Path>,
    components: impl IntoIterator<Item = PathBuf>,
    debounce: Duration,
) -> notify::Result<(Watcher, mpsc::UnboundedReceiver<Change>)> {
    let files: Files = Arc::default();
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<Change>();
    let watched = files.clone();
    let inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // Reading a file (as loading a component does) is not a change.
        if !matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        ) {
            return;
        }
        let watched = lock(&watched);
        for path in &event.paths {
            if let Some(change) = watched.get(path) {
                let _ = raw_tx.send(change.clone());
            }
        }
    })?;

    let quiet_for = debounce;
    let debounce = Arc::new(Mutex::new(debounce));
    let quiet = debounce.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    let debouncer = tokio::spawn(async move {
        while let Some(first) = raw_rx.recv().await {
            let mut pending = BTreeSet::from([first]);
            loop {
                let quiet = *lock(&quiet);
                tokio::select! {
                    more = raw_rx.recv() => match more {
                        Some(change) => { pending.insert(change); }
                        None => return,
                    },
                    () = tokio::time::sleep(quiet) => break,
                }
            }
            for change in pending {
                match &change {
                    Change::Component(path) => {
                        tracing::debug!(file = %path.display(), "change seen; queued for reload")
                    }
                    Change::Config => {
                        tracing::debug!("change seen in the config; queued for reload")
                    }
                }
                if tx.send(change).is_err() {
                    return;
                }
            }
        }
    });
    let mut watcher = Watcher {
        inner,
        files,
        dirs: BTreeSet::new(),
        debounce,
        debouncer,
    };
    if let Some((_, e)) = watcher
        .watch_files(config, components, quiet_for)
        .into_iter()
        .next()
    {
        return Err(e);
    }
    Ok((watcher, rx))
}

impl Watcher {
    /// Watches exactly `components` (and `config`) from now on, with
    /// `debounce`. Directories watched before and still needed are never
    /// unwatched, so no change in them is missed; changes already seen stay
    /// queued. Returns the directories that could not be watched (changes
    /// there are not seen).
    pub(crate) fn watch_files(
        &mut self,
        config: Option<&Path>,
        components: impl IntoIterator<Item = PathBuf>,
        debounce: Duration,
    ) -> Vec<(PathBuf, notify::Error)> {
        let mut files: HashMap<PathBuf, Change> = HashMap::new();
        for c in components {
            files.insert(absolute(&c), Change::Component(c));
        }
        if let Some(config) = config {
            files.insert(absolute(config), Change::Config);
        }
        let wanted: BTreeSet<PathBuf> = files
            .keys()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        let mut failed = Vec::new();
        for dir in wanted.difference(&self.dirs.clone()) {
            match self.inner.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(dir.clone());
                }
                Err(e) => failed.push((dir.clone(), e)),
            }
        }
        *lock(&self.files) = files;
        *lock(&self.debounce) = debounce;
        for dir in self.dirs.clone().difference(&wanted) {
            let _ = self.inner.unwatch(dir);
            self.dirs.remove(dir);
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(rx: &mut mpsc::UnboundedReceiver<Change>) -> Change {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no change reported within 10 s")
            .unwrap()
    }

    #[tokio::test]
    async fn rename_truncate_and_symlink_switch_are_all_seen_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let component = dir.path().join("handler.wasm");
        std::fs::write(&component, b"v1").unwrap();
        let (_w, mut rx) = watch(None, [component.clone()], Duration::from_millis(100)).unwrap();

        // Write to a temporary file and rename it into place.
        let tmp = dir.path().join("handler.wasm.tmp");
        std::fs::write(&tmp, b"v2").unwrap();
        std::fs::rename(&tmp, &component).unwrap();
        assert_eq!(next(&mut rx).await, Change::Component(component.clone()));

        // Truncate, then write in several pieces: one debounced change.
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&component).unwrap();
            for _ in 0..5 {
                f.write_all(b"chunk").unwrap();
                f.flush().unwrap();
            }
        }
        assert_eq!(next(&mut rx).await, Change::Component(component.clone()));
        assert!(
            tokio::time::timeout(Duration::from_millis(400), rx.recv())
                .await
                .is_err(),
            "one write burst is one change"
        );

        // Switch a symlink.
        let real = dir.path().join("v3.wasm");
        std::fs::write(&real, b"v3").unwrap();
        let link_tmp = dir.path().join("link.tmp");
        std::os::unix::fs::symlink(&real, &link_tmp).unwrap();
        std::fs::rename(&link_tmp, &component).unwrap();
        assert_eq!(next(&mut rx).await, Change::Component(component.clone()));
    }

    #[tokio::test]
    async fn reading_a_file_is_not_a_change_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let component = dir.path().join("handler.wasm");
        let config = dir.path().join("worker.toml");
        std::fs::write(&component, b"v1").unwrap();
        std::fs::write(&config, b"x").unwrap();
        let (_w, mut rx) = watch(
            Some(&config),
            [component.clone()],
            Duration::from_millis(50),
        )
        .unwrap();
        let _ = std::fs::read(&component).unwrap();
        std::fs::write(dir.path().join("unrelated.txt"), b"x").unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(500), rx.recv())
                .await
                .is_err()
        );
        std::fs::write(&config, b"y").unwrap();
        assert_eq!(next(&mut rx).await, Change::Config);
    }

    #[tokio::test]
    async fn changing_the_watched_set_keeps_queued_changes_and_follows_the_new_set() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (one.path().join("a.wasm"), two.path().join("b.wasm"));
        let config = one.path().join("worker.toml");
        for f in [&a, &b, &config] {
            std::fs::write(f, b"v1").unwrap();
        }
        let (mut w, mut rx) = watch(Some(&config), [a.clone()], Duration::from_millis(50)).unwrap();
        std::fs::write(&a, b"v2").unwrap();
        assert_eq!(next(&mut rx).await, Change::Component(a.clone()));

        // A change reported while a reload runs is still there after the
        // reload points the watcher elsewhere.
        std::fs::write(&a, b"v3").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while rx.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "change not reported"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let failed = w.watch_files(Some(&config), [b.clone()], Duration::from_millis(50));
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(next(&mut rx).await, Change::Component(a.clone()));

        // The new file (in a directory not watched before) is seen, the
        // dropped one is not, and the config still is.
        std::fs::write(&a, b"v4").unwrap();
        std::fs::write(&b, b"v2").unwrap();
        assert_eq!(next(&mut rx).await, Change::Component(b.clone()));
        std::fs::write(&config, b"x").unwrap();
        assert_eq!(next(&mut rx).await, Change::Config);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), rx.recv())
                .await
                .is_err(),
            "a file no longer in use was reported"
        );
    }
}
