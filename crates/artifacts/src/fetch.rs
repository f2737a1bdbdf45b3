//! Resolving a reference to verified component bytes: from the file, from
//! the store, or from its registry, bucket or URL.
//!
//! The rules, in order:
//! 1. A pinned or immutable reference already in the store is served from
//!    it, with no network at all.
//! 2. Otherwise the source is asked for its current revision (a manifest
//!    digest, an S3 version or ETag). If that is what the store remembers
//!    for the reference, the stored bytes are used; if not, they are
//!    downloaded, verified, stored and remembered.
//! 3. If the source cannot be reached, the store's last copy for the
//!    reference is used, and the result says so. Only a reference never
//!    fetched before fails.

use crate::error::{FetchError, MAX_COMPONENT_BYTES, causes};
use crate::oci::Oci;
use crate::reference::{ComponentRef, Digest, Source};
use crate::s3::S3;
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a pin mismatch is refused, and the fix.
const PINNED: &str = "the `sha256` pin; fix the pin or publish the right build";
/// How long one resolution or download may take before it counts as
/// unreachable.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Where resolved bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A local file.
    File,
    /// Downloaded from the source just now.
    Downloaded,
    /// The source still names what the store holds: not downloaded again.
    Unchanged,
    /// A pinned or immutable reference already in the store: the source was
    /// not asked.
    Pinned,
    /// The source could not be reached; the store's last copy is used.
    Stale { because: String, fetched_at: u64 },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File => f.write_str("file"),
            Origin::Downloaded => f.write_str("downloaded"),
            Origin::Unchanged => f.write_str("unchanged at the source, from the store"),
            Origin::Pinned => f.write_str("pinned, from the store"),
            Origin::Stale {
                because,
                fetched_at,
            } => write!(
                f,
                "from the store (its copy fetched at {fetched_at} s since the epoch), because the source \
                 cannot be reached: {because}"
            ),
        }
    }
}

/// A reference resolved to bytes.
#[derive(Debug)]
pub struct Resolved {
    pub digest: Digest,
    pub bytes: Vec<u8>,
    pub origin: Origin,
    /// The source's own version (manifest digest, S3 version or ETag).
    pub revision: Option<String>,
}

/// What a [`Fetcher`] is built with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The store's directory; `None` turns the store off (every start needs
    /// the sources).
    pub store_dir: Option<PathBuf>,
    pub store_max_bytes: u64,
    /// Registries (and `http://` hosts) reached over plain HTTP.
    pub insecure: Vec<String>,
    /// AWS configuration for `s3://` references (the worker's chain).
    pub aws: Option<aws_config::SdkConfig>,
    /// Path-style S3 addressing (custom endpoints, LocalStack).
    pub s3_path_style: bool,
}

/// A component pushed by [`Fetcher::push`].
#[derive(Debug)]
pub struct Pushed {
    pub digest: Digest,
    /// The source's own version of it (a manifest digest, an S3 version).
    pub revision: String,
}

/// Resolves references; one per worker.
pub struct Fetcher {
    settings: Settings,
    store: Option<Arc<Store>>,
    oci: Oci,
    s3: Option<S3>,
    https: reqwest::Client,
    /// The digest each reference last resolved to in this process: kept in
    /// the store whatever its bound.
    current: Mutex<HashMap<ComponentRef, Digest>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fetcher {
    /// A fetcher with `settings`. A store that cannot be opened is turned
    /// off with a warning (components are then always fetched).
    pub fn new(settings: Settings) -> Fetcher {
        let store = settings.store_dir.as_ref().and_then(|dir| {
            Store::open(dir, settings.store_max_bytes)
                .map(Arc::new)
                .inspect_err(|e| {
                    tracing::warn!(
                        "component store disabled: cannot create {}: {e}; a restart needs every registry and bucket",
                        dir.display()
                    )
                })
                .ok()
        });
        let https = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .https_only(false)
            .user_agent(concat!("wasm-activity/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("building an HTTP client with static settings");
        Fetcher {
            oci: Oci::new(&settings.insecure),
            s3: settings
                .aws
                .as_ref()
                .map(|sdk| crate::s3::client(sdk, settings.s3_path_style)),
            store,
            https,
            settings,
            current: Mutex::default(),
        }
    }

    /// The store, if on.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_deref()
    }

    /// Resolves `r` to verified bytes (see the module docs for the order).
    pub async fn resolve(&self, r: &ComponentRef) -> Result<Resolved, FetchError> {
        let resolved = match &r.source {
            Source::File(path) => {
                let owned = path.clone();
                let bytes = tokio::task::spawn_blocking(move || read_component_file(&owned))
                    .await
                    .expect("reading a component panicked")
                    .map_err(|cause| FetchError::File {
                        path: path.clone(),
                        cause,
                    })?;
                Resolved {
                    digest: Digest::of(&bytes),
                    bytes,
                    origin: Origin::File,
                    revision: None,
                }
            }
            _ => self.resolve_remote(r).await?,
        };
        if let Some(pin) = &r.pin
            && *pin != resolved.digest
        {
            return Err(FetchError::Mismatch {
                what: r.to_string(),
                expected: pin.to_string(),
                actual: resolved.digest.to_string(),
                by: PINNED,
            });
        }
        Ok(resolved)
    }

    async fn resolve_remote(&self, r: &ComponentRef) -> Result<Resolved, FetchError> {
        let key = r.source.to_string();
        if let Some(host) = r.source.plain_http_host()
            && !self.settings.insecure.contains(&host)
        {
            return Err(FetchError::Unsupported {
                what: key,
                why: format!(
                    "plain http:// is refused; use https://, or list \"{host}\" in `insecure_registries` \
                     (for local test servers only)"
                ),
            });
        }
        // 1. Pinned or immutable, and already here: no network.
        if let Some(store) = &self.store {
            let known = match (&r.pin, &r.source) {
                (Some(pin), _) => Some(*pin),
                (None, Source::Oci(o)) if o.digest.is_some() => store.recall(&key).map(|(_, d)| d),
                (None, Source::S3(s)) if s.version_id.is_some() => {
                    store.recall(&key).map(|(_, d)| d)
                }
                _ => None,
            };
            if let Some(digest) = known
                && let Some(bytes) = self.stored(store, digest).await
            {
                self.note_current(r, digest);
                return Ok(Resolved {
                    digest,
                    bytes,
                    origin: Origin::Pinned,
                    revision: None,
                });
            }
        }
        // 2. Ask the source.
        let fresh = tokio::time::timeout(FETCH_TIMEOUT, self.ask_source(r, &key))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Unreachable {
                    what: key.clone(),
                    cause: format!("no answer within {} s", FETCH_TIMEOUT.as_secs()),
                })
            });
        match fresh {
            Ok(resolved) => Ok(resolved),
            // 3. Unreachable: the store's last copy.
            Err(FetchError::Unreachable { what, cause }) => {
                let stale = match &self.store {
                    Some(store) => match store.recall(&key) {
                        Some((entry, digest)) => self
                            .stored(store, digest)
                            .await
                            .map(|bytes| (entry, digest, bytes)),
                        None => None,
                    },
                    None => None,
                };
                match stale {
                    Some((entry, digest, bytes)) => {
                        self.note_current(r, digest);
                        Ok(Resolved {
                            digest,
                            bytes,
                            origin: Origin::Stale {
                                because: cause,
                                fetched_at: entry.fetched_at,
                            },
                            revision: entry.revision,
                        })
                    }
                    None => Err(FetchError::Unreachable {
                        what,
                        cause: format!(
                            "{cause}; and the local store has no copy of it to start from{}",
                            self.store
                                .as_ref()
                                .map(|s| format!(" ({})", s.dir().display()))
                                .unwrap_or_default()
                        ),
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn ask_source(&self, r: &ComponentRef, key: &str) -> Result<Resolved, FetchError> {
        let revision = match &r.source {
            Source::Oci(o) => self.oci.revision(o).await?,
            Source::S3(s) => self.s3_client(key)?.revision(s).await?,
            // A URL is always pinned; its revision is the pin.
            Source::Url(_) => r.pin.map(|p| p.to_string()).unwrap_or_default(),
            Source::File(_) => unreachable!("files are read, not fetched"),
        };
        if let Some(store) = &self.store
            && let Some((entry, digest)) = store.recall(key)
            && entry.revision.as_deref() == Some(revision.as_str())
            && let Some(bytes) = self.stored(store, digest).await
        {
            self.note_current(r, digest);
            return Ok(Resolved {
                digest,
                bytes,
                origin: Origin::Unchanged,
                revision: Some(revision),
            });
        }
        let bytes = match &r.source {
            Source::Oci(o) => self.oci.fetch(o, &revision).await?,
            Source::S3(s) => self.s3_client(key)?.fetch(s, &revision).await?,
            Source::Url(u) => self.fetch_url(u).await?,
            Source::File(_) => unreachable!("files are read, not fetched"),
        };
        let digest = Digest::of(&bytes);
        if let Some(pin) = &r.pin
            && *pin != digest
        {
            // Never stored: a tampered or wrong artifact leaves no trace.
            return Err(FetchError::Mismatch {
                what: key.to_string(),
                expected: pin.to_string(),
                actual: digest.to_string(),
                by: PINNED,
            });
        }
        if let Some(store) = &self.store {
            let keep: HashSet<Digest> = lock(&self.current).values().copied().collect();
            let owned_bytes = bytes.clone();
            let owned_store = store.clone();
            let written =
                tokio::task::spawn_blocking(move || owned_store.put(&digest, &owned_bytes, &keep))
                    .await
                    .expect("writing to the store panicked");
            match written {
                Ok(()) => store.remember(key, &digest, Some(revision.clone())),
                Err(e) => tracing::warn!(
                    "cannot keep {key} in the component store {}: {e}; a restart without the source will not find it",
                    store.dir().display()
                ),
            }
        }
        self.note_current(r, digest);
        Ok(Resolved {
            digest,
            bytes,
            origin: Origin::Downloaded,
            revision: Some(revision),
        })
    }

    fn note_current(&self, r: &ComponentRef, digest: Digest) {
        lock(&self.current).insert(r.clone(), digest);
    }

    async fn stored(&self, store: &Arc<Store>, digest: Digest) -> Option<Vec<u8>> {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.get(&digest))
            .await
            .expect("reading the store panicked")
    }

    fn s3_client(&self, key: &str) -> Result<&S3, FetchError> {
        self.s3.as_ref().ok_or_else(|| FetchError::Unsupported {
            what: key.to_string(),
            why: "s3:// references need AWS credentials and a region, which this command has not set up".into(),
        })
    }

    async fn fetch_url(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let unreachable = |e: reqwest::Error| FetchError::Unreachable {
            what: url.to_string(),
            cause: causes(&e),
        };
        let response = self.https.get(url).send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let what = url.to_string();
            let cause = format!("HTTP {status}");
            return Err(match status.as_u16() {
                404 | 410 => FetchError::NotFound { what, cause },
                401 | 403 => FetchError::Denied {
                    what,
                    cause,
                    fix: "the URL must be readable without credentials (use oci:// or s3:// for private components)",
                },
                _ => FetchError::Unreachable { what, cause },
            });
        }
        if let Some(len) = response.content_length()
            && len > MAX_COMPONENT_BYTES
        {
            return Err(FetchError::TooLarge {
                what: url.to_string(),
                size: len,
            });
        }
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        use futures_util::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(unreachable)?;
            if (bytes.len() + chunk.len()) as u64 > MAX_COMPONENT_BYTES {
                return Err(FetchError::TooLarge {
                    what: url.to_string(),
                    size: (bytes.len() + chunk.len()) as u64,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Publishes `component` at `target` (an `oci://` reference with a tag,
    /// or an `s3://` key) the way [`Fetcher::resolve`] fetches it.
    pub async fn push(&self, component: Vec<u8>, target: &Source) -> Result<Pushed, FetchError> {
        let digest = Digest::of(&component);
        let revision = match target {
            Source::Oci(o) if o.tag.is_some() && o.digest.is_none() => {
                self.oci.push(o, component).await?
            }
            Source::Oci(_) => {
                return Err(FetchError::Unsupported {
                    what: target.to_string(),
                    why: "push to a tag (oci://REGISTRY/REPOSITORY:TAG); the registry gives the digest".into(),
                });
            }
            Source::S3(s) if s.version_id.is_none() => {
                self.s3_client(&target.to_string())?
                    .push(s, component, &digest.to_string())
                    .await?
            }
            _ => {
                return Err(FetchError::Unsupported {
                    what: target.to_string(),
                    why: "push to oci://REGISTRY/REPOSITORY:TAG or s3://BUCKET/KEY".into(),
                });
            }
        };
        Ok(Pushed { digest, revision })
    }
}

/// Reads a component file, at most [`MAX_COMPONENT_BYTES`] of it. A named
/// pipe is read like a file (the caller reads off the async threads); the
/// worker refuses to *re*load one, which could block its reloads for good.
fn read_component_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let too_large = |len: u64| {
        std::io::Error::other(format!(
            "{len} bytes or more, over the {MAX_COMPONENT_BYTES}-byte limit for a component"
        ))
    };
    let meta = std::fs::metadata(path)?;
    if meta.is_file() && meta.len() > MAX_COMPONENT_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_COMPONENT_BYTES) as usize);
    std::fs::File::open(path)?
        .take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}
