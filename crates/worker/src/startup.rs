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
    // Where the region came from, as the SDK's chain looks, for the
    // start-up line and for the error below.
    let region_from = match local_region(config).await {
        Some((local, from)) if local == region => from,
        _ => RegionFrom::Other,
    };
    // The service refuses an ARN of another region: say so now, naming
    // the key, instead of logging refused polls.
    config.check_arn_regions(&region, &region_from.phrase())?;
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
    let (endpoint, endpoint_from) = endpoints_in_use(config, &sdk);
    tracing::info!(
        region = %region,
        region_from = %region_from.label(),
        endpoint = %endpoint,
        endpoint_from = %endpoint_from,
        credentials = %source,
        worker = %config.worker_name,
        "AWS configuration"
    );
    Ok(sdk)
}

/// Where a region came from, in the order the SDK's default chain looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegionFrom {
    /// The config's `region`.
    Config,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`.
    Env(&'static str),
    /// The named profile (`AWS_PROFILE`, else `default`).
    Profile(String),
    /// Instance metadata or another provider of the chain.
    Other,
}

impl RegionFrom {
    /// For the start-up line: `config file`, `AWS_REGION`, `profile NAME`.
    pub(crate) fn label(&self) -> String {
        match self {
            RegionFrom::Config => "config file".into(),
            RegionFrom::Env(var) => (*var).into(),
            RegionFrom::Profile(name) => format!("profile {name}"),
            RegionFrom::Other => "instance metadata or another provider".into(),
        }
    }

    /// For an error about the region: where to change it.
    pub(crate) fn phrase(&self) -> String {
        match self {
            RegionFrom::Config => "the config's `region`".into(),
            RegionFrom::Env(var) => (*var).into(),
            RegionFrom::Profile(name) => format!("the AWS profile {name}"),
            RegionFrom::Other => "instance metadata or another provider".into(),
        }
    }
}

/// The region `run` would use and where it came from, found as the SDK
/// finds it but without asking instance metadata (`check` must not wait on
/// a network): the config, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile.
pub(crate) async fn local_region(config: &Config) -> Option<(String, RegionFrom)> {
    use aws_config::meta::region::ProvideRegion;
    if let Some(region) = &config.region {
        return Some((region.clone(), RegionFrom::Config));
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(region) = std::env::var(var).ok().filter(|r| !r.is_empty()) {
            return Some((region, RegionFrom::Env(var)));
        }
    }
    let profile = std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into());
    aws_config::profile::ProfileFileRegionProvider::new()
        .region()
        .await
        .map(|r| (r.to_string(), RegionFrom::Profile(profile)))
}

/// The endpoint each service in use is called at, and where that was set,
/// for the start-up line: as the clients resolve it (the config's
/// `endpoint`, else `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL` or the
/// profile's setting), `AWS` when none is set. One value when all services
/// agree, else one per service.
pub(crate) fn endpoints_in_use(config: &Config, sdk: &aws_config::SdkConfig) -> (String, String) {
    let mut services = Vec::new();
    if !config.activities.is_empty() || config.task_lists.is_empty() {
        services.push("SFN");
    }
    if !config.task_lists.is_empty() {
        services.push("SWF");
    }
    let found: Vec<(&str, String, String)> = services
        .iter()
        .map(|id| {
            let (url, from) = endpoint_of(id, config, sdk);
            (*id, url, from)
        })
        .collect();
    if found
        .windows(2)
        .all(|w| (&w[0].1, &w[0].2) == (&w[1].1, &w[1].2))
    {
        let (_, url, from) = found.into_iter().next().expect("one service at least");
        return (url, from);
    }
    let join = |pick: &dyn Fn(&(&str, String, String)) -> String| {
        found.iter().map(pick).collect::<Vec<_>>().join(", ")
    };
    (
        join(&|(id, url, _)| format!("{id} {url}")),
        join(&|(id, _, from)| format!("{id} {from}")),
    )
}

/// One service's endpoint and its source (see [`endpoints_in_use`]).
fn endpoint_of(service_id: &str, config: &Config, sdk: &aws_config::SdkConfig) -> (String, String) {
    if let Some(endpoint) = &config.endpoint {
        return (endpoint.clone(), "config file".into());
    }
    // As the clients find it (awsjson's resolution, and the SDK's).
    let url = aws_types::service_config::ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()
        .and_then(|key| sdk.service_config().and_then(|conf| conf.load_config(key)))
        .or_else(|| sdk.endpoint_url().map(str::to_string));
    let Some(url) = url else {
        return ("AWS".into(), "none set".into());
    };
    let env = |var: &str| std::env::var(var).ok().filter(|v| *v == url).is_some();
    let per_service = format!("AWS_ENDPOINT_URL_{service_id}");
    let from = if env(&per_service) {
        per_service
    } else if env("AWS_ENDPOINT_URL") {
        "AWS_ENDPOINT_URL".into()
    } else {
        let profile = std::env::var("AWS_PROFILE")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "default".into());
        format!("profile {profile}")
    };
    (url, from)
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
