//! What `run` starts with, and why it may refuse to start.
//!
//! A worker that starts without a region or usable credentials, or with an
//! activity of another region, would look alive while every poll fails. So
//! the AWS configuration is resolved once, before anything is served, logged
//! in one line (never the secret parts), and anything that cannot work ends
//! `run` with the fix.

use crate::config::{self, Config};
use crate::runtime::{self, LoadError};
use crate::service;

/// Why [`run`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config does not fit the environment it runs in (an activity of
    /// another region).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The engine could not be created.
    #[error(transparent)]
    Engine(#[from] runtime::EngineError),
    /// Traces could not be exported as configured.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// An activity's component could not be loaded.
    // The load error is part of the message, not a source: `{:#}` would
    // print it twice.
    #[error("activity {activity}: {cause} (set in {key})")]
    Load {
        /// The activity's name.
        activity: String,
        /// The config key naming the component.
        key: String,
        /// Why.
        cause: LoadError,
    },
    /// An activity's component could not be fetched (or its pin does not
    /// match).
    #[error("activity {activity}: {cause} (set in {key})")]
    Fetch {
        /// The activity's name.
        activity: String,
        /// The config key naming the component.
        key: String,
        /// Why.
        cause: Box<wasm_activity_artifacts::FetchError>,
    },
    /// An activity's capabilities could not be granted (a secret is missing).
    #[error("activity {activity}: {message} (set in {key})")]
    Grant {
        /// The activity's name.
        activity: String,
        /// The config key of its secrets.
        key: String,
        /// What is missing.
        message: String,
    },
    /// The metrics endpoint could not listen.
    #[error("cannot serve metrics on {addr}: {source} (change `metrics_addr`)")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No AWS region could be found.
    #[error(
        "no AWS region configured: set `region` in {0} or the AWS_REGION environment variable{1}"
    )]
    NoRegion(String, String),
    /// No usable credentials: nothing would ever be polled.
    #[error(
        "no usable AWS credentials ({0}){1}. Give the worker credentials: AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, AWS_PROFILE naming a profile in ~/.aws/config or ~/.aws/credentials, \
         a web identity token, or a container or instance role"
    )]
    NoCredentials(String, String),
}

/// Loads the AWS SDK configuration: the config's region and endpoint if set,
/// else the SDK's default chains (`AWS_REGION`, `AWS_ENDPOINT_URL`, profiles,
/// instance metadata).
pub(crate) async fn aws_sdk_config(config: &Config) -> Result<aws_config::SdkConfig, RunError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let sdk = service::credentials::refreshing(loader.load().await);
    // A profile that does not exist shows up as a missing region first:
    // name it, since that is what to fix.
    let profile = std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(|p| {
            format!(" (AWS_PROFILE is {p:?}: check that this profile exists and sets a region)")
        })
        .unwrap_or_default();
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err(RunError::NoRegion(
            config.path.display().to_string(),
            profile,
        ));
    };
    // The service refuses an ARN of another region: say so now, naming
    // the key, instead of logging refused polls.
    let region_from = if config.region.is_some() {
        "the config's `region`"
    } else {
        "AWS_REGION or the profile"
    };
    config.check_arn_regions(&region, region_from)?;
    // Resolved once now: without credentials every poll would fail, and the
    // worker would look alive while doing nothing.
    let source = match sdk.credentials_provider() {
        None => return Err(RunError::NoCredentials("no provider".into(), profile)),
        Some(provider) => {
            use aws_credential_types::provider::ProvideCredentials;
            match tokio::time::timeout(CREDENTIALS_AT_START, provider.provide_credentials()).await {
                Ok(Ok(credentials)) => credential_source(credentials.session_token().is_some()),
                Ok(Err(e)) => {
                    return Err(RunError::NoCredentials(service::error_causes(&e), profile));
                }
                Err(_) => {
                    return Err(RunError::NoCredentials(
                        format!("the provider chain gave none within {CREDENTIALS_AT_START:?}"),
                        profile,
                    ));
                }
            }
        }
    };
    tracing::info!(
        region = %region,
        region_from = if config.region.is_some() { "config file" } else { "environment or profile" },
        endpoint = config.endpoint.as_deref().unwrap_or("AWS"),
        credentials = %source,
        worker = %config.worker_name,
        "AWS configuration"
    );
    Ok(sdk)
}

/// Where the default chain found credentials, in its order, for the
/// start-up line (never any part of the credentials themselves).
fn credential_source(temporary: bool) -> String {
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
            .is_some_and(|p| p.is_file())
    };
    let source = if set("AWS_ACCESS_KEY_ID") {
        "environment (AWS_ACCESS_KEY_ID)".to_string()
    } else if let Ok(profile) = std::env::var("AWS_PROFILE") {
        format!("profile {profile}")
    } else if file("AWS_CONFIG_FILE", "config")
        || file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
    {
        "the default profile".to_string()
    } else if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        "web identity token".to_string()
    } else if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    {
        "container role".to_string()
    } else {
        "instance role".to_string()
    };
    if temporary {
        format!("{source}, temporary")
    } else {
        source
    }
}

/// How long the credential chain may take at start.
const CREDENTIALS_AT_START: std::time::Duration = std::time::Duration::from_secs(15);
