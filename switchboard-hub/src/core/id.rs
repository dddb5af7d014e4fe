//! Message ids, channel epochs and the cursor that names a position in a channel.
//!
//! Every message in a channel gets the next [`MessageId`], starting at 1, so "everything after
//! id N" is a precise question. Ids alone are not enough to resume safely: a restarted server
//! (or a channel that was dropped when idle and created again) counts from 1 again, and a
//! client holding id 41 would silently skip the new channel's first 41 messages. So every
//! channel also draws a random [`Epoch`] when it is created, and a [`Cursor`] carries both.

use std::fmt;
use std::str::FromStr;

/// The position of a message in its channel: 1 for the first message, then +1 per message.
///
/// `MessageId::ZERO` is the position *before* the first message, so `since = 0` asks for
/// everything the channel still holds.
///
/// ```
/// use switchboard_hub::core::MessageId;
///
/// let first = MessageId::ZERO.next();
/// assert_eq!(first, MessageId::new(1));
/// assert_eq!(first.next().get(), 2);
/// assert!(MessageId::ZERO < first);
/// ```
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct MessageId(u64);

impl MessageId {
    /// The position before the first message of an epoch.
    pub const ZERO: MessageId = MessageId(0);

    /// Wraps a raw id.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The id after this one.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The identity of one lifetime of a channel.
///
/// Epochs are random, non-zero and below 2^53, so that they survive a round trip through a
/// JavaScript number (the browser client compares them).
///
/// ```
/// use switchboard_hub::core::{Epoch, MAX_EPOCH};
///
/// assert_eq!(Epoch::new(7).map(Epoch::get), Some(7));
/// assert!(Epoch::new(0).is_none());
/// // Any random u64 folds into a valid epoch.
/// let drawn = Epoch::from_random_bits(u64::MAX);
/// assert_eq!(drawn.get(), MAX_EPOCH);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Epoch(u64);

/// The largest epoch value: 2^53 − 1, the largest integer a JavaScript number holds exactly.
///
/// ```
/// use switchboard_hub::core::{Epoch, MAX_EPOCH};
///
/// assert!(Epoch::new(MAX_EPOCH).is_some());
/// assert!(Epoch::new(MAX_EPOCH + 1).is_none());
/// ```
pub const MAX_EPOCH: u64 = (1 << 53) - 1;

impl Epoch {
    /// An epoch from an exact value, if it is within `1..=MAX_EPOCH`.
    pub const fn new(raw: u64) -> Option<Self> {
        if raw == 0 || raw > MAX_EPOCH {
            None
        } else {
            Some(Self(raw))
        }
    }

    /// Folds arbitrary random bits into a valid epoch (keeps the low 53 bits; 0 becomes 1).
    pub const fn from_random_bits(bits: u64) -> Self {
        let v = bits & MAX_EPOCH;
        Self(if v == 0 { 1 } else { v })
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Epoch {
    type Error = CursorError;

    fn try_from(raw: u64) -> Result<Self, Self::Error> {
        Self::new(raw).ok_or(CursorError::EpochOutOfRange)
    }
}

impl From<Epoch> for u64 {
    fn from(e: Epoch) -> u64 {
        e.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A position in a channel as a client remembers it: the last id it has seen, and the epoch
/// that id belongs to when the client knows it.
///
/// Text form: `EPOCH:ID` (what SSE `id:` lines and long-poll `next` cursors carry), or a bare
/// `ID` for clients that only know ids (a bare id is trusted to belong to the current epoch,
/// unless it lies ahead of the channel, which proves it does not).
///
/// ```
/// use switchboard_hub::core::{Cursor, Epoch, MessageId};
///
/// let cursor: Cursor = "5:41".parse()?;
/// assert_eq!(cursor, Cursor::new(Epoch::new(5).unwrap(), MessageId::new(41)));
/// assert_eq!(cursor.to_string(), "5:41");
///
/// let bare: Cursor = "41".parse()?;
/// assert_eq!(bare.epoch, None);
/// # Ok::<(), switchboard_hub::core::CursorError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The epoch the id belongs to, if known.
    pub epoch: Option<Epoch>,
    /// The last id seen.
    pub id: MessageId,
}

impl Cursor {
    /// A cursor with a known epoch.
    pub const fn new(epoch: Epoch, id: MessageId) -> Self {
        Self {
            epoch: Some(epoch),
            id,
        }
    }

    /// A cursor that only knows an id.
    pub const fn id_only(id: MessageId) -> Self {
        Self { epoch: None, id }
    }
}

/// Why a string or JSON value is not a [`Cursor`].
///
/// ```
/// use switchboard_hub::core::{Cursor, CursorError};
///
/// assert_eq!("x:1".parse::<Cursor>(), Err(CursorError::Malformed));
/// assert_eq!("+1".parse::<Cursor>(), Err(CursorError::Malformed));
/// assert_eq!("0:1".parse::<Cursor>(), Err(CursorError::EpochOutOfRange));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not `ID` or `EPOCH:ID` with decimal numbers.
    #[error("cursor must be ID or EPOCH:ID with decimal numbers")]
    Malformed,
    /// The epoch is 0 or not below 2^53.
    #[error("epoch must be between 1 and 2^53-1")]
    EpochOutOfRange,
}

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        fn number(s: &str) -> Result<u64, CursorError> {
            // `u64::from_str` accepts a leading '+'; a cursor is digits only.
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CursorError::Malformed);
            }
            s.parse().map_err(|_| CursorError::Malformed)
        }
        match s.split_once(':') {
            None => Ok(Cursor::id_only(MessageId(number(s)?))),
            Some((epoch, id)) => {
                let epoch = Epoch::try_from(number(epoch)?)?;
                Ok(Cursor::new(epoch, MessageId(number(id)?)))
            }
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epoch {
            Some(e) => write!(f, "{e}:{}", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

impl serde::Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cursor {
    /// Accepts the text form, or a bare JSON number meaning an id.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw<'a> {
            Id(u64),
            #[serde(borrow)]
            Text(std::borrow::Cow<'a, str>),
        }
        match Raw::deserialize(d)? {
            Raw::Id(id) => Ok(Cursor::id_only(MessageId(id))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trip() {
        let c: Cursor = "17:42".parse().unwrap();
        assert_eq!(c, Cursor::new(Epoch::new(17).unwrap(), MessageId::new(42)));
        assert_eq!(c.to_string(), "17:42");
        let bare: Cursor = "42".parse().unwrap();
        assert_eq!(bare, Cursor::id_only(MessageId::new(42)));
        assert_eq!(bare.to_string(), "42");
    }

    #[test]
    fn cursor_rejects_junk() {
        for bad in [
            "",
            ":",
            "1:",
            ":1",
            "+1",
            "-1",
            "1:2:3",
            "a",
            "1 ",
            "99999999999999999999",
        ] {
            assert_eq!(
                bad.parse::<Cursor>(),
                Err(CursorError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!("0:1".parse::<Cursor>(), Err(CursorError::EpochOutOfRange));
        assert_eq!(
            format!("{}:1", MAX_EPOCH + 1).parse::<Cursor>(),
            Err(CursorError::EpochOutOfRange)
        );
    }

    #[test]
    fn cursor_from_json_number_or_string() {
        let n: Cursor = serde_json::from_str("41").unwrap();
        assert_eq!(n, Cursor::id_only(MessageId::new(41)));
        let s: Cursor = serde_json::from_str("\"9:41\"").unwrap();
        assert_eq!(s.epoch.map(Epoch::get), Some(9));
        assert!(serde_json::from_str::<Cursor>("-1").is_err());
        assert!(serde_json::from_str::<Cursor>("\"x\"").is_err());
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"9:41\"");
    }

    #[test]
    fn epochs_fit_in_a_javascript_number() {
        assert_eq!(Epoch::from_random_bits(0).get(), 1);
        assert_eq!(Epoch::from_random_bits(u64::MAX).get(), MAX_EPOCH);
        assert!(Epoch::new(0).is_none());
        assert!(serde_json::from_str::<Epoch>("0").is_err());
        assert_eq!(serde_json::to_string(&Epoch::new(5).unwrap()).unwrap(), "5");
    }
}
