//! A handle on the TCP connection a request arrived on, so that a handler can close it, and
//! the registry of live subscriber connections behind the admin API.
//!
//! Why: a Server-Sent Events response is written by an HTTP driver (the hub's own on
//! HTTP/1.1, hyper's on HTTP/2), which stops polling the body when the client stops
//! reading. A subscriber that reads nothing would then keep its
//! connection (and subscription) forever, and nobody would ever notice it lagged. The
//! transport notices instead (its bounded queue fills up) and kills the connection through
//! this handle; [`crate::HubServer::serve`] drops the socket at once.
//!
//! A router mounted in some other server has no such handle for plain HTTP responses:
//! there an SSE stream just ends at the next point hyper polls it. Upgraded WebSockets are
//! always killable, since the hub owns their socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use switchboard::security::ConnectionPermit;
use tokio::sync::{mpsc, Notify};

use crate::core::ChannelName;
use crate::metrics::Transport;

/// Kill switch and identity of one client connection, found in request extensions.
///
/// No example: the hub's accept loop ([`HubServer::serve`](crate::HubServer::serve)) creates
/// one per client connection and puts it in every request's extensions for the transports;
/// there is no public constructor.
#[derive(Clone, Debug)]
pub struct ConnectionControl {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: u64,
    peer: SocketAddr,
    /// Set by [`ConnectionControl::kill`]; `changed` wakes whoever waits on it.
    /// A flag and a `Notify` rather than a watch channel: nothing to allocate per
    /// connection, and checking the switch before every write is one atomic load.
    kill: AtomicBool,
    /// Set by [`ConnectionControl::shut_down`]; `changed` wakes whoever waits on it too.
    shutting_down: AtomicBool,
    changed: Notify,
    /// Held until every task serving the connection (including an upgraded WebSocket) is
    /// done; the server waits for all of these to drop during graceful shutdown.
    _alive: Option<mpsc::Sender<()>>,
    registry: Weak<Registry>,
    label: Mutex<Label>,
    /// The connection's place under the server's connection caps, freed with the last
    /// handle (an upgraded WebSocket outlives the HTTP exchange that started it).
    permit: Mutex<Option<ConnectionPermit>>,
    /// Set when a queue or a write to this client was found full (see `outbox::lagged`).
    backpressure: AtomicBool,
    /// Set when the connection is killed for being too slow: counted when it is gone.
    slow: std::sync::OnceLock<SlowCount>,
}

/// Where a slow disconnect is counted.
struct SlowCount(Arc<crate::metrics::Metrics>);

impl std::fmt::Debug for SlowCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlowCount")
    }
}

/// What a connection is used for, once a transport has said so.
#[derive(Clone, Debug, Default)]
struct Label {
    transport: Option<Transport>,
    channels: Vec<ChannelName>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            lock(&registry.map).remove(&self.id);
        }
        // The last handle is gone: the server dropped the socket and every task serving
        // the connection has ended. Only now is a slow client counted as dropped.
        if let Some(SlowCount(metrics)) = self.slow.get() {
            metrics.record_slow_disconnect();
        }
    }
}

impl ConnectionControl {
    pub(crate) fn new(
        peer: SocketAddr,
        alive: Option<mpsc::Sender<()>>,
        registry: &Arc<Registry>,
    ) -> Self {
        let id = registry.next.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::new(Inner {
            id,
            peer,
            kill: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            changed: Notify::new(),
            _alive: alive,
            registry: Arc::downgrade(registry),
            label: Mutex::new(Label::default()),
            permit: Mutex::new(None),
            backpressure: AtomicBool::new(false),
            slow: std::sync::OnceLock::new(),
        });
        lock(&registry.map).insert(id, Arc::downgrade(&inner));
        Self { inner }
    }

    /// Keeps `permit` until the connection's last handle is gone.
    pub(crate) fn holding(self, permit: ConnectionPermit) -> Self {
        *lock(&self.inner.permit) = Some(permit);
        self
    }

    /// Completes once `flag` is set (by `kill`, which notifies after setting it).
    async fn wait_for(&self, flag: &AtomicBool) {
        loop {
            let changed = self.inner.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the check, so a notification between the two is not lost.
            changed.as_mut().enable();
            if flag.load(Ordering::Acquire) {
                return;
            }
            changed.await;
        }
    }

    /// Records that a queue to this client was full.
    pub(crate) fn note_backpressure(&self) {
        self.inner.backpressure.store(true, Ordering::Relaxed);
    }

    /// Whether a queue to this client was full since the last call.
    pub(crate) fn take_backpressure(&self) -> bool {
        self.inner.backpressure.swap(false, Ordering::Relaxed)
    }

    /// The connection's number, unique in this process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.inner.peer
    }

    /// Kills the connection because its client does not keep up; `metrics` counts it as a
    /// slow disconnect once it is really gone (socket closed, its tasks ended), not before.
    pub(crate) fn kill_as_slow(&self, metrics: &Arc<crate::metrics::Metrics>) {
        let _ = self.inner.slow.set(SlowCount(Arc::clone(metrics)));
        self.kill();
    }

    /// Closes the connection now (the socket is dropped, no response is finished).
    pub fn kill(&self) {
        self.inner.kill.store(true, Ordering::Release);
        self.inner.changed.notify_waiters();
    }

    /// Whether [`ConnectionControl::kill`] was called.
    pub fn is_killed(&self) -> bool {
        self.inner.kill.load(Ordering::Acquire)
    }

    /// Completes once [`ConnectionControl::kill`] was called.
    pub async fn killed(&self) {
        self.wait_for(&self.inner.kill).await;
    }

    /// Tells the connection's tasks that the server is shutting down: a WebSocket closes
    /// with 1001 after delivering what it holds. Unlike [`ConnectionControl::kill`], the
    /// connection is not dropped by the server for it.
    pub(crate) fn shut_down(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.changed.notify_waiters();
    }

    /// Completes when the connection must stop, with why: killed, or the server shutting
    /// down (a kill wins when both are set). One wait for both, so that an idle WebSocket's
    /// task holds one small future for them rather than two.
    pub(crate) async fn stopped(&self) -> Stop {
        loop {
            let changed = self.inner.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the checks, so a notification between them is not lost.
            changed.as_mut().enable();
            if self.inner.kill.load(Ordering::Acquire) {
                return Stop::Killed;
            }
            if self.inner.shutting_down.load(Ordering::Acquire) {
                return Stop::Shutdown;
            }
            changed.await;
        }
    }

    /// Records that the connection carries `transport` subscriptions.
    pub(crate) fn set_transport(&self, transport: Transport) {
        lock(&self.inner.label).transport = Some(transport);
    }

    /// Records a subscription to `channel`.
    pub(crate) fn add_channel(&self, channel: &ChannelName) {
        let mut label = lock(&self.inner.label);
        if !label.channels.contains(channel) {
            // One at a time while short: most connections carry one channel, and a `Vec`
            // would make room for four.
            if label.channels.len() < 4 {
                label.channels.reserve_exact(1);
            }
            label.channels.push(channel.clone());
        }
    }

    /// Records the end of a subscription to `channel`.
    pub(crate) fn remove_channel(&self, channel: &ChannelName) {
        lock(&self.inner.label).channels.retain(|c| c != channel);
    }
}

/// Why [`ConnectionControl::stopped`] completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// [`ConnectionControl::kill`] was called.
    Killed,
    /// [`ConnectionControl::shut_down`] was called.
    Shutdown,
}

/// Every live connection, by id. Entries remove themselves when their last handle drops.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Weak<Inner>>>,
}

/// A subscriber connection as the admin API lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ConnectionInfo {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) transport: &'static str,
    pub(crate) channels: Vec<ChannelName>,
}

impl Registry {
    /// Calls [`ConnectionControl::shut_down`] on every live connection.
    pub(crate) fn shut_down_all(&self) {
        // Collected first: a handle dropped here may be the last, and its `Drop` takes
        // the map's lock.
        let live: Vec<Arc<Inner>> = lock(&self.map).values().filter_map(Weak::upgrade).collect();
        for inner in live {
            ConnectionControl { inner }.shut_down();
        }
    }

    /// Connections that carry subscriptions, by id.
    pub(crate) fn subscribers(&self) -> Vec<(ConnectionControl, ConnectionInfo)> {
        let live: Vec<Arc<Inner>> = lock(&self.map).values().filter_map(Weak::upgrade).collect();
        let mut out: Vec<_> = live
            .into_iter()
            .filter_map(|inner| {
                let label = lock(&inner.label).clone();
                let transport = label.transport?;
                let info = ConnectionInfo {
                    id: inner.id,
                    peer: inner.peer,
                    transport: transport.label(),
                    channels: label.channels,
                };
                Some((ConnectionControl { inner }, info))
            })
            .collect();
        out.sort_by_key(|(_, info)| info.id);
        out
    }
}

/// Locks `m`, ignoring poisoning: labels and the id map stay consistent at every step.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
