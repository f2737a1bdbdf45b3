//! What a config file or a command line names as a component, and the
//! digest that identifies its content.
//!
//! A reference is parsed once, where it is written, so that a typo is
//! refused with the key and the expected form before anything is fetched.
//! Two things are pinned differently on purpose: `@sha256:` in an OCI
//! reference pins the *manifest* (what the registry serves), while a
//! [`ComponentRef::pin`] pins the *component bytes*, which every source has,
//! so one pin means the same thing for a file, a registry, S3 and https.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// Parses `sha256:HEX` or bare `HEX` (64 hex digits).
    pub fn parse(text: &str) -> Result<Digest, String> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(
                "`sha256:` followed by 64 hex digits (what `sha256sum FILE` prints)".into(),
            );
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(Digest(out))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 12 hex digits: the component version in logs and metrics.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An OCI artifact: `oci://REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OciRef {
    /// Host and optional port, as written.
    pub registry: String,
    /// Repository path inside the registry.
    pub repository: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Manifest digest, if given (then the tag is informational).
    pub digest: Option<Digest>,
}

/// An S3 object: `s3://BUCKET/KEY[?versionId=ID]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct S3Ref {
    pub bucket: String,
    pub key: String,
    /// A specific object version; without it the key's latest version.
    pub version_id: Option<String>,
}

/// Where a component comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A file on this host, absolute (watched for changes by the worker).
    File(PathBuf),
    Oci(OciRef),
    S3(S3Ref),
    /// An `https://` URL (or `http://` to a host listed as insecure).
    Url(String),
}

/// A component reference with an optional pin on its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentRef {
    pub source: Source,
    /// The SHA-256 the component bytes must have; anything else is refused.
    pub pin: Option<Digest>,
}

impl ComponentRef {
    /// A local file, unpinned.
    pub fn file(path: impl Into<PathBuf>) -> ComponentRef {
        ComponentRef {
            source: Source::File(path.into()),
            pin: None,
        }
    }

    /// Parses `text` (relative paths are resolved against `base`) and checks
    /// the pin rules: an `https://` reference needs a pin, since nothing
    /// else says which bytes it should serve.
    pub fn parse(text: &str, pin: Option<Digest>, base: &Path) -> Result<ComponentRef, String> {
        let source = Source::parse(text, base)?;
        if matches!(source, Source::Url(_)) && pin.is_none() {
            return Err(
                "a pin for the https:// reference: add `sha256 = \"sha256:...\"` (the SHA-256 of the \
                 component file), since a URL alone says nothing about what it serves"
                    .into(),
            );
        }
        Ok(ComponentRef { source, pin })
    }

    /// The local file, if it is one.
    pub fn as_file(&self) -> Option<&Path> {
        match &self.source {
            Source::File(p) => Some(p),
            _ => None,
        }
    }

    /// True if what it names can change without the reference changing (a
    /// tag, an S3 key without a version) and nothing pins the content: such
    /// references are re-resolved on an interval.
    pub fn is_mutable_remote(&self) -> bool {
        if self.pin.is_some() {
            return false;
        }
        match &self.source {
            Source::Oci(o) => o.digest.is_none(),
            Source::S3(s) => s.version_id.is_none(),
            Source::File(_) | Source::Url(_) => false,
        }
    }
}

impl fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Oci(o) => {
                write!(f, "oci://{}/{}", o.registry, o.repository)?;
                if let Some(tag) = &o.tag {
                    write!(f, ":{tag}")?;
                }
                if let Some(d) = &o.digest {
                    write!(f, "@{d}")?;
                }
                Ok(())
            }
            Source::S3(s) => {
                write!(f, "s3://{}/{}", s.bucket, s.key)?;
                if let Some(v) = &s.version_id {
                    write!(f, "?versionId={v}")?;
                }
                Ok(())
            }
            // A presigned URL's query and a URL's user info are secrets:
            // never printed.
            Source::Url(u) => match reqwest::Url::parse(u) {
                Ok(mut url) => {
                    let hidden_query = url.query().is_some();
                    let _ = url.set_username("");
                    let _ = url.set_password(None);
                    url.set_query(None);
                    write!(
                        f,
                        "{url}{}",
                        if hidden_query { "?(query hidden)" } else { "" }
                    )
                }
                Err(_) => f.write_str("(an unparsable URL)"),
            },
        }
    }
}

const FORMS: &str = "a path to a .wasm file, oci://REGISTRY/REPOSITORY:TAG, \
                     oci://REGISTRY/REPOSITORY@sha256:..., s3://BUCKET/KEY[?versionId=ID] or https://...";

impl Source {
    /// Parses a reference as written; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Source, String> {
        if text.is_empty() {
            return Err(FORMS.into());
        }
        if let Some(rest) = text.strip_prefix("oci://") {
            return parse_oci(rest).map(Source::Oci);
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            return parse_s3(rest).map(Source::S3);
        }
        if text.starts_with("https://") || text.starts_with("http://") {
            let url = reqwest::Url::parse(text).map_err(|e| format!("a valid URL ({e})"))?;
            if url.host_str().is_none() {
                return Err("a URL with a host".into());
            }
            return Ok(Source::Url(text.to_string()));
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+')
        {
            return Err(format!("{FORMS} (`{scheme}://` is not a supported scheme)"));
        }
        let path = Path::new(text);
        Ok(Source::File(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }))
    }

    /// For an `http://` URL, its `host:port` (or host): it must be listed as
    /// insecure to be fetched.
    pub fn plain_http_host(&self) -> Option<String> {
        let Source::Url(u) = self else { return None };
        let url = reqwest::Url::parse(u).ok()?;
        if url.scheme() != "http" {
            return None;
        }
        let host = url.host_str()?;
        Some(match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        })
    }
}

fn parse_oci(rest: &str) -> Result<OciRef, String> {
    let form = "oci://REGISTRY/REPOSITORY:TAG or oci://REGISTRY/REPOSITORY@sha256:... \
                (for example oci://ghcr.io/acme/handler:1.4.0)";
    let (registry, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("{form}: no repository after the registry"))?;
    if registry.is_empty() || path.is_empty() {
        return Err(form.into());
    }
    let (path, digest) = match path.split_once('@') {
        Some((p, d)) => (
            p,
            Some(Digest::parse(d).map_err(|e| format!("{form}: digest: {e}"))?),
        ),
        None => (path, None),
    };
    let (repository, tag) = match path.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
        _ => (path, None),
    };
    if tag.is_none() && digest.is_none() {
        return Err(format!(
            "{form}: add a tag (`:1.4.0`) or a digest (`@sha256:...`); there is no implicit `latest`"
        ));
    }
    let repo_ok = !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if !repo_ok {
        return Err(format!(
            "{form}: the repository `{repository}` may hold only lower-case letters, digits, `.`, `_`, `-` and `/`"
        ));
    }
    if let Some(tag) = &tag {
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(format!(
                "{form}: the tag `{tag}` may hold up to 128 letters, digits, `.`, `_` and `-`"
            ));
        }
    }
    Ok(OciRef {
        registry: registry.to_string(),
        repository: repository.to_string(),
        tag,
        digest,
    })
}

fn parse_s3(rest: &str) -> Result<S3Ref, String> {
    let form = "s3://BUCKET/KEY or s3://BUCKET/KEY?versionId=ID";
    let (path, version_id) = match rest.split_once('?') {
        Some((p, query)) => match query.strip_prefix("versionId=") {
            Some(v) if !v.is_empty() && !v.contains('&') => (p, Some(v.to_string())),
            _ => return Err(format!("{form}: the only query is `versionId=ID`")),
        },
        None => (rest, None),
    };
    let (bucket, key) = path
        .split_once('/')
        .ok_or_else(|| format!("{form}: no key after the bucket"))?;
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-".contains(&b));
    if !bucket_ok {
        return Err(format!(
            "{form}: the bucket `{bucket}` must be 3 to 63 lower-case letters, digits, `.` and `-`"
        ));
    }
    if key.is_empty() {
        return Err(format!("{form}: the key is empty"));
    }
    Ok(S3Ref {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(text: &str) -> Result<Source, String> {
        Source::parse(text, Path::new("/etc/wa"))
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        for text in [
            "oci://127.0.0.1:5000/acme/handler:1.0",
            &format!("oci://ghcr.io/acme/handler@sha256:{HEX}"),
            &format!("oci://ghcr.io/acme/handler:1.0@sha256:{HEX}"),
            "s3://my-bucket/handlers/a.wasm",
            "s3://my-bucket/a.wasm?versionId=3HL4kqtJlcpXroDTDmJ",
            "https://example.com/a.wasm",
            "/abs/a.wasm",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            parse("handlers/a.wasm").unwrap(),
            Source::File("/etc/wa/handlers/a.wasm".into())
        );
    }

    #[test]
    fn bad_references_say_what_is_expected() {
        for (text, says) in [
            ("oci://ghcr.io/acme/handler", "no implicit `latest`"),
            ("oci://ghcr.io", "no repository"),
            ("oci://ghcr.io/Acme/handler:1", "lower-case"),
            ("oci://ghcr.io/acme/handler:bad tag", "the tag"),
            ("oci://ghcr.io/acme/handler@sha256:12", "64 hex digits"),
            ("s3://ab/key", "3 to 63"),
            ("s3://bucket", "no key"),
            ("s3://bucket/key?version=1", "versionId"),
            ("ftp://host/a.wasm", "`ftp://` is not a supported scheme"),
            ("", "a path to a .wasm file"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn https_needs_a_pin_and_only_unpinned_tags_and_keys_move() {
        let base = Path::new("/");
        let e = ComponentRef::parse("https://example.com/a.wasm", None, base).unwrap_err();
        assert!(e.contains("sha256 = "), "{e}");
        let pin = Digest::parse(HEX).unwrap();
        let url = ComponentRef::parse("https://example.com/a.wasm", Some(pin), base).unwrap();
        assert!(!url.is_mutable_remote());
        let tag = ComponentRef::parse("oci://r/a:1", None, base).unwrap();
        assert!(tag.is_mutable_remote());
        let pinned_tag = ComponentRef::parse("oci://r/a:1", Some(pin), base).unwrap();
        assert!(!pinned_tag.is_mutable_remote());
        let by_digest =
            ComponentRef::parse(&format!("oci://r/a@sha256:{HEX}"), None, base).unwrap();
        assert!(!by_digest.is_mutable_remote());
        assert!(
            ComponentRef::parse("s3://bkt/a", None, base)
                .unwrap()
                .is_mutable_remote()
        );
        assert!(
            !ComponentRef::parse("s3://bkt/a?versionId=1", None, base)
                .unwrap()
                .is_mutable_remote()
        );
        assert!(
            !ComponentRef::parse("a.wasm", None, base)
                .unwrap()
                .is_mutable_remote()
        );
    }

    #[test]
    fn digests_round_trip_and_refuse_bad_text() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(d.hex(), HEX);
        assert_eq!(d.short(), &HEX[..12]);
        assert_eq!(Digest::parse(HEX).unwrap(), d);
        assert!(Digest::parse("sha256:xyz").is_err());
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn urls_print_without_their_secrets() {
        let url =
            parse("https://user:pw@bucket.s3.amazonaws.com/a.wasm?X-Amz-Signature=abc").unwrap();
        let shown = url.to_string();
        assert_eq!(
            shown,
            "https://bucket.s3.amazonaws.com/a.wasm?(query hidden)"
        );
        assert!(matches!(url, Source::Url(u) if u.contains("X-Amz-Signature=abc")));
    }

    #[test]
    fn plain_http_names_its_host() {
        assert_eq!(
            parse("http://127.0.0.1:8080/a.wasm")
                .unwrap()
                .plain_http_host()
                .as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(parse("https://h/a.wasm").unwrap().plain_http_host(), None);
    }
}
