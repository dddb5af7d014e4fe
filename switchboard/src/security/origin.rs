//! [`OriginPolicy`]: which web pages may open a WebSocket to us.
//!
//! WebSocket has no same-origin rule: any page can open a connection to any server, and the
//! browser sends the user's cookies with it. A server that authenticates by cookie must
//! therefore check the `Origin` header, which browsers always send on a WebSocket handshake
//! and pages cannot forge (RFC 6455 §10.2, §4.2.1 item 7). Skipping this check is the
//! classic cross-site WebSocket hijacking hole.

use crate::server::Reject;
use http::StatusCode;

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `*`: every origin.
    Any,
    /// `https://example.com`, normalised (see [`normalize`]).
    Exact(String),
    /// `https://*.example.com`: the scheme, and the `.example.com` suffix (port included)
    /// that a subdomain's host must end with.
    Subdomains { scheme: String, suffix: String },
}

/// The `Origin` values allowed to open a connection.
///
/// Origins are compared as browsers serialise them (RFC 6454 §6.2): lower-case scheme and
/// host, the port only when it is not the scheme's default. Patterns are normalised the
/// same way, so `https://Example.com:443/` allows `https://example.com`.
///
/// ```
/// use switchboard::security::OriginPolicy;
///
/// let policy = OriginPolicy::allow(["https://example.com", "https://*.example.com"]);
/// assert!(policy.is_allowed(Some("https://example.com")));
/// assert!(policy.is_allowed(Some("https://chat.example.com")));
/// assert!(!policy.is_allowed(Some("https://evil.com")));
/// assert!(!policy.is_allowed(Some("http://example.com"))); // another scheme is another origin
/// assert!(policy.is_allowed(None)); // a non-browser client; see `allow_missing`
/// ```
///
/// With an [`Acceptor`](crate::Acceptor):
///
/// ```
/// use switchboard::security::OriginPolicy;
/// use switchboard::{Accept, Acceptor};
///
/// let origins = OriginPolicy::allow(["https://example.com"]);
/// let acceptor = Acceptor::builder()
///     .on_request(move |req| origins.check(req.origin()).map(|()| Accept::new()))
///     .build();
/// # let _ = acceptor;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Vec<Pattern>,
    allow_missing: bool,
}

impl Default for OriginPolicy {
    /// Allows every origin: the right default only for servers that do not rely on cookies
    /// or other ambient credentials.
    fn default() -> Self {
        OriginPolicy::any()
    }
}

impl OriginPolicy {
    /// Allows every origin, and requests without one.
    pub fn any() -> Self {
        OriginPolicy {
            allowed: vec![Pattern::Any],
            allow_missing: true,
        }
    }

    /// Allows exactly these origins: `scheme://host[:port]`, `scheme://*.domain[:port]` for
    /// every subdomain of `domain` (not `domain` itself), `null` for the opaque origin of
    /// sandboxed frames and local files, or `*` for any. Requests without an `Origin` header
    /// are allowed too, until [`OriginPolicy::allow_missing`] says otherwise.
    pub fn allow(origins: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let allowed = origins
            .into_iter()
            .map(|o| parse_pattern(o.as_ref()))
            .collect();
        OriginPolicy {
            allowed,
            allow_missing: true,
        }
    }

    /// Whether a request without an `Origin` header is allowed. Browsers always send one
    /// on a WebSocket handshake, so a missing header means a non-browser client (a service,
    /// a CLI), which cannot be tricked into carrying a user's cookies; allowing them
    /// (the default) does not reopen the hijacking hole.
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Whether a request with this `Origin` (or none) may connect.
    pub fn is_allowed(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return self.allow_missing;
        };
        let origin = normalize(origin);
        self.allowed.iter().any(|pattern| match pattern {
            Pattern::Any => true,
            Pattern::Exact(exact) => *exact == origin,
            Pattern::Subdomains { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|rest| rest.strip_prefix("://"))
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                // A non-empty label before the suffix, with no port or path hidden in it.
                .is_some_and(|label| !label.is_empty() && !label.contains([':', '/', '@'])),
        })
    }

    /// [`OriginPolicy::is_allowed`] for the raw header value. An `Origin` that is not
    /// visible ASCII (RFC 6454 §7 serialises origins in ASCII) is refused: treating it as
    /// absent would let a crafted header pass as a non-browser client.
    pub fn is_allowed_value(&self, origin: Option<&http::HeaderValue>) -> bool {
        match origin.map(http::HeaderValue::to_str) {
            None => self.is_allowed(None),
            Some(Ok(origin)) => self.is_allowed(Some(origin)),
            Some(Err(_)) => false,
        }
    }

    /// [`OriginPolicy::is_allowed`] as the answer an [`Acceptor`](crate::Acceptor) callback
    /// gives: `403 Forbidden` for an origin that is not allowed.
    pub fn check(&self, origin: Option<&str>) -> Result<(), Reject> {
        if self.is_allowed(origin) {
            Ok(())
        } else {
            Err(Reject::new(StatusCode::FORBIDDEN, "origin not allowed"))
        }
    }
}

/// Whether `origin` (an `Origin` header value) is the origin of a server reached at `host`
/// (the `Host` header: `name[:port]`) over `scheme` (`http` or `https`; `ws`/`wss` count
/// as these). RFC 6454 §5: same scheme, host and port, the port defaulting by scheme — so
/// `gopher://hub` or `https://hub` is not the origin of `http://hub`.
///
/// ```
/// use switchboard::security::same_origin;
/// assert!(same_origin("http://hub:80", "http", "hub"));
/// assert!(!same_origin("https://hub", "http", "hub"));
/// assert!(!same_origin("gopher://hub", "http", "hub"));
/// ```
pub fn same_origin(origin: &str, scheme: &str, host: &str) -> bool {
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        _ => return false,
    };
    let host = host.trim();
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return false;
    }
    normalize(origin) == normalize(&format!("{scheme}://{host}"))
}

fn parse_pattern(pattern: &str) -> Pattern {
    let pattern = normalize(pattern);
    if pattern == "*" {
        return Pattern::Any;
    }
    match pattern.split_once("://*") {
        Some((scheme, suffix)) if suffix.starts_with('.') => Pattern::Subdomains {
            scheme: scheme.to_owned(),
            suffix: suffix.to_owned(),
        },
        _ => Pattern::Exact(pattern),
    }
}

/// An origin (or pattern) as browsers serialise it: trimmed, lower case, no trailing `/`,
/// no default port.
fn normalize(origin: &str) -> String {
    let mut origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    for (scheme, port) in [
        ("https://", ":443"),
        ("http://", ":80"),
        ("wss://", ":443"),
        ("ws://", ":80"),
    ] {
        if origin.starts_with(scheme) && origin.ends_with(port) {
            origin.truncate(origin.len() - port.len());
        }
    }
    origin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_origins_compare_as_browsers_serialise_them() {
        let policy = OriginPolicy::allow(["https://Example.com:443/", "http://localhost:8080"]);
        assert!(policy.is_allowed(Some("https://example.com")));
        assert!(policy.is_allowed(Some("HTTPS://EXAMPLE.COM")));
        assert!(policy.is_allowed(Some("http://localhost:8080")));
        assert!(!policy.is_allowed(Some("http://localhost")));
        assert!(!policy.is_allowed(Some("https://example.com.evil.net")));
        assert!(!policy.is_allowed(Some("https://example.com:8443")));
        assert!(!policy.is_allowed(Some("null")));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let policy = OriginPolicy::allow(["https://*.example.com"]);
        assert!(policy.is_allowed(Some("https://a.example.com")));
        assert!(policy.is_allowed(Some("https://a.b.example.com")));
        assert!(!policy.is_allowed(Some("https://example.com")));
        assert!(!policy.is_allowed(Some("https://evilexample.com")));
        assert!(!policy.is_allowed(Some("http://a.example.com")));
        assert!(!policy.is_allowed(Some("https://a.example.com:8443")));
        assert!(!policy.is_allowed(Some("https://x@a.example.com")));
    }

    #[test]
    fn missing_origins_follow_allow_missing() {
        let policy = OriginPolicy::allow(["https://example.com"]);
        assert!(policy.is_allowed(None));
        assert!(!policy.clone().allow_missing(false).is_allowed(None));
        assert!(OriginPolicy::any().is_allowed(Some("https://anything.net")));
        assert!(OriginPolicy::allow(["null"]).is_allowed(Some("null")));
    }

    #[test]
    fn same_origin_compares_scheme_host_and_port() {
        assert!(same_origin("http://hub:8080", "http", "hub:8080"));
        assert!(same_origin("HTTP://Hub:8080/", "http", "HUB:8080"));
        assert!(same_origin("https://hub", "https", "hub:443"));
        assert!(!same_origin("https://hub:8080", "http", "hub:8080"));
        assert!(!same_origin("gopher://hub:8080", "http", "hub:8080"));
        assert!(!same_origin("http://hub:8081", "http", "hub:8080"));
        assert!(!same_origin("http://hub", "http", "hub:8080"));
        assert!(!same_origin("http://x@hub", "http", "x@hub"));
        assert!(!same_origin("null", "http", "hub"));
    }

    #[test]
    fn a_non_ascii_origin_is_refused_not_absent() {
        let policy = OriginPolicy::allow(["https://example.com"]);
        let bad = http::HeaderValue::from_bytes(b"https://ex\xe4mple.com").unwrap();
        assert!(!policy.is_allowed_value(Some(&bad)));
        assert!(!OriginPolicy::any().is_allowed_value(Some(&bad)));
        assert!(policy.is_allowed_value(None));
    }

    #[test]
    fn refusals_are_403() {
        let policy = OriginPolicy::allow(["https://example.com"]);
        assert!(policy.check(Some("https://example.com")).is_ok());
        let reject = policy.check(Some("https://evil.com")).unwrap_err();
        assert!(format!("{reject:?}").contains("403"), "{reject:?}");
    }
}
