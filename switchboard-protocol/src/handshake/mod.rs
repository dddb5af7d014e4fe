//! The opening handshake (RFC 6455 §4): the server validates a request and builds the
//! response or a rejection; the client builds a request and validates the response.
//!
//! Everything here is sans-I/O: bytes and [`http`] types in, bytes and `http` types out. The
//! client's key is passed in, so there is no randomness either.
//!
//! # Server
//!
//! ```
//! use switchboard_protocol::handshake::{encode_response, parse_request, validate_request};
//!
//! let buf = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
//!             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n";
//! let reply = match parse_request(buf, 8192) {
//!     Ok(None) => unreachable!("read more bytes and call again"),
//!     Ok(Some((request, consumed))) => {
//!         // bytes after `consumed` are the first WebSocket frames, if the client was eager
//!         assert_eq!(consumed, buf.len());
//!         match validate_request(&request) {
//!             Ok(offer) => {
//!                 let protocol = offer.select_protocol(&["superchat"]);
//!                 let mut out = Vec::new();
//!                 encode_response(&offer.response(protocol, None), &mut out);
//!                 out
//!             }
//!             Err(rejection) => rejection.to_bytes(), // then close the connection
//!         }
//!     }
//!     Err(rejection) => rejection.to_bytes(),
//! };
//! assert!(reply.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! ```
//!
//! # Client
//!
//! ```
//! use switchboard_protocol::handshake::ClientHandshake;
//!
//! let uri = "ws://example.com/chat".parse().unwrap();
//! let handshake = ClientHandshake::new(&uri, *b"the sample nonce")?.protocols(["chat"]);
//! let mut out = Vec::new();
//! handshake.encode_request(&mut out);
//! // … write `out`, read the reply into `buf` …
//! # let buf = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//! #             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
//! let (response, consumed) = ClientHandshake::parse_response(buf, 8192)?.expect("complete");
//! let answer = handshake.validate(&response)?;
//! assert_eq!(answer.protocol.as_deref(), Some("chat"));
//! # Ok::<(), switchboard_protocol::handshake::HandshakeError>(())
//! ```

mod client;
mod headers;
mod server;

pub use client::{ClientHandshake, ServerAnswer};
pub use headers::{
    accept_key, header_has_token, is_token, parse_extensions, parse_protocols, GUID,
};
pub use server::{
    encode_response, parse_request, validate_connect_request, validate_request, ClientOffer,
    Rejection, CONNECT_PROTOCOL,
};

use http::{Method, StatusCode};
use thiserror::Error;

/// One entry of a `Sec-WebSocket-Extensions` header: a name and its parameters (§9.1).
///
/// ```
/// use switchboard_protocol::deflate::DeflateConfig;
/// use switchboard_protocol::handshake::Extension;
///
/// // One offer: `Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits`.
/// let offer = Extension {
///     name: "permessage-deflate".to_owned(),
///     params: vec![("client_max_window_bits".to_owned(), None)],
/// };
/// let accepted = DeflateConfig::default().server_accept(&[offer])?;
/// let (_params, response) = accepted.expect("a well-formed offer is accepted");
/// assert_eq!(response, "permessage-deflate");
/// # Ok::<(), switchboard_protocol::deflate::NegotiationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order; a parameter without `=value` has `None`.
    pub params: Vec<(String, Option<String>)>,
}

/// Why an opening handshake failed: one variant per rule of RFC 6455 §4.
///
/// The first group is what a server finds wrong with a request; [`HandshakeError::status`]
/// maps each to the HTTP status of the refusal, and a [`Rejection`] carries the response
/// already built. The second group is what a client finds wrong with a response (§4.1: the
/// client "MUST _Fail the WebSocket Connection_"). A few, such as [`HandshakeError::Malformed`]
/// and [`HandshakeError::HeadersTooLarge`], can happen on either side.
///
/// ```
/// use switchboard_protocol::handshake::{ClientHandshake, HandshakeError};
///
/// let uri: http::Uri = "ws://example.com/chat".parse().unwrap();
/// let handshake = ClientHandshake::new(&uri, *b"the sample nonce")?;
/// let reply = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
/// let (response, _) = ClientHandshake::parse_response(reply, 8192)?.expect("a complete head");
/// match handshake.validate(&response) {
///     Err(HandshakeError::NotSwitchingProtocols(status)) => assert_eq!(status, 403),
///     other => panic!("expected a refusal, got {other:?}"),
/// }
/// # Ok::<(), HandshakeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    // ----- server side: the request (§4.2.1) -----
    /// The request method is not `GET` (§4.2.1 item 1).
    #[error("method {0} is not GET")]
    NotGet(Method),
    /// The request is not HTTP/1.1 (§4.2.1 item 1).
    #[error("the WebSocket handshake needs HTTP/1.1")]
    NotHttp11,
    /// No `Host` header, or an empty one (§4.2.1 item 2).
    #[error("missing Host header")]
    MissingHost,
    /// The `Upgrade` header does not list `websocket` (§4.2.1 item 3; §4.1 on the client).
    #[error("Upgrade header does not list websocket")]
    MissingUpgrade,
    /// The `Connection` header does not list `upgrade` (§4.2.1 item 4; §4.1 on the client).
    #[error("Connection header does not list upgrade")]
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` header (§4.2.1 item 5).
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    /// `Sec-WebSocket-Key` is not the base64 encoding of exactly 16 bytes (§4.2.1 item 5).
    #[error("Sec-WebSocket-Key is not base64 of 16 bytes")]
    InvalidKey,
    /// `Sec-WebSocket-Version` is missing (`None`) or not 13 (§4.2.1 item 6). Answered with
    /// 426 and `Sec-WebSocket-Version: 13` (§4.4).
    #[error("unsupported WebSocket version {}, only 13 is supported", .0.as_deref().unwrap_or("(none)"))]
    UnsupportedVersion(Option<String>),
    /// A header that must appear at most once appeared more often (§11.3.1, §11.3.5; RFC 7230
    /// §5.4 for `Host`). Holds the header name.
    #[error("{0} header appears more than once")]
    DuplicateHeader(&'static str),
    /// The request (or response) head exceeds the size limit or the header count limit.
    #[error("handshake headers too large")]
    HeadersTooLarge,
    /// The head is not valid HTTP/1.x; holds the parser's reason.
    #[error("malformed HTTP: {0}")]
    Malformed(String),
    /// `Sec-WebSocket-Extensions` does not follow §9.1; holds the reason.
    #[error("invalid Sec-WebSocket-Extensions: {0}")]
    InvalidExtensions(String),
    /// `Sec-WebSocket-Protocol` is not a comma-separated list of tokens (§4.1 item 10).
    #[error("invalid Sec-WebSocket-Protocol: not a list of tokens")]
    InvalidProtocols,
    /// An HTTP/2 request that is not an RFC 8441 extended CONNECT with `:protocol =
    /// websocket` (§4, §5): another method, another `:protocol`, or no `:authority`.
    #[error("not an extended CONNECT for websocket (RFC 8441)")]
    NotExtendedConnect,
    /// The application refused the handshake, e.g. 403 for an unwelcome `Origin` (§4.2.2
    /// allows any status). Built by [`Rejection::with_status`].
    #[error("{reason}")]
    Refused {
        /// The status to answer with.
        status: StatusCode,
        /// A one-line reason for the response body.
        reason: String,
    },

    // ----- client side: the response (§4.1) -----
    /// The client URI is not an absolute `ws`, `wss`, `http` or `https` URI with a host.
    #[error("invalid WebSocket URI: {0}")]
    InvalidUri(String),
    /// A subprotocol or extension offer the client was asked to send is not valid in a header.
    #[error("invalid client offer: {0}")]
    InvalidOffer(String),
    /// The server answered with another status than 101 (§4.1: "handle the response per
    /// HTTP procedures", which for us means giving up).
    #[error("server answered {0} instead of 101 Switching Protocols")]
    NotSwitchingProtocols(StatusCode),
    /// The server answered an RFC 8441 extended CONNECT with a status other than 2xx
    /// (§5: success is any 2xx).
    #[error("server answered {0} to the extended CONNECT")]
    ConnectRefused(StatusCode),
    /// `Sec-WebSocket-Accept` is missing or does not match the key that was sent (§4.1).
    #[error("Sec-WebSocket-Accept is missing or does not match the key")]
    BadAccept,
    /// The server chose a subprotocol the client did not offer (§4.1).
    #[error("server chose subprotocol {0:?}, which was not offered")]
    UnofferedProtocol(String),
    /// The server's `Sec-WebSocket-Protocol` names more than one subprotocol (§4.2.2: "a
    /// single value").
    #[error("server chose more than one subprotocol")]
    MultipleProtocols,
    /// The server accepted an extension the client did not offer (§4.1).
    #[error("server accepted extension {0:?}, which was not offered")]
    UnofferedExtension(String),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with. This is the only place that decides
    /// it; [`Rejection`] uses it.
    ///
    /// 405 for a method other than `GET` (with `Allow: GET`), 426 for the version (with
    /// `Sec-WebSocket-Version: 13`), 431 for an oversized head, the application's own status
    /// for [`HandshakeError::Refused`], and 400 for everything else. Client-side errors are
    /// never sent; they map to 400 only so that the function is total.
    pub fn status(&self) -> StatusCode {
        use HandshakeError::*;
        match self {
            NotGet(_) => StatusCode::METHOD_NOT_ALLOWED,
            UnsupportedVersion(_) => StatusCode::UPGRADE_REQUIRED,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refused { status, .. } => *status,
            NotHttp11
            | MissingHost
            | MissingUpgrade
            | MissingConnectionUpgrade
            | MissingKey
            | InvalidKey
            | DuplicateHeader(_)
            | Malformed(_)
            | InvalidExtensions(_)
            | InvalidProtocols
            | InvalidUri(_)
            | InvalidOffer(_)
            | NotSwitchingProtocols(_)
            | NotExtendedConnect
            | ConnectRefused(_)
            | BadAccept
            | UnofferedProtocol(_)
            | MultipleProtocols
            | UnofferedExtension(_) => StatusCode::BAD_REQUEST,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_error_maps_to_its_status() {
        use HandshakeError::*;
        let table: &[(HandshakeError, u16)] = &[
            (NotGet(Method::POST), 405),
            (NotHttp11, 400),
            (MissingHost, 400),
            (MissingUpgrade, 400),
            (MissingConnectionUpgrade, 400),
            (MissingKey, 400),
            (InvalidKey, 400),
            (UnsupportedVersion(Some("8".into())), 426),
            (UnsupportedVersion(None), 426),
            (DuplicateHeader("host"), 400),
            (HeadersTooLarge, 431),
            (Malformed("x".into()), 400),
            (InvalidExtensions("x".into()), 400),
            (InvalidProtocols, 400),
            (
                Refused {
                    status: StatusCode::FORBIDDEN,
                    reason: "no".into(),
                },
                403,
            ),
        ];
        for (error, status) in table {
            assert_eq!(error.status().as_u16(), *status, "{error:?}");
        }
    }

    #[test]
    fn display_is_one_line() {
        let errors = [
            HandshakeError::NotGet(Method::POST),
            HandshakeError::UnsupportedVersion(Some("8".into())),
            HandshakeError::UnsupportedVersion(None),
            HandshakeError::NotSwitchingProtocols(StatusCode::FORBIDDEN),
            HandshakeError::UnofferedProtocol("chat".into()),
        ];
        for error in errors {
            let text = error.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
        }
        assert_eq!(
            HandshakeError::UnsupportedVersion(Some("8".into())).to_string(),
            "unsupported WebSocket version 8, only 13 is supported"
        );
        assert_eq!(
            HandshakeError::NotGet(Method::POST).to_string(),
            "method POST is not GET"
        );
    }
}

/// RFC 8441: the extended CONNECT request and its 200, both sides.
#[cfg(test)]
mod extended_connect_tests {
    use super::*;
    use http::{Request, StatusCode, Version};

    fn handshake() -> ClientHandshake {
        let uri = "wss://example.com:8443/chat?room=1".parse().unwrap();
        ClientHandshake::new(&uri, *b"the sample nonce")
            .unwrap()
            .protocols(["chat.v2", "chat.v1"])
            .extensions("permessage-deflate; client_max_window_bits")
    }

    #[test]
    fn the_client_request_is_a_connect_without_key_or_upgrade() {
        let request = handshake().connect_request();
        assert_eq!(request.method(), http::Method::CONNECT);
        assert_eq!(request.version(), Version::HTTP_2);
        assert_eq!(
            request.uri().to_string(),
            "https://example.com:8443/chat?room=1"
        );
        let headers = request.headers();
        for absent in ["host", "upgrade", "connection", "sec-websocket-key"] {
            assert!(!headers.contains_key(absent), "{absent} must not be sent");
        }
        assert_eq!(headers["sec-websocket-version"], "13");
        assert_eq!(headers["sec-websocket-protocol"], "chat.v2, chat.v1");
    }

    #[test]
    fn the_server_answers_200_with_the_same_negotiation_and_the_client_accepts_it() {
        let client = handshake();
        let offer = validate_connect_request(&client.connect_request(), Some(CONNECT_PROTOCOL))
            .expect("a valid extended CONNECT");
        assert!(offer.is_extended_connect());
        assert_eq!(offer.protocols(), ["chat.v2", "chat.v1"]);
        assert_eq!(offer.extensions()[0].name, "permessage-deflate");
        let response = offer.response(
            offer.select_protocol(&["chat.v1"]),
            Some("permessage-deflate"),
        );
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), Version::HTTP_2);
        assert!(!response.headers().contains_key("sec-websocket-accept"));
        assert!(!response.headers().contains_key("upgrade"));
        let answer = client.validate_connect(&response).expect("valid answer");
        assert_eq!(answer.protocol.as_deref(), Some("chat.v1"));
        assert_eq!(answer.extensions[0].name, "permessage-deflate");
        // The HTTP/1.1 rules (101, accept key) do not apply to this response, and vice versa.
        assert!(client.validate(&response).is_err());
        let mut refused = response;
        *refused.status_mut() = StatusCode::FORBIDDEN;
        assert_eq!(
            client.validate_connect(&refused),
            Err(HandshakeError::ConnectRefused(StatusCode::FORBIDDEN))
        );
    }

    #[test]
    fn only_a_websocket_connect_with_version_13_and_an_authority_passes() {
        let good = handshake().connect_request();
        let status = |req: &Request<()>, protocol| {
            validate_connect_request(req, protocol)
                .map(|_| StatusCode::OK)
                .unwrap_or_else(|r| r.status())
        };
        assert_eq!(status(&good, Some("websocket")), StatusCode::OK);
        assert_eq!(status(&good, Some("webtransport")), StatusCode::BAD_REQUEST);
        assert_eq!(status(&good, None), StatusCode::BAD_REQUEST);
        let mut get = handshake().connect_request();
        *get.method_mut() = http::Method::GET;
        assert_eq!(status(&get, Some("websocket")), StatusCode::BAD_REQUEST);
        let mut no_authority = handshake().connect_request();
        *no_authority.uri_mut() = "/chat".parse().unwrap();
        assert_eq!(
            status(&no_authority, Some("websocket")),
            StatusCode::BAD_REQUEST
        );
        let mut old = handshake().connect_request();
        old.headers_mut()
            .insert("sec-websocket-version", "8".parse().unwrap());
        assert_eq!(
            status(&old, Some("websocket")),
            StatusCode::UPGRADE_REQUIRED
        );
        // The plain HTTP/1.1 validator does not take an extended CONNECT.
        assert!(validate_request(&good).is_err());
    }
}
