//! [`HubServer`]: the hub, its router and the accept loop.
//!
//! The accept loop is ours rather than `axum::serve` for two reasons: every request gets a
//! [`ConnectionControl`] so that a transport can drop a client that stopped reading (see
//! `transport::conn`), and shutdown can both drain politely and bound how long it waits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicUsize, Ordering};
use switchboard::security::{ConnectionLimiter, LimitExceeded};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt as _;

use crate::config::HubConfig;
use crate::hub::Hub;
use crate::transport::{ApiError, ConnectionControl, Registry};

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
pub async fn bind(config: &HubConfig) -> std::io::Result<TcpListener> {
    let std =
        switchboard::router::listener_with_backlog(config.listen, config.limits.listen_backlog)?;
    TcpListener::from_std(std)
}

/// A hub with its HTTP server: build it, then [`HubServer::serve`] or take its
/// [`HubServer::router`] into a larger axum app.
pub struct HubServer {
    hub: Hub,
    config: HubConfig,
    closing_tx: watch::Sender<bool>,
    registry: Arc<Registry>,
    #[cfg(feature = "tls")]
    tls: Option<switchboard::tls::TlsAcceptor>,
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
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serves https:// and wss:// through `acceptor` (see
    /// `switchboard::tls::acceptor_from_pem`) instead of plain HTTP (feature `tls`).
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, acceptor: switchboard::tls::TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
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

    /// Serves HTTP/1.1 on `listener` until `shutdown` completes; then stops accepting, asks
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
        let mut shutdown = std::pin::pin!(shutdown);
        let limiter = connection_limiter(&self.config);
        // Connections over a limit are answered, but only this many at once (each holds a
        // descriptor for up to REFUSAL_HEADER_TIMEOUT); beyond that they are closed unread.
        let refusals = Arc::new(AtomicUsize::new(0));
        let max_refusals = (limiter.max_total() / 16).clamp(8, 256);
        let proxies = self.config.trusted_proxies();
        let mut errors = switchboard::AcceptErrors::new();
        tracing::debug!(?limiter, "connection limits");
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = switchboard::accept_connection(&listener, &mut errors) => accepted,
                _ = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            // A proxy carries many clients: it counts toward the total only.
            let permit = if proxies.is_trusted(peer.ip()) {
                limiter.try_acquire_unkeyed()
            } else {
                limiter.try_acquire(peer.ip())
            };
            let permit = match permit {
                Ok(permit) => permit,
                Err(over) => {
                    if refusals.fetch_add(1, Ordering::Relaxed) < max_refusals {
                        let refusals = Arc::clone(&refusals);
                        let hub = self.hub.clone();
                        tokio::spawn(async move {
                            refuse_connection(hub, tcp, peer, over).await;
                            refusals.fetch_sub(1, Ordering::Relaxed);
                        });
                    } else {
                        refusals.fetch_sub(1, Ordering::Relaxed);
                        tracing::trace!(%peer, "over the connection limit, closed unread");
                    }
                    continue;
                }
            };
            let control = ConnectionControl::new(peer, Some(alive_tx.clone()), &self.registry)
                .holding(permit);
            #[cfg(feature = "tls")]
            if let Some(acceptor) = &self.tls {
                let (acceptor, router, closing) =
                    (acceptor.clone(), router.clone(), closing.clone());
                tokio::spawn(async move {
                    // The handshake counts against the time a client has for its head.
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => serve_connection(tls, peer, router, control, closing).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                continue;
            }
            tokio::spawn(serve_connection(
                tcp,
                peer,
                router.clone(),
                control,
                closing.clone(),
            ));
        }
        tracing::info!("shutting down: closing streams and connections");
        self.closing_tx.send_replace(true);
        drop(alive_tx);
        drop(listener);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, alive_rx.recv()).await;
        if drained.is_err() {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
        }
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

async fn serve_connection<I>(
    tcp: I,
    peer: SocketAddr,
    router: Router,
    control: ConnectionControl,
    mut closing: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let control = control.clone();
        tower::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(control.clone());
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
        .with_upgrades();
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
