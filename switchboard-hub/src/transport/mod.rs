//! The HTTP side of the hub: one axum [`Router`] serving every transport.
//!
//! | route | transport |
//! | --- | --- |
//! | `POST /api/channels/{channel}/messages` | publish (JSON or text body) |
//! | `GET /api/channels/{channel}/messages?since=&limit=` | history |
//! | `GET /api/channels` | channels, subscriber and presence counts |
//! | `GET /api/channels/{channel}/presence?limit=` | who is in the channel |
//! | `GET /sse/{channel}?since=&format=` | Server-Sent Events |
//! | `GET /poll/{channel}?since=&timeout=&limit=` | long polling |
//! | `GET /ws` | WebSocket, JSON protocol, several channels |
//! | `GET /ws/{channel}?since=` | WebSocket chat room: plain text in and out |
//! | `GET /healthz`, `GET /metrics` | health, Prometheus |
//! | `GET /`, `GET /switchboard.js` | the chat page and the browser client (`web/`) |
//! | `GET /api/admin/connections`, `POST /api/admin/disconnect` | subscriber connections (only with `admin_api = true`) |
//!
//! Each handler is a thin translation between HTTP and [`Hub`]; what they share (origin and
//! token checks, rate limits, parameter parsing, the error mapping) lives in its own module.

mod access;
mod admin;
pub mod command;
mod conn;
mod cors;
pub mod error;
mod outbox;
mod params;
mod poll;
mod presence;
mod rest;
mod sse;
mod web;
mod wire;
mod ws;

use std::net::IpAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::config::HubConfig;
use crate::hub::Hub;
use crate::security::{JwtKey, KeyedRateLimiter, OriginPolicy, RateLimit};
use switchboard::security::TrustedProxies;

pub use conn::ConnectionControl;
pub(crate) use conn::Registry;

/// A request extension: the connection it came on is TLS that the hub itself terminated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverTls;
pub use error::ApiError;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState(Arc<StateInner>);

pub(crate) struct StateInner {
    pub(crate) hub: Hub,
    pub(crate) config: HubConfig,
    pub(crate) origins: OriginPolicy,
    pub(crate) jwt: Option<JwtKey>,
    /// REST publishes per client address.
    pub(crate) ip_rate: KeyedRateLimiter<IpAddr>,
    /// WebSocket frames per client address, across all its connections: opening more
    /// connections buys no more rate.
    pub(crate) ws_ip_rate: KeyedRateLimiter<IpAddr>,
    /// Reads (history, polls, streams, subscribes) per client address.
    pub(crate) read_ip_rate: KeyedRateLimiter<IpAddr>,
    /// The proxies whose forwarding header names the client (`trust_proxy`).
    pub(crate) proxies: TrustedProxies,
    /// Turns `true` when the server begins shutting down: long-lived streams end then, so
    /// that graceful shutdown does not wait for clients that never leave.
    pub(crate) closing: watch::Receiver<bool>,
    /// Live subscriber connections, for the admin API.
    pub(crate) registry: Arc<conn::Registry>,
    /// Set once the task that relays `closing` to every connection's control is running
    /// (see [`relay_closing`]).
    closing_relay: std::sync::OnceLock<()>,
}

impl std::ops::Deref for AppState {
    type Target = StateInner;

    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    pub(crate) fn new(
        hub: Hub,
        config: HubConfig,
        closing: watch::Receiver<bool>,
        registry: Arc<conn::Registry>,
    ) -> Self {
        let rate = RateLimit {
            per_second: config.rate_limit.messages_per_second,
            burst: config.rate_limit.burst,
        };
        Self(Arc::new(StateInner {
            origins: OriginPolicy::allow(&config.allowed_origins).hosts(&config.allowed_hosts),
            jwt: config
                .auth
                .as_ref()
                .map(|a| JwtKey::new(a.jwt_secret.as_bytes())),
            ip_rate: KeyedRateLimiter::new(rate, 100_000),
            ws_ip_rate: KeyedRateLimiter::new(
                RateLimit {
                    per_second: config.rate_limit.per_ip_messages_per_second,
                    burst: config.rate_limit.per_ip_burst,
                },
                100_000,
            ),
            read_ip_rate: KeyedRateLimiter::new(
                RateLimit {
                    per_second: config.rate_limit.per_ip_reads_per_second,
                    burst: config.rate_limit.per_ip_read_burst,
                },
                100_000,
            ),
            proxies: config.trusted_proxies(),
            hub,
            config,
            closing,
            registry,
            closing_relay: std::sync::OnceLock::new(),
        }))
    }

    /// The per-connection publish rate limit.
    pub(crate) fn rate_limit(&self) -> RateLimit {
        RateLimit {
            per_second: self.config.rate_limit.messages_per_second,
            burst: self.config.rate_limit.burst,
        }
    }
}

/// Completes when the server starts shutting down; never, if the server handle is gone
/// without having signalled (a router used on its own).
pub(crate) async fn closing(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|closing| *closing).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Makes the server's closing signal reach `control` as [`ConnectionControl::shut_down`], so
/// that a WebSocket task waits on one notification for "killed" and "shutting down"
/// ([`ConnectionControl::stopped`]) instead of a future for each in every idle connection.
/// The relay is one task per router, started by the first connection that asks; a
/// connection that starts after the signal is marked here at once.
pub(crate) fn relay_closing(state: &AppState, control: &ConnectionControl) {
    state.closing_relay.get_or_init(|| {
        let mut rx = state.closing.clone();
        // Weak: the relay must not keep a dropped router's registry alive.
        let registry = Arc::downgrade(&state.registry);
        tokio::spawn(async move {
            closing(&mut rx).await;
            if let Some(registry) = registry.upgrade() {
                registry.shut_down_all();
            }
        });
    });
    // After the relay exists: a control registered before the relay reads the registry is
    // reached by it; one registered later finds the signal already set here.
    if *state.closing.borrow() {
        control.shut_down();
    }
}

/// Completes at `at`, never when `None` (a token's expiry, when it has one).
pub(crate) async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Builds the router. `closing` turns `true` when the server shuts down.
pub(crate) fn router(
    hub: Hub,
    config: HubConfig,
    closing: watch::Receiver<bool>,
    registry: Arc<conn::Registry>,
) -> Router {
    let admin = config.admin_api;
    let state = AppState::new(hub, config, closing, registry);
    let router = Router::new()
        .route("/", get(web::index))
        .route("/switchboard.js", get(web::client_js))
        .route("/favicon.ico", get(web::favicon))
        .route("/healthz", get(rest::healthz))
        .route("/metrics", get(rest::metrics))
        .route("/api/channels", get(rest::channels))
        .route(
            "/api/channels/{channel}/messages",
            get(rest::history).post(rest::publish),
        )
        .route("/api/channels/{channel}/presence", get(presence::rest))
        .route("/sse/{channel}", get(sse::sse))
        .route("/poll/{channel}", get(poll::poll))
        // CONNECT as well as GET: an HTTP/2 WebSocket is an extended CONNECT (RFC 8441).
        .route(
            "/ws",
            get(ws::protocol::handler).connect(ws::protocol::handler),
        )
        .route(
            "/ws/{channel}",
            get(ws::chat::handler).connect(ws::chat::handler),
        )
        .fallback(rest::not_found);
    let router = if admin {
        router
            .route("/api/admin/connections", get(admin::connections))
            .route(
                "/api/admin/disconnect",
                axum::routing::post(admin::disconnect),
            )
    } else {
        router
    };
    // Last: they apply to the routes added so far.
    router
        .method_not_allowed_fallback(rest::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::guard,
        ))
        .with_state(state)
}

/// The `/healthz` answer, also given to connections refused over a limit:
/// `{"status":"ok","broker":{"kind":"memory","state":"up"}}`; when the broker's store is
/// unreachable, 503 with `"status":"degraded"` and `"state":"down"` (a load balancer then
/// prefers nodes that can publish; connected subscribers stay).
pub(crate) fn healthz_response(hub: &Hub) -> axum::response::Response {
    let broker = hub.broker_health();
    let (status, word) = match broker.state {
        crate::broker::BrokerState::Up => (http::StatusCode::OK, "ok"),
        crate::broker::BrokerState::Down => (http::StatusCode::SERVICE_UNAVAILABLE, "degraded"),
    };
    wire::sorted_response(
        status,
        &wire::Health {
            status: word,
            broker,
        },
    )
}

/// The request's connection handle, or a new unowned one when the router is mounted in
/// another server.
pub(crate) fn control_of(state: &AppState, extensions: &http::Extensions) -> ConnectionControl {
    extensions
        .get::<ConnectionControl>()
        .cloned()
        .unwrap_or_else(|| {
            let peer = access::peer_ip(extensions)
                .map_or_else(|| ([0, 0, 0, 0], 0).into(), |ip| (ip, 0).into());
            ConnectionControl::new(peer, None, &state.registry)
        })
}
