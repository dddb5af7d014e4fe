//! [`OriginPolicy`]: which web pages may open a WebSocket to us.
//!
//! WebSocket has no same-origin rule: any page can open a connection to any server, and the
//! browser sends the user's cookies with it. A server that authenticates by cookie must
//! therefore check the `Origin` header, which browsers always send on a WebSocket handshake
//! and pages cannot forge (RFC 6455 §10.2, §4.2.1 item 7). Skipping this check is the
//! classic cross-site WebSocket hijacking hole.

use crate::server::Reject;
use http::StatusCode;
use std::net::IpAddr;

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
///
/// A server that also serves pages checks whole requests with
/// [`OriginPolicy::check_request`]: its own origin passes too, and with
/// [`OriginPolicy::hosts`] only the `Host` names it is reached by are answered (against DNS
/// rebinding). The hub's `allowed_origins` and `allowed_hosts` are this policy.
///
/// ```
/// use http::HeaderValue;
/// use switchboard::security::{OriginPolicy, OriginRefusal, OriginVerdict};
///
/// let policy = OriginPolicy::allow(["https://app.example"]).hosts(["hub.example"]);
/// let (own, app) = (
///     HeaderValue::from_static("https://hub.example"),
///     HeaderValue::from_static("https://app.example"),
/// );
/// let check = |origin, host| policy.check_request(origin, Some(host), "https");
/// assert_eq!(check(Some(&own), "hub.example"), Ok(OriginVerdict::Same));
/// assert_eq!(
///     check(Some(&app), "hub.example"),
///     Ok(OriginVerdict::Allowed("https://app.example".into()))
/// );
/// assert_eq!(check(None, "hub.example"), Ok(OriginVerdict::Absent));
/// assert_eq!(check(None, "rebound.example"), Err(OriginRefusal::Host));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Vec<Pattern>,
    allow_missing: bool,
    /// The `Host` names answered (`name`, `name:port` or `*.domain`, lower case); empty:
    /// any.
    hosts: Vec<String>,
}

/// What a request's `Origin` is, when [`OriginPolicy::check_request`] lets it go ahead.
///
/// ```
/// use http::HeaderValue;
/// use switchboard::security::{OriginPolicy, OriginVerdict};
///
/// let policy = OriginPolicy::allow(["https://app.example"]);
/// let app = HeaderValue::from_static("https://app.example");
/// match policy.check_request(Some(&app), Some("hub.example"), "https") {
///     Ok(OriginVerdict::Allowed(origin)) => assert_eq!(origin, "https://app.example"),
///     Ok(OriginVerdict::Same | OriginVerdict::Absent) => unreachable!("a foreign origin"),
///     Err(refusal) => panic!("refused: {refusal}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin`: not a browser, or a same-origin `GET`.
    Absent,
    /// The server's own origin.
    Same,
    /// Another origin the policy allows (a server that answers CORS sends its headers to
    /// these).
    Allowed(String),
}

/// Why [`OriginPolicy::check_request`] refused a request.
///
/// ```
/// use http::HeaderValue;
/// use switchboard::security::{OriginPolicy, OriginRefusal};
///
/// let policy = OriginPolicy::allow(["https://app.example"]).hosts(["hub.example"]);
/// let evil = HeaderValue::from_static("https://evil.example");
/// let check = |origin, host| policy.check_request(origin, Some(host), "https");
/// assert_eq!(check(Some(&evil), "hub.example"), Err(OriginRefusal::Origin));
/// assert_eq!(check(None, "rebound.example"), Err(OriginRefusal::Host)); // DNS rebinding
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefusal {
    /// The `Origin` is not allowed, or not visible ASCII (or missing, under
    /// [`OriginPolicy::allow_missing`]`(false)`).
    #[error("origin not allowed")]
    Origin,
    /// The `Host` is not one of [`OriginPolicy::hosts`].
    #[error("host not allowed")]
    Host,
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
            hosts: Vec::new(),
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
            hosts: Vec::new(),
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

    /// Answers only requests whose `Host` (HTTP/2: `:authority`) is one of these:
    /// `name` (any port), `name:port`, `[v6]`, or `*.domain` for every subdomain of
    /// `domain`. Default: none listed, any `Host`. Checked by
    /// [`OriginPolicy::check_request`], which a [`Router`](crate::router::Router) route's
    /// policy goes through; [`OriginPolicy::is_allowed`] sees no `Host`.
    ///
    /// It also decides which requests count as same-origin: a page whose `Origin` is
    /// `https://` + its `Host` is the server's own only if that `Host` is listed here, or,
    /// with none listed, an IP address or `localhost`. Otherwise a page on `evil.example`
    /// whose name the attacker points at the server (DNS rebinding) would be "same
    /// origin" by the letter.
    pub fn hosts(mut self, hosts: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.hosts = hosts
            .into_iter()
            .map(|h| h.as_ref().trim().to_ascii_lowercase())
            .collect();
        self
    }

    /// Checks a whole request, as a server that also serves pages (and answers CORS) must:
    /// its `Origin` value, its `Host` (HTTP/2: the `:authority`) and the scheme it came
    /// over (`http`/`ws` or `https`/`wss`).
    ///
    /// In order: with [`OriginPolicy::hosts`] set, a `Host` not listed is refused
    /// ([`OriginRefusal::Host`]), `Origin` or not; no `Origin` is
    /// [`OriginVerdict::Absent`] (unless [`OriginPolicy::allow_missing`] is off); the
    /// server's own origin (RFC 6454: scheme, host and port, see [`same_origin`]) on a
    /// known host is [`OriginVerdict::Same`]; an origin the list allows is
    /// [`OriginVerdict::Allowed`]; anything else, or an `Origin` that is not visible ASCII,
    /// is [`OriginRefusal::Origin`].
    pub fn check_request(
        &self,
        origin: Option<&http::HeaderValue>,
        host: Option<&str>,
        scheme: &str,
    ) -> Result<OriginVerdict, OriginRefusal> {
        let host = host.map(|h| h.trim().to_ascii_lowercase());
        if !self.hosts.is_empty() && !host.as_deref().is_some_and(|h| self.host_listed(h)) {
            return Err(OriginRefusal::Host);
        }
        let Some(origin) = origin else {
            return match self.allow_missing {
                true => Ok(OriginVerdict::Absent),
                false => Err(OriginRefusal::Origin),
            };
        };
        let origin = origin.to_str().map_err(|_| OriginRefusal::Origin)?;
        if let Some(host) = &host {
            if same_origin(origin, scheme, host) && self.host_known(host) {
                return Ok(OriginVerdict::Same);
            }
        }
        if self.is_allowed(Some(origin)) {
            Ok(OriginVerdict::Allowed(origin.to_owned()))
        } else {
            Err(OriginRefusal::Origin)
        }
    }

    /// Whether `host` (`name[:port]`, lower case) is one the server knows it is reached by.
    fn host_known(&self, host: &str) -> bool {
        if !self.hosts.is_empty() {
            return self.host_listed(host);
        }
        let name = host_name(host);
        name == "localhost" || name.ends_with(".localhost") || name.parse::<IpAddr>().is_ok()
    }

    fn host_listed(&self, host: &str) -> bool {
        let name = host_name(host);
        self.hosts.iter().any(|pattern| {
            if let Some(suffix) = pattern.strip_prefix("*.") {
                name.strip_suffix(suffix)
                    .is_some_and(|label| label.ends_with('.') && label.len() > 1)
            } else if pattern.contains(':') && !pattern.starts_with('[') || pattern.contains("]:") {
                pattern == host
            } else {
                pattern.trim_start_matches('[').trim_end_matches(']') == name
            }
        })
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

/// The name part of `name[:port]` (`[v6]:port` too), without brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
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

    mod requests {
        //! [`OriginPolicy::check_request`]: `Origin`, `Host` and scheme together.
        use super::super::*;
        use http::HeaderValue;

        fn v(s: &str) -> HeaderValue {
            HeaderValue::from_str(s).unwrap()
        }

        fn check(
            p: &OriginPolicy,
            origin: &str,
            host: &str,
        ) -> Result<OriginVerdict, OriginRefusal> {
            p.check_request(Some(&v(origin)), Some(host), "http")
        }

        fn same_origin_only() -> OriginPolicy {
            OriginPolicy::allow([] as [&str; 0])
        }

        #[test]
        fn no_origin_header_is_not_a_browser() {
            let p = same_origin_only();
            assert_eq!(
                p.check_request(None, Some("hub:8080"), "http"),
                Ok(OriginVerdict::Absent)
            );
            assert_eq!(
                p.allow_missing(false)
                    .check_request(None, Some("hub:8080"), "http"),
                Err(OriginRefusal::Origin)
            );
        }

        #[test]
        fn same_origin_is_scheme_host_and_port_on_a_known_host() {
            let p = same_origin_only();
            for (origin, host) in [
                ("http://127.0.0.1:8080", "127.0.0.1:8080"),
                ("http://localhost:8080", "localhost:8080"),
                ("http://[::1]:8080", "[::1]:8080"),
            ] {
                assert_eq!(check(&p, origin, host), Ok(OriginVerdict::Same), "{origin}");
            }
            for (origin, host) in [
                ("https://127.0.0.1:8080", "127.0.0.1:8080"),
                ("gopher://127.0.0.1:8080", "127.0.0.1:8080"),
                ("http://127.0.0.1:9999", "127.0.0.1:8080"),
                ("http://evil.example", "127.0.0.1:8080"),
                ("null", "127.0.0.1:8080"),
                // DNS rebinding: both the attacker's name.
                ("http://evil.example:8080", "evil.example:8080"),
            ] {
                assert_eq!(
                    check(&p, origin, host),
                    Err(OriginRefusal::Origin),
                    "{origin} {host}"
                );
            }
            assert_eq!(
                p.check_request(Some(&v("http://127.0.0.1:8080")), None, "http"),
                Err(OriginRefusal::Origin)
            );
        }

        #[test]
        fn a_non_ascii_origin_is_refused() {
            let bad = HeaderValue::from_bytes(b"http://\xff").unwrap();
            assert_eq!(
                OriginPolicy::any().check_request(Some(&bad), Some("hub"), "http"),
                Err(OriginRefusal::Origin)
            );
        }

        #[test]
        fn hosts_name_the_server_and_refuse_every_other_host() {
            let p = same_origin_only().hosts(["chat.example", "*.hub.example"]);
            assert_eq!(
                check(&p, "https://chat.example", "chat.example"),
                Err(OriginRefusal::Origin)
            );
            assert_eq!(
                p.check_request(
                    Some(&v("https://chat.example")),
                    Some("chat.example"),
                    "https"
                ),
                Ok(OriginVerdict::Same)
            );
            assert_eq!(
                check(&p, "http://a.hub.example:8080", "a.hub.example:8080"),
                Ok(OriginVerdict::Same)
            );
            for host in [Some("evil.example"), Some("hub.example"), None] {
                assert_eq!(
                    p.check_request(None, host, "http"),
                    Err(OriginRefusal::Host),
                    "{host:?}"
                );
            }
        }

        #[test]
        fn allowlist_and_wildcard() {
            let p = OriginPolicy::allow(["https://app.example/"]);
            assert_eq!(
                check(&p, "https://APP.example", "hub"),
                Ok(OriginVerdict::Allowed("https://APP.example".into()))
            );
            assert_eq!(
                check(&p, "http://app.example", "hub"),
                Err(OriginRefusal::Origin)
            );
            assert!(matches!(
                check(&OriginPolicy::allow(["*"]), "null", "hub"),
                Ok(OriginVerdict::Allowed(_))
            ));
        }
    }

    #[test]
    fn refusals_are_403() {
        let policy = OriginPolicy::allow(["https://example.com"]);
        assert!(policy.check(Some("https://example.com")).is_ok());
        let reject = policy.check(Some("https://evil.com")).unwrap_err();
        assert!(format!("{reject:?}").contains("403"), "{reject:?}");
    }
}
