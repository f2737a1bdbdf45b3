//! Running a handler with no service: `invoke` and `replay`.
//!
//! A local run must say what the worker would report for the same input,
//! so it goes through the same engine, limits and report checks, with no
//! grants (a local run reaches nothing) and the Step Functions limits.

use crate::config::{ComponentRef, TaskLimits};
use crate::report::{self, Report};
use crate::runtime::{
    EngineError, Grants, Handler, LoadError, Runtime, RuntimeOptions, TaskContext, TaskControl,
};
use crate::service::sfn::LIMITS;
use std::sync::Arc;
use wasm_activity_artifacts::{FetchError, Fetcher, Settings, Source};

/// Why a local handler could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The engine could not be created.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The component could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The component could not be fetched (or does not match its pin).
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

/// A component loaded for local runs.
pub struct LocalHandler {
    handler: Handler,
    limits: TaskLimits,
}

impl LocalHandler {
    /// Loads `component` with `limits`. A local file leaves nothing behind
    /// (no precompile cache); a fetched one is kept in the user's component
    /// store, as the worker keeps it. `insecure` lists the registries and
    /// hosts reached over plain HTTP; `s3://` uses the AWS SDK's default
    /// chain.
    pub async fn load(
        component: &ComponentRef,
        limits: TaskLimits,
        insecure: &[String],
    ) -> Result<LocalHandler, LocalError> {
        let options = RuntimeOptions {
            max_instances: 1,
            max_memory: limits.memory,
            cache_dir: None,
            fuel: limits.fuel.is_some(),
            epoch_interruption: true,
        };
        let runtime = Arc::new(Runtime::new(options)?);
        let resolved = local_fetcher(&component.source, insecure)
            .await
            .resolve(component)
            .await?;
        let label = std::path::PathBuf::from(component.to_string());
        let started = std::time::Instant::now();
        let handler = tokio::task::spawn_blocking(move || {
            runtime.load_bytes(&label, resolved.bytes, started)
        })
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

/// A fetcher for commands run by hand (`invoke`, `replay`, `push`): the
/// user's component store, and the AWS SDK's default chain when `source` is
/// in S3.
pub async fn local_fetcher(source: &Source, insecure: &[String]) -> Fetcher {
    let remote = !matches!(source, Source::File(_));
    let aws = match source {
        Source::S3(_) => Some(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await,
        ),
        _ => None,
    };
    Fetcher::new(Settings {
        store_dir: remote
            .then(|| dirs::cache_dir().map(|d| d.join("wasm-activity").join("components")))
            .flatten(),
        store_max_bytes: crate::config::DEFAULT_COMPONENT_STORE_MAX,
        insecure: insecure.to_vec(),
        s3_path_style: aws.as_ref().is_some_and(|a| a.endpoint_url().is_some()),
        aws,
    })
}
