//! Registry credentials, found where users already keep them.
//!
//! In order: `WASM_ACTIVITY_REGISTRY_USERNAME` / `WASM_ACTIVITY_REGISTRY_PASSWORD`
//! for the one registry named by `WASM_ACTIVITY_REGISTRY_HOST` (a CI job or a
//! container's injected secret; never sent to another registry a config
//! may name), then the
//! Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//! a credential helper named for the registry in `credHelpers`, a stored
//! `auths` entry, or the default `credsStore` helper. Nothing found means an
//! anonymous pull. Secrets are never logged or put in an error.

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub(crate) const USERNAME_ENV: &str = "WASM_ACTIVITY_REGISTRY_USERNAME";
pub(crate) const PASSWORD_ENV: &str = "WASM_ACTIVITY_REGISTRY_PASSWORD";
pub(crate) const HOST_ENV: &str = "WASM_ACTIVITY_REGISTRY_HOST";

/// How to fix a refused registry login; said once, wherever it is needed.
pub(crate) const FIX: &str = "log in with `docker login REGISTRY` (the worker reads the Docker config, \
     $DOCKER_CONFIG/config.json or ~/.docker/config.json, and its credential helpers), or set \
     WASM_ACTIVITY_REGISTRY_HOST (the registry's host:port), WASM_ACTIVITY_REGISTRY_USERNAME and \
     WASM_ACTIVITY_REGISTRY_PASSWORD";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
    }
}

/// `https://host:port/v1/` and `host:port` name the same registry.
fn registry_key(text: &str) -> &str {
    let text = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text);
    text.split('/').next().unwrap_or(text)
}

/// The credentials for `registry`, and where they came from (for logs).
pub(crate) async fn for_registry(registry: &str) -> Result<(RegistryAuth, String), String> {
    if let (Ok(user), Ok(password)) = (std::env::var(USERNAME_ENV), std::env::var(PASSWORD_ENV)) {
        match std::env::var(HOST_ENV) {
            Ok(host) if registry_key(&host) == registry => {
                return Ok((
                    RegistryAuth::Basic(user, password),
                    USERNAME_ENV.to_string(),
                ));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(format!(
                    "{USERNAME_ENV} is set but {HOST_ENV} is not: set it to the registry these \
                     credentials are for (\"{registry}\"?), so they are never sent to another"
                ));
            }
        }
    }
    let Some(path) = docker_config_path() else {
        return Ok((RegistryAuth::Anonymous, "anonymous".into()));
    };
    let config: DockerConfig = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a valid Docker config: {e}", path.display()))?,
        Err(_) => return Ok((RegistryAuth::Anonymous, "anonymous".into())),
    };
    if let Some(helper) = config
        .cred_helpers
        .iter()
        .find(|(k, _)| registry_key(k) == registry)
        .map(|(_, v)| v)
    {
        return helper_get(helper, registry).await;
    }
    if let Some(auth) = config
        .auths
        .iter()
        .find(|(k, _)| registry_key(k) == registry)
        .map(|(_, v)| v)
    {
        let (user, password) = match (&auth.auth, &auth.username, &auth.password) {
            (Some(encoded), _, _) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        format!(
                            "{}: `auths.{registry}.auth` is not base64 of `user:password`",
                            path.display()
                        )
                    })?;
                let (u, p) = decoded.split_once(':').ok_or_else(|| {
                    format!(
                        "{}: `auths.{registry}.auth` is not base64 of `user:password`",
                        path.display()
                    )
                })?;
                (u.to_string(), p.to_string())
            }
            (None, Some(u), Some(p)) => (u.clone(), p.clone()),
            _ => return Ok((RegistryAuth::Anonymous, "anonymous".into())),
        };
        return Ok((
            RegistryAuth::Basic(user, password),
            format!("{} (auths)", path.display()),
        ));
    }
    if let Some(helper) = &config.creds_store {
        return helper_get(helper, registry).await;
    }
    Ok((RegistryAuth::Anonymous, "anonymous".into()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Asks `docker-credential-HELPER get` (the Docker credential helper
/// protocol: the server on stdin, JSON on stdout). A helper that knows no
/// credentials for the registry means an anonymous pull.
async fn helper_get(helper: &str, registry: &str) -> Result<(RegistryAuth, String), String> {
    use tokio::io::AsyncWriteExt;
    let program = format!("docker-credential-{helper}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run the Docker credential helper `{program}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes()).await;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| {
            format!("the Docker credential helper `{program}` did not answer within 30 s")
        })?
        .map_err(|e| format!("the Docker credential helper `{program}` failed: {e}"))?;
    if !out.status.success() {
        return Ok((RegistryAuth::Anonymous, "anonymous".into()));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!("the Docker credential helper `{program}` answered something that is not its JSON")
    })?;
    let auth = if answer.username == "<token>" {
        RegistryAuth::Bearer(answer.secret)
    } else {
        RegistryAuth::Basic(answer.username, answer.secret)
    };
    Ok((auth, program))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys_ignore_scheme_and_path() {
        assert_eq!(
            registry_key("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(registry_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
