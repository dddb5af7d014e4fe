//! A subscriber's view of one channel, the same for every broker.
//!
//! A [`Subscription`] is a cursor into its channel plus two ways to move it forward:
//!
//! - the node-local [`Live`] ring (a `tokio::sync::broadcast`) that the broker fills as
//!   messages arrive: one copy of each message for every subscriber of this process, each
//!   receiver with its own read position;
//! - the channel's [`Backlog`] (history), read a page at a time, *when the reader asks for
//!   the next delivery*: a replay of 5 000 messages is pulled at the pace the subscriber
//!   reads, never pushed into a queue at memory speed.
//!
//! The subscription hands out strictly consecutive ids within an epoch. Whenever the ring
//! cannot continue from its position — a replay is still behind, the ring overflowed, an id
//! jumped, the epoch changed, the broker announced trouble — it reads the backlog instead,
//! and the backlog either continues exactly (no loss, no duplicate) or answers with a reset
//! that says where live delivery continues. This is the one place where "exactly once, in
//! order, or an explicit reset" is enforced, so every broker gets it by feeding the ring and
//! answering backlog reads honestly.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::{BoxFuture, BrokerError};
use crate::core::{ChannelName, Cursor, Epoch, Message, MessageId, ResetReason};
use crate::metrics::Metrics;

/// Messages read from the backlog per page.
pub(crate) const BACKLOG_PAGE: usize = 256;

/// How long a subscription whose backlog read failed waits before trying again, unless the
/// live ring wakes it first.
const BACKLOG_RETRY: Duration = Duration::from_millis(500);

/// What a [`Subscription`] hands out, in channel order.
///
/// ```
/// use switchboard_hub::{Delivery, Subscription};
///
/// async fn forward(mut sub: Subscription) {
///     while let Some(delivery) = sub.next().await {
///         match delivery {
///             Delivery::Message(m) => println!("{}: {}", m.cursor(), m.data().as_str()),
///             Delivery::Lagged { missed } => eprintln!("{missed} went past; catching up"),
///             Delivery::Reset { reason, last, .. } => {
///                 eprintln!("{}; continuing after {last}", reason.describe())
///             }
///             Delivery::Unavailable(e) => eprintln!("waiting: {}", e.describe()),
///             Delivery::Closed(e) => return eprintln!("closed: {e}"),
///         }
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub enum Delivery {
    /// The next message. Shared: its wire forms are encoded once for all subscribers.
    Message(Arc<Message>),
    /// This subscription's reader fell more than a ring's worth of messages behind live
    /// delivery; `missed` messages went past it. Nothing is lost yet: the next deliveries
    /// continue from history after [`Subscription::cursor`] (or with a [`Delivery::Reset`]
    /// if history no longer reaches back). A transport may also resubscribe from the cursor.
    Lagged {
        /// How many live messages went past.
        missed: u64,
    },
    /// Continuity is broken: the requested `since` could not be honoured (the first delivery
    /// then), or a gap opened that history cannot fill (the broker lost data, or the channel
    /// restarted in a new epoch). Delivery continues after `last` in `epoch`.
    Reset {
        /// The channel's current epoch.
        epoch: Epoch,
        /// Why.
        reason: ResetReason,
        /// The id after which delivery continues.
        last: MessageId,
    },
    /// The broker cannot reach its store right now. The subscription stays open: when the
    /// store is back, delivery continues exactly where it stopped, or with a reset. Reported
    /// once per outage; transports may tell their client or just wait.
    Unavailable(BrokerError),
    /// The subscription ended; nothing follows and [`Subscription::next`] answers `None`
    /// from now on. Its transport must say so to its client (an error frame, a close with a
    /// reason, the end of a stream): a subscription never goes quiet while looking alive.
    Closed(BrokerError),
}

/// What a broker puts into a channel's node-local ring.
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
/// use switchboard_hub::broker::{Backlog, BacklogRead, BoxFuture, Live, Start};
/// use switchboard_hub::core::{ChannelName, Cursor, Epoch, Message, MessageId, Payload};
/// use switchboard_hub::{BrokerError, Delivery, Subscription};
///
/// struct NoHistory;
/// impl Backlog for NoHistory {
///     fn read(&self, _: Cursor, _: usize) -> BoxFuture<'static, Result<BacklogRead, BrokerError>> {
///         Box::pin(async { Ok(BacklogRead::Messages(Vec::new())) })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (chat, epoch) = (ChannelName::new("chat")?, Epoch::new(5).unwrap());
/// let (ring, rx) = tokio::sync::broadcast::channel(16);
/// let backlog = Arc::new(NoHistory);
/// let mut sub = Subscription::new(chat.clone(), epoch, MessageId::ZERO, Start::Live, rx, backlog);
///
/// let msg = Message::new(chat, epoch, MessageId::new(1), Payload::text("hi"), SystemTime::now());
/// ring.send(Live::Message(Arc::new(msg)))?; // what a broker does on publish
/// assert!(matches!(sub.next().await, Some(Delivery::Message(m)) if m.id().get() == 1));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub enum Live {
    /// A message, in id order as the broker saw it (gaps and duplicates are tolerated: the
    /// subscription repairs them from the backlog).
    Message(Arc<Message>),
    /// Something every subscriber of the channel must react to; rare, hence boxed (the ring
    /// slot stays two words).
    Notice(Arc<Notice>),
}

/// A channel-wide event a broker announces through the ring.
///
/// ```
/// use std::sync::Arc;
/// use switchboard_hub::broker::{Backlog, BacklogRead, BoxFuture, Live, Notice, Start};
/// use switchboard_hub::core::{ChannelName, Cursor, Epoch, MessageId};
/// use switchboard_hub::{BrokerError, Delivery, Subscription};
///
/// struct NoHistory;
/// impl Backlog for NoHistory {
///     fn read(&self, _: Cursor, _: usize) -> BoxFuture<'static, Result<BacklogRead, BrokerError>> {
///         Box::pin(async { Ok(BacklogRead::Messages(Vec::new())) })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (chat, epoch) = (ChannelName::new("chat")?, Epoch::new(5).unwrap());
/// let (ring, rx) = tokio::sync::broadcast::channel(16);
/// let backlog = Arc::new(NoHistory);
/// let mut sub = Subscription::new(chat, epoch, MessageId::ZERO, Start::Live, rx, backlog);
///
/// ring.send(Live::Notice(Arc::new(Notice::Closed(BrokerError::Closed))))?; // shutting down
/// assert!(matches!(sub.next().await, Some(Delivery::Closed(BrokerError::Closed))));
/// assert!(sub.next().await.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub enum Notice {
    /// The broker saw a discontinuity it could not repair (lost pub/sub messages beyond
    /// history, a new epoch). Each subscription re-checks its own position against the
    /// backlog, which continues it or answers with the reset.
    Gap,
    /// The store is unreachable; subscriptions report [`Delivery::Unavailable`] and wait.
    Unavailable(BrokerError),
    /// The store is reachable again. The broker has already forwarded into the ring what
    /// was published meanwhile (or announced a [`Notice::Gap`]); subscriptions waiting to
    /// retry a failed backlog read retry now, and the next outage is reported again.
    Restored,
    /// The channel is closed by the broker; subscriptions end with [`Delivery::Closed`].
    Closed(BrokerError),
}

/// What a [`Backlog`] read found.
///
/// ```
/// use std::sync::Arc;
/// use switchboard_hub::broker::BacklogRead;
/// use switchboard_hub::core::{resume_rule, Cursor, Epoch, Message, MessageId, ResetReason};
///
/// /// What a backlog whose `retained` messages are `first..=last` of `epoch` answers.
/// fn answer(
///     after: Cursor,
///     epoch: Epoch,
///     retained: &[Arc<Message>],
///     last: MessageId,
/// ) -> BacklogRead {
///     let first = retained.first().map_or(last.next(), |m| m.id());
///     match resume_rule(after, epoch, first, last) {
///         Ok(()) => BacklogRead::Messages(
///             retained.iter().filter(|m| m.id() > after.id).cloned().collect(),
///         ),
///         Err(reason) => BacklogRead::Reset { epoch, reason, last },
///     }
/// }
///
/// let epoch = Epoch::new(5).unwrap();
/// let after = Cursor::new(epoch, MessageId::new(2)); // but history is empty after id 9
/// let read = answer(after, epoch, &[], MessageId::new(9));
/// assert!(matches!(read, BacklogRead::Reset { reason: ResetReason::Expired, .. }));
/// ```
#[derive(Debug)]
pub enum BacklogRead {
    /// The messages right after the asked position, oldest first, consecutive, at most the
    /// asked number. Empty: the position is the channel's latest.
    Messages(Vec<Arc<Message>>),
    /// The position cannot be continued ([`crate::core::resume_rule`]); delivery goes on
    /// after `last` in `epoch`.
    Reset {
        /// The channel's current epoch.
        epoch: Epoch,
        /// Why.
        reason: ResetReason,
        /// The channel's latest id.
        last: MessageId,
    },
}

/// A channel's history as a subscription reads it, one page at a time.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::SystemTime;
/// use switchboard_hub::broker::{Backlog, BacklogRead, BoxFuture};
/// use switchboard_hub::core::{Cursor, History};
/// use switchboard_hub::BrokerError;
///
/// /// A channel's history kept in this process.
/// struct InProcess(Arc<Mutex<History>>);
///
/// impl Backlog for InProcess {
///     fn read(
///         &self,
///         after: Cursor,
///         limit: usize,
///     ) -> BoxFuture<'static, Result<BacklogRead, BrokerError>> {
///         let mut history = self.0.lock().unwrap();
///         let page = history.page(Some(after), limit, SystemTime::now());
///         let read = match page.reset {
///             None => BacklogRead::Messages(page.messages),
///             Some(reason) => {
///                 BacklogRead::Reset { epoch: page.epoch, reason, last: history.last_id() }
///             }
///         };
///         Box::pin(std::future::ready(Ok(read)))
///     }
/// }
/// ```
pub trait Backlog: Send + Sync + 'static {
    /// At most `limit` messages after `after`, or the reset that applies to `after`. The
    /// future owns what it needs (`'static`), so a subscription can keep it across
    /// cancellations of [`Subscription::next`].
    fn read(
        &self,
        after: Cursor,
        limit: usize,
    ) -> BoxFuture<'static, Result<BacklogRead, BrokerError>>;
}

/// Where a new subscription starts, as the broker decided it at subscribe time.
///
/// ```
/// use std::sync::Arc;
/// use switchboard_hub::broker::{Backlog, BacklogRead, BoxFuture, Start};
/// use switchboard_hub::core::{ChannelName, Cursor, Epoch, MessageId, ResetReason};
/// use switchboard_hub::{BrokerError, Delivery, Subscription};
///
/// struct NoHistory;
/// impl Backlog for NoHistory {
///     fn read(&self, _: Cursor, _: usize) -> BoxFuture<'static, Result<BacklogRead, BrokerError>> {
///         Box::pin(async { Ok(BacklogRead::Messages(Vec::new())) })
///     }
/// }
///
/// // The client's `since` is older than what history holds: it starts with a reset.
/// let (chat, epoch) = (ChannelName::new("chat")?, Epoch::new(5).unwrap());
/// let head = MessageId::new(9);
/// let (_ring, rx) = tokio::sync::broadcast::channel(16);
/// let start = Start::Reset(ResetReason::Expired);
/// let mut sub = Subscription::new(chat, epoch, head, start, rx, Arc::new(NoHistory));
/// match sub.try_next() {
///     Some(Delivery::Reset { reason, last, .. }) => {
///         assert_eq!((reason, last), (ResetReason::Expired, head))
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), switchboard_hub::core::ChannelNameError>(())
/// ```
#[derive(Debug)]
pub enum Start {
    /// No `since`: live delivery after the channel's head.
    Live,
    /// Continue after `after` (same epoch). `first` is the beginning of the backlog if the
    /// broker read it already (may be empty: the rest is pulled as the reader goes).
    Replay {
        /// The client's last seen id.
        after: MessageId,
        /// Messages after `after`, consecutive, oldest first.
        first: Vec<Arc<Message>>,
    },
    /// `since` cannot be honoured: a reset first, then live delivery after the head.
    Reset(ResetReason),
}

/// An open subscription to one channel.
///
/// Created by a [`super::Broker`] (through [`crate::Hub::subscribe`]). It first yields the
/// replay decided at subscription time (the messages after `since`, or a
/// [`Delivery::Reset`]), then live messages, each id once and in order; see the module
/// documentation for how it keeps that promise. Dropping it unsubscribes.
///
/// ```
/// use switchboard_hub::core::{ChannelName, Payload};
/// use switchboard_hub::metrics::Transport;
/// use switchboard_hub::{Delivery, Hub, HubOptions, MemoryBrokerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), HubOptions::default());
/// let chat = ChannelName::new("chat")?;
/// let mut sub = hub.subscribe(&chat, None).await?; // live only: no `since`
/// hub.publish(&chat, Payload::text("hi"), Transport::Rest).await?;
/// let Some(Delivery::Message(m)) = sub.next().await else { panic!() };
/// assert_eq!(m.data().plain_text(), "hi");
/// assert_eq!(sub.cursor(), m.cursor()); // where to resume from after a reconnect
/// # Ok(())
/// # }
/// ```
pub struct Subscription {
    channel: ChannelName,
    epoch: Epoch,
    recovered: bool,
    /// The last id handed out (or the position delivery starts after).
    last: MessageId,
    pending: VecDeque<Delivery>,
    /// True while the position is behind what the ring can supply: read the backlog.
    catching_up: bool,
    /// True from the moment the backlog caught up until the first live item: a ring
    /// overflow that happened while reading the backlog cost nothing and is not reported.
    fresh_from_backlog: bool,
    /// A backlog read in flight, kept here so that cancelling `next` loses nothing.
    reading: Option<BoxFuture<'static, Result<BacklogRead, BrokerError>>>,
    /// Set when a backlog read failed: when to try again.
    retry_at: Option<tokio::time::Instant>,
    unavailable_reported: bool,
    ended: bool,
    rx: broadcast::Receiver<Live>,
    backlog: Arc<dyn Backlog>,
    metrics: Option<Arc<Metrics>>,
}

impl Subscription {
    /// Assembles a subscription: `head` is the channel's latest id when `rx` was created
    /// (everything after it will arrive on `rx`), `start` what the broker decided for
    /// `since`, `backlog` where to read history.
    pub fn new(
        channel: ChannelName,
        epoch: Epoch,
        head: MessageId,
        start: Start,
        rx: broadcast::Receiver<Live>,
        backlog: Arc<dyn Backlog>,
    ) -> Self {
        let mut sub = Self {
            channel,
            epoch,
            recovered: false,
            last: head,
            pending: VecDeque::new(),
            catching_up: false,
            fresh_from_backlog: false,
            reading: None,
            retry_at: None,
            unavailable_reported: false,
            ended: false,
            rx,
            backlog,
            metrics: None,
        };
        match start {
            Start::Live => {}
            Start::Replay { after, first } => {
                sub.recovered = true;
                sub.last = after;
                let reached = first.last().map_or(after, |m| m.id());
                sub.pending.extend(first.into_iter().map(Delivery::Message));
                // Only when the first page ends at the head does the ring continue it.
                sub.catching_up = reached < head;
                sub.fresh_from_backlog = !sub.catching_up;
            }
            Start::Reset(reason) => sub.pending.push_back(Delivery::Reset {
                epoch,
                reason,
                last: head,
            }),
        }
        sub
    }

    pub(crate) fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// The channel.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The channel's epoch as this subscription knows it (a reset may move it on).
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

    /// Live messages this subscription has not read yet. Past the ring's capacity (the
    /// broker's `queue_size`, rounded up to a power of two) its next read reports
    /// [`Delivery::Lagged`]; a transport waiting on a slow client can notice that without
    /// reading.
    pub fn live_unread(&self) -> usize {
        self.rx.len()
    }

    /// Waits for the next delivery; `None` after [`Delivery::Closed`].
    ///
    /// Cancel-safe: dropping the future loses nothing, so it can sit in a `select!`.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(d) = self.take_pending() {
                return Some(d);
            }
            if self.ended {
                return None;
            }
            if self.catching_up {
                if let Some(at) = self.retry_at {
                    // Boxed: rare, and its timer would otherwise sit in every idle
                    // subscriber's future.
                    Box::pin(self.stalled(at)).await;
                    continue;
                }
                let result = self.backlog_read().as_mut().await;
                self.reading = None;
                self.on_backlog(result);
                continue;
            }
            let item = self.rx.recv().await;
            if let Some(d) = self.on_live(item) {
                return Some(d);
            }
        }
    }

    /// The backlog failed: waits for the store to come back (the ring says so) or for the
    /// retry timer. Live items meanwhile are not lost: the backlog read that follows covers
    /// them.
    async fn stalled(&mut self, at: tokio::time::Instant) {
        tokio::select! {
            item = self.rx.recv() => self.while_stalled(item),
            _ = tokio::time::sleep_until(at) => self.retry_at = None,
        }
    }

    /// The next delivery if one is ready now, without waiting. (A backlog read that is not
    /// ready at once is kept and finished by a later call.)
    pub fn try_next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(d) = self.take_pending() {
                return Some(d);
            }
            if self.ended {
                return None;
            }
            if self.catching_up {
                if self.retry_at.is_some() {
                    return None;
                }
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match std::future::Future::poll(self.backlog_read().as_mut(), &mut cx) {
                    Poll::Ready(result) => {
                        self.reading = None;
                        self.on_backlog(result);
                        continue;
                    }
                    Poll::Pending => return None,
                }
            }
            let item = match self.rx.try_recv() {
                Ok(item) => Ok(item),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
                Err(TryRecvError::Empty) => return None,
            };
            if let Some(d) = self.on_live(item) {
                return Some(d);
            }
        }
    }

    /// The backlog read in flight, started from the current position if there is none.
    fn backlog_read(&mut self) -> &mut BoxFuture<'static, Result<BacklogRead, BrokerError>> {
        let (backlog, after) = (&self.backlog, Cursor::new(self.epoch, self.last));
        self.reading
            .get_or_insert_with(|| backlog.read(after, BACKLOG_PAGE))
    }

    fn take_pending(&mut self) -> Option<Delivery> {
        let d = self.pending.pop_front()?;
        match &d {
            Delivery::Message(m) => self.last = m.id(),
            Delivery::Reset { .. } => {
                if let Some(m) = &self.metrics {
                    m.record_reset();
                }
            }
            _ => {}
        }
        Some(d)
    }

    /// Reads one item of the ring; a delivery when it yields one.
    fn on_live(&mut self, item: Result<Live, RecvError>) -> Option<Delivery> {
        let fresh = std::mem::take(&mut self.fresh_from_backlog);
        match item {
            Ok(Live::Message(msg)) => {
                if msg.epoch() == self.epoch && msg.id() == self.last.next() {
                    self.last = msg.id();
                    // Only live messages: a replay's age is not the hub's latency.
                    if let Some(m) = &self.metrics {
                        m.record_fanout(&msg);
                    }
                    return Some(Delivery::Message(msg));
                }
                if msg.epoch() == self.epoch && msg.id() <= self.last {
                    // Already handed out (from the backlog, or a broker's duplicate).
                    self.fresh_from_backlog = fresh;
                    return None;
                }
                // An id jump or another epoch: let the backlog decide.
                self.catch_up();
                None
            }
            Ok(Live::Notice(notice)) => self.on_notice(&notice),
            Err(RecvError::Lagged(missed)) => {
                self.catch_up();
                if fresh {
                    return None;
                }
                if let Some(m) = &self.metrics {
                    m.record_lag(missed);
                }
                Some(Delivery::Lagged { missed })
            }
            Err(RecvError::Closed) => self.end(BrokerError::Closed),
        }
    }

    fn on_notice(&mut self, notice: &Notice) -> Option<Delivery> {
        match notice {
            Notice::Gap => {
                self.catch_up();
                None
            }
            Notice::Restored => {
                self.unavailable_reported = false;
                None
            }
            Notice::Unavailable(e) => self.report_unavailable(e.clone()),
            Notice::Closed(e) => self.end(e.clone()),
        }
    }

    /// A ring item seen while waiting to retry a failed backlog read.
    fn while_stalled(&mut self, item: Result<Live, RecvError>) {
        match item {
            // Covered by the backlog read that follows.
            Ok(Live::Message(_)) | Err(RecvError::Lagged(_)) => {}
            Ok(Live::Notice(n)) => match &*n {
                Notice::Restored | Notice::Gap => {
                    self.unavailable_reported = false;
                    self.retry_at = None;
                }
                Notice::Unavailable(_) => {}
                Notice::Closed(e) => {
                    if let Some(d) = self.end(e.clone()) {
                        self.pending.push_back(d);
                    }
                }
            },
            Err(RecvError::Closed) => {
                if let Some(d) = self.end(BrokerError::Closed) {
                    self.pending.push_back(d);
                }
            }
        }
    }

    fn on_backlog(&mut self, result: Result<BacklogRead, BrokerError>) {
        match result {
            Ok(BacklogRead::Messages(msgs)) => {
                self.unavailable_reported = false;
                let before = self.pending.len();
                let mut expect = self.last.next();
                for m in msgs {
                    if m.epoch() != self.epoch || m.id() < expect {
                        continue;
                    }
                    if m.id() != expect {
                        // A broker bug (pages are consecutive); stop here and read again.
                        break;
                    }
                    expect = m.id().next();
                    self.pending.push_back(Delivery::Message(m));
                }
                if self.pending.len() == before {
                    // Caught up: the ring continues from here.
                    self.catching_up = false;
                    self.fresh_from_backlog = true;
                }
            }
            Ok(BacklogRead::Reset {
                epoch,
                reason,
                last,
            }) => {
                self.unavailable_reported = false;
                self.epoch = epoch;
                self.last = last;
                self.catching_up = false;
                self.fresh_from_backlog = true;
                self.pending.push_back(Delivery::Reset {
                    epoch,
                    reason,
                    last,
                });
            }
            Err(BrokerError::Closed) => {
                if let Some(d) = self.end(BrokerError::Closed) {
                    self.pending.push_back(d);
                }
            }
            Err(e) => {
                self.retry_at = Some(tokio::time::Instant::now() + BACKLOG_RETRY);
                if let Some(d) = self.report_unavailable(e) {
                    self.pending.push_back(d);
                }
            }
        }
    }

    fn catch_up(&mut self) {
        self.catching_up = true;
        self.retry_at = None;
    }

    fn report_unavailable(&mut self, e: BrokerError) -> Option<Delivery> {
        if std::mem::replace(&mut self.unavailable_reported, true) {
            return None;
        }
        Some(Delivery::Unavailable(e))
    }

    fn end(&mut self, reason: BrokerError) -> Option<Delivery> {
        if std::mem::replace(&mut self.ended, true) {
            return None;
        }
        self.pending.clear();
        Some(Delivery::Closed(reason))
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("epoch", &self.epoch)
            .field("recovered", &self.recovered)
            .field("last", &self.last)
            .field("catching_up", &self.catching_up)
            .finish_non_exhaustive()
    }
}
