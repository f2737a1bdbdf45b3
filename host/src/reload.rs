//! Watching component files and the config file for changes.
//!
//! Editors and deploy tools replace files in different ways: writing in
//! place, truncating then writing, writing a temporary file and renaming it
//! over the old one, or switching a symlink. Watching the *directories*
//! that hold the files (not the files themselves, whose inode a rename
//! replaces) sees all of them. Events are debounced: a change is reported
//! once the file has been quiet for the debounce period, so a half-written
//! file is not compiled (and if it is, it fails to load and is refused).

use notify::{EventKind, RecursiveMode, Watcher as _};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// A debounced change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A component file changed.
    Component(PathBuf),
    /// The config file changed.
    Config,
}

/// Keeps the watch alive; dropping it stops watching.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
    _debouncer: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self._debouncer.abort();
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    }
}

/// Watches `components` (and `config`, if given); changes arrive on the
/// returned channel after `debounce` of quiet.
pub fn watch(
    config: Option<&Path>,
    components: impl IntoIterator<Item = PathBuf>,
    debounce: Duration,
) -> notify::Result<(Watcher, mpsc::UnboundedReceiver<Change>)> {
    let mut files: HashMap<PathBuf, Change> = HashMap::new();
    for c in components {
        let abs = absolute(&c);
        files.insert(abs, Change::Component(c));
    }
    if let Some(config) = config {
        files.insert(absolute(config), Change::Config);
    }
    let dirs: BTreeSet<PathBuf> = files
        .keys()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();

    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<Change>();
    let watched = files.clone();
    let mut inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // Reading a file (as loading a component does) is not a change.
        if !matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        ) {
            return;
        }
        for path in &event.paths {
            if let Some(change) = watched.get(path) {
                let _ = raw_tx.send(change.clone());
            }
        }
    })?;
    for dir in &dirs {
        inner.watch(dir, RecursiveMode::NonRecursive)?;
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let debouncer = tokio::spawn(async move {
        while let Some(first) = raw_rx.recv().await {
            let mut pending = vec![first];
            loop {
                tokio::select! {
                    more = raw_rx.recv() => match more {
                        Some(change) => pending.push(change),
                        None => return,
                    },
                    () = tokio::time::sleep(debounce) => break,
                }
            }
            pending.sort_by_key(|c| format!("{c:?}"));
            pending.dedup();
            for change in pending {
                if tx.send(change).is_err() {
                    return;
                }
            }
        }
    });
    Ok((
        Watcher {
            _inner: inner,
            _debouncer: debouncer,
        },
        rx,
    ))
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
}
