//! The task sources a worker serves (Step Functions activities and SWF task
//! lists), started, stopped and replaced while it runs.
//!
//! A config reload is all or nothing: every new or changed source is
//! prepared first (components loaded, secrets read), and only if all of
//! them succeed are the old ones stopped and the new ones started. Stopping
//! a source cancels only its own shutdown token: its pollers start no new
//! poll, polls in flight return and their tasks run, so nothing is
//! abandoned. Tasks already running finish on the component they started
//! with.
//!
//! Tenants are not sources: one [`Tenant`] per name outlives reloads and is
//! resized in place once a new config is prepared, so the pollers of
//! unchanged activities see new caps at once and tasks admitted under the old
//! caps stay counted. A component file can change while a config reload
//! prepares (its change is queued, or it was renamed before its directory was
//! watched), so after every config reload each file in use is re-read and
//! reloaded if what it holds is not what its activities run.

use crate::config::{ActivityConfig, ComponentRef, Config, TaskListConfig};
use crate::health::{self, SourceHealth};
use crate::metrics;
use crate::poller::Poller;
use crate::registry::{Activity, ActivitySettings, Component, Route, TypeRoute};
use crate::runtime::Runtime;
use crate::service::sfn::SfnClients;
use crate::service::swf::SwfClients;
use crate::service::{StepFunctions, Swf};
use crate::shutdown::Shutdown;
use crate::slots::Slots;
use crate::startup::RunError;
use crate::tenant::{Tenant, TenantGate};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;
use wasm_activity_artifacts::{Digest, Fetcher, Origin};

/// SWF heartbeat interval when neither the config nor the registered type
/// says.
const DEFAULT_SWF_HEARTBEAT: Duration = Duration::from_secs(10);

struct Running {
    /// Its config as it was started: it restarts only if this changes.
    config: Source,
    stop: Shutdown,
    health: Arc<SourceHealth>,
    activities: Vec<Arc<Activity>>,
}

/// A source ready to start.
struct Prepared {
    key: String,
    config: Source,
    poller: Poller,
    activities: Vec<Arc<Activity>>,
    /// Its `max_concurrent`, given to its key's slots once the source it
    /// replaces has stopped polling.
    max_concurrent: usize,
}

/// Everything needed to start sources, and the ones running.
pub(crate) struct Sources {
    runtime: Arc<Runtime>,
    /// Resolves component references (files, registries, S3, https).
    fetcher: Arc<Fetcher>,
    sfn: SfnClients,
    swf: SwfClients,
    worker_name: String,
    /// The config's tenants, and removed ones whose tasks still run (so a
    /// tenant removed and added back still counts them).
    tenants: HashMap<String, Tenant>,
    /// Task slots by source key, kept across reloads (see [`crate::slots`]),
    /// and removed sources' whose tasks still run.
    slots: HashMap<String, Arc<Slots>>,
    tasks: TaskTracker,
    stages: Shutdown,
    /// Instance slots of the engine's pool (see `Poller::pool`).
    pool: Arc<Semaphore>,
    pollers: JoinSet<()>,
    running: BTreeMap<String, Running>,
    /// Mutable references whose last refresh failed, and how (logged when
    /// it starts, changes and ends).
    refresh_trouble: BTreeMap<ComponentRef, String>,
    /// The last digest of each component that failed to load, and why.
    refused: std::sync::Mutex<HashMap<ComponentRef, (Digest, String)>>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sources {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        fetcher: Arc<Fetcher>,
        sdk: &aws_config::SdkConfig,
        config: &Config,
        tasks: TaskTracker,
        stages: Shutdown,
        pool_slots: usize,
    ) -> Sources {
        Sources {
            pool: Arc::new(Semaphore::new(pool_slots)),
            runtime,
            fetcher,
            sfn: SfnClients::new(sdk, config.aws_client),
            swf: SwfClients::new(sdk, config.aws_client),
            worker_name: config.worker_name.clone(),
            tenants: HashMap::new(),
            slots: HashMap::new(),
            tasks,
            stages,
            pollers: JoinSet::new(),
            running: BTreeMap::new(),
            refresh_trouble: BTreeMap::new(),
            refused: Default::default(),
        }
    }

    /// How many sources are being served.
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// The poller tasks, awaited on shutdown.
    pub(crate) fn pollers(&mut self) -> &mut JoinSet<()> {
        &mut self.pollers
    }

    /// Every component in use, with the activities that run it.
    pub(crate) fn components(&self) -> BTreeMap<ComponentRef, Vec<Arc<Activity>>> {
        let mut map: BTreeMap<ComponentRef, Vec<Arc<Activity>>> = BTreeMap::new();
        for r in self.running.values() {
            for a in &r.activities {
                map.entry(a.settings.component.clone())
                    .or_default()
                    .push(a.clone());
            }
        }
        map
    }

    /// The local component files in use: what the watcher watches.
    pub(crate) fn component_files(&self) -> Vec<PathBuf> {
        self.components()
            .into_keys()
            .filter_map(|c| c.as_file().map(PathBuf::from))
            .collect()
    }

    /// Makes the running sources match `config`: stops removed ones,
    /// replaces changed ones, starts new ones. Nothing changes on error.
    pub(crate) async fn apply(&mut self, config: &Config) -> Result<(), RunError> {
        // The tenants as the new config has them: existing ones keep their
        // usage (and get their new caps only once everything is prepared).
        let tenants: HashMap<String, Tenant> = config
            .tenants
            .iter()
            .map(|t| {
                let tenant = self.tenants.get(&t.name).cloned();
                (t.name.clone(), tenant.unwrap_or_else(|| Tenant::new(t)))
            })
            .collect();
        let mut wanted: Vec<(String, Source)> = Vec::new();
        for a in &config.activities {
            wanted.push((
                format!("activity.{}", a.name),
                Source::Activity(Box::new(a.clone())),
            ));
        }
        for t in &config.task_lists {
            wanted.push((format!("swf.{}", t.name), Source::TaskList(t.clone())));
        }
        let mut prepared = Vec::new();
        for (key, source) in &wanted {
            if self.running.get(key).is_some_and(|r| &r.config == source) {
                continue;
            }
            let slots = self.slots.get(key).cloned();
            let (mut poller, activities) = match source {
                Source::Activity(a) => self.prepare_activity(a, &tenants).await?,
                Source::TaskList(t) => self.prepare_task_list(t, &tenants).await?,
            };
            let max_concurrent = match source {
                Source::Activity(a) => a.max_concurrent,
                Source::TaskList(t) => t.max_concurrent,
            };
            // A replaced source's running tasks keep counting.
            if let Some(slots) = slots {
                poller.slots = slots;
            }
            prepared.push(Prepared {
                key: key.clone(),
                config: source.clone(),
                poller,
                activities,
                max_concurrent,
            });
        }
        // Sources that go or change stop polling before the tenant caps
        // change, so none of their pollers is let in under the new caps.
        let keep: Vec<&String> = wanted.iter().map(|(k, _)| k).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|k| !keep.contains(k))
            .cloned()
            .collect();
        for key in gone {
            self.stop(&key, "removed from the config");
        }
        for p in &prepared {
            if self.running.contains_key(&p.key) {
                self.stop(&p.key, "changed in the config");
            }
        }
        for t in &config.tenants {
            if let Some(change) = tenants[&t.name].resize(t) {
                tracing::info!(tenant = %t.name, "tenant caps changed: {change}");
            }
        }
        let old = std::mem::replace(&mut self.tenants, tenants);
        for (name, tenant) in old {
            if !self.tenants.contains_key(&name) && tenant.in_use() {
                self.tenants.insert(name, tenant);
            }
        }
        for p in &prepared {
            if let Some(old) = p.poller.slots.resize(p.max_concurrent) {
                tracing::info!(
                    source = %p.key,
                    "max_concurrent changed from {old} to {}; tasks already running count",
                    p.max_concurrent
                );
            }
            self.slots.insert(p.key.clone(), p.poller.slots.clone());
        }
        self.slots
            .retain(|key, slots| keep.contains(&key) || slots.in_use());
        for p in prepared {
            self.launch(p);
        }
        Ok(())
    }

    fn stop(&mut self, key: &str, why: &str) {
        if let Some(r) = self.running.remove(key) {
            tracing::info!(
                source = key,
                "stopped serving ({why}); polls in flight finish and their tasks run"
            );
            r.stop.initiate();
            health::global().deregister(&r.health);
        }
    }

    fn launch(&mut self, p: Prepared) {
        let stop = self.stages.child();
        let mut poller = p.poller;
        poller.shutdown = stop.clone();
        tracing::info!(source = %p.key, pollers = poller.pollers, "serving");
        let health = health::global().register(&p.key);
        self.pollers.spawn(poller.run(health.clone()));
        self.running.insert(
            p.key,
            Running {
                config: p.config,
                stop,
                health,
                activities: p.activities,
            },
        );
    }

    /// The gate of `source` (`activity.NAME`) under its tenant, and the
    /// memory one task reserves there.
    fn gate(
        tenants: &HashMap<String, Tenant>,
        tenant: &Option<String>,
        source: &str,
        memory_keys: &str,
        memory: u64,
    ) -> Option<(Arc<TenantGate>, u64)> {
        let tenant = tenants.get(tenant.as_ref()?)?;
        Some((tenant.gate(source, memory_keys), memory))
    }

    async fn load(
        &self,
        name: &str,
        key: String,
        component: &ComponentRef,
    ) -> Result<Arc<Component>, RunError> {
        let crate::artifacts::Loaded {
            handler,
            digest,
            origin,
        } = crate::artifacts::load(&self.runtime, &self.fetcher, name, key, component).await?;
        if let Origin::Stale { .. } = &origin {
            tracing::warn!(
                activity = %name,
                component = %component,
                %digest,
                "starting from the component store: {origin}"
            );
        }
        tracing::info!(
            activity = %name,
            component = %component,
            %digest,
            version = %handler.version,
            origin = %origin,
            cached = handler.from_cache,
            load_ms = handler.load_time.as_millis() as u64,
            "component loaded"
        );
        crate::journal::global().event(
            "loaded",
            name,
            &format!("{component}: version {} ({origin})", handler.version),
        );
        metrics::global().component_version(name, None, &handler.version);
        Ok(Arc::new(Component::loaded(handler)))
    }

    async fn prepare_activity(
        &self,
        a: &ActivityConfig,
        tenants: &HashMap<String, Tenant>,
    ) -> Result<(Poller, Vec<Arc<Activity>>), RunError> {
        let handler = self
            .load(&a.name, a.id().key("component"), &a.component)
            .await?;
        let settings = ActivitySettings::for_activity(a).map_err(|message| RunError::Grant {
            activity: a.name.clone(),
            key: a.id().key("secrets"),
            message,
        })?;
        let activity = Activity::new(settings, handler);
        let poller = Poller {
            name: a.name.clone(),
            config_key: format!("activity.{}.arn", a.name),
            pollers: a.pollers,
            route: Route::One(activity.clone()),
            service: Arc::new(StepFunctions::new(
                self.sfn.clone(),
                &a.arn,
                &self.worker_name,
            )),
            slots: Slots::new(a.max_concurrent),
            pool: self.pool.clone(),
            tenant: Self::gate(
                tenants,
                &a.tenant,
                &format!("activity.{}", a.name),
                &format!(
                    "activity.{0}.memory_limit + activity.{0}.host_memory_limit",
                    a.name
                ),
                a.limits.reserved_memory(),
            ),
            tasks: self.tasks.clone(),
            shutdown: self.stages.clone(),
        };
        Ok((poller, vec![activity]))
    }

    async fn prepare_task_list(
        &self,
        list: &TaskListConfig,
        tenants: &HashMap<String, Tenant>,
    ) -> Result<(Poller, Vec<Arc<Activity>>), RunError> {
        let mut routes = Vec::new();
        let mut activities = Vec::new();
        for t in &list.types {
            let name = t.id.name();
            let handler = self
                .load(&name, t.id.key_hint("component"), &t.component)
                .await?;
            let interval = match (t.heartbeat_interval, &t.version) {
                (Some(i), _) => i,
                (None, Some(version)) => self
                    .swf
                    .default_heartbeat_interval(&list.domain, &t.name, version)
                    .await
                    .unwrap_or(DEFAULT_SWF_HEARTBEAT),
                (None, None) => DEFAULT_SWF_HEARTBEAT,
            };
            let settings =
                ActivitySettings::for_type(t, interval).map_err(|message| RunError::Grant {
                    activity: name,
                    key: t.id.key_hint("secrets"),
                    message,
                })?;
            let activity = Activity::new(settings, handler);
            activities.push(activity.clone());
            routes.push(TypeRoute {
                name: t.name.clone(),
                version: t.version.clone(),
                activity,
            });
        }
        let memory = list
            .types
            .iter()
            .map(|t| t.limits.reserved_memory())
            .max()
            .unwrap_or_default();
        let poller = Poller {
            name: list.name.clone(),
            config_key: format!("swf.{}", list.name),
            pollers: list.pollers,
            route: Route::ByType(routes),
            service: Arc::new(Swf::new(
                self.swf.clone(),
                &list.domain,
                &list.task_list,
                &self.worker_name,
            )),
            slots: Slots::new(list.max_concurrent),
            pool: self.pool.clone(),
            tenant: Self::gate(
                tenants,
                &list.types[0].tenant,
                &format!("swf.{}", list.name),
                &format!(
                    "the largest memory_limit + host_memory_limit of swf.{}.activity[*]",
                    list.name
                ),
                memory,
            ),
            tasks: self.tasks.clone(),
            shutdown: self.stages.clone(),
        };
        Ok((poller, activities))
    }

    /// Reloads every component read from `path` (after the watcher saw it
    /// change).
    pub(crate) async fn reload_file(&self, path: &std::path::Path) {
        for component in self.components().into_keys() {
            if component.as_file() == Some(path) {
                self.reload_component(&component).await;
            }
        }
    }

    /// Resolves a component again (a changed file) and swaps it in if its
    /// digest changed (see [`Sources::swap`]); a refusal is logged.
    pub(crate) async fn reload_component(&self, component: &ComponentRef) {
        if let Swap::Refused(e) = self.swap(component).await {
            tracing::error!(
                component = %component,
                "component reload refused, the previous version keeps serving: {e}"
            );
            crate::journal::global().event(
                "refused",
                &component.to_string(),
                &format!("the previous version keeps serving: {e}"),
            );
        }
    }

    /// Resolves a component again, and if its digest is not what runs,
    /// compiles it and routes new tasks of every activity using it to the
    /// new version (tasks already running finish on theirs). One that does
    /// not resolve or load is refused: the old version keeps serving.
    async fn swap(&self, component: &ComponentRef) -> Swap {
        let users = self.components().remove(component).unwrap_or_default();
        if users.is_empty() {
            return Swap::Unchanged;
        }
        if let Some(path) = component.as_file()
            && let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
        {
            // Reading a named pipe again could block this loop for good.
            return Swap::Refused(
                "the component file is not a regular file; not reloaded (replace it with a file to reload it)"
                    .into(),
            );
        }
        let started = std::time::Instant::now();
        let m = metrics::global();
        let refused = |e: String| {
            m.reloads
                .get_or_create(&metrics::ResultLabels {
                    result: "failed".into(),
                })
                .inc();
            Swap::Refused(e)
        };
        let resolved = match self.fetcher.resolve(component).await {
            Ok(r) => r,
            Err(e) => return refused(format!("{e:#}")),
        };
        // A source that cannot be reached never changes what runs: the
        // store's copy may be older than what a failed store write left
        // running.
        if let Origin::Stale { because, .. } = &resolved.origin {
            return Swap::Stale(because.clone());
        }
        if users
            .iter()
            .all(|a| a.handler().digest == resolved.digest.hex())
        {
            return Swap::Unchanged;
        }
        // A digest that failed to load fails again: say so without
        // compiling it at every check.
        if let Some((digest, why)) = lock(&self.refused).get(component)
            && *digest == resolved.digest
        {
            return Swap::Refused(why.clone());
        }
        let runtime = self.runtime.clone();
        let label = PathBuf::from(component.to_string());
        let digest = resolved.digest;
        let loaded = tokio::task::spawn_blocking(move || {
            runtime.load_bytes(&label, resolved.bytes, started)
        })
        .await
        .expect("component loading panicked");
        let handler = match loaded {
            Ok(handler) => Arc::new(Component::loaded(handler)),
            Err(e) => {
                let why = format!("{e:#}");
                lock(&self.refused).insert(component.clone(), (digest, why.clone()));
                return refused(why);
            }
        };
        lock(&self.refused).remove(component);
        for (a, old) in route_new_tasks(&users, &handler) {
            m.component_version(a.name(), Some(&old.version), &handler.version);
            tracing::info!(
                activity = a.name(),
                component = %component,
                old = %old.version,
                new = %handler.version,
                digest = %digest,
                took_us = started.elapsed().as_micros() as u64,
                "component reloaded; new tasks run the new version"
            );
            crate::journal::global().event(
                "reloaded",
                a.name(),
                &format!("{component}: {} -> {}", old.version, handler.version),
            );
        }
        m.reloads
            .get_or_create(&metrics::ResultLabels {
                result: "ok".into(),
            })
            .inc();
        Swap::Swapped
    }

    /// Reloads every component file in use whose content is not what its
    /// activities run: run after a config reload, which may have hidden a
    /// change (see the module docs). Files that cannot be read, or are not
    /// regular files, are left to the watcher.
    pub(crate) async fn reload_changed_components(&self) {
        for (component, users) in self.components() {
            let Some(path) = component.as_file() else {
                continue;
            };
            let owned = path.to_path_buf();
            let digest = tokio::task::spawn_blocking(move || {
                let meta = std::fs::metadata(&owned).ok()?;
                if !meta.is_file() {
                    return None;
                }
                std::fs::read(&owned)
                    .ok()
                    .map(|bytes| crate::runtime::cache::sha256_hex(&bytes))
            })
            .await
            .expect("hashing a component panicked");
            let Some(digest) = digest else { continue };
            if users.iter().any(|a| a.handler().digest != digest) {
                tracing::info!(
                    component = %component,
                    "component file changed while the config was reloading; reloading it"
                );
                self.reload_component(&component).await;
            }
        }
    }

    /// Re-resolves every tag and S3 key in use, and swaps in what moved.
    /// A source that cannot be reached, or answers with something that is
    /// refused, keeps what runs; that is logged when it starts and when it
    /// ends, not at every check.
    pub(crate) async fn refresh_remote(&mut self) {
        let mut trouble = std::mem::take(&mut self.refresh_trouble);
        for component in self.components().into_keys() {
            if !component.is_mutable_remote() {
                continue;
            }
            let now = match self.swap(&component).await {
                Swap::Unchanged | Swap::Swapped => None,
                Swap::Stale(because) => Some(format!(
                    "cannot be reached; the version loaded keeps serving: {because}"
                )),
                Swap::Refused(e) => Some(format!("refused; the version loaded keeps serving: {e}")),
            };
            let before = trouble.remove(&component);
            if let Some(now) = &now
                && before.as_ref() != Some(now)
            {
                let kind = if now.starts_with("refused") {
                    "refused"
                } else {
                    "unreachable"
                };
                crate::journal::global().event(kind, &component.to_string(), now);
            }
            match (&before, &now) {
                (None, Some(now)) => {
                    tracing::warn!(component = %component, "component refresh: {now}")
                }
                (Some(before), Some(now)) if before != now => {
                    tracing::warn!(component = %component, "component refresh: {now}")
                }
                (Some(_), None) => {
                    tracing::info!(component = %component, "component refresh works again")
                }
                _ => tracing::debug!(component = %component, "component refreshed"),
            }
            if let Some(now) = now {
                trouble.insert(component, now);
            }
        }
        self.refresh_trouble = trouble;
    }

    /// True if any component in use is a tag or S3 key to re-resolve.
    pub(crate) fn has_mutable_remote(&self) -> bool {
        self.components()
            .keys()
            .any(ComponentRef::is_mutable_remote)
    }
}

/// Routes the new tasks of every activity in `users` not running `handler`
/// yet to it; returns those activities with the handler each had. Tasks
/// already running finish on the handler they started with (`crate::task`
/// pins it when the task starts).
fn route_new_tasks(
    users: &[Arc<Activity>],
    handler: &Arc<Component>,
) -> Vec<(Arc<Activity>, Arc<Component>)> {
    users
        .iter()
        .filter(|a| a.handler().digest != handler.digest)
        .map(|a| (a.clone(), a.replace_handler(handler.clone())))
        .collect()
}

/// What re-resolving a component did.
enum Swap {
    /// Its digest is what runs.
    Unchanged,
    /// Its source could not be reached; what runs keeps running.
    Stale(String),
    /// A new version runs now.
    Swapped,
    /// It could not be resolved or loaded.
    Refused(String),
}

/// One source's config. Compared by value on reload: a source restarts
/// only if something in its config changed.
#[derive(Clone, PartialEq)]
enum Source {
    Activity(Box<ActivityConfig>),
    TaskList(TaskListConfig),
}

#[cfg(test)]
mod tests;
