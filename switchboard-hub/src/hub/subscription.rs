//! A subscriber's view of one channel: replayed history first, then live messages.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::core::{ChannelName, Cursor, Epoch, Message, MessageId, ResetReason, Resume};
use crate::metrics::Metrics;

/// What a [`Subscription`] hands out, in channel order.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// The next message. Shared: its wire forms are encoded once for all subscribers.
    Message(Arc<Message>),
    /// The subscriber fell more than its queue size behind and `missed` messages were skipped
    /// for it. Delivery continues with newer messages; the transport decides whether to
    /// resume from history ([`Subscription::cursor`]) or to disconnect.
    Lagged {
        /// How many messages were skipped.
        missed: u64,
    },
    /// The requested `since` could not be honoured; live delivery continues after `last`.
    /// Always the first delivery when it happens.
    Reset {
        /// The channel's current epoch.
        epoch: Epoch,
        /// Why.
        reason: ResetReason,
        /// The channel's latest id at subscription time.
        last: MessageId,
    },
}

/// An open subscription to one channel.
///
/// Created by [`crate::Hub::subscribe`]. It first yields the history replay decided at
/// subscription time (the messages after `since`, or a [`Delivery::Reset`]), then live
/// messages. Its queue is bounded; see [`Delivery::Lagged`]. Dropping it unsubscribes.
pub struct Subscription {
    channel: ChannelName,
    epoch: Epoch,
    recovered: bool,
    pending: VecDeque<Delivery>,
    rx: broadcast::Receiver<Arc<Message>>,
    /// The last id handed out (or the position delivery starts after).
    last: MessageId,
    metrics: Option<Arc<Metrics>>,
}

impl Subscription {
    /// Assembles a subscription from a broker's snapshot: `head` is the channel's latest id
    /// when `rx` was created (under the same lock as the snapshot), `resume` what to replay
    /// first (`None` when the subscriber gave no `since`: live delivery only).
    pub fn new(
        channel: ChannelName,
        epoch: Epoch,
        head: MessageId,
        resume: Option<Resume>,
        rx: broadcast::Receiver<Arc<Message>>,
    ) -> Self {
        let (recovered, pending, last) = match resume {
            None => (false, VecDeque::new(), head),
            Some(Resume::Continue(msgs)) => {
                let start = msgs
                    .first()
                    .map_or(head, |m| MessageId::new(m.id().get() - 1));
                let pending = msgs.into_iter().map(Delivery::Message).collect();
                (true, pending, start)
            }
            Some(Resume::Reset { reason, last }) => {
                let reset = Delivery::Reset {
                    epoch,
                    reason,
                    last,
                };
                (false, VecDeque::from([reset]), last)
            }
        };
        Self {
            channel,
            epoch,
            recovered,
            pending,
            rx,
            last,
            metrics: None,
        }
    }

    pub(crate) fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// The channel.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The channel's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// True when `since` was given and everything after it is being replayed (no reset).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Where a new subscription should resume to continue this one without loss: after the
    /// last message handed out.
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.epoch, self.last)
    }

    /// Waits for the next delivery; `None` once the channel is gone (hub shut down).
    ///
    /// Cancel-safe: dropping the future loses nothing, so it can sit in a `select!`.
    pub async fn next(&mut self) -> Option<Delivery> {
        if let Some(d) = self.take_pending() {
            return Some(d);
        }
        loop {
            let got = self.rx.recv().await;
            match got {
                Ok(msg) => {
                    if let Some(d) = self.accept(msg) {
                        return Some(d);
                    }
                }
                Err(RecvError::Lagged(missed)) => return Some(self.lagged(missed)),
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next delivery if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        if let Some(d) = self.take_pending() {
            return Some(d);
        }
        loop {
            match self.rx.try_recv() {
                Ok(msg) => {
                    if let Some(d) = self.accept(msg) {
                        return Some(d);
                    }
                }
                Err(TryRecvError::Lagged(missed)) => return Some(self.lagged(missed)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    fn take_pending(&mut self) -> Option<Delivery> {
        let d = self.pending.pop_front()?;
        if let Delivery::Message(m) = &d {
            self.last = m.id();
        }
        Some(d)
    }

    /// Filters a live message: a message at or before the last one handed out is a duplicate
    /// (impossible with the in-memory broker, which snapshots and subscribes under one lock,
    /// but cheap insurance for brokers that cannot), and is skipped.
    fn accept(&mut self, msg: Arc<Message>) -> Option<Delivery> {
        if msg.id() <= self.last {
            return None;
        }
        self.last = msg.id();
        Some(Delivery::Message(msg))
    }

    fn lagged(&mut self, missed: u64) -> Delivery {
        if let Some(m) = &self.metrics {
            m.record_lag(missed);
        }
        Delivery::Lagged { missed }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("epoch", &self.epoch)
            .field("recovered", &self.recovered)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}
