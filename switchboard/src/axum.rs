//! An axum extractor that upgrades to a Switchboard WebSocket (feature `axum`).
//!
//! It reads like axum's own `WebSocketUpgrade`, and runs on this crate's protocol core:
//!
//! ```no_run
//! use axum::{response::Response, routing::get, Router};
//! use switchboard::axum::{WebSocket, WebSocketUpgrade};
//! use switchboard::WebSocketConfig;
//!
//! async fn chat(ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat.v1"])
//!         .config(WebSocketConfig::default().max_message_size(64 << 10))
//!         .on_upgrade(|mut socket: WebSocket| async move {
//!             while let Some(Ok(message)) = socket.recv().await {
//!                 if socket.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         })
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let app: Router = Router::new().route("/chat", get(chat));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! A request that is not a WebSocket upgrade (a plain `GET` from a browser's address bar)
//! is refused with `426 Upgrade Required` and a one-line body; an upgrade request that
//! breaks RFC 6455 §4.2.1 with its 400/405/426.

use crate::config::WebSocketConfig;
use crate::error::Error;
use crate::negotiate::negotiate;
use crate::security::{LimitExceeded, OriginPolicy};
use crate::upgrade::{self, is_upgrade_request, UpgradedStream};
use ::axum::body::Body;
use ::axum::extract::FromRequestParts;
use ::axum::response::{IntoResponse, Response};
use http::header::{CONNECTION, UPGRADE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use std::fmt;
use std::future::Future;
use switchboard_protocol::handshake::{
    validate_connect_request, validate_request, ClientOffer, Rejection,
};

/// The WebSocket an axum handler gets from [`WebSocketUpgrade::on_upgrade`]: a
/// [`ServerWebSocket`](crate::ServerWebSocket), the type every server entry point gives, so
/// the handler serves a [`Router`](crate::router::Router) or a hyper upgrade as it is. The
/// alias is for code moving from `axum::extract::ws::WebSocket`.
///
/// ```
/// use switchboard::axum::{WebSocket, WebSocketUpgrade};
///
/// async fn echo(mut socket: WebSocket) {
///     while let Some(Ok(message)) = socket.recv().await {
///         if socket.send(message).await.is_err() {
///             break;
///         }
///     }
/// }
///
/// let app = axum::Router::<()>::new()
///     .route("/echo", axum::routing::get(|ws: WebSocketUpgrade| async { ws.on_upgrade(echo) }));
/// let route = switchboard::router::Route::new(|ws, _info| echo(ws)); // the same handler
/// # let _ = (app, route);
/// ```
pub type WebSocket = crate::ServerWebSocket;

type FailureCallback = Box<dyn FnOnce(Error) + Send + 'static>;

/// Extractor for a WebSocket upgrade request: configure it, then answer with
/// [`WebSocketUpgrade::on_upgrade`]. See the [module docs](self).
///
/// ```
/// use axum::response::Response;
/// use switchboard::axum::WebSocketUpgrade;
///
/// async fn chat(upgrade: WebSocketUpgrade) -> Response {
///     println!("the client offers {:?}", upgrade.requested_protocols());
///     let upgrade = upgrade.protocols(["chat.v2", "chat.v1"]);
///     let chosen = upgrade.selected_protocol().map(str::to_owned);
///     upgrade
///         .on_failed_upgrade(|e| eprintln!("upgrade failed: {e}"))
///         .on_upgrade(move |mut socket| async move {
///             let _ = socket.send(format!("speaking {chosen:?}")).await;
///         })
/// }
/// # let _ = axum::Router::<()>::new().route("/chat", axum::routing::get(chat));
/// ```
pub struct WebSocketUpgrade {
    offer: ClientOffer,
    origin: Option<HeaderValue>,
    /// `Host` (HTTP/2: `:authority`), for [`OriginPolicy::check_request`].
    host: Option<String>,
    /// The request's scheme as far as it is known: HTTP/2 carries it, HTTP/1.1 does not
    /// (`http` then).
    scheme: &'static str,
    on_upgrade: OnUpgrade,
    version: http::Version,
    config: WebSocketConfig,
    protocols: Vec<String>,
    on_failed: Option<FailureCallback>,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("offer", &self.offer)
            .field("config", &self.config)
            .field("protocols", &self.protocols)
            .finish_non_exhaustive()
    }
}

impl WebSocketUpgrade {
    /// The subprotocols this endpoint speaks, most preferred first: the first one the
    /// client also offers is chosen, and the connection goes ahead without one if there is
    /// none in common (RFC 6455 §4.2.2). To refuse such clients instead, check
    /// [`WebSocketUpgrade::selected_protocol`] and return your own response.
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The subprotocol that will be chosen, given [`WebSocketUpgrade::protocols`].
    pub fn selected_protocol(&self) -> Option<&str> {
        self.offer.select_protocol(&self.protocols)
    }

    /// The subprotocols the client offers, most preferred first.
    pub fn requested_protocols(&self) -> &[String] {
        self.offer.protocols()
    }

    /// The `Origin` header: the page that opened the connection, when a browser did.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_ref().and_then(|v| v.to_str().ok())
    }

    /// Refuses the upgrade with `403 Forbidden` unless `policy` allows the request
    /// (cross-site WebSocket hijacking, see [`OriginPolicy`]): its `Origin`, and with
    /// [`OriginPolicy::hosts`] its `Host`, as [`OriginPolicy::check_request`] checks them.
    /// HTTP/1.1 does not say whether the request came over TLS, so the server's own origin
    /// is taken to be `http://` there; an `https://` page of your own passes through the
    /// policy's list.
    ///
    /// ```
    /// use axum::response::Response;
    /// use switchboard::axum::{WebSocketUpgrade, WebSocketUpgradeRejection};
    /// use switchboard::security::OriginPolicy;
    ///
    /// async fn handler(ws: WebSocketUpgrade) -> Result<Response, WebSocketUpgradeRejection> {
    ///     let policy = OriginPolicy::allow(["https://example.com"]);
    ///     Ok(ws.allow_origins(&policy)?.on_upgrade(|_socket| async {}))
    /// }
    /// ```
    #[expect(
        clippy::result_large_err,
        reason = "the refusal carries its ready response; it happens once per request"
    )]
    pub fn allow_origins(self, policy: &OriginPolicy) -> Result<Self, WebSocketUpgradeRejection> {
        match policy.check_request(self.origin.as_ref(), self.host.as_deref(), self.scheme) {
            Ok(_) => Ok(self),
            Err(refusal) => {
                Err(Rejection::with_status(StatusCode::FORBIDDEN, &refusal.to_string()).into())
            }
        }
    }

    /// The configuration the connection gets (limits, compression, timers);
    /// [`WebSocketConfig::default`] if not set. Its handshake timeout and head size are
    /// axum's business here: hyper reads the request.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Called instead of the handler if the upgrade fails after the 101 (the client went
    /// away). By default the failure is logged at debug level.
    pub fn on_failed_upgrade(mut self, callback: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_failed = Some(Box::new(callback));
        self
    }

    /// Answers the request with `101 Switching Protocols` and runs `callback` on the
    /// WebSocket in a new task once hyper has handed the connection over.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let negotiated = negotiate(&self.offer, &self.config, &self.protocols);
        let (response, pending) = negotiated.split();
        let version = self.version;
        let on_upgrade = self.on_upgrade;
        // Boxed until the upgrade: what an `async` block captures keeps its room in the
        // task for the task's whole life, moved out or not, so inline the handshake's
        // leftovers and the callback's captures would sit beside the handler's future (its
        // own copy of them) for as long as the WebSocket is open.
        let after = Box::new((pending, self.on_failed, callback));
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    // Moved to a local first: a box that is only moved out of is freed when
                    // its owner (the task) ends.
                    let (pending, _, callback) = {
                        let after = after;
                        *after
                    };
                    callback(UpgradedStream::websocket(upgraded, version, pending)).await
                }
                Err(error) => {
                    let (_, on_failed, _) = *after;
                    let error = Error::io(std::io::Error::other(error));
                    match on_failed {
                        Some(on_failed) => on_failed(error),
                        None => tracing::debug!(%error, "WebSocket upgrade failed after the 101"),
                    }
                }
            }
        });
        response.map(|()| Body::empty())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let head =
            upgrade::head_from_parts(&parts.method, &parts.uri, parts.version, &parts.headers);
        let offer = match extended_connect(parts) {
            // HTTP/2 (feature `http2`): an RFC 8441 extended CONNECT, answered 200 after
            // the same negotiation. The route must take CONNECT as well as GET.
            Some(protocol) => validate_connect_request(&head, protocol.as_deref())
                .map_err(WebSocketUpgradeRejection::from)?,
            None if !is_upgrade_request(&head) => {
                return Err(WebSocketUpgradeRejection::not_upgrade())
            }
            None => validate_request(&head).map_err(WebSocketUpgradeRejection::from)?,
        };
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(WebSocketUpgradeRejection::not_upgradable)?;
        Ok(WebSocketUpgrade {
            offer,
            origin: parts.headers.get(http::header::ORIGIN).cloned(),
            host: parts
                .headers
                .get(http::header::HOST)
                .and_then(|host| host.to_str().ok())
                .or_else(|| parts.uri.authority().map(http::uri::Authority::as_str))
                .map(str::to_owned),
            scheme: match parts.uri.scheme_str() {
                Some("https" | "wss") => "https",
                _ => "http",
            },
            on_upgrade,
            version: parts.version,
            config: WebSocketConfig::default(),
            protocols: Vec::new(),
            on_failed: None,
        })
    }
}

/// For an HTTP/2 `CONNECT`: its `:protocol`, if any (`Some(None)`: a CONNECT without one,
/// which the validator refuses). `None` for everything else, HTTP/1.1 included.
fn extended_connect(parts: &Parts) -> Option<Option<String>> {
    if parts.version != http::Version::HTTP_2 || parts.method != http::Method::CONNECT {
        return None;
    }
    #[cfg(feature = "http2")]
    let protocol = parts
        .extensions
        .get::<hyper::ext::Protocol>()
        .map(|p| p.as_str().to_owned());
    #[cfg(not(feature = "http2"))]
    let protocol = None;
    Some(protocol)
}

/// Why [`WebSocketUpgrade`] refused a request; it answers with its HTTP response.
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use switchboard::axum::{WebSocketUpgrade, WebSocketUpgradeRejection};
///
/// // Taken as a `Result`, the refusal can be logged before it is answered.
/// async fn ws(upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Response {
///     match upgrade {
///         Ok(upgrade) => upgrade.on_upgrade(|_socket| async {}),
///         Err(rejection) => {
///             eprintln!("refused with {}: {}", rejection.status(), rejection.reason());
///             rejection.into_response()
///         }
///     }
/// }
/// # let _ = axum::Router::<()>::new().route("/ws", axum::routing::get(ws));
/// ```
#[derive(Debug)]
pub struct WebSocketUpgradeRejection {
    rejection: Rejection,
}

impl WebSocketUpgradeRejection {
    /// A plain HTTP request on a WebSocket endpoint: 426 (RFC 7231 §6.5.15, which wants an
    /// `Upgrade` header naming the protocol to switch to).
    fn not_upgrade() -> Self {
        WebSocketUpgradeRejection {
            rejection: crate::negotiate::not_an_upgrade(),
        }
    }

    /// The request came through a connection that cannot be upgraded (HTTP/2, or hyper
    /// without `with_upgrades()`).
    fn not_upgradable() -> Self {
        let rejection = Rejection::with_status(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded to WebSocket",
        );
        WebSocketUpgradeRejection { rejection }
    }

    /// The status the response carries.
    pub fn status(&self) -> StatusCode {
        self.rejection.status()
    }

    /// The handshake rule the request broke, or the refusal.
    pub fn reason(&self) -> &switchboard_protocol::handshake::HandshakeError {
        &self.rejection.error
    }
}

impl From<Rejection> for WebSocketUpgradeRejection {
    fn from(rejection: Rejection) -> Self {
        WebSocketUpgradeRejection { rejection }
    }
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.rejection, f)
    }
}

impl std::error::Error for WebSocketUpgradeRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.rejection.error)
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        let mut response = self.rejection.response.map(Body::from);
        // Inside hyper the request was read whole, so the HTTP connection is still sound:
        // let hyper decide whether to keep it instead of the bare-socket `Connection: close`.
        let headers = response.headers_mut();
        headers.remove(CONNECTION);
        if headers.contains_key(UPGRADE) {
            // RFC 7230 §6.7: an `Upgrade` header comes with the `upgrade` connection option.
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
        response
    }
}

/// A connection over a [`ConnectionLimiter`](crate::security::ConnectionLimiter)'s limit
/// answers with 503 or 429, `Retry-After` and a one-line body.
impl IntoResponse for LimitExceeded {
    fn into_response(self) -> Response {
        WebSocketUpgradeRejection::from(self.rejection()).into_response()
    }
}
