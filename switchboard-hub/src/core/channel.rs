//! Channel names: parsed once at the edge, trusted everywhere after.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The longest channel name accepted, in bytes.
///
/// ```
/// use switchboard_hub::core::{ChannelName, ChannelNameError, MAX_CHANNEL_NAME_LEN};
///
/// assert!(ChannelName::new(&"a".repeat(MAX_CHANNEL_NAME_LEN)).is_ok());
/// let too_long = "a".repeat(MAX_CHANNEL_NAME_LEN + 1);
/// assert_eq!(ChannelName::new(&too_long), Err(ChannelNameError::TooLong));
/// ```
pub const MAX_CHANNEL_NAME_LEN: usize = 128;

/// A validated channel name.
///
/// A name is 1 to [`MAX_CHANNEL_NAME_LEN`] ASCII characters from `A-Z a-z 0-9 - _ . : @`,
/// and does not start with `.`. The alphabet is chosen so that a name is always a single URL
/// path segment that needs no percent-encoding (`/sse/{channel}`), and so that `.` and `..`
/// can never reach a router as path traversal.
///
/// Cloning is cheap: the text is shared behind an `Arc`, because every message carries the
/// name of its channel.
///
/// ```
/// use switchboard_hub::core::ChannelName;
///
/// let chat = ChannelName::new("room:lobby")?;
/// assert_eq!(chat.as_str(), "room:lobby");
/// // FromStr does the same validation.
/// let same: ChannelName = "room:lobby".parse()?;
/// assert_eq!(chat, same);
/// # Ok::<(), switchboard_hub::core::ChannelNameError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

/// Why a string is not a [`ChannelName`].
///
/// ```
/// use switchboard_hub::core::{ChannelName, ChannelNameError};
///
/// assert_eq!(ChannelName::new(""), Err(ChannelNameError::Empty));
/// assert_eq!(ChannelName::new(".."), Err(ChannelNameError::LeadingDot));
/// assert_eq!(ChannelName::new("a b"), Err(ChannelNameError::InvalidChar(' ')));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is empty.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than [`MAX_CHANNEL_NAME_LEN`] bytes.
    #[error("channel name is longer than {MAX_CHANNEL_NAME_LEN} bytes")]
    TooLong,
    /// The name starts with `.`.
    #[error("channel name must not start with '.'")]
    LeadingDot,
    /// The name holds a character outside the allowed alphabet.
    #[error("channel name holds {0:?}; allowed are A-Z a-z 0-9 - _ . : @")]
    InvalidChar(char),
}

impl ChannelName {
    /// Validates `name` and wraps it.
    pub fn new(name: &str) -> Result<Self, ChannelNameError> {
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if name.len() > MAX_CHANNEL_NAME_LEN {
            return Err(ChannelNameError::TooLong);
        }
        if let Some(bad) = name.chars().find(|c| !is_name_char(*c)) {
            return Err(ChannelNameError::InvalidChar(bad));
        }
        if name.starts_with('.') {
            return Err(ChannelNameError::LeadingDot);
        }
        Ok(Self(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')
}

impl FromStr for ChannelName {
    type Err = ChannelNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for ChannelName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ChannelName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in [
            "chat",
            "a",
            "room-1",
            "team_42",
            "org.acme:news",
            "user@host",
            "..x".trim_start_matches('.'),
        ] {
            assert_eq!(ChannelName::new(ok).unwrap().as_str(), ok);
        }
        assert!(ChannelName::new(&"x".repeat(MAX_CHANNEL_NAME_LEN)).is_ok());
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(ChannelName::new(""), Err(ChannelNameError::Empty));
        assert_eq!(
            ChannelName::new(&"x".repeat(MAX_CHANNEL_NAME_LEN + 1)),
            Err(ChannelNameError::TooLong)
        );
        assert_eq!(ChannelName::new("."), Err(ChannelNameError::LeadingDot));
        assert_eq!(ChannelName::new(".."), Err(ChannelNameError::LeadingDot));
        assert_eq!(
            ChannelName::new("a/b"),
            Err(ChannelNameError::InvalidChar('/'))
        );
        assert_eq!(
            ChannelName::new("a b"),
            Err(ChannelNameError::InvalidChar(' '))
        );
        assert_eq!(
            ChannelName::new("é"),
            Err(ChannelNameError::InvalidChar('é'))
        );
        assert_eq!(
            ChannelName::new("a%2F"),
            Err(ChannelNameError::InvalidChar('%'))
        );
    }

    #[test]
    fn serde_validates() {
        let ok: ChannelName = serde_json::from_str("\"chat\"").unwrap();
        assert_eq!(ok.as_str(), "chat");
        assert!(serde_json::from_str::<ChannelName>("\"a/b\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"chat\"");
    }
}
