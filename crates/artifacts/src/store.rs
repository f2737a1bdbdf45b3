//! Fetched components, kept on disk by the SHA-256 of their bytes.
//!
//! The store is what lets a host restart while its registry or bucket is
//! unreachable: every component it fetched is kept as `sha256/HEX.wasm`, and
//! `refs.json` remembers which digest each reference last resolved to (and
//! the registry's or bucket's revision, so an unchanged tag is not
//! downloaded again). Blobs are written to a temporary file and renamed into
//! place, and re-hashed whenever they are read, so a crash or a tampered
//! file never serves bytes under the wrong name.
//!
//! The store is bounded: after each new blob, the least recently used ones
//! beyond `max_bytes` are removed, never one a reference currently resolves
//! to.

use crate::reference::Digest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a reference resolved to last time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The component's digest (`sha256:HEX`).
    pub digest: String,
    /// The source's own version: a manifest digest, an S3 version or ETag.
    pub revision: Option<String>,
    /// When it was fetched, in seconds since the epoch.
    pub fetched_at: u64,
}

/// The content-addressed store.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<BTreeMap<String, Remembered>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates `dir` (and parents) readable only by this user: what it holds
/// is loaded and run.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Store> {
        create_private_dir(&dir.join("sha256"))?;
        let index = std::fs::read(dir.join("refs.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Ok(Store {
            dir: dir.to_path_buf(),
            max_bytes,
            index: Mutex::new(index),
        })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("sha256")
            .join(format!("{}.wasm", digest.hex()))
    }

    /// The bytes stored under `digest`, if present and intact (a blob whose
    /// bytes do not hash to its name is removed). Marks it used.
    pub fn get(&self, digest: &Digest) -> Option<Vec<u8>> {
        let path = self.blob(digest);
        let bytes = std::fs::read(&path).ok()?;
        if Digest::of(&bytes) != *digest {
            tracing::warn!(
                blob = %path.display(),
                "stored component does not match its digest; removed (it will be fetched again)"
            );
            let _ = std::fs::remove_file(&path);
            return None;
        }
        let _ = std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some(bytes)
    }

    /// Stores `bytes` (whose digest the caller computed) and removes what is
    /// beyond the bound, keeping `keep`.
    pub fn put(
        &self,
        digest: &Digest,
        bytes: &[u8],
        keep: &HashSet<Digest>,
    ) -> std::io::Result<()> {
        let path = self.blob(digest);
        if !path.is_file() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        let mut keep = keep.clone();
        keep.insert(*digest);
        self.clean(&keep);
        Ok(())
    }

    /// What `reference` resolved to last time, if its blob is still here.
    pub fn recall(&self, reference: &str) -> Option<(Remembered, Digest)> {
        let entry = lock(&self.index).get(reference).cloned()?;
        let digest = Digest::parse(&entry.digest).ok()?;
        self.blob(&digest).is_file().then_some((entry, digest))
    }

    /// Records what `reference` resolved to.
    pub fn remember(&self, reference: &str, digest: &Digest, revision: Option<String>) {
        let fetched_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut index = lock(&self.index);
        let entry = Remembered {
            digest: digest.to_string(),
            revision,
            fetched_at,
        };
        if index.get(reference) == Some(&entry) {
            return;
        }
        index.insert(reference.to_string(), entry);
        self.save(&index);
    }

    fn save(&self, index: &BTreeMap<String, Remembered>) {
        let path = self.dir.join("refs.json");
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = serde_json::to_vec_pretty(index)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&tmp, json))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!(
                "cannot save the component store's index {}: {e}; a restart without the registry may not find its components",
                path.display()
            );
        }
    }

    /// Total bytes of stored blobs.
    pub fn size(&self) -> u64 {
        self.blobs().iter().map(|(_, len, _)| len).sum()
    }

    fn blobs(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("sha256")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let e = e.ok()?;
                let meta = e.metadata().ok()?;
                meta.is_file()
                    .then(|| (e.path(), meta.len(), meta.modified().unwrap_or(UNIX_EPOCH)))
            })
            .collect()
    }

    /// Removes the least recently used blobs until the store is within its
    /// bound (blobs in `keep` stay whatever their size), and forgets
    /// references whose blob is gone.
    pub fn clean(&self, keep: &HashSet<Digest>) {
        let mut blobs = self.blobs();
        let mut total: u64 = blobs.iter().map(|(_, len, _)| len).sum();
        blobs.sort_by_key(|(_, _, used)| *used);
        let kept: HashSet<String> = keep.iter().map(|d| format!("{}.wasm", d.hex())).collect();
        for (path, len, _) in blobs {
            if total <= self.max_bytes {
                break;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if kept.contains(name) {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
                tracing::info!(blob = %path.display(), "removed from the component store (least recently used)");
            }
        }
        let mut index = lock(&self.index);
        let before = index.len();
        index.retain(|_, r| Digest::parse(&r.digest).is_ok_and(|d| self.blob(&d).is_file()));
        if index.len() != before {
            self.save(&index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified_remembered_across_opens_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 10).unwrap();
        let (a, b, c) = (b"aaaaaa".to_vec(), b"bbbbbb".to_vec(), b"cccccc".to_vec());
        let (da, db, dc) = (Digest::of(&a), Digest::of(&b), Digest::of(&c));
        store.put(&da, &a, &HashSet::new()).unwrap();
        store.remember("oci://r/x:1", &da, Some("m1".into()));
        assert_eq!(store.get(&da).as_deref(), Some(&a[..]));

        // Reopened: the index survives.
        let store = Store::open(dir.path(), 10).unwrap();
        let (entry, digest) = store.recall("oci://r/x:1").unwrap();
        assert_eq!((digest, entry.revision.as_deref()), (da, Some("m1")));

        // Over the bound: the least recently used blob not kept goes, and
        // the reference that named it is forgotten.
        std::thread::sleep(std::time::Duration::from_millis(20));
        store.put(&db, &b, &HashSet::new()).unwrap();
        assert!(store.get(&da).is_none(), "a was least recently used");
        assert!(store.recall("oci://r/x:1").is_none());
        assert!(store.size() <= 10);
        // A kept blob stays even beyond the bound.
        store.put(&dc, &c, &HashSet::from([db])).unwrap();
        assert!(store.get(&db).is_some() && store.get(&dc).is_some());

        // A tampered blob is refused and removed.
        let path = dir.path().join("sha256").join(format!("{}.wasm", dc.hex()));
        std::fs::write(&path, b"evil").unwrap();
        assert!(store.get(&dc).is_none());
        assert!(!path.exists());
    }
}
