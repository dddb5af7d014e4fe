//! Which browser origins may talk to the hub.
//!
//! Browsers attach `Origin` to WebSocket handshakes, to `EventSource` and `fetch` requests
//! made cross-origin, and to every `POST`. Without a check, any web page a user visits could
//! open a WebSocket to the hub with the user's cookies (cross-site WebSocket hijacking, see
//! RFC 6455 §10.2) or post a `text/plain` form to the publish endpoint without a CORS
//! preflight. Non-browser clients send no `Origin` and are not affected.

/// The origins allowed besides clients that send none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Any origin (`allowed_origins = ["*"]`).
    Any,
    /// The hub's own origin (matching the `Host` header) and these, compared as
    /// case-insensitive `scheme://host[:port]` strings.
    List(Vec<String>),
}

impl OriginPolicy {
    /// The policy for a configured list: `["*"]` (or any `*` entry) is [`OriginPolicy::Any`].
    pub fn from_config(allowed: &[String]) -> Self {
        if allowed.iter().any(|o| o == "*") {
            Self::Any
        } else {
            Self::List(allowed.iter().map(|o| normalise(o)).collect())
        }
    }

    /// Whether a request with these `Origin` and `Host` header values may go ahead.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        match self {
            Self::Any => true,
            Self::List(list) => {
                let origin = normalise(origin);
                let same_origin = host.is_some_and(|host| {
                    origin
                        .split_once("://")
                        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
                });
                same_origin || list.contains(&origin)
            }
        }
    }
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origin_header_is_not_a_browser() {
        assert!(OriginPolicy::from_config(&[]).allows(None, Some("hub:8080")));
    }

    #[test]
    fn same_origin_is_allowed_by_default() {
        let p = OriginPolicy::from_config(&[]);
        assert!(p.allows(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        assert!(p.allows(Some("https://Hub.Example"), Some("hub.example")));
        assert!(!p.allows(Some("http://evil.example"), Some("127.0.0.1:8080")));
        assert!(!p.allows(Some("http://127.0.0.1:9999"), Some("127.0.0.1:8080")));
        assert!(!p.allows(Some("null"), Some("127.0.0.1:8080")));
        assert!(!p.allows(Some("http://127.0.0.1:8080"), None));
    }

    #[test]
    fn allowlist_and_wildcard() {
        let p = OriginPolicy::from_config(&["https://app.example/".into()]);
        assert!(p.allows(Some("https://APP.example"), Some("hub")));
        assert!(!p.allows(Some("http://app.example"), Some("hub")));
        let any = OriginPolicy::from_config(&["*".into()]);
        assert_eq!(any, OriginPolicy::Any);
        assert!(any.allows(Some("null"), None));
    }
}
