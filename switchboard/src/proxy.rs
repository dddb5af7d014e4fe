//! [`Proxy`]: reaching a WebSocket server through an HTTP proxy with `CONNECT`
//! (RFC 9110 §9.3.6).
//!
//! The proxy opens a TCP tunnel to the server and then relays bytes both ways, so the
//! WebSocket handshake (and TLS, for `wss://`) run end to end through it unchanged.
//!
//! ```no_run
//! # async fn run() -> Result<(), switchboard::Error> {
//! use switchboard::proxy::Proxy;
//! let proxy = Proxy::parse("http://user:secret@proxy.internal:3128")?;
//! let tunnel = proxy.tunnel("example.com", 80).await?;
//! let (ws, _) = switchboard::Client::default().connect_on(tunnel, "ws://example.com/chat").await?;
//! # Ok(()) }
//! ```

use crate::error::{Error, HandshakeFailure};
use base64::Engine as _;
use bytes::BytesMut;
use http::{StatusCode, Uri};
use std::fmt;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest proxy response head we read before giving up on the proxy.
const MAX_RESPONSE_HEAD: usize = 16 << 10;

/// An HTTP proxy that tunnels with `CONNECT`.
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard::Error> {
/// use switchboard::proxy::Proxy;
///
/// let proxy = Proxy::parse("http://user:secret@proxy.internal:3128")?;
/// assert_eq!((proxy.host(), proxy.port()), ("proxy.internal", 3128));
/// let client = switchboard::Client::builder().proxy(proxy).build()?;
/// let (_ws, _response) = client.connect("ws://echo.internal/").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `user:password`, sent as `Proxy-Authorization: Basic`.
    credentials: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Proxy {
    /// Parses a proxy URL: `http://[user:password@]host[:port]` (port 80 by default, 3128
    /// style ports are common), or `host:port` without a scheme as `curl` accepts it.
    /// Percent-encoded characters in the credentials are decoded.
    pub fn parse(url: &str) -> Result<Proxy, Error> {
        let invalid =
            |why: &str| Error::invalid_input(format!("invalid proxy URL {:?}: {why}", redact(url)));
        let with_scheme = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = with_scheme.parse().map_err(|_| invalid("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(invalid(&format!(
                    "scheme {other}:// is not supported, only http://"
                )))
            }
            None => return Err(invalid("no scheme")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let credentials = authority
            .as_str()
            .rsplit_once('@')
            .map(|(userinfo, _)| percent_decode(userinfo))
            .transpose()
            .map_err(|_| invalid("bad percent-encoding in the credentials"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        Ok(Proxy {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            credentials,
        })
    }

    /// The proxy for a connection to `host` from the environment, as curl reads it:
    /// `HTTPS_PROXY` for `wss://` (`secure`), `HTTP_PROXY` for `ws://`, then `ALL_PROXY`;
    /// lower-case names first. `None` when none is set, or when `NO_PROXY` covers `host`.
    pub fn from_env(secure: bool, host: &str) -> Result<Option<Proxy>, Error> {
        Proxy::from_lookup(secure, host, |name| std::env::var(name).ok())
    }

    fn from_lookup(
        secure: bool,
        host: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Proxy>, Error> {
        let get = |name: &str| {
            var(&name.to_ascii_lowercase())
                .or_else(|| var(name))
                .filter(|v| !v.trim().is_empty())
        };
        let specific = if secure { "HTTPS_PROXY" } else { "HTTP_PROXY" };
        let Some(url) = get(specific).or_else(|| get("ALL_PROXY")) else {
            return Ok(None);
        };
        if get("NO_PROXY").is_some_and(|list| no_proxy_matches(&list, host)) {
            return Ok(None);
        }
        Proxy::parse(url.trim()).map(Some)
    }

    /// The proxy's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connects to the proxy and asks it for a tunnel to `host:port`. Returns the TCP
    /// stream, which from then on carries the tunnel; run TLS and the WebSocket handshake
    /// on it. A refusal is a [`crate::ErrorKind::Handshake`] error with the proxy's status
    /// (407: the proxy wants credentials).
    pub async fn tunnel(&self, host: &str, port: u16) -> Result<TcpStream, Error> {
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let target = authority(host, port);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(credentials) = &self.credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(credentials);
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await?;

        let status = read_response_status(&mut tcp).await?;
        if !status.is_success() {
            return Err(Error::handshake(
                HandshakeFailure::Proxy(format!(
                    "proxy {}:{} refused the tunnel to {target} with {status}",
                    self.host, self.port
                )),
                Some(status),
                None,
            ));
        }
        Ok(tcp)
    }
}

/// `host:port` for the request line, with IPv6 brackets.
fn authority(host: &str, port: u16) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    }
}

/// Reads the proxy's response head and returns its status. The server cannot speak before
/// our handshake, so nothing may follow the head yet: anything that does is refused rather
/// than silently dropped.
async fn read_response_status(tcp: &mut TcpStream) -> Result<StatusCode, Error> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let code = response.code.unwrap_or(0);
                let status =
                    StatusCode::from_u16(code).map_err(|_| bad_proxy("an invalid status"))?;
                // A refusal may carry a body; only a tunnel must start clean.
                if status.is_success() && len != buf.len() {
                    return Err(bad_proxy("data after its 2xx response"));
                }
                return Ok(status);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(bad_proxy(&format!("a malformed response ({e})"))),
        }
        if buf.len() >= MAX_RESPONSE_HEAD {
            return Err(bad_proxy("a response head over 16 KiB"));
        }
        if tcp.read_buf(&mut buf).await? == 0 {
            return Err(Error::io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the proxy closed the connection before answering CONNECT",
            )));
        }
    }
}

fn bad_proxy(what: &str) -> Error {
    Error::handshake(
        HandshakeFailure::Proxy(format!("the proxy sent {what}")),
        None,
        None,
    )
}

/// Whether a `NO_PROXY` list covers `host`: `*`, the host itself, or a domain it is in
/// (`example.com` and `.example.com` both cover `a.example.com`). Ports are ignored.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.to_ascii_lowercase();
            let entry = strip_port(&entry)
                .trim_start_matches("*.")
                .trim_start_matches('.');
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            host == entry
                || host
                    .strip_suffix(entry)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
}

/// `host:port` → `host`; IPv6 addresses (several colons) are left alone unless bracketed.
fn strip_port(entry: &str) -> &str {
    if let Some(end) = entry.find("]:") {
        return &entry[..=end];
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => entry,
    }
}

/// Decodes `%XX` escapes (userinfo in a URL).
fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            format!("{}://…@{}", &url[..start], &url[at + 1..])
        }
        (None, Some(at)) => format!("…@{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn proxy_urls_parse() {
        let p = Proxy::parse("http://proxy.local:3128").unwrap();
        assert_eq!(
            (p.host(), p.port(), p.credentials.as_deref()),
            ("proxy.local", 3128, None)
        );
        let p = Proxy::parse("http://us%40er:p%3Ass@10.0.0.1").unwrap();
        assert_eq!(
            (p.host(), p.port(), p.credentials.as_deref()),
            ("10.0.0.1", 80, Some("us@er:p:ss"))
        );
        let p = Proxy::parse("[::1]:8080").unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 8080));
        assert!(!format!("{p:?}").contains("p:ss"));
        let error = Proxy::parse("socks5://user:hunter2@h:1080").unwrap_err();
        assert!(error.to_string().contains("only http://"), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn the_environment_is_read_like_curl() {
        let env = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |name: &str| map.get(name).cloned()
        };
        let vars = env(&[
            ("HTTPS_PROXY", "http://secure:1"),
            ("http_proxy", "http://plain:2"),
        ]);
        assert_eq!(
            Proxy::from_lookup(true, "example.com", &vars)
                .unwrap()
                .unwrap()
                .host(),
            "secure"
        );
        assert_eq!(
            Proxy::from_lookup(false, "example.com", &vars)
                .unwrap()
                .unwrap()
                .host(),
            "plain"
        );
        let vars = env(&[
            ("ALL_PROXY", "http://all:3"),
            ("NO_PROXY", "localhost, .internal,10.0.0.1:80"),
        ]);
        assert_eq!(
            Proxy::from_lookup(true, "example.com", &vars)
                .unwrap()
                .unwrap()
                .port(),
            3
        );
        for host in ["localhost", "a.internal", "internal", "10.0.0.1"] {
            assert_eq!(
                Proxy::from_lookup(true, host, &vars).unwrap(),
                None,
                "{host}"
            );
        }
        assert!(Proxy::from_lookup(true, "notinternal", &vars)
            .unwrap()
            .is_some());
        assert_eq!(Proxy::from_lookup(true, "x", env(&[])).unwrap(), None);
        assert!(Proxy::from_lookup(true, "x", env(&[("HTTPS_PROXY", "ftp://x")])).is_err());
    }

    #[test]
    fn no_proxy_entries() {
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("example.com", "EXAMPLE.com"));
        assert!(no_proxy_matches("*.example.com", "a.example.com"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(no_proxy_matches("::1", "[::1]"));
        assert!(no_proxy_matches("[::1]:9001", "::1"));
        assert!(!no_proxy_matches("", "example.com"));
    }

    #[test]
    fn connect_targets_bracket_ipv6() {
        assert_eq!(authority("example.com", 443), "example.com:443");
        assert_eq!(authority("::1", 80), "[::1]:80");
        assert_eq!(authority("[::1]", 80), "[::1]:80");
    }
}
