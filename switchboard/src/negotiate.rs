//! Server-side negotiation shared by every way of accepting a connection (the router,
//! `accept`, the hyper upgrade, the axum extractor): the subprotocol, permessage-deflate, the
//! 101 response and the connection that goes with them.

use crate::config::WebSocketConfig;
use crate::websocket::WebSocket;
use bytes::BytesMut;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use switchboard_protocol::handshake::{header_has_token, ClientOffer, Rejection};
use switchboard_protocol::Connection;

/// Whether `req` asks for a WebSocket: `Upgrade` lists `websocket` and `Connection` lists
/// `upgrade` (token lists, any case). Everything else is checked by the handshake proper.
pub(crate) fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    header_has_token(req.headers(), UPGRADE, "websocket")
        && header_has_token(req.headers(), CONNECTION, "upgrade")
}

/// The answer to a plain HTTP request (no `Upgrade: websocket`) on a WebSocket endpoint:
/// 426 with a one-line body and, as RFC 7231 §6.5.15 wants, an `Upgrade` header naming the
/// protocol to switch to.
pub(crate) fn not_an_upgrade() -> Rejection {
    let mut rejection = Rejection::with_status(
        StatusCode::UPGRADE_REQUIRED,
        "this endpoint speaks WebSocket only",
    );
    rejection
        .response
        .headers_mut()
        .insert(UPGRADE, HeaderValue::from_static("websocket"));
    rejection
}

/// The outcome of negotiating one valid request: the 101 response and what the connection
/// needs once the stream is ours.
pub(crate) struct Negotiated {
    response: Response<()>,
    pending: Pending,
}

/// The connection-to-be, waiting for its stream.
pub(crate) struct Pending {
    conn: Connection,
    protocol: Option<String>,
    config: WebSocketConfig,
}

impl Negotiated {
    pub(crate) fn split(self) -> (Response<()>, Pending) {
        (self.response, self.pending)
    }

    /// The response, to add headers to before it is sent.
    pub(crate) fn response_mut(&mut self) -> &mut Response<()> {
        &mut self.response
    }
}

impl Pending {
    /// The subprotocol agreed on.
    #[cfg_attr(
        not(feature = "hyper"),
        expect(dead_code, reason = "only the hyper upgrade reports it early")
    )]
    pub(crate) fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The connection over `stream`, which must be the upgraded one: the handshake is over.
    pub(crate) fn into_websocket<S>(self, stream: S) -> WebSocket<S> {
        WebSocket::from_connection(stream, self.conn, &self.config).with_protocol(self.protocol)
    }

    /// Like [`Pending::into_websocket`], with the bytes that were read past the request
    /// head (a client may send its first frames right behind it).
    pub(crate) fn into_websocket_with_buffer<S>(self, stream: S, read: BytesMut) -> WebSocket<S> {
        self.into_websocket(stream).with_read_buffer(read)
    }
}

/// The subprotocol a server speaking `supported` (most preferred first) answers `offer`
/// with; `None` if they share none.
pub(crate) fn select_protocol(offer: &ClientOffer, supported: &[String]) -> Option<String> {
    offer.select_protocol(supported).map(str::to_owned)
}

/// Chooses the subprotocol and the permessage-deflate parameters for `offer`, and builds
/// the 101 response and the server connection that go with them.
pub(crate) fn negotiate(
    offer: &ClientOffer,
    config: &WebSocketConfig,
    protocols: &[String],
) -> Negotiated {
    let protocol = select_protocol(offer, protocols);
    let deflate = match &config.protocol.deflate {
        // The negotiation declines malformed offers itself, and an error would be a policy
        // refusal: either way compression is optional, so the connection goes on without.
        Some(policy) => policy.server_accept(offer.extensions()).unwrap_or(None),
        None => None,
    };
    let response = offer.response(
        protocol.as_deref(),
        deflate.as_ref().map(|(_, value)| value.as_str()),
    );
    let mut conn = Connection::server(config.protocol.clone());
    if let Some((params, _)) = deflate {
        conn = conn.with_deflate(params);
    }
    Negotiated {
        response,
        pending: Pending {
            conn,
            protocol,
            config: config.clone(),
        },
    }
}
