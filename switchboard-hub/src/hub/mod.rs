//! The [`Hub`]: the one handle every transport holds.

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::broker::{
    Broker, BrokerError, ChannelInfo, MemoryBroker, MemoryBrokerConfig, PresenceGuard,
    PresenceList, PresenceSettings, PresenceStore, PresenceWatch,
};
use crate::core::{
    ChannelName, Cursor, Epoch, MessageId, Page, Payload, PresenceCounts, PresenceEntry,
};
use crate::metrics::{Metrics, Transport};

pub(crate) use crate::broker::{Delivery, Subscription};

/// The real-time hub: publish to and subscribe on named channels, created on first use.
///
/// A cheap handle (an `Arc` inside): clone it into every connection task. Channels, history
/// and fan-out live in a [`Broker`]; the hub adds the limits and metrics every transport
/// shares, so that the transports stay thin translations of one API.
///
/// ```
/// use switchboard_hub::core::{ChannelName, Payload};
/// use switchboard_hub::metrics::Transport;
/// use switchboard_hub::{Hub, HubOptions, MemoryBrokerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), HubOptions::default());
/// let news = ChannelName::new("news")?;
/// hub.publish(&news, Payload::text("one"), Transport::Rest).await?;
/// hub.publish(&news, Payload::text("two"), Transport::Rest).await?;
/// let page = hub.history(&news, None, 10).await?;
/// assert_eq!(page.messages.len(), 2);
/// assert_eq!(hub.channels().await?[0].name, news);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    broker: Arc<dyn Broker>,
    presence: Arc<dyn PresenceStore>,
    metrics: Arc<Metrics>,
    max_message_bytes: usize,
}

/// Settings the hub enforces on top of its broker.
///
/// ```
/// use switchboard_hub::{Hub, HubOptions, MemoryBrokerConfig};
///
/// let options = HubOptions { max_message_bytes: 4096, ..HubOptions::default() };
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), options);
/// assert_eq!(hub.max_message_bytes(), 4096);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct HubOptions {
    /// The largest payload accepted, in bytes of content (see [`Payload::content_len`]: a
    /// text counts its own bytes, not its JSON quoting).
    pub max_message_bytes: usize,
    /// How the broker's presence store is set up.
    pub presence: PresenceSettings,
}

impl Default for HubOptions {
    /// `switchboard serve`'s: from [`crate::HubConfig::default`], where the hub's defaults
    /// are written (once).
    fn default() -> Self {
        crate::HubConfig::default().hub_options()
    }
}

/// What [`Hub::publish`] answers: where the message landed.
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
/// let published = hub.publish(&chat, Payload::text("hi"), Transport::Rest).await?;
/// assert_eq!(published.id.get(), 1); // the channel's first message
/// assert_eq!(published.cursor().epoch, Some(published.epoch));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// The message's id in its channel.
    pub id: MessageId,
    /// The channel's epoch.
    pub epoch: Epoch,
    /// When the hub accepted it, as every subscriber sees it: [`crate::core::Message::published_ms`].
    pub ts: u64,
}

impl Published {
    /// The cursor of the published message.
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.epoch, self.id)
    }
}

/// Why a publish failed.
///
/// ```
/// use switchboard_hub::core::{ChannelName, Payload};
/// use switchboard_hub::metrics::Transport;
/// use switchboard_hub::{Hub, HubOptions, MemoryBrokerConfig, PublishError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let options = HubOptions { max_message_bytes: 4, ..HubOptions::default() };
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), options);
/// let chat = ChannelName::new("chat")?;
/// match hub.publish(&chat, Payload::text("hello"), Transport::Rest).await {
///     Err(PublishError::TooLarge { size, limit }) => assert_eq!((size, limit), (5, 4)),
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The payload is larger than [`HubOptions::max_message_bytes`].
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The broker refused or failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Why a subscribe failed.
///
/// ```
/// use switchboard_hub::core::ChannelName;
/// use switchboard_hub::{Hub, SubscribeError};
///
/// async fn follow(hub: &Hub, channel: &ChannelName) {
///     match hub.subscribe(channel, None).await {
///         Ok(_subscription) => { /* deliver its messages */ }
///         Err(SubscribeError::Broker(e)) => eprintln!("cannot subscribe to {channel}: {e}"),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The broker refused or failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl Hub {
    /// A hub over `broker`.
    pub fn new(broker: Arc<dyn Broker>, options: HubOptions) -> Self {
        let metrics = Arc::new(Metrics::default());
        broker.bind_metrics(Arc::clone(&metrics));
        Self {
            inner: Arc::new(Inner {
                presence: broker.presence(options.presence),
                broker,
                metrics,
                max_message_bytes: options.max_message_bytes,
            }),
        }
    }

    /// A hub over a fresh [`MemoryBroker`].
    pub fn in_memory(broker: MemoryBrokerConfig, options: HubOptions) -> Self {
        Self::new(Arc::new(MemoryBroker::new(broker)), options)
    }

    /// The shared metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The largest payload accepted.
    pub fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes
    }

    /// Publishes `data` on `channel` for a client that came in over `via`.
    pub async fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
        via: Transport,
    ) -> Result<Published, PublishError> {
        let limit = self.inner.max_message_bytes;
        // The JSON form is never shorter than the content, so only a long one is measured.
        if data.len() > limit && data.content_len() > limit {
            self.inner.metrics.record_rejected();
            return Err(PublishError::TooLarge {
                size: data.content_len(),
                limit,
            });
        }
        let msg = self.inner.broker.publish(channel.clone(), data).await?;
        self.inner.metrics.record_publish(via);
        Ok(Published {
            id: msg.id(),
            epoch: msg.epoch(),
            ts: msg.published_ms(),
        })
    }

    /// Subscribes to `channel`. With `since`, first replays what followed it (see
    /// [`Subscription`]); without, delivers only messages published from now on.
    pub async fn subscribe(
        &self,
        channel: &ChannelName,
        since: Option<Cursor>,
    ) -> Result<Subscription, SubscribeError> {
        let mut sub = self.inner.broker.subscribe(channel.clone(), since).await?;
        sub.set_metrics(Arc::clone(&self.inner.metrics));
        Ok(sub)
    }

    /// A page of `channel`'s history: at most `limit` messages after `since`, or the latest
    /// `limit` without it.
    pub async fn history(
        &self,
        channel: &ChannelName,
        since: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, BrokerError> {
        self.inner
            .broker
            .history(channel.clone(), since, limit)
            .await
    }

    /// Drops idle channels (see [`Broker::sweep`]); returns how many.
    pub async fn sweep(&self) -> usize {
        self.inner.presence.sweep();
        self.inner.broker.sweep().await
    }

    /// The broker's self-report (see [`Broker::health`]).
    pub fn broker_health(&self) -> crate::broker::BrokerHealth {
        self.inner.broker.health()
    }

    /// Adds a session for `entry` to `channel`'s presence, for as long as the guard lives.
    pub async fn join_presence(
        &self,
        channel: &ChannelName,
        entry: PresenceEntry,
    ) -> Result<PresenceGuard, BrokerError> {
        let store = &self.inner.presence;
        let key = store.join(channel.clone(), entry).await?;
        Ok(PresenceGuard::new(Arc::clone(store), channel.clone(), key))
    }

    /// Who is in `channel`: exact counts, at most `limit` entries.
    pub async fn presence(
        &self,
        channel: &ChannelName,
        limit: usize,
    ) -> Result<PresenceList, BrokerError> {
        self.inner.presence.list(channel.clone(), limit).await
    }

    /// A snapshot of `channel`'s presence and the joins and leaves after it.
    pub async fn watch_presence(
        &self,
        channel: &ChannelName,
        limit: usize,
    ) -> Result<(PresenceList, PresenceWatch), BrokerError> {
        self.inner.presence.watch(channel.clone(), limit).await
    }

    /// The presence counts of each of `channels`, in order.
    pub async fn presence_counts(
        &self,
        channels: Vec<ChannelName>,
    ) -> Result<Vec<PresenceCounts>, BrokerError> {
        self.inner.presence.counts(channels).await
    }

    /// The node is going away: every presence entry it holds leaves now.
    pub async fn shutdown_presence(&self) {
        self.inner.presence.shutdown().await;
    }

    /// All channels with their subscriber counts, sorted by name.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>, BrokerError> {
        self.inner.broker.channels().await
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("max_message_bytes", &self.inner.max_message_bytes)
            .finish_non_exhaustive()
    }
}
