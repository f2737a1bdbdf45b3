//! Running a handler with no service: `invoke` and `replay`.
//!
//! A local run must say what the worker would report for the same input,
//! so it goes through the same engine, limits and report checks, with no
//! grants (a local run reaches nothing) and the Step Functions limits.

use crate::config::TaskLimits;
use crate::report::{self, Report};
use crate::runtime::{
    EngineError, Grants, Handler, LoadError, Runtime, RuntimeOptions, TaskContext, TaskControl,
};
use crate::service::sfn::LIMITS;
use std::path::Path;
use std::sync::Arc;

/// Why a local handler could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The engine could not be created.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The component could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// A component loaded for local runs.
pub struct LocalHandler {
    handler: Handler,
    limits: TaskLimits,
}

impl LocalHandler {
    /// Loads `component` with `limits` (no precompile cache: a local run
    /// leaves nothing behind).
    pub async fn load(component: &Path, limits: TaskLimits) -> Result<LocalHandler, LocalError> {
        let options = RuntimeOptions {
            max_instances: 1,
            max_memory: limits.memory,
            cache_dir: None,
            fuel: limits.fuel.is_some(),
            epoch_interruption: true,
        };
        let runtime = Arc::new(Runtime::new(options)?);
        let path = component.to_path_buf();
        let handler = tokio::task::spawn_blocking(move || runtime.load(&path))
            .await
            .expect("component loading panicked")?;
        Ok(LocalHandler { handler, limits })
    }

    /// The component's version (its short content hash).
    pub fn version(&self) -> &str {
        &self.handler.version
    }

    /// Runs one input named `name` and says what would be reported.
    pub async fn run(&self, name: &str, input: &str) -> Report {
        let ctx = TaskContext {
            activity: "invoke".into(),
            task_id: name.into(),
            limits: self.limits,
            control: Arc::new(TaskControl::new()),
            grants: Arc::new(Grants::default()),
        };
        let outcome = self.handler.run(input, &ctx).await;
        report::from_outcome(
            outcome,
            report::LimitSource::Invoke,
            &LIMITS,
            &ctx.grants.redactor(),
        )
    }
}
