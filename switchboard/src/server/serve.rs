//! [`Server`]: the seeds' `new WebSocket.Server({ port })`, a thin convenience over a
//! [`Router`] with one route for every path.

use crate::config::WebSocketConfig;
use crate::error::Error;
use crate::router::{Route, Router, ServerWebSocket};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, ToSocketAddrs};

/// A standalone WebSocket server on a TCP port, serving one handler on every path: each
/// connection gets its own task, which runs the handshake and then the handler. One client
/// failing (a bad handshake, a protocol error, a panic in its handler) never affects the
/// others.
///
/// It is a [`Router`] with a single [fallback](Router::fallback) route, so it has the
/// router's accept loop and graceful shutdown; for subprotocols, `Origin` checks,
/// authentication, connection limits, TLS or several paths, use the router itself. The
/// handler gets a [`ServerWebSocket`], as a router's, hyper's or axum's does.
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard::Error> {
/// let server = switchboard::Server::bind("127.0.0.1:9001").await?;
/// server
///     .serve(|mut ws| async move {
///         while let Some(Ok(message)) = ws.recv().await {
///             if ws.send(message).await.is_err() {
///                 break;
///             }
///         }
///     })
///     .await
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: WebSocketConfig,
}

impl Server {
    /// Listens on `addr`; connections get [`WebSocketConfig::default`].
    pub async fn bind(addr: impl ToSocketAddrs) -> Result<Server, Error> {
        Ok(Server::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serves on a listener you bound yourself.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server {
            listener,
            config: WebSocketConfig::default(),
        }
    }

    /// The configuration connections get (limits, compression, timers, the handshake's).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), switchboard::Error> {
    /// use switchboard::{Server, WebSocketConfig};
    /// let config = WebSocketConfig::default().max_message_size(1 << 20).compression(true);
    /// Server::bind("127.0.0.1:9001").await?.config(config).serve(|_ws| async {}).await
    /// # }
    /// ```
    pub fn config(mut self, config: WebSocketConfig) -> Server {
        self.config = config;
        self
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections forever, running `handler` on each established WebSocket in its
    /// own task. Returns only if the listener fails for good.
    pub async fn serve<H, F>(self, handler: H) -> Result<(), Error>
    where
        H: Fn(ServerWebSocket) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        self.serve_with_shutdown(handler, std::future::pending())
            .await
    }

    /// Like [`Server::serve`], and shuts down gracefully when `signal` completes, as
    /// [`Router::serve_with_shutdown`] does: stops accepting, closes every connection with
    /// 1001 Going Away, and waits for them (10 s at most) before returning.
    pub async fn serve_with_shutdown<H, F>(
        self,
        handler: H,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error>
    where
        H: Fn(ServerWebSocket) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let route = Route::new(move |ws, _info| handler(ws)).config(self.config);
        Router::new()
            .fallback(route)
            .serve_with_shutdown(self.listener, signal)
            .await
    }
}
