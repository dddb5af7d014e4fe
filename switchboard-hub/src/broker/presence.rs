//! Where presence lives: the [`PresenceStore`] trait, the session guard every transport
//! holds, and the in-process store.
//!
//! A transport joins a channel's presence when a client subscribes and holds the returned
//! [`PresenceGuard`] for as long as the subscription lives. Whatever ends it — a clean
//! close, a broken or killed connection, a slow-consumer drop, an aborted task, a panic —
//! drops the guard, and dropping it is the release. That is how every kind of leave ends in
//! exactly one leave: there is one release per session, and the registry
//! ([`crate::core::PresenceRegistry`]) turns the last release of an entry into at most one
//! leave, after the grace period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use super::{BoxFuture, BrokerError};
use crate::core::{
    ChannelName, ClientId, PresenceCounts, PresenceEntry, PresenceEvent, PresenceRegistry,
    Released, SessionKey,
};

/// A store of presence: who is in which channel, and the join/leave events.
///
/// Contract for implementations (the contract tests in `tests/presence.rs` check it):
///
/// - [`PresenceStore::join`] and [`PresenceStore::release`] follow the rule of
///   [`crate::core::PresenceRegistry`]: one join per entry, at most one leave, after the
///   grace period (or at once when `immediate`), never a leave for a session that was taken
///   over by a reconnect within the grace period;
/// - every watcher of a channel sees its joins and leaves, in the order they happened on
///   the node that caused them, and a watch's first snapshot and its events neither miss
///   nor repeat a change;
/// - counts are exact whatever the size of the channel; lists are capped by `limit`.
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::core::{ChannelName, ClientId, PresenceEntry};
/// use switchboard_hub::{MemoryPresence, PresenceStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryPresence::new(Duration::from_secs(5), 64);
/// let lobby = ChannelName::new("lobby")?;
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// let key = store.join(lobby.clone(), entry).await?;
/// assert_eq!(store.list(lobby.clone(), 10).await?.counts.clients, 1);
/// store.release(&lobby, &key, true); // immediate: the client said goodbye
/// assert_eq!(store.counts(vec![lobby]).await?[0].clients, 0);
/// # Ok(())
/// # }
/// ```
pub trait PresenceStore: Send + Sync + 'static {
    /// Adds a session for `entry` to `channel`'s presence. The key names the session for
    /// [`PresenceStore::release`]; its client id is the entry's unless that id is held by
    /// another user (then it is a fresh one).
    fn join(
        &self,
        channel: ChannelName,
        entry: PresenceEntry,
    ) -> BoxFuture<'_, Result<SessionKey, BrokerError>>;

    /// Ends a session. Synchronous and infallible because it runs in `Drop`: a store that
    /// must do I/O queues it. `immediate` skips the grace period (the client said goodbye).
    fn release(&self, channel: &ChannelName, key: &SessionKey, immediate: bool);

    /// Who is in `channel`: exact counts and at most `limit` entries.
    fn list(
        &self,
        channel: ChannelName,
        limit: usize,
    ) -> BoxFuture<'_, Result<PresenceList, BrokerError>>;

    /// A snapshot like [`PresenceStore::list`] and the stream of changes after it.
    fn watch(
        &self,
        channel: ChannelName,
        limit: usize,
    ) -> BoxFuture<'_, Result<(PresenceList, PresenceWatch), BrokerError>>;

    /// The counts of each of `channels`, in the same order.
    fn counts(
        &self,
        channels: Vec<ChannelName>,
    ) -> BoxFuture<'_, Result<Vec<PresenceCounts>, BrokerError>>;

    /// The node is going away: every entry it holds leaves now, grace or not.
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    /// Housekeeping: drops the state of channels nobody is in or watches. Returns how many.
    fn sweep(&self) -> usize {
        0
    }
}

/// The answer to a presence read: `{"clients":…,"users":…,"entries":[…],"truncated":…}`.
///
/// ```
/// use switchboard_hub::core::{ChannelName, ClientId, PresenceEntry};
/// use switchboard_hub::{Hub, HubOptions, MemoryBrokerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), HubOptions::default());
/// let lobby = ChannelName::new("lobby")?;
/// let mut guards = Vec::new();
/// for tab in ["tab-1", "tab-2", "tab-3"] {
///     let entry = PresenceEntry { client: ClientId::new(tab)?, user: None, info: None };
///     guards.push(hub.join_presence(&lobby, entry).await?);
/// }
/// let list = hub.presence(&lobby, 2).await?;
/// assert_eq!((list.counts.clients, list.entries.len(), list.truncated), (3, 2, true));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PresenceList {
    /// Exact counts.
    #[serde(flatten)]
    pub counts: PresenceCounts,
    /// At most the asked-for number of entries, by client id.
    pub entries: Vec<Arc<PresenceEntry>>,
    /// Whether `entries` leaves some out.
    pub truncated: bool,
}

/// What a [`PresenceWatch`] hands out.
///
/// ```
/// use switchboard_hub::broker::{PresenceUpdate, PresenceWatch};
///
/// async fn show(mut watch: PresenceWatch) {
///     while let Some(update) = watch.next().await {
///         match update {
///             PresenceUpdate::Event(e) => println!("{} {}", e.kind(), e.entry().client),
///             PresenceUpdate::Lagged => println!("missed some: read the presence again"),
///         }
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub enum PresenceUpdate {
    /// A join or a leave.
    Event(Arc<PresenceEvent>),
    /// The watcher fell behind and missed events: read the presence again.
    Lagged,
}

/// The join/leave events of one channel after a snapshot.
///
/// ```
/// use switchboard_hub::broker::PresenceUpdate;
/// use switchboard_hub::core::{ChannelName, ClientId, PresenceEntry};
/// use switchboard_hub::{Hub, HubOptions, MemoryBrokerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), HubOptions::default());
/// let lobby = ChannelName::new("lobby")?;
/// let (snapshot, mut watch) = hub.watch_presence(&lobby, 100).await?;
/// assert_eq!(snapshot.counts.clients, 0);
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// let _guard = hub.join_presence(&lobby, entry).await?;
/// let Some(PresenceUpdate::Event(join)) = watch.next().await else { panic!() };
/// assert_eq!((join.kind(), join.entry().client.as_str()), ("join", "tab-1"));
/// # Ok(())
/// # }
/// ```
pub struct PresenceWatch {
    rx: broadcast::Receiver<PresenceUpdate>,
}

impl PresenceWatch {
    /// Wraps a receiver of a channel's updates (for [`PresenceStore`] implementations: a
    /// store may itself send [`PresenceUpdate::Lagged`] when it knows events were lost).
    pub fn new(rx: broadcast::Receiver<PresenceUpdate>) -> Self {
        Self { rx }
    }

    /// The next update; `None` once the store is gone. Cancel-safe.
    pub async fn next(&mut self) -> Option<PresenceUpdate> {
        match self.rx.recv().await {
            Ok(u) => Some(u),
            Err(RecvError::Lagged(_)) => Some(PresenceUpdate::Lagged),
            Err(RecvError::Closed) => None,
        }
    }
}

impl std::fmt::Debug for PresenceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceWatch").finish_non_exhaustive()
    }
}

/// One session in a channel's presence; dropping it releases the session (with the grace
/// period), [`PresenceGuard::leave`] releases it without.
///
/// ```
/// use switchboard_hub::core::{ChannelName, ClientId, PresenceEntry};
/// use switchboard_hub::{Hub, HubOptions, MemoryBrokerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), HubOptions::default());
/// let lobby = ChannelName::new("lobby")?;
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// let guard = hub.join_presence(&lobby, entry).await?; // held for the connection's life
/// assert_eq!(guard.client().as_str(), "tab-1");
/// guard.leave(); // or drop it: then the entry stays for the grace period
/// assert_eq!(hub.presence(&lobby, 10).await?.counts.clients, 0);
/// # Ok(())
/// # }
/// ```
pub struct PresenceGuard {
    store: Arc<dyn PresenceStore>,
    channel: ChannelName,
    key: SessionKey,
    released: bool,
}

impl PresenceGuard {
    /// Wraps a session `store` handed out for `channel`.
    pub fn new(store: Arc<dyn PresenceStore>, channel: ChannelName, key: SessionKey) -> Self {
        Self {
            store,
            channel,
            key,
            released: false,
        }
    }

    /// The session's client id (the asked-for one, or a fresh one if it was taken).
    pub fn client(&self) -> &ClientId {
        &self.key.client
    }

    /// The channel.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// Ends the session now, without the grace period: the client said goodbye.
    pub fn leave(mut self) {
        self.released = true;
        self.store.release(&self.channel, &self.key, true);
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        if !self.released {
            self.store.release(&self.channel, &self.key, false);
        }
    }
}

impl std::fmt::Debug for PresenceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceGuard")
            .field("channel", &self.channel)
            .field("client", &self.key.client)
            .finish_non_exhaustive()
    }
}

/// Presence in this process's memory: the store for a single node (the memory broker's),
/// and the node-local half that a shared store builds on.
///
/// Per channel, a [`PresenceRegistry`] and a broadcast ring of events; one lock over the
/// map, held for a few map operations and never across an `.await`. A snapshot and the
/// subscription to the ring are taken under that lock, so a watcher neither misses nor
/// repeats a change. Grace periods end on a timer task per release, which calls back
/// through a weak reference (a dropped store simply lets them lapse).
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::core::{ChannelName, ClientId, PresenceEntry};
/// use switchboard_hub::MemoryPresence;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryPresence::new(Duration::from_secs(5), 64);
/// let lobby = ChannelName::new("lobby")?;
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// let _key = store.join_now(&lobby, entry); // nothing here waits
/// assert_eq!(store.counts_now(&lobby).clients, 1);
/// # Ok(())
/// # }
/// ```
pub struct MemoryPresence {
    grace: Duration,
    queue_size: usize,
    channels: Mutex<HashMap<ChannelName, ChannelPresence>>,
    me: Weak<MemoryPresence>,
    /// Where joins and leaves go when this is the node-local half of a shared store;
    /// `None`: to the local watchers.
    sink: Option<mpsc::UnboundedSender<Transition>>,
}

/// A node-local change for a shared store to write out, in the order it happened.
pub(crate) enum Transition {
    /// A local entry joined or left.
    Event(ChannelName, PresenceEvent),
    /// Answer once everything before this was written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Hands `ev` to the shared store's writer, or to the channel's local watchers.
fn emit(
    sink: &Option<mpsc::UnboundedSender<Transition>>,
    channel: &ChannelName,
    ch: &ChannelPresence,
    ev: PresenceEvent,
) {
    match sink {
        Some(sink) => {
            // The writer is gone only when the store is: nothing to tell then.
            let _ = sink.send(Transition::Event(channel.clone(), ev));
        }
        // An error only means nobody watches.
        None => {
            let _ = ch.tx.send(PresenceUpdate::Event(Arc::new(ev)));
        }
    }
}

struct ChannelPresence {
    registry: PresenceRegistry,
    tx: broadcast::Sender<PresenceUpdate>,
}

impl MemoryPresence {
    /// A store keeping entries `grace` after their last session, with event rings of
    /// `queue_size` (a watcher further behind is told to read again).
    pub fn new(grace: Duration, queue_size: usize) -> Arc<Self> {
        Self::build(grace, queue_size, None)
    }

    /// The node-local half of a shared store: joins and leaves go to `sink`, in order,
    /// instead of to local watchers.
    pub(crate) fn with_sink(grace: Duration, sink: mpsc::UnboundedSender<Transition>) -> Arc<Self> {
        Self::build(grace, 1, Some(sink))
    }

    fn build(
        grace: Duration,
        queue_size: usize,
        sink: Option<mpsc::UnboundedSender<Transition>>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            grace,
            queue_size: queue_size.max(1),
            channels: Mutex::new(HashMap::new()),
            me: me.clone(),
            sink,
        })
    }

    /// Queues a marker behind every join and leave so far; `done` is answered once the
    /// shared store's writer got to it. False when there is no writer.
    pub(crate) fn flush(&self, done: tokio::sync::oneshot::Sender<()>) -> bool {
        self.sink
            .as_ref()
            .is_some_and(|s| s.send(Transition::Flush(done)).is_ok())
    }

    /// The entries that live sessions on this node hold, by channel (what a shared store
    /// refreshes; entries in their grace period are not refreshed).
    pub(crate) fn held_entries(&self) -> Vec<(ChannelName, Arc<PresenceEntry>)> {
        let map = lock(&self.channels);
        map.iter()
            .flat_map(|(name, ch)| {
                ch.registry
                    .held()
                    .map(move |e| (name.clone(), Arc::clone(e)))
            })
            .collect()
    }

    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    /// Runs `f` on `channel`'s presence, creating it.
    fn with<T>(&self, channel: &ChannelName, f: impl FnOnce(&mut ChannelPresence) -> T) -> T {
        let mut map = lock(&self.channels);
        let ch = map
            .entry(channel.clone())
            .or_insert_with(|| ChannelPresence {
                registry: PresenceRegistry::new(self.grace),
                tx: broadcast::channel(self.queue_size).0,
            });
        f(ch)
    }

    /// Adds a session (synchronous: nothing here waits).
    pub fn join_now(&self, channel: &ChannelName, entry: PresenceEntry) -> SessionKey {
        self.with(channel, |ch| {
            let joined = ch
                .registry
                .join(entry, || ClientId::from_random_bits(rand::random()));
            if let Some(ev) = joined.event {
                emit(&self.sink, channel, ch, ev);
            }
            joined.key
        })
    }

    /// A capped snapshot of `channel`.
    pub fn list_now(&self, channel: &ChannelName, limit: usize) -> PresenceList {
        let map = lock(&self.channels);
        map.get(channel)
            .map(|ch| snapshot(&ch.registry, limit))
            .unwrap_or_default()
    }

    /// A snapshot and the events after it.
    pub fn watch_now(&self, channel: &ChannelName, limit: usize) -> (PresenceList, PresenceWatch) {
        self.with(channel, |ch| {
            (
                snapshot(&ch.registry, limit),
                PresenceWatch::new(ch.tx.subscribe()),
            )
        })
    }

    /// The counts of `channel`.
    pub fn counts_now(&self, channel: &ChannelName) -> PresenceCounts {
        lock(&self.channels)
            .get(channel)
            .map(|ch| ch.registry.counts())
            .unwrap_or_default()
    }

    fn expire(&self, channel: &ChannelName) {
        let now = Self::now();
        let mut map = lock(&self.channels);
        if let Some(ch) = map.get_mut(channel) {
            for ev in ch.registry.expire(now) {
                emit(&self.sink, channel, ch, ev);
            }
            if ch.registry.is_empty() && ch.tx.receiver_count() == 0 {
                map.remove(channel);
            }
        }
    }

    /// Ends a grace period at `deadline` on a timer, or at once without a runtime.
    fn arm(&self, channel: &ChannelName, deadline: Instant) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.expire_at(channel, deadline);
            return;
        };
        let me = self.me.clone();
        let channel = channel.clone();
        rt.spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            if let Some(me) = me.upgrade() {
                me.expire(&channel);
            }
        });
    }

    /// Without a runtime there is no timer: the grace period is skipped.
    fn expire_at(&self, channel: &ChannelName, deadline: Instant) {
        let mut map = lock(&self.channels);
        if let Some(ch) = map.get_mut(channel) {
            for ev in ch.registry.expire(deadline) {
                emit(&self.sink, channel, ch, ev);
            }
        }
    }

    /// Ends a session (see [`PresenceStore::release`]).
    pub fn release_now(&self, channel: &ChannelName, key: &SessionKey, immediate: bool) {
        let released = {
            let mut map = lock(&self.channels);
            let Some(ch) = map.get_mut(channel) else {
                return;
            };
            let released = if immediate {
                ch.registry.leave(key)
            } else {
                ch.registry.release(key, Self::now())
            };
            if let Released::Left(ev) = &released {
                emit(&self.sink, channel, ch, ev.clone());
                if ch.registry.is_empty() && ch.tx.receiver_count() == 0 {
                    map.remove(channel);
                }
            }
            released
        };
        if let Released::Pending { deadline } = released {
            self.arm(channel, deadline);
        }
    }

    /// Every entry leaves now.
    pub fn clear_now(&self) {
        let mut map = lock(&self.channels);
        for (name, ch) in map.iter_mut() {
            for ev in ch.registry.clear() {
                emit(&self.sink, name, ch, ev);
            }
        }
    }

    /// Drops channels nobody is in or watches.
    pub fn sweep_now(&self) -> usize {
        let mut map = lock(&self.channels);
        let before = map.len();
        map.retain(|_, ch| !(ch.registry.is_empty() && ch.tx.receiver_count() == 0));
        before - map.len()
    }
}

fn snapshot(registry: &PresenceRegistry, limit: usize) -> PresenceList {
    let (entries, truncated) = registry.list(limit);
    PresenceList {
        counts: registry.counts(),
        entries,
        truncated,
    }
}

impl PresenceStore for MemoryPresence {
    fn join(
        &self,
        channel: ChannelName,
        entry: PresenceEntry,
    ) -> BoxFuture<'_, Result<SessionKey, BrokerError>> {
        let key = self.join_now(&channel, entry);
        Box::pin(std::future::ready(Ok(key)))
    }

    fn release(&self, channel: &ChannelName, key: &SessionKey, immediate: bool) {
        self.release_now(channel, key, immediate);
    }

    fn list(
        &self,
        channel: ChannelName,
        limit: usize,
    ) -> BoxFuture<'_, Result<PresenceList, BrokerError>> {
        Box::pin(std::future::ready(Ok(self.list_now(&channel, limit))))
    }

    fn watch(
        &self,
        channel: ChannelName,
        limit: usize,
    ) -> BoxFuture<'_, Result<(PresenceList, PresenceWatch), BrokerError>> {
        Box::pin(std::future::ready(Ok(self.watch_now(&channel, limit))))
    }

    fn counts(
        &self,
        channels: Vec<ChannelName>,
    ) -> BoxFuture<'_, Result<Vec<PresenceCounts>, BrokerError>> {
        let map = lock(&self.channels);
        let out = channels
            .iter()
            .map(|c| {
                map.get(c)
                    .map(|ch| ch.registry.counts())
                    .unwrap_or_default()
            })
            .collect();
        Box::pin(std::future::ready(Ok(out)))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.clear_now();
        Box::pin(std::future::ready(()))
    }

    fn sweep(&self) -> usize {
        self.sweep_now()
    }
}

impl std::fmt::Debug for MemoryPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPresence")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// Locks `m`, ignoring poisoning: each critical section leaves the registry consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
