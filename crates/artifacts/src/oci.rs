//! Components as OCI artifacts, in the layout `wkg` and the Bytecode
//! Alliance's `oci-wasm` write: an image manifest whose config has media type
//! `application/vnd.wasm.config.v0+json` and whose one layer is the component,
//! `application/wasm`.
//!
//! A tag is resolved to a manifest digest first (a HEAD request), and the
//! manifest is then pulled *by that digest*, so a tag moved between the two
//! requests cannot mix one version's manifest with another's layer. Every
//! byte is checked against the digest it was asked by.

use crate::credentials;
use crate::error::{FetchError, MAX_COMPONENT_BYTES};
use crate::reference::{Digest, OciRef};
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_wasm::{WASM_LAYER_MEDIA_TYPE, WASM_MANIFEST_MEDIA_TYPE, WasmClient, WasmConfig};
use std::time::Duration;

pub(crate) struct Oci {
    client: Client,
}

fn reference(r: &OciRef, digest: Option<&str>) -> Reference {
    match (digest, &r.tag) {
        (Some(d), _) => {
            Reference::with_digest(r.registry.clone(), r.repository.clone(), d.to_string())
        }
        (None, Some(tag)) => {
            Reference::with_tag(r.registry.clone(), r.repository.clone(), tag.clone())
        }
        (None, None) => Reference::with_digest(
            r.registry.clone(),
            r.repository.clone(),
            r.digest.map(|d| d.to_string()).unwrap_or_default(),
        ),
    }
}

/// Says what an error from the registry means and what to do.
fn classify(r: &OciRef, e: OciDistributionError) -> FetchError {
    let what = format!("oci://{}/{}", r.registry, r.repository);
    match &e {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => FetchError::Denied {
            what,
            cause: crate::error::causes(&e),
            fix: credentials::FIX,
        },
        OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
            FetchError::Mismatch {
                what,
                expected: expected.clone(),
                actual: actual.clone(),
                by: crate::error::TAMPERED,
            }
        }
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => FetchError::Denied {
            what,
            cause: crate::error::causes(&e),
            fix: credentials::FIX,
        },
        OciDistributionError::ServerError { code: 404, .. }
        | OciDistributionError::ImageManifestNotFoundError(_) => FetchError::NotFound {
            what,
            cause: crate::error::causes(&e),
        },
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) =>
        {
            FetchError::NotFound {
                what,
                cause: crate::error::causes(&e),
            }
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|x| matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            FetchError::Denied {
                what,
                cause: crate::error::causes(&e),
                fix: credentials::FIX,
            }
        }
        _ => {
            let mut cause = crate::error::causes(&e);
            // TLS spoken to a plain-HTTP registry fails with this.
            if cause.contains("InvalidContentType") || cause.contains("corrupt message") {
                cause.push_str(&format!(
                    " (the registry may speak plain HTTP: list \"{}\" in `insecure_registries`, \
                     or pass --insecure-registry, if it is a local test registry)",
                    r.registry
                ));
            }
            FetchError::Unreachable { what, cause }
        }
    }
}

impl Oci {
    pub(crate) fn new(insecure: &[String]) -> Oci {
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("wasm-activity/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        Oci {
            client: Client::new(config),
        }
    }

    async fn auth(&self, r: &OciRef) -> Result<RegistryAuth, FetchError> {
        credentials::for_registry(&r.registry)
            .await
            .map(|(auth, from)| {
                tracing::debug!(registry = %r.registry, credentials = %from, "registry credentials");
                auth
            })
            .map_err(|cause| FetchError::Denied {
                what: format!("oci://{}/{}", r.registry, r.repository),
                cause,
                fix: credentials::FIX,
            })
    }

    /// The manifest digest the reference names now.
    pub(crate) async fn revision(&self, r: &OciRef) -> Result<String, FetchError> {
        if let Some(d) = &r.digest {
            return Ok(d.to_string());
        }
        let auth = self.auth(r).await?;
        self.client
            .fetch_manifest_digest(&reference(r, None), &auth)
            .await
            .map_err(|e| classify(r, e))
    }

    /// The component bytes of the manifest `manifest_digest`.
    pub(crate) async fn fetch(
        &self,
        r: &OciRef,
        manifest_digest: &str,
    ) -> Result<Vec<u8>, FetchError> {
        let auth = self.auth(r).await?;
        let image = reference(r, Some(manifest_digest));
        let what = format!("oci://{}/{}@{manifest_digest}", r.registry, r.repository);
        let (raw, _) = self
            .client
            .pull_manifest_raw(
                &image,
                &auth,
                &[
                    WASM_MANIFEST_MEDIA_TYPE,
                    "application/vnd.oci.image.index.v1+json",
                ],
            )
            .await
            .map_err(|e| classify(r, e))?;
        let actual = Digest::of(&raw).to_string();
        if actual != manifest_digest {
            return Err(FetchError::Mismatch {
                what,
                expected: manifest_digest.to_string(),
                actual,
                by: crate::error::TAMPERED,
            });
        }
        let manifest: OciImageManifest = match serde_json::from_slice::<OciManifest>(&raw) {
            Ok(OciManifest::Image(m)) => m,
            Ok(OciManifest::ImageIndex(_)) => {
                return Err(FetchError::NotAComponent {
                    what,
                    why: "it is an image index (a multi-platform image), not a wasm component artifact".into(),
                });
            }
            Err(e) => {
                return Err(FetchError::NotAComponent {
                    what,
                    why: format!("its manifest does not parse: {e}"),
                });
            }
        };
        let layers: Vec<_> = manifest
            .layers
            .iter()
            .filter(|l| l.media_type == WASM_LAYER_MEDIA_TYPE)
            .collect();
        let [layer] = layers.as_slice() else {
            let types: Vec<&str> = manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect();
            return Err(FetchError::NotAComponent {
                what,
                why: format!(
                    "a component artifact has exactly one `{WASM_LAYER_MEDIA_TYPE}` layer; this one has {types:?} \
                     (push it with `wasm-activity push` or `wkg oci push`)"
                ),
            });
        };
        if layer.size < 0 || layer.size as u64 > MAX_COMPONENT_BYTES {
            return Err(FetchError::TooLarge {
                what,
                size: layer.size.max(0) as u64,
            });
        }
        let mut stream = self
            .client
            .pull_blob_stream(&image, *layer)
            .await
            .map_err(|e| classify(r, e))?;
        let mut bytes = Vec::with_capacity(layer.size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                // The stream checks the bytes against the layer's digest.
                match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<DigestError>())
                {
                    Some(DigestError::VerificationError { expected, actual }) => {
                        FetchError::Mismatch {
                            what: format!("{what} (layer)"),
                            expected: expected.clone(),
                            actual: actual.clone(),
                            by: crate::error::TAMPERED,
                        }
                    }
                    _ => FetchError::Unreachable {
                        what: what.clone(),
                        cause: crate::error::causes(&e),
                    },
                }
            })?;
            if (bytes.len() + chunk.len()) as u64 > MAX_COMPONENT_BYTES {
                return Err(FetchError::TooLarge {
                    what,
                    size: (bytes.len() + chunk.len()) as u64,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let actual = Digest::of(&bytes).to_string();
        if actual != layer.digest {
            return Err(FetchError::Mismatch {
                what: format!("{what} (layer)"),
                expected: layer.digest.clone(),
                actual,
                by: crate::error::TAMPERED,
            });
        }
        Ok(bytes)
    }

    /// Pushes `component` as a wasm artifact; returns the manifest digest.
    pub(crate) async fn push(&self, r: &OciRef, component: Vec<u8>) -> Result<String, FetchError> {
        let what = format!("oci://{}/{}", r.registry, r.repository);
        let (config, layer) = WasmConfig::from_raw_component(component, None).map_err(|e| {
            FetchError::NotAComponent {
                what: what.clone(),
                why: format!("{e:#}"),
            }
        })?;
        let auth = self.auth(r).await?;
        let image = reference(r, None);
        WasmClient::new(self.client.clone())
            .push(&image, &auth, layer, config, None)
            .await
            .map_err(|e| match e.downcast::<OciDistributionError>() {
                Ok(e) => classify(r, e),
                Err(e) => FetchError::Unreachable {
                    what: what.clone(),
                    cause: format!("{e:#}"),
                },
            })?;
        self.revision(r).await
    }
}
