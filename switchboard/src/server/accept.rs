//! The server side of the opening handshake over any stream: [`accept`] and [`Acceptor`].

use crate::config::WebSocketConfig;
use crate::error::Error;
use crate::head::{answer, read_head, refuse, Head};
use crate::negotiate::negotiate;
use crate::websocket::WebSocket;
use http::{HeaderName, HeaderValue, StatusCode};
use std::fmt;
use std::io;
use std::sync::Arc;
use switchboard_protocol::handshake::{parse_request, validate_request, ClientOffer, Rejection};
use tokio::io::{AsyncRead, AsyncWrite};

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
///
/// ```
/// use http::StatusCode;
/// use switchboard::{Accept, Acceptor, Reject};
///
/// let acceptor = Acceptor::builder()
///     .on_request(|req| {
///         if req.path() != "/chat" {
///             return Err(Reject::new(StatusCode::NOT_FOUND, "no such path"));
///         }
///         match req.header("authorization") {
///             Some("Bearer s3cret") => Ok(Accept::new()),
///             _ => Err(Reject::new(StatusCode::UNAUTHORIZED, "no or wrong token")),
///         }
///     })
///     .build();
/// # let _ = acceptor;
/// ```
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
///
/// ```
/// use http::{HeaderName, HeaderValue};
/// use switchboard::{Accept, Acceptor};
///
/// let acceptor = Acceptor::builder()
///     .on_request(|req| {
///         let accept = Accept::new().header(
///             HeaderName::from_static("set-cookie"),
///             HeaderValue::from_static("session=abc; HttpOnly"),
///         );
///         // The client's first choice, whatever it is.
///         Ok(match req.protocols().first() {
///             Some(protocol) => accept.protocol(protocol.clone()),
///             None => accept,
///         })
///     })
///     .build();
/// # let _ = acceptor;
/// ```
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

/// An application's "no" to a handshake, from an [`AcceptorBuilder::on_request`] callback
/// or a route's [`authenticate`](crate::router::Route::authenticate) check: an HTTP status
/// and a one-line reason for the response body. Small (a status and a string), so a closure
/// returning `Result<_, Reject>` stays clear of clippy's `result_large_err`.
///
/// ```
/// use http::StatusCode;
/// let reject = switchboard::Reject::new(StatusCode::UNAUTHORIZED, "bad token");
/// assert_eq!(reject.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(reject.reason(), "bad token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    status: StatusCode,
    reason: String,
}

impl Reject {
    /// Refuse with `status` (e.g. 401 for missing credentials, 403 for an unwelcome
    /// `Origin`, 404 for an unknown path) and a one-line `reason`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Reject {
            status,
            reason: reason.into(),
        }
    }

    /// The status the refusal is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The one-line reason in the response body.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The protocol crate's refusal, with the response to send.
    pub(crate) fn into_rejection(self) -> Rejection {
        Rejection::with_status(self.status, &self.reason)
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
///
/// ```no_run
/// use switchboard::{Acceptor, WebSocketConfig};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let acceptor = Acceptor::builder()
///     .config(WebSocketConfig::default().compression(true))
///     .protocols(["chat.v2"])
///     .build();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let (tcp, _peer) = listener.accept().await?;
/// let ws = acceptor.accept(tcp).await?;
/// println!("subprotocol: {:?}", ws.protocol());
/// # Ok(()) }
/// ```
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
        let (request, rest) = match read_head(&mut stream, max, parse_request).await? {
            Head::Complete { head, rest, .. } => (head, rest),
            Head::Invalid(rejection) => return Err(refused(stream, rejection).await),
            Head::Eof => {
                return Err(Error::io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection ended during the opening handshake",
                )))
            }
        };
        let offer = match validate_request(&request) {
            Ok(offer) => offer,
            Err(rejection) => return Err(refused(stream, rejection).await),
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
                return Err(refused(stream, reject.into_rejection()).await);
            }
        };
        // The callback's choice, else the first of ours the client offers; either way only
        // one the client offered is answered.
        let chosen;
        let protocols = match accept.protocol {
            Some(protocol) => {
                chosen = [protocol];
                &chosen[..]
            }
            None => &self.inner.protocols[..],
        };
        let mut negotiated = negotiate(&offer, config, protocols);
        for (name, value) in accept.headers {
            negotiated.response_mut().headers_mut().append(name, value);
        }
        let (response, pending) = negotiated.split();
        answer(&mut stream, &response).await?;
        Ok((pending.into_websocket_with_buffer(stream, rest), request))
    }
}

/// Sends the rejection's response, closes the stream, and returns the error to report.
async fn refused<S: AsyncRead + AsyncWrite + Unpin>(stream: S, rejection: Rejection) -> Error {
    let status = rejection.status();
    tracing::debug!(%status, error = %rejection.error, "refused WebSocket handshake");
    refuse(stream, &rejection).await;
    Error::handshake(rejection.error, Some(status), None)
}
