//! The client side of the opening handshake (RFC 6455 §4.1): build the request, then check
//! the server's response.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::{
    CONNECTION, HOST, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::uri::PathAndQuery;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};

use super::headers::{
    accept_key, encode_head, header_has_token, is_token, parse_extensions, parse_protocols, single,
};
use super::server::to_header_map;
use super::{Extension, HandshakeError};

/// How many header lines a response head may have; more is [`HandshakeError::HeadersTooLarge`].
const MAX_HEADERS: usize = 64;

/// A client's opening handshake: the request to send, and what the response must say.
///
/// Built from the URI and a 16-byte key the caller draws from a random source (§4.1 item 7:
/// "randomly selected", "MUST be selected randomly for each connection"); this crate has no
/// randomness of its own.
///
/// ```
/// use http::header::ORIGIN;
/// use switchboard_protocol::handshake::ClientHandshake;
///
/// let uri: http::Uri = "wss://example.com:8443/chat?room=1".parse()?;
/// // The key: 16 bytes from a CSPRNG in real code, fresh for every connection.
/// let handshake = ClientHandshake::new(&uri, *b"the sample nonce")?
///     .protocols(["chat.v2"])
///     .header(ORIGIN, "https://example.com".parse()?);
/// assert_eq!(handshake.host(), "example.com");
/// assert_eq!(handshake.port(), 8443);
/// assert!(handshake.is_secure()); // wss: connect with TLS
/// let mut out = Vec::new();
/// handshake.encode_request(&mut out); // write it, then read the reply: see `validate`
/// assert!(out.starts_with(b"GET /chat?room=1 HTTP/1.1\r\nhost: example.com:8443\r\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    /// The request-target: path and query, `/` when the URI has none (§3 "resource name").
    target: PathAndQuery,
    /// The `Host` header: host, plus `:port` only for a non-default port (§4.1 item 4).
    host_header: HeaderValue,
    /// The host to connect to, without IPv6 brackets.
    host: String,
    /// The TCP port: explicit, or 80 / 443 by scheme.
    port: u16,
    /// `wss` / `https`: the shell must run TLS.
    secure: bool,
    /// `Sec-WebSocket-Key`: base64 of the 16-byte nonce.
    key: String,
    /// Offered subprotocols, most preferred first; all tokens, no repeats.
    protocols: Vec<String>,
    /// Each offered `Sec-WebSocket-Extensions` value, as given.
    extension_offers: Vec<HeaderValue>,
    /// Names found in `extension_offers`; the server may accept only these (§4.1).
    offered_extensions: Vec<String>,
    /// Caller-supplied headers (Origin, Authorization, Cookie, …).
    extra: HeaderMap,
}

/// What the server agreed to, from a response that passed [`ClientHandshake::validate`].
///
/// ```
/// use switchboard_protocol::deflate::DeflateConfig;
/// use switchboard_protocol::handshake::ClientHandshake;
///
/// let deflate = DeflateConfig::default();
/// let uri: http::Uri = "ws://example.com/chat".parse()?;
/// let handshake = ClientHandshake::new(&uri, *b"the sample nonce")?
///     .protocols(["chat"])
///     .extensions(deflate.client_offer());
/// let reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///               Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
///               Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
/// let (response, _) = ClientHandshake::parse_response(reply, 8192)?.expect("a complete head");
/// let answer = handshake.validate(&response)?;
/// assert_eq!(answer.protocol, None); // the server chose no subprotocol
/// let params = deflate.client_accept(&answer.extensions)?; // but it did take compression
/// assert!(params.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAnswer {
    /// The subprotocol the server chose, always one the client offered.
    pub protocol: Option<String>,
    /// The extensions the server accepted with their parameters, in order; each one's name
    /// was offered. The extension's own negotiation (e.g. deflate) checks the parameters.
    pub extensions: Vec<Extension>,
}

impl ClientHandshake {
    /// A handshake for `uri`, which must be absolute with scheme `ws`, `wss`, `http` or
    /// `https` and a host. `key` is the nonce sent base64-encoded as `Sec-WebSocket-Key`.
    pub fn new(uri: &Uri, key: [u8; 16]) -> Result<Self, HandshakeError> {
        let invalid = |why: &str| HandshakeError::InvalidUri(format!("{why}: {uri}"));
        let scheme = uri.scheme_str().ok_or_else(|| invalid("no scheme"))?;
        let (secure, default_port) =
            if scheme.eq_ignore_ascii_case("ws") || scheme.eq_ignore_ascii_case("http") {
                (false, 80)
            } else if scheme.eq_ignore_ascii_case("wss") || scheme.eq_ignore_ascii_case("https") {
                (true, 443)
            } else {
                return Err(invalid("scheme is not ws or wss"));
            };
        let authority_host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no host"))?;
        let port = uri.port_u16().unwrap_or(default_port);
        // §4.1 item 4: the port is part of Host only when it is not the scheme's default.
        let host_header = if port == default_port {
            authority_host.to_owned()
        } else {
            format!("{authority_host}:{port}")
        };
        let host_header = HeaderValue::try_from(host_header)
            .map_err(|_| invalid("host is not a header value"))?;
        let host = authority_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();

        let target = match uri.path_and_query().map(PathAndQuery::as_str) {
            None | Some("") => PathAndQuery::from_static("/"),
            Some(pq) if pq.starts_with('/') => {
                PathAndQuery::try_from(pq).map_err(|_| invalid("bad path"))?
            }
            // `ws://host?x`: the path is empty, which §3 writes as "/".
            Some(pq) => {
                PathAndQuery::try_from(format!("/{pq}")).map_err(|_| invalid("bad path"))?
            }
        };

        Ok(ClientHandshake {
            target,
            host_header,
            host,
            port,
            secure,
            key: BASE64.encode(key),
            protocols: Vec::new(),
            extension_offers: Vec::new(),
            offered_extensions: Vec::new(),
            extra: HeaderMap::new(),
        })
    }

    /// Offers these subprotocols, most preferred first, after any offered before.
    ///
    /// # Panics
    ///
    /// If a name is not an RFC 7230 token or repeats one already offered (§4.1 item 10). Use
    /// [`ClientHandshake::try_protocols`] for names that come from user input.
    pub fn protocols(self, p: impl IntoIterator<Item = impl Into<String>>) -> Self {
        match self.try_protocols(p) {
            Ok(handshake) => handshake,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`ClientHandshake::protocols`], but returns [`HandshakeError::InvalidOffer`]
    /// instead of panicking.
    pub fn try_protocols(
        mut self,
        p: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, HandshakeError> {
        for name in p {
            let name = name.into();
            if !is_token(&name) {
                return Err(HandshakeError::InvalidOffer(format!(
                    "subprotocol {name:?} is not a token"
                )));
            }
            if self.protocols.contains(&name) {
                return Err(HandshakeError::InvalidOffer(format!(
                    "subprotocol {name:?} offered twice"
                )));
            }
            self.protocols.push(name);
        }
        Ok(self)
    }

    /// Offers extensions: a whole `Sec-WebSocket-Extensions` value, as the extension's own
    /// negotiation builds it (e.g. the deflate module). Each call adds one header line.
    ///
    /// # Panics
    ///
    /// If `offer` does not follow the §9.1 grammar. Use [`ClientHandshake::try_extensions`]
    /// for values that come from user input.
    pub fn extensions(self, offer: impl Into<String>) -> Self {
        match self.try_extensions(offer) {
            Ok(handshake) => handshake,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`ClientHandshake::extensions`], but returns [`HandshakeError::InvalidOffer`]
    /// instead of panicking.
    pub fn try_extensions(mut self, offer: impl Into<String>) -> Result<Self, HandshakeError> {
        let offer = offer.into();
        let value = HeaderValue::try_from(offer.as_str()).map_err(|_| {
            HandshakeError::InvalidOffer(format!("extension offer {offer:?} is not a header value"))
        })?;
        let mut single = HeaderMap::new();
        single.insert(SEC_WEBSOCKET_EXTENSIONS, value.clone());
        let parsed =
            parse_extensions(&single).map_err(|e| HandshakeError::InvalidOffer(e.to_string()))?;
        self.offered_extensions
            .extend(parsed.into_iter().map(|e| e.name));
        self.extension_offers.push(value);
        Ok(self)
    }

    /// Adds a header to the request, e.g. `Origin`, `Authorization`, `Cookie`,
    /// `User-Agent`. Repeating a name sends it repeatedly.
    ///
    /// `Host` replaces the one derived from the URI (useful when connecting by address).
    /// The headers the handshake owns — `Upgrade`, `Connection` and every
    /// `Sec-WebSocket-*` — are ignored here: they are set from the key and from
    /// [`ClientHandshake::protocols`] and [`ClientHandshake::extensions`], and
    /// [`ClientHandshake::validate`] depends on them being exactly that.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        if name == HOST {
            self.host_header = value;
        } else if !is_handshake_header(&name) {
            self.extra.append(name, value);
        }
        self
    }

    /// The host to connect to (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to: the URI's, or 80 (`ws`, `http`) / 443 (`wss`, `https`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the scheme is `wss` or `https`, so the connection must run over TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The request (§4.1): `GET` of the path and query over HTTP/1.1, with `Host`,
    /// `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Key`,
    /// `Sec-WebSocket-Version: 13`, the offered subprotocols and extensions, then the
    /// extra headers.
    pub fn request(&self) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = Uri::from(self.target.clone());
        *request.version_mut() = Version::HTTP_11;
        let headers = request.headers_mut();
        headers.insert(HOST, self.host_header.clone());
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(SEC_WEBSOCKET_KEY, ascii_value(&self.key));
        headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        if !self.protocols.is_empty() {
            headers.insert(
                SEC_WEBSOCKET_PROTOCOL,
                ascii_value(&self.protocols.join(", ")),
            );
        }
        for offer in &self.extension_offers {
            headers.append(SEC_WEBSOCKET_EXTENSIONS, offer.clone());
        }
        for (name, value) in &self.extra {
            headers.append(name, value.clone());
        }
        request
    }

    /// Serializes [`ClientHandshake::request`] onto `dst` as an HTTP/1.1 request head.
    pub fn encode_request(&self, dst: &mut Vec<u8>) {
        let request = self.request();
        encode_head(
            &format!("GET {} HTTP/1.1", self.target),
            request.headers(),
            dst,
        );
    }

    /// Parses an HTTP/1.x response head from the start of `buf`: `Ok(None)` while incomplete
    /// (and `buf` is at most `max_size` bytes), else the response and how many bytes its head
    /// took — bytes after it are already WebSocket frames. More than `max_size` bytes without
    /// the end of the head, or more than 64 header lines, is
    /// [`HandshakeError::HeadersTooLarge`].
    pub fn parse_response(
        buf: &[u8],
        max_size: usize,
    ) -> Result<Option<(Response<()>, usize)>, HandshakeError> {
        let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut lines);
        let window = &buf[..buf.len().min(max_size)];
        let consumed = match parsed.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > max_size => {
                return Err(HandshakeError::HeadersTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadersTooLarge),
            Err(httparse::Error::Version) => return Err(HandshakeError::NotHttp11),
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        };
        let (Some(minor), Some(code)) = (parsed.version, parsed.code) else {
            return Err(HandshakeError::Malformed("incomplete status line".into()));
        };
        let status = StatusCode::from_u16(code)
            .map_err(|_| HandshakeError::Malformed(format!("status {code}")))?;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = if minor == 1 {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        *response.headers_mut() = to_header_map(parsed.headers)?;
        Ok(Some((response, consumed)))
    }

    /// Checks the server's response against §4.1, in the RFC's order: status 101, `Upgrade`
    /// listing `websocket`, `Connection` listing `upgrade`, exactly one
    /// `Sec-WebSocket-Accept` matching the key, accepted extensions all offered, and at most
    /// one subprotocol, which was offered. Any failure means the client MUST fail the
    /// connection.
    pub fn validate(&self, resp: &Response<()>) -> Result<ServerAnswer, HandshakeError> {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(HandshakeError::NotSwitchingProtocols(resp.status()));
        }
        let headers = resp.headers();
        if !header_has_token(headers, UPGRADE, "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !header_has_token(headers, CONNECTION, "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // A repeated accept is as bad as a wrong one: report both as BadAccept.
        let accept =
            single(headers, "sec-websocket-accept").map_err(|_| HandshakeError::BadAccept)?;
        if accept != Some(accept_key(self.key.as_bytes()).as_bytes()) {
            return Err(HandshakeError::BadAccept);
        }
        self.agreement(headers)
    }

    /// The request for an RFC 8441 extended CONNECT over HTTP/2 (§4–5): `CONNECT` of the
    /// absolute URI (`https`/`http`, the authority, the path and query) with
    /// `Sec-WebSocket-Version: 13`, the same subprotocol and extension offers and extra
    /// headers as [`ClientHandshake::request`], and no `Host`, `Upgrade`, `Connection` or
    /// key. The caller sets `:protocol` to
    /// [`CONNECT_PROTOCOL`](super::CONNECT_PROTOCOL) the way its HTTP/2 library wants
    /// (a request extension in `h2` and hyper).
    pub fn connect_request(&self) -> Request<()> {
        let mut request = self.request();
        *request.method_mut() = Method::CONNECT;
        *request.version_mut() = Version::HTTP_2;
        let scheme = if self.secure { "https" } else { "http" };
        let authority = self.host_header.to_str().unwrap_or(&self.host);
        *request.uri_mut() = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(self.target.clone())
            .build()
            .unwrap_or_else(|_| Uri::from(self.target.clone()));
        let headers = request.headers_mut();
        // §5: HTTP/2 has no connection-specific headers, and the key is not used.
        for name in [HOST, UPGRADE, CONNECTION, SEC_WEBSOCKET_KEY] {
            headers.remove(name);
        }
        request
    }

    /// Checks the server's answer to [`ClientHandshake::connect_request`]: a 2xx status
    /// (RFC 8441 §5), then the same extension and subprotocol rules as
    /// [`ClientHandshake::validate`]; there is no accept key over HTTP/2.
    pub fn validate_connect(&self, resp: &Response<()>) -> Result<ServerAnswer, HandshakeError> {
        if !resp.status().is_success() {
            return Err(HandshakeError::ConnectRefused(resp.status()));
        }
        self.agreement(resp.headers())
    }

    /// What the server's headers agree to, checked against the offer: the same on
    /// HTTP/1.1 and HTTP/2.
    fn agreement(&self, headers: &HeaderMap) -> Result<ServerAnswer, HandshakeError> {
        let extensions = parse_extensions(headers)?;
        if let Some(unoffered) = extensions.iter().find(|e| {
            !self
                .offered_extensions
                .iter()
                .any(|offered| offered.eq_ignore_ascii_case(&e.name))
        }) {
            return Err(HandshakeError::UnofferedExtension(unoffered.name.clone()));
        }

        let mut chosen = parse_protocols(headers)?;
        if chosen.len() > 1 {
            return Err(HandshakeError::MultipleProtocols);
        }
        let protocol = chosen.pop();
        if let Some(p) = &protocol {
            if !self.protocols.contains(p) {
                return Err(HandshakeError::UnofferedProtocol(p.clone()));
            }
        }
        Ok(ServerAnswer {
            protocol,
            extensions,
        })
    }
}

/// Headers the handshake sets itself and [`ClientHandshake::header`] therefore ignores.
fn is_handshake_header(name: &HeaderName) -> bool {
    name == UPGRADE || name == CONNECTION || name.as_str().starts_with("sec-websocket-")
}

/// A header value from text known to be visible ASCII (base64, or tokens joined by ", ").
fn ascii_value(ascii: &str) -> HeaderValue {
    HeaderValue::try_from(ascii).expect("tokens and base64 are valid header values")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC's nonce: base64 "dGhlIHNhbXBsZSBub25jZQ==".
    const NONCE: [u8; 16] = *b"the sample nonce";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn client(uri: &str) -> ClientHandshake {
        ClientHandshake::new(&uri.parse().unwrap(), NONCE).unwrap()
    }

    fn response(lines: &[&str]) -> Response<()> {
        let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
        for line in lines {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let (resp, n) = ClientHandshake::parse_response(head.as_bytes(), 8192)
            .unwrap()
            .unwrap();
        assert_eq!(n, head.len());
        resp
    }

    /// The RFC §1.2 answer, plus `extra` lines.
    fn good_response(extra: &[&str]) -> Response<()> {
        let accept = format!("Sec-WebSocket-Accept: {ACCEPT}");
        let mut lines = vec!["Upgrade: websocket", "Connection: Upgrade", accept.as_str()];
        lines.extend_from_slice(extra);
        response(&lines)
    }

    /// RFC 6455 §4.1: the client's opening handshake (request side).
    mod opening_handshake_client_request {
        use super::*;

        #[test]
        fn rfc_sample_request_bytes() {
            let mut out = Vec::new();
            client("ws://server.example.com/chat").encode_request(&mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "GET /chat HTTP/1.1\r\n\
                 host: server.example.com\r\n\
                 upgrade: websocket\r\n\
                 connection: Upgrade\r\n\
                 sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 sec-websocket-version: 13\r\n\
                 \r\n"
            );
        }

        #[test]
        fn host_has_port_only_when_not_default() {
            let cases = [
                ("ws://example.com/", "example.com", 80, false),
                ("ws://example.com:80/", "example.com", 80, false),
                ("ws://example.com:443/", "example.com:443", 443, false),
                ("wss://example.com/", "example.com", 443, true),
                ("wss://example.com:443/", "example.com", 443, true),
                ("wss://example.com:8443/", "example.com:8443", 8443, true),
                ("http://example.com:8080/", "example.com:8080", 8080, false),
                ("https://example.com/", "example.com", 443, true),
                ("WSS://example.com/", "example.com", 443, true),
                ("ws://[::1]:9001/", "[::1]:9001", 9001, false),
                ("ws://user:pw@example.com/", "example.com", 80, false),
            ];
            for (uri, host_header, port, secure) in cases {
                let hs = client(uri);
                assert_eq!(hs.request().headers()["host"], host_header, "{uri}");
                assert_eq!(hs.port(), port, "{uri}");
                assert_eq!(hs.is_secure(), secure, "{uri}");
            }
            assert_eq!(client("ws://[::1]:9001/").host(), "::1");
        }

        #[test]
        fn path_and_query_default_to_slash() {
            for (uri, target) in [
                ("ws://example.com", "/"),
                ("ws://example.com/", "/"),
                ("ws://example.com/a/b?x=1&y", "/a/b?x=1&y"),
                ("ws://example.com?x=1", "/?x=1"),
            ] {
                let request = client(uri).request();
                assert_eq!(request.uri(), target, "{uri}");
                let mut out = Vec::new();
                client(uri).encode_request(&mut out);
                assert!(
                    out.starts_with(format!("GET {target} HTTP/1.1\r\n").as_bytes()),
                    "{uri}"
                );
            }
        }

        #[test]
        fn bad_uris_are_refused() {
            for uri in ["ftp://example.com/", "/chat", "example.com:80"] {
                let parsed: Uri = uri.parse().unwrap();
                assert!(
                    matches!(
                        ClientHandshake::new(&parsed, NONCE),
                        Err(HandshakeError::InvalidUri(_))
                    ),
                    "{uri}"
                );
            }
        }

        #[test]
        fn request_is_what_a_server_accepts() {
            let hs = client("ws://example.com:9000/chat?x=1")
                .protocols(["chat", "superchat"])
                .extensions("permessage-deflate; client_max_window_bits");
            let mut out = Vec::new();
            hs.encode_request(&mut out);
            let (request, n) = crate::handshake::parse_request(&out, 8192)
                .unwrap()
                .unwrap();
            assert_eq!(n, out.len());
            assert_eq!(request.uri(), "/chat?x=1");
            let offer = crate::handshake::validate_request(&request).unwrap();
            assert_eq!(offer.key(), "dGhlIHNhbXBsZSBub25jZQ==");
            assert_eq!(offer.protocols(), ["chat", "superchat"]);
            assert_eq!(offer.extensions()[0].name, "permessage-deflate");
        }

        #[test]
        fn protocols_are_one_header_in_order() {
            let request = client("ws://h/")
                .protocols(["a"])
                .protocols(vec![String::from("b")])
                .request();
            let values: Vec<_> = request
                .headers()
                .get_all("sec-websocket-protocol")
                .iter()
                .collect();
            assert_eq!(values, ["a, b"]);
        }

        #[test]
        fn invalid_protocol_offers() {
            for bad in [vec!["chat room"], vec![""], vec!["a", "a"], vec!["a,b"]] {
                assert!(
                    matches!(
                        client("ws://h/").try_protocols(bad.clone()),
                        Err(HandshakeError::InvalidOffer(_))
                    ),
                    "{bad:?}"
                );
            }
        }

        #[test]
        #[should_panic(expected = "not a token")]
        fn protocols_panics_on_non_token() {
            let _ = client("ws://h/").protocols(["chat room"]);
        }

        #[test]
        fn invalid_extension_offers() {
            for bad in ["permessage-deflate;;", "a\r\nX-Evil: 1", "a b"] {
                assert!(
                    matches!(
                        client("ws://h/").try_extensions(bad),
                        Err(HandshakeError::InvalidOffer(_))
                    ),
                    "{bad:?}"
                );
            }
        }

        #[test]
        fn extra_headers() {
            let request = client("ws://example.com/")
                .header(
                    http::header::ORIGIN,
                    HeaderValue::from_static("http://example.com"),
                )
                .header(http::header::COOKIE, HeaderValue::from_static("a=1"))
                .header(http::header::COOKIE, HeaderValue::from_static("b=2"))
                .header(HOST, HeaderValue::from_static("virtual.example"))
                .header(
                    SEC_WEBSOCKET_KEY,
                    HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA=="),
                )
                .header(UPGRADE, HeaderValue::from_static("h2c"))
                .request();
            let headers = request.headers();
            assert_eq!(headers["origin"], "http://example.com");
            assert_eq!(headers.get_all("cookie").iter().count(), 2);
            assert_eq!(
                headers.get_all("host").iter().collect::<Vec<_>>(),
                ["virtual.example"]
            );
            assert_eq!(
                headers
                    .get_all("sec-websocket-key")
                    .iter()
                    .collect::<Vec<_>>(),
                ["dGhlIHNhbXBsZSBub25jZQ=="]
            );
            assert_eq!(
                headers.get_all("upgrade").iter().collect::<Vec<_>>(),
                ["websocket"]
            );
        }
    }

    /// RFC 6455 §4.1: the client's checks on the server's opening handshake.
    mod opening_handshake_client_validation {
        use super::*;

        #[test]
        fn rfc_sample_response_is_accepted() {
            let answer = client("ws://server.example.com/chat")
                .validate(&good_response(&[]))
                .unwrap();
            assert_eq!(
                answer,
                ServerAnswer {
                    protocol: None,
                    extensions: vec![]
                }
            );
        }

        #[test]
        fn status_must_be_101() {
            let head = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
            let (resp, _) = ClientHandshake::parse_response(head.as_bytes(), 8192)
                .unwrap()
                .unwrap();
            assert_eq!(
                client("ws://h/").validate(&resp),
                Err(HandshakeError::NotSwitchingProtocols(StatusCode::FORBIDDEN))
            );
        }

        #[test]
        fn upgrade_must_be_websocket() {
            let accept = format!("Sec-WebSocket-Accept: {ACCEPT}");
            let resp = response(&["Connection: Upgrade", &accept]);
            assert_eq!(
                client("ws://h/").validate(&resp),
                Err(HandshakeError::MissingUpgrade)
            );
            let resp = response(&["Upgrade: h2c", "Connection: Upgrade", &accept]);
            assert_eq!(
                client("ws://h/").validate(&resp),
                Err(HandshakeError::MissingUpgrade)
            );
            let resp = response(&["Upgrade: WebSocket", "Connection: upgrade", &accept]);
            assert!(client("ws://h/").validate(&resp).is_ok());
        }

        #[test]
        fn connection_must_list_upgrade() {
            let accept = format!("Sec-WebSocket-Accept: {ACCEPT}");
            let resp = response(&["Upgrade: websocket", &accept]);
            assert_eq!(
                client("ws://h/").validate(&resp),
                Err(HandshakeError::MissingConnectionUpgrade)
            );
            let resp = response(&["Upgrade: websocket", "Connection: close", &accept]);
            assert_eq!(
                client("ws://h/").validate(&resp),
                Err(HandshakeError::MissingConnectionUpgrade)
            );
        }

        #[test]
        fn accept_must_match_the_key() {
            let hs = client("ws://h/");
            for lines in [
                vec!["Upgrade: websocket", "Connection: Upgrade"],
                vec![
                    "Upgrade: websocket",
                    "Connection: Upgrade",
                    "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                ],
                vec![
                    "Upgrade: websocket",
                    "Connection: Upgrade",
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                ],
            ] {
                assert_eq!(
                    hs.validate(&response(&lines)),
                    Err(HandshakeError::BadAccept),
                    "{lines:?}"
                );
            }
            // a different key gives a different accept
            let other = ClientHandshake::new(&"ws://h/".parse().unwrap(), [0; 16]).unwrap();
            assert_eq!(
                other.validate(&good_response(&[])),
                Err(HandshakeError::BadAccept)
            );
        }

        #[test]
        fn chosen_protocol_must_have_been_offered() {
            let hs = client("ws://h/").protocols(["chat", "superchat"]);
            let answer = hs
                .validate(&good_response(&["Sec-WebSocket-Protocol: superchat"]))
                .unwrap();
            assert_eq!(answer.protocol.as_deref(), Some("superchat"));
            assert_eq!(hs.validate(&good_response(&[])).unwrap().protocol, None);
            assert_eq!(
                hs.validate(&good_response(&["Sec-WebSocket-Protocol: mqtt"])),
                Err(HandshakeError::UnofferedProtocol("mqtt".into()))
            );
            // exact comparison
            assert_eq!(
                hs.validate(&good_response(&["Sec-WebSocket-Protocol: Chat"])),
                Err(HandshakeError::UnofferedProtocol("Chat".into()))
            );
        }

        #[test]
        fn protocol_without_offer_is_refused() {
            assert_eq!(
                client("ws://h/").validate(&good_response(&["Sec-WebSocket-Protocol: chat"])),
                Err(HandshakeError::UnofferedProtocol("chat".into()))
            );
        }

        #[test]
        fn at_most_one_protocol() {
            let hs = client("ws://h/").protocols(["chat", "superchat"]);
            assert_eq!(
                hs.validate(&good_response(&["Sec-WebSocket-Protocol: chat, superchat"])),
                Err(HandshakeError::MultipleProtocols)
            );
            assert_eq!(
                hs.validate(&good_response(&[
                    "Sec-WebSocket-Protocol: chat",
                    "Sec-WebSocket-Protocol: chat"
                ])),
                Err(HandshakeError::MultipleProtocols)
            );
            assert_eq!(
                hs.validate(&good_response(&["Sec-WebSocket-Protocol: chat superchat"])),
                Err(HandshakeError::InvalidProtocols)
            );
        }

        #[test]
        fn accepted_extensions_must_have_been_offered() {
            let hs =
                client("ws://h/").extensions("permessage-deflate; client_max_window_bits, x-foo");
            let answer = hs
                .validate(&good_response(&[
                    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover",
                ]))
                .unwrap();
            assert_eq!(
                answer.extensions,
                [Extension {
                    name: "permessage-deflate".into(),
                    params: vec![("server_no_context_takeover".into(), None)],
                }]
            );
            assert_eq!(
                hs.validate(&good_response(&["Sec-WebSocket-Extensions: x-bar"])),
                Err(HandshakeError::UnofferedExtension("x-bar".into()))
            );
            assert!(matches!(
                hs.validate(&good_response(&["Sec-WebSocket-Extensions: x-foo;"])),
                Err(HandshakeError::InvalidExtensions(_))
            ));
        }

        #[test]
        fn extension_without_offer_is_refused() {
            assert_eq!(
                client("ws://h/").validate(&good_response(&[
                    "Sec-WebSocket-Extensions: permessage-deflate"
                ])),
                Err(HandshakeError::UnofferedExtension(
                    "permessage-deflate".into()
                ))
            );
        }
    }

    /// Reading the response head off the wire.
    mod response_parsing {
        use super::*;

        const HEAD: &str =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

        #[test]
        fn incomplete_is_none_and_frames_after_the_head_are_left() {
            for cut in 0..HEAD.len() {
                assert!(
                    matches!(
                        ClientHandshake::parse_response(&HEAD.as_bytes()[..cut], 8192),
                        Ok(None)
                    ),
                    "cut {cut}"
                );
            }
            let mut buf = HEAD.as_bytes().to_vec();
            buf.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
            let (resp, n) = ClientHandshake::parse_response(&buf, 8192)
                .unwrap()
                .unwrap();
            assert_eq!(n, HEAD.len());
            assert!(client("ws://h/").validate(&resp).is_ok());
        }

        #[test]
        fn oversized_head() {
            assert!(matches!(
                ClientHandshake::parse_response(HEAD.as_bytes(), 40),
                Err(HandshakeError::HeadersTooLarge)
            ));
            assert!(matches!(
                ClientHandshake::parse_response(&HEAD.as_bytes()[..40], 40),
                Ok(None)
            ));
        }

        #[test]
        fn malformed() {
            assert!(matches!(
                ClientHandshake::parse_response(b"HTTP/1.1 abc Nope\r\n\r\n", 8192),
                Err(HandshakeError::Malformed(_))
            ));
            assert!(matches!(
                ClientHandshake::parse_response(b"HTTP/2 101 Switching Protocols\r\n\r\n", 8192),
                Err(HandshakeError::NotHttp11)
            ));
        }
    }
}
