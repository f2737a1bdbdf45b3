//! Capabilities as a task uses them: secret values read, ready to build a
//! WASI context from, and a redactor (see `crate::redact`) that keeps
//! secret values out of logs, failure causes and recordings.

use crate::config::{Capabilities, Preopen, SecretSource};
use crate::redact::Redactor;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// What one activity's guests may reach, resolved.
#[derive(Clone, Default)]
pub struct Grants {
    /// Environment variables (explicit and passed through).
    pub(crate) env: Vec<(String, String)>,
    /// Secret environment variables.
    pub(crate) secrets: Vec<(String, String)>,
    /// Host directories.
    pub(crate) preopens: Vec<Preopen>,
    /// Socket addresses the guest may use.
    pub(crate) sockets: Arc<[SocketAddr]>,
    /// Whether name lookup is allowed.
    pub(crate) name_lookup: bool,
    /// Outbound HTTP, if granted.
    pub(crate) http: Option<Arc<super::http::HttpPolicy>>,
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets: Vec<&str> = self.secrets.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Grants")
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("secrets", &secrets)
            .field("preopens", &self.preopens)
            .field("sockets", &self.sockets)
            .field("name_lookup", &self.name_lookup)
            .finish()
    }
}

impl Grants {
    /// Reads secret values; fails naming the secret and its source.
    pub(crate) fn resolve(c: &Capabilities) -> Result<Grants, String> {
        let mut secrets = Vec::new();
        for s in &c.secrets {
            let value = match &s.source {
                SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                    format!(
                        "secret {}: the host environment variable {var} is not set",
                        s.name
                    )
                })?,
                SecretSource::File(path) => std::fs::read_to_string(path)
                    .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
                    .map_err(|e| {
                        format!("secret {}: cannot read {}: {e}", s.name, path.display())
                    })?,
            };
            secrets.push((s.name.clone(), value));
        }
        let redactor = Redactor::new(secrets.iter().map(|(_, v)| v.as_str()));
        Ok(Grants {
            env: c.env.clone(),
            secrets,
            preopens: c.preopens.clone(),
            sockets: c.sockets.clone().into(),
            name_lookup: c.name_lookup,
            http: c.http.as_ref().map(|h| {
                Arc::new(super::http::HttpPolicy {
                    allow: h.allow.clone(),
                    timeout: h.timeout,
                    max_response: h.max_response,
                    max_request: h.max_request,
                    redactor: redactor.clone(),
                })
            }),
        })
    }

    /// A redactor for the secret values (and their encoded forms). Build it
    /// once per use site: it prepares a pattern per form of each secret.
    pub(crate) fn redactor(&self) -> Redactor {
        Redactor::new(self.secrets.iter().map(|(_, v)| v.as_str()))
    }

    /// `text` with every secret value replaced by [`REDACTED`] (see
    /// [`Redactor::redact`]; callers redacting often keep a [`Grants::redactor`]).
    #[cfg(test)]
    pub(crate) fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self.secrets.is_empty() {
            return std::borrow::Cow::Borrowed(text);
        }
        self.redactor().redact(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn secrets_resolve_from_env_and_files_and_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "file-secret-42\n").unwrap();
        // SAFETY: tests in this binary do not read this variable concurrently.
        unsafe { std::env::set_var("WA_TEST_SECRET_VALUE", "env-secret-17") };
        let caps = Capabilities {
            secrets: vec![
                Secret {
                    name: "A".into(),
                    source: SecretSource::Env("WA_TEST_SECRET_VALUE".into()),
                },
                Secret {
                    name: "B".into(),
                    source: SecretSource::File(file),
                },
            ],
            ..Capabilities::default()
        };
        let g = Grants::resolve(&caps).unwrap();
        assert_eq!(
            g.secrets,
            vec![
                ("A".into(), "env-secret-17".into()),
                ("B".into(), "file-secret-42".into())
            ]
        );
        assert_eq!(
            g.redact("x env-secret-17 y file-secret-42"),
            "x [redacted] y [redacted]"
        );
        assert_eq!(g.redact("nothing here"), "nothing here");
        assert!(!format!("{g:?}").contains("secret-"), "{g:?}");
    }

    #[test]
    fn missing_secret_sources_name_the_secret() {
        let caps = Capabilities {
            secrets: vec![Secret {
                name: "API_KEY".into(),
                source: SecretSource::Env("WA_TEST_UNSET_VAR_XYZ".into()),
            }],
            ..Capabilities::default()
        };
        let e = Grants::resolve(&caps).unwrap_err();
        assert_eq!(
            e,
            "secret API_KEY: the host environment variable WA_TEST_UNSET_VAR_XYZ is not set"
        );
    }
}
