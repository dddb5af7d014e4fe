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
///
/// ```
/// use switchboard_hub::core::Payload;
///
/// let json = Payload::from_json(br#"{ "text": "hi" }"#)?;
/// assert_eq!(json.as_str(), r#"{"text":"hi"}"#); // stored compacted
/// assert_eq!(json.to_value()["text"], "hi");
///
/// let text = Payload::text("say \"hi\"");
/// assert_eq!(text.as_str(), r#""say \"hi\"""#);
/// assert_eq!(text.plain_text(), "say \"hi\"");
/// # Ok::<(), switchboard_hub::core::PayloadError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Bytes);

/// Why bytes are not a [`Payload`].
///
/// ```
/// use switchboard_hub::core::{Payload, PayloadError};
///
/// assert!(matches!(Payload::from_json(b"{"), Err(PayloadError::InvalidJson(_))));
/// assert!(matches!(Payload::from_json(b"\xff"), Err(PayloadError::InvalidUtf8)));
/// assert!(matches!(
///     Payload::from_json_with_depth(b"[[1]]", 1),
///     Err(PayloadError::TooDeep { limit: 1 })
/// ));
/// assert!(matches!(Payload::from_json(br#""\ud800""#), Err(PayloadError::LoneSurrogate(_))));
/// assert!(matches!(Payload::from_json(b"1e400"), Err(PayloadError::NumberOutOfRange(_))));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The bytes are not UTF-8 (RFC 8259 §8.1: JSON text exchanged between systems is UTF-8).
    #[error("payload is not valid UTF-8")]
    InvalidUtf8,
    /// The bytes are not exactly one JSON value.
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    /// Arrays and objects nest deeper than the limit: refused rather than passed on to
    /// clients whose recursive parsers would overflow their stacks on it.
    #[error("payload nests arrays and objects deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A `\uD800`–`\uDFFF` escape that is not half of a surrogate pair: it names no
    /// character, and many decoders reject or mangle it.
    #[error("payload holds a lone surrogate escape ({0}) that names no character")]
    LoneSurrogate(String),
    /// A number too large for a 64-bit float (`1e400`): valid JSON text, but most
    /// decoders refuse it (serde_json, Go) or turn it into infinity (JavaScript).
    #[error("payload holds a number beyond the range of a 64-bit float ({0})")]
    NumberOutOfRange(String),
}

/// The nesting depth [`Payload::from_json`] allows.
///
/// ```
/// use switchboard_hub::core::{Payload, DEFAULT_MAX_DEPTH};
///
/// let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
/// assert!(Payload::from_json(nested(DEFAULT_MAX_DEPTH).as_bytes()).is_ok());
/// assert!(Payload::from_json(nested(DEFAULT_MAX_DEPTH + 1).as_bytes()).is_err());
/// ```
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Checks what serde_json lets through: nesting deeper than `max_depth`, escapes of
/// lone UTF-16 surrogates, and numbers beyond a 64-bit float's range (serde_json skips
/// those unparsed, then refuses them when a subscriber decodes the message). One pass over
/// the bytes, before (or instead of) parsing, so a 30,000-deep array costs no recursion.
/// Meaningful on valid JSON; on anything else it only counts brackets.
///
/// ```
/// use switchboard_hub::core::{check_json_shape, PayloadError};
///
/// assert!(check_json_shape(br#"{"a":[1,2]}"#, 2).is_ok());
/// assert!(matches!(check_json_shape(b"[[[]]]", 2), Err(PayloadError::TooDeep { limit: 2 })));
/// assert!(check_json_shape(br#""\ud83d\ude00""#, 2).is_ok()); // a surrogate pair
/// assert!(check_json_shape(br#""\ude00""#, 2).is_err()); // a lone half
/// assert!(matches!(check_json_shape(b"[1e400]", 2), Err(PayloadError::NumberOutOfRange(_))));
/// ```
pub fn check_json_shape(json: &[u8], max_depth: usize) -> Result<(), PayloadError> {
    let mut depth = 0usize;
    let mut i = 0;
    let mut in_string = false;
    while i < json.len() {
        let b = json[i];
        if in_string {
            match b {
                b'"' => in_string = false,
                b'\\' => {
                    if json.get(i + 1) == Some(&b'u') {
                        let unit = hex4(json, i + 2);
                        match unit {
                            Some(0xD800..=0xDBFF) => {
                                let low = (json.get(i + 6) == Some(&b'\\')
                                    && json.get(i + 7) == Some(&b'u'))
                                .then(|| hex4(json, i + 8))
                                .flatten();
                                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                                    return Err(lone(json, i));
                                }
                                i += 12;
                                continue;
                            }
                            Some(0xDC00..=0xDFFF) => return Err(lone(json, i)),
                            _ => {}
                        }
                    }
                    i += 2;
                    continue;
                }
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max_depth {
                        return Err(PayloadError::TooDeep { limit: max_depth });
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b'-' | b'0'..=b'9' => {
                    let end = json[i..]
                        .iter()
                        .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                        .map_or(json.len(), |n| i + n);
                    check_number(&json[i..end])?;
                    i = end;
                    continue;
                }
                _ => {}
            }
        }
        i += 1;
    }
    Ok(())
}

/// Only an exponent or some 309 digits can take a JSON number past `f64::MAX`, so the
/// common number is not parsed at all.
fn check_number(number: &[u8]) -> Result<(), PayloadError> {
    if number.len() < 300 && !number.iter().any(|b| matches!(b, b'e' | b'E')) {
        return Ok(());
    }
    let text = std::str::from_utf8(number).unwrap_or_default();
    match text.parse::<f64>() {
        Ok(value) if value.is_infinite() => {
            let shown: String = text.chars().take(40).collect();
            Err(PayloadError::NumberOutOfRange(shown))
        }
        // Not a number (invalid JSON): the parser says so.
        _ => Ok(()),
    }
}

fn hex4(json: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(json.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

fn lone(json: &[u8], at: usize) -> PayloadError {
    let end = (at + 6).min(json.len());
    PayloadError::LoneSurrogate(String::from_utf8_lossy(&json[at..end]).into_owned())
}

impl Payload {
    /// Validates `json` as a single JSON value (nesting at most [`DEFAULT_MAX_DEPTH`], no
    /// lone surrogates) and stores it compacted.
    pub fn from_json(json: &[u8]) -> Result<Self, PayloadError> {
        Self::from_json_with_depth(json, DEFAULT_MAX_DEPTH)
    }

    /// [`Payload::from_json`] with another nesting limit.
    pub fn from_json_with_depth(json: &[u8], max_depth: usize) -> Result<Self, PayloadError> {
        // Checked separately: serde_json skips over the bytes of strings it is told to ignore
        // without validating them, and `as_str` relies on UTF-8.
        std::str::from_utf8(json).map_err(|_| PayloadError::InvalidUtf8)?;
        check_json_shape(json, max_depth)?;
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
    fn deep_nesting_is_refused_without_recursion() {
        let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
        assert!(matches!(
            Payload::from_json(deep.as_bytes()),
            Err(PayloadError::TooDeep { limit: 64 })
        ));
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(Payload::from_json(ok.as_bytes()).is_ok());
        let over = format!("{}{}", "{\"a\":".repeat(65), "}".repeat(65));
        assert!(Payload::from_json(over.replace(":}", ":1}").as_bytes()).is_err());
        // Brackets inside strings do not count.
        assert!(Payload::from_json(format!("\"{}\"", "[".repeat(100)).as_bytes()).is_ok());
    }

    #[test]
    fn lone_surrogates_are_refused_and_pairs_kept() {
        for bad in [
            r#""\ud800""#,
            r#""\uDC00""#,
            r#"["\ud83d x"]"#,
            r#""\ud83d\u0041""#,
        ] {
            assert!(
                matches!(
                    Payload::from_json(bad.as_bytes()),
                    Err(PayloadError::LoneSurrogate(_))
                ),
                "{bad}"
            );
        }
        let pair = Payload::from_json(br#""\ud83d\ude00 \u00e9 \\ud800""#).unwrap();
        assert_eq!(pair.plain_text(), "\u{1F600} \u{e9} \\ud800");
    }

    #[test]
    fn numbers_past_a_float_are_refused_and_the_rest_kept() {
        // The fuzzer's find: serde_json skipped it, then refused it in every subscriber.
        let found = b"{\"op\":\"pubt\",\"data\":[\n\n1111111111117e471]}";
        assert!(matches!(
            check_json_shape(found, 8),
            Err(PayloadError::NumberOutOfRange(n)) if n == "1111111111117e471"
        ));
        let huge_integer = "9".repeat(400);
        for bad in ["1e400", "-1E309", "[0, 2.5e+308]", huge_integer.as_str()] {
            assert!(
                matches!(
                    Payload::from_json(bad.as_bytes()),
                    Err(PayloadError::NumberOutOfRange(_))
                ),
                "{bad}"
            );
        }
        let long_integer = "9".repeat(300);
        for good in [
            "1e308",
            "-1.7e308",
            "1e-400",
            "0",
            "-0.5",
            long_integer.as_str(),
            "\"1e999\"",
        ] {
            let payload = Payload::from_json(good.as_bytes()).unwrap();
            serde_json::from_slice::<serde_json::Value>(payload.json()).unwrap();
        }
    }

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
