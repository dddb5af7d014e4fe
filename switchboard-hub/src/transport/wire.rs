//! JSON shapes shared by the REST history endpoint and long polling.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use crate::core::{ChannelName, Cursor, Entry, Epoch, Message, ResetReason};

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

/// A JSON response with `Cache-Control: no-store` (every answer here is live data).
pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut res = (status, bytes).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
