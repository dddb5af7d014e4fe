//! The embedded, in-memory broker.

use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::broadcast;

use super::subscription::BACKLOG_PAGE;
use super::{
    Backlog, BacklogRead, BoxFuture, Broker, BrokerError, ChannelInfo, Live, Start, Subscription,
};
use crate::core::{ChannelName, Cursor, Epoch, History, HistoryLimits, Message, Page, Payload};

/// Settings of a [`MemoryBroker`].
///
/// ```
/// use switchboard_hub::core::HistoryLimits;
/// use switchboard_hub::MemoryBrokerConfig;
///
/// let config = MemoryBrokerConfig {
///     history: HistoryLimits { max_messages: 100, max_age: None },
///     max_channels: 1_000,
///     ..MemoryBrokerConfig::default()
/// };
/// assert_eq!(config.queue_size, MemoryBrokerConfig::default().queue_size);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBrokerConfig {
    /// History kept per channel.
    pub history: HistoryLimits,
    /// How many undelivered messages a subscriber may fall behind before it lags.
    pub queue_size: usize,
    /// How many channels may exist at once.
    pub max_channels: usize,
    /// What the history of every channel together may hold, in bytes (each message counts
    /// [`crate::core::retained_cost`]: its payload plus a fixed overhead). Past it, the
    /// oldest messages of the whole hub leave history first, whatever their channel; a
    /// client that wanted to resume from them is told `expired`, as for the count and age
    /// limits. Publishing never fails because of it.
    pub history_max_bytes: usize,
}

impl Default for MemoryBrokerConfig {
    /// `switchboard serve`'s: from [`crate::HubConfig::default`], where the hub's defaults
    /// are written (once).
    fn default() -> Self {
        crate::HubConfig::default().memory_broker()
    }
}

/// Channels in this process's memory.
///
/// Each channel is a [`History`] plus, while it has subscribers, a `tokio::sync::broadcast`
/// ring of `queue_size` slots (the [`Live`] ring every [`Subscription`] reads; history is its
/// [`Backlog`]). The ring is how every subscriber gets a bounded queue without a copy per
/// subscriber: the message sits once in the ring, each receiver keeps its own read position,
/// and a receiver that falls `queue_size` messages behind is told `Lagged(n)` on its next
/// read while the publisher and the other receivers carry on untouched. (tokio rounds the
/// capacity up to a power of two.) The ring is allocated by the first subscriber and freed
/// when the last one leaves: about 40 bytes a slot, 40 KiB at the default 1024, which a
/// channel nobody listens to has no use for.
///
/// Reads never create a channel: a history read of an unknown channel answers from an empty
/// history that is not stored, and a subscription to one registers the channel only while it
/// is open (a channel that never had a message leaves the table with its last subscriber).
/// So that the answer to such a read stays valid once the channel does exist, a channel's
/// epoch is not drawn at random when it is created but derived from the channel name, a
/// secret drawn at start, and a generation counter that moves on whenever a channel that
/// had messages is dropped: the same name gets the same epoch for as long as nothing could
/// have been missed in between, and a new one after.
///
/// Locks are `std::sync::Mutex`: no `.await` ever happens while one is held, and every
/// critical section is a few pointer moves (append + ring send, or snapshot + subscribe), so a
/// blocking lock is cheaper than an async one and cannot be held across a yield by mistake.
/// Lock order is always the channel map first, then one channel; publish and subscribe only
/// take the map lock to look a channel up, so traffic on different channels does not contend.
///
/// ```
/// use switchboard_hub::core::{ChannelName, Payload};
/// use switchboard_hub::{Broker, BrokerError, MemoryBroker, MemoryBrokerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let broker = MemoryBroker::new(MemoryBrokerConfig { max_channels: 1, ..Default::default() });
/// broker.publish(ChannelName::new("a")?, Payload::text("hi")).await?;
/// let refused = broker.publish(ChannelName::new("b")?, Payload::text("hi")).await;
/// assert_eq!(refused.unwrap_err(), BrokerError::TooManyChannels { limit: 1 });
/// # Ok(())
/// # }
/// ```
pub struct MemoryBroker {
    shared: Arc<Shared>,
    clock: Clock,
    /// One presence store for every hub over this broker (set by the first).
    presence: std::sync::OnceLock<Arc<dyn super::PresenceStore>>,
}

/// What the broker and its subscriptions' backlogs share.
struct Shared {
    config: MemoryBrokerConfig,
    channels: Mutex<HashMap<ChannelName, Arc<Channel>>>,
    /// The secret channel epochs are derived with.
    seed: RandomState,
    /// Generation counters by hash bucket of the channel name (see [`Shared::epoch_for`]).
    generations: Box<[AtomicU64]>,
    /// The bytes every channel's history holds.
    history_bytes: Arc<AtomicUsize>,
    /// Held by whoever is enforcing the byte budget, so only one does at a time.
    evicting: Mutex<()>,
}

/// How many generation counters channel names are spread over: a dropped channel changes
/// the epoch a read of an unknown channel reports for the names in its bucket only.
const GENERATION_BUCKETS: usize = 1024;

/// Wall-clock time that follows tokio's clock: the wall time at creation plus tokio's
/// elapsed time. Messages carry wall-clock timestamps (see [`Message::published_at`]); going
/// through tokio's clock keeps age limits testable with a paused clock. In a running
/// server tokio's clock is the monotonic clock, so this is the wall clock without its jumps.
#[derive(Clone, Copy)]
struct Clock {
    wall: SystemTime,
    mono: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            wall: SystemTime::now(),
            mono: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> SystemTime {
        self.wall + self.mono.elapsed()
    }
}

struct Channel {
    name: ChannelName,
    state: Mutex<ChannelState>,
}

/// A channel's history as its subscriptions read it. One per subscription: dropping it is
/// how the channel learns that a subscriber left.
struct MemoryBacklog {
    channel: Arc<Channel>,
    shared: Arc<Shared>,
    clock: Clock,
}

impl Backlog for MemoryBacklog {
    fn read(
        &self,
        after: Cursor,
        limit: usize,
    ) -> BoxFuture<'static, Result<BacklogRead, BrokerError>> {
        let now = self.clock.now();
        let mut st = lock(&self.channel.state);
        let page = st.history.page(Some(after), limit, now);
        let read = match page.reset {
            None => BacklogRead::Messages(page.messages),
            Some(reason) => BacklogRead::Reset {
                epoch: st.history.epoch(),
                reason,
                last: st.history.last_id(),
            },
        };
        Box::pin(std::future::ready(Ok(read)))
    }
}

impl Drop for MemoryBacklog {
    fn drop(&mut self) {
        let virgin = {
            let mut st = lock(&self.channel.state);
            st.subscribers -= 1;
            if st.subscribers > 0 {
                return;
            }
            // The last subscriber left: the ring goes with it.
            st.tx = None;
            st.is_virgin()
        };
        if virgin {
            self.shared.drop_if_virgin(&self.channel);
        }
    }
}

struct ChannelState {
    history: History,
    /// Open subscriptions (their [`MemoryBacklog`]s).
    subscribers: usize,
    /// The live ring, while there are subscribers.
    tx: Option<broadcast::Sender<Live>>,
    /// Set when the channel is dropped from the map; whoever finds it set looks the channel
    /// up again, so nothing is published into a dropped channel.
    removed: bool,
}

impl ChannelState {
    /// Nobody listens and nothing was ever published: dropping it loses nothing, and the
    /// epoch it would get again is the same.
    fn is_virgin(&self) -> bool {
        self.subscribers == 0 && self.history.last_id() == crate::core::MessageId::ZERO
    }
}

impl Shared {
    fn bucket(&self, name: &ChannelName) -> &AtomicU64 {
        let h = self.seed.hash_one(name);
        &self.generations[(h % self.generations.len() as u64) as usize]
    }

    /// The epoch `name` has, or gets when it is created now. Call under the map lock: a
    /// drop moves the generation on under it.
    fn epoch_for(&self, name: &ChannelName) -> Epoch {
        let generation = self.bucket(name).load(Ordering::Relaxed);
        Epoch::from_random_bits(self.seed.hash_one((name, generation)))
    }

    /// Marks `st` removed; after a lifetime with messages, `name`'s next one gets a new
    /// epoch. Call under the map lock.
    fn retire(&self, name: &ChannelName, st: &mut ChannelState) {
        st.removed = true;
        if st.history.last_id() != crate::core::MessageId::ZERO {
            self.bucket(name).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops `ch` from the map if it is still there, unsubscribed and never published to.
    fn drop_if_virgin(&self, ch: &Arc<Channel>) {
        let mut map = lock(&self.channels);
        let mut st = lock(&ch.state);
        if st.removed || !st.is_virgin() {
            return;
        }
        if map.get(&ch.name).is_some_and(|c| Arc::ptr_eq(c, ch)) {
            map.remove(&ch.name);
        }
        self.retire(&ch.name, &mut st);
    }
}

impl MemoryBroker {
    /// A broker with `config`, reading time from tokio's clock (which tests can pause).
    pub fn new(config: MemoryBrokerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                channels: Mutex::new(HashMap::new()),
                seed: RandomState::new(),
                generations: (0..GENERATION_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
                history_bytes: Arc::new(AtomicUsize::new(0)),
                evicting: Mutex::new(()),
            }),
            clock: Clock::new(),
            presence: std::sync::OnceLock::new(),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &MemoryBrokerConfig {
        &self.shared.config
    }

    /// The bytes every channel's history holds now (see
    /// [`MemoryBrokerConfig::history_max_bytes`]).
    pub fn history_bytes(&self) -> usize {
        self.shared.history_bytes.load(Ordering::Relaxed)
    }

    /// The channel, created if it does not exist.
    fn channel(&self, name: &ChannelName) -> Result<Arc<Channel>, BrokerError> {
        let shared = &self.shared;
        let mut map = lock(&shared.channels);
        if let Some(ch) = map.get(name) {
            return Ok(Arc::clone(ch));
        }
        if map.len() >= shared.config.max_channels {
            return Err(BrokerError::TooManyChannels {
                limit: shared.config.max_channels,
            });
        }
        let ch = Arc::new(Channel {
            name: name.clone(),
            state: Mutex::new(ChannelState {
                history: History::metered(
                    name.clone(),
                    shared.epoch_for(name),
                    shared.config.history,
                    Arc::clone(&shared.history_bytes),
                ),
                subscribers: 0,
                tx: None,
                removed: false,
            }),
        });
        map.insert(name.clone(), Arc::clone(&ch));
        Ok(ch)
    }

    /// Runs `f` on the live state of `name`, creating the channel if needed and retrying if
    /// a sweep dropped it between the lookup and the lock.
    fn with_channel<T>(
        &self,
        name: &ChannelName,
        mut f: impl FnMut(&Arc<Channel>, &mut ChannelState) -> T,
    ) -> Result<T, BrokerError> {
        loop {
            let ch = self.channel(name)?;
            let mut st = lock(&ch.state);
            if !st.removed {
                return Ok(f(&ch, &mut st));
            }
        }
    }

    fn publish_now(&self, name: &ChannelName, data: Payload) -> Result<Arc<Message>, BrokerError> {
        let now = self.clock.now();
        let msg = self.with_channel(name, |_, st| {
            let msg = st.history.append(data.clone(), now);
            // Sent under the channel lock, so a concurrent subscribe sees each message either
            // in its history snapshot or in its receiver, never both and never neither.
            // An error only means the last receiver is being dropped.
            if let Some(tx) = &st.tx {
                let _ = tx.send(Live::Message(Arc::clone(&msg)));
            }
            msg
        })?;
        self.enforce_budget(now);
        Ok(msg)
    }

    /// Past the history byte budget, drops the oldest messages of the whole hub until it
    /// holds a sixteenth less than the budget (so that a full budget is not scanned for at
    /// every publish). One channel lock at a time, never under the map lock.
    fn enforce_budget(&self, now: SystemTime) {
        let shared = &self.shared;
        let max = shared.config.history_max_bytes;
        if shared.history_bytes.load(Ordering::Relaxed) <= max {
            return;
        }
        // Another publisher is at it already.
        let Ok(_evicting) = shared.evicting.try_lock() else {
            return;
        };
        let target = max - max / 16;
        let channels: Vec<Arc<Channel>> = lock(&shared.channels).values().cloned().collect();
        // Channels by the age of their oldest message, oldest on top.
        let mut heap: BinaryHeap<(std::cmp::Reverse<SystemTime>, usize)> = BinaryHeap::new();
        for (i, ch) in channels.iter().enumerate() {
            let mut st = lock(&ch.state);
            st.history.evict(now);
            if let Some(at) = st.history.oldest_at() {
                heap.push((std::cmp::Reverse(at), i));
            }
        }
        while shared.history_bytes.load(Ordering::Relaxed) > target {
            let Some((_, i)) = heap.pop() else { break };
            let mut st = lock(&channels[i].state);
            st.history.evict_oldest();
            if let Some(at) = st.history.oldest_at() {
                heap.push((std::cmp::Reverse(at), i));
            }
        }
    }

    fn subscribe_now(
        &self,
        name: &ChannelName,
        since: Option<Cursor>,
    ) -> Result<Subscription, BrokerError> {
        let now = self.clock.now();
        let (queue_size, clock) = (self.shared.config.queue_size.max(1), self.clock);
        let channel = self.with_channel(name, |ch, st| {
            st.history.evict(now);
            let start = match since {
                None => Start::Live,
                Some(since) => match st.history.check(since) {
                    // The first page is taken under the lock, the rest is read as the
                    // subscriber goes (see `Subscription`).
                    Ok(()) => Start::Replay {
                        after: since.id,
                        first: st.history.page(Some(since), BACKLOG_PAGE, now).messages,
                    },
                    Err(reason) => Start::Reset(reason),
                },
            };
            // Subscribed under the channel lock, so every message after `head` reaches `rx`.
            let rx = st
                .tx
                .get_or_insert_with(|| broadcast::channel(queue_size).0)
                .subscribe();
            st.subscribers += 1;
            let backlog = Arc::new(MemoryBacklog {
                channel: Arc::clone(ch),
                shared: Arc::clone(&self.shared),
                clock,
            });
            Subscription::new(
                name.clone(),
                st.history.epoch(),
                st.history.last_id(),
                start,
                rx,
                backlog,
            )
        })?;
        Ok(channel)
    }

    fn history_now(&self, name: &ChannelName, since: Option<Cursor>, limit: usize) -> Page {
        let now = self.clock.now();
        let shared = &self.shared;
        loop {
            let map = lock(&shared.channels);
            let Some(ch) = map.get(name).cloned() else {
                // Not created for a read: the answer of the empty channel it would be.
                let epoch = shared.epoch_for(name);
                drop(map);
                return History::new(name.clone(), epoch, shared.config.history)
                    .page(since, limit, now);
            };
            drop(map);
            let mut st = lock(&ch.state);
            if !st.removed {
                return st.history.page(since, limit, now);
            }
        }
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new(MemoryBrokerConfig::default())
    }
}

impl Broker for MemoryBroker {
    fn publish(
        &self,
        channel: ChannelName,
        data: Payload,
    ) -> BoxFuture<'_, Result<Arc<Message>, BrokerError>> {
        let r = self.publish_now(&channel, data);
        Box::pin(std::future::ready(r))
    }

    fn subscribe(
        &self,
        channel: ChannelName,
        since: Option<Cursor>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>> {
        let r = self.subscribe_now(&channel, since);
        Box::pin(std::future::ready(r))
    }

    fn history(
        &self,
        channel: ChannelName,
        since: Option<Cursor>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page, BrokerError>> {
        let r = self.history_now(&channel, since, limit);
        Box::pin(std::future::ready(Ok(r)))
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelInfo>, BrokerError>> {
        let now = self.clock.now();
        let map = lock(&self.shared.channels);
        let mut list: Vec<ChannelInfo> = map
            .iter()
            .map(|(name, ch)| {
                let mut st = lock(&ch.state);
                st.history.evict(now);
                ChannelInfo {
                    name: name.clone(),
                    epoch: st.history.epoch(),
                    last_id: st.history.last_id(),
                    retained: st.history.len(),
                    subscribers: st.subscribers,
                }
            })
            .collect();
        drop(map);
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Box::pin(std::future::ready(Ok(list)))
    }

    /// Drops channels nobody listens to and whose history is empty (after age eviction), so
    /// that a stream of one-off channel names does not grow memory forever. A channel that
    /// had messages gets a new epoch when it is created again, which clients holding old
    /// cursors are told about (one that never had any keeps its epoch: nothing was missed).
    /// Returns how many channels were dropped.
    fn sweep(&self) -> BoxFuture<'_, usize> {
        let now = self.clock.now();
        let shared = &self.shared;
        let mut map = lock(&shared.channels);
        let before = map.len();
        map.retain(|name, ch| {
            let mut st = lock(&ch.state);
            st.history.evict(now);
            let idle = st.subscribers == 0 && st.history.is_empty();
            if idle {
                shared.retire(name, &mut st);
            }
            !idle
        });
        Box::pin(std::future::ready(before - map.len()))
    }

    /// In process, shared by every hub over this broker, as its channels are.
    fn presence(&self, settings: super::PresenceSettings) -> Arc<dyn super::PresenceStore> {
        let store = self
            .presence
            .get_or_init(|| super::MemoryPresence::new(settings.grace, settings.queue_size));
        Arc::clone(store)
    }
}

/// Locks `m`, ignoring poisoning: every critical section here leaves the state consistent
/// at each step (append-then-send), so a panic elsewhere cannot leave it half-written.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
