//! Message payloads: one JSON value, validated and compacted once at publish time.

use std::borrow::Cow;
use std::fmt;

use bytes::{Bytes, BytesMut};

/// The data of a message: exactly one JSON value, stored as compact JSON text.
///
/// Whatever the transport, a payload is JSON: a JSON request body is kept as is (minus
/// insignificant whitespace, so that it fits on one SSE `data:` line), and a text body or a
/// chat-room text frame becomes a JSON string. Validating once when a message enters the hub
/// lets every transport splice the bytes into its envelope without parsing them again.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Bytes);

/// Why bytes are not a [`Payload`].
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The bytes are not UTF-8 (RFC 8259 §8.1: JSON text exchanged between systems is UTF-8).
    #[error("payload is not valid UTF-8")]
    InvalidUtf8,
    /// The bytes are not exactly one JSON value.
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
}

impl Payload {
    /// Validates `json` as a single JSON value and stores it compacted.
    pub fn from_json(json: &[u8]) -> Result<Self, PayloadError> {
        // Checked separately: serde_json skips over the bytes of strings it is told to ignore
        // without validating them, and `as_str` relies on UTF-8.
        std::str::from_utf8(json).map_err(|_| PayloadError::InvalidUtf8)?;
        serde_json::from_slice::<serde::de::IgnoredAny>(json)?;
        Ok(Self(compact(json)))
    }

    /// A payload holding `text` as a JSON string.
    pub fn text(text: &str) -> Self {
        // Serialising a &str cannot fail.
        let json = serde_json::to_vec(text).unwrap_or_default();
        Self(Bytes::from(json))
    }

    /// A payload holding `value`.
    pub fn from_value(value: &serde_json::Value) -> Self {
        // Serialising a Value cannot fail (its map keys are strings).
        Self(Bytes::from(serde_json::to_vec(value).unwrap_or_default()))
    }

    /// The compact JSON text, shared.
    pub fn json(&self) -> &Bytes {
        &self.0
    }

    /// The compact JSON text as `&str` (a validated payload is always UTF-8).
    pub fn as_str(&self) -> &str {
        // Checked in `from_json`; the other constructors serialise from Rust strings.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The payload as plain text, the form the seeds' chat room and plain `EventSource`
    /// pages show: a JSON string becomes its unescaped text, any other value its JSON text.
    pub fn plain_text(&self) -> Cow<'_, str> {
        if self.0.first() == Some(&b'"') {
            if let Ok(s) = serde_json::from_slice::<String>(&self.0) {
                return Cow::Owned(s);
            }
        }
        Cow::Borrowed(self.as_str())
    }

    /// The size of the compact JSON text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The size the message limit applies to: a JSON string counts the bytes of its text
    /// (so that a 64 KiB text fits a 64 KiB limit, however it is quoted or escaped), any
    /// other value its compact JSON.
    pub fn content_len(&self) -> usize {
        if self.0.first() == Some(&b'"') {
            if let Ok(s) = serde_json::from_slice::<Cow<'_, str>>(&self.0) {
                return s.len();
            }
        }
        self.0.len()
    }

    /// Always false: the shortest JSON value (`0`) is one byte. Present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the payload into a `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Spliced as is: the text is already validated, compact JSON.
        let raw: &serde_json::value::RawValue =
            serde_json::from_slice(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// Drops the whitespace JSON allows between tokens. `json` must already be valid.
fn compact(json: &[u8]) -> Bytes {
    let needs_work = json
        .iter()
        .any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if !needs_work {
        return Bytes::copy_from_slice(json);
    }
    let mut out = BytesMut::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            out.extend_from_slice(&[b]);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.extend_from_slice(&[b]);
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.extend_from_slice(&[b]);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_json_compacts_whitespace_outside_strings() {
        let p = Payload::from_json(b" {\"a\" : [1, 2],\n \"b\": \"x y\\\" z\" } ").unwrap();
        assert_eq!(p.as_str(), r#"{"a":[1,2],"b":"x y\" z"}"#);
    }

    #[test]
    fn refuses_non_json() {
        for bad in [&b""[..], b"{", b"1 2", b"hello", b"\"\xff\"", b"{}x"] {
            assert!(Payload::from_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_becomes_a_json_string_and_back() {
        let p = Payload::text("hi \"there\"\n");
        assert_eq!(p.as_str(), r#""hi \"there\"\n""#);
        assert_eq!(p.plain_text(), "hi \"there\"\n");
        let n = Payload::from_json(b"42").unwrap();
        assert_eq!(n.plain_text(), "42");
    }

    #[test]
    fn content_length_leaves_out_the_json_quoting() {
        assert_eq!(Payload::text("hello").content_len(), 5);
        assert_eq!(Payload::text("a\"b\n").content_len(), 4);
        assert_eq!(Payload::text("héllo").content_len(), 6);
        assert_eq!(Payload::from_json(b"[1, 2]").unwrap().content_len(), 5);
        assert_eq!(Payload::from_json(b"\"x\"").unwrap().content_len(), 1);
    }

    proptest! {
        #[test]
        fn compaction_preserves_the_value(v in arb_json()) {
            let pretty = serde_json::to_vec_pretty(&v).unwrap();
            let p = Payload::from_json(&pretty).unwrap();
            prop_assert_eq!(p.to_value(), v);
            prop_assert!(!p.as_str().contains('\n'));
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
