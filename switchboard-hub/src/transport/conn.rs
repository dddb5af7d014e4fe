//! A handle on the TCP connection a request arrived on, so that a handler can close it.
//!
//! Why: a Server-Sent Events response is written by hyper, which stops polling the body
//! when the client stops reading. A subscriber that reads nothing would then keep its
//! connection (and subscription) forever, and nobody would ever notice it lagged. The
//! transport notices instead (its bounded queue fills up) and kills the connection through
//! this handle; [`crate::HubServer::serve`] drops the socket at once.
//!
//! A router mounted in some other server has no such handle: there the stream just ends at
//! the next point hyper polls it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

/// Kill switch and identity of one client connection, found in request extensions.
#[derive(Clone, Debug)]
pub struct ConnectionControl {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    peer: SocketAddr,
    kill: watch::Sender<bool>,
    /// Held until every task serving the connection (including an upgraded WebSocket) is
    /// done; the server waits for all of these to drop during graceful shutdown.
    _alive: Option<mpsc::Sender<()>>,
}

impl ConnectionControl {
    pub(crate) fn new(peer: SocketAddr, alive: mpsc::Sender<()>) -> Self {
        Self {
            inner: Arc::new(Inner {
                peer,
                kill: watch::channel(false).0,
                _alive: Some(alive),
            }),
        }
    }

    /// A handle for a connection the hub does not own (router mounted elsewhere): killing
    /// it still ends the hub's own tasks for the connection, such as an upgraded WebSocket.
    pub(crate) fn detached(peer: SocketAddr) -> Self {
        Self {
            inner: Arc::new(Inner {
                peer,
                kill: watch::channel(false).0,
                _alive: None,
            }),
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.inner.peer
    }

    /// Closes the connection now (the socket is dropped, no response is finished).
    pub fn kill(&self) {
        self.inner.kill.send_replace(true);
    }

    /// Completes once [`ConnectionControl::kill`] was called.
    pub async fn killed(&self) {
        let mut rx = self.inner.kill.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|k| *k).await;
    }
}
