//! The server side of the opening handshake over any stream: [`accept`] and [`Acceptor`].

use crate::config::WebSocketConfig;
use crate::error::Error;
use crate::websocket::WebSocket;
use bytes::{Buf, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use switchboard_protocol::handshake::{
    encode_response, parse_request, validate_request, ClientOffer, Rejection,
};
use switchboard_protocol::Connection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads the request head in pieces this large: a browser's request is well under 1 KiB.
const HEAD_CHUNK: usize = 1 << 10;

/// Accepts a WebSocket connection on `stream` with the default [`Acceptor`]: reads the
/// upgrade request, answers 101 (or the right 4xx, then closes), and returns the
/// connection.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let (tcp, _) = listener.accept().await?;
/// let mut ws = switchboard::accept(tcp).await?;
/// while let Some(message) = ws.recv().await {
///     ws.send(message?).await?;
/// }
/// # Ok(()) }
/// ```
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<WebSocket<S>, Error> {
    Acceptor::default().accept(stream).await
}

/// The application's view of an upgrade request that passed the RFC 6455 checks, given to
/// the [`AcceptorBuilder::on_request`] callback to decide on.
pub struct HandshakeRequest<'a> {
    request: &'a http::Request<()>,
    offer: &'a ClientOffer,
}

impl<'a> HandshakeRequest<'a> {
    /// The whole request head.
    pub fn request(&self) -> &'a http::Request<()> {
        self.request
    }

    /// The request path, e.g. `/chat`.
    pub fn path(&self) -> &'a str {
        self.request.uri().path()
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.request.uri().query()
    }

    /// The request headers.
    pub fn headers(&self) -> &'a http::HeaderMap {
        self.request.headers()
    }

    /// A header's value, if present and visible ASCII.
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&'a str> {
        self.request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    /// The `Origin` header a browser sends (RFC 6455 §4.2.1 item 7, §10.2): the page that
    /// opened the connection. Check it to stop cross-site WebSocket hijacking.
    pub fn origin(&self) -> Option<&'a str> {
        self.header(http::header::ORIGIN)
    }

    /// The subprotocols the client offers, most preferred first.
    pub fn protocols(&self) -> &'a [String] {
        self.offer.protocols()
    }
}

/// The callback's "yes": optionally with a subprotocol and extra response headers.
#[derive(Debug, Clone, Default)]
pub struct Accept {
    protocol: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Accept {
    /// Accept, with no subprotocol unless [`AcceptorBuilder::protocols`] picks one.
    pub fn new() -> Self {
        Accept::default()
    }

    /// Accept with this subprotocol, which should be one of
    /// [`HandshakeRequest::protocols`] (one the client did not offer is left out of the
    /// response, since the client would have to fail the connection on it).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Adds a header to the 101 response (e.g. `Set-Cookie`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// The callback's "no": an HTTP status and a one-line reason for the response body.
#[derive(Debug, Clone)]
pub struct Reject {
    status: StatusCode,
    reason: String,
}

impl Reject {
    /// Refuse with `status` (e.g. 403 for an unwelcome `Origin`, 404 for an unknown path)
    /// and a one-line `reason`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Reject {
            status,
            reason: reason.into(),
        }
    }
}

type Callback = dyn Fn(&HandshakeRequest<'_>) -> Result<Accept, Reject> + Send + Sync;

struct Inner {
    config: WebSocketConfig,
    protocols: Vec<String>,
    callback: Option<Box<Callback>>,
}

/// Accepts WebSocket connections with a configuration and an optional decision callback.
/// Cheap to clone (one reference count), so one acceptor serves every connection.
///
/// ```
/// use switchboard::{Acceptor, Accept, Reject, WebSocketConfig};
/// use http::StatusCode;
///
/// let acceptor = Acceptor::builder()
///     .config(WebSocketConfig::default().max_message_size(1 << 20))
///     .protocols(["chat.v2", "chat.v1"])
///     .on_request(|req| match req.origin() {
///         Some("https://example.com") | None => Ok(Accept::new()),
///         Some(_) => Err(Reject::new(StatusCode::FORBIDDEN, "origin not allowed")),
///     })
///     .build();
/// # let _ = acceptor;
/// ```
#[derive(Clone)]
pub struct Acceptor {
    inner: Arc<Inner>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("config", &self.inner.config)
            .field("protocols", &self.inner.protocols)
            .field("callback", &self.inner.callback.is_some())
            .finish()
    }
}

impl Default for Acceptor {
    fn default() -> Self {
        Acceptor::builder().build()
    }
}

/// Builds an [`Acceptor`].
pub struct AcceptorBuilder {
    config: WebSocketConfig,
    protocols: Vec<String>,
    callback: Option<Box<Callback>>,
}

impl fmt::Debug for AcceptorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceptorBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AcceptorBuilder {
    /// The configuration connections get (limits, compression, timers, the handshake
    /// timeout and head size); [`WebSocketConfig::default`] if not set.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// The subprotocols this server speaks, most preferred first: the first one the client
    /// also offers is chosen, unless the callback chooses.
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// A callback that sees each valid upgrade request (path, headers, `Origin`, offered
    /// subprotocols) and accepts or rejects it. Runs after the RFC checks, before the 101.
    pub fn on_request(
        mut self,
        callback: impl Fn(&HandshakeRequest<'_>) -> Result<Accept, Reject> + Send + Sync + 'static,
    ) -> Self {
        self.callback = Some(Box::new(callback));
        self
    }

    /// Finishes the acceptor.
    pub fn build(self) -> Acceptor {
        Acceptor {
            inner: Arc::new(Inner {
                config: self.config,
                protocols: self.protocols,
                callback: self.callback,
            }),
        }
    }
}

impl Acceptor {
    /// Starts building an acceptor.
    pub fn builder() -> AcceptorBuilder {
        AcceptorBuilder {
            config: WebSocketConfig::default(),
            protocols: Vec::new(),
            callback: None,
        }
    }

    /// The configuration connections get.
    pub fn config(&self) -> &WebSocketConfig {
        &self.inner.config
    }

    /// Runs the opening handshake on `stream`; see [`accept`].
    ///
    /// A refused request gets its HTTP response (400 with a one-line reason, 405, 426 with
    /// `Sec-WebSocket-Version: 13`, 431, or the callback's status), the stream is shut
    /// down, and the error (with [`Error::status`]) is returned.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> Result<WebSocket<S>, Error> {
        self.accept_with_request(stream).await.map(|(ws, _)| ws)
    }

    /// Like [`Acceptor::accept`], and also returns the request head (path, query, headers).
    pub async fn accept_with_request<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> Result<(WebSocket<S>, http::Request<()>), Error> {
        match self.inner.config.handshake_timeout {
            Some(limit) => tokio::time::timeout(limit, self.handshake(stream))
                .await
                .map_err(|_| Error::timeout("opening handshake"))?,
            None => self.handshake(stream).await,
        }
    }

    async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
    ) -> Result<(WebSocket<S>, http::Request<()>), Error> {
        let config = &self.inner.config;
        let max = config.protocol.max_handshake_size;
        let mut buf = BytesMut::new();
        let (request, consumed) = loop {
            match parse_request(&buf, max) {
                Ok(Some(parsed)) => break parsed,
                Ok(None) => {}
                Err(rejection) => return Err(refuse(stream, rejection).await),
            }
            // Never hold more than one byte past the limit: that byte is enough to know the
            // head is too large.
            if buf.capacity() == buf.len() {
                buf.reserve(HEAD_CHUNK.min(max + 1 - buf.len()).max(1));
            }
            let n = stream.read_buf(&mut buf).await?;
            if n == 0 {
                return Err(Error::io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection ended during the opening handshake",
                )));
            }
        };

        let offer = match validate_request(&request) {
            Ok(offer) => offer,
            Err(rejection) => return Err(refuse(stream, rejection).await),
        };
        let decision = match &self.inner.callback {
            Some(callback) => callback(&HandshakeRequest {
                request: &request,
                offer: &offer,
            }),
            None => Ok(Accept::new()),
        };
        let accept = match decision {
            Ok(accept) => accept,
            Err(reject) => {
                return Err(refuse(
                    stream,
                    Rejection::with_status(reject.status, &reject.reason),
                )
                .await)
            }
        };
        let protocol = accept.protocol.or_else(|| {
            offer
                .select_protocol(&self.inner.protocols)
                .map(str::to_owned)
        });
        let deflate = match &config.protocol.deflate {
            // The negotiation declines malformed offers itself; an error would be a policy
            // refusal, which we treat as declining too: compression is optional.
            Some(policy) => policy.server_accept(offer.extensions()).unwrap_or(None),
            None => None,
        };

        let mut response = offer.response(
            protocol.as_deref(),
            deflate.as_ref().map(|(_, value)| value.as_str()),
        );
        for (name, value) in accept.headers {
            response.headers_mut().append(name, value);
        }
        let mut head = Vec::with_capacity(256);
        encode_response(&response, &mut head);
        stream.write_all(&head).await?;
        stream.flush().await?;

        let mut conn = Connection::server(config.protocol.clone());
        if let Some((params, _)) = deflate {
            conn = conn.with_deflate(params);
        }
        // What follows the head is the client's first frames, if it did not wait for the 101.
        buf.advance(consumed);
        // The response only names a protocol the client offered.
        let protocol = protocol.filter(|p| offer.protocols().iter().any(|o| o == p));
        let ws = WebSocket::from_connection(stream, conn, config)
            .with_read_buffer(buf)
            .with_protocol(protocol);
        Ok((ws, request))
    }
}

/// How long a refused client may keep sending before we drop the connection, and how much
/// of it we read and discard meanwhile.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);
const REFUSAL_DRAIN: u64 = 64 << 10;

/// Sends the rejection's response, closes the stream, and returns the error to report.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, rejection: Rejection) -> Error {
    let status = rejection.status();
    tracing::debug!(%status, error = %rejection.error, "refused WebSocket handshake");
    // The client may already be gone; the refusal stands either way.
    let _ = stream.write_all(&rejection.to_bytes()).await;
    let _ = stream.shutdown().await;
    // Closing a socket with unread input makes the kernel send RST, which can destroy the
    // response before the client reads it (e.g. the rest of an oversized head). Read what
    // the client still sends, briefly and boundedly, so it sees our answer and our FIN.
    let mut sink = tokio::io::sink();
    let mut rest = (&mut stream).take(REFUSAL_DRAIN);
    let drain = tokio::io::copy(&mut rest, &mut sink);
    let _ = tokio::time::timeout(REFUSAL_LINGER, drain).await;
    Error::handshake(rejection.error, Some(status), None)
}
