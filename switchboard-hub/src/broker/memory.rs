//! The embedded, in-memory broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::broadcast;

use super::subscription::BACKLOG_PAGE;
use super::{
    Backlog, BacklogRead, BoxFuture, Broker, BrokerError, ChannelInfo, Live, Start, Subscription,
};
use crate::core::{ChannelName, Cursor, Epoch, History, HistoryLimits, Message, Page, Payload};

/// Settings of a [`MemoryBroker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBrokerConfig {
    /// History kept per channel.
    pub history: HistoryLimits,
    /// How many undelivered messages a subscriber may fall behind before it lags.
    pub queue_size: usize,
    /// How many channels may exist at once.
    pub max_channels: usize,
}

impl Default for MemoryBrokerConfig {
    fn default() -> Self {
        Self {
            history: HistoryLimits::default(),
            queue_size: 1024,
            max_channels: 10_000,
        }
    }
}

/// Channels in this process's memory.
///
/// Each channel is a [`History`] plus a `tokio::sync::broadcast` ring of `queue_size` slots
/// (the [`Live`] ring every [`Subscription`] reads; history is its [`Backlog`]).
/// The ring is how every subscriber gets a bounded queue without a copy per subscriber: the
/// message sits once in the ring, each receiver keeps its own read position, and a receiver
/// that falls `queue_size` messages behind is told `Lagged(n)` on its next read while the
/// publisher and the other receivers carry on untouched. (tokio rounds the capacity up to a
/// power of two.)
///
/// Locks are `std::sync::Mutex`: no `.await` ever happens while one is held, and every
/// critical section is a few pointer moves (append + ring send, or snapshot + subscribe), so a
/// blocking lock is cheaper than an async one and cannot be held across a yield by mistake.
/// Lock order is always the channel map first, then one channel; publish and subscribe only
/// take the map lock to look a channel up, so traffic on different channels does not contend.
pub struct MemoryBroker {
    config: MemoryBrokerConfig,
    channels: Mutex<HashMap<ChannelName, Arc<Channel>>>,
    clock: Clock,
    /// One presence store for every hub over this broker (set by the first).
    presence: std::sync::OnceLock<Arc<dyn super::PresenceStore>>,
}

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
    state: Mutex<ChannelState>,
    tx: broadcast::Sender<Live>,
}

/// A channel's history as its subscriptions read it.
struct MemoryBacklog {
    channel: Arc<Channel>,
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

struct ChannelState {
    history: History,
    /// Set by [`MemoryBroker::sweep`] when the channel is dropped from the map; whoever finds
    /// it set looks the channel up again, so nothing is published into a dropped channel.
    removed: bool,
}

impl MemoryBroker {
    /// A broker with `config`, reading time from tokio's clock (which tests can pause).
    pub fn new(config: MemoryBrokerConfig) -> Self {
        Self {
            config,
            channels: Mutex::new(HashMap::new()),
            clock: Clock::new(),
            presence: std::sync::OnceLock::new(),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &MemoryBrokerConfig {
        &self.config
    }

    fn channel(&self, name: &ChannelName) -> Result<Arc<Channel>, BrokerError> {
        let mut map = lock(&self.channels);
        if let Some(ch) = map.get(name) {
            return Ok(Arc::clone(ch));
        }
        if map.len() >= self.config.max_channels {
            return Err(BrokerError::TooManyChannels {
                limit: self.config.max_channels,
            });
        }
        let epoch = Epoch::from_random_bits(rand::random());
        let (tx, _) = broadcast::channel(self.config.queue_size.max(1));
        let ch = Arc::new(Channel {
            state: Mutex::new(ChannelState {
                history: History::new(name.clone(), epoch, self.config.history),
                removed: false,
            }),
            tx,
        });
        map.insert(name.clone(), Arc::clone(&ch));
        Ok(ch)
    }

    /// Runs `f` on the live state of `name`, retrying if a sweep dropped the channel between
    /// the lookup and the lock.
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
        self.with_channel(name, |ch, st| {
            let msg = st.history.append(data.clone(), now);
            // Sent under the channel lock, so a concurrent subscribe sees each message either
            // in its history snapshot or in its receiver, never both and never neither.
            // An error only means nobody is subscribed.
            let _ = ch.tx.send(Live::Message(Arc::clone(&msg)));
            msg
        })
    }

    fn subscribe_now(
        &self,
        name: &ChannelName,
        since: Option<Cursor>,
    ) -> Result<Subscription, BrokerError> {
        let now = self.clock.now();
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
            let backlog = Arc::new(MemoryBacklog {
                channel: Arc::clone(ch),
                clock: self.clock,
            });
            Subscription::new(
                name.clone(),
                st.history.epoch(),
                st.history.last_id(),
                start,
                ch.tx.subscribe(),
                backlog,
            )
        })?;
        Ok(channel)
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
        let now = self.clock.now();
        let r = self.with_channel(&channel, |_, st| st.history.page(since, limit, now));
        Box::pin(std::future::ready(r))
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelInfo>, BrokerError>> {
        let now = self.clock.now();
        let map = lock(&self.channels);
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
                    subscribers: ch.tx.receiver_count(),
                }
            })
            .collect();
        drop(map);
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Box::pin(std::future::ready(Ok(list)))
    }

    /// Drops channels nobody listens to and whose history is empty (after age eviction), so
    /// that a stream of one-off channel names does not grow memory forever. A channel created
    /// again later gets a new epoch, which clients holding old cursors are told about.
    /// Returns how many channels were dropped.
    fn sweep(&self) -> BoxFuture<'_, usize> {
        let now = self.clock.now();
        let mut map = lock(&self.channels);
        let before = map.len();
        map.retain(|_, ch| {
            let mut st = lock(&ch.state);
            st.history.evict(now);
            let idle = ch.tx.receiver_count() == 0 && st.history.is_empty();
            if idle {
                st.removed = true;
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
