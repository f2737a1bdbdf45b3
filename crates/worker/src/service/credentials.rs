//! Credentials fetched again when the service refuses them.
//!
//! The SDK caches credentials until the expiry they carry. A role session
//! revoked or rotated early, or credentials refused for any reason, are then
//! handed out again until that expiry, and every heartbeat and report in the
//! window fails: results are lost to a cache. So the worker keeps its own
//! cache in front of the default chain and drops it whenever a call is
//! refused for its credentials ([`refused`], from the answer table), at most
//! once per [`MIN_REFRESH`] so a burst of refusals costs one fetch.
//!
//! A refusal is said at WARN once per change (the first, the first after
//! credentials were accepted again, or one with another error code), and at
//! DEBUG otherwise: a worker whose keys were revoked would else repeat the
//! same warning with every poll, burying the one line that names the fix.
//!
//! What a fetch can pick up depends on the source: role credentials (STS,
//! web identity, container and instance roles) are fetched anew; keys from
//! the environment or a credentials file were read when the worker started,
//! so changing those needs a restart.

use super::answers::Operation;
use aws_config::SdkConfig;
use aws_config::identity::IdentityCache;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{
    ProvideCredentials, Result as CredentialsResult, SharedCredentialsProvider, future,
};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// What to do about refused credentials, said wherever a call is refused
/// for them.
pub(crate) const FIX: &str = "role credentials (instance, container, web identity, SSO) are \
     fetched again on their own; keys from the environment or a profile's files were read at \
     start, so if they expired or were revoked, replace them and restart the worker. If the \
     credentials are good, the role lacks the permission";

/// Refusals closer together than this refresh once.
pub(crate) const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Credentials this close to their expiry are fetched again before use.
const EXPIRY_BUFFER: Duration = Duration::from_secs(60);
/// Longest a fetch may take: every call waits behind one, so a hung
/// provider must not hold up heartbeats past their deadline.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts refreshes asked for; a cache filled under an older count is stale.
#[derive(Debug, Default)]
pub(crate) struct Generation {
    value: AtomicU64,
    last_bump: Mutex<Option<Instant>>,
}

impl Generation {
    fn current(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Marks every cache stale, unless that was done less than
    /// [`MIN_REFRESH`] before `now`.
    fn bump(&self, now: Instant) -> bool {
        let mut last = self.last_bump.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.saturating_duration_since(t) < MIN_REFRESH) {
            return false;
        }
        *last = Some(now);
        self.value.fetch_add(1, Ordering::SeqCst);
        true
    }
}

static GLOBAL: Generation = Generation {
    value: AtomicU64::new(0),
    last_bump: Mutex::new(None),
};

/// What was last said about refusals, per operation: the error code
/// warned about and when the last refusal came, until a call of that
/// operation sent after it is accepted. Per operation, so a permission
/// missing for one (heartbeats, say) is said once while polls succeed.
#[derive(Debug)]
pub(crate) struct Told {
    /// Set while some refusal has been warned about and not yet followed
    /// by an acceptance (checked without the lock on every accepted call).
    refusing: AtomicBool,
    last: Mutex<[Option<(String, Instant)>; OPERATIONS]>,
}

/// How many [`Operation`]s there are.
const OPERATIONS: usize = Operation::Describe as usize + 1;

impl Told {
    const fn new() -> Told {
        Told {
            refusing: AtomicBool::new(false),
            last: Mutex::new([const { None }; OPERATIONS]),
        }
    }

    /// Whether a refusal of `operation` with `code` at `now` is news: the
    /// first, the first after an acceptance, or another code than the one
    /// last warned about.
    fn refused(&self, operation: Operation, code: &str, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let entry = &mut last[operation as usize];
        let news = entry.as_ref().is_none_or(|(told, _)| told != code);
        *entry = Some((code.to_string(), now));
        self.refusing.store(true, Ordering::SeqCst);
        news
    }

    /// A call of `operation` sent at `sent` was accepted: if it was sent
    /// after that operation's last refusal, the next refusal is news again
    /// (a call already in flight when the refusals began proves nothing).
    fn accepted(&self, operation: Operation, sent: Instant) {
        if !self.refusing.load(Ordering::SeqCst) {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let entry = &mut last[operation as usize];
        if entry.as_ref().is_some_and(|(_, at)| sent > *at) {
            *entry = None;
        }
        self.refusing
            .store(last.iter().any(Option::is_some), Ordering::SeqCst);
    }
}

static TOLD: Told = Told::new();

/// A call of `operation` was refused for its credentials (`code`, the
/// service's error code): the next request fetches them afresh from the
/// provider chain.
pub(crate) fn refused(operation: Operation, code: &str) {
    let refetch = GLOBAL.bump(Instant::now());
    if TOLD.refused(operation, code, Instant::now()) {
        tracing::warn!(
            code,
            operation = ?operation,
            "the service refused the worker's credentials; fetching them again (role credentials \
             are renewed; keys from the environment or a credentials file need a restart to \
             change). Said again only if credentials are accepted in between or the error changes"
        );
    } else {
        tracing::debug!(code, operation = ?operation, refetch, "credentials refused again");
    }
}

/// A call of `operation` sent at `sent` was answered with success: its
/// credentials were accepted.
pub(crate) fn accepted(operation: Operation, sent: Instant) {
    TOLD.accepted(operation, sent);
}

/// A credentials provider that caches what `inner` gives until it nears
/// expiry or a refusal makes it stale.
#[derive(Debug)]
pub(crate) struct Refreshing {
    inner: SharedCredentialsProvider,
    generation: &'static Generation,
    cached: tokio::sync::Mutex<Option<(Credentials, u64)>>,
}

impl Refreshing {
    pub(crate) fn new(inner: SharedCredentialsProvider, generation: &'static Generation) -> Self {
        Refreshing {
            inner,
            generation,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    async fn get(&self) -> CredentialsResult {
        // Held across the fetch: concurrent requests wait for one fetch.
        let mut cached = self.cached.lock().await;
        let generation = self.generation.current();
        if let Some((credentials, filled)) = cached.as_ref() {
            let fresh = credentials
                .expiry()
                .is_none_or(|at| at > SystemTime::now() + EXPIRY_BUFFER);
            if *filled == generation && fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials = tokio::time::timeout(FETCH_TIMEOUT, self.inner.provide_credentials())
            .await
            .map_err(|_| CredentialsError::provider_timed_out(FETCH_TIMEOUT))??;
        *cached = Some((credentials.clone(), generation));
        Ok(credentials)
    }
}

impl ProvideCredentials for Refreshing {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.get())
    }
}

/// `sdk` with its credentials behind a [`Refreshing`] cache (and the SDK's
/// own cache off, so a refusal takes effect at the next request).
pub(crate) fn refreshing(sdk: SdkConfig) -> SdkConfig {
    let Some(inner) = sdk.credentials_provider() else {
        return sdk;
    };
    sdk.into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Refreshing::new(
            inner, &GLOBAL,
        )))
        .identity_cache(IdentityCache::no_cache())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// Hands out credentials numbered by how often it was asked, expiring
    /// `lifetime` from now if given.
    #[derive(Debug, Default)]
    struct Counting {
        asked: Arc<AtomicUsize>,
        lifetime: Option<Duration>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
            future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("key{n}"),
                "secret",
                None,
                self.lifetime.map(|l| SystemTime::now() + l),
                "test",
            )))
        }
    }

    fn leak<T>(t: T) -> &'static T {
        Box::leak(Box::new(t))
    }

    #[tokio::test]
    async fn cached_until_refused_then_fetched_once() {
        let generation = leak(Generation::default());
        let inner = Counting::default();
        let count = inner.asked.clone();
        let provider = Refreshing::new(SharedCredentialsProvider::new(inner), generation);
        assert_eq!(provider.get().await.unwrap().access_key_id(), "key1");
        assert_eq!(provider.get().await.unwrap().access_key_id(), "key1");
        let t0 = Instant::now();
        assert!(generation.bump(t0));
        // A burst of refusals right after is one refresh.
        assert!(!generation.bump(t0 + Duration::from_secs(1)));
        assert_eq!(provider.get().await.unwrap().access_key_id(), "key2");
        assert_eq!(provider.get().await.unwrap().access_key_id(), "key2");
        assert!(generation.bump(t0 + MIN_REFRESH));
        assert_eq!(provider.get().await.unwrap().access_key_id(), "key3");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_refusal_is_news_once_per_change() {
        let told = Told::new();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(
            told.refused(Operation::Poll, "ExpiredToken", at(0)),
            "the first is said"
        );
        for i in 0..100 {
            assert!(
                !told.refused(Operation::Poll, "ExpiredToken", at(i)),
                "a repeat is not"
            );
        }
        assert!(
            told.refused(Operation::Poll, "AccessDenied", at(100)),
            "another error is"
        );
        assert!(!told.refused(Operation::Poll, "AccessDenied", at(101)));
        // Another operation has its own news; its acceptance is not the
        // poll's.
        assert!(told.refused(Operation::Heartbeat, "AccessDenied", at(101)));
        told.accepted(Operation::Heartbeat, at(102));
        assert!(!told.refused(Operation::Poll, "AccessDenied", at(103)));
        // A poll sent before the last refusal proves nothing.
        told.accepted(Operation::Poll, at(102));
        assert!(!told.refused(Operation::Poll, "AccessDenied", at(104)));
        told.accepted(Operation::Poll, at(105));
        assert!(
            told.refused(Operation::Poll, "AccessDenied", at(106)),
            "the first refusal after an acceptance is"
        );
        assert!(!told.refused(Operation::Poll, "AccessDenied", at(107)));
    }

    #[tokio::test]
    async fn credentials_near_expiry_are_fetched_again() {
        let inner = Counting {
            lifetime: Some(EXPIRY_BUFFER / 2),
            ..Counting::default()
        };
        let count = inner.asked.clone();
        let provider = Refreshing::new(
            SharedCredentialsProvider::new(inner),
            leak(Generation::default()),
        );
        provider.get().await.unwrap();
        provider.get().await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
