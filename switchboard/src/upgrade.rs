//! Upgrading a request served by hyper 1 to a WebSocket (feature `hyper`).
//!
//! hyper parses the HTTP request and owns the connection; we check the request against
//! RFC 6455 §4.2.1, negotiate the subprotocol and permessage-deflate, and hand back the
//! `101 Switching Protocols` response for the service to return. Once hyper has written it,
//! the connection is given up to us ([`hyper::upgrade::on`]) and [`UpgradeFut`] resolves to
//! a [`ServerWebSocket`] over it: the type a [`Router`](crate::router::Router) route's handler
//! gets, so one handler serves both.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::{combinators::BoxBody, BodyExt, Empty};
//! use switchboard::upgrade::{is_upgrade_request, upgrade, UpgradeOptions};
//!
//! async fn service(
//!     mut req: http::Request<hyper::body::Incoming>,
//! ) -> Result<http::Response<BoxBody<Bytes, std::convert::Infallible>>, std::convert::Infallible> {
//!     if !is_upgrade_request(&req) {
//!         return Ok(http::Response::new(Empty::new().boxed()));
//!     }
//!     match upgrade(&mut req, &UpgradeOptions::new().protocols(["chat"])) {
//!         Ok((response, websocket)) => {
//!             tokio::spawn(async move {
//!                 let Ok(mut ws) = websocket.await else { return };
//!                 while let Some(Ok(message)) = ws.recv().await {
//!                     if ws.send(message).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             });
//!             Ok(response.map(|body| body.boxed()))
//!         }
//!         // 400/405/426 with a one-line body: send it as it is.
//!         Err(rejection) => Ok(rejection.response.map(|body| body.boxed())),
//!     }
//! }
//! ```
//!
//! The hyper connection must be served `with_upgrades()` (axum's `serve` does this).

use crate::config::WebSocketConfig;
use crate::error::Error;
use crate::negotiate::{negotiate, Pending};
use crate::router::{ServerStream, ServerWebSocket};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use switchboard_protocol::handshake::{validate_request, Rejection};

/// A connection hyper handed over after the 101 (or, over HTTP/2, the 200 to an extended
/// CONNECT), inside [`ServerStream::Upgraded`]: handlers see a [`ServerWebSocket`], the
/// same type a [`Router`](crate::router::Router) or [`Server`](crate::Server) gives them.
/// No example: only a live hyper connection makes one (see the module
/// example).
pub struct UpgradedStream {
    io: TokioIo<hyper::upgrade::Upgraded>,
    version: http::Version,
}

impl std::fmt::Debug for UpgradedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradedStream")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl UpgradedStream {
    /// The upgraded connection, for a caller that needs hyper's own type (for instance to
    /// `downcast` it to the transport).
    pub fn get_ref(&self) -> &hyper::upgrade::Upgraded {
        self.io.inner()
    }

    /// The HTTP version of the request that was upgraded.
    pub fn http_version(&self) -> http::Version {
        self.version
    }

    /// The WebSocket over `upgraded`, as `pending` negotiated it.
    pub(crate) fn websocket(
        upgraded: hyper::upgrade::Upgraded,
        version: http::Version,
        pending: Pending,
    ) -> ServerWebSocket {
        let stream = UpgradedStream {
            io: TokioIo::new(upgraded),
            version,
        };
        pending.into_websocket(ServerStream::Upgraded(Box::new(stream)))
    }
}

// Out of line (`inline(never)`): inlined, hyper's dyn-dispatched reads and writes would bloat
// `ServerStream`'s methods past what the compiler inlines on the plain-TCP path.
impl tokio::io::AsyncRead for UpgradedStream {
    #[inline(never)]
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for UpgradedStream {
    #[inline(never)]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    #[inline(never)]
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline(never)]
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    #[inline(never)]
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Whether `req` asks for a WebSocket: `Upgrade` lists `websocket` and `Connection` lists
/// `upgrade` (token lists, any case). Use it to route a path that serves both plain HTTP
/// and WebSocket; [`upgrade`] still checks everything else.
///
/// ```
/// use switchboard::upgrade::is_upgrade_request;
///
/// let upgrade = http::Request::get("/chat")
///     .header("upgrade", "WebSocket")
///     .header("connection", "keep-alive, Upgrade")
///     .body(())
///     .unwrap();
/// assert!(is_upgrade_request(&upgrade));
/// assert!(!is_upgrade_request(&http::Request::get("/chat").body(()).unwrap()));
/// ```
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    crate::negotiate::is_upgrade_request(req)
}

/// What an upgraded connection gets: its [`WebSocketConfig`] (limits, compression, timers)
/// and the subprotocols this endpoint speaks.
///
/// ```
/// use switchboard::upgrade::UpgradeOptions;
/// use switchboard::WebSocketConfig;
/// let options = UpgradeOptions::new()
///     .protocols(["chat.v2", "chat.v1"])
///     .config(WebSocketConfig::default().max_message_size(1 << 20));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    config: WebSocketConfig,
    protocols: Vec<String>,
}

impl UpgradeOptions {
    /// The default configuration and no subprotocol.
    pub fn new() -> Self {
        UpgradeOptions::default()
    }

    /// The configuration connections get (limits, compression, timers);
    /// [`WebSocketConfig::default`] if not set. Its handshake timeout and head size are
    /// hyper's business here: hyper reads the request.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// The configuration connections get.
    pub fn websocket_config(&self) -> &WebSocketConfig {
        &self.config
    }

    /// The subprotocols this endpoint speaks, most preferred first: the first one the
    /// client also offers is chosen (the server's preference decides, RFC 6455 §4.2.2).
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }
}

/// Validates `req` as a WebSocket upgrade request and negotiates the subprotocol and
/// permessage-deflate. Returns the `101` response for the service to return and a future
/// that resolves to the WebSocket once hyper has sent it.
///
/// A request that fails RFC 6455 §4.2.1 gives the [`Rejection`] whose `response` is ready
/// to send (400 with a one-line reason, 405 for a method other than GET, 426 with
/// `Sec-WebSocket-Version: 13` for another version). `req` must come from hyper (it takes
/// the upgrade handle from its extensions); without one, the future fails.
///
/// ```
/// use http::StatusCode;
/// use switchboard::upgrade::{upgrade, UpgradeOptions};
///
/// let mut req = http::Request::get("/chat")
///     .header("host", "127.0.0.1:9001")
///     .header("upgrade", "websocket")
///     .header("connection", "upgrade")
///     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .header("sec-websocket-version", "13")
///     .body(())
///     .unwrap();
/// let (response, websocket) = upgrade(&mut req, &UpgradeOptions::new()).unwrap();
/// assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
/// assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// // Return `response` from the hyper service; await `websocket` in a task.
/// # drop(websocket);
/// ```
#[expect(
    clippy::result_large_err,
    reason = "a refusal happens at most once per request, and carrying the ready response is its point"
)]
pub fn upgrade<B>(
    req: &mut Request<B>,
    options: &UpgradeOptions,
) -> Result<(Response<Empty<Bytes>>, UpgradeFut), Rejection> {
    let offer = validate_request(&request_head(req))?;
    let negotiated = negotiate(&offer, &options.config, &options.protocols);
    let on_upgrade = req.extensions_mut().remove::<OnUpgrade>();
    let (response, pending) = negotiated.split();
    Ok((
        response.map(|()| Empty::new()),
        UpgradeFut {
            on_upgrade,
            version: req.version(),
            pending: Some(pending),
        },
    ))
}

/// Resolves to the [`ServerWebSocket`] once hyper has sent the 101 and handed the connection
/// over; fails if the client went away first or the request did not come from a hyper
/// connection served `with_upgrades()`.
///
/// No example: a future only [`upgrade`] hands out; return the response, then await it in a
/// task, as the [module example](self) does.
#[must_use = "the WebSocket exists only once this future is awaited"]
pub struct UpgradeFut {
    on_upgrade: Option<OnUpgrade>,
    version: http::Version,
    pending: Option<Pending>,
}

impl std::fmt::Debug for UpgradeFut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradeFut")
            .field("protocol", &self.pending.as_ref().map(|p| p.protocol()))
            .finish()
    }
}

impl Future for UpgradeFut {
    type Output = Result<ServerWebSocket, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(on_upgrade) = this.on_upgrade.as_mut() else {
            return Poll::Ready(Err(Error::io(io::Error::other(
                "the request has no upgrade handle: serve it with hyper's `with_upgrades()`",
            ))));
        };
        let upgraded = ready!(Pin::new(on_upgrade).poll(cx));
        this.on_upgrade = None;
        let upgraded = upgraded.map_err(|e| Error::io(io::Error::other(e)))?;
        let pending = this.pending.take().ok_or_else(Error::closed)?;
        Poll::Ready(Ok(UpgradedStream::websocket(
            upgraded,
            this.version,
            pending,
        )))
    }
}

/// The head of `req` as the protocol crate's validator takes it.
pub(crate) fn request_head<B>(req: &Request<B>) -> Request<()> {
    head_from_parts(req.method(), req.uri(), req.version(), req.headers())
}

/// A `Request<()>` from the pieces of a head (axum hands out `Parts`).
pub(crate) fn head_from_parts(
    method: &http::Method,
    uri: &http::Uri,
    version: http::Version,
    headers: &http::HeaderMap,
) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = method.clone();
    *head.uri_mut() = uri.clone();
    *head.version_mut() = version;
    *head.headers_mut() = headers.clone();
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/chat").header("host", "example.com");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    const VALID: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    #[test]
    fn upgrade_requests_are_recognised_by_their_token_lists() {
        assert!(is_upgrade_request(&request(VALID)));
        assert!(is_upgrade_request(&request(&[
            ("upgrade", "WebSocket"),
            ("connection", "upgrade")
        ])));
        assert!(!is_upgrade_request(&request(&[("upgrade", "websocket")])));
        assert!(!is_upgrade_request(&request(&[("connection", "upgrade")])));
        assert!(!is_upgrade_request(&request(&[
            ("upgrade", "h2c"),
            ("connection", "upgrade")
        ])));
    }

    #[test]
    fn a_valid_request_gets_the_rfc_accept_key_and_the_servers_preferred_protocol() {
        let mut req = request(&[VALID, &[("sec-websocket-protocol", "b, a")]].concat());
        let options = UpgradeOptions::new().protocols(["a", "b"]);
        let (response, fut) = upgrade(&mut req, &options).expect("valid");
        assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455 §1.3's example key and answer.
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()["sec-websocket-protocol"], "a");
        assert!(format!("{fut:?}").contains("\"a\""));
    }

    #[test]
    fn deflate_is_answered_only_when_configured() {
        let offer = [
            VALID,
            &[(
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            )],
        ]
        .concat();
        let (response, _) = upgrade(&mut request(&offer), &UpgradeOptions::new()).unwrap();
        assert!(!response.headers().contains_key("sec-websocket-extensions"));
        let (response, _) = upgrade(
            &mut request(&offer),
            &UpgradeOptions::new().config(WebSocketConfig::default().compression(true)),
        )
        .unwrap();
        let value = response.headers()["sec-websocket-extensions"]
            .to_str()
            .unwrap();
        assert!(value.starts_with("permessage-deflate"), "{value}");
    }

    #[test]
    fn invalid_requests_are_rejected_with_their_status() {
        let rejection = upgrade(&mut request(&VALID[..3]), &UpgradeOptions::new()).unwrap_err();
        assert_eq!(rejection.status(), http::StatusCode::UPGRADE_REQUIRED);
        assert_eq!(rejection.response.headers()["sec-websocket-version"], "13");
        let no_key = [&VALID[..2], &VALID[3..]].concat();
        let rejection = upgrade(&mut request(&no_key), &UpgradeOptions::new()).unwrap_err();
        assert_eq!(rejection.status(), http::StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_request_that_did_not_come_from_hyper_fails_the_future() {
        let (_, fut) = upgrade(&mut request(VALID), &UpgradeOptions::new()).unwrap();
        let error = fut.await.unwrap_err();
        assert!(error.to_string().contains("with_upgrades"), "{error}");
    }
}
