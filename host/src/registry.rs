//! The activities this worker serves, the handler each one runs, and how a
//! polled task finds its activity.
//!
//! A task takes the activity's current handler when it starts and keeps it
//! until it ends, so swapping in a new component (hot reload) only affects
//! tasks that start afterwards; the swap itself is one atomic pointer store.

use crate::config::{ActivityConfig, ActivityId, ActivityTypeConfig, TaskLimits};
use crate::runtime::{Grants, Handler};
use crate::service::Task;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What running one task of an activity needs to know.
#[derive(Debug, Clone)]
pub struct ActivitySettings {
    /// Which activity or SWF type it is in the config file.
    pub id: ActivityId,
    /// `id`'s name ([`ActivityId::name`]), for logs and metrics labels.
    pub name: String,
    /// Where the component comes from.
    pub component: PathBuf,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Per-task limits.
    pub limits: TaskLimits,
    /// What its guests may reach, secrets resolved.
    pub grants: Arc<Grants>,
    /// The tenant it belongs to, if any.
    pub tenant: Option<String>,
    /// Task recording, if on.
    pub record: Option<crate::config::RecordConfig>,
}

impl ActivitySettings {
    /// Settings for a Step Functions activity; reads its secrets.
    pub fn for_activity(a: &ActivityConfig) -> Result<Self, String> {
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
    pub fn for_type(t: &ActivityTypeConfig, heartbeat_interval: Duration) -> Result<Self, String> {
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
pub struct Activity {
    /// Settings from the config file.
    pub settings: ActivitySettings,
    handler: ArcSwap<Handler>,
}

impl Activity {
    /// An activity served by `handler`.
    pub fn new(settings: ActivitySettings, handler: Arc<Handler>) -> Arc<Activity> {
        Arc::new(Activity {
            settings,
            handler: ArcSwap::new(handler),
        })
    }

    /// The handler new tasks run now.
    pub fn handler(&self) -> Arc<Handler> {
        self.handler.load_full()
    }

    /// Routes new tasks to `handler`; returns the one it replaces. Tasks
    /// already running keep the old one.
    pub fn replace_handler(&self, handler: Arc<Handler>) -> Arc<Handler> {
        self.handler.swap(handler)
    }

    /// The activity's name for logs and metrics labels ([`ActivityId::name`]).
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Which activity or SWF type it is in the config file.
    pub fn id(&self) -> &ActivityId {
        &self.settings.id
    }
}

/// An SWF activity type served by a task list's poller.
#[derive(Debug, Clone)]
pub struct TypeRoute {
    /// Type name.
    pub name: String,
    /// Version; `None` matches any.
    pub version: Option<String>,
    /// Where its tasks run.
    pub activity: Arc<Activity>,
}

/// How a poller's tasks find their activity.
#[derive(Debug, Clone)]
pub enum Route {
    /// Every task belongs to one activity (a Step Functions ARN).
    One(Arc<Activity>),
    /// Tasks are dispatched by their activity type (an SWF task list).
    ByType(Vec<TypeRoute>),
}

impl Route {
    /// The activity for `task`, or why there is none.
    pub fn resolve(&self, task: &Task) -> Result<Arc<Activity>, String> {
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

    /// Every activity reachable through this route.
    pub fn activities(&self) -> Vec<Arc<Activity>> {
        match self {
            Route::One(a) => vec![a.clone()],
            Route::ByType(routes) => routes.iter().map(|r| r.activity.clone()).collect(),
        }
    }
}
