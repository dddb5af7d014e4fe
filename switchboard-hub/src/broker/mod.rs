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
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a broker operation failed.
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
