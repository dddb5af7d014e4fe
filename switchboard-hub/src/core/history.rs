//! Bounded per-channel history and the resume rule.
//!
//! The rule every transport relies on: a client that comes back with the cursor of the last
//! message it saw gets *exactly* the messages after it, oldest first, without duplicates and
//! without gaps — or a plain [`ResetReason`] saying why that is impossible. Never a silent
//! hole.
//!
//! Messages leave history only from the front (oldest first), by count or by age, so the
//! retained ids are always one consecutive run `first..=last`. That makes both the
//! continuity check and the lookup O(1): the message after id `n` sits at index
//! `n + 1 - first`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{ChannelName, Cursor, Epoch, Message, MessageId, Payload};

/// How much history a channel keeps.
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::core::HistoryLimits;
///
/// let limits = HistoryLimits { max_messages: 100, max_age: Some(Duration::from_secs(300)) };
/// assert_eq!(HistoryLimits { max_messages: 0, ..limits }.max_age, limits.max_age);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// At most this many messages (0 keeps none: live delivery only, every resume after a
    /// missed message is a reset).
    pub max_messages: usize,
    /// Messages older than this are dropped; `None` keeps them until the count pushes them out.
    pub max_age: Option<Duration>,
}

impl Default for HistoryLimits {
    /// `switchboard serve`'s: [`crate::config::HistoryConfig::default`], where the hub's
    /// defaults are written (once).
    fn default() -> Self {
        crate::config::HistoryConfig::default().limits()
    }
}

/// Why a cursor cannot be resumed from.
///
/// ```
/// use switchboard_hub::core::{resume_rule, Cursor, Epoch, MessageId, ResetReason};
///
/// let epoch = Epoch::new(5).unwrap();
/// let stale = Cursor::new(Epoch::new(6).unwrap(), MessageId::new(3));
/// let reason = resume_rule(stale, epoch, MessageId::new(1), MessageId::new(9)).unwrap_err();
/// assert_eq!(reason, ResetReason::EpochChanged);
/// assert_eq!(reason.code(), "epoch_changed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// The cursor belongs to another lifetime of the channel (the server restarted, or the
    /// channel was dropped while idle and created again).
    EpochChanged,
    /// Some messages after the cursor have already left history.
    Expired,
    /// The cursor lies beyond the channel's last id: it cannot belong to this epoch.
    Ahead,
}

impl ResetReason {
    /// A sentence for error messages and logs.
    pub fn describe(self) -> &'static str {
        match self {
            ResetReason::EpochChanged => "the channel was restarted (epoch changed)",
            ResetReason::Expired => "history no longer reaches back that far",
            ResetReason::Ahead => "the cursor is ahead of the channel (from another epoch?)",
        }
    }

    /// The wire code: `epoch_changed`, `expired` or `ahead`.
    pub fn code(self) -> &'static str {
        match self {
            ResetReason::EpochChanged => "epoch_changed",
            ResetReason::Expired => "expired",
            ResetReason::Ahead => "ahead",
        }
    }
}

/// The answer to "what came after this cursor?" for a subscriber.
///
/// ```
/// use std::time::SystemTime;
/// use switchboard_hub::core::{ChannelName, Epoch, History, HistoryLimits, Payload, Resume};
///
/// let limits = HistoryLimits { max_messages: 10, max_age: None };
/// let mut history = History::new(ChannelName::new("chat")?, Epoch::new(5).unwrap(), limits);
/// let first = history.append(Payload::text("a"), SystemTime::now());
/// history.append(Payload::text("b"), SystemTime::now());
///
/// match history.resume(first.cursor(), SystemTime::now()) {
///     Resume::Continue(missed) => assert_eq!(missed.len(), 1), // just "b"
///     Resume::Reset { reason, last } => panic!("{reason:?} after {last}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Resume {
    /// Continuity holds: exactly these messages follow the cursor, oldest first (maybe none).
    Continue(Vec<Arc<Message>>),
    /// Continuity is broken; live delivery restarts after `last`, the channel's latest id.
    Reset {
        /// Why.
        reason: ResetReason,
        /// The channel's latest id when the reset was decided.
        last: MessageId,
    },
}

/// One page of history, for the REST history endpoint and long polling.
///
/// ```
/// use std::time::SystemTime;
/// use switchboard_hub::core::{ChannelName, Epoch, History, HistoryLimits, Payload};
///
/// let limits = HistoryLimits { max_messages: 10, max_age: None };
/// let mut history = History::new(ChannelName::new("chat")?, Epoch::new(5).unwrap(), limits);
/// for text in ["a", "b", "c"] {
///     history.append(Payload::text(text), SystemTime::now());
/// }
/// let page = history.page(None, 2, SystemTime::now()); // the latest two
/// assert_eq!(page.messages.len(), 2);
/// assert_eq!(page.next.to_string(), "5:3");
/// assert!(page.reset.is_none() && !page.more);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Page {
    /// The channel's epoch.
    pub epoch: Epoch,
    /// Messages, oldest first.
    pub messages: Vec<Arc<Message>>,
    /// Set when the requested cursor could not be honoured; `messages` is then empty and
    /// `next` points before the oldest retained message.
    pub reset: Option<ResetReason>,
    /// Where to continue from.
    pub next: Cursor,
    /// True when more messages follow `next` right now.
    pub more: bool,
}

/// The resume rule, shared by every broker: can a client whose last seen position is `since`
/// continue without loss in a channel now at `epoch`, whose history holds exactly the ids
/// `first..=last` (`first = last + 1` when it holds none)?
///
/// - a cursor from another epoch cannot: ids restarted ([`ResetReason::EpochChanged`]);
/// - a cursor beyond `last` cannot belong to this epoch ([`ResetReason::Ahead`]); a bare id
///   (no epoch) is trusted otherwise;
/// - a cursor before `first - 1` has missed messages that already left history
///   ([`ResetReason::Expired`]).
///
/// Pure, so that the in-memory broker and a networked broker (which learns `first` and
/// `last` from its store) decide identically, and so that it can be tested on its own.
///
/// ```
/// use switchboard_hub::core::{resume_rule, Cursor, Epoch, MessageId, ResetReason};
///
/// let epoch = Epoch::new(5).unwrap();
/// let (first, last) = (MessageId::new(10), MessageId::new(20)); // history holds 10..=20
/// let at = |id| Cursor::new(epoch, MessageId::new(id));
/// assert_eq!(resume_rule(at(9), epoch, first, last), Ok(())); // 10 onwards are all here
/// assert_eq!(resume_rule(at(8), epoch, first, last), Err(ResetReason::Expired));
/// assert_eq!(resume_rule(at(21), epoch, first, last), Err(ResetReason::Ahead));
/// ```
pub fn resume_rule(
    since: Cursor,
    epoch: Epoch,
    first: MessageId,
    last: MessageId,
) -> Result<(), ResetReason> {
    if since.epoch.is_some_and(|e| e != epoch) {
        return Err(ResetReason::EpochChanged);
    }
    if since.id > last {
        return Err(ResetReason::Ahead);
    }
    if since.id.next() < first {
        return Err(ResetReason::Expired);
    }
    Ok(())
}

/// How old a message published at `then` is at `now`; zero if the clocks disagree (a message
/// from a node whose clock runs ahead is treated as brand new, never as negative age).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use switchboard_hub::core::age;
///
/// let now = SystemTime::now();
/// assert_eq!(age(now, now - Duration::from_secs(3)), Duration::from_secs(3));
/// assert_eq!(age(now, now + Duration::from_secs(3)), Duration::ZERO); // a clock ahead
/// ```
pub fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

/// What one retained message costs beyond its payload: the message itself, its `Arc`
/// counts and its slot in the history queue.
///
/// ```
/// use std::time::SystemTime;
/// use switchboard_hub::core::{retained_cost, ChannelName, Epoch, Message, MessageId, Payload};
/// use switchboard_hub::core::MESSAGE_OVERHEAD;
///
/// let (chat, epoch) = (ChannelName::new("chat")?, Epoch::new(5).unwrap());
/// let msg = Message::new(chat, epoch, MessageId::new(1), Payload::text("hi"), SystemTime::now());
/// assert_eq!(retained_cost(&msg), MESSAGE_OVERHEAD + r#""hi""#.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>()
    + 2 * std::mem::size_of::<usize>()
    + std::mem::size_of::<usize>();

/// What a retained message is counted as against a history byte budget: its payload's
/// compact JSON plus [`MESSAGE_OVERHEAD`]. (The wire forms a transport encodes when it
/// sends the message are not counted: they are shared with its subscribers.)
///
/// ```
/// use std::time::SystemTime;
/// use switchboard_hub::core::{retained_cost, ChannelName, Epoch, History, HistoryLimits, Payload};
///
/// let limits = HistoryLimits { max_messages: 10, max_age: None };
/// let mut history = History::new(ChannelName::new("chat")?, Epoch::new(5).unwrap(), limits);
/// let msg = history.append(Payload::text("hi"), SystemTime::now());
/// assert_eq!(history.bytes(), retained_cost(&msg));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn retained_cost(message: &Message) -> usize {
    message.data().len() + MESSAGE_OVERHEAD
}

/// The bounded history of one channel lifetime.
///
/// ```
/// use std::time::SystemTime;
/// use switchboard_hub::core::{ChannelName, Epoch, History, HistoryLimits, Payload};
///
/// let limits = HistoryLimits { max_messages: 2, max_age: None };
/// let mut history = History::new(ChannelName::new("chat")?, Epoch::new(5).unwrap(), limits);
/// for text in ["a", "b", "c"] {
///     history.append(Payload::text(text), SystemTime::now());
/// }
/// assert_eq!(history.len(), 2); // "a" was pushed out
/// assert_eq!(history.first_retained().get(), 2);
/// assert_eq!(history.head().to_string(), "5:3");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct History {
    channel: ChannelName,
    epoch: Epoch,
    limits: HistoryLimits,
    entries: VecDeque<Arc<Message>>,
    last: MessageId,
    /// When message `last` was accepted: no later id gets an earlier time.
    last_at: SystemTime,
    /// [`retained_cost`] of `entries`.
    bytes: usize,
    /// Shared by every history under one budget: the sum of their `bytes`.
    meter: Option<Arc<AtomicUsize>>,
}

impl Drop for History {
    fn drop(&mut self) {
        if let Some(meter) = &self.meter {
            meter.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

impl History {
    /// An empty history for `channel` in `epoch`.
    pub fn new(channel: ChannelName, epoch: Epoch, limits: HistoryLimits) -> Self {
        Self {
            channel,
            epoch,
            limits,
            entries: VecDeque::new(),
            last: MessageId::ZERO,
            last_at: SystemTime::UNIX_EPOCH,
            bytes: 0,
            meter: None,
        }
    }

    /// The same, adding what it retains to `meter` (the bytes of every history under one
    /// budget) and taking it off again as messages leave.
    pub fn metered(
        channel: ChannelName,
        epoch: Epoch,
        limits: HistoryLimits,
        meter: Arc<AtomicUsize>,
    ) -> Self {
        let mut history = Self::new(channel, epoch, limits);
        history.meter = Some(meter);
        history
    }

    /// [`retained_cost`] of what is retained.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest retained message was published.
    pub fn oldest_at(&self) -> Option<SystemTime> {
        self.entries.front().map(|m| m.published_at())
    }

    /// Drops the oldest retained message (a history budget ran out); false if none is.
    pub fn evict_oldest(&mut self) -> bool {
        self.pop_front().is_some()
    }

    fn pop_front(&mut self) -> Option<Arc<Message>> {
        let m = self.entries.pop_front()?;
        let cost = retained_cost(&m);
        self.bytes -= cost;
        if let Some(meter) = &self.meter {
            meter.fetch_sub(cost, Ordering::Relaxed);
        }
        Some(m)
    }

    /// The channel's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The latest id handed out (`ZERO` before the first message).
    pub fn last_id(&self) -> MessageId {
        self.last
    }

    /// A cursor at the latest message.
    pub fn head(&self) -> Cursor {
        Cursor::new(self.epoch, self.last)
    }

    /// How many messages are retained.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no message is retained.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first retained id, or `last + 1` when nothing is retained.
    pub fn first_retained(&self) -> MessageId {
        self.entries
            .front()
            .map(|m| m.id())
            .unwrap_or(self.last.next())
    }

    /// Gives `data` the next id, records it and returns the message. Its time is `now`, or
    /// the previous message's if that is later: publishers read the clock before taking the
    /// channel, so two racing ones may arrive in the other order, and clients are promised
    /// that times never go back along a channel's ids.
    pub fn append(&mut self, data: Payload, now: SystemTime) -> Arc<Message> {
        let now = now.max(self.last_at);
        self.last_at = now;
        self.last = self.last.next();
        let msg = Arc::new(Message::new(
            self.channel.clone(),
            self.epoch,
            self.last,
            data,
            now,
        ));
        if self.limits.max_messages > 0 {
            let cost = retained_cost(&msg);
            self.bytes += cost;
            if let Some(meter) = &self.meter {
                meter.fetch_add(cost, Ordering::Relaxed);
            }
            self.entries.push_back(Arc::clone(&msg));
        }
        self.evict(now);
        msg
    }

    /// Drops what is over the count limit or older than the age limit at `now`.
    pub fn evict(&mut self, now: SystemTime) {
        while self.entries.len() > self.limits.max_messages {
            self.pop_front();
        }
        if let Some(max_age) = self.limits.max_age {
            while self
                .entries
                .front()
                .is_some_and(|m| age(now, m.published_at()) >= max_age)
            {
                self.pop_front();
            }
        }
    }

    /// Whether every message after `since` is still here (see [`resume_rule`]).
    pub fn check(&self, since: Cursor) -> Result<(), ResetReason> {
        resume_rule(since, self.epoch, self.first_retained(), self.last)
    }

    /// The retained messages after `id`, at most `limit`. Call only after [`History::check`].
    fn after(&self, id: MessageId, limit: usize) -> impl Iterator<Item = &Arc<Message>> {
        let skip = (id.next().get() - self.first_retained().get()) as usize;
        self.entries.iter().skip(skip).take(limit)
    }

    /// Everything after `since` for a (re)subscribing client; see [`Resume`].
    pub fn resume(&mut self, since: Cursor, now: SystemTime) -> Resume {
        self.evict(now);
        match self.check(since) {
            Ok(()) => Resume::Continue(self.after(since.id, usize::MAX).cloned().collect()),
            Err(reason) => Resume::Reset {
                reason,
                last: self.last,
            },
        }
    }

    /// A page of at most `limit` messages after `since`, or the latest `limit` messages when
    /// `since` is `None`.
    pub fn page(&mut self, since: Option<Cursor>, limit: usize, now: SystemTime) -> Page {
        self.evict(now);
        let start = match since {
            None => MessageId::new(
                self.last
                    .get()
                    .saturating_sub(limit as u64)
                    .max(self.first_retained().get() - 1),
            ),
            Some(since) => match self.check(since) {
                Ok(()) => since.id,
                Err(reason) => {
                    return Page {
                        epoch: self.epoch,
                        messages: Vec::new(),
                        reset: Some(reason),
                        next: Cursor::new(
                            self.epoch,
                            MessageId::new(self.first_retained().get() - 1),
                        ),
                        more: !self.entries.is_empty(),
                    }
                }
            },
        };
        let messages: Vec<_> = self.after(start, limit).cloned().collect();
        let next_id = messages.last().map_or(start, |m| m.id());
        Page {
            epoch: self.epoch,
            messages,
            reset: None,
            next: Cursor::new(self.epoch, next_id),
            more: next_id < self.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EPOCH: u64 = 77;

    fn history(max_messages: usize, max_age: Option<u64>) -> History {
        History::new(
            ChannelName::new("c").unwrap(),
            Epoch::new(EPOCH).unwrap(),
            HistoryLimits {
                max_messages,
                max_age: max_age.map(Duration::from_secs),
            },
        )
    }

    fn at(id: u64) -> Cursor {
        Cursor::new(Epoch::new(EPOCH).unwrap(), MessageId::new(id))
    }

    fn ids(msgs: &[Arc<Message>]) -> Vec<u64> {
        msgs.iter().map(|m| m.id().get()).collect()
    }

    fn continued(r: Resume) -> Vec<u64> {
        match r {
            Resume::Continue(m) => ids(&m),
            Resume::Reset { reason, .. } => panic!("unexpected reset: {reason:?}"),
        }
    }

    fn reset(r: Resume) -> ResetReason {
        match r {
            Resume::Reset { reason, .. } => reason,
            Resume::Continue(m) => panic!("unexpected continue: {:?}", ids(&m)),
        }
    }

    #[test]
    fn resume_rule_is_the_same_for_every_broker() {
        let e = Epoch::new(EPOCH).unwrap();
        let other = Epoch::new(EPOCH + 1).unwrap();
        let (first, last) = (MessageId::new(5), MessageId::new(9));
        let rule = |since| resume_rule(since, e, first, last);
        assert_eq!(rule(at(4)), Ok(()), "the message after 4 is retained");
        assert_eq!(rule(at(9)), Ok(()), "at the head: nothing to replay");
        assert_eq!(rule(at(3)), Err(ResetReason::Expired), "4 is gone");
        assert_eq!(rule(at(10)), Err(ResetReason::Ahead));
        assert_eq!(
            rule(Cursor::new(other, MessageId::new(4))),
            Err(ResetReason::EpochChanged)
        );
        assert_eq!(rule(Cursor::id_only(MessageId::new(4))), Ok(()));
        // Nothing retained (first = last + 1): only the head continues.
        let empty = |since| resume_rule(since, e, MessageId::new(10), last);
        assert_eq!(empty(at(9)), Ok(()));
        assert_eq!(empty(at(8)), Err(ResetReason::Expired));
    }

    #[test]
    fn ids_start_at_one_and_increase() {
        let t = SystemTime::now();
        let mut h = history(10, None);
        let a = h.append(Payload::text("a"), t);
        let b = h.append(Payload::text("b"), t);
        assert_eq!((a.id().get(), b.id().get()), (1, 2));
        assert_eq!(h.head(), at(2));
    }

    #[test]
    fn times_never_go_back_along_ids() {
        let t = SystemTime::now();
        let mut h = history(10, None);
        let a = h.append(Payload::text("a"), t);
        // A publisher that read the clock earlier but took the channel later, or a clock
        // stepped back: the later id keeps the earlier id's time, not its own.
        let b = h.append(Payload::text("b"), t - Duration::from_secs(3));
        let c = h.append(Payload::text("c"), t + Duration::from_millis(5));
        assert_eq!(b.published_at(), a.published_at());
        assert_eq!(c.published_at(), t + Duration::from_millis(5));
        assert!(a.published_ms() <= b.published_ms() && b.published_ms() <= c.published_ms());
    }

    #[test]
    fn resume_returns_exactly_what_follows() {
        let t = SystemTime::now();
        let mut h = history(10, None);
        for i in 0..5 {
            h.append(Payload::text(&i.to_string()), t);
        }
        assert_eq!(continued(h.resume(at(0), t)), [1, 2, 3, 4, 5]);
        assert_eq!(continued(h.resume(at(3), t)), [4, 5]);
        assert_eq!(continued(h.resume(at(5), t)), Vec::<u64>::new());
        // A bare id is trusted to be of this epoch.
        assert_eq!(
            continued(h.resume(Cursor::id_only(MessageId::new(4)), t)),
            [5]
        );
    }

    #[test]
    fn count_limit_expires_the_oldest() {
        let t = SystemTime::now();
        let mut h = history(3, None);
        for _ in 0..5 {
            h.append(Payload::text("x"), t);
        }
        assert_eq!(reset(h.resume(at(1), t)), ResetReason::Expired);
        assert_eq!(continued(h.resume(at(2), t)), [3, 4, 5]);
    }

    #[test]
    fn age_limit_uses_the_given_clock() {
        let t0 = SystemTime::now();
        let mut h = history(100, Some(10));
        h.append(Payload::text("old"), t0);
        h.append(Payload::text("new"), t0 + Duration::from_secs(5));
        assert_eq!(
            continued(h.resume(at(0), t0 + Duration::from_secs(9))),
            [1, 2]
        );
        assert_eq!(
            reset(h.resume(at(0), t0 + Duration::from_secs(10))),
            ResetReason::Expired
        );
        assert_eq!(
            continued(h.resume(at(1), t0 + Duration::from_secs(10))),
            [2]
        );
        // Everything expired: a client that saw the last message is still fine...
        let late = t0 + Duration::from_secs(60);
        assert_eq!(continued(h.resume(at(2), late)), Vec::<u64>::new());
        // ...but one that missed message 2 is told so, even though history is empty.
        assert_eq!(reset(h.resume(at(1), late)), ResetReason::Expired);
        assert!(h.is_empty());
    }

    #[test]
    fn no_history_means_live_only() {
        let t = SystemTime::now();
        let mut h = history(0, None);
        h.append(Payload::text("x"), t);
        assert!(h.is_empty());
        assert_eq!(continued(h.resume(at(1), t)), Vec::<u64>::new());
        assert_eq!(reset(h.resume(at(0), t)), ResetReason::Expired);
    }

    #[test]
    fn foreign_epoch_or_future_id_resets() {
        let t = SystemTime::now();
        let mut h = history(10, None);
        h.append(Payload::text("x"), t);
        let other = Cursor::new(Epoch::new(EPOCH + 1).unwrap(), MessageId::new(1));
        assert_eq!(reset(h.resume(other, t)), ResetReason::EpochChanged);
        assert_eq!(reset(h.resume(at(2), t)), ResetReason::Ahead);
        match h.resume(Cursor::id_only(MessageId::new(9)), t) {
            Resume::Reset { reason, last } => {
                assert_eq!((reason, last), (ResetReason::Ahead, MessageId::new(1)))
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn page_without_cursor_is_the_tail() {
        let t = SystemTime::now();
        let mut h = history(10, None);
        for _ in 0..6 {
            h.append(Payload::text("x"), t);
        }
        let p = h.page(None, 4, t);
        assert_eq!(ids(&p.messages), [3, 4, 5, 6]);
        assert_eq!((p.next, p.more, p.reset), (at(6), false, None));
        let p = h.page(None, 100, t);
        assert_eq!(ids(&p.messages), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn page_with_cursor_pages_forward() {
        let t = SystemTime::now();
        let mut h = history(10, None);
        for _ in 0..5 {
            h.append(Payload::text("x"), t);
        }
        let p = h.page(Some(at(1)), 2, t);
        assert_eq!(
            (ids(&p.messages), p.next, p.more),
            (vec![2, 3], at(3), true)
        );
        let p = h.page(Some(p.next), 2, t);
        assert_eq!(
            (ids(&p.messages), p.next, p.more),
            (vec![4, 5], at(5), false)
        );
        let p = h.page(Some(p.next), 2, t);
        assert_eq!((ids(&p.messages), p.next, p.more), (vec![], at(5), false));
    }

    #[test]
    fn page_reset_points_at_the_oldest_retained() {
        let t = SystemTime::now();
        let mut h = history(2, None);
        for _ in 0..5 {
            h.append(Payload::text("x"), t);
        }
        let p = h.page(Some(at(1)), 10, t);
        assert_eq!(p.reset, Some(ResetReason::Expired));
        assert!(p.messages.is_empty());
        assert_eq!(p.next, at(3));
        assert_eq!(ids(&h.page(Some(p.next), 10, t).messages), [4, 5]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Publish after the clock moved on by this many seconds.
        Publish(u64),
        /// Ask for a page of at most this many messages from the reader's cursor.
        Read(usize),
        /// Resubscribe from the reader's cursor.
        Resume,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                4 => (0u64..4).prop_map(Op::Publish),
                2 => (1usize..6).prop_map(Op::Read),
                1 => Just(Op::Resume),
            ],
            0..200,
        )
    }

    proptest! {
        /// A reader that keeps coming back with its cursor sees every id at most once, in
        /// increasing order; each id it skips is explained by a reset; and when nothing was
        /// evicted in between, it skips none.
        #[test]
        fn resume_never_duplicates_or_reorders(
            max_messages in 0usize..8,
            max_age in prop::option::of(1u64..6),
            ops in ops(),
        ) {
            let t0 = SystemTime::now();
            let mut now = t0;
            let mut h = history(max_messages, max_age);
            // Model: publish time of every id, to know what limits allow to be retained.
            let mut published: Vec<SystemTime> = Vec::new();
            let mut cursor = at(0);
            let mut seen: Vec<u64> = Vec::new();
            for op in ops {
                let got = match op {
                    Op::Publish(dt) => {
                        now += Duration::from_secs(dt);
                        h.append(Payload::text("x"), now);
                        published.push(now);
                        continue;
                    }
                    Op::Read(limit) => {
                        let p = h.page(Some(cursor), limit, now);
                        let got = ids(&p.messages);
                        prop_assert!(got.len() <= limit);
                        (got, p.reset, p.next)
                    }
                    Op::Resume => match h.resume(cursor, now) {
                        Resume::Continue(m) => {
                            let got = ids(&m);
                            let next = got.last().map_or(cursor, |&id| at(id));
                            (got, None, next)
                        }
                        Resume::Reset { reason, last } => (vec![], Some(reason), at(last.get())),
                    },
                };
                let (got, reset, next) = got;
                // Model of retention: id i (1-based) is retained iff within the newest
                // `max_messages` and younger than `max_age`.
                let last = published.len() as u64;
                let retained = |id: u64| {
                    id + max_messages as u64 > last
                        && max_age.is_none_or(|a| {
                            age(now, published[id as usize - 1])
                                < Duration::from_secs(a)
                        })
                };
                let must_reset = (cursor.id.get() + 1..=last).any(|id| !retained(id));
                prop_assert_eq!(reset.is_some(), must_reset, "cursor {:?} last {}", cursor, last);
                if reset.is_none() {
                    // Exactly the next ids, consecutive from the cursor.
                    let expect: Vec<u64> =
                        (cursor.id.get() + 1..=last).take(got.len()).collect();
                    prop_assert_eq!(&got, &expect);
                }
                for id in &got {
                    prop_assert!(seen.last().is_none_or(|l| id > l), "dup or reorder: {}", id);
                    seen.push(*id);
                }
                prop_assert!(next.id >= cursor.id || reset.is_some());
                cursor = next;
            }
        }
    }
}
