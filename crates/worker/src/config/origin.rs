//! Origins a guest may send HTTP requests to, as the `http.allow` list
//! writes them. Parsed once, when the config is validated; the runtime
//! matches requests against these values and never parses the text again.
//! It lives here, below both config and runtime, and imports neither.

use std::fmt;
use std::net::IpAddr;

/// One allowed origin: scheme, host (or `*.domain`), port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// As written, for display.
    text: String,
    scheme: String,
    host: HostPattern,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `api.example.com`
    Exact(String),
    /// `*.example.com`: any subdomain, not the apex.
    Subdomains(String),
    /// `127.0.0.1`, `[::1]`
    Ip(IpAddr),
}

pub fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

impl OriginPattern {
    /// Parses `scheme://host[:port]`; `host` may start with `*.`.
    pub(crate) fn parse(text: &str) -> Result<OriginPattern, String> {
        let bad = || {
            format!(
                "{text:?} is not an origin like \"https://api.example.com\", \"https://*.example.com\" or \
                 \"http://127.0.0.1:8080\" (scheme, host, optional port; no path)"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad());
        }
        let (host, port) = split_host_port(rest).ok_or_else(bad)?;
        let port = port.unwrap_or_else(|| default_port(scheme));
        let host = if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(bad());
            }
            HostPattern::Subdomains(domain.to_ascii_lowercase())
        } else if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            HostPattern::Ip(ip)
        } else if host.contains('*') || host.is_empty() {
            return Err(bad());
        } else {
            HostPattern::Exact(host.to_ascii_lowercase())
        };
        Ok(OriginPattern {
            text: text.to_string(),
            scheme: scheme.to_string(),
            host,
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is to this origin.
    pub(crate) fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme != scheme || self.port != port {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match (&self.host, host.parse::<IpAddr>()) {
            (HostPattern::Ip(allowed), Ok(ip)) => *allowed == ip,
            (HostPattern::Ip(_), Err(_)) | (_, Ok(_)) => false,
            (HostPattern::Exact(name), Err(_)) => name.eq_ignore_ascii_case(host),
            (HostPattern::Subdomains(domain), Err(_)) => {
                let host = host.to_ascii_lowercase();
                host.len() > domain.len() + 1
                    && host.ends_with(domain.as_str())
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            }
        }
    }
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((&authority[..ip.len() + 2], port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_patterns_are_refused_with_the_form_expected() {
        for bad in [
            "api.example.com",
            "ftp://x.com",
            "https://x.com/path",
            "https://*",
            "https://a.*.com",
            "https://u@x.com",
            "https://x.com:99999",
        ] {
            let e = OriginPattern::parse(bad).unwrap_err();
            assert!(e.contains("is not an origin like"), "{bad}: {e}");
        }
    }
}
