//! The activities this worker serves, the handler each one runs, and how a
//! polled task finds its activity.
//!
//! A task takes the activity's current handler when it starts and keeps it
//! until it ends, so swapping in a new component (hot reload) only affects
//! tasks that start afterwards; the swap itself is one atomic pointer store.
//!
//! What runs a task's input is behind [`Runner`]: a loaded wasm component in
//! the worker, a scripted fake in the unit tests, so the poller, task,
//! heartbeat and shutdown logic is tested on a paused clock without an
//! engine.

use crate::config::{ActivityConfig, ActivityId, ActivityTypeConfig, TaskLimits};
use crate::runtime::{Grants, Handler, Outcome, TaskContext};
use crate::service::Task;
use arc_swap::ArcSwap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A task's run, as the task supervises it.
pub(crate) type RunFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// Runs one task's input to an outcome.
pub(crate) trait Runner: Send + Sync + 'static {
    /// Runs `input` within `ctx`'s limits, signals and grants.
    fn run<'a>(&'a self, input: &'a str, ctx: &'a TaskContext) -> RunFuture<'a>;
}

impl Runner for Handler {
    fn run<'a>(&'a self, input: &'a str, ctx: &'a TaskContext) -> RunFuture<'a> {
        Box::pin(Handler::run(self, input, ctx))
    }
}

/// One version of an activity's handler: what a task pins when it starts.
pub(crate) struct Component {
    /// Where it was loaded from.
    pub(crate) path: PathBuf,
    /// SHA-256 of its bytes, hex.
    pub(crate) digest: String,
    /// Short form of the digest: the version in logs and metrics.
    pub(crate) version: String,
    runner: Arc<dyn Runner>,
}

impl Component {
    /// A loaded wasm component.
    pub(crate) fn loaded(handler: Handler) -> Component {
        Component {
            path: handler.path.clone(),
            digest: handler.digest.clone(),
            version: handler.version.clone(),
            runner: Arc::new(handler),
        }
    }

    /// Any runner, named as a component would be (tests).
    #[cfg(test)]
    pub(crate) fn new(version: &str, runner: impl Runner) -> Component {
        Component {
            path: PathBuf::from(format!("{version}.wasm")),
            digest: format!("{version:0<64}"),
            version: version.to_string(),
            runner: Arc::new(runner),
        }
    }

    /// Runs one task's input.
    pub(crate) fn run<'a>(&'a self, input: &'a str, ctx: &'a TaskContext) -> RunFuture<'a> {
        self.runner.run(input, ctx)
    }
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What running one task of an activity needs to know.
#[derive(Debug, Clone)]
pub(crate) struct ActivitySettings {
    /// Which activity or SWF type it is in the config file.
    pub(crate) id: ActivityId,
    /// `id`'s name ([`ActivityId::name`]), for logs and metrics labels.
    pub(crate) name: String,
    /// Where the component comes from.
    pub(crate) component: crate::config::ComponentRef,
    /// Time between heartbeats.
    pub(crate) heartbeat_interval: Duration,
    /// Per-task limits.
    pub(crate) limits: TaskLimits,
    /// What its guests may reach, secrets resolved.
    pub(crate) grants: Arc<Grants>,
    /// The tenant it belongs to, if any.
    pub(crate) tenant: Option<String>,
    /// Task recording, if on.
    pub(crate) record: Option<crate::config::RecordConfig>,
}

impl ActivitySettings {
    /// Settings for a Step Functions activity; reads its secrets.
    pub(crate) fn for_activity(a: &ActivityConfig) -> Result<Self, String> {
        let id = a.id();
        Ok(ActivitySettings {
            name: id.name(),
            id,
            component: a.component.clone(),
            heartbeat_interval: a.heartbeat_interval,
            limits: a.limits,
            grants: Arc::new(Grants::resolve(&a.capabilities)?),
            tenant: a.tenant.clone(),
            record: a.record.clone(),
        })
    }
    /// Settings for an SWF activity type; `heartbeat_interval` is the
    /// resolved interval (config, or derived from the registered type).
    /// Reads its secrets.
    pub(crate) fn for_type(
        t: &ActivityTypeConfig,
        heartbeat_interval: Duration,
    ) -> Result<Self, String> {
        Ok(ActivitySettings {
            id: t.id.clone(),
            name: t.id.name(),
            component: t.component.clone(),
            heartbeat_interval,
            limits: t.limits,
            grants: Arc::new(Grants::resolve(&t.capabilities)?),
            tenant: t.tenant.clone(),
            record: t.record.clone(),
        })
    }
}
/// One served activity (or SWF activity type): its settings and handler.
#[derive(Debug)]
pub(crate) struct Activity {
    /// Settings from the config file.
    pub(crate) settings: ActivitySettings,
    handler: ArcSwap<Component>,
}

impl Activity {
    /// An activity served by `handler`.
    pub(crate) fn new(settings: ActivitySettings, handler: Arc<Component>) -> Arc<Activity> {
        Arc::new(Activity {
            settings,
            handler: ArcSwap::new(handler),
        })
    }

    /// The handler new tasks run now.
    pub(crate) fn handler(&self) -> Arc<Component> {
        self.handler.load_full()
    }

    /// Routes new tasks to `handler`; returns the one it replaces. Tasks
    /// already running keep the old one.
    pub(crate) fn replace_handler(&self, handler: Arc<Component>) -> Arc<Component> {
        self.handler.swap(handler)
    }

    /// The activity's name for logs and metrics labels ([`ActivityId::name`]).
    pub(crate) fn name(&self) -> &str {
        &self.settings.name
    }

    /// Which activity or SWF type it is in the config file.
    pub(crate) fn id(&self) -> &ActivityId {
        &self.settings.id
    }
}

/// An SWF activity type served by a task list's poller.
#[derive(Debug, Clone)]
pub(crate) struct TypeRoute {
    /// Type name.
    pub(crate) name: String,
    /// Version; `None` matches any.
    pub(crate) version: Option<String>,
    /// Where its tasks run.
    pub(crate) activity: Arc<Activity>,
}

/// How a poller's tasks find their activity.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// Every task belongs to one activity (a Step Functions ARN).
    One(Arc<Activity>),
    /// Tasks are dispatched by their activity type (an SWF task list).
    ByType(Vec<TypeRoute>),
}

impl Route {
    /// The activity for `task`, or why there is none.
    pub(crate) fn resolve(&self, task: &Task) -> Result<Arc<Activity>, String> {
        match self {
            Route::One(activity) => Ok(activity.clone()),
            Route::ByType(routes) => {
                let Some(t) = &task.activity_type else {
                    return Err("the task has no activity type".into());
                };
                let exact = routes
                    .iter()
                    .find(|r| r.name == t.name && r.version.as_deref() == Some(&t.version));
                let any = || {
                    routes
                        .iter()
                        .find(|r| r.name == t.name && r.version.is_none())
                };
                exact.or_else(any).map(|r| r.activity.clone()).ok_or_else(|| {
                    let known: Vec<String> = routes
                        .iter()
                        .map(|r| match &r.version {
                            Some(v) => format!("{} {v}", r.name),
                            None => format!("{} (any version)", r.name),
                        })
                        .collect();
                    format!(
                        "no component is configured for activity type {t} on this worker (it serves: {}); \
                         add a [[swf.NAME.activity]] entry for it",
                        known.join(", ")
                    )
                })
            }
        }
    }
}

/// Fixtures for the worker core's unit tests: activities whose handler is a
/// scripted [`Runner`].
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::runtime::{Fault, StopReason};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A handler that works for `work` (on the tokio clock), then returns
    /// `output`; stopped early by the host like a guest would be. Counts
    /// how many of its runs overlap.
    pub(crate) struct Scripted {
        pub(crate) work: Duration,
        pub(crate) output: String,
        pub(crate) running: Arc<AtomicUsize>,
        pub(crate) max_running: Arc<AtomicUsize>,
        pub(crate) runs: Arc<AtomicUsize>,
    }

    impl Scripted {
        pub(crate) fn new(work: Duration, output: &str) -> Scripted {
            Scripted {
                work,
                output: output.to_string(),
                running: Arc::default(),
                max_running: Arc::default(),
                runs: Arc::default(),
            }
        }
    }

    impl Runner for Scripted {
        fn run<'a>(&'a self, _input: &'a str, ctx: &'a TaskContext) -> RunFuture<'a> {
            Box::pin(async move {
                self.runs.fetch_add(1, Ordering::SeqCst);
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                let outcome = tokio::select! {
                    () = tokio::time::sleep(self.work) => Outcome::Output(self.output.clone()),
                    () = ctx.control.stopped() => Outcome::Fault(Fault::Stopped(
                        ctx.control.stop_reason().cloned().unwrap_or(StopReason::Shutdown),
                    )),
                };
                self.running.fetch_sub(1, Ordering::SeqCst);
                outcome
            })
        }
    }

    /// A Step Functions activity named `name` run by `component`.
    pub(crate) fn activity(name: &str, component: Component, heartbeat: Duration) -> Arc<Activity> {
        let settings = ActivitySettings {
            id: ActivityId::StepFunctions {
                name: name.to_string(),
            },
            name: name.to_string(),
            component: crate::config::ComponentRef::file(component.path.clone()),
            heartbeat_interval: heartbeat,
            limits: TaskLimits::default(),
            grants: Arc::new(Grants::default()),
            tenant: None,
            record: None,
        };
        Activity::new(settings, Arc::new(component))
    }
}
