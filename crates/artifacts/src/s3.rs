//! Components as S3 objects, through the AWS SDK and the worker's own
//! credential chain and region.
//!
//! The revision of a key is its version id when the bucket is versioned,
//! else its ETag; the object is then fetched *at* that version (or only if
//! its ETag still matches), so an upload between the two requests is seen
//! at the next check rather than mixed into this one.

use crate::error::{FetchError, MAX_COMPONENT_BYTES};
use crate::reference::S3Ref;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

pub(crate) struct S3 {
    client: aws_sdk_s3::Client,
}

/// Path-style addressing (`endpoint/bucket/key`) is what S3-compatible
/// servers and LocalStack expect; AWS itself takes both.
pub(crate) fn client(sdk: &aws_config::SdkConfig, path_style: bool) -> S3 {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(path_style)
        .build();
    S3 {
        client: aws_sdk_s3::Client::from_conf(config),
    }
}

fn what(r: &S3Ref) -> String {
    format!("s3://{}/{}", r.bucket, r.key)
}

fn classify<E>(r: &S3Ref, e: SdkError<E, HttpResponse>) -> FetchError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let cause = crate::error::causes(&e);
    match (status, code.as_deref()) {
        (Some(404), _) | (_, Some("NoSuchKey" | "NoSuchBucket" | "NoSuchVersion" | "NotFound")) => {
            FetchError::NotFound {
                what: what(r),
                cause,
            }
        }
        (Some(403), _)
        | (
            _,
            Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken"),
        ) => FetchError::Denied {
            what: what(r),
            cause,
            fix: "allow s3:GetObject (and s3:GetObjectVersion for versionId references) on the object \
                      for the worker's AWS credentials (deploy/iam/)",
        },
        _ => FetchError::Unreachable {
            what: what(r),
            cause,
        },
    }
}

impl S3 {
    /// The object's version id (versioned buckets) or ETag.
    pub(crate) async fn revision(&self, r: &S3Ref) -> Result<String, FetchError> {
        if let Some(v) = &r.version_id {
            return Ok(format!("version {v}"));
        }
        let head = self
            .client
            .head_object()
            .bucket(&r.bucket)
            .key(&r.key)
            .send()
            .await
            .map_err(|e| classify(r, e))?;
        Ok(match (head.version_id(), head.e_tag()) {
            (Some(v), _) if v != "null" => format!("version {v}"),
            (_, Some(etag)) => format!("etag {etag}"),
            _ => String::new(),
        })
    }

    /// The object's bytes at `revision` (from [`S3::revision`]).
    pub(crate) async fn fetch(&self, r: &S3Ref, revision: &str) -> Result<Vec<u8>, FetchError> {
        let mut get = self.client.get_object().bucket(&r.bucket).key(&r.key);
        if let Some(v) = revision.strip_prefix("version ") {
            get = get.version_id(v);
        } else if let Some(etag) = revision.strip_prefix("etag ") {
            get = get.if_match(etag);
        }
        let out = get.send().await.map_err(|e| classify(r, e))?;
        let size = out.content_length().unwrap_or_default().max(0) as u64;
        if size > MAX_COMPONENT_BYTES {
            return Err(FetchError::TooLarge {
                what: what(r),
                size,
            });
        }
        let mut body = out.body;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| FetchError::Unreachable {
                what: what(r),
                cause: crate::error::causes(&e),
            })?;
            if (bytes.len() + chunk.len()) as u64 > MAX_COMPONENT_BYTES {
                return Err(FetchError::TooLarge {
                    what: what(r),
                    size: (bytes.len() + chunk.len()) as u64,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Uploads `component`; returns the new revision (version id or ETag).
    pub(crate) async fn push(
        &self,
        r: &S3Ref,
        component: Vec<u8>,
        sha256: &str,
    ) -> Result<String, FetchError> {
        let out = self
            .client
            .put_object()
            .bucket(&r.bucket)
            .key(&r.key)
            .content_type("application/wasm")
            .metadata("sha256", sha256)
            .body(component.into())
            .send()
            .await
            .map_err(|e| match classify(r, e) {
                FetchError::Denied { what, cause, .. } => FetchError::Denied {
                    what,
                    cause,
                    fix: "allow s3:PutObject on the key for the publishing credentials (deploy/iam/)",
                },
                other => other,
            })?;
        Ok(match (out.version_id(), out.e_tag()) {
            (Some(v), _) if v != "null" => format!("version {v}"),
            (_, Some(etag)) => format!("etag {etag}"),
            _ => String::new(),
        })
    }
}
