//! [`HubServer`]: the hub, its router and a graceful `serve` loop.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::HubConfig;
use crate::hub::Hub;

/// How long shutdown waits for open connections after asking them to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How often idle channels are swept away.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// A hub with its HTTP server: build it, then [`HubServer::serve`] or take its
/// [`HubServer::router`] into a larger axum app.
pub struct HubServer {
    hub: Hub,
    config: HubConfig,
    closing_tx: watch::Sender<bool>,
}

impl HubServer {
    /// A server over an in-memory hub configured by `config`.
    pub fn new(config: HubConfig) -> Self {
        let hub = Hub::in_memory(config.memory_broker(), config.hub_options());
        Self::with_hub(hub, config)
    }

    /// A server over an existing hub (for another broker, or to publish from the same
    /// process).
    pub fn with_hub(hub: Hub, config: HubConfig) -> Self {
        Self {
            hub,
            config,
            closing_tx: watch::channel(false).0,
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
        )
    }

    /// Serves on `listener` until `shutdown` completes, then asks streams and WebSockets to
    /// finish (SSE streams end, WebSockets close with 1001 "going away", long polls answer)
    /// and waits up to 10 s for them.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let sweeper = {
            let hub = self.hub.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_INTERVAL);
                loop {
                    tick.tick().await;
                    let dropped = hub.sweep();
                    if dropped > 0 {
                        tracing::debug!(dropped, "swept idle channels");
                    }
                }
            })
        };
        let closing_tx = self.closing_tx.clone();
        let mut closed = self.closing_tx.subscribe();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: closing streams and connections");
            let _ = closing_tx.send(true);
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(signal);
        let server = std::pin::pin!(std::future::IntoFuture::into_future(server));
        let result = tokio::select! {
            r = server => r,
            _ = async {
                let _ = closed.wait_for(|c| *c).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {
                tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
                Ok(())
            }
        };
        sweeper.abort();
        result
    }
}
