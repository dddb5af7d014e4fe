//! [`HubServer`]: the hub, its router and the accept loop.
//!
//! The accept loop is the library's ([`switchboard::serve_connections`], the one the
//! library's `Router` runs) rather than `axum::serve`, for two reasons: every request gets
//! a [`ConnectionControl`] so that a transport can drop a client that stopped reading (see
//! `transport::conn`), and shutdown can both drain politely and bound how long it waits.
//! What is the hub's is what it does per connection: the caps of
//! [`ConnectionLimiter`] (a proxy counts toward the total only), answering a connection
//! over them (`/healthz` still works), TLS and the HTTP server.
//!
//! The HTTP server, on HTTP/1.1: the hub's own driver (`front`) reads each request head
//! and serves `GET /sse/{channel}` and `GET /poll/{channel}` itself, through the same
//! router, because those hold a connection for minutes and hyper's connection keeps 24 KiB
//! of buffers all that time; any other request hands the connection to hyper (the bytes
//! read so far first), which serves it from then on. HTTP/2 is hyper's.
//!
//! With [`HubServer::with_tls`] it serves `https://`, and speaks HTTP/2 to clients that pick
//! `h2` over ALPN (every browser): REST, SSE, long polls, the page and WebSockets (RFC 8441
//! extended CONNECT, advertised because every WebSocket route takes CONNECT) then share one
//! connection, so a page's many `EventSource`s no longer run into the six-connections
//! limit of HTTP/1.1. [`HubServer::http2`] turns it off. Plain-text HTTP/2 (h2c) is not
//! offered: plain connections are HTTP/1.1 only, which is what a proxy in front speaks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicUsize, Ordering};
use switchboard::http2::Http2Config;
use switchboard::security::{ConnectionLimiter, LimitExceeded};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::HubConfig;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::transport::{ApiError, ConnectionControl, Registry};
use bytes::Bytes;
use front::Rewind;
use http::Version;
use tokio::io::{AsyncRead, AsyncWrite};

mod front;

/// How long shutdown waits for open connections after asking them to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How often idle channels are swept away.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a connection over a limit may take to send its request head before it is
/// dropped: it is answered only so that `/healthz` works and clients learn to come back.
const REFUSAL_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds the listener `config` asks for: `listen` with a kernel accept queue of
/// `limits.listen_backlog` (so that a reconnect storm is queued, not dropped).
///
/// ```no_run
/// use switchboard_hub::{bind, HubConfig, HubServer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = HubConfig::from_toml("listen = \"127.0.0.1:8080\"\n[limits]\nlisten_backlog = 1024")?;
/// let listener = bind(&config).await?;
/// println!("listening on {}", listener.local_addr()?);
/// HubServer::new(config).serve(listener, std::future::pending()).await?;
/// # Ok(())
/// # }
/// ```
pub async fn bind(config: &HubConfig) -> std::io::Result<TcpListener> {
    let std =
        switchboard::router::listener_with_backlog(config.listen, config.limits.listen_backlog)?;
    TcpListener::from_std(std)
}

/// A hub with its HTTP server: build it, then [`HubServer::serve`] or take its
/// [`HubServer::router`] into a larger axum app.
///
/// ```no_run
/// use switchboard_hub::core::{ChannelName, Payload};
/// use switchboard_hub::metrics::Transport;
/// use switchboard_hub::{bind, HubConfig, HubServer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = HubConfig::load("switchboard.toml".as_ref())?;
/// let listener = bind(&config).await?;
/// let server = HubServer::connect(config).await?; // the broker the config names
/// let hub = server.hub().clone(); // publish from this process too
/// tokio::spawn(async move {
///     let ticks = ChannelName::new("ticks").unwrap();
///     let _ = hub.publish(&ticks, Payload::text("tick"), Transport::Rest).await;
/// });
/// server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(())
/// # }
/// ```
pub struct HubServer {
    hub: Hub,
    config: HubConfig,
    closing_tx: watch::Sender<bool>,
    registry: Arc<Registry>,
    tls: Option<TlsAcceptor>,
    http2: Http2Config,
}

impl HubServer {
    /// A server over an in-memory hub configured by `config`.
    pub fn new(config: HubConfig) -> Self {
        let hub = Hub::in_memory(config.memory_broker(), config.hub_options());
        Self::with_hub(hub, config)
    }

    /// A server over the broker `config.broker` names: the in-memory one, or Redis (which
    /// is connected first: an unreachable Redis is an error naming its URL, so that a node
    /// never serves alone while believing it shares channels).
    pub async fn connect(config: HubConfig) -> Result<Self, crate::BrokerError> {
        match config.broker.kind {
            crate::config::BrokerKind::Memory => Ok(Self::new(config)),
            crate::config::BrokerKind::Redis => {
                let broker = crate::broker::RedisBroker::connect(config.redis_broker()).await?;
                let hub = Hub::new(Arc::new(broker), config.hub_options());
                Ok(Self::with_hub(hub, config))
            }
        }
    }

    /// A server over an existing hub (for another broker, or to publish from the same
    /// process).
    pub fn with_hub(hub: Hub, config: HubConfig) -> Self {
        Self {
            hub,
            config,
            closing_tx: watch::channel(false).0,
            registry: Arc::default(),
            tls: None,
            http2: Http2Config::default(),
        }
    }

    /// Serves `https://` with this TLS acceptor; its ALPN names are set here from the
    /// HTTP/2 setting (`h2` and `http/1.1`, or `http/1.1` alone).
    pub fn with_tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self.offer_alpn();
        self
    }

    /// HTTP/2 over TLS: on by default, with the library's window and stream sizes
    /// ([`Http2Config`]); [`Http2Config::disabled`] is the kill switch (`--no-http2`).
    pub fn http2(mut self, config: Http2Config) -> Self {
        self.http2 = config;
        self.offer_alpn();
        self
    }

    fn offer_alpn(&mut self) {
        if let Some(acceptor) = &self.tls {
            let mut config = (**acceptor.config()).clone();
            config.alpn_protocols = self.http2.alpn_protocols();
            self.tls = Some(TlsAcceptor::from(Arc::new(config)));
        }
    }

    /// The HTTP server for one connection: HTTP/1.1 with upgrades, or HTTP/2 with the
    /// extended CONNECT and the library's flow-control sizes.
    fn http_builder(&self, h2: bool) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            // The head limit the hub's own driver enforces too (431 above it).
            .max_buf_size(front::MAX_HEAD);
        builder
            .http2()
            .timer(TokioTimer::new())
            .enable_connect_protocol()
            .initial_stream_window_size(self.http2.stream_window_bytes())
            .initial_connection_window_size(self.http2.connection_window_bytes())
            .max_concurrent_streams(self.http2.max_streams())
            .max_send_buf_size(self.http2.send_buffer_bytes());
        if h2 {
            builder.http2_only()
        } else {
            builder.http1_only()
        }
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The router with every endpoint.
    pub fn router(&self) -> Router {
        crate::transport::router(
            self.hub.clone(),
            self.config.clone(),
            self.closing_tx.subscribe(),
            Arc::clone(&self.registry),
        )
    }

    /// Serves HTTP/1.1 (and with [`HubServer::with_tls`], HTTPS with HTTP/2) on `listener` until `shutdown` completes; then stops accepting, asks
    /// streams and WebSockets to finish (SSE streams end, WebSockets close with 1001 "going
    /// away", long polls answer), and waits up to 10 s for them.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let sweeper = {
            let hub = self.hub.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_INTERVAL);
                loop {
                    tick.tick().await;
                    let dropped = hub.sweep().await;
                    if dropped > 0 {
                        tracing::debug!(dropped, "swept idle channels");
                    }
                }
            })
        };
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let closing = self.closing_tx.subscribe();
        let limiter = connection_limiter(&self.config);
        // Connections over a limit are answered, but only this many at once (each holds a
        // descriptor for up to REFUSAL_HEADER_TIMEOUT); beyond that they are closed unread.
        let refusals = Arc::new(AtomicUsize::new(0));
        let max_refusals = (limiter.max_total() / 16).clamp(8, 256);
        let proxies = self.config.trusted_proxies();
        tracing::debug!(?limiter, "connection limits");
        // Shared: a connection's task holds a pointer, not two builders (about 600 bytes).
        let builders = Arc::new(Builders {
            h1: self.http_builder(false),
            h2: self.http_builder(true),
        });
        let (registry, hub, tls) = (&self.registry, &self.hub, &self.tls);
        let connection = move |tcp: TcpStream, peer: SocketAddr| {
            // A proxy carries many clients: it counts toward the total only.
            let permit = if proxies.is_trusted(peer.ip()) {
                limiter.try_acquire_unkeyed()
            } else {
                limiter.try_acquire(peer.ip())
            };
            let accepted = match permit {
                Ok(permit) => Ok(Conn {
                    peer,
                    router: router.clone(),
                    control: ConnectionControl::new(peer, Some(alive_tx.clone()), registry)
                        .holding(permit),
                    closing: closing.clone(),
                    metrics: Arc::clone(hub.metrics()),
                    tls: tls.clone(),
                }),
                Err(over) => Err(over),
            };
            let builders = Arc::clone(&builders);
            let refusals = Arc::clone(&refusals);
            let hub = hub.clone();
            async move {
                match accepted {
                    Ok(conn) => conn.start(tcp, builders).await,
                    Err(over) => {
                        if refusals.fetch_add(1, Ordering::Relaxed) < max_refusals {
                            refuse_connection(hub, tcp, peer, over).await;
                        } else {
                            tracing::trace!(%peer, "over the connection limit, closed unread");
                        }
                        refusals.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        };
        // Stopping: streams and WebSockets are told to finish, and the loop waits for every
        // `ConnectionControl` (upgraded WebSockets run on tasks of their own) as well as for
        // the connections' tasks.
        let closing_tx = &self.closing_tx;
        let stop = move || {
            closing_tx.send_replace(true);
            // The loop has dropped `connection`, and with it the last spare `alive_tx`.
            async move {
                let _ = alive_rx.recv().await;
            }
        };
        switchboard::serve_connections(listener, shutdown, connection, stop, SHUTDOWN_GRACE).await;
        // Entries still in their grace period (and any a stuck connection holds) leave now:
        // on a shared broker, other nodes see this node's clients go at once.
        self.hub.shutdown_presence().await;
        sweeper.abort();
        Ok(())
    }
}

/// The connection caps `config` asks for; `limits.max_connections = 0` leaves headroom
/// below the process's open-file limit.
fn connection_limiter(config: &HubConfig) -> ConnectionLimiter {
    let per_ip = config.limits.max_connections_per_ip;
    match config.limits.max_connections {
        0 => ConnectionLimiter::within_fd_limit(per_ip),
        total => ConnectionLimiter::new(total, per_ip),
    }
}

/// Answers a connection over a limit: `/healthz` as usual (a load balancer must still see
/// a live server), anything else 503 (server full) or 429 (this client holds too many)
/// with `Retry-After`; then closes it.
async fn refuse_connection(hub: Hub, tcp: TcpStream, peer: SocketAddr, over: LimitExceeded) {
    tracing::debug!(%peer, %over, "connection over a limit");
    let error = match over {
        LimitExceeded::PerClient { .. } => ApiError::TooManyConnections { per_client: true },
        _ => ApiError::TooManyConnections { per_client: false },
    };
    let service = tower::service_fn(move |req: hyper::Request<Incoming>| {
        let error = error.clone();
        let hub = hub.clone();
        async move {
            let res = if req.uri().path() == "/healthz" {
                crate::transport::healthz_response(&hub)
            } else {
                axum::response::IntoResponse::into_response(error)
            };
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(false)
        .header_read_timeout(REFUSAL_HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
    let _ = tokio::time::timeout(REFUSAL_HEADER_TIMEOUT * 2, conn).await;
}

/// The HTTP servers of every connection: HTTP/1.1 with upgrades, and HTTP/2.
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

/// What one connection's task needs.
struct Conn {
    peer: SocketAddr,
    router: Router,
    control: ConnectionControl,
    closing: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    /// The TLS acceptor, if the hub serves `https://`.
    tls: Option<TlsAcceptor>,
}

impl Conn {
    /// TLS (when configured, within `HEADER_TIMEOUT`), then HTTP: `h1`, or `h2` when the
    /// client picked it over ALPN.
    async fn start(self, tcp: TcpStream, builders: Arc<Builders>) {
        let Some(acceptor) = self.tls.clone() else {
            return self.serve(tcp, builders, Version::HTTP_11).await;
        };
        // Boxed, as is what follows: a TLS stream is large, and only its connections pay.
        Box::pin(self.start_tls(tcp, acceptor, builders)).await;
    }

    /// The TLS handshake, then [`Conn::serve`] over it.
    async fn start_tls(self, tcp: TcpStream, acceptor: TlsAcceptor, builders: Arc<Builders>) {
        let accept = Box::pin(acceptor.accept(tcp));
        let tls = match tokio::time::timeout(HEADER_TIMEOUT, accept).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        };
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            self.serve(tls, builders, Version::HTTP_2).await
        } else {
            self.serve(tls, builders, Version::HTTP_11).await
        }
    }

    /// Serves HTTP (`version`) on `io` until the client
    /// goes, the connection is killed, or shutdown. HTTP/1.1 starts with the hub's own
    /// driver (`front`), which serves SSE streams and long polls and hands anything else
    /// to hyper; HTTP/2 is hyper's from the start.
    async fn serve<I>(self, io: I, builders: Arc<Builders>, version: Version)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        tracing::debug!(peer = %self.peer, ?version, "connection");
        self.metrics.record_http_connection(version);
        if version == Version::HTTP_2 {
            // Boxed: a plain connection's task would otherwise have room for hyper's.
            let io = Rewind::new(Bytes::new(), io);
            return Box::pin(self.serve_hyper(io, &builders.h2)).await;
        }
        let front = front::Front {
            router: self.router.clone(),
            control: self.control.clone(),
            peer: self.peer,
            tls: self.tls.is_some(),
            metrics: Arc::clone(&self.metrics),
        };
        let outcome = tokio::select! {
            outcome = front.serve(io, self.closing.clone()) => outcome,
            _ = self.control.killed() => {
                tracing::debug!(peer = %self.peer, "connection killed");
                return;
            }
        };
        drop(front);
        if let front::Outcome::Handover(io) = outcome {
            // Boxed: the connection's task stays the front's size while hyper is not used.
            Box::pin(self.serve_hyper(io, &builders.h1)).await;
        }
    }

    /// Hands `io` to hyper until the client goes, the connection is killed, or shutdown;
    /// then finishes politely (HTTP/2: GOAWAY, after which the open streams end on the
    /// closing signal: WebSockets with 1001).
    async fn serve_hyper<I>(self, io: Rewind<I>, builder: &auto::Builder<TokioExecutor>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            peer,
            router,
            control,
            mut closing,
            metrics,
            tls,
        } = self;
        // Its requests were made to an `https://` origin, which the Origin check must know
        // on HTTP/1.1 (HTTP/2 carries `:scheme` itself).
        let tls = tls.is_some();
        let service = {
            let control = control.clone();
            tower::service_fn(move |req: hyper::Request<Incoming>| {
                metrics.record_http_request(req.version());
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(control.clone());
                req.extensions_mut().insert(ConnectInfo(peer));
                if tls {
                    req.extensions_mut().insert(crate::transport::OverTls);
                }
                router.clone().oneshot(req)
            })
        };
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = control.killed() => {
                tracing::debug!(%peer, "connection killed");
                return;
            }
            _ = crate::transport::closing(&mut closing) => {}
        }
        conn.as_mut().graceful_shutdown();
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = control.killed() => {}
        }
    }
}
