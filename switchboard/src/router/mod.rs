//! [`Router`]: a standalone server with several WebSocket endpoints chosen by path, each
//! with its own handler and options — the seeds' `noServer` + `handleUpgrade` pattern
//! without writing the HTTP part yourself.
//!
//! ```no_run
//! use switchboard::router::{Route, Router};
//! use switchboard::security::{ConnectionLimiter, OriginPolicy};
//! use switchboard::{Reject, WebSocketConfig};
//! use http::StatusCode;
//!
//! # async fn run() -> Result<(), switchboard::Error> {
//! let router = Router::new()
//!     .route("/echo", Route::new(|mut ws, _info| async move {
//!         while let Some(Ok(message)) = ws.recv().await {
//!             if ws.send(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     }))
//!     .route(
//!         "/chat",
//!         Route::new(|ws, info| async move {
//!             let user = info.extensions().get::<String>().cloned();
//!             # let _ = (ws, user);
//!         })
//!         .protocols(["chat.v1"])
//!         .config(WebSocketConfig::default().max_message_size(64 << 10))
//!         .origins(OriginPolicy::allow(["https://example.com"]))
//!         .authenticate(|req| match req.query_param("token").as_deref() {
//!             Some("s3cret") => {
//!                 req.extensions_mut().insert(String::from("alice"));
//!                 Ok(())
//!             }
//!             _ => Err(Reject::new(StatusCode::UNAUTHORIZED, "bad token")),
//!         }),
//!     )
//!     .connection_limits(ConnectionLimiter::new(10_000, 64));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! router.serve(listener).await
//! # }
//! ```
//!
//! What a client gets, in the order the checks run: a malformed head 400/431; an unknown
//! path 404; a plain HTTP request (no `Upgrade: websocket`) on a WebSocket path 426 with a
//! one-line body; a request that breaks RFC 6455 §4.2.1 its 400/405/426; over a connection
//! limit 503 or 429; a foreign `Origin` 403; the `authenticate` callback's status; and
//! otherwise 101 and the route's handler. Every refusal closes the connection.
//!
//! With the `http2` feature, a TLS router also speaks HTTP/2 to clients that pick `h2` over
//! ALPN, browsers included: each WebSocket is then an RFC 8441 extended CONNECT stream on a
//! shared connection, answered `200` after the same checks and negotiation, and handed to
//! the same route and handler (see [`crate::http2`]; [`Router::http2`] turns it off).
//! Refusals there are answered on the stream, which ends; the connection goes on.
//!
//! To use every core without a work-stealing scheduler, [`Router::serve_threads`] serves
//! one router from several threads, each with a current-thread runtime and its own
//! `SO_REUSEPORT` socket ([`bind_per_thread`]); limits and shutdown span all the threads.

#[cfg(feature = "http2")]
mod h2;
mod listen;
mod request;
mod stream;
mod threads;

pub use listen::{bind_per_thread, listener_with_backlog, reuseport_listener};
pub use request::{ConnectionInfo, UpgradeRequest};
pub use stream::ServerStream;

use crate::config::WebSocketConfig;
use crate::error::Error;
use crate::head::{answer, read_head, refuse, Head};
use crate::liveness::GoingAway;
use crate::negotiate::{is_upgrade_request, negotiate, not_an_upgrade};
use crate::security::{ConnectionLimiter, ConnectionPermit, OriginPolicy, TrustedProxies};
use crate::server::Reject;
use crate::websocket::WebSocket;
use http::StatusCode;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use switchboard_protocol::handshake::{parse_request, validate_request, HandshakeError, Rejection};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A server-side WebSocket, from any entry point: a [`Router`] route, a
/// [`Server`](crate::Server), the hyper upgrade or the axum extractor (features `hyper`,
/// `axum`). Write a handler once as a function of it and it serves them all:
///
/// ```
/// use switchboard::ServerWebSocket;
///
/// async fn echo(mut ws: ServerWebSocket) {
///     while let Some(Ok(message)) = ws.recv().await {
///         if ws.send(message).await.is_err() {
///             break;
///         }
///     }
/// }
///
/// let route = switchboard::router::Route::new(|ws, _info| echo(ws));
/// # async fn server() -> Result<(), switchboard::Error> {
/// switchboard::Server::bind("127.0.0.1:0").await?.serve(echo).await
/// # }
/// # let _ = route;
/// ```
pub type ServerWebSocket = WebSocket<ServerStream>;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
type Handler = dyn Fn(ServerWebSocket, ConnectionInfo) -> BoxFuture + Send + Sync;
type Authenticate = dyn Fn(&mut UpgradeRequest<'_>) -> Result<(), Reject> + Send + Sync;

/// How long a graceful shutdown waits for connections by default.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// One WebSocket endpoint: a handler and the options its connections get.
///
/// ```
/// use switchboard::router::Route;
/// use switchboard::WebSocketConfig;
///
/// let chat = Route::new(|mut ws, info| async move {
///     let _ = ws.send(format!("welcome, {}", info.client_ip())).await;
/// })
/// .protocols(["chat.v2", "chat.v1"])
/// .config(WebSocketConfig::default().max_message_size(64 << 10));
/// # let _ = chat;
/// ```
pub struct Route {
    handler: Box<Handler>,
    config: WebSocketConfig,
    protocols: Vec<String>,
    first_offered: bool,
    origins: OriginPolicy,
    authenticate: Option<Box<Authenticate>>,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("config", &self.config)
            .field("protocols", &self.protocols)
            .field("origins", &self.origins)
            .field("authenticate", &self.authenticate.is_some())
            .finish_non_exhaustive()
    }
}

impl Route {
    /// The subprotocols to answer `offer` with, the same over HTTP/1.1 and HTTP/2: the
    /// route's, or with `first_offered` and none configured, the client's first.
    fn protocols_for(
        &self,
        offer: &switchboard_protocol::handshake::ClientOffer,
    ) -> std::borrow::Cow<'_, [String]> {
        if self.first_offered && self.protocols.is_empty() {
            std::borrow::Cow::Owned(offer.protocols().first().cloned().into_iter().collect())
        } else {
            std::borrow::Cow::Borrowed(&self.protocols)
        }
    }

    /// An endpoint that runs `handler` on each accepted connection, in its own task.
    pub fn new<H, F>(handler: H) -> Route
    where
        H: Fn(ServerWebSocket, ConnectionInfo) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        Route {
            handler: Box::new(move |ws, info| Box::pin(handler(ws, info))),
            config: WebSocketConfig::default(),
            protocols: Vec::new(),
            first_offered: false,
            origins: OriginPolicy::any(),
            authenticate: None,
        }
    }

    /// The configuration this endpoint's connections get (limits, compression, timers);
    /// [`WebSocketConfig::default`] if not set.
    ///
    /// Its handshake timeout and head size hold too, though the route is only known once
    /// the head is read: the router reads heads up to the largest of its routes'
    /// `max_handshake_size` and waits up to the longest `handshake_timeout` (TLS included),
    /// then holds each request to its own route's (431, or the connection dropped).
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// The subprotocols this endpoint speaks, most preferred first (the server's
    /// preference decides, RFC 6455 §4.2.2).
    pub fn protocols(mut self, protocols: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// With no [`Route::protocols`] set, select the first subprotocol the client offers, as
    /// Node's `ws` server does: browsers and `ws` clients fail the handshake when they offer
    /// protocols and the server selects none. For endpoints that speak the same whatever
    /// the name, such as an echo server. Default off.
    pub fn first_offered_protocol(mut self, on: bool) -> Self {
        self.first_offered = on;
        self
    }

    /// Which pages may connect (403 for the others). Default: any.
    pub fn origins(mut self, origins: OriginPolicy) -> Self {
        self.origins = origins;
        self
    }

    /// A check that runs before the 101, after the protocol, limit and `Origin` checks:
    /// read credentials from headers, cookies or the query string; refuse with any status
    /// (401, 403, …) with a [`Reject`]; leave data for the handler in the request's
    /// extensions.
    pub fn authenticate(
        mut self,
        check: impl Fn(&mut UpgradeRequest<'_>) -> Result<(), Reject> + Send + Sync + 'static,
    ) -> Self {
        self.authenticate = Some(Box::new(check));
        self
    }
}

/// The handshake limits that hold before the route is known.
#[derive(Debug, Clone, Copy)]
struct HeadLimits {
    /// From accepting TCP to the 101 (TLS and, on HTTP/2, the preface included).
    timeout: Option<Duration>,
    /// The largest request head read.
    max_size: usize,
}

impl HeadLimits {
    fn of(config: &WebSocketConfig) -> Self {
        HeadLimits {
            timeout: config.handshake_timeout,
            max_size: config.protocol.max_handshake_size,
        }
    }

    /// What lets through everything either does (`None` is no limit, the loosest).
    fn loosest(a: Self, b: Self) -> Self {
        HeadLimits {
            timeout: a.timeout.zip(b.timeout).map(|(a, b)| a.max(b)),
            max_size: a.max_size.max(b.max_size),
        }
    }
}

/// Which requests a route takes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Exactly this path.
    Exact(String),
    /// This prefix and everything below it (`/rooms/*`).
    Prefix(String),
}

impl Pattern {
    fn parse(path: &str) -> Pattern {
        match path.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('/') => Pattern::Prefix(prefix.to_owned()),
            _ => Pattern::Exact(path.to_owned()),
        }
    }
}

/// A WebSocket server for several endpoints chosen by path; see the
/// [module documentation](self).
///
/// ```no_run
/// use std::time::Duration;
/// use switchboard::router::{Route, Router};
/// # async fn run() -> Result<(), switchboard::Error> {
/// let router = Router::new()
///     .route("/hello", Route::new(|mut ws, _info| async move {
///         let _ = ws.send("hello").await;
///     }))
///     .shutdown_timeout(Duration::from_secs(5));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// router
///     .serve_with_shutdown(listener, async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await
/// # }
/// ```
pub struct Router {
    routes: Vec<(Pattern, Arc<Route>)>,
    fallback: Option<Arc<Route>>,
    limits: Option<ConnectionLimiter>,
    proxies: TrustedProxies,
    /// What holds before the route is known: the loosest of the routes' handshake limits.
    head: HeadLimits,
    shutdown_timeout: Duration,
    /// Fired at shutdown: every connection closes with 1001 Going Away.
    going_away: GoingAway,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
    #[cfg(feature = "http2")]
    http2: crate::http2::Http2Config,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field(
                "routes",
                &self.routes.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.is_some())
            .field("limits", &self.limits)
            .field("proxies", &self.proxies)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl Router {
    /// A router with no routes (every path gets 404, with the handshake limits of
    /// [`WebSocketConfig::default`]), a 10 s shutdown timeout, no connection limits and no
    /// trusted proxies.
    pub fn new() -> Self {
        Router {
            routes: Vec::new(),
            fallback: None,
            limits: None,
            proxies: TrustedProxies::default(),
            head: HeadLimits::of(&WebSocketConfig::default()),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            going_away: GoingAway::new(),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "http2")]
            http2: crate::http2::Http2Config::default(),
        }
    }

    /// Serves `route` at `path`: exactly that path, or with a trailing `/*` every path
    /// below it (`/rooms/*` takes `/rooms/a` and `/rooms/a/b`). Exact paths win over
    /// prefixes, and longer prefixes over shorter ones. The query string is not part of
    /// the path.
    pub fn route(mut self, path: &str, route: Route) -> Self {
        self.routes.push((Pattern::parse(path), Arc::new(route)));
        self.head = self.head_limits();
        self
    }

    /// Serves `route` for every path no other route takes (instead of 404).
    pub fn fallback(mut self, route: Route) -> Self {
        self.fallback = Some(Arc::new(route));
        self.head = self.head_limits();
        self
    }

    /// The loosest handshake limits of the routes (the defaults with none).
    fn head_limits(&self) -> HeadLimits {
        self.routes
            .iter()
            .map(|(_, route)| route)
            .chain(&self.fallback)
            .map(|route| HeadLimits::of(&route.config))
            .reduce(HeadLimits::loosest)
            .unwrap_or_else(|| HeadLimits::of(&WebSocketConfig::default()))
    }

    /// Caps connections in total and per client address (see [`ConnectionLimiter`]).
    /// A client's place is taken when its TCP connection arrives (or, behind a trusted
    /// proxy, once its forwarded address is known) and freed when its handler returns.
    pub fn connection_limits(mut self, limiter: ConnectionLimiter) -> Self {
        self.limits = Some(limiter);
        self
    }

    /// Believes the forwarding header of these proxies for the client's address (limits,
    /// [`ConnectionInfo::client_ip`], logs).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// How long a graceful shutdown waits for connections to close before dropping
    /// them. Default 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Terminates TLS on every connection (`wss://`); see [`crate::tls::acceptor_from_pem`].
    ///
    /// With the `http2` feature the router sets the ALPN names itself: `h2` and
    /// `http/1.1`, or only `http/1.1` when [`Router::http2`] is off.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        #[cfg(feature = "http2")]
        self.offer_alpn();
        self
    }

    /// The HTTP/2 settings of TLS connections (feature `http2`): on by default;
    /// [`Http2Config::disabled`](crate::http2::Http2Config::disabled) is the kill switch
    /// that offers only HTTP/1.1. Every route accepts the extended CONNECT, so a router
    /// that speaks h2 always advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`.
    #[cfg(feature = "http2")]
    pub fn http2(mut self, config: crate::http2::Http2Config) -> Self {
        self.http2 = config;
        self.offer_alpn();
        self
    }

    /// Rebuilds the TLS acceptor with the ALPN names that match the HTTP/2 setting.
    #[cfg(feature = "http2")]
    fn offer_alpn(&mut self) {
        if let Some(acceptor) = &self.tls {
            let mut config = (**acceptor.config()).clone();
            config.alpn_protocols = crate::http2::alpn(self.http2.is_enabled());
            self.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        }
    }

    /// Accepts connections on `listener` forever, each in its own task.
    pub async fn serve(self, listener: TcpListener) -> Result<(), Error> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Like [`Router::serve`], and shuts down gracefully when `signal` completes: stops
    /// accepting, closes every connection with 1001 Going Away, waits up to
    /// [`Router::shutdown_timeout`] for the close handshakes and handlers to finish, then
    /// drops the connections still open and returns.
    ///
    /// A handler sees the close as `recv` returning `None` (with
    /// [`close_info`](crate::WebSocket::close_info) saying 1001), so a handler that keeps
    /// reading ends by itself.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        Arc::new(self).accept_loop(listener, signal).await
    }

    /// The body of [`Router::serve_with_shutdown`], on a router that several threads may
    /// share ([`Router::serve_threads`]): each runs its own loop and drains its own
    /// connections; `going_away` reaches all of them.
    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let going_away = self.going_away.clone();
        let grace = self.shutdown_timeout;
        crate::server::serve_connections(
            listener,
            signal,
            move |tcp, peer| self.clone().connection(tcp, peer),
            // Every connection closes with 1001; their tasks are all the loop waits for.
            move || {
                going_away.fire();
                std::future::ready(())
            },
            grace,
        )
        .await;
        Ok(())
    }

    /// The route for `path`: exact match, then the longest prefix, then the fallback.
    fn route_for(&self, path: &str) -> Option<&Arc<Route>> {
        let exact = self
            .routes
            .iter()
            .find(|(p, _)| matches!(p, Pattern::Exact(e) if e == path));
        let prefix = || {
            self.routes
                .iter()
                .filter_map(|(p, route)| match p {
                    Pattern::Prefix(prefix) if path.starts_with(prefix.as_str()) => {
                        Some((prefix.len(), route))
                    }
                    _ => None,
                })
                .max_by_key(|(len, _)| *len)
        };
        exact
            .map(|(_, route)| route)
            .or_else(|| prefix().map(|(_, route)| route))
            .or(self.fallback.as_ref())
    }

    /// One connection from accept to the end of its handler.
    ///
    /// The task's future stays small while the handler runs, so an idle connection costs
    /// little: the handshake (request head, header table, timeout: kilobytes) runs in its
    /// own boxed future that is freed before the handler starts, and the handler's future
    /// is made in a plain function, so neither the request nor the arguments of this one
    /// stay in the task's state.
    fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = ()> + Send + 'static {
        let admit = Box::pin(async move { self.admit(tcp, peer).await });
        async move {
            if let Some((handler, permit)) = admit.await.map(Admitted::start) {
                handler.await;
                drop(permit);
            }
        }
    }

    /// The connection limits, then the handshake within its timeout.
    async fn admit(self: &Arc<Self>, tcp: TcpStream, peer: SocketAddr) -> Option<Admitted> {
        // A client that is not a proxy is counted before it may send a byte, so one
        // address cannot hold more half-open handshakes than its limit.
        let mut permit = None;
        if let (Some(limiter), false) = (&self.limits, self.proxies.is_trusted(peer.ip())) {
            match limiter.try_acquire(peer.ip()) {
                Ok(p) => permit = Some(p),
                Err(over) => {
                    tracing::debug!(%peer, %over, "connection refused");
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        refuse(tcp, &over.rejection()),
                    )
                    .await;
                    return None;
                }
            }
        }
        let handshake = self.handshake(tcp, peer, permit, Instant::now());
        match self.head.timeout {
            Some(limit) => match tokio::time::timeout_at(Instant::now() + limit, handshake).await {
                Ok(accepted) => accepted,
                Err(_) => {
                    tracing::debug!(%peer, "opening handshake timed out");
                    None
                }
            },
            None => handshake.await,
        }
    }

    /// TLS (when configured), the request head, the checks, the 101.
    async fn handshake(
        self: &Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        mut permit: Option<ConnectionPermit>,
        started: Instant,
    ) -> Option<Admitted> {
        let mut stream = self.transport(tcp, peer).await?;
        #[cfg(feature = "http2")]
        if stream.alpn_is_h2() {
            return Some(Admitted::Http2(self.serve_h2(stream, peer), permit));
        }
        let (mut request, head_size, rest) =
            match read_head(&mut stream, self.head.max_size, parse_request).await {
                Ok(Head::Complete { head, size, rest }) => (head, size, rest),
                Ok(Head::Invalid(rejection)) => return refused(stream, peer, &rejection).await,
                Ok(Head::Eof) | Err(_) => return None,
            };
        let Some(route) = self.route_for(request.uri().path()) else {
            let rejection =
                Rejection::with_status(StatusCode::NOT_FOUND, "no WebSocket endpoint at this path");
            return refused(stream, peer, &rejection).await;
        };
        // The route's own limits, now that it is known (the head was read under the
        // loosest of all routes').
        let route_timeout = route.config.handshake_timeout;
        if route_timeout.is_some_and(|limit| started.elapsed() > limit) {
            tracing::debug!(%peer, "opening handshake timed out");
            return None;
        }
        if head_size > route.config.protocol.max_handshake_size {
            let rejection = Rejection::from(HandshakeError::HeadersTooLarge);
            return refused(stream, peer, &rejection).await;
        }
        if !is_upgrade_request(&request) {
            return refused(stream, peer, &not_an_upgrade()).await;
        }
        let offer = match validate_request(&request) {
            Ok(offer) => offer,
            Err(rejection) => return refused(stream, peer, &rejection).await,
        };
        let client_ip = match self.vet(route, &mut request, &offer, peer, &mut permit) {
            Ok(client_ip) => client_ip,
            Err(rejection) => return refused(stream, peer, &rejection).await,
        };
        let (response, pending) =
            negotiate(&offer, &route.config, &route.protocols_for(&offer)).split();
        let answered = answer(&mut stream, &response);
        match route_timeout {
            Some(limit) => tokio::time::timeout_at(started + limit, answered)
                .await
                .ok()?
                .ok()?,
            None => answered.await.ok()?,
        }
        let ws = pending.into_websocket_with_buffer(stream, rest);
        let info = ConnectionInfo {
            request,
            peer,
            client_ip,
        };
        Some(Admitted::WebSocket(self.accepted(route, ws, info, permit)))
    }

    /// The checks after the protocol's, the same over HTTP/1.1 and HTTP/2: the client's
    /// address through trusted proxies, the connection limits (unless `permit` is already
    /// held), the `Origin` policy and the route's `authenticate` callback. Gives the
    /// client's address, or the refusal to send.
    fn vet(
        &self,
        route: &Route,
        request: &mut http::Request<()>,
        offer: &switchboard_protocol::handshake::ClientOffer,
        peer: SocketAddr,
        permit: &mut Option<ConnectionPermit>,
    ) -> Result<std::net::IpAddr, Box<Rejection>> {
        let client_ip = self.proxies.client_ip(peer.ip(), request.headers());
        if let (Some(limiter), None) = (&self.limits, &permit) {
            match limiter.try_acquire(client_ip) {
                Ok(p) => *permit = Some(p),
                Err(over) => return Err(Box::new(over.rejection())),
            }
        }
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .or_else(|| request.uri().authority().map(http::uri::Authority::as_str));
        let origin = request.headers().get(http::header::ORIGIN);
        if let Err(refusal) = route.origins.check_request(origin, host, self.scheme()) {
            return Err(Box::new(Rejection::with_status(
                StatusCode::FORBIDDEN,
                &refusal.to_string(),
            )));
        }
        if let Some(authenticate) = &route.authenticate {
            let mut view = UpgradeRequest {
                request,
                peer,
                client_ip,
                protocols: offer.protocols(),
            };
            authenticate(&mut view).map_err(|reject| Box::new(reject.into_rejection()))?;
        }
        Ok(client_ip)
    }

    /// A connection that passed the handshake, the same over HTTP/1.1 and HTTP/2: it
    /// closes with 1001 when the router shuts down.
    fn accepted(
        &self,
        route: &Arc<Route>,
        mut ws: ServerWebSocket,
        info: ConnectionInfo,
        permit: Option<ConnectionPermit>,
    ) -> Accepted {
        ws.close_on(&self.going_away);
        Accepted {
            ws,
            info,
            route: route.clone(),
            permit,
        }
    }

    /// The scheme requests come over, for the `Origin` check.
    fn scheme(&self) -> &'static str {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return "https";
        }
        "http"
    }

    /// The stream the handshake runs on: TLS is terminated here when configured.
    async fn transport(&self, tcp: TcpStream, peer: SocketAddr) -> Option<ServerStream> {
        #[cfg(feature = "tls")]
        if let Some(acceptor) = &self.tls {
            return match acceptor.accept(tcp).await {
                Ok(tls) => Some(ServerStream::Tls(Box::new(tls))),
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    None
                }
            };
        }
        let _ = peer;
        Some(ServerStream::Plain(tcp))
    }
}

/// What a connection's task runs after the handshake.
#[cfg_attr(
    feature = "http2",
    expect(
        clippy::large_enum_variant,
        reason = "made once per connection and moved straight into `start`; boxing would cost the HTTP/1.1 path an allocation"
    )
)]
enum Admitted {
    /// One WebSocket (HTTP/1.1).
    WebSocket(Accepted),
    /// An HTTP/2 connection, which serves its WebSocket streams itself, and the
    /// connection's permit.
    #[cfg(feature = "http2")]
    Http2(BoxFuture, Option<ConnectionPermit>),
}

impl Admitted {
    /// The future to run for the rest of the connection, and the permit to hold meanwhile.
    fn start(self) -> (BoxFuture, Option<ConnectionPermit>) {
        match self {
            Admitted::WebSocket(accepted) => accepted.start(),
            #[cfg(feature = "http2")]
            Admitted::Http2(serve, permit) => (serve, permit),
        }
    }
}

/// A connection that passed the handshake, with what its task needs.
struct Accepted {
    ws: ServerWebSocket,
    info: ConnectionInfo,
    route: Arc<Route>,
    permit: Option<ConnectionPermit>,
}

impl Accepted {
    /// The route's handler for this connection, and the permit to hold while it runs.
    fn start(self) -> (BoxFuture, Option<ConnectionPermit>) {
        tracing::debug!(peer = %self.info.peer, client = %self.info.client_ip, path = self.info.path(), version = ?self.info.request.version(), "WebSocket connection accepted");
        ((self.route.handler)(self.ws, self.info), self.permit)
    }
}

/// Sends a refusal and ends the connection.
async fn refused(
    stream: ServerStream,
    peer: SocketAddr,
    rejection: &Rejection,
) -> Option<Admitted> {
    tracing::debug!(%peer, status = %rejection.status(), error = %rejection.error, "WebSocket handshake refused");
    refuse(stream, rejection).await;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let noop = || Route::new(|_ws, _info| async {});
        Router::new()
            .route("/chat", noop())
            .route("/rooms/*", noop().protocols(["rooms"]))
            .route("/rooms/vip/*", noop().protocols(["vip"]))
            .route("/rooms/lobby", noop().protocols(["lobby"]))
    }

    fn protocols(route: Option<&Arc<Route>>) -> Option<Vec<String>> {
        route.map(|r| r.protocols.clone())
    }

    #[tokio::test]
    async fn a_connection_task_holds_little_while_its_handler_runs() {
        // Every open connection is one such task; the handshake's kilobytes must not be in
        // it (see `Router::connection`). The handler's own future is boxed separately.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        let task = Arc::new(router()).connection(tcp, peer);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 128, "the connection future is {size} bytes");
        drop((task, client));
    }

    #[test]
    fn exact_paths_then_the_longest_prefix() {
        let r = router();
        assert_eq!(protocols(r.route_for("/chat")), Some(vec![]));
        assert_eq!(
            protocols(r.route_for("/rooms/a")),
            Some(vec!["rooms".to_owned()])
        );
        assert_eq!(
            protocols(r.route_for("/rooms/a/b")),
            Some(vec!["rooms".to_owned()])
        );
        assert_eq!(
            protocols(r.route_for("/rooms/vip/x")),
            Some(vec!["vip".to_owned()])
        );
        assert_eq!(
            protocols(r.route_for("/rooms/lobby")),
            Some(vec!["lobby".to_owned()])
        );
        assert!(r.route_for("/chat/").is_none());
        assert!(r.route_for("/rooms").is_none());
        assert!(r.route_for("/").is_none());
        let with_fallback = router().fallback(Route::new(|_ws, _info| async {}).protocols(["any"]));
        assert_eq!(
            protocols(with_fallback.route_for("/")),
            Some(vec!["any".to_owned()])
        );
    }
}
