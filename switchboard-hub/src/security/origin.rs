//! Which browser origins may talk to the hub, and which `Host` names it answers to.
//!
//! Browsers attach `Origin` to WebSocket handshakes, to `EventSource` and `fetch` requests
//! made cross-origin, and to every `POST`. Without a check, any web page a user visits could
//! open a WebSocket to the hub with the user's cookies (cross-site WebSocket hijacking, see
//! RFC 6455 §10.2) or post a `text/plain` form to the publish endpoint without a CORS
//! preflight. Non-browser clients send no `Origin` and are not affected.
//!
//! The allowlist and the same-origin rule are the library's
//! ([`switchboard::security::OriginPolicy`], [`switchboard::security::same_origin`]: scheme,
//! host and port, RFC 6454). What the hub adds is the `Host` side, against DNS rebinding: a
//! page on `evil.example` whose name the attacker re-points at the hub's address makes
//! requests whose `Origin` and `Host` are both `evil.example` — "same origin" by the
//! letter. So a request counts as same-origin only when its `Host` is one the hub knows it
//! is reached by: listed in `allowed_hosts`, or, with that list empty, an IP address or
//! `localhost` (what a hub without a configured name is reached by). And with
//! `allowed_hosts` set, a request for any other `Host` is refused outright, `Origin` or not
//! (a rebinding page's same-origin `GET`s carry no `Origin`).

use std::net::IpAddr;

use http::HeaderValue;
use switchboard::security::{same_origin, OriginPolicy as Allowlist};

/// The origin and host rules of a hub.
#[derive(Clone, Debug)]
pub struct OriginPolicy {
    allowlist: Allowlist,
    any: bool,
    hosts: Vec<String>,
}

/// What a request's `Origin` is, when it may go ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin`: not a browser, or a same-origin `GET`.
    Absent,
    /// The hub's own origin.
    Same,
    /// Another origin that `allowed_origins` allows (the CORS headers go to these).
    Allowed(String),
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefusal {
    /// The `Origin` is not allowed, or not visible ASCII.
    #[error("origin not allowed")]
    Origin,
    /// The `Host` is not one of `allowed_hosts`.
    #[error("host not allowed")]
    Host,
}

impl OriginPolicy {
    /// The policy for `allowed_origins` (`[]`: same origin only; `["*"]`: any) and
    /// `allowed_hosts` (`[]`: any `Host`, same-origin only for IP addresses and
    /// `localhost`).
    pub fn from_config(allowed_origins: &[String], allowed_hosts: &[String]) -> Self {
        Self {
            allowlist: Allowlist::allow(allowed_origins),
            any: allowed_origins.iter().any(|o| o.trim() == "*"),
            hosts: allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// Checks a request with these `Origin` and `Host` values (for HTTP/2, the
    /// `:authority`), reached over `scheme`.
    pub fn check(
        &self,
        origin: Option<&HeaderValue>,
        host: Option<&str>,
        scheme: &str,
    ) -> Result<OriginVerdict, OriginRefusal> {
        let host = host.map(|h| h.trim().to_ascii_lowercase());
        if !self.hosts.is_empty() && !host.as_deref().is_some_and(|h| self.host_listed(h)) {
            return Err(OriginRefusal::Host);
        }
        let Some(origin) = origin else {
            return Ok(OriginVerdict::Absent);
        };
        let origin = origin.to_str().map_err(|_| OriginRefusal::Origin)?;
        if let Some(host) = &host {
            if same_origin(origin, scheme, host) && self.host_known(host) {
                return Ok(OriginVerdict::Same);
            }
        }
        if self.any || self.allowlist.is_allowed(Some(origin)) {
            Ok(OriginVerdict::Allowed(origin.to_owned()))
        } else {
            Err(OriginRefusal::Origin)
        }
    }

    /// Whether `host` (`name[:port]`, lower case) is one the hub knows it is reached by.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    fn check(p: &OriginPolicy, origin: &str, host: &str) -> Result<OriginVerdict, OriginRefusal> {
        p.check(Some(&v(origin)), Some(host), "http")
    }

    #[test]
    fn no_origin_header_is_not_a_browser() {
        let p = OriginPolicy::from_config(&[], &[]);
        assert_eq!(
            p.check(None, Some("hub:8080"), "http"),
            Ok(OriginVerdict::Absent)
        );
    }

    #[test]
    fn same_origin_is_scheme_host_and_port_on_a_known_host() {
        let p = OriginPolicy::from_config(&[], &[]);
        assert_eq!(
            check(&p, "http://127.0.0.1:8080", "127.0.0.1:8080"),
            Ok(OriginVerdict::Same)
        );
        assert_eq!(
            check(&p, "http://localhost:8080", "localhost:8080"),
            Ok(OriginVerdict::Same)
        );
        assert_eq!(
            check(&p, "http://[::1]:8080", "[::1]:8080"),
            Ok(OriginVerdict::Same)
        );
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
            p.check(Some(&v("http://127.0.0.1:8080")), None, "http"),
            Err(OriginRefusal::Origin)
        );
    }

    #[test]
    fn a_non_ascii_origin_is_refused() {
        let p = OriginPolicy::from_config(&["*".into()], &[]);
        let bad = HeaderValue::from_bytes(b"http://\xff").unwrap();
        assert_eq!(
            p.check(Some(&bad), Some("hub"), "http"),
            Err(OriginRefusal::Origin)
        );
    }

    #[test]
    fn allowed_hosts_name_the_hub_and_refuse_every_other_host() {
        let p = OriginPolicy::from_config(&[], &["chat.example".into(), "*.hub.example".into()]);
        assert_eq!(
            check(&p, "https://chat.example", "chat.example"),
            Err(OriginRefusal::Origin)
        );
        assert_eq!(
            p.check(
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
        assert_eq!(
            p.check(None, Some("evil.example"), "http"),
            Err(OriginRefusal::Host)
        );
        assert_eq!(
            p.check(None, Some("hub.example"), "http"),
            Err(OriginRefusal::Host)
        );
        assert_eq!(p.check(None, None, "http"), Err(OriginRefusal::Host));
    }

    #[test]
    fn allowlist_and_wildcard() {
        let p = OriginPolicy::from_config(&["https://app.example/".into()], &[]);
        assert_eq!(
            check(&p, "https://APP.example", "hub"),
            Ok(OriginVerdict::Allowed("https://APP.example".into()))
        );
        assert_eq!(
            check(&p, "http://app.example", "hub"),
            Err(OriginRefusal::Origin)
        );
        let any = OriginPolicy::from_config(&["*".into()], &[]);
        assert!(matches!(
            check(&any, "null", "hub"),
            Ok(OriginVerdict::Allowed(_))
        ));
    }
}
