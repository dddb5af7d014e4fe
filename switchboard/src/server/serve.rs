//! [`Server`]: a TCP listener that runs the handshake and a handler per connection, the
//! seeds' `new WebSocket.Server({ port })`.

use super::accept::Acceptor;
use super::listener::{accept_connection, AcceptErrors};
use crate::error::Error;
use crate::websocket::WebSocket;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

/// A standalone WebSocket server on a TCP port: each connection gets its own task, which
/// runs the handshake with the [`Acceptor`] and then the handler. One client failing (a bad
/// handshake, a protocol error, a panic in its handler) never affects the others.
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
    acceptor: Acceptor,
}

impl Server {
    /// Listens on `addr` with the default [`Acceptor`].
    pub async fn bind(addr: impl ToSocketAddrs) -> Result<Server, Error> {
        Ok(Server::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serves on a listener you bound yourself.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server {
            listener,
            acceptor: Acceptor::default(),
        }
    }

    /// Uses `acceptor` (limits, compression, subprotocols, request callback) for every
    /// connection.
    pub fn acceptor(mut self, acceptor: Acceptor) -> Server {
        self.acceptor = acceptor;
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
        H: Fn(WebSocket<TcpStream>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        self.serve_with_shutdown(handler, std::future::pending())
            .await
    }

    /// Like [`Server::serve`], but stops accepting when `signal` completes. Connections
    /// already accepted keep running in their tasks (graceful shutdown with a Going Away
    /// close for each is a later addition).
    pub async fn serve_with_shutdown<H, F>(
        self,
        handler: H,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error>
    where
        H: Fn(WebSocket<TcpStream>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let mut signal = std::pin::pin!(signal);
        let mut errors = AcceptErrors::new();
        loop {
            let (tcp, peer) = tokio::select! {
                () = &mut signal => return Ok(()),
                accepted = accept_connection(&self.listener, &mut errors) => accepted,
            };
            let acceptor = self.acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                // Small frames should leave at once: coalescing is done by `feed`/`flush`.
                let _ = tcp.set_nodelay(true);
                match acceptor.accept(tcp).await {
                    Ok(ws) => handler(ws).await,
                    Err(error) => tracing::debug!(%peer, %error, "handshake failed"),
                }
            });
        }
    }
}
