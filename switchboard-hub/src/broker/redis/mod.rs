//! [`RedisBroker`]: channels shared by several hub nodes through one Redis.
//!
//! # Design
//!
//! - **Publish** is one Lua script (see `scripts`): increment the channel's id, append to
//!   its Stream (entry id = message id, exact `MAXLEN` = history size, age trimmed by the
//!   Redis clock), refresh the TTL and `PUBLISH` `EPOCH:ID:MS:PAYLOAD`. Append and fan-out
//!   happen in one order, and a publish is answered "ok" only when Redis ran the script:
//!   any error or timeout is [`BrokerError::Unavailable`].
//! - **The epoch lives in Redis**, next to the id counter; a Redis that lost its data shows
//!   up as a new epoch on the next publish or read, so clients are reset instead of being
//!   handed wrong ids.
//! - **One Redis subscription per channel per node**, on one dedicated pub/sub connection
//!   owned by a supervisor task. Local subscribers share the channel's [`Live`] ring, so a
//!   message is parsed once per node and its wire forms are encoded once for all local
//!   clients. Channels nobody on this node listens to any more are unsubscribed at the next
//!   check tick.
//! - **Subscribe**: join the ring, make sure the Redis subscription is confirmed, *then* read
//!   the channel's state and first backlog page in one script, and let the
//!   [`Subscription`] merge by id (it drops what it already has, reads the backlog when the
//!   ring jumps).
//! - **Gaps, per channel, per node**: the supervisor keeps each channel's last forwarded
//!   `(epoch, id)`. An id jump, an epoch change, a pub/sub reconnect, and a periodic
//!   position check (which also catches a subscription that looks alive but receives
//!   nothing) all lead to one repair: read the stream after that position and forward what
//!   was missed, or — when the stream no longer reaches back — announce a gap, and every
//!   local subscription re-checks its own position and gets its reset.
//! - **Redis lost while running**: publishes fail (503 `broker_unavailable`, or an `error`
//!   op with the publish's `ref`); subscriptions are told once ([`Notice::Unavailable`])
//!   and stay; the supervisor reconnects with backoff, resubscribes every channel,
//!   repairs each from its stream, and subscribers continue exactly or get a reset.

mod scripts;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use ::redis::aio::ConnectionManager;
use futures_util::StreamExt as _;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::subscription::BACKLOG_PAGE;
use super::{
    Backlog, BacklogRead, BoxFuture, Broker, BrokerError, BrokerHealth, BrokerState, ChannelInfo,
    Live, Notice, Start, Subscription,
};
use crate::core::{
    resume_rule, ChannelName, Cursor, Epoch, HistoryLimits, Message, MessageId, Page, Payload,
};
use crate::metrics::Metrics;

/// Settings of a [`RedisBroker`].
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::broker::RedisBrokerConfig;
///
/// let config = RedisBrokerConfig {
///     url: "redis://127.0.0.1:6379/2".into(),
///     key_prefix: "staging:".into(), // two hubs can share one Redis
///     check_interval: Duration::from_secs(1),
///     ..RedisBrokerConfig::default()
/// };
/// assert_eq!(config.history, RedisBrokerConfig::default().history);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisBrokerConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key and pub/sub channel, so several hubs can share one Redis.
    pub key_prefix: String,
    /// History kept per channel (the stream's MAXLEN and age limit).
    pub history: HistoryLimits,
    /// Slots of each channel's node-local ring.
    pub queue_size: usize,
    /// How many channels this node may subscribe to at once.
    pub max_channels: usize,
    /// How often each subscribed channel's position is checked against Redis (and idle
    /// channels are unsubscribed).
    pub check_interval: Duration,
}

impl Default for RedisBrokerConfig {
    /// `switchboard serve`'s: from [`crate::HubConfig::default`] (`[broker]`, `[history]`
    /// and `[limits]`), where the hub's defaults are written (once).
    fn default() -> Self {
        crate::HubConfig::default().redis_broker()
    }
}

/// How long one Redis command may take before it counts as a failure.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest wait between two reconnect attempts of the pub/sub connection.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A broker whose channels live in Redis and are shared by every node that uses the same
/// Redis and key prefix. See the module documentation for the design.
///
/// ```no_run
/// use std::sync::Arc;
/// use switchboard_hub::broker::{RedisBroker, RedisBrokerConfig};
/// use switchboard_hub::{Hub, HubOptions};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RedisBrokerConfig { url: "redis://127.0.0.1:6379".into(), ..Default::default() };
/// let broker = RedisBroker::connect(config).await?; // fails at once if Redis is unreachable
/// let hub = Hub::new(Arc::new(broker), HubOptions::default()); // presence is in Redis too
/// # Ok(())
/// # }
/// ```
pub struct RedisBroker {
    inner: Arc<Inner>,
    supervisor: tokio::task::JoinHandle<()>,
}

struct Inner {
    config: RedisBrokerConfig,
    /// The URL without credentials, for messages.
    store: String,
    client: ::redis::Client,
    conn: ConnectionManager,
    publish: ::redis::Script,
    read: ::redis::Script,
    channels: Mutex<HashMap<ChannelName, Arc<Channel>>>,
    commands: mpsc::UnboundedSender<Command>,
    up: AtomicBool,
    last_problem: Mutex<Option<String>>,
    metrics: OnceLock<Arc<Metrics>>,
}

/// A channel this node is subscribed to.
struct Channel {
    tx: broadcast::Sender<Live>,
    /// The last `(epoch, id)` forwarded into the ring; `None` until known. Only the
    /// supervisor moves it.
    pos: Mutex<Option<(Epoch, MessageId)>>,
}

enum Command {
    /// Make sure Redis delivers this channel to us; answers once the subscription is
    /// confirmed.
    Subscribe(ChannelName, oneshot::Sender<Result<(), BrokerError>>),
}

/// What the read script found.
struct Raw {
    epoch: Epoch,
    last: MessageId,
    first: MessageId,
    after: MessageId,
    entries: Vec<Arc<Message>>,
}

impl RedisBroker {
    /// Connects to `config.url` and starts the pub/sub supervisor. Fails, naming the URL,
    /// when Redis cannot be reached or answers wrongly: a node that cannot share channels
    /// should not start serving alone.
    pub async fn connect(config: RedisBrokerConfig) -> Result<Self, BrokerError> {
        let store = redact(&config.url);
        let client =
            ::redis::Client::open(config.url.as_str()).map_err(|e| unavailable(&store, e))?;
        let manager = ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = client
            .get_connection_manager_with_config(manager)
            .await
            .map_err(|e| unavailable(&store, e))?;
        let pong: String = ::redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&store, e))?;
        if pong != "PONG" {
            return Err(BrokerError::Protocol(format!(
                "{store} answered PING with {pong:?}"
            )));
        }
        let (commands, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            store,
            client,
            conn,
            publish: ::redis::Script::new(&scripts::publish()),
            read: ::redis::Script::new(&scripts::read()),
            channels: Mutex::new(HashMap::new()),
            commands,
            up: AtomicBool::new(true),
            last_problem: Mutex::new(None),
            metrics: OnceLock::new(),
            config,
        });
        let supervisor = tokio::spawn(supervise(Arc::clone(&inner), rx));
        Ok(Self { inner, supervisor })
    }

    /// Its settings.
    pub fn config(&self) -> &RedisBrokerConfig {
        &self.inner.config
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.supervisor.abort();
        for ch in lock(&self.inner.channels).values() {
            let _ = ch
                .tx
                .send(Live::Notice(Arc::new(Notice::Closed(BrokerError::Closed))));
        }
    }
}

impl Inner {
    fn key(&self, channel: &ChannelName, part: &str) -> String {
        format!("{}{{{channel}}}:{part}", self.config.key_prefix)
    }

    fn pubsub_name(&self, channel: &ChannelName) -> String {
        format!("{}{{{channel}}}", self.config.key_prefix)
    }

    /// The channel a pub/sub channel name belongs to.
    fn channel_of(&self, pubsub: &str) -> Option<ChannelName> {
        let rest = pubsub.strip_prefix(self.config.key_prefix.as_str())?;
        let name = rest.strip_prefix('{')?.strip_suffix('}')?;
        ChannelName::new(name).ok()
    }

    /// Keys expire this long after the last publish or read: never before their messages
    /// age out, and never while a node is subscribed (it reads at every check).
    fn ttl_ms(&self) -> u64 {
        match self.config.history.max_age {
            None => 0,
            Some(age) => {
                let floor = self.config.check_interval * 4 + Duration::from_secs(10);
                millis(age.max(floor))
            }
        }
    }

    /// How long the epoch a read announced for an unknown channel is kept without another
    /// read: longer than a subscribed node takes between two position checks.
    fn birth_ttl_ms(&self) -> u64 {
        millis(self.config.check_interval * 4 + Duration::from_secs(10))
    }

    fn max_age_ms(&self) -> u64 {
        self.config.history.max_age.map_or(0, millis)
    }

    fn unavailable(&self, e: ::redis::RedisError) -> BrokerError {
        let err = unavailable(&self.store, e);
        *lock(&self.last_problem) = Some(err.to_string());
        err
    }

    fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.get()
    }

    async fn publish(&self, channel: &ChannelName, data: Payload) -> Result<Message, BrokerError> {
        let candidate = Epoch::from_random_bits(rand::random());
        let mut conn = self.conn.clone();
        let mut invocation = self.publish.prepare_invoke();
        invocation
            .key(self.key(channel, "seq"))
            .key(self.key(channel, "epoch"))
            .key(self.key(channel, "log"))
            .key(self.key(channel, "birth"))
            .arg(data.json().as_ref())
            .arg(candidate.get())
            .arg(self.config.history.max_messages)
            .arg(self.ttl_ms())
            .arg(self.max_age_ms())
            .arg(self.pubsub_name(channel));
        let call = invocation.invoke_async::<(String, u64, u64)>(&mut conn);
        let (epoch, id, ms) = match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.unavailable(e)),
            Err(_) => return Err(self.timeout()),
        };
        let epoch = parse_epoch(epoch.as_bytes())?;
        Ok(Message::new(
            channel.clone(),
            epoch,
            MessageId::new(id),
            data,
            from_ms(ms),
        ))
    }

    fn timeout(&self) -> BrokerError {
        let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer");
        let err = BrokerError::unavailable(self.store.clone(), e);
        *lock(&self.last_problem) = Some(err.to_string());
        err
    }

    /// The channel's state and at most `limit` messages after `after` (`None`: the last
    /// `limit`), in one script call.
    async fn read(
        &self,
        channel: &ChannelName,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Raw, BrokerError> {
        let candidate = Epoch::from_random_bits(rand::random());
        let mut conn = self.conn.clone();
        let after_arg = after.map_or(-1, |id| i64::try_from(id.get()).unwrap_or(i64::MAX));
        let mut invocation = self.read.prepare_invoke();
        invocation
            .key(self.key(channel, "seq"))
            .key(self.key(channel, "epoch"))
            .key(self.key(channel, "log"))
            .key(self.key(channel, "birth"))
            .arg(after_arg)
            .arg(limit)
            .arg(candidate.get())
            .arg(self.ttl_ms())
            .arg(self.max_age_ms())
            .arg(self.birth_ttl_ms());
        let call = invocation.invoke_async::<Vec<Vec<u8>>>(&mut conn);
        let fields = match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.unavailable(e)),
            Err(_) => return Err(self.timeout()),
        };
        parse_read(channel, &fields)
    }

    fn forward(&self, ch: &Channel, msg: Arc<Message>) {
        let _ = ch.tx.send(Live::Message(msg));
    }

    fn announce(&self, ch: &Channel, notice: Notice) {
        let _ = ch.tx.send(Live::Notice(Arc::new(notice)));
    }

    fn announce_all(&self, notice: Notice) {
        let notice = Arc::new(notice);
        for ch in lock(&self.channels).values() {
            let _ = ch.tx.send(Live::Notice(Arc::clone(&notice)));
        }
    }

    fn local(&self, name: &ChannelName) -> Option<Arc<Channel>> {
        lock(&self.channels).get(name).cloned()
    }

    /// Brings `ch`'s ring up to Redis: forwards every message after its position, or
    /// announces a gap when the stream no longer reaches back (or the epoch changed).
    /// Used after a pub/sub reconnect, on an id jump, and by the periodic check.
    async fn repair(&self, name: &ChannelName, ch: &Channel) -> Result<(), BrokerError> {
        let mut repaired = false;
        loop {
            let pos = *lock(&ch.pos);
            let raw = self.read(name, pos.map(|p| p.1), BACKLOG_PAGE).await?;
            let Some((epoch, last)) = pos else {
                *lock(&ch.pos) = Some((raw.epoch, raw.last));
                return Ok(());
            };
            if resume_rule(Cursor::new(epoch, last), raw.epoch, raw.first, raw.last).is_err() {
                if let Some(m) = self.metrics() {
                    m.record_gap_detected();
                }
                *lock(&ch.pos) = Some((raw.epoch, raw.last));
                self.announce(ch, Notice::Gap);
                return Ok(());
            }
            if raw.entries.is_empty() {
                if repaired {
                    if let Some(m) = self.metrics() {
                        m.record_gap_detected();
                        m.record_gap_repaired();
                    }
                }
                return Ok(());
            }
            repaired = true;
            let mut next = last;
            for m in raw.entries {
                if m.id() == next.next() {
                    next = m.id();
                    self.forward(ch, m);
                }
            }
            *lock(&ch.pos) = Some((epoch, next));
        }
    }

    /// A message from pub/sub: forwarded when it is the next one, dropped when already
    /// forwarded, and a repair when ids jumped or the epoch changed.
    async fn route(&self, msg: ::redis::Msg) {
        let Some(name) = self.channel_of(msg.get_channel_name()) else {
            return;
        };
        let Some(ch) = self.local(&name) else {
            return;
        };
        let message = match parse_published(&name, msg.get_payload_bytes()) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(channel = %name, error = %e, "unreadable pub/sub message");
                return;
            }
        };
        let pos = *lock(&ch.pos);
        match pos {
            None => {
                *lock(&ch.pos) = Some((message.epoch(), message.id()));
                self.forward(&ch, Arc::new(message));
            }
            Some((epoch, last)) if epoch == message.epoch() && message.id() <= last => {}
            Some((epoch, last)) if epoch == message.epoch() && message.id() == last.next() => {
                *lock(&ch.pos) = Some((epoch, message.id()));
                self.forward(&ch, Arc::new(message));
            }
            Some(_) => {
                if self.repair(&name, &ch).await.is_err() {
                    // Redis went away between the publish and now: hand the message on;
                    // each subscription notices the jump and repairs itself later.
                    *lock(&ch.pos) = Some((message.epoch(), message.id()));
                    self.forward(&ch, Arc::new(message));
                }
            }
        }
    }

    fn set_state(&self, up: bool, problem: Option<String>) {
        let was = self.up.swap(up, Ordering::SeqCst);
        if let Some(p) = problem {
            *lock(&self.last_problem) = Some(p);
        }
        if was && !up {
            tracing::warn!(store = %self.store, "Redis connection lost; reconnecting");
            let e = BrokerError::unavailable(
                self.store.clone(),
                std::io::Error::new(std::io::ErrorKind::NotConnected, "pub/sub connection lost"),
            );
            self.announce_all(Notice::Unavailable(e));
        }
    }
}

/// The pub/sub supervisor: owns the dedicated pub/sub connection, (re)subscribes, routes
/// messages, repairs gaps and runs the periodic check. Reconnects forever with backoff.
async fn supervise(inner: Arc<Inner>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut wanted: HashSet<ChannelName> = HashSet::new();
    let mut backoff = Duration::from_millis(50);
    let mut connected_before = false;
    loop {
        let pubsub =
            match tokio::time::timeout(COMMAND_TIMEOUT, inner.client.get_async_pubsub()).await {
                Ok(Ok(p)) => Some(p),
                Ok(Err(e)) => {
                    inner.set_state(false, Some(unavailable(&inner.store, e).to_string()));
                    None
                }
                Err(_) => {
                    inner.set_state(false, Some(format!("{}: connect timed out", inner.store)));
                    None
                }
            };
        let Some(pubsub) = pubsub else {
            // Refuse subscribes while down, keep the ones we have.
            let deadline = tokio::time::sleep(backoff);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    cmd = commands.recv() => match cmd {
                        None => return,
                        Some(Command::Subscribe(_, reply)) => {
                            let _ = reply.send(Err(down_error(&inner)));
                        }
                    },
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        let (mut sink, mut stream) = pubsub.split();
        // Only channels someone still listens to are resubscribed.
        wanted.retain(|name| inner.local(name).is_some());
        let names: Vec<String> = wanted.iter().map(|n| inner.pubsub_name(n)).collect();
        if !names.is_empty() {
            if let Err(e) = sink.subscribe(&names).await {
                inner.set_state(false, Some(unavailable(&inner.store, e).to_string()));
                continue;
            }
        }
        if connected_before {
            if let Some(m) = inner.metrics() {
                m.record_broker_reconnect();
            }
            tracing::info!(store = %inner.store, channels = names.len(), "Redis pub/sub reconnected");
        }
        connected_before = true;
        backoff = Duration::from_millis(50);
        // Whatever was published while we were away is in the streams.
        let mut healthy = true;
        for name in wanted.clone() {
            if let Some(ch) = inner.local(&name) {
                if inner.repair(&name, &ch).await.is_err() {
                    healthy = false;
                    break;
                }
            }
        }
        if !healthy {
            continue;
        }
        inner.set_state(true, None);
        inner.announce_all(Notice::Restored);
        let mut tick = tokio::time::interval(inner.config.check_interval);
        tick.reset();
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => inner.route(msg).await,
                    None => {
                        inner.set_state(false, Some(format!("{}: pub/sub connection lost", inner.store)));
                        break;
                    }
                },
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(Command::Subscribe(name, reply)) => {
                        if wanted.contains(&name) {
                            let _ = reply.send(Ok(()));
                            continue;
                        }
                        match sink.subscribe(inner.pubsub_name(&name)).await {
                            Ok(()) => {
                                wanted.insert(name.clone());
                                if let Some(ch) = inner.local(&name) {
                                    // Learn the position the ring starts from.
                                    let _ = inner.repair(&name, &ch).await;
                                }
                                let _ = reply.send(Ok(()));
                            }
                            Err(e) => {
                                let err = unavailable(&inner.store, e);
                                let _ = reply.send(Err(err.clone()));
                                inner.set_state(false, Some(err.to_string()));
                                break;
                            }
                        }
                    }
                },
                _ = tick.tick() => {
                    // Unsubscribe channels nobody here listens to; check the others.
                    let idle: Vec<ChannelName> = {
                        let mut map = lock(&inner.channels);
                        let idle: Vec<_> = map
                            .iter()
                            .filter(|(_, ch)| ch.tx.receiver_count() == 0)
                            .map(|(n, _)| n.clone())
                            .collect();
                        for n in &idle {
                            map.remove(n);
                        }
                        idle
                    };
                    let gone: Vec<String> = idle
                        .iter()
                        .filter(|n| wanted.remove(*n))
                        .map(|n| inner.pubsub_name(n))
                        .collect();
                    if !gone.is_empty() && sink.unsubscribe(&gone).await.is_err() {
                        inner.set_state(false, Some(format!("{}: unsubscribe failed", inner.store)));
                        break;
                    }
                    let live: Vec<(ChannelName, Arc<Channel>)> = lock(&inner.channels)
                        .iter()
                        .map(|(n, c)| (n.clone(), Arc::clone(c)))
                        .collect();
                    let mut failed = false;
                    for (name, ch) in live {
                        if !wanted.contains(&name) {
                            continue;
                        }
                        let before = *lock(&ch.pos);
                        if inner.repair(&name, &ch).await.is_err() {
                            failed = true;
                            break;
                        }
                        if *lock(&ch.pos) != before {
                            tracing::debug!(channel = %name, "position check found missed messages");
                        }
                    }
                    if failed {
                        // Commands fail while pub/sub may still look open: treat as lost, so
                        // that a half-dead connection is not trusted.
                        inner.set_state(false, Some(format!("{}: position check failed", inner.store)));
                        break;
                    }
                }
            }
        }
    }
}

fn down_error(inner: &Inner) -> BrokerError {
    BrokerError::unavailable(
        inner.store.clone(),
        std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            lock(&inner.last_problem)
                .clone()
                .unwrap_or_else(|| "not connected".into()),
        ),
    )
}

/// A channel's history as a subscription reads it.
struct RedisBacklog {
    inner: Arc<Inner>,
    channel: ChannelName,
}

impl Backlog for RedisBacklog {
    fn read(
        &self,
        after: Cursor,
        limit: usize,
    ) -> BoxFuture<'static, Result<BacklogRead, BrokerError>> {
        let (inner, channel) = (Arc::clone(&self.inner), self.channel.clone());
        Box::pin(async move {
            let raw = inner.read(&channel, Some(after.id), limit).await?;
            Ok(match resume_rule(after, raw.epoch, raw.first, raw.last) {
                Ok(()) => BacklogRead::Messages(raw.entries),
                Err(reason) => BacklogRead::Reset {
                    epoch: raw.epoch,
                    reason,
                    last: raw.last,
                },
            })
        })
    }
}

impl RedisBroker {
    async fn subscribe_now(
        &self,
        name: ChannelName,
        since: Option<Cursor>,
    ) -> Result<Subscription, BrokerError> {
        let inner = &self.inner;
        // Join the ring first: everything forwarded from now on reaches `rx`.
        let rx = {
            let mut map = lock(&inner.channels);
            match map.get(&name) {
                Some(ch) => ch.tx.subscribe(),
                None => {
                    if map.len() >= inner.config.max_channels {
                        return Err(BrokerError::TooManyChannels {
                            limit: inner.config.max_channels,
                        });
                    }
                    let (tx, rx) = broadcast::channel(inner.config.queue_size.max(1));
                    map.insert(
                        name.clone(),
                        Arc::new(Channel {
                            tx,
                            pos: Mutex::new(None),
                        }),
                    );
                    rx
                }
            }
        };
        // Then make sure Redis delivers the channel to this node...
        let (reply, confirmed) = oneshot::channel();
        inner
            .commands
            .send(Command::Subscribe(name.clone(), reply))
            .map_err(|_| BrokerError::Closed)?;
        confirmed.await.map_err(|_| BrokerError::Closed)??;
        // ...and only then read where the channel stands: anything published after this
        // read is delivered through the ring.
        let raw = inner.read(&name, since.map(|s| s.id), BACKLOG_PAGE).await?;
        let start = match since {
            None => Start::Live,
            Some(since) => match resume_rule(since, raw.epoch, raw.first, raw.last) {
                Ok(()) => Start::Replay {
                    after: since.id,
                    first: raw.entries,
                },
                Err(reason) => Start::Reset(reason),
            },
        };
        let backlog = Arc::new(RedisBacklog {
            inner: Arc::clone(inner),
            channel: name.clone(),
        });
        Ok(Subscription::new(
            name, raw.epoch, raw.last, start, rx, backlog,
        ))
    }

    async fn history_now(
        &self,
        name: ChannelName,
        since: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, BrokerError> {
        let raw = self.inner.read(&name, since.map(|s| s.id), limit).await?;
        // The same page rules as the in-memory history (`History::page`).
        if let Some(since) = since {
            if let Err(reason) = resume_rule(since, raw.epoch, raw.first, raw.last) {
                return Ok(Page {
                    epoch: raw.epoch,
                    messages: Vec::new(),
                    reset: Some(reason),
                    next: Cursor::new(raw.epoch, MessageId::new(raw.first.get() - 1)),
                    more: raw.first <= raw.last,
                });
            }
        }
        let next_id = raw.entries.last().map_or(raw.after, |m| m.id());
        Ok(Page {
            epoch: raw.epoch,
            messages: raw.entries,
            reset: None,
            next: Cursor::new(raw.epoch, next_id),
            more: next_id < raw.last,
        })
    }

    async fn channels_now(&self) -> Result<Vec<ChannelInfo>, BrokerError> {
        let names: Vec<ChannelName> = lock(&self.inner.channels).keys().cloned().collect();
        let mut list = Vec::with_capacity(names.len());
        for name in names {
            let raw = self.inner.read(&name, None, 0).await?;
            let subscribers = self.inner.local(&name).map_or(0, |c| c.tx.receiver_count());
            list.push(ChannelInfo {
                retained: (raw.last.get() + 1).saturating_sub(raw.first.get()) as usize,
                name,
                epoch: raw.epoch,
                last_id: raw.last,
                subscribers,
            });
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list)
    }
}

impl Broker for RedisBroker {
    fn publish(
        &self,
        channel: ChannelName,
        data: Payload,
    ) -> BoxFuture<'_, Result<Arc<Message>, BrokerError>> {
        Box::pin(async move { self.inner.publish(&channel, data).await.map(Arc::new) })
    }

    fn subscribe(
        &self,
        channel: ChannelName,
        since: Option<Cursor>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>> {
        Box::pin(self.subscribe_now(channel, since))
    }

    fn history(
        &self,
        channel: ChannelName,
        since: Option<Cursor>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page, BrokerError>> {
        Box::pin(self.history_now(channel, since, limit))
    }

    /// The channels this node is subscribed to (Redis may hold more: they are not scanned,
    /// so that listing stays cheap on a shared Redis).
    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelInfo>, BrokerError>> {
        Box::pin(self.channels_now())
    }

    fn health(&self) -> BrokerHealth {
        let up = self.inner.up.load(Ordering::SeqCst);
        BrokerHealth {
            kind: "redis",
            state: if up {
                BrokerState::Up
            } else {
                BrokerState::Down
            },
            detail: if up {
                None
            } else {
                lock(&self.inner.last_problem).clone()
            },
        }
    }

    fn bind_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.inner.metrics.set(metrics);
    }

    /// Presence in the same Redis, under the same prefix (see `RedisPresence`).
    fn presence(&self, settings: super::PresenceSettings) -> Arc<dyn super::PresenceStore> {
        let config = &self.inner.config;
        match super::RedisPresence::new(&config.url, &config.key_prefix, settings) {
            Ok(store) => store,
            // The URL already opened once in `connect`, so this does not happen; if it did,
            // presence would be this node's only, and the log says so.
            Err(e) => {
                tracing::error!(error = %e, "Redis presence unavailable; presence is node-local");
                super::MemoryPresence::new(settings.grace, settings.queue_size)
            }
        }
    }
}

fn unavailable(store: &str, e: ::redis::RedisError) -> BrokerError {
    BrokerError::unavailable(store.to_owned(), e)
}

/// `redis://user:secret@host:6379/0` → `redis://host:6379/0`.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn from_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn protocol(what: &str) -> BrokerError {
    BrokerError::Protocol(format!("unexpected data from Redis: {what}"))
}

fn number(bytes: &[u8], what: &str) -> Result<u64, BrokerError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol(what))
}

fn parse_epoch(bytes: &[u8]) -> Result<Epoch, BrokerError> {
    Epoch::new(number(bytes, "epoch")?).ok_or_else(|| protocol("epoch out of range"))
}

fn parse_read(channel: &ChannelName, f: &[Vec<u8>]) -> Result<Raw, BrokerError> {
    if f.len() < 4 || (f.len() - 4) % 3 != 0 {
        return Err(protocol("read script answer"));
    }
    let epoch = parse_epoch(&f[0])?;
    let mut entries = Vec::with_capacity((f.len() - 4) / 3);
    for e in f[4..].chunks_exact(3) {
        let data = Payload::from_json(&e[2]).map_err(|_| protocol("stored payload"))?;
        entries.push(Arc::new(Message::new(
            channel.clone(),
            epoch,
            MessageId::new(number(&e[0], "entry id")?),
            data,
            from_ms(number(&e[1], "entry time")?),
        )));
    }
    Ok(Raw {
        epoch,
        last: MessageId::new(number(&f[1], "last id")?),
        first: MessageId::new(number(&f[2], "first id")?),
        after: MessageId::new(number(&f[3], "start")?),
        entries,
    })
}

/// `EPOCH:ID:MS:PAYLOAD`, as the publish script sends it.
fn parse_published(channel: &ChannelName, bytes: &[u8]) -> Result<Message, BrokerError> {
    let mut parts = bytes.splitn(4, |&b| b == b':');
    let (Some(epoch), Some(id), Some(ms), Some(data)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(protocol("pub/sub message"));
    };
    let data = Payload::from_json(data).map_err(|_| protocol("published payload"))?;
    Ok(Message::new(
        channel.clone(),
        parse_epoch(epoch)?,
        MessageId::new(number(id, "id")?),
        data,
        from_ms(number(ms, "time")?),
    ))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn published_messages_parse_back() {
        let c = ChannelName::new("chat").unwrap();
        let m = parse_published(&c, br#"7:3:1700000000000:{"a":"x:y"}"#).unwrap();
        assert_eq!((m.epoch().get(), m.id().get()), (7, 3));
        assert_eq!(m.data().as_str(), r#"{"a":"x:y"}"#);
        assert!(parse_published(&c, b"7:3:1").is_err());
        assert!(
            parse_published(&c, b"0:3:1:1").is_err(),
            "epoch 0 is invalid"
        );
    }
}
