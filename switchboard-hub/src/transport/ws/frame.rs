//! The frames the hub sends on `/ws` (the JSON protocol; see [`super::protocol`] for the
//! list and `docs/protocol.md` for the contract), and the presence frames of the chat room.
//!
//! One type per frame, built where it is sent and encoded here. `message` frames are not in
//! [`ServerFrame`]: they are the hot path, spliced once per message for every subscriber by
//! [`crate::core::Message::ws_envelope_frame`], with `op` first. The others keep the bytes
//! they always had: members in alphabetical order, `ref` included (see
//! [`crate::transport::wire`]'s note on key order), which the golden test pins.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use switchboard::{PreparedMessage, Utf8Bytes};

use crate::broker::PresenceList;
use crate::core::{ChannelName, Cursor, Epoch, MessageId, PresenceEntry, PresenceEvent};
use crate::transport::wire::{sorted_value, PresenceView, ResetNotice};

/// A `/ws` server frame other than `message`: `{"op":…,…}`.
#[derive(serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum ServerFrame {
    /// The answer to `subscribe`, before any message of the subscription.
    Subscribed {
        channel: ChannelName,
        epoch: Epoch,
        recovered: bool,
        cursor: Cursor,
        /// Whether join/leave frames follow.
        presence: bool,
    },
    /// A gap: the replay could not start at `since`, or the subscription fell behind.
    Reset {
        channel: ChannelName,
        #[serde(flatten)]
        notice: ResetNotice,
    },
    /// A publish went through.
    Ack {
        channel: ChannelName,
        id: MessageId,
        epoch: Epoch,
        ts: u64,
    },
    /// The subscription ended: asked for, or (with `reason`) a new token does not allow it.
    Unsubscribed {
        channel: ChannelName,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    /// A new token was taken; `exp` is its expiry (null: none).
    Authed { exp: Option<u64> },
    /// The answer to `ping`.
    Pong,
    /// A command failed, or (without `ref`) a subscription's broker is down or ended it.
    Error {
        code: &'static str,
        message: String,
        /// The channel named by the command, as written (it may be an invalid name).
        #[serde(skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    /// Who is in the channel.
    Presence(PresenceView<PresenceList>),
    /// A client joined the channel.
    Join(PresenceView<Arc<PresenceEntry>>),
    /// A client left the channel.
    Leave(PresenceView<Arc<PresenceEntry>>),
}

impl ServerFrame {
    /// The `join` or `leave` frame of `event`.
    pub(crate) fn presence_event(channel: &ChannelName, event: &PresenceEvent) -> Self {
        PresenceView::frame(channel, event, ServerFrame::Join, ServerFrame::Leave)
    }

    /// The frame's JSON, with the client's `ref` (as it sent it) when it answers a command.
    pub(crate) fn encode(&self, reference: Option<&RawValue>) -> Bytes {
        let Ok(mut value) = sorted_value(self) else {
            return Bytes::new();
        };
        if let (Some(r), Some(map)) = (reference, value.as_object_mut()) {
            let r = serde_json::from_str(r.get()).unwrap_or(serde_json::Value::Null);
            map.insert("ref".into(), r);
        }
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    }

    /// [`ServerFrame::encode`] without `ref`, as a text frame to queue.
    pub(crate) fn prepared(&self) -> Option<PreparedMessage> {
        prepared(self.encode(None))
    }
}

/// The chat room's presence frames (`/ws/{channel}?presence=1`): `{"event":…,"channel":…}`.
#[derive(serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum RoomEvent {
    /// Who is in the room.
    Presence(PresenceView<PresenceList>),
    /// A client joined.
    Join(PresenceView<Arc<PresenceEntry>>),
    /// A client left.
    Leave(PresenceView<Arc<PresenceEntry>>),
}

impl RoomEvent {
    /// The `join` or `leave` event of `event`.
    pub(crate) fn presence_event(channel: &ChannelName, event: &PresenceEvent) -> Self {
        PresenceView::frame(channel, event, RoomEvent::Join, RoomEvent::Leave)
    }

    /// As a text frame to queue.
    pub(crate) fn prepared(&self) -> Option<PreparedMessage> {
        prepared(Bytes::from(crate::transport::wire::sorted_json(self)))
    }
}

/// A text frame of JSON the hub produced (always UTF-8).
fn prepared(bytes: Bytes) -> Option<PreparedMessage> {
    Utf8Bytes::try_from_bytes(bytes)
        .ok()
        .map(|t| PreparedMessage::new(switchboard::Message::Text(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ClientId, PresenceCounts, ResetReason};

    fn text(bytes: Bytes) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Every frame exactly as clients have always received it (plus `ts` in `ack`).
    #[test]
    fn golden_frames() {
        let chat = ChannelName::new("chat").unwrap();
        let epoch = Epoch::new(8812345).unwrap();
        let reference: Box<RawValue> = serde_json::from_str(r#"{"b":1, "a":[2]}"#).unwrap();
        let cases: Vec<(ServerFrame, Option<&RawValue>, &str)> = vec![
            (
                ServerFrame::Subscribed {
                    channel: chat.clone(),
                    epoch,
                    recovered: true,
                    cursor: Cursor::new(epoch, MessageId::new(41)),
                    presence: false,
                },
                Some(&reference),
                r#"{"channel":"chat","cursor":"8812345:41","epoch":8812345,"op":"subscribed","presence":false,"recovered":true,"ref":{"a":[2],"b":1}}"#,
            ),
            (
                ServerFrame::Reset {
                    channel: chat.clone(),
                    notice: ResetNotice::new(epoch, ResetReason::Expired, MessageId::new(1300)),
                },
                None,
                r#"{"channel":"chat","epoch":8812345,"last":1300,"message":"history no longer reaches back that far","op":"reset","reason":"expired"}"#,
            ),
            (
                ServerFrame::Ack {
                    channel: chat.clone(),
                    id: MessageId::new(43),
                    epoch,
                    ts: 1764766800456,
                },
                Some(&reference),
                r#"{"channel":"chat","epoch":8812345,"id":43,"op":"ack","ref":{"a":[2],"b":1},"ts":1764766800456}"#,
            ),
            (
                ServerFrame::Unsubscribed {
                    channel: chat.clone(),
                    reason: None,
                },
                None,
                r#"{"channel":"chat","op":"unsubscribed"}"#,
            ),
            (
                ServerFrame::Unsubscribed {
                    channel: chat.clone(),
                    reason: Some("the new token does not allow this channel"),
                },
                None,
                r#"{"channel":"chat","op":"unsubscribed","reason":"the new token does not allow this channel"}"#,
            ),
            (
                ServerFrame::Authed { exp: None },
                None,
                r#"{"exp":null,"op":"authed"}"#,
            ),
            (ServerFrame::Pong, None, r#"{"op":"pong"}"#),
            (
                ServerFrame::Error {
                    code: "invalid_channel",
                    message: "invalid channel name".into(),
                    channel: Some("a/b".into()),
                },
                None,
                r#"{"channel":"a/b","code":"invalid_channel","message":"invalid channel name","op":"error"}"#,
            ),
        ];
        for (frame, reference, want) in cases {
            assert_eq!(text(frame.encode(reference)), want);
        }

        let entry = PresenceEntry {
            client: ClientId::new("q81x").unwrap(),
            user: None,
            info: None,
        };
        let list = PresenceList {
            counts: PresenceCounts {
                clients: 1,
                users: 0,
            },
            entries: vec![Arc::new(entry.clone())],
            truncated: false,
        };
        let snapshot = ServerFrame::Presence(PresenceView {
            channel: chat.clone(),
            news: list,
        });
        assert_eq!(
            text(snapshot.encode(None)),
            r#"{"channel":"chat","clients":1,"entries":[{"client":"q81x"}],"op":"presence","truncated":false,"users":0}"#
        );
        let join = PresenceEvent::Join(Arc::new(entry));
        assert_eq!(
            text(ServerFrame::presence_event(&chat, &join).encode(None)),
            r#"{"channel":"chat","client":"q81x","op":"join"}"#
        );
        let room = RoomEvent::presence_event(&chat, &join);
        assert_eq!(
            text(Bytes::from(crate::transport::wire::sorted_json(&room))),
            r#"{"channel":"chat","client":"q81x","event":"join"}"#
        );
    }
}
