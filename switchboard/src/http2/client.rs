//! The client's side of RFC 8441: open an h2 connection, wait for the server's SETTINGS,
//! and send the extended CONNECT if the server allows it.

use super::{H2Stream, Http2Config};
use crate::error::Error;
use bytes::Bytes;
use http::Response;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_protocol::handshake::{ClientHandshake, CONNECT_PROTOCOL};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// How long the client waits for the server's first SETTINGS frame when the handshake has
/// no timeout of its own. A server sends it at once (RFC 9113 §3.4), so this is only the
/// bound for a peer that never does.
const SETTINGS_WAIT: Duration = Duration::from_secs(10);

/// How often the client looks whether the SETTINGS have arrived: h2 has no event for it.
const SETTINGS_POLL: Duration = Duration::from_millis(1);

/// Which HTTP version a [`Client`](crate::Client) opens `wss://` WebSockets over.
///
/// ```
/// use switchboard::http2::Http2Mode;
/// use switchboard::Client;
///
/// // Share one TLS connection among this client's WebSockets when the server speaks h2.
/// let client = Client::builder().http2(Http2Mode::Auto).build();
/// # let _ = client;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Http2Mode {
    /// HTTP/1.1 only, the RFC 6455 upgrade (the default).
    #[default]
    Never,
    /// HTTP/2 when the server picks `h2` over ALPN and advertises
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL`; otherwise HTTP/1.1 (on a fresh connection when
    /// h2 was picked but extended CONNECT is not allowed).
    Auto,
    /// HTTP/2 or fail: a server without h2 or without extended CONNECT is an error. Over
    /// `ws://` this is h2 with prior knowledge (h2c).
    Force,
}

/// What opening a WebSocket over an h2 connection gave.
pub(crate) enum H2Connected {
    /// The stream and the server's response (not yet checked against the offer).
    WebSocket(Box<H2Stream>, Response<()>),
    /// The server does not advertise `SETTINGS_ENABLE_CONNECT_PROTOCOL`.
    NotSupported,
}

fn h2_io(error: h2::Error) -> Error {
    Error::io(io::Error::other(error))
}

/// Runs the h2 client handshake on `io`, waits for the server's SETTINGS, and opens one
/// stream with the extended CONNECT of `handshake`. The connection runs in its own task
/// and ends when the stream does.
pub(crate) async fn connect_h2<S>(
    io: S,
    handshake: &ClientHandshake,
    settings: &Http2Config,
    timeout: Option<Duration>,
    peer: Option<SocketAddr>,
) -> Result<H2Connected, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = settings.client_builder();
    // No stream may open before the server's SETTINGS: then `current_max_send_streams`
    // turning non-zero says they have arrived (and with them ENABLE_CONNECT_PROTOCOL).
    builder.initial_max_send_streams(0);
    let (send_request, connection) = builder.handshake::<_, Bytes>(io).await.map_err(h2_io)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "h2 client connection ended with an error");
        }
    });
    let deadline = Instant::now() + timeout.unwrap_or(SETTINGS_WAIT);
    while send_request.current_max_send_streams() == 0 {
        if Instant::now() >= deadline {
            return Err(Error::timeout("the server's HTTP/2 SETTINGS"));
        }
        tokio::time::sleep(SETTINGS_POLL).await;
    }
    if !send_request.is_extended_connect_protocol_enabled() {
        return Ok(H2Connected::NotSupported);
    }
    let mut send_request = send_request.ready().await.map_err(h2_io)?;
    let mut request = handshake.connect_request();
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static(CONNECT_PROTOCOL));
    let (response, send) = send_request.send_request(request, false).map_err(h2_io)?;
    let (parts, recv) = response.await.map_err(h2_io)?.into_parts();
    Ok(H2Connected::WebSocket(
        Box::new(H2Stream::new(send, recv, peer)),
        Response::from_parts(parts, ()),
    ))
}
