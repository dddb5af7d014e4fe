//! Where channels live: the [`Broker`] trait, the [`Subscription`] every broker hands out,
//! and the in-memory broker; and where presence lives: the [`PresenceStore`] trait and its
//! in-process implementation.
//!
//! The hub talks to channels only through [`Broker`], so that one process can keep them in
//! memory ([`MemoryBroker`], the embedded default) while several processes share them through
//! an external store. The trait is async and fallible for that reason, even though the
//! in-memory broker never waits and never fails except on its channel limit.
//!
//! What is broker-neutral lives here too, so that no broker depends on the hub:
//! [`Subscription`] (a stream of [`Delivery`]s fed by a node-local [`Live`] ring and a
//! [`Backlog`] it pulls from at its reader's pace) and the typed [`BrokerError`].

mod memory;
mod presence;
pub mod redis;
mod redis_presence;
mod subscription;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::core::{ChannelName, Cursor, Epoch, Message, MessageId, Page, Payload};

pub use self::redis::{RedisBroker, RedisBrokerConfig};
pub use memory::{MemoryBroker, MemoryBrokerConfig};
pub use presence::{
    MemoryPresence, PresenceGuard, PresenceList, PresenceStore, PresenceUpdate, PresenceWatch,
};
pub use redis_presence::RedisPresence;
pub use subscription::{Backlog, BacklogRead, Delivery, Live, Notice, Start, Subscription};

/// A boxed, sendable future, so that [`Broker`] can be used as `dyn Broker`.
///
/// ```
/// use switchboard_hub::broker::BoxFuture;
///
/// fn answer(n: usize) -> BoxFuture<'static, usize> {
///     Box::pin(async move { n * 2 })
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(answer(21).await, 42);
/// # }
/// ```
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store of channels: assigns ids, keeps history, fans messages out to subscriptions.
///
/// Contract for implementations:
///
/// - ids in a channel increase by one per message within an epoch;
/// - a subscription created with `since` yields exactly the messages after `since` and then
///   every later message, in id order, each once — or starts with a reset when that is
///   impossible (see [`crate::core::Resume`]);
/// - a slow subscription never delays `publish` nor other subscriptions: it lags instead.
///
/// ```
/// use std::sync::Arc;
/// use switchboard_hub::core::{ChannelName, Payload};
/// use switchboard_hub::{Broker, Hub, HubOptions, MemoryBroker, MemoryBrokerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(MemoryBrokerConfig::default()));
/// let chat = ChannelName::new("chat")?;
/// let msg = broker.publish(chat.clone(), Payload::text("hi")).await?;
/// assert_eq!(msg.id().get(), 1);
/// assert_eq!(broker.history(chat, None, 10).await?.messages.len(), 1);
/// let hub = Hub::new(broker, HubOptions::default()); // what the transports use
/// # Ok(())
/// # }
/// ```
pub trait Broker: Send + Sync + 'static {
    /// Appends `data` to `channel` (creating it on first use) and fans it out.
    fn publish(
        &self,
        channel: ChannelName,
        data: Payload,
    ) -> BoxFuture<'_, Result<std::sync::Arc<Message>, BrokerError>>;

    /// Subscribes to `channel` (creating it on first use), replaying what followed `since`.
    /// Without `since`, delivery starts with the next message published.
    fn subscribe(
        &self,
        channel: ChannelName,
        since: Option<Cursor>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>>;

    /// Reads a page of history (see [`crate::core::History::page`]).
    fn history(
        &self,
        channel: ChannelName,
        since: Option<Cursor>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page, BrokerError>>;

    /// Lists the channels this broker knows, sorted by name.
    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelInfo>, BrokerError>>;

    /// Housekeeping, called periodically by the server: drops idle state. Returns how many
    /// channels were dropped. Async because a networked broker may have to ask its store.
    /// The default does nothing.
    fn sweep(&self) -> BoxFuture<'_, usize> {
        Box::pin(std::future::ready(0))
    }

    /// What this broker is and whether it can serve right now, for `/healthz`. Cheap: it
    /// reports what the broker already knows and never waits on a store.
    fn health(&self) -> BrokerHealth {
        BrokerHealth {
            kind: "memory",
            state: BrokerState::Up,
            detail: None,
        }
    }

    /// Hands the broker the hub's metrics, for what only it can count (reconnects to its
    /// store, gaps found and repaired). Called once by [`crate::Hub::new`]. The default
    /// ignores them.
    fn bind_metrics(&self, metrics: Arc<crate::metrics::Metrics>) {
        let _ = metrics;
    }

    /// The presence store that goes with this broker, shared between nodes exactly when the
    /// broker is. The default keeps presence in this process, which is right for a broker
    /// that lives in one process; a broker shared by several nodes overrides it.
    fn presence(&self, settings: PresenceSettings) -> std::sync::Arc<dyn PresenceStore> {
        MemoryPresence::new(settings.grace, settings.queue_size)
    }
}

/// What a presence store is built with (from `[presence]` in the config).
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::{Hub, HubOptions, MemoryBrokerConfig, PresenceSettings};
///
/// let presence = PresenceSettings { grace: Duration::from_secs(1), ..PresenceSettings::default() };
/// let options = HubOptions { presence, ..HubOptions::default() };
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), options);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresenceSettings {
    /// How long an entry stays after its last session (see [`crate::core::PresenceRegistry`]).
    pub grace: std::time::Duration,
    /// Events a watcher may fall behind before it is told to read again.
    pub queue_size: usize,
    /// A shared store's refresh interval: entries of a node that stops refreshing expire
    /// 2.5 intervals after its last refresh.
    pub refresh: std::time::Duration,
}

impl Default for PresenceSettings {
    /// `switchboard serve`'s: from [`crate::HubConfig::default`] (`[presence]`, and
    /// `limits.queue_size` for the events), where the hub's defaults are written (once).
    fn default() -> Self {
        crate::HubConfig::default().hub_options().presence
    }
}

/// A broker's self-report, for `/healthz`.
///
/// ```
/// use switchboard_hub::{BrokerState, Hub, HubOptions, MemoryBrokerConfig};
///
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), HubOptions::default());
/// let health = hub.broker_health();
/// assert_eq!((health.kind, health.state), ("memory", BrokerState::Up));
/// assert_eq!(serde_json::to_string(&health)?, r#"{"kind":"memory","state":"up"}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BrokerHealth {
    /// `memory`, `redis`, ...
    pub kind: &'static str,
    /// Whether it can serve.
    pub state: BrokerState,
    /// A sentence about the last problem, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Whether a broker can serve.
///
/// ```
/// use switchboard_hub::{BrokerHealth, BrokerState};
///
/// fn status_code(health: &BrokerHealth) -> u16 {
///     match health.state {
///         BrokerState::Up => 200,
///         BrokerState::Down => 503, // publishes fail until the store is back
///     }
/// }
/// let down = BrokerHealth { kind: "redis", state: BrokerState::Down, detail: None };
/// assert_eq!(status_code(&down), 503);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    /// Publishes are stored and fanned out.
    Up,
    /// Its store is unreachable: publishes fail with [`BrokerError::Unavailable`];
    /// subscriptions stay open and resume (or reset) when it is back.
    Down,
}

/// A channel as listed by [`Broker::channels`].
///
/// ```
/// use switchboard_hub::core::{ChannelName, Payload};
/// use switchboard_hub::metrics::Transport;
/// use switchboard_hub::{Hub, HubOptions, MemoryBrokerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), HubOptions::default());
/// let chat = ChannelName::new("chat")?;
/// let _sub = hub.subscribe(&chat, None).await?;
/// hub.publish(&chat, Payload::text("hi"), Transport::Rest).await?;
/// let info = &hub.channels().await?[0];
/// assert_eq!((info.name.as_str(), info.last_id.get()), ("chat", 1));
/// assert_eq!((info.retained, info.subscribers), (1, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChannelInfo {
    /// Its name.
    pub name: ChannelName,
    /// Its current epoch.
    pub epoch: Epoch,
    /// The latest id handed out.
    pub last_id: MessageId,
    /// How many messages history holds.
    pub retained: usize,
    /// How many subscriptions are open on it (in this process).
    pub subscribers: usize,
}

/// The underlying cause of a broker failure, shared so that [`BrokerError`] stays `Clone`
/// (one failure is reported to every subscriber of a channel).
///
/// ```
/// use switchboard_hub::broker::ErrorSource;
/// use switchboard_hub::BrokerError;
///
/// let error = BrokerError::unavailable("redis://127.0.0.1:6379", std::io::Error::other("refused"));
/// if let BrokerError::Unavailable { source, .. } = &error {
///     let cause: &ErrorSource = source; // shared by every subscriber the failure reaches
///     assert_eq!(cause.to_string(), "refused");
/// }
/// ```
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a broker operation failed.
///
/// ```
/// use switchboard_hub::BrokerError;
///
/// let error = BrokerError::unavailable("redis://127.0.0.1:6379", std::io::Error::other("refused"));
/// assert_eq!(error.to_string(), "broker unavailable: redis://127.0.0.1:6379");
/// assert_eq!(error.describe(), "broker unavailable: redis://127.0.0.1:6379: refused");
/// let retry = match error {
///     BrokerError::Unavailable { .. } => true, // the store may come back
///     BrokerError::TooManyChannels { .. } | BrokerError::Protocol(_) | BrokerError::Closed => false,
/// };
/// assert!(retry);
/// ```
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// Creating the channel would pass the configured channel limit.
    #[error("too many channels (limit {limit})")]
    TooManyChannels {
        /// The configured limit.
        limit: usize,
    },
    /// The backing store is unreachable or failed: nothing was stored. (The message names
    /// the store; the cause is the error's `source`, see [`BrokerError::describe`].)
    #[error("broker unavailable: {store}")]
    Unavailable {
        /// Which store, for the message (a URL without credentials, for example).
        store: String,
        /// What went wrong.
        #[source]
        source: ErrorSource,
    },
    /// The store answered with something this broker cannot use (corrupt or foreign data).
    #[error("broker protocol error: {0}")]
    Protocol(String),
    /// The broker was shut down.
    #[error("broker closed")]
    Closed,
}

impl BrokerError {
    /// An [`BrokerError::Unavailable`] for `store` caused by `source`.
    pub fn unavailable(
        store: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BrokerError::Unavailable {
            store: store.into(),
            source: Arc::new(source),
        }
    }
}

impl BrokerError {
    /// The message with its cause, in one line (for answers to clients and logs that do
    /// not walk the source chain).
    pub fn describe(&self) -> String {
        match self {
            BrokerError::Unavailable { source, .. } => format!("{self}: {source}"),
            other => other.to_string(),
        }
    }
}

/// Equal when of the same kind with the same text: causes are compared by their message,
/// which is what a caller can act on.
impl PartialEq for BrokerError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::TooManyChannels { limit: a }, Self::TooManyChannels { limit: b }) => a == b,
            (
                Self::Unavailable {
                    store: a,
                    source: x,
                },
                Self::Unavailable {
                    store: b,
                    source: y,
                },
            ) => a == b && x.to_string() == y.to_string(),
            (Self::Protocol(a), Self::Protocol(b)) => a == b,
            (Self::Closed, Self::Closed) => true,
            _ => false,
        }
    }
}

impl Eq for BrokerError {}
