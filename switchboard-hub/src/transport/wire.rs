//! The JSON bodies the HTTP transports answer with (REST, long polling, SSE `data:`), and
//! the pieces they share with the `/ws` frames ([`super::ws::frame`]): the presence view
//! and the reset notice. Every body is a type here; no transport builds JSON inline.
//!
//! Key order. Most of these bodies were once built as `serde_json::Value`, whose object
//! map keeps keys sorted (serde_json is built without `preserve_order`), so clients have
//! always seen their members in alphabetical order. [`sorted_json`] keeps those bytes as
//! they were; the golden tests below and in `ws::frame` pin them. [`MessageList`] was
//! always serialised directly, in field order, and still is.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use super::conn::ConnectionInfo;
use crate::broker::{BrokerHealth, ChannelInfo, PresenceList};
use crate::core::{
    ChannelName, Cursor, Entry, Epoch, Message, MessageId, PresenceCounts, PresenceEntry,
    PresenceEvent, ResetReason,
};

/// Why a cursor was not honoured: `{"reason":"expired","message":"…"}`.
#[derive(serde::Serialize)]
pub(crate) struct WireReset {
    pub(crate) reason: &'static str,
    pub(crate) message: &'static str,
}

impl From<ResetReason> for WireReset {
    fn from(r: ResetReason) -> Self {
        Self {
            reason: r.code(),
            message: r.describe(),
        }
    }
}

/// A gap in delivery, as `/ws` (`{"op":"reset","channel":…,…}`) and SSE (`event: reset`)
/// report it: `{"epoch":…,"reason":…,"message":…,"last":…}`; messages after `last` follow.
#[derive(serde::Serialize)]
pub(crate) struct ResetNotice {
    pub(crate) epoch: Epoch,
    #[serde(flatten)]
    pub(crate) why: WireReset,
    pub(crate) last: MessageId,
}

impl ResetNotice {
    pub(crate) fn new(epoch: Epoch, reason: ResetReason, last: MessageId) -> Self {
        Self {
            epoch,
            why: reason.into(),
            last,
        }
    }
}

/// A list of messages and where to continue:
/// `{"channel":…,"epoch":…,"messages":[…],"next":"EPOCH:ID","reset":{…}?}`.
#[derive(serde::Serialize)]
pub(crate) struct MessageList<'a> {
    pub(crate) channel: &'a ChannelName,
    pub(crate) epoch: Epoch,
    pub(crate) messages: Vec<Entry<'a>>,
    pub(crate) next: Cursor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) more: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reset: Option<WireReset>,
}

impl<'a> MessageList<'a> {
    pub(crate) fn new(
        channel: &'a ChannelName,
        epoch: Epoch,
        messages: &'a [Arc<Message>],
        next: Cursor,
    ) -> Self {
        Self {
            channel,
            epoch,
            messages: messages.iter().map(|m| m.entry()).collect(),
            next,
            more: None,
            reset: None,
        }
    }
}

/// A long poll's answer with `?presence=1`: the list and the channel's presence.
#[derive(serde::Serialize)]
pub(crate) struct PollWithPresence<'a> {
    #[serde(flatten)]
    pub(crate) list: MessageList<'a>,
    pub(crate) presence: PresenceView<PresenceList>,
}

/// Presence news of a channel, `{"channel":…,…}` with the members of a [`PresenceList`]
/// (a snapshot) or of a [`PresenceEntry`] (a join or leave): what SSE, REST and long polls
/// send, and what `/ws` and the chat room tag with their `op` or `event`. `T` is the
/// list or entry, owned or borrowed.
#[derive(serde::Serialize)]
pub(crate) struct PresenceView<T: serde::Serialize> {
    pub(crate) channel: ChannelName,
    #[serde(flatten)]
    pub(crate) news: T,
}

impl PresenceView<Arc<PresenceEntry>> {
    /// The entry that joined or left in `event`.
    pub(crate) fn of_event(channel: &ChannelName, event: &PresenceEvent) -> Self {
        Self {
            channel: channel.clone(),
            news: Arc::clone(event.entry()),
        }
    }

    /// The `join` or `leave` frame of `event`, in whichever frame type (`/ws`'s
    /// `ServerFrame` or the chat room's `RoomEvent`) its two constructors make.
    pub(crate) fn frame<F>(
        channel: &ChannelName,
        event: &PresenceEvent,
        join: impl FnOnce(Self) -> F,
        leave: impl FnOnce(Self) -> F,
    ) -> F {
        let view = Self::of_event(channel, event);
        match event {
            PresenceEvent::Join(_) => join(view),
            PresenceEvent::Leave(_) => leave(view),
        }
    }
}

/// `POST /api/channels/{channel}/messages`:
/// `{"channel":…,"cursor":"EPOCH:ID","epoch":…,"id":…,"ts":…}`.
#[derive(serde::Serialize)]
pub(crate) struct PublishAnswer<'a> {
    pub(crate) channel: &'a ChannelName,
    pub(crate) id: MessageId,
    pub(crate) epoch: Epoch,
    pub(crate) ts: u64,
    pub(crate) cursor: Cursor,
}

/// `GET /api/channels`: `{"channels":[…]}`.
#[derive(serde::Serialize)]
pub(crate) struct ChannelList<'a> {
    pub(crate) channels: Vec<ListedChannel<'a>>,
}

/// A channel in the list, with its presence counts (where presence is on).
#[derive(serde::Serialize)]
pub(crate) struct ListedChannel<'a> {
    #[serde(flatten)]
    pub(crate) info: &'a ChannelInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) presence: Option<PresenceCounts>,
}

/// `GET /healthz`: `{"broker":{…},"status":"ok"|"degraded"}`.
#[derive(serde::Serialize)]
pub(crate) struct Health {
    pub(crate) status: &'static str,
    pub(crate) broker: BrokerHealth,
}

/// `GET /api/admin/connections`: `{"connections":[…]}`.
#[derive(serde::Serialize)]
pub(crate) struct ConnectionList {
    pub(crate) connections: Vec<ConnectionInfo>,
}

/// `POST /api/admin/disconnect`: `{"disconnected":N}`.
#[derive(serde::Serialize)]
pub(crate) struct Disconnected {
    pub(crate) disconnected: usize,
}

/// Every error answer: `{"error":{"code":…,"message":…}}`.
#[derive(serde::Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub(crate) error: ErrorDetail<'a>,
}

/// The inside of an [`ErrorBody`], and of an SSE `event: error`.
#[derive(serde::Serialize)]
pub(crate) struct ErrorDetail<'a> {
    pub(crate) code: &'a str,
    pub(crate) message: String,
}

/// `value` as JSON with every object's keys in alphabetical order, nested ones included (see
/// the module's doc: the order these bodies have always had).
pub(crate) fn sorted_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    sorted_value(value)
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_default()
}

/// `value` as a `serde_json::Value` (objects sorted by key); for frames that add members.
pub(crate) fn sorted_value<T: serde::Serialize>(
    value: &T,
) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(value)
}

/// A JSON response with `Cache-Control: no-store` (every answer here is live data), its
/// body serialised in field order.
pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => bytes_response(status, bytes),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// [`json_response`] with the body's keys sorted ([`sorted_json`]).
pub(crate) fn sorted_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    bytes_response(status, sorted_json(body))
}

fn bytes_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut res = (status, bytes).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerState;

    fn chat() -> ChannelName {
        ChannelName::new("chat").unwrap()
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    /// The bodies exactly as clients have always received them (plus `ts`).
    #[test]
    fn golden_http_bodies() {
        let channel = chat();
        let epoch = Epoch::new(8812345).unwrap();
        let published = PublishAnswer {
            channel: &channel,
            id: MessageId::new(43),
            epoch,
            ts: 1764766800456,
            cursor: Cursor::new(epoch, MessageId::new(43)),
        };
        assert_eq!(
            text(sorted_json(&published)),
            r#"{"channel":"chat","cursor":"8812345:43","epoch":8812345,"id":43,"ts":1764766800456}"#
        );
        let health = Health {
            status: "degraded",
            broker: BrokerHealth {
                kind: "redis",
                state: BrokerState::Down,
                detail: Some("gone".into()),
            },
        };
        assert_eq!(
            text(sorted_json(&health)),
            r#"{"broker":{"detail":"gone","kind":"redis","state":"down"},"status":"degraded"}"#
        );
        let error = ErrorBody {
            error: ErrorDetail {
                code: "not_found",
                message: "no such path".into(),
            },
        };
        assert_eq!(
            text(sorted_json(&error)),
            r#"{"error":{"code":"not_found","message":"no such path"}}"#
        );
        assert_eq!(
            text(sorted_json(&Disconnected { disconnected: 2 })),
            r#"{"disconnected":2}"#
        );
        let reset = ResetNotice::new(epoch, ResetReason::Expired, MessageId::new(1300));
        assert_eq!(
            text(sorted_json(&reset)),
            r#"{"epoch":8812345,"last":1300,"message":"history no longer reaches back that far","reason":"expired"}"#
        );
        let list = MessageList::new(&channel, epoch, &[], Cursor::new(epoch, MessageId::ZERO));
        assert_eq!(
            text(serde_json::to_vec(&list).unwrap()),
            r#"{"channel":"chat","epoch":8812345,"messages":[],"next":"8812345:0"}"#
        );
    }
}
