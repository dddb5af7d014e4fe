//! The server side of the opening handshake (RFC 6455 §4.2): parse the request head, check
//! it, and answer with 101 Switching Protocols or a [`Rejection`].

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::{
    ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};

use super::headers::{
    accept_key, encode_head, header_has_token, parse_extensions, parse_protocols, single,
};
use super::{Extension, HandshakeError};

/// How many header lines a head may have. Each costs a few words of stack while parsing;
/// a request with more is refused with 431, like one that is too long.
const MAX_HEADERS: usize = 64;

/// Parses an HTTP/1.1 request head from the start of `buf`.
///
/// - `Ok(None)`: the head is not complete yet and `buf` is at most `max_size` bytes; read
///   more and call again with the whole buffer.
/// - `Ok(Some((request, consumed)))`: the head took `consumed` bytes. Anything after it is
///   not part of the handshake (an eager client may already have sent frames) and is left to
///   the caller. The request URI is the request-target as sent (path and query).
/// - `Err(rejection)`: not valid HTTP/1.1, more than `max_size` bytes without the end of the
///   head (431), or more than 64 header lines (431). Send [`Rejection::to_bytes`] and close.
///
/// This only parses; [`validate_request`] applies the WebSocket rules.
///
/// ```
/// use switchboard_protocol::handshake::parse_request;
///
/// let head = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
/// assert!(parse_request(&head[..20], 8192)?.is_none()); // incomplete: read more
/// let mut buf = head.to_vec();
/// buf.extend_from_slice(b"\x81\x80\0\0\0\0"); // an eager client's first frame
/// let (request, consumed) = parse_request(&buf, 8192)?.expect("a complete head");
/// assert_eq!(request.uri(), "/chat?room=1");
/// assert_eq!(consumed, head.len()); // the frame is left for the connection
/// let flood = vec![b'G'; 9000]; // no end of head within the limit
/// assert_eq!(parse_request(&flood, 8192).unwrap_err().status(), 431);
/// # Ok::<(), switchboard_protocol::handshake::Rejection>(())
/// ```
#[expect(
    clippy::result_large_err,
    reason = "a refusal happens at most once per connection, and carrying the ready response is its point"
)]
pub fn parse_request(
    buf: &[u8],
    max_size: usize,
) -> Result<Option<(Request<()>, usize)>, Rejection> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut lines);
    // Parse at most `max_size` bytes, so a head that ends just past the limit is refused the
    // same way whether it arrived in one read or many.
    let window = &buf[..buf.len().min(max_size)];
    let consumed = match parsed.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_size => {
            return Err(HandshakeError::HeadersTooLarge.into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadersTooLarge.into()),
        Err(httparse::Error::Version) => return Err(HandshakeError::NotHttp11.into()),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string()).into()),
    };

    // httparse fills every field of a complete request.
    let (Some(method), Some(path), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HandshakeError::Malformed("incomplete request line".into()).into());
    };
    // §4.2.1 item 1: "an HTTP/1.1 or higher GET request". httparse reads only HTTP/1.x.
    if minor != 1 {
        return Err(HandshakeError::NotHttp11.into());
    }
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    let uri = Uri::try_from(path)
        .map_err(|e| HandshakeError::Malformed(format!("request target: {e}")))?;

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = to_header_map(parsed.headers)?;
    Ok(Some((request, consumed)))
}

/// Checks a request against RFC 6455 §4.2.1 and returns what the client offers.
///
/// In order: `GET`, HTTP/1.1, one non-empty `Host`, `Upgrade` listing `websocket`,
/// `Connection` listing `upgrade` (both case-insensitive token lists), exactly one
/// `Sec-WebSocket-Version: 13` (else 426 with `Sec-WebSocket-Version: 13`), exactly one
/// `Sec-WebSocket-Key` that is base64 of 16 bytes, then well-formed
/// `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`.
///
/// The version is checked before the key, unlike the RFC's numbering, so that a client
/// speaking another version is told which one to use (426) rather than that its key is bad.
/// `Origin` (§4.2.1 item 7) is the application's call: read it from the request and refuse
/// with [`Rejection::with_status`].
///
/// ```
/// use switchboard_protocol::handshake::{parse_request, validate_request};
///
/// let buf = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///             Sec-WebSocket-Version: 13\r\n\r\n";
/// let (request, _) = parse_request(buf, 8192)?.expect("a complete head");
/// let offer = validate_request(&request)?;
/// assert_eq!(offer.accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// // A plain GET is not an upgrade: 400, with the reason in the body.
/// let plain = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
/// let (request, _) = parse_request(plain, 8192)?.expect("a complete head");
/// assert_eq!(validate_request(&request).unwrap_err().status(), 400);
/// # Ok::<(), switchboard_protocol::handshake::Rejection>(())
/// ```
#[expect(
    clippy::result_large_err,
    reason = "a refusal happens at most once per connection, and carrying the ready response is its point"
)]
pub fn validate_request(req: &Request<()>) -> Result<ClientOffer, Rejection> {
    validate(req).map_err(Rejection::from)
}

fn validate(req: &Request<()>) -> Result<ClientOffer, HandshakeError> {
    if req.method() != Method::GET {
        return Err(HandshakeError::NotGet(req.method().clone()));
    }
    if req.version() != Version::HTTP_11 {
        return Err(HandshakeError::NotHttp11);
    }
    let headers = req.headers();
    match single(headers, "host")? {
        Some(host) if !host.is_empty() => {}
        _ => return Err(HandshakeError::MissingHost),
    }
    if !header_has_token(headers, UPGRADE, "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !header_has_token(headers, CONNECTION, "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // §11.3.5: "MUST NOT appear more than once in an HTTP request".
    check_version(headers)?;
    // §11.3.1: "MUST NOT appear more than once in an HTTP request".
    let key = single(headers, "sec-websocket-key")?.ok_or(HandshakeError::MissingKey)?;
    // §4.1 item 7: "a randomly selected 16-byte value that has been base64-encoded". The
    // standard engine insists on canonical padding and zero trailing bits, so exactly the 24
    // characters a conforming client produces pass.
    let mut nonce = [0u8; 18];
    match BASE64.decode_slice(key, &mut nonce) {
        Ok(16) => {}
        _ => return Err(HandshakeError::InvalidKey),
    }
    let (protocols, extensions) = offered(headers)?;
    Ok(ClientOffer {
        // base64 is ASCII.
        key: String::from_utf8_lossy(key).into_owned(),
        protocols,
        extensions,
        extended_connect: false,
    })
}

/// The `:protocol` value of an RFC 8441 extended CONNECT that opens a WebSocket (§4).
///
/// ```
/// use switchboard_protocol::handshake::{validate_connect_request, ClientHandshake};
/// use switchboard_protocol::handshake::CONNECT_PROTOCOL;
///
/// let uri: http::Uri = "wss://example.com/chat".parse()?;
/// let client = ClientHandshake::new(&uri, *b"the sample nonce")?;
/// // Sent on an HTTP/2 stream whose `:protocol` is CONNECT_PROTOCOL.
/// let request = client.connect_request();
/// assert!(validate_connect_request(&request, Some(CONNECT_PROTOCOL)).is_ok());
/// assert!(validate_connect_request(&request, Some("webtransport")).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const CONNECT_PROTOCOL: &str = "websocket";

/// Checks an HTTP/2 request against RFC 8441 §4–5: `CONNECT` with `:protocol` (passed as
/// `protocol`: HTTP libraries keep the pseudo-header outside the header map) equal to
/// `websocket`, an `:authority`, and `Sec-WebSocket-Version: 13`. There is no key and no
/// `Upgrade`/`Connection`: the stream itself is the tunnel (§5).
///
/// Subprotocols and extensions are read exactly as for HTTP/1.1, so the same negotiation
/// answers both; [`ClientOffer::response`] then builds a `200` instead of the `101`.
///
/// ```
/// use http::{Method, Request, Version};
/// use switchboard_protocol::handshake::{validate_connect_request, CONNECT_PROTOCOL};
///
/// // The request as an HTTP/2 server hands it over; `:protocol` comes separately.
/// let request = Request::builder()
///     .method(Method::CONNECT)
///     .version(Version::HTTP_2)
///     .uri("https://example.com/chat")
///     .header("sec-websocket-version", "13")
///     .header("sec-websocket-protocol", "chat")
///     .body(())?;
/// let offer = validate_connect_request(&request, Some(CONNECT_PROTOCOL))?;
/// let response = offer.response(offer.select_protocol(&["chat"]), None);
/// assert_eq!(response.status(), 200); // not 101: the stream is the tunnel
/// assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[expect(
    clippy::result_large_err,
    reason = "a refusal happens at most once per stream, and carrying the ready response is its point"
)]
pub fn validate_connect_request(
    req: &Request<()>,
    protocol: Option<&str>,
) -> Result<ClientOffer, Rejection> {
    validate_connect(req, protocol).map_err(Rejection::from)
}

fn validate_connect(
    req: &Request<()>,
    protocol: Option<&str>,
) -> Result<ClientOffer, HandshakeError> {
    let has_authority = req
        .uri()
        .authority()
        .is_some_and(|a| !a.as_str().is_empty())
        || req.headers().contains_key(http::header::HOST);
    if req.method() != Method::CONNECT || protocol != Some(CONNECT_PROTOCOL) || !has_authority {
        return Err(HandshakeError::NotExtendedConnect);
    }
    let headers = req.headers();
    check_version(headers)?;
    let (protocols, extensions) = offered(headers)?;
    Ok(ClientOffer {
        key: String::new(),
        protocols,
        extensions,
        extended_connect: true,
    })
}

/// `Sec-WebSocket-Version: 13`, exactly once (§4.2.1 item 6, §11.3.5).
fn check_version(headers: &HeaderMap) -> Result<(), HandshakeError> {
    match single(headers, "sec-websocket-version")? {
        Some(b"13") => Ok(()),
        other => {
            let sent = other.map(|v| String::from_utf8_lossy(v).into_owned());
            Err(HandshakeError::UnsupportedVersion(sent))
        }
    }
}

/// The subprotocols and extensions a request offers, the same on HTTP/1.1 and HTTP/2.
fn offered(headers: &HeaderMap) -> Result<(Vec<String>, Vec<Extension>), HandshakeError> {
    Ok((parse_protocols(headers)?, parse_extensions(headers)?))
}

/// What a valid upgrade request offers: the key to answer and the client's subprotocols and
/// extensions, in the client's order of preference. Returned by [`validate_request`].
///
/// ```
/// use switchboard_protocol::handshake::{parse_request, validate_request};
///
/// let buf = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat.v1, chat.v2\r\n\r\n";
/// let (request, _) = parse_request(buf, 8192)?.expect("a complete head");
/// let offer = validate_request(&request)?;
/// assert_eq!(offer.protocols(), ["chat.v1", "chat.v2"]);
/// // The server's order of preference decides.
/// let protocol = offer.select_protocol(&["chat.v2", "chat.v1"]);
/// assert_eq!(protocol, Some("chat.v2"));
/// let response = offer.response(protocol, None); // 101, with Sec-WebSocket-Accept
/// assert_eq!(response.headers()["sec-websocket-accept"], offer.accept().as_str());
/// # Ok::<(), switchboard_protocol::handshake::Rejection>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOffer {
    /// `Sec-WebSocket-Key` as sent (already checked to be base64 of 16 bytes).
    key: String,
    /// `Sec-WebSocket-Protocol`, all headers, in order.
    protocols: Vec<String>,
    /// `Sec-WebSocket-Extensions`, all headers, in order; the deflate module picks from them.
    extensions: Vec<Extension>,
    /// An RFC 8441 extended CONNECT (HTTP/2): answered with 200, without a key.
    extended_connect: bool,
}

impl ClientOffer {
    /// The `Sec-WebSocket-Key` the client sent (empty for an extended CONNECT, which has
    /// none).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The subprotocols the client offers, most preferred first.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The extensions the client offers, in the order it sent them.
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    /// Whether the offer came as an RFC 8441 extended CONNECT over HTTP/2
    /// ([`validate_connect_request`]).
    pub fn is_extended_connect(&self) -> bool {
        self.extended_connect
    }

    /// The `Sec-WebSocket-Accept` value that answers [`ClientOffer::key`].
    pub fn accept(&self) -> String {
        accept_key(self.key.as_bytes())
    }

    /// The first of the server's `supported` subprotocols, in the server's order of
    /// preference, that the client offered; `None` if there is none (the connection then
    /// goes ahead without a subprotocol, §4.2.2 item 5.4).
    pub fn select_protocol<S: AsRef<str>>(&self, supported: &[S]) -> Option<&str> {
        supported
            .iter()
            .find_map(|s| {
                self.protocols
                    .iter()
                    .find(|offered| **offered == s.as_ref())
            })
            .map(String::as_str)
    }

    /// The 101 Switching Protocols response (§4.2.2 item 5): `Upgrade: websocket`,
    /// `Connection: Upgrade`, `Sec-WebSocket-Accept`, and when given, `Sec-WebSocket-Protocol`
    /// and `Sec-WebSocket-Extensions`.
    ///
    /// `protocol` must be one of [`ClientOffer::protocols`] — [`ClientOffer::select_protocol`]
    /// picks one. A protocol the client did not offer is left out of the response rather
    /// than sent, because the client would have to fail the connection on it (§4.1). The
    /// `extensions` value comes from the extension's own negotiation (e.g. the deflate
    /// module); one that is not a valid header value is left out as well.
    ///
    /// For an extended CONNECT ([`ClientOffer::is_extended_connect`]) the response is
    /// `200` over HTTP/2 with only the subprotocol and extensions (RFC 8441 §5).
    pub fn response(&self, protocol: Option<&str>, extensions: Option<&str>) -> Response<()> {
        let mut response = Response::new(());
        let headers = response.headers_mut();
        if !self.extended_connect {
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            headers.insert(SEC_WEBSOCKET_ACCEPT, header_value(self.accept()));
        }
        let (status, version) = if self.extended_connect {
            (StatusCode::OK, Version::HTTP_2)
        } else {
            (StatusCode::SWITCHING_PROTOCOLS, Version::HTTP_11)
        };
        *response.status_mut() = status;
        *response.version_mut() = version;
        let headers = response.headers_mut();
        let offered = protocol.filter(|p| self.protocols.iter().any(|offered| offered == p));
        if let Some(value) = offered.and_then(|p| HeaderValue::from_str(p).ok()) {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
        if let Some(value) = extensions.and_then(|e| HeaderValue::from_str(e).ok()) {
            headers.insert(SEC_WEBSOCKET_EXTENSIONS, value);
        }
        response
    }
}

/// A refused handshake: why, and the HTTP response that says so. Send
/// [`Rejection::to_bytes`], then close the connection.
///
/// The response has the error's status, `Connection: close`, a `text/plain` body of one line
/// (the error's `Display` and `\n`) with its `Content-Length`, plus `Sec-WebSocket-Version:
/// 13` on a 426 (§4.4) and `Allow: GET` on a 405 (RFC 7231 §6.5.5).
///
/// ```
/// use http::StatusCode;
/// use switchboard_protocol::handshake::Rejection;
///
/// // The application's own refusal, e.g. of an Origin it does not trust (RFC 6455 §4.2.1).
/// let rejection = Rejection::with_status(StatusCode::FORBIDDEN, "origin not allowed");
/// assert_eq!(rejection.status(), StatusCode::FORBIDDEN);
/// let reply = rejection.to_bytes(); // write it, then close the connection
/// assert!(reply.starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
/// assert!(reply.ends_with(b"\r\n\r\norigin not allowed\n"));
/// ```
#[derive(Debug)]
pub struct Rejection {
    /// Why the handshake was refused.
    pub error: HandshakeError,
    /// The response to send.
    pub response: Response<String>,
}

impl Rejection {
    /// A rejection with an explicit status; see also `From<HandshakeError>`, which takes
    /// the status from [`HandshakeError::status`].
    pub fn new(status: StatusCode, error: HandshakeError) -> Self {
        // Keep the body to one line even if a reason was given with line breaks.
        let mut body: String = error
            .to_string()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        body.push('\n');

        let mut response = Response::new(String::new());
        *response.status_mut() = status;
        *response.version_mut() = Version::HTTP_11;
        let headers = response.headers_mut();
        if status == StatusCode::UPGRADE_REQUIRED {
            // §4.4: tell the client which version(s) we speak.
            headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(ALLOW, HeaderValue::from_static("GET"));
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        // After a refused upgrade the byte stream may hold anything; do not reuse it.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        *response.body_mut() = body;
        Rejection { error, response }
    }

    /// The application's own refusal with any status and a one-line reason, e.g. 403 for an
    /// `Origin` it does not trust or 404 for an unknown path.
    pub fn with_status(status: StatusCode, reason: &str) -> Self {
        let error = HandshakeError::Refused {
            status,
            reason: reason.to_owned(),
        };
        Rejection::new(status, error)
    }

    /// The status of [`Rejection::response`].
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The response serialized as HTTP/1.1: status line, headers, empty line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.response.body().len());
        encode_head(
            &status_line(self.response.status()),
            self.response.headers(),
            &mut out,
        );
        out.extend_from_slice(self.response.body().as_bytes());
        out
    }
}

impl From<HandshakeError> for Rejection {
    fn from(error: HandshakeError) -> Self {
        Rejection::new(error.status(), error)
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "handshake refused with {}: {}",
            self.response.status(),
            self.error
        )
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Serializes a response head as HTTP/1.1 (`HTTP/1.1 101 Switching Protocols\r\n`, the
/// headers, the empty line) onto `dst`. The response's own version is ignored: the
/// handshake is always HTTP/1.1.
///
/// ```
/// use http::{Response, StatusCode};
/// use switchboard_protocol::handshake::encode_response;
///
/// let response = Response::builder()
///     .status(StatusCode::SWITCHING_PROTOCOLS)
///     .header("upgrade", "websocket")
///     .header("connection", "Upgrade")
///     .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
///     .body(())?;
/// let mut out = Vec::new();
/// encode_response(&response, &mut out);
/// assert_eq!(
///     out,
///     b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
///       sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
/// );
/// # Ok::<(), http::Error>(())
/// ```
pub fn encode_response(resp: &Response<()>, dst: &mut Vec<u8>) {
    encode_head(&status_line(resp.status()), resp.headers(), dst);
}

fn status_line(status: StatusCode) -> String {
    format!(
        "HTTP/1.1 {} {}",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    )
}

/// Copies httparse's borrowed headers into an owned map, keeping repeats and their order.
pub(super) fn to_header_map(lines: &[httparse::Header<'_>]) -> Result<HeaderMap, HandshakeError> {
    let mut map = HeaderMap::with_capacity(lines.len());
    for line in lines {
        let name = HeaderName::from_bytes(line.name.as_bytes()).map_err(|_| {
            HandshakeError::Malformed(format!("invalid header name {:?}", line.name))
        })?;
        let value = HeaderValue::from_bytes(line.value).map_err(|_| {
            HandshakeError::Malformed(format!("invalid value for header {}", line.name))
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// A header value from text known to be visible ASCII (base64 output).
fn header_value(ascii: String) -> HeaderValue {
    HeaderValue::try_from(ascii).expect("base64 output is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request of RFC 6455 §1.2/§4.1, minus Origin.
    const SAMPLE: &str = "GET /chat?room=1 HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    fn parse(head: &str) -> Request<()> {
        let (req, n) = parse_request(head.as_bytes(), 8192)
            .expect("parses")
            .expect("complete");
        assert_eq!(n, head.len());
        req
    }

    /// SAMPLE with header `name` removed and `extra` lines added before the empty line.
    fn sample_with(without: &[&str], extra: &[&str]) -> String {
        let mut head = String::new();
        for line in SAMPLE.split("\r\n").filter(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap_or("");
            if !without.iter().any(|w| w.eq_ignore_ascii_case(name)) {
                head.push_str(line);
                head.push_str("\r\n");
            }
        }
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head
    }

    fn refused(head: &str) -> Rejection {
        validate_request(&parse(head)).expect_err("must be refused")
    }

    fn assert_refused(head: &str, error: HandshakeError, status: u16) {
        let rejection = refused(head);
        assert_eq!(rejection.error, error, "{head}");
        assert_eq!(rejection.response.status().as_u16(), status, "{head}");
    }

    /// RFC 6455 §4.2.1: reading the client's opening handshake.
    mod opening_handshake_server {
        use super::*;

        #[test]
        fn rfc_sample_is_accepted() {
            let req = parse(SAMPLE);
            assert_eq!(req.method(), Method::GET);
            assert_eq!(req.uri(), "/chat?room=1");
            assert_eq!(req.version(), Version::HTTP_11);
            let offer = validate_request(&req).expect("valid");
            assert_eq!(offer.key(), "dGhlIHNhbXBsZSBub25jZQ==");
            assert!(offer.protocols().is_empty());
            assert!(offer.extensions().is_empty());
        }

        #[test]
        fn item_1_method_must_be_get() {
            let head = SAMPLE.replacen("GET", "POST", 1);
            let rejection = refused(&head);
            assert_eq!(rejection.error, HandshakeError::NotGet(Method::POST));
            assert_eq!(rejection.status(), StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(rejection.response.headers()["allow"], "GET");
        }

        #[test]
        fn item_1_http_1_0_is_refused_when_parsing() {
            let head = SAMPLE.replacen("HTTP/1.1", "HTTP/1.0", 1);
            let rejection = parse_request(head.as_bytes(), 8192).expect_err("refused");
            assert_eq!(rejection.error, HandshakeError::NotHttp11);
            assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
        }

        #[test]
        fn item_1_http_1_0_is_refused_when_validating() {
            let mut req = parse(SAMPLE);
            *req.version_mut() = Version::HTTP_10;
            assert_eq!(
                validate_request(&req).unwrap_err().error,
                HandshakeError::NotHttp11
            );
        }

        #[test]
        fn item_1_other_protocol_versions_are_not_http_1_1() {
            let head = SAMPLE.replacen("HTTP/1.1", "HTTP/2.0", 1);
            let rejection = parse_request(head.as_bytes(), 8192).expect_err("refused");
            assert_eq!(rejection.error, HandshakeError::NotHttp11);
        }

        #[test]
        fn item_2_host_required_once_and_non_empty() {
            assert_refused(
                &sample_with(&["host"], &[]),
                HandshakeError::MissingHost,
                400,
            );
            assert_refused(
                &sample_with(&["host"], &["Host:"]),
                HandshakeError::MissingHost,
                400,
            );
            assert_refused(
                &sample_with(&[], &["Host: other.example.com"]),
                HandshakeError::DuplicateHeader("host"),
                400,
            );
        }

        #[test]
        fn item_3_upgrade_must_list_websocket() {
            assert_refused(
                &sample_with(&["upgrade"], &[]),
                HandshakeError::MissingUpgrade,
                400,
            );
            assert_refused(
                &sample_with(&["upgrade"], &["Upgrade: h2c"]),
                HandshakeError::MissingUpgrade,
                400,
            );
            for ok in [
                "Upgrade: WebSocket",
                "Upgrade: websocket",
                "Upgrade: h2c, websocket",
            ] {
                validate_request(&parse(&sample_with(&["upgrade"], &[ok]))).expect(ok);
            }
            // A list split over two header lines.
            validate_request(&parse(&sample_with(
                &["upgrade"],
                &["Upgrade: h2c", "Upgrade: websocket"],
            )))
            .expect("duplicated Upgrade");
        }

        #[test]
        fn item_4_connection_must_list_upgrade() {
            assert_refused(
                &sample_with(&["connection"], &[]),
                HandshakeError::MissingConnectionUpgrade,
                400,
            );
            assert_refused(
                &sample_with(&["connection"], &["Connection: keep-alive"]),
                HandshakeError::MissingConnectionUpgrade,
                400,
            );
            for ok in [
                "Connection: keep-alive, Upgrade",
                "Connection: upgrade",
                "Connection: UPGRADE",
            ] {
                validate_request(&parse(&sample_with(&["connection"], &[ok]))).expect(ok);
            }
            validate_request(&parse(&sample_with(
                &["connection"],
                &["Connection: keep-alive", "Connection: Upgrade"],
            )))
            .expect("duplicated Connection");
        }

        #[test]
        fn item_5_key_required() {
            assert_refused(
                &sample_with(&["sec-websocket-key"], &[]),
                HandshakeError::MissingKey,
                400,
            );
        }

        #[test]
        fn item_5_key_must_be_base64_of_16_bytes() {
            for bad in [
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA",   // unpadded
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",     // 15 bytes
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA", // 18 bytes
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAA", // 21 bytes, too long
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAB==", // non-zero trailing bits
                "Sec-WebSocket-Key: AAAAAAAAAAAA AAAAAAAAAA==", // not base64
                "Sec-WebSocket-Key: !AAAAAAAAAAAAAAAAAAAAA==", // not base64
                "Sec-WebSocket-Key:",                          // empty
            ] {
                assert_refused(
                    &sample_with(&["sec-websocket-key"], &[bad]),
                    HandshakeError::InvalidKey,
                    400,
                );
            }
        }

        #[test]
        fn item_5_key_must_not_repeat() {
            assert_refused(
                &sample_with(&[], &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]),
                HandshakeError::DuplicateHeader("sec-websocket-key"),
                400,
            );
        }

        #[test]
        fn item_6_version_8_gets_426_with_version_13() {
            let rejection = refused(&sample_with(
                &["sec-websocket-version"],
                &["Sec-WebSocket-Version: 8"],
            ));
            assert_eq!(
                rejection.error,
                HandshakeError::UnsupportedVersion(Some("8".into()))
            );
            assert_eq!(rejection.status(), StatusCode::UPGRADE_REQUIRED);
            assert_eq!(rejection.response.headers()["sec-websocket-version"], "13");
            let bytes = rejection.to_bytes();
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
                "{text}"
            );
            assert!(text.contains("\r\nsec-websocket-version: 13\r\n"), "{text}");
        }

        #[test]
        fn item_6_version_missing_gets_426() {
            let rejection = refused(&sample_with(&["sec-websocket-version"], &[]));
            assert_eq!(rejection.error, HandshakeError::UnsupportedVersion(None));
            assert_eq!(rejection.response.headers()["sec-websocket-version"], "13");
        }

        #[test]
        fn item_6_version_repeated_is_refused() {
            assert_refused(
                &sample_with(&[], &["Sec-WebSocket-Version: 13"]),
                HandshakeError::DuplicateHeader("sec-websocket-version"),
                400,
            );
        }

        #[test]
        fn item_6_version_is_checked_before_the_key() {
            let head = sample_with(
                &["sec-websocket-version", "sec-websocket-key"],
                &["Sec-WebSocket-Version: 7"],
            );
            assert_eq!(refused(&head).status(), StatusCode::UPGRADE_REQUIRED);
        }

        #[test]
        fn item_8_protocols_from_all_headers() {
            let head = sample_with(
                &[],
                &[
                    "Sec-WebSocket-Protocol: chat, superchat",
                    "Sec-WebSocket-Protocol: v3",
                ],
            );
            let offer = validate_request(&parse(&head)).unwrap();
            assert_eq!(offer.protocols(), ["chat", "superchat", "v3"]);
        }

        #[test]
        fn item_8_bad_protocols_are_refused() {
            assert_refused(
                &sample_with(&[], &["Sec-WebSocket-Protocol: chat room"]),
                HandshakeError::InvalidProtocols,
                400,
            );
        }

        #[test]
        fn item_9_extensions_from_all_headers() {
            let head = sample_with(
                &[],
                &[
                    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
                    "Sec-WebSocket-Extensions: x-foo",
                ],
            );
            let offer = validate_request(&parse(&head)).unwrap();
            let names: Vec<_> = offer.extensions().iter().map(|e| e.name.as_str()).collect();
            assert_eq!(names, ["permessage-deflate", "x-foo"]);
            assert_eq!(
                offer.extensions()[0].params,
                [("client_max_window_bits".to_string(), None)]
            );
        }

        #[test]
        fn item_9_bad_extensions_are_refused() {
            let rejection = refused(&sample_with(
                &[],
                &["Sec-WebSocket-Extensions: permessage-deflate;;"],
            ));
            assert!(matches!(
                rejection.error,
                HandshakeError::InvalidExtensions(_)
            ));
            assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
        }

        #[test]
        fn header_names_are_case_insensitive() {
            let head = "GET / HTTP/1.1\r\nhost: h\r\nUPGRADE: websocket\r\nconnection: upgrade\r\n\
                        sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n";
            validate_request(&parse(head)).expect("names in any case");
        }

        #[test]
        fn extra_headers_are_kept() {
            let req = parse(&sample_with(
                &[],
                &["Origin: http://example.com", "Cookie: a=1"],
            ));
            assert_eq!(req.headers()["origin"], "http://example.com");
            validate_request(&req).expect("valid");
        }
    }

    /// Reading the head off the wire: completeness, limits, leftovers.
    mod request_parsing {
        use super::*;

        #[test]
        fn incomplete_head_is_none() {
            for cut in [0, 1, 10, SAMPLE.len() - 2, SAMPLE.len() - 1] {
                assert!(
                    parse_request(&SAMPLE.as_bytes()[..cut], 8192)
                        .unwrap()
                        .is_none(),
                    "cut {cut}"
                );
            }
        }

        #[test]
        fn bytes_after_the_head_are_not_consumed() {
            let mut buf = SAMPLE.as_bytes().to_vec();
            // an eager client's first masked frame
            buf.extend_from_slice(&[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ]);
            let (_, consumed) = parse_request(&buf, 8192).unwrap().unwrap();
            assert_eq!(consumed, SAMPLE.len());
        }

        #[test]
        fn oversized_head_is_431() {
            let filler = format!("X-Filler: {}", "a".repeat(200));
            let head = sample_with(&[], &[&filler]);
            // complete within the limit: fine
            assert!(parse_request(head.as_bytes(), head.len())
                .unwrap()
                .is_some());
            // exactly at the limit but not complete yet: wait for more
            assert!(parse_request(&head.as_bytes()[..100], 100)
                .unwrap()
                .is_none());
            // past the limit without the end of the head: refuse
            let rejection = parse_request(head.as_bytes(), 100).unwrap_err();
            assert_eq!(rejection.error, HandshakeError::HeadersTooLarge);
            assert_eq!(
                rejection.status(),
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            );
            assert_eq!(
                parse_request(&head.as_bytes()[..101], 100)
                    .unwrap_err()
                    .error,
                HandshakeError::HeadersTooLarge
            );
            // a complete head that ends one byte past the limit
            assert_eq!(
                parse_request(head.as_bytes(), head.len() - 1)
                    .unwrap_err()
                    .error,
                HandshakeError::HeadersTooLarge
            );
        }

        #[test]
        fn too_many_headers_is_431() {
            let lines: Vec<String> = (0..MAX_HEADERS).map(|i| format!("X-{i}: 1")).collect();
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let head = sample_with(&[], &lines);
            let rejection = parse_request(head.as_bytes(), 1 << 20).unwrap_err();
            assert_eq!(
                rejection.status(),
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            );
        }

        #[test]
        fn garbage_is_malformed_400() {
            let tls_client_hello: &[u8] = &[
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ];
            for bad in [
                &b"GET /chat HTTP/1.1\r\nHost example.com\r\n\r\n"[..],
                tls_client_hello,
            ] {
                let rejection = parse_request(bad, 8192).unwrap_err();
                assert!(
                    matches!(
                        rejection.error,
                        HandshakeError::Malformed(_) | HandshakeError::NotHttp11
                    ),
                    "{bad:?}: {:?}",
                    rejection.error
                );
                assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
            }
        }

        #[test]
        fn absolute_form_target_is_kept_as_sent() {
            let req = parse(&SAMPLE.replacen("/chat?room=1", "http://server.example.com/chat", 1));
            assert_eq!(req.uri(), "http://server.example.com/chat");
        }

        #[test]
        fn duplicate_headers_are_all_kept() {
            let req = parse(&sample_with(&[], &["X-A: 1", "X-A: 2"]));
            let values: Vec<_> = req.headers().get_all("x-a").iter().collect();
            assert_eq!(values, ["1", "2"]);
        }
    }

    /// RFC 6455 §4.2.2: the server's opening handshake.
    mod server_response {
        use super::*;

        fn offer(extra: &[&str]) -> ClientOffer {
            validate_request(&parse(&sample_with(&[], extra))).unwrap()
        }

        #[test]
        fn rfc_sample_accept() {
            let response = offer(&[]).response(None, None);
            assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
            assert_eq!(
                response.headers()["sec-websocket-accept"],
                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
            );
            assert_eq!(response.headers()["upgrade"], "websocket");
            assert_eq!(response.headers()["connection"], "Upgrade");
            assert!(!response.headers().contains_key("sec-websocket-protocol"));
            assert!(!response.headers().contains_key("sec-websocket-extensions"));
        }

        #[test]
        fn encoded_response_bytes() {
            let mut out = Vec::new();
            encode_response(&offer(&[]).response(None, None), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "HTTP/1.1 101 Switching Protocols\r\n\
                 upgrade: websocket\r\n\
                 connection: Upgrade\r\n\
                 sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
                 \r\n"
            );
        }

        #[test]
        fn chosen_protocol_and_extensions() {
            let offer = offer(&["Sec-WebSocket-Protocol: chat, superchat"]);
            let response = offer.response(
                Some("superchat"),
                Some("permessage-deflate; server_no_context_takeover"),
            );
            assert_eq!(response.headers()["sec-websocket-protocol"], "superchat");
            assert_eq!(
                response.headers()["sec-websocket-extensions"],
                "permessage-deflate; server_no_context_takeover"
            );
        }

        #[test]
        fn unoffered_protocol_is_left_out() {
            let offer = offer(&["Sec-WebSocket-Protocol: chat"]);
            let response = offer.response(Some("mqtt"), None);
            assert!(!response.headers().contains_key("sec-websocket-protocol"));
            let response = offer.response(Some("chat\r\nX: y"), Some("bad\r\nvalue"));
            assert!(!response.headers().contains_key("sec-websocket-protocol"));
            assert!(!response.headers().contains_key("sec-websocket-extensions"));
        }

        #[test]
        fn select_protocol_uses_server_preference() {
            let offer = offer(&["Sec-WebSocket-Protocol: a, b, c"]);
            assert_eq!(offer.select_protocol(&["c", "b"]), Some("c"));
            assert_eq!(offer.select_protocol(&["x", "b"]), Some("b"));
            assert_eq!(offer.select_protocol(&["x"]), None);
            assert_eq!(offer.select_protocol::<&str>(&[]), None);
            // exact comparison
            assert_eq!(offer.select_protocol(&["A"]), None);
        }
    }

    /// Refusals (§4.2.2: "an appropriate HTTP error code"; §4.4 for the version).
    mod rejections {
        use super::*;

        #[test]
        fn body_is_the_reason_on_one_line() {
            let rejection = refused(&sample_with(&["host"], &[]));
            assert_eq!(rejection.response.body(), "missing Host header\n");
            assert_eq!(rejection.response.headers()["content-length"], "20");
            assert_eq!(rejection.response.headers()["connection"], "close");
            assert_eq!(
                rejection.response.headers()["content-type"],
                "text/plain; charset=utf-8"
            );
        }

        #[test]
        fn serialized() {
            let bytes =
                Rejection::with_status(StatusCode::FORBIDDEN, "origin not allowed").to_bytes();
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                "HTTP/1.1 403 Forbidden\r\n\
                 content-type: text/plain; charset=utf-8\r\n\
                 content-length: 19\r\n\
                 connection: close\r\n\
                 \r\n\
                 origin not allowed\n"
            );
        }

        #[test]
        fn application_refusal_keeps_status_and_reason() {
            let rejection =
                Rejection::with_status(StatusCode::NOT_FOUND, "no such endpoint\r\nX-Evil: 1");
            assert_eq!(rejection.status(), StatusCode::NOT_FOUND);
            assert_eq!(rejection.error.status(), StatusCode::NOT_FOUND);
            assert_eq!(rejection.response.body(), "no such endpoint  X-Evil: 1\n");
            assert!(!rejection.response.headers().contains_key("x-evil"));
        }

        #[test]
        fn serialized_rejection_parses_back() {
            let bytes = refused(&sample_with(
                &["sec-websocket-version"],
                &["Sec-WebSocket-Version: 8"],
            ))
            .to_bytes();
            let mut lines = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut lines);
            let httparse::Status::Complete(n) = response.parse(&bytes).unwrap() else {
                panic!("incomplete");
            };
            assert_eq!(response.code, Some(426));
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name == "content-length")
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            assert_eq!(bytes.len() - n, length);
        }
    }

    /// Any split of a valid head is incomplete until the last byte (cancel safety of the
    /// caller's read loop depends on it).
    mod split_invariance {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn every_strict_prefix_is_incomplete(
                extra in proptest::collection::vec("[a-z]{1,8}: [ -~]{0,20}", 0..6),
                tail in proptest::collection::vec(any::<u8>(), 0..16),
            ) {
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                let head = sample_with(&[], &extra);
                let full = parse_request(head.as_bytes(), 8192).unwrap().unwrap();
                prop_assert_eq!(full.1, head.len());
                for cut in 0..head.len() {
                    prop_assert!(parse_request(&head.as_bytes()[..cut], 8192).unwrap().is_none(), "cut {}", cut);
                }
                let mut buf = head.clone().into_bytes();
                buf.extend_from_slice(&tail);
                let again = parse_request(&buf, 8192).unwrap().unwrap();
                prop_assert_eq!(again.1, full.1);
                prop_assert_eq!(again.0.method(), full.0.method());
                prop_assert_eq!(again.0.uri(), full.0.uri());
                prop_assert_eq!(again.0.headers(), full.0.headers());
                prop_assert_eq!(
                    validate_request(&again.0).map_err(|r| r.error),
                    validate_request(&full.0).map_err(|r| r.error)
                );
            }
        }
    }
}
