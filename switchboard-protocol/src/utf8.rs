//! UTF-8 for text messages: an incremental validator that fails at the first invalid byte,
//! and `Utf8Bytes`, bytes that have passed it.

use bytes::Bytes;
use std::fmt;

/// Validates UTF-8 that arrives in pieces (fragments, or parts of one frame).
///
/// RFC 6455 §8.1: an endpoint that receives invalid UTF-8 in a text message "MUST _Fail the
/// WebSocket Connection_". Checking each piece as it arrives, instead of the whole message
/// at the end, lets a connection fail as soon as the first bad byte is in, even in the middle
/// of a frame or of a code point. The bulk check is `simdutf8`; only the at most three bytes
/// of a code point cut by a piece boundary are carried over.
///
/// ```
/// use switchboard_protocol::Utf8Validator;
///
/// // "café" in two fragments, cut inside the two bytes of "é" (C3 A9).
/// let mut utf8 = Utf8Validator::new();
/// assert!(utf8.feed(b"caf\xc3").is_ok());
/// assert!(utf8.feed(b"\xa9").is_ok());
/// assert!(utf8.finish().is_ok());
/// // A byte that can never be UTF-8 fails at once, before the message ends…
/// assert!(Utf8Validator::new().feed(b"ok \xff").is_err());
/// // …and a message that stops inside a code point fails at the end.
/// let mut utf8 = Utf8Validator::new();
/// assert!(utf8.feed(b"caf\xc3").is_ok() && utf8.finish().is_err());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

/// The input is not UTF-8 (a WebSocket endpoint closes with 1007 for it, RFC 6455 §8.1).
///
/// ```
/// use switchboard_protocol::{InvalidUtf8, Utf8Bytes};
///
/// let refused = Utf8Bytes::try_from_bytes(bytes::Bytes::from_static(b"\xff"));
/// assert_eq!(refused.unwrap_err(), InvalidUtf8);
/// assert_eq!(InvalidUtf8.to_string(), "the text is not valid UTF-8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl std::fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the text is not valid UTF-8")
    }
}

impl std::error::Error for InvalidUtf8 {}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next piece. `Err` as soon as any byte so far cannot be part of valid UTF-8;
    /// an incomplete code point at the end is fine until [`Utf8Validator::finish`].
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            // Complete the code point cut by the previous piece, one byte at a time, so that
            // an invalid continuation is caught even when the piece is a single byte.
            while self.partial_len > 0 {
                let Some((&byte, rest)) = input.split_first() else {
                    return Ok(());
                };
                self.partial[self.partial_len as usize] = byte;
                self.partial_len += 1;
                input = rest;
                match std::str::from_utf8(&self.partial[..self.partial_len as usize]) {
                    Ok(_) => self.partial_len = 0,
                    Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                    Err(_) => {}
                }
            }
        }
        if input.is_ascii() {
            // Most text is ASCII, and short messages are the common case: a word-at-a-time
            // check beats the SIMD validator's set-up there.
            return Ok(());
        }
        match simdutf8::compat::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(InvalidUtf8),
                None => {
                    let tail = &input[e.valid_up_to()..];
                    self.partial[..tail.len()].copy_from_slice(tail);
                    self.partial_len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Ends the message: `Err` if it stopped inside a code point.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

/// Bytes that are valid UTF-8: the payload of a text message, shared without copying.
///
/// ```
/// use bytes::Bytes;
/// use switchboard_protocol::Utf8Bytes;
///
/// let text = Utf8Bytes::try_from_bytes(Bytes::from_static("grüß".as_bytes())).unwrap();
/// assert_eq!(text, "grüß");
/// assert!(text.starts_with("gr")); // derefs to `str`
/// assert!(Utf8Bytes::try_from_bytes(Bytes::from_static(b"\xff")).is_err());
/// let greeting = Utf8Bytes::from_static("hello"); // no copy, no check
/// assert_eq!(greeting.len(), 5);
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Validates `bytes` as UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, InvalidUtf8> {
        simdutf8::basic::from_utf8(&bytes).map_err(|_| InvalidUtf8)?;
        Ok(Self(bytes))
    }

    /// Wraps bytes the caller has already validated.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }

    /// A static string, without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor validates the bytes (`try_from_bytes`, the `From<String>`
        // and `From<&str>` impls) or is only called on bytes the connection validated
        // (`from_validated`), and `Bytes` is immutable.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives up the UTF-8 guarantee.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(s: Utf8Bytes) -> Self {
        s.0
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_in_pieces(data: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, data.len());
            v.feed(&data[start..cut])?;
            start = cut;
        }
        v.feed(&data[start..])?;
        v.finish()
    }

    proptest! {
        #[test]
        fn agrees_with_std_under_any_split(data in proptest::collection::vec(any::<u8>(), 0..64),
                                           mut cuts in proptest::collection::vec(0usize..64, 0..6)) {
            cuts.sort_unstable();
            prop_assert_eq!(validate_in_pieces(&data, &cuts).is_ok(), std::str::from_utf8(&data).is_ok());
        }

        #[test]
        fn valid_text_passes_under_any_split(s in "\\PC{0,40}", mut cuts in proptest::collection::vec(0usize..200, 0..6)) {
            cuts.sort_unstable();
            prop_assert!(validate_in_pieces(s.as_bytes(), &cuts).is_ok());
        }
    }

    #[test]
    fn fails_mid_code_point() {
        // U+10FFFF is F4 8F BF BF; F4 90 can never start a valid code point.
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xf4]).is_ok());
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn fails_at_first_bad_byte_before_the_end() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"hello \xc0\xaf"), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_code_point_fails_only_at_finish() {
        let mut v = Utf8Validator::new();
        assert!(v.feed("κ".as_bytes().split_at(1).0).is_ok());
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }
}
