//! Where channels live: the [`Broker`] trait and its in-memory implementation.
//!
//! The hub talks to channels only through this trait, so that one process can keep them in
//! memory ([`MemoryBroker`], the embedded default) while several processes can later share them
//! through an external store. The trait is async and fallible for that reason, even though
//! the in-memory broker never waits and never fails except on its channel limit.

mod memory;

use std::future::Future;
use std::pin::Pin;

use crate::core::{ChannelName, Cursor, Epoch, Message, MessageId, Page, Payload};
use crate::hub::Subscription;

pub use memory::{MemoryBroker, MemoryBrokerConfig};

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
    /// channels were dropped. The default does nothing.
    fn sweep(&self) -> usize {
        0
    }
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

/// Why a broker operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// Creating the channel would pass the configured channel limit.
    #[error("too many channels (limit {limit})")]
    TooManyChannels {
        /// The configured limit.
        limit: usize,
    },
    /// The broker is shutting down or its backing store is unreachable.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}
