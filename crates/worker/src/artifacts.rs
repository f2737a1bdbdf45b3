//! Where the worker's components come from: the [`Fetcher`] built from the
//! config (its store beside the precompile cache, S3 through the worker's
//! own AWS configuration), and when mutable references are re-resolved.

use crate::config::Config;
use crate::runtime::Runtime;
use wasm_activity_artifacts::{Fetcher, Settings};

/// The fetcher for `config`. `aws` is the worker's AWS configuration (for
/// `s3://` references), `None` where there is none (`invoke` without AWS).
pub(crate) fn fetcher(
    config: &Config,
    runtime: &Runtime,
    aws: Option<&aws_config::SdkConfig>,
) -> Fetcher {
    Fetcher::new(settings(config, runtime.cache().dir(), aws))
}

/// The fetcher settings for `config`, with the store in `cache_dir`.
pub(crate) fn settings(
    config: &Config,
    cache_dir: Option<&std::path::Path>,
    aws: Option<&aws_config::SdkConfig>,
) -> Settings {
    Settings {
        store_dir: cache_dir.map(|d| d.join("components")),
        store_max_bytes: config.components.store_max,
        insecure: config.components.insecure.clone(),
        // A custom endpoint (LocalStack, MinIO) wants path-style addressing;
        // AWS takes both.
        s3_path_style: aws.is_some_and(|a| a.endpoint_url().is_some()),
        aws: aws.cloned(),
    }
}

/// When to re-resolve tags and S3 keys next: the configured interval, give
/// or take a fifth.
pub(crate) fn next_refresh(config: &Config) -> tokio::time::Instant {
    let base = config.components.refresh;
    let jitter = 0.8 + 0.4 * fastrand::f64();
    tokio::time::Instant::now() + base.mul_f64(jitter)
}

/// A component resolved and compiled.
pub(crate) struct Loaded {
    pub(crate) handler: crate::runtime::Handler,
    pub(crate) digest: wasm_activity_artifacts::Digest,
    pub(crate) origin: wasm_activity_artifacts::Origin,
}

/// Resolves `component` and compiles it (off the async threads), as `run`
/// and `check` both do: errors name the activity and its config key.
pub(crate) async fn load(
    runtime: &std::sync::Arc<Runtime>,
    fetcher: &Fetcher,
    activity: &str,
    key: String,
    component: &crate::config::ComponentRef,
) -> Result<Loaded, crate::RunError> {
    let started = std::time::Instant::now();
    let resolved = fetcher
        .resolve(component)
        .await
        .map_err(|cause| crate::RunError::Fetch {
            activity: activity.to_string(),
            key: key.clone(),
            cause: Box::new(cause),
        })?;
    let (digest, origin) = (resolved.digest, resolved.origin);
    let runtime = runtime.clone();
    let label = std::path::PathBuf::from(component.to_string());
    let handler =
        tokio::task::spawn_blocking(move || runtime.load_bytes(&label, resolved.bytes, started))
            .await
            .expect("component loading panicked")
            .map_err(|cause| crate::RunError::Load {
                activity: activity.to_string(),
                key,
                cause,
            })?;
    Ok(Loaded {
        handler,
        digest,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn refreshes_are_jittered_within_a_fifth_of_the_interval() {
        let config = Config::from_toml(
            "component_refresh = \"10s\"\n[activity.a]\narn = \"arn:aws:states:us-east-1:000000000000:activity:a\"\n\
             component = \"oci://r/a:1\"\n",
            std::path::Path::new("/etc/wa/worker.toml"),
        )
        .unwrap();
        let now = tokio::time::Instant::now();
        let waits: Vec<Duration> = (0..200).map(|_| next_refresh(&config) - now).collect();
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_secs(8) && *w <= Duration::from_secs(12))
        );
        let (min, max) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
        assert!(
            *max - *min > Duration::from_secs(2),
            "spread {min:?}..{max:?}"
        );
    }
}
