//! The `/ws` JSON protocol's parser: one client frame in, a [`Command`] or a [`Refusal`] out.
//!
//! Public so that it can be fuzzed on its own (`fuzz/fuzz_targets/ws_command.rs`). Parsing
//! is loose on purpose: each problem gets its own error, and the request's `ref` is kept
//! whenever the frame is JSON at all, so the client can tell which command was refused.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::error::ApiError;
use crate::core::{check_json_shape, Cursor, CursorError, Epoch, PayloadError};

/// One parsed client frame. Strings may contain JSON escapes (`"ch\u0061t"`), hence `Cow`.
///
/// ```
/// use switchboard_hub::transport::command::parse;
///
/// let frame = r#"{"op":"subscribe","channel":"chat","since":"5:41","ref":7}"#;
/// let command = parse(frame, 64).unwrap();
/// assert_eq!(command.op, "subscribe");
/// assert_eq!(command.channel.as_deref(), Some("chat"));
/// assert_eq!(command.since.map(|c| c.to_string()).as_deref(), Some("5:41"));
/// assert_eq!(command.reference.map(|r| r.get()), Some("7"));
/// ```
#[derive(Debug)]
pub struct Command<'a> {
    /// `subscribe`, `unsubscribe`, `publish`, `ping`, `auth`, or anything else (refused
    /// later as an unknown op).
    pub op: Cow<'a, str>,
    /// The channel named, if any (not validated yet).
    pub channel: Option<Cow<'a, str>>,
    /// `since`, combined with a separate `epoch`.
    pub since: Option<Cursor>,
    /// The payload of a `publish`, exactly as sent.
    pub data: Option<&'a RawValue>,
    /// The token of an `auth` command.
    pub token: Option<Cow<'a, str>>,
    /// The request's `ref`, echoed in the answer.
    pub reference: Option<&'a RawValue>,
    /// `subscribe`: whether to send presence snapshots and join/leave frames.
    pub presence: bool,
    /// `subscribe`: the client's info in the channel's presence, exactly as sent.
    pub info: Option<&'a RawValue>,
    /// `presence`: most entries listed.
    pub limit: Option<usize>,
}

/// A frame that is not a usable command: the error to answer, and the `ref` when it could
/// be read.
///
/// ```
/// use switchboard_hub::transport::command::parse;
///
/// let refusal = parse(r#"{"op":"subscribe","channel":"chat","since":"x","ref":"a"}"#, 64)
///     .unwrap_err();
/// assert_eq!(refusal.error.code(), "invalid_cursor");
/// assert_eq!(refusal.reference.map(|r| r.get()), Some(r#""a""#)); // echoed to the client
/// assert_eq!(refusal.channel.as_deref(), Some("chat"));
/// ```
#[derive(Debug)]
pub struct Refusal<'a> {
    /// What to answer.
    pub error: ApiError,
    /// The frame's `ref`, if the frame was a JSON object with one.
    pub reference: Option<&'a RawValue>,
    /// The frame's `channel`, if it could be read.
    pub channel: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct Loose<'a> {
    #[serde(default, borrow)]
    op: Option<&'a RawValue>,
    #[serde(default, borrow)]
    channel: Option<&'a RawValue>,
    #[serde(default, borrow)]
    since: Option<&'a RawValue>,
    #[serde(default, borrow)]
    epoch: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    token: Option<&'a RawValue>,
    #[serde(default, rename = "ref", borrow)]
    reference: Option<&'a RawValue>,
    #[serde(default, borrow)]
    presence: Option<&'a RawValue>,
    #[serde(default, borrow)]
    info: Option<&'a RawValue>,
    #[serde(default, borrow)]
    limit: Option<&'a RawValue>,
}

/// Parses one client frame; `max_depth` bounds the nesting of the whole frame (the
/// envelope is one level, so a payload may nest `max_depth - 1`).
///
/// ```
/// use switchboard_hub::transport::command::parse;
///
/// let publish = parse(r#"{"op":"publish","channel":"chat","data":{"text":"hi"}}"#, 64).unwrap();
/// assert_eq!(publish.data.map(|d| d.get()), Some(r#"{"text":"hi"}"#));
/// assert_eq!(parse("not json", 64).unwrap_err().error.code(), "invalid_message");
/// ```
pub fn parse<'a>(text: &'a str, max_depth: usize) -> Result<Command<'a>, Refusal<'a>> {
    let refuse = |error, reference, channel| Refusal {
        error,
        reference,
        channel,
    };
    let loose: Loose<'_> = serde_json::from_str(text).map_err(|e| {
        refuse(
            ApiError::BadMessage(format!("not a protocol frame: {e}")),
            None,
            None,
        )
    })?;
    let reference = loose.reference;
    // serde_json skips what it does not keep without recursing, so the frame parsed
    // above even when nested deep; now refuse it, with its `ref`.
    if let Err(e) = check_json_shape(text.as_bytes(), max_depth) {
        let message = match e {
            PayloadError::TooDeep { .. } => {
                format!("frame nests deeper than {max_depth} levels")
            }
            other => other.to_string(),
        };
        return Err(refuse(ApiError::BadMessage(message), reference, None));
    }
    let string =
        |raw: Option<&'a RawValue>, name: &'static str| -> Result<Option<Cow<'a, str>>, ApiError> {
            raw.map(|r| {
                // Borrowed when there is no escape to decode (the usual case), else owned.
                match serde_json::from_str::<&'a str>(r.get()) {
                    Ok(s) => Ok(Cow::Borrowed(s)),
                    Err(_) => serde_json::from_str::<String>(r.get()).map(Cow::Owned),
                }
                .map_err(|_| ApiError::BadParam {
                    name,
                    message: "expected a string".into(),
                })
            })
            .transpose()
        };
    let channel = string(loose.channel, "channel").map_err(|e| refuse(e, reference, None))?;
    let op = string(loose.op, "op")
        .map_err(|e| refuse(e, reference, channel.clone()))?
        .ok_or_else(|| {
            refuse(
                ApiError::BadMessage("not a protocol frame: missing field `op`".into()),
                reference,
                channel.clone(),
            )
        })?;
    let token = string(loose.token, "token").map_err(|e| refuse(e, reference, channel.clone()))?;
    let epoch = loose
        .epoch
        .map(|r| serde_json::from_str::<Epoch>(r.get()))
        .transpose()
        .map_err(|_| {
            refuse(
                ApiError::BadCursor(CursorError::EpochOutOfRange),
                reference,
                channel.clone(),
            )
        })?;
    let since = loose
        .since
        .map(|r| serde_json::from_str::<Cursor>(r.get()))
        .transpose()
        .map_err(|_| {
            refuse(
                ApiError::BadCursor(CursorError::Malformed),
                reference,
                channel.clone(),
            )
        })?
        .map(|mut c| {
            c.epoch = c.epoch.or(epoch);
            c
        });
    let presence = loose
        .presence
        .map(|r| serde_json::from_str::<bool>(r.get()))
        .transpose()
        .map_err(|_| {
            let error = ApiError::BadParam {
                name: "presence",
                message: "expected true or false".into(),
            };
            refuse(error, reference, channel.clone())
        })?
        .unwrap_or(false);
    let limit = loose
        .limit
        .map(|r| serde_json::from_str::<usize>(r.get()))
        .transpose()
        .map_err(|_| {
            let error = ApiError::BadParam {
                name: "limit",
                message: "expected a non-negative integer".into(),
            };
            refuse(error, reference, channel.clone())
        })?;
    Ok(Command {
        op,
        channel,
        since,
        data: loose.data,
        token,
        reference,
        presence,
        info: loose.info,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_strings_are_parsed() {
        let c = parse(r#"{"op":"sub\u0073cribe","channel":"ch\u0061t"}"#, 64).unwrap();
        assert_eq!((&*c.op, c.channel.as_deref()), ("subscribe", Some("chat")));
    }

    #[test]
    fn a_bad_since_is_an_invalid_cursor_that_keeps_the_ref() {
        for since in [r#""x:y""#, "-1", "[1]", r#""0:5""#] {
            let text = format!(r#"{{"op":"subscribe","channel":"c","since":{since},"ref":9}}"#);
            let r = parse(&text, 64).unwrap_err();
            assert_eq!(r.error.code(), "invalid_cursor", "{since}");
            assert_eq!(r.reference.map(RawValue::get), Some("9"));
            assert_eq!(r.channel.as_deref(), Some("c"));
        }
    }

    #[test]
    fn depth_and_surrogates_are_refused_before_parsing() {
        let deep = format!(
            r#"{{"op":"publish","channel":"c","data":{}{}}}"#,
            "[".repeat(30_000),
            "]".repeat(30_000)
        );
        assert_eq!(
            parse(&deep, 64).unwrap_err().error.code(),
            "invalid_message"
        );
        let lone = r#"{"op":"publish","channel":"c","data":"\ud800","ref":1}"#;
        assert_eq!(parse(lone, 64).unwrap_err().error.code(), "invalid_message");
    }

    #[test]
    fn a_wrongly_typed_field_keeps_the_ref() {
        let r = parse(r#"{"op":1,"ref":"r"}"#, 64).unwrap_err();
        assert_eq!(r.reference.map(RawValue::get), Some(r#""r""#));
    }
}
