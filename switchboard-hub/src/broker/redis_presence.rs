//! [`RedisPresence`]: presence shared by every node on one Redis.
//!
//! # Design
//!
//! - **Sessions and the grace period stay on the node** that holds the connections: a
//!   node-local [`MemoryPresence`] applies the rule of [`crate::core::PresenceRegistry`] and
//!   hands each local join and leave, in order, to a writer task.
//! - **The writer puts them into Redis** with one Lua script each, per channel (keys share
//!   the `{channel}` hash tag): `e` (hash client → entry JSON), `m` (hash client →
//!   `node\tuser`), `x` (sorted set client → expiry in ms), `l` (sorted set, score 0, for
//!   listing by client id), `u` (hash user → entries) and `a` (anonymous entries). A join
//!   of a client id already in Redis (the client came back on another node within the grace
//!   period) only takes the entry over: no event. A leave removes the entry only if this
//!   node still owns it. Each script that changes who is there also `PUBLISH`es the event on
//!   the prefix's one presence pub/sub channel, inside the script: one event per change,
//!   on every node.
//! - **Expiry**: the node refreshes the expiry of the entries its live sessions hold every
//!   `refresh` (the join script again, which also re-adds an entry Redis lost); an entry
//!   expires `2 × refresh` after its last refresh, and every node sweeps expired entries
//!   every `refresh / 2` with a script that removes and announces them atomically, so
//!   the entries of a killed node leave within `2.5 × refresh`, exactly once.
//! - **Reads** (`list`, `counts`, `watch` snapshots) come from Redis; counts are `HLEN`s,
//!   lists `ZRANGE` by client id, capped. A watch joins the node's local ring of that
//!   channel first and reads the snapshot after, so it misses nothing; it may see a change
//!   both in its snapshot and as an event (clients apply joins and leaves idempotently, as
//!   `switchboard.js` does). After the pub/sub connection was lost, every watcher is told
//!   it lagged and reads again.
//! - Across nodes, a client id held by another user is not taken over: the newcomer is not
//!   listed (ids drawn at random never collide).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use ::redis::aio::ConnectionManager;
use futures_util::StreamExt as _;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::presence::{MemoryPresence, Transition};
use super::redis::{millis, redact};
use super::{
    BoxFuture, BrokerError, PresenceList, PresenceSettings, PresenceStore, PresenceUpdate,
    PresenceWatch,
};
use crate::core::{ChannelName, PresenceCounts, PresenceEntry, PresenceEvent, SessionKey};

/// How long one Redis command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Adds or refreshes one entry. KEYS: e m x l u a; ARGV: client, entry JSON, user ('' for
/// none), node, expiry ms, pub/sub channel, event text. Returns 1 when it joined, 0 when it
/// was there (refreshed or taken over), -1 when another user holds the id.
const JOIN: &str = r"
local meta = redis.call('HGET', KEYS[2], ARGV[1])
if meta then
  local tab = string.find(meta, '\t', 1, true)
  if string.sub(meta, tab + 1) ~= ARGV[3] then return -1 end
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4] .. '\t' .. ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4] .. '\t' .. ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
if ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[3], 1) else redis.call('INCR', KEYS[6]) end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
";

/// Removes entries. KEYS: e m x l u a; ARGV: mode ('node' or 'expired'), node or now ms,
/// pub/sub channel, event prefix ('leave\tCHANNEL\t'), then (mode 'node') client ids.
/// Returns how many left.
const DROP: &str = r"
local function drop(client)
  local meta = redis.call('HGET', KEYS[2], client)
  if not meta then return 0 end
  local tab = string.find(meta, '\t', 1, true)
  local user = string.sub(meta, tab + 1)
  local entry = redis.call('HGET', KEYS[1], client)
  redis.call('HDEL', KEYS[1], client)
  redis.call('HDEL', KEYS[2], client)
  redis.call('ZREM', KEYS[3], client)
  redis.call('ZREM', KEYS[4], client)
  if user ~= '' then
    if redis.call('HINCRBY', KEYS[5], user, -1) <= 0 then redis.call('HDEL', KEYS[5], user) end
  else
    if redis.call('DECR', KEYS[6]) <= 0 then redis.call('DEL', KEYS[6]) end
  end
  redis.call('PUBLISH', ARGV[3], ARGV[4] .. (entry or '{}'))
  return 1
end
local n = 0
if ARGV[1] == 'node' then
  for i = 5, #ARGV do
    local meta = redis.call('HGET', KEYS[2], ARGV[i])
    if meta and string.sub(meta, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. '\t' then
      n = n + drop(ARGV[i])
    end
  end
else
  for _, client in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])) do
    n = n + drop(client)
  end
end
return n
";

/// Presence in Redis, shared by every node with the same Redis and key prefix. See the
/// module documentation.
///
/// ```no_run
/// use switchboard_hub::broker::RedisPresence;
/// use switchboard_hub::core::{ChannelName, ClientId, PresenceEntry};
/// use switchboard_hub::{PresenceSettings, PresenceStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // A hub over a RedisBroker gets one from `Broker::presence`; on its own:
/// let settings = PresenceSettings::default();
/// let store = RedisPresence::new("redis://127.0.0.1:6379", "switchboard:", settings)?;
/// let lobby = ChannelName::new("lobby")?;
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// let key = store.join(lobby.clone(), entry).await?; // seen by every node on this Redis
/// store.release(&lobby, &key, false);
/// # Ok(())
/// # }
/// ```
pub struct RedisPresence {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL without credentials, for messages.
    store: String,
    client: ::redis::Client,
    prefix: String,
    /// This node's id in the owner field: random, so a restarted node is a new owner.
    node: String,
    settings: PresenceSettings,
    local: Arc<MemoryPresence>,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    join: ::redis::Script,
    drop: ::redis::Script,
    /// Per channel, the ring local watchers read.
    rings: Mutex<HashMap<ChannelName, broadcast::Sender<PresenceUpdate>>>,
    /// Started on first use (a runtime is needed): the writer, the pub/sub reader and the
    /// refresh/sweep timer.
    started: OnceLock<()>,
    /// Confirms that the pub/sub reader is subscribed (snapshots wait for it).
    subscribed: tokio::sync::watch::Receiver<bool>,
    subscribed_tx: tokio::sync::watch::Sender<bool>,
    transitions: Mutex<Option<mpsc::UnboundedReceiver<Transition>>>,
}

impl RedisPresence {
    /// A store on the Redis at `url` (the broker's), under `prefix`. Connects lazily: the
    /// first operation opens the connections, and fails with
    /// [`BrokerError::Unavailable`] while Redis cannot be reached.
    pub fn new(
        url: &str,
        prefix: &str,
        settings: PresenceSettings,
    ) -> Result<Arc<Self>, BrokerError> {
        let store = redact(url);
        let client =
            ::redis::Client::open(url).map_err(|e| BrokerError::unavailable(store.clone(), e))?;
        let (sink, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::watch::channel(false);
        let inner = Arc::new(Inner {
            store,
            client,
            prefix: prefix.to_owned(),
            node: format!("{:016x}", rand::random::<u64>()),
            local: MemoryPresence::with_sink(settings.grace, sink),
            settings,
            conn: tokio::sync::OnceCell::new(),
            join: ::redis::Script::new(JOIN),
            drop: ::redis::Script::new(DROP),
            rings: Mutex::new(HashMap::new()),
            started: OnceLock::new(),
            subscribed,
            subscribed_tx,
            transitions: Mutex::new(Some(rx)),
        });
        Ok(Arc::new(Self { inner }))
    }
}

impl Inner {
    fn key(&self, channel: &ChannelName, part: &str) -> String {
        format!("{}presence:{{{channel}}}:{part}", self.prefix)
    }

    fn keys(&self, channel: &ChannelName) -> [String; 6] {
        ["e", "m", "x", "l", "u", "a"].map(|p| self.key(channel, p))
    }

    /// The set of channels that have entries, for the sweep.
    fn index(&self) -> String {
        format!("{}presence:channels", self.prefix)
    }

    fn pubsub(&self) -> String {
        format!("{}presence", self.prefix)
    }

    fn ttl(&self) -> Duration {
        self.settings.refresh * 2
    }

    fn unavailable(&self, e: ::redis::RedisError) -> BrokerError {
        BrokerError::unavailable(self.store.clone(), e)
    }

    async fn conn(&self) -> Result<ConnectionManager, BrokerError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ::redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_number_of_retries(1);
                self.client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(|e| self.unavailable(e))
            })
            .await?;
        Ok(conn.clone())
    }

    /// Starts the background tasks once, and waits (bounded) for the pub/sub subscription.
    async fn ready(self: &Arc<Self>) -> Result<ConnectionManager, BrokerError> {
        if self.started.set(()).is_ok() {
            if let Some(rx) = lock(&self.transitions).take() {
                tokio::spawn(write(Arc::downgrade(self), rx));
            }
            tokio::spawn(listen(Arc::downgrade(self)));
            tokio::spawn(refresh(Arc::downgrade(self)));
        }
        let conn = self.conn().await?;
        let mut sub = self.subscribed.clone();
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, sub.wait_for(|s| *s)).await;
        Ok(conn)
    }

    /// Runs the join script for `entry` (a local join, or a refresh).
    async fn put(
        &self,
        conn: &mut ConnectionManager,
        channel: &ChannelName,
        entry: &PresenceEntry,
    ) -> Result<i64, BrokerError> {
        let json = serde_json::to_string(entry).unwrap_or_default();
        let expiry = now_ms().saturating_add(millis(self.ttl()));
        let mut inv = self.join.prepare_invoke();
        for k in self.keys(channel) {
            inv.key(k);
        }
        inv.arg(entry.client.as_str())
            .arg(&json)
            .arg(entry.user.as_deref().unwrap_or(""))
            .arg(&self.node)
            .arg(expiry)
            .arg(self.pubsub())
            .arg(format!("join\t{channel}\t{json}"));
        let joined: i64 = inv
            .invoke_async(conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let _: () = ::redis::cmd("SADD")
            .arg(self.index())
            .arg(channel.as_str())
            .query_async(conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(joined)
    }

    /// Runs the drop script: this node's `clients` (mode node), or the expired ones.
    async fn remove(
        &self,
        conn: &mut ConnectionManager,
        channel: &ChannelName,
        clients: Option<&[&str]>,
    ) -> Result<i64, BrokerError> {
        let mut inv = self.drop.prepare_invoke();
        for k in self.keys(channel) {
            inv.key(k);
        }
        match clients {
            Some(_) => inv.arg("node").arg(&self.node),
            None => inv.arg("expired").arg(now_ms()),
        };
        inv.arg(self.pubsub()).arg(format!("leave\t{channel}\t"));
        for c in clients.unwrap_or(&[]) {
            inv.arg(*c);
        }
        inv.invoke_async(conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    async fn read(
        &self,
        conn: &mut ConnectionManager,
        channel: &ChannelName,
        limit: usize,
    ) -> Result<PresenceList, BrokerError> {
        let [e, _, _, l, u, a] = self.keys(channel);
        let mut pipe = ::redis::pipe();
        pipe.cmd("HLEN")
            .arg(&e)
            .cmd("HLEN")
            .arg(&u)
            .cmd("GET")
            .arg(&a);
        // ZRANGE 0 -1 would be everything: a count-only read asks for no ids at all.
        let (clients, users, anonymous, ids): (usize, usize, Option<usize>, Vec<String>) =
            if limit == 0 {
                let (c, us, an): (usize, usize, Option<usize>) = pipe
                    .query_async(conn)
                    .await
                    .map_err(|err| self.unavailable(err))?;
                (c, us, an, Vec::new())
            } else {
                let stop = i64::try_from(limit).unwrap_or(i64::MAX) - 1;
                pipe.cmd("ZRANGE").arg(&l).arg(0).arg(stop);
                pipe.query_async(conn)
                    .await
                    .map_err(|err| self.unavailable(err))?
            };
        let entries = if limit == 0 || ids.is_empty() {
            Vec::new()
        } else {
            let raw: Vec<Option<String>> = ::redis::cmd("HMGET")
                .arg(&e)
                .arg(&ids)
                .query_async(conn)
                .await
                .map_err(|err| self.unavailable(err))?;
            raw.into_iter()
                .flatten()
                .filter_map(|j| serde_json::from_str::<PresenceEntry>(&j).ok().map(Arc::new))
                .collect()
        };
        let truncated = clients > entries.len();
        Ok(PresenceList {
            counts: PresenceCounts {
                clients,
                users: users + anonymous.unwrap_or(0),
            },
            entries,
            truncated,
        })
    }

    /// The ring of `channel`'s local watchers, created on first use.
    fn ring(&self, channel: &ChannelName) -> broadcast::Sender<PresenceUpdate> {
        lock(&self.rings)
            .entry(channel.clone())
            .or_insert_with(|| broadcast::channel(self.settings.queue_size.max(1)).0)
            .clone()
    }

    /// One pub/sub message: `join|leave \t CHANNEL \t ENTRY-JSON`.
    fn route(&self, text: &str) {
        let mut parts = text.splitn(3, '\t');
        let (Some(kind), Some(name), Some(json)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Ok(channel) = ChannelName::new(name) else {
            return;
        };
        let Ok(entry) = serde_json::from_str::<PresenceEntry>(json) else {
            return;
        };
        let entry = Arc::new(entry);
        let ev = match kind {
            "join" => PresenceEvent::Join(entry),
            "leave" => PresenceEvent::Leave(entry),
            _ => return,
        };
        let rings = lock(&self.rings);
        if let Some(tx) = rings.get(&channel) {
            // An error only means nobody on this node watches.
            let _ = tx.send(PresenceUpdate::Event(Arc::new(ev)));
        }
    }

    /// Tells every local watcher it may have missed events, so it reads again.
    fn resync_watchers(&self) {
        for tx in lock(&self.rings).values() {
            let _ = tx.send(PresenceUpdate::Lagged);
        }
    }

    /// Forgets the rings nobody on this node reads any more.
    fn prune_rings(&self) {
        lock(&self.rings).retain(|_, tx| tx.receiver_count() > 0);
    }
}

/// Writes local joins and leaves to Redis, in order; retries a failed write a few times
/// (a Redis that stays down loses them; the refresh re-adds live entries once it is back,
/// and the expiry removes the rest).
async fn write(inner: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Transition>) {
    while let Some(t) = rx.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        match t {
            Transition::Flush(done) => {
                let _ = done.send(());
            }
            Transition::Event(channel, ev) => {
                for attempt in 0..3u32 {
                    let result = async {
                        let mut conn = inner.conn().await?;
                        match &ev {
                            PresenceEvent::Join(e) => {
                                inner.put(&mut conn, &channel, e).await.map(|_| ())
                            }
                            PresenceEvent::Leave(e) => inner
                                .remove(&mut conn, &channel, Some(&[e.client.as_str()]))
                                .await
                                .map(|_| ()),
                        }
                    }
                    .await;
                    match result {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, attempt, "presence write to Redis failed");
                            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                        }
                    }
                }
            }
        }
    }
}

/// Reads the presence pub/sub channel into the local rings; reconnects forever.
async fn listen(inner: Weak<Inner>) {
    let mut backoff = Duration::from_millis(50);
    let mut connected_before = false;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let pubsub = tokio::time::timeout(COMMAND_TIMEOUT, strong.client.get_async_pubsub()).await;
        let mut pubsub = match pubsub {
            Ok(Ok(p)) => p,
            _ => {
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if pubsub.subscribe(strong.pubsub()).await.is_err() {
            drop(strong);
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(50);
        if connected_before {
            // Events may have been missed while away: watchers read again.
            strong.resync_watchers();
        }
        connected_before = true;
        strong.subscribed_tx.send_replace(true);
        drop(strong);
        let mut stream = pubsub.on_message();
        while let Some(msg) = stream.next().await {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            if let Ok(text) = msg.get_payload::<String>() {
                strong.route(&text);
            }
        }
        if let Some(strong) = inner.upgrade() {
            strong.subscribed_tx.send_replace(false);
        }
    }
}

/// Every `refresh / 2`: sweep expired entries of every channel; every `refresh`: refresh
/// this node's live entries.
async fn refresh(inner: Weak<Inner>) {
    let half = {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        (strong.settings.refresh / 2).max(Duration::from_millis(50))
    };
    let mut tick = tokio::time::interval(half);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let Ok(mut conn) = strong.conn().await else {
            continue;
        };
        if n % 2 == 0 {
            for (channel, entry) in strong.local.held_entries() {
                if let Err(e) = strong.put(&mut conn, &channel, &entry).await {
                    tracing::debug!(error = %e, "presence refresh failed");
                    break;
                }
            }
        }
        n += 1;
        let names: Result<Vec<String>, _> = ::redis::cmd("SMEMBERS")
            .arg(strong.index())
            .query_async(&mut conn)
            .await;
        for name in names.unwrap_or_default() {
            let Ok(channel) = ChannelName::new(&name) else {
                continue;
            };
            let _ = strong.remove(&mut conn, &channel, None).await;
            let left: Result<usize, _> = ::redis::cmd("HLEN")
                .arg(strong.key(&channel, "e"))
                .query_async(&mut conn)
                .await;
            if left == Ok(0) {
                let _: Result<(), _> = ::redis::cmd("SREM")
                    .arg(strong.index())
                    .arg(&name)
                    .query_async(&mut conn)
                    .await;
            }
        }
        strong.prune_rings();
    }
}

impl PresenceStore for RedisPresence {
    fn join(
        &self,
        channel: ChannelName,
        entry: PresenceEntry,
    ) -> BoxFuture<'_, Result<SessionKey, BrokerError>> {
        Box::pin(async move {
            self.inner.ready().await?;
            let key = self.inner.local.join_now(&channel, entry);
            // Answer once the join is in Redis, so that a snapshot the caller reads next
            // (its own `presence` frame) already lists it.
            let (tx, rx) = oneshot::channel();
            if self.inner.local.flush(tx) {
                let _ = tokio::time::timeout(COMMAND_TIMEOUT * 2, rx).await;
            }
            Ok(key)
        })
    }

    fn release(&self, channel: &ChannelName, key: &SessionKey, immediate: bool) {
        self.inner.local.release_now(channel, key, immediate);
    }

    fn list(
        &self,
        channel: ChannelName,
        limit: usize,
    ) -> BoxFuture<'_, Result<PresenceList, BrokerError>> {
        Box::pin(async move {
            let mut conn = self.inner.ready().await?;
            self.inner.read(&mut conn, &channel, limit).await
        })
    }

    fn watch(
        &self,
        channel: ChannelName,
        limit: usize,
    ) -> BoxFuture<'_, Result<(PresenceList, PresenceWatch), BrokerError>> {
        Box::pin(async move {
            let mut conn = self.inner.ready().await?;
            // Ring first, snapshot after: nothing between them is missed.
            let watch = PresenceWatch::new(self.inner.ring(&channel).subscribe());
            let list = self.inner.read(&mut conn, &channel, limit).await?;
            Ok((list, watch))
        })
    }

    fn counts(
        &self,
        channels: Vec<ChannelName>,
    ) -> BoxFuture<'_, Result<Vec<PresenceCounts>, BrokerError>> {
        Box::pin(async move {
            let mut conn = self.inner.ready().await?;
            let mut out = Vec::with_capacity(channels.len());
            for c in &channels {
                out.push(self.inner.read(&mut conn, c, 0).await?.counts);
            }
            Ok(out)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner.local.clear_now();
            // Wait (bounded) until the writer has put those leaves into Redis.
            let (tx, rx) = oneshot::channel();
            if self.inner.local.flush(tx) {
                let _ = tokio::time::timeout(COMMAND_TIMEOUT * 2, rx).await;
            }
        })
    }

    fn sweep(&self) -> usize {
        self.inner.local.sweep_now()
    }
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("store", &self.inner.store)
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, millis)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
