//! What a route's callbacks and handler see of the request: [`UpgradeRequest`] before the
//! 101 (to authenticate), [`ConnectionInfo`] after it.

use http::{HeaderMap, Request};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

/// An upgrade request that passed the RFC 6455 checks, the `Origin` check and the
/// connection limits, shown to a route's [`authenticate`](super::Route::authenticate)
/// callback before the 101 is sent.
///
/// The callback can read headers, cookies and query parameters, and leave what it learnt
/// (a user id, rights) in [`UpgradeRequest::extensions_mut`] for the handler, which finds it
/// in [`ConnectionInfo::extensions`].
///
/// ```
/// use http::StatusCode;
/// use switchboard::router::Route;
/// use switchboard::Reject;
///
/// #[derive(Clone)]
/// struct User(String);
///
/// let route = Route::new(|_ws, info| async move {
///     let user = info.extensions().get::<User>().map(|u| u.0.clone());
///     # let _ = user;
/// })
/// .authenticate(|req| {
///     let Some(session) = req.cookie("session").map(str::to_owned) else {
///         return Err(Reject::new(StatusCode::UNAUTHORIZED, "log in first"));
///     };
///     req.extensions_mut().insert(User(session));
///     Ok(())
/// });
/// # let _ = route;
/// ```
#[derive(Debug)]
pub struct UpgradeRequest<'a> {
    pub(super) request: &'a mut Request<()>,
    pub(super) peer: SocketAddr,
    pub(super) client_ip: IpAddr,
    pub(super) protocols: &'a [String],
}

/// The getters of the request head and the addresses, the same for the callback's view
/// ([`UpgradeRequest`]) and the handler's ([`ConnectionInfo`]): written once.
macro_rules! request_getters {
    () => {
        /// The whole request head.
        pub fn request(&self) -> &Request<()> {
            &self.request
        }

        /// The request path, e.g. `/chat`.
        pub fn path(&self) -> &str {
            self.request.uri().path()
        }

        /// The query string, without the `?`.
        pub fn query(&self) -> Option<&str> {
            self.request.uri().query()
        }

        /// The first value of a query parameter, `+` and `%XX` decoded (`?token=a%2Bb` →
        /// `a+b`).
        pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
            query_param(self.query()?, name)
        }

        /// The request headers.
        pub fn headers(&self) -> &HeaderMap {
            self.request.headers()
        }

        /// A header's value, if present and visible ASCII.
        pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
            self.request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
        }

        /// A cookie's value from the `Cookie` header(s).
        pub fn cookie(&self, name: &str) -> Option<&str> {
            cookie(self.request.headers(), name)
        }

        /// The TCP peer (a proxy, behind one).
        pub fn peer_addr(&self) -> SocketAddr {
            self.peer
        }

        /// The client's address: the peer, or the forwarded address when the peer is a
        /// trusted proxy (see [`Router::trusted_proxies`](super::Router::trusted_proxies)).
        pub fn client_ip(&self) -> IpAddr {
            self.client_ip
        }
    };
}

impl UpgradeRequest<'_> {
    request_getters!();

    /// The `Origin` header (already checked against the route's policy).
    pub fn origin(&self) -> Option<&str> {
        self.header(http::header::ORIGIN)
    }

    /// The subprotocols the client offers, most preferred first.
    pub fn protocols(&self) -> &[String] {
        self.protocols
    }

    /// Data for the handler (see [`ConnectionInfo::extensions`]).
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        self.request.extensions_mut()
    }
}

/// What a handler knows about its connection besides the socket: the request head (with
/// what the `authenticate` callback left in its extensions) and the addresses.
///
/// ```
/// use switchboard::router::Route;
///
/// let route = Route::new(|mut ws, info| async move {
///     let greeting = format!("hello {} on {}", info.client_ip(), info.path());
///     let _ = ws.send(greeting).await;
/// });
/// # let _ = route;
/// ```
#[derive(Debug)]
pub struct ConnectionInfo {
    pub(super) request: Request<()>,
    pub(super) peer: SocketAddr,
    pub(super) client_ip: IpAddr,
}

impl ConnectionInfo {
    request_getters!();

    /// What the `authenticate` callback left for the handler.
    pub fn extensions(&self) -> &http::Extensions {
        self.request.extensions()
    }
}

/// The first `name=value` of a query string, decoded as a form (`+` is a space).
fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key) == name).then(|| form_decode(value))
    })
}

/// `+` → space and `%XX` → byte; invalid escapes are kept as they are, invalid UTF-8 is
/// replaced (a parameter is text).
fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['+', '%']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// A cookie from `Cookie: a=1; b=2` (RFC 6265 §5.4; several headers are one list).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_form_decoded() {
        let q = "a=1&token=x%2By+z&flag&token=second&bad=%zz";
        assert_eq!(query_param(q, "a").as_deref(), Some("1"));
        assert_eq!(query_param(q, "token").as_deref(), Some("x+y z"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "bad").as_deref(), Some("%zz"));
        assert_eq!(query_param(q, "missing"), None);
    }

    #[test]
    fn cookies_are_found_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", "theme=dark; session=abc".parse().unwrap());
        headers.append("cookie", "other=\"quoted\"".parse().unwrap());
        assert_eq!(cookie(&headers, "session"), Some("abc"));
        assert_eq!(cookie(&headers, "other"), Some("quoted"));
        assert_eq!(cookie(&headers, "sess"), None);
    }
}
