//! The activities this worker serves and the handler each one runs.
//!
//! A task takes the activity's current handler when it starts and keeps it
//! until it ends, so swapping in a new component (hot reload) only affects
//! tasks that start afterwards; the swap itself is one atomic pointer store.

use crate::config::ActivityConfig;
use crate::runtime::Handler;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// One served activity: its settings and its current handler.
#[derive(Debug)]
pub struct Activity {
    /// Settings from the config file.
    pub config: ActivityConfig,
    handler: ArcSwap<Handler>,
}

impl Activity {
    /// An activity served by `handler`.
    pub fn new(config: ActivityConfig, handler: Handler) -> Arc<Activity> {
        Arc::new(Activity {
            config,
            handler: ArcSwap::from_pointee(handler),
        })
    }

    /// The handler new tasks run now.
    pub fn handler(&self) -> Arc<Handler> {
        self.handler.load_full()
    }

    /// Routes new tasks to `handler`; returns the one it replaces. Tasks
    /// already running keep the old one.
    pub fn replace_handler(&self, handler: Handler) -> Arc<Handler> {
        self.handler.swap(Arc::new(handler))
    }

    /// The activity's name, from its `[activity.NAME]` table.
    pub fn name(&self) -> &str {
        &self.config.name
    }
}
