//! Precompiled components, cached on disk by content hash.
//!
//! Compiling a component takes from a hundred milliseconds (Rust) to seconds
//! (Python, JavaScript); loading the precompiled artifact takes well under a
//! millisecond. The key is the SHA-256 of the component bytes together with
//! the engine's compatibility hash (wasmtime version and every setting that
//! changes generated code), so an upgrade or a config change never loads a
//! stale artifact.
//!
//! Loading an artifact runs native code produced by whoever wrote it, so the
//! cache directory must be writable only by the user running the host. It is
//! created with mode 0700; artifacts are written to a temporary file and
//! renamed into place, so a crash never leaves a half-written artifact under
//! a valid name.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache directory and the engine's compatibility key.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

/// Feeds `Hash` output into SHA-256, so the key is stable across processes
/// (unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is used")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Hex SHA-256 of some bytes: the component digest, as fetched components
/// are named (one definition, in `wasm_activity_artifacts::Digest`).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    wasm_activity_artifacts::Digest::of(bytes).hex()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ArtifactCache {
    /// A cache in `dir`, or the user cache directory when `None`. If the
    /// directory cannot be created, caching is off and a warning is logged.
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex(&hasher.0.finalize())[..16].to_string();
        let dir = dir.or_else(|| dirs::cache_dir().map(|d| d.join("wasm-activity")));
        let dir = dir.and_then(|d| match create_private_dir(&d) {
            Ok(()) => Some(d),
            Err(e) => {
                tracing::warn!(
                    "precompiled component cache disabled: cannot create {}: {e}",
                    d.display()
                );
                None
            }
        });
        ArtifactCache { dir, engine_key }
    }

    /// The cache directory, if caching is on.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn artifact_path(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{}-{}.cwasm", &digest[..32], self.engine_key)))
    }

    /// The cached artifact for a component with this digest, if any.
    pub(crate) fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.artifact_path(digest)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the artifact was written by `store` below, from bytes that
        // wasmtime itself produced, into a directory only this user can
        // write; its name binds it to these component bytes and this
        // engine's settings.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(
                    "ignoring unusable cached artifact {}: {e:#}",
                    path.display()
                );
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores the compiled form of a component. Failures only cost a
    /// recompile next time, so they are logged, not returned.
    pub(crate) fn store(&self, digest: &str, component: &Component) {
        let Some(path) = self.artifact_path(digest) else {
            return;
        };
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|bytes| {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)
            });
        if let Err(e) = result {
            tracing::warn!(
                "cannot cache precompiled component at {}: {e}",
                path.display()
            );
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
