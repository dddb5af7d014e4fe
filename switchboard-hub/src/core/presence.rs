//! Presence: who is in a channel, as a pure state machine.
//!
//! A [`PresenceRegistry`] holds the presence of one channel. A *session* is one
//! connection (or one long poll) that is in the channel; sessions that present the same
//! [`ClientId`] share one [`PresenceEntry`], so a client that reconnects before its old
//! connection is noticed dead, or a long-polling client between two requests, is one entry
//! and not a flurry of joins and leaves.
//!
//! The rule, which every broker follows:
//!
//! - An entry **joins** when its first session arrives and no entry of that client id is
//!   held: one [`PresenceEvent::Join`].
//! - When its last session ends, the entry is kept for the **grace period**. A session of
//!   the same client id (and the same user) that arrives within it takes the entry over
//!   silently: no leave, no join. Otherwise the entry **leaves** when the grace period ends:
//!   one [`PresenceEvent::Leave`].
//! - Each entry therefore produces exactly one join and at most one leave, the leave after
//!   the join; an entry whose sessions have all ended leaves within the grace period once
//!   [`PresenceRegistry::expire`] runs.
//! - A client id held by another user cannot be taken over: the newcomer gets the fallback
//!   id its caller supplies (a fresh random one), so nobody can make someone else "leave".
//! - The info an entry joined with stays with it until it leaves.
//!
//! Nothing here reads a clock: `now` comes in as an argument.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Payload;

/// The longest client id accepted, in bytes.
///
/// ```
/// use switchboard_hub::core::{ClientId, ClientIdError, MAX_CLIENT_ID_LEN};
///
/// assert!(ClientId::new(&"c".repeat(MAX_CLIENT_ID_LEN)).is_ok());
/// let too_long = "c".repeat(MAX_CLIENT_ID_LEN + 1);
/// assert_eq!(ClientId::new(&too_long).unwrap_err(), ClientIdError::Length);
/// ```
pub const MAX_CLIENT_ID_LEN: usize = 64;

/// The id of a client in presence: chosen by the client (so that it survives reconnects)
/// or drawn by the server.
///
/// 1 to [`MAX_CLIENT_ID_LEN`] characters from `A-Z a-z 0-9 - _ . :` (safe in a URL query,
/// a Redis key and a JSON string without escaping).
///
/// ```
/// use switchboard_hub::core::ClientId;
///
/// let mine = ClientId::new("tab-1")?;
/// assert_eq!(mine.as_str(), "tab-1");
/// let drawn = ClientId::from_random_bits(0xff);
/// assert_eq!(drawn.as_str(), "s-00000000000000ff");
/// # Ok::<(), switchboard_hub::core::ClientIdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

/// Why a string is not a [`ClientId`].
///
/// ```
/// use switchboard_hub::core::{ClientId, ClientIdError};
///
/// assert_eq!(ClientId::new("").unwrap_err(), ClientIdError::Length);
/// assert_eq!(ClientId::new("a/b").unwrap_err(), ClientIdError::InvalidChar('/'));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    /// Empty, or longer than [`MAX_CLIENT_ID_LEN`].
    #[error("client id must be 1 to {MAX_CLIENT_ID_LEN} characters")]
    Length,
    /// A character outside the alphabet.
    #[error("client id holds {0:?}; allowed are A-Z a-z 0-9 - _ . :")]
    InvalidChar(char),
}

impl ClientId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self, ClientIdError> {
        if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN {
            return Err(ClientIdError::Length);
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(ClientIdError::InvalidChar(bad));
        }
        Ok(Self(Arc::from(id)))
    }

    /// A server-drawn id from 64 random bits (`s-` and 16 hex digits), which a client
    /// cannot mistake for one of its own unless it copies it.
    pub fn from_random_bits(bits: u64) -> Self {
        Self(Arc::from(format!("s-{bits:016x}")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for ClientId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ClientId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// One client in a channel: `{"client":…,"user":…,"info":…}` (`user` and `info` only when
/// known).
///
/// ```
/// use switchboard_hub::core::{ClientId, Payload, PresenceEntry};
///
/// let entry = PresenceEntry {
///     client: ClientId::new("tab-1")?,
///     user: Some("alice".into()),
///     info: Some(Payload::text("Alice")),
/// };
/// let json = serde_json::to_string(&entry)?;
/// assert_eq!(json, r#"{"client":"tab-1","user":"alice","info":"Alice"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresenceEntry {
    /// The client.
    pub client: ClientId,
    /// The user: the token's `sub` when auth is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
    /// What the client said about itself when it subscribed (a nick, say), size-limited
    /// by the hub.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "info_from_json"
    )]
    pub info: Option<Payload>,
}

/// Reads `info` back (a shared store keeps entries as JSON), validated like any payload.
fn info_from_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Payload>, D::Error> {
    let raw = <Option<Box<serde_json::value::RawValue>> as serde::Deserialize>::deserialize(d)?;
    raw.map(|r| Payload::from_json(r.get().as_bytes()).map_err(serde::de::Error::custom))
        .transpose()
}

/// A change of a channel's presence.
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::core::{ClientId, PresenceEntry, PresenceEvent, PresenceRegistry};
///
/// let mut room = PresenceRegistry::new(Duration::from_secs(5));
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// match room.join(entry, || ClientId::from_random_bits(1)).event {
///     Some(event @ PresenceEvent::Join(_)) => assert_eq!(event.kind(), "join"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresenceEvent {
    /// The entry arrived.
    Join(Arc<PresenceEntry>),
    /// The entry left.
    Leave(Arc<PresenceEntry>),
}

impl PresenceEvent {
    /// `"join"` or `"leave"`: the event's name on every transport.
    pub fn kind(&self) -> &'static str {
        match self {
            PresenceEvent::Join(_) => "join",
            PresenceEvent::Leave(_) => "leave",
        }
    }

    /// The entry that joined or left.
    pub fn entry(&self) -> &Arc<PresenceEntry> {
        match self {
            PresenceEvent::Join(e) | PresenceEvent::Leave(e) => e,
        }
    }
}

/// How many are in a channel.
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::core::{ClientId, PresenceCounts, PresenceEntry, PresenceRegistry};
///
/// let mut room = PresenceRegistry::new(Duration::from_secs(5));
/// for tab in ["tab-1", "tab-2"] {
///     let client = ClientId::new(tab)?;
///     let entry = PresenceEntry { client, user: Some("alice".into()), info: None };
///     room.join(entry, || ClientId::from_random_bits(1));
/// }
/// assert_eq!(room.counts(), PresenceCounts { clients: 2, users: 1 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresenceCounts {
    /// Entries (distinct client ids).
    pub clients: usize,
    /// Distinct users; an entry without a user counts as a user of its own.
    pub users: usize,
}

/// A session's claim on an entry, handed back to [`PresenceRegistry::release`].
///
/// The incarnation tells entries of the same client id apart across a leave and a later
/// join, so that a late release of an old session never ends a newer entry.
///
/// ```
/// use std::time::{Duration, Instant};
/// use switchboard_hub::core::{ClientId, PresenceEntry, PresenceRegistry, Released};
///
/// let mut room = PresenceRegistry::new(Duration::from_secs(5));
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// let key = room.join(entry, || ClientId::from_random_bits(1)).key;
/// assert_eq!(key.client.as_str(), "tab-1");
/// assert!(matches!(room.release(&key, Instant::now()), Released::Pending { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The client id the session holds (the fallback one if the asked-for id was taken).
    pub client: ClientId,
    /// Which lifetime of that entry.
    pub incarnation: u64,
}

/// What [`PresenceRegistry::join`] did.
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::core::{ClientId, PresenceEntry, PresenceRegistry};
///
/// let mut room = PresenceRegistry::new(Duration::from_secs(5));
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// let first = room.join(entry.clone(), || ClientId::from_random_bits(1));
/// let second = room.join(entry, || ClientId::from_random_bits(2)); // the same client again
/// assert!(first.event.is_some()); // the join
/// assert!(second.event.is_none()); // one entry, two sessions
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The session's key, for [`PresenceRegistry::release`].
    pub key: SessionKey,
    /// The join, when the entry is new; `None` when the session joined an entry that was
    /// already there (another session, or a reconnect within the grace period).
    pub event: Option<PresenceEvent>,
}

/// What [`PresenceRegistry::release`] did.
///
/// ```
/// use std::time::{Duration, Instant};
/// use switchboard_hub::core::{ClientId, PresenceEntry, PresenceRegistry, Released};
///
/// let mut room = PresenceRegistry::new(Duration::from_secs(5));
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// let key = room.join(entry, || ClientId::from_random_bits(1)).key;
/// let now = Instant::now();
/// let Released::Pending { deadline } = room.release(&key, now) else { panic!() };
/// assert_eq!(deadline, now + Duration::from_secs(5));
/// assert_eq!(room.expire(deadline).len(), 1); // the leave
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Released {
    /// Other sessions still hold the entry, or the key is stale: nothing changes.
    Held,
    /// The entry's last session ended: it leaves at `deadline` unless a session of the same
    /// client comes back first. Call [`PresenceRegistry::expire`] then.
    Pending {
        /// When the grace period ends.
        deadline: Instant,
    },
    /// The entry left now (no grace period).
    Left(PresenceEvent),
}

struct Slot {
    entry: Arc<PresenceEntry>,
    incarnation: u64,
    sessions: u32,
    /// Set while no session holds the entry: when it leaves.
    leaving_at: Option<Instant>,
}

/// The presence of one channel. See the module documentation for the rule.
///
/// ```
/// use std::time::{Duration, Instant};
/// use switchboard_hub::core::{ClientId, PresenceEntry, PresenceRegistry};
///
/// let mut room = PresenceRegistry::new(Duration::from_secs(5));
/// let entry = PresenceEntry { client: ClientId::new("tab-1")?, user: None, info: None };
/// let old = room.join(entry.clone(), || ClientId::from_random_bits(1)).key;
/// let now = Instant::now();
/// room.release(&old, now); // the connection dropped: the grace period starts
/// let back = room.join(entry, || ClientId::from_random_bits(2)); // a reconnect within it
/// assert!(back.event.is_none()); // no leave, no second join
/// assert!(room.expire(now + Duration::from_secs(6)).is_empty());
/// assert_eq!(room.counts().clients, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PresenceRegistry {
    grace: Duration,
    /// Sorted by client id, so that a capped list is stable from call to call.
    slots: BTreeMap<ClientId, Slot>,
    /// Entries per user (for the distinct-user count).
    users: HashMap<Arc<str>, usize>,
    anonymous: usize,
    /// Grace deadlines in the order they were set. The grace period is the same for every
    /// entry, so this is also deadline order; stale items (the entry was taken over or
    /// removed since) are skipped when popped.
    pending: VecDeque<(Instant, SessionKey)>,
    next_incarnation: u64,
}

impl PresenceRegistry {
    /// An empty channel whose entries are kept `grace` after their last session ends.
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            slots: BTreeMap::new(),
            users: HashMap::new(),
            anonymous: 0,
            pending: VecDeque::new(),
            next_incarnation: 1,
        }
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Adds a session for `entry`. If its client id belongs to an entry of another user,
    /// the session gets `fallback()` as its id instead.
    pub fn join(
        &mut self,
        mut entry: PresenceEntry,
        mut fallback: impl FnMut() -> ClientId,
    ) -> Joined {
        if let Some(slot) = self.slots.get_mut(&entry.client) {
            if slot.entry.user == entry.user {
                slot.sessions += 1;
                slot.leaving_at = None;
                return Joined {
                    key: SessionKey {
                        client: entry.client,
                        incarnation: slot.incarnation,
                    },
                    event: None,
                };
            }
            // Another user's id: draw ids until one is free (64 random bits: at once).
            loop {
                entry.client = fallback();
                if !self.slots.contains_key(&entry.client) {
                    break;
                }
            }
        }
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        let entry = Arc::new(entry);
        match &entry.user {
            Some(u) => *self.users.entry(Arc::clone(u)).or_insert(0) += 1,
            None => self.anonymous += 1,
        }
        self.slots.insert(
            entry.client.clone(),
            Slot {
                entry: Arc::clone(&entry),
                incarnation,
                sessions: 1,
                leaving_at: None,
            },
        );
        Joined {
            key: SessionKey {
                client: entry.client.clone(),
                incarnation,
            },
            event: Some(PresenceEvent::Join(entry)),
        }
    }

    /// Ends the session `key` at `now`; if it was the entry's last, the grace period starts.
    pub fn release(&mut self, key: &SessionKey, now: Instant) -> Released {
        self.end(key, (!self.grace.is_zero()).then_some(now))
    }

    /// Ends the session `key` without a grace period (the client said goodbye): if it was
    /// the entry's last, the entry leaves now.
    pub fn leave(&mut self, key: &SessionKey) -> Released {
        self.end(key, None)
    }

    fn end(&mut self, key: &SessionKey, grace_from: Option<Instant>) -> Released {
        let Some(slot) = self.slots.get_mut(&key.client) else {
            return Released::Held;
        };
        if slot.incarnation != key.incarnation || slot.sessions == 0 {
            return Released::Held;
        }
        slot.sessions -= 1;
        if slot.sessions > 0 {
            return Released::Held;
        }
        let Some(now) = grace_from else {
            return match self.remove(&key.client) {
                Some(e) => Released::Left(e),
                None => Released::Held,
            };
        };
        let deadline = now + self.grace;
        slot.leaving_at = Some(deadline);
        self.pending.push_back((deadline, key.clone()));
        Released::Pending { deadline }
    }

    /// Lets every entry whose grace period ended by `now` leave; returns the leaves.
    pub fn expire(&mut self, now: Instant) -> Vec<PresenceEvent> {
        let mut out = Vec::new();
        while let Some((deadline, _)) = self.pending.front() {
            if *deadline > now {
                break;
            }
            let Some((deadline, key)) = self.pending.pop_front() else {
                break;
            };
            let due = self.slots.get(&key.client).is_some_and(|s| {
                s.incarnation == key.incarnation
                    && s.sessions == 0
                    && s.leaving_at == Some(deadline)
            });
            if due {
                out.extend(self.remove(&key.client));
            }
        }
        out
    }

    /// When the next grace period ends, if any is running (possibly a stale one: calling
    /// [`PresenceRegistry::expire`] then is harmless).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.front().map(|(d, _)| *d)
    }

    /// Lets every entry leave at once, grace or not (the node is shutting down); returns
    /// the leaves. Later releases of their sessions do nothing.
    pub fn clear(&mut self) -> Vec<PresenceEvent> {
        let keys: Vec<ClientId> = self.slots.keys().cloned().collect();
        self.pending.clear();
        keys.iter().filter_map(|k| self.remove(k)).collect()
    }

    fn remove(&mut self, client: &ClientId) -> Option<PresenceEvent> {
        let slot = self.slots.remove(client)?;
        match &slot.entry.user {
            Some(u) => {
                if let Some(n) = self.users.get_mut(u) {
                    *n -= 1;
                    if *n == 0 {
                        self.users.remove(u);
                    }
                }
            }
            None => self.anonymous -= 1,
        }
        Some(PresenceEvent::Leave(slot.entry))
    }

    /// How many are here (entries in their grace period included: they have not left).
    pub fn counts(&self) -> PresenceCounts {
        PresenceCounts {
            clients: self.slots.len(),
            users: self.users.len() + self.anonymous,
        }
    }

    /// At most `limit` entries, by client id; and whether there are more.
    pub fn list(&self, limit: usize) -> (Vec<Arc<PresenceEntry>>, bool) {
        let list: Vec<_> = self
            .slots
            .values()
            .take(limit)
            .map(|s| Arc::clone(&s.entry))
            .collect();
        let truncated = self.slots.len() > list.len();
        (list, truncated)
    }

    /// The entries that at least one session holds (not those in their grace period).
    pub fn held(&self) -> impl Iterator<Item = &Arc<PresenceEntry>> {
        self.slots
            .values()
            .filter(|s| s.sessions > 0)
            .map(|s| &s.entry)
    }

    /// The entry of `client`, if here.
    pub fn get(&self, client: &ClientId) -> Option<&Arc<PresenceEntry>> {
        self.slots.get(client).map(|s| &s.entry)
    }

    /// Whether nobody is here and no grace period runs.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

impl fmt::Debug for PresenceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceRegistry")
            .field("grace", &self.grace)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn id(s: &str) -> ClientId {
        ClientId::new(s).unwrap()
    }

    fn entry(client: &str, user: Option<&str>) -> PresenceEntry {
        PresenceEntry {
            client: id(client),
            user: user.map(Arc::from),
            info: None,
        }
    }

    fn no_fallback() -> ClientId {
        panic!("no fallback expected")
    }

    const GRACE: Duration = Duration::from_secs(5);

    #[test]
    fn client_ids_are_validated() {
        assert!(ClientId::new("abc-DEF_1.2:3").is_ok());
        assert_eq!(ClientId::new(""), Err(ClientIdError::Length));
        assert_eq!(
            ClientId::new(&"x".repeat(MAX_CLIENT_ID_LEN + 1)),
            Err(ClientIdError::Length)
        );
        assert_eq!(ClientId::new("a b"), Err(ClientIdError::InvalidChar(' ')));
        assert_eq!(
            ClientId::from_random_bits(255).as_str(),
            "s-00000000000000ff"
        );
        assert!(ClientId::new(ClientId::from_random_bits(u64::MAX).as_str()).is_ok());
    }

    #[test]
    fn join_then_leave_after_grace() {
        let t0 = Instant::now();
        let mut r = PresenceRegistry::new(GRACE);
        let j = r.join(entry("a", None), no_fallback);
        assert!(matches!(&j.event, Some(PresenceEvent::Join(e)) if e.client == id("a")));
        assert_eq!(
            r.counts(),
            PresenceCounts {
                clients: 1,
                users: 1
            }
        );
        let Released::Pending { deadline } = r.release(&j.key, t0) else {
            panic!()
        };
        assert_eq!(deadline, t0 + GRACE);
        // Still listed during the grace period: it has not left.
        assert!(r.expire(t0 + GRACE - Duration::from_millis(1)).is_empty());
        assert_eq!(r.counts().clients, 1);
        let left = r.expire(t0 + GRACE);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].kind(), "leave");
        assert!(r.is_empty());
        assert_eq!(r.counts(), PresenceCounts::default());
        // A second release of the same session is stale.
        assert_eq!(r.release(&j.key, t0), Released::Held);
    }

    #[test]
    fn reconnect_within_grace_does_not_flap() {
        let t0 = Instant::now();
        let mut r = PresenceRegistry::new(GRACE);
        let j = r.join(entry("a", Some("ann")), no_fallback);
        r.release(&j.key, t0);
        let again = r.join(entry("a", Some("ann")), no_fallback);
        assert_eq!(again.event, None);
        assert_eq!(again.key, j.key);
        assert!(r.expire(t0 + GRACE * 2).is_empty());
        assert_eq!(r.counts().clients, 1);
        // And its own end later leaves, once.
        let t1 = t0 + GRACE * 3;
        r.release(&again.key, t1);
        assert_eq!(r.expire(t1 + GRACE).len(), 1);
        assert!(r.expire(t1 + GRACE * 9).is_empty());
    }

    #[test]
    fn a_goodbye_skips_the_grace_period() {
        let t0 = Instant::now();
        let mut r = PresenceRegistry::new(GRACE);
        let a = r.join(entry("a", None), no_fallback);
        let b = r.join(entry("a", None), no_fallback);
        assert_eq!(r.leave(&a.key), Released::Held);
        assert!(matches!(
            r.leave(&b.key),
            Released::Left(PresenceEvent::Leave(_))
        ));
        assert!(r.is_empty());
        assert_eq!(r.release(&b.key, t0), Released::Held);
        // A goodbye during another entry's grace period leaves the queue consistent.
        let c = r.join(entry("c", None), no_fallback);
        let d = r.join(entry("d", None), no_fallback);
        r.release(&c.key, t0);
        assert!(matches!(r.leave(&d.key), Released::Left(_)));
        assert_eq!(r.expire(t0 + GRACE).len(), 1);
        assert!(r.is_empty());
    }

    #[test]
    fn overlapping_sessions_share_one_entry() {
        let t0 = Instant::now();
        let mut r = PresenceRegistry::new(Duration::ZERO);
        let a = r.join(entry("a", None), no_fallback);
        let b = r.join(entry("a", None), no_fallback);
        assert!(a.event.is_some() && b.event.is_none());
        assert_eq!(r.release(&a.key, t0), Released::Held);
        assert!(matches!(
            r.release(&b.key, t0),
            Released::Left(PresenceEvent::Leave(_))
        ));
        assert!(r.is_empty());
    }

    #[test]
    fn another_users_id_is_not_taken_over() {
        let t0 = Instant::now();
        let mut r = PresenceRegistry::new(Duration::ZERO);
        let ann = r.join(entry("x", Some("ann")), no_fallback);
        let bob = r.join(entry("x", Some("bob")), || id("fresh"));
        assert_eq!(bob.key.client, id("fresh"));
        assert!(
            matches!(&bob.event, Some(PresenceEvent::Join(e)) if e.user.as_deref() == Some("bob"))
        );
        assert_eq!(
            r.counts(),
            PresenceCounts {
                clients: 2,
                users: 2
            }
        );
        // Bob leaving does not make Ann leave.
        r.release(&bob.key, t0);
        assert!(r.get(&id("x")).is_some());
        r.release(&ann.key, t0);
        assert!(r.is_empty());
    }

    #[test]
    fn stale_release_does_not_end_a_newer_entry() {
        let t0 = Instant::now();
        let mut r = PresenceRegistry::new(Duration::ZERO);
        let old = r.join(entry("a", None), no_fallback);
        r.release(&old.key, t0);
        let new = r.join(entry("a", None), no_fallback);
        assert!(new.event.is_some());
        assert_ne!(new.key.incarnation, old.key.incarnation);
        assert_eq!(r.release(&old.key, t0), Released::Held);
        assert_eq!(r.counts().clients, 1);
    }

    #[test]
    fn users_are_counted_once() {
        let mut r = PresenceRegistry::new(GRACE);
        r.join(entry("a", Some("ann")), no_fallback);
        r.join(entry("b", Some("ann")), no_fallback);
        r.join(entry("c", Some("bob")), no_fallback);
        r.join(entry("d", None), no_fallback);
        assert_eq!(
            r.counts(),
            PresenceCounts {
                clients: 4,
                users: 3
            }
        );
        let left = r.clear();
        assert_eq!(left.len(), 4);
        assert_eq!(r.counts(), PresenceCounts::default());
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn lists_are_capped_but_counts_are_not() {
        let mut r = PresenceRegistry::new(GRACE);
        for i in 0..10_000 {
            r.join(
                entry(&format!("c{i:05}"), Some(&format!("u{}", i % 7000))),
                no_fallback,
            );
        }
        let (list, truncated) = r.list(100);
        assert_eq!(list.len(), 100);
        assert!(truncated);
        assert_eq!(list[0].client, id("c00000"));
        assert_eq!(
            r.counts(),
            PresenceCounts {
                clients: 10_000,
                users: 7000
            }
        );
        let (all, truncated) = r.list(usize::MAX);
        assert_eq!(all.len(), 10_000);
        assert!(!truncated);
    }

    #[test]
    fn entries_serialise_without_absent_fields() {
        let e = PresenceEntry {
            client: id("a"),
            user: None,
            info: Some(Payload::from_json(br#"{"nick":"ann"}"#).unwrap()),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"client":"a","info":{"nick":"ann"}}"#
        );
        let back: PresenceEntry = serde_json::from_str(r#"{"client":"a","user":"u"}"#).unwrap();
        assert_eq!(back.user.as_deref(), Some("u"));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// A new session of client `c` (user `c % 3`, or none for c >= 6).
        Join(u8),
        /// End the `n % held`-th held session.
        Release(usize),
        /// Time passes.
        Advance(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..10).prop_map(Op::Join),
            any::<usize>().prop_map(Op::Release),
            (0u16..8000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Random churn: every entry joins once and leaves at most once, leaves only after
        /// its grace period without sessions, presence always equals the clients with a
        /// session or a running grace period, and after everyone ends, everyone has left.
        #[test]
        fn churn_keeps_presence_exact(ops in proptest::collection::vec(op(), 1..300), grace_ms in 0u64..3000) {
            let grace = Duration::from_millis(grace_ms);
            let t0 = Instant::now();
            let mut now = t0;
            let mut r = PresenceRegistry::new(grace);
            let mut held: Vec<SessionKey> = Vec::new();
            // Model: client -> (sessions, leaving deadline).
            let mut model: HashMap<ClientId, (u32, Option<Instant>)> = HashMap::new();
            let mut present: HashSet<ClientId> = HashSet::new();
            let check_events = |events: Vec<PresenceEvent>, present: &mut HashSet<ClientId>| {
                for ev in events {
                    let c = ev.entry().client.clone();
                    match ev {
                        PresenceEvent::Join(_) => prop_assert!(present.insert(c), "double join"),
                        PresenceEvent::Leave(_) => prop_assert!(present.remove(&c), "leave without join"),
                    }
                }
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Join(c) => {
                        let client = id(&format!("c{c}"));
                        let user = (c < 6).then(|| format!("u{}", c % 3));
                        // Users never collide on an id here (the id fixes the user).
                        let j = r.join(PresenceEntry { client: client.clone(), user: user.map(Arc::from), info: None }, no_fallback);
                        let m = model.entry(client).or_insert((0, None));
                        prop_assert_eq!(j.event.is_some(), m.0 == 0 && m.1.is_none());
                        m.0 += 1;
                        m.1 = None;
                        check_events(j.event.into_iter().collect(), &mut present)?;
                        held.push(j.key);
                    }
                    Op::Release(n) if !held.is_empty() => {
                        let key = held.swap_remove(n % held.len());
                        let res = r.release(&key, now);
                        let m = model.get_mut(&key.client).unwrap();
                        m.0 -= 1;
                        match res {
                            Released::Held => prop_assert!(m.0 > 0),
                            Released::Pending { deadline } => {
                                prop_assert_eq!(m.0, 0);
                                prop_assert_eq!(deadline, now + grace);
                                m.1 = Some(deadline);
                            }
                            Released::Left(ev) => {
                                prop_assert!(grace.is_zero());
                                model.remove(&key.client);
                                check_events(vec![ev], &mut present)?;
                            }
                        }
                    }
                    Op::Release(_) => {}
                    Op::Advance(ms) => {
                        now += Duration::from_millis(u64::from(ms));
                        let left = r.expire(now);
                        for ev in &left {
                            let m = model.remove(&ev.entry().client).unwrap();
                            prop_assert_eq!(m.0, 0);
                            prop_assert!(m.1.unwrap() <= now);
                        }
                        check_events(left, &mut present)?;
                    }
                }
                // Nothing overdue is left behind by an expire at `now`.
                let listed: HashSet<ClientId> = r.list(usize::MAX).0.iter().map(|e| e.client.clone()).collect();
                let expected: HashSet<ClientId> = model.keys().cloned().collect();
                prop_assert_eq!(&listed, &expected);
                prop_assert_eq!(&listed, &present);
                let users: HashSet<Option<Arc<str>>> = r.list(usize::MAX).0.iter().map(|e| e.user.clone()).collect();
                let anon = r.list(usize::MAX).0.iter().filter(|e| e.user.is_none()).count();
                prop_assert_eq!(r.counts().clients, listed.len());
                prop_assert_eq!(r.counts().users, users.iter().filter(|u| u.is_some()).count() + anon);
            }
            // Everyone goes; after the grace period nobody is left, and each left once.
            for key in held.drain(..) {
                if let Released::Left(ev) = r.release(&key, now) {
                    check_events(vec![ev], &mut present)?;
                }
            }
            let left = r.expire(now + grace);
            check_events(left, &mut present)?;
            prop_assert!(r.is_empty());
            prop_assert!(present.is_empty());
            prop_assert_eq!(r.next_deadline(), None);
        }
    }
}
