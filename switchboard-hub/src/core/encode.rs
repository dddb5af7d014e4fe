//! How a [`Message`] is written on the wire: the `/ws` envelope, the chat room's plain text,
//! SSE events and the `{"id","ts","data"}` entry of history pages and long polls. Each form
//! is computed once per message, by the first subscriber that needs it, and shared as
//! `Bytes` by the others.

use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::Bytes;
use switchboard::{PreparedMessage, Utf8Bytes};

use super::{Message, MessageId, Payload};

/// The wire forms of one message computed so far (see [`Message`]).
#[derive(Debug, Default)]
pub(super) struct Encodings {
    ws_envelope: OnceLock<PreparedMessage>,
    plain_text: OnceLock<PreparedMessage>,
    sse_json: OnceLock<Bytes>,
    sse_plain: OnceLock<Bytes>,
    sse_message: OnceLock<Bytes>,
}

/// One message in a list, `{"id":…,"ts":…,"data":…}` (see [`Message::entry`]).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use switchboard_hub::core::{ChannelName, Epoch, Message, MessageId, Payload};
///
/// let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000);
/// let (chat, epoch) = (ChannelName::new("chat")?, Epoch::new(5).unwrap());
/// let msg = Message::new(chat, epoch, MessageId::new(3), Payload::text("hi"), at);
/// let json = serde_json::to_string(&msg.entry())?;
/// assert_eq!(json, r#"{"id":3,"ts":1000,"data":"hi"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, serde::Serialize)]
pub struct Entry<'a> {
    /// Its id within the channel.
    pub id: MessageId,
    /// When the hub accepted it, [`Message::published_ms`].
    pub ts: u64,
    /// Its payload.
    pub data: &'a Payload,
}

/// How the `data:` lines of an SSE event carry the payload.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use switchboard_hub::core::{ChannelName, Epoch, Message, MessageId, Payload, SseFormat};
///
/// let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000);
/// let (chat, epoch) = (ChannelName::new("chat")?, Epoch::new(5).unwrap());
/// let msg = Message::new(chat, epoch, MessageId::new(3), Payload::text("hi"), at);
/// assert_eq!(msg.sse_event(SseFormat::Json), "id: 5:3\ndata: \"hi\"\n\n");
/// assert_eq!(msg.sse_event(SseFormat::Plain), "id: 5:3\ndata: hi\n\n");
/// assert_eq!(
///     msg.sse_event(SseFormat::Message),
///     "id: 5:3\ndata: {\"id\":3,\"ts\":1000,\"data\":\"hi\"}\n\n"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseFormat {
    /// The payload's JSON text, exact.
    Json,
    /// [`Payload::plain_text`], what a plain `new EventSource()` chat page wants to show.
    Plain,
    /// `{"id":…,"ts":…,"data":…}`, the shape of a history entry: the payload with the
    /// hub's acceptance time, which the two other forms have no room for (what the browser
    /// client asks for).
    Message,
}

impl Message {
    /// The `/ws` JSON protocol frame:
    /// `{"op":"message","channel":…,"id":…,"ts":…,"data":…}`.
    pub fn ws_envelope(&self) -> Bytes {
        payload(self.ws_envelope_frame())
    }

    /// [`Message::ws_envelope`] as a WebSocket frame encoded once for every subscriber.
    pub fn ws_envelope_frame(&self) -> &PreparedMessage {
        self.encoded().ws_envelope.get_or_init(|| {
            // Channel names need no JSON escaping (see `ChannelName`), and the payload is
            // already compact JSON, so the envelope is spliced, not serialised.
            let channel = self.channel().as_str();
            let data = self.data().json();
            let mut out = Vec::with_capacity(data.len() + channel.len() + 64);
            out.extend_from_slice(b"{\"op\":\"message\",\"channel\":\"");
            out.extend_from_slice(channel.as_bytes());
            out.extend_from_slice(b"\",\"id\":");
            out.extend_from_slice(self.id().to_string().as_bytes());
            out.extend_from_slice(b",\"ts\":");
            out.extend_from_slice(self.published_ms().to_string().as_bytes());
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(data);
            out.push(b'}');
            prepared_text(Bytes::from(out))
        })
    }

    /// This message as a history page, a long poll and a `format=message` SSE event list
    /// it: `{"id":…,"ts":…,"data":…}`.
    pub fn entry(&self) -> Entry<'_> {
        Entry {
            id: self.id(),
            ts: self.published_ms(),
            data: self.data(),
        }
    }

    /// The payload as plain UTF-8 text, as the seeds' chat room (`/ws/{channel}`) sends it.
    pub fn plain_text(&self) -> Bytes {
        payload(self.plain_text_frame())
    }

    /// [`Message::plain_text`] as a WebSocket frame encoded once for every subscriber.
    pub fn plain_text_frame(&self) -> &PreparedMessage {
        self.encoded()
            .plain_text
            .get_or_init(|| prepared_text(Bytes::from(self.data().plain_text().into_owned())))
    }

    /// The whole SSE event, `id: EPOCH:ID` line, `data:` lines and the blank line.
    pub fn sse_event(&self, format: SseFormat) -> Bytes {
        let cells = self.encoded();
        let cell = match format {
            SseFormat::Json => &cells.sse_json,
            SseFormat::Plain => &cells.sse_plain,
            SseFormat::Message => &cells.sse_message,
        };
        cell.get_or_init(|| {
            let text = match format {
                SseFormat::Json => Cow::Borrowed(self.data().as_str()),
                SseFormat::Plain => self.data().plain_text(),
                // Serialising ids, integers and compact JSON cannot fail.
                SseFormat::Message => {
                    Cow::Owned(serde_json::to_string(&self.entry()).unwrap_or_default())
                }
            };
            Bytes::from(sse_event(None, &self.cursor().to_string(), &text))
        })
        .clone()
    }
}

/// Formats one Server-Sent Event. Every line break in `data` (CR, LF or CRLF, all of which
/// the SSE parser treats as line ends) starts a new `data:` line, so the browser's
/// `event.data` gets the text back with `\n` separators.
///
/// ```
/// use switchboard_hub::core::sse_event;
///
/// assert_eq!(sse_event(None, "5:3", "hi"), "id: 5:3\ndata: hi\n\n");
/// assert_eq!(
///     sse_event(Some("join"), "", "two\r\nlines"),
///     "event: join\ndata: two\ndata: lines\n\n"
/// );
/// ```
pub fn sse_event(event: Option<&str>, id: &str, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + id.len() + 16);
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    if !id.is_empty() {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    let mut rest = data;
    loop {
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        out.push_str("data: ");
        out.push_str(&rest[..end]);
        out.push('\n');
        if end == rest.len() {
            break;
        }
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    out.push('\n');
    out
}

/// A text frame for bytes the hub produced (JSON or the payload's text: always UTF-8; a
/// failure would be a hub bug, and then the lossy form is still valid text).
fn prepared_text(bytes: Bytes) -> PreparedMessage {
    let text = Utf8Bytes::try_from_bytes(bytes.clone())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned().into());
    PreparedMessage::new(switchboard::Message::Text(text))
}

/// The payload bytes of a prepared frame, shared (no copy).
fn payload(prepared: &PreparedMessage) -> Bytes {
    match prepared.message() {
        switchboard::Message::Text(text) => text.as_bytes().clone(),
        switchboard::Message::Binary(bytes) => bytes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::core::{ChannelName, Epoch};

    fn msg(data: Payload) -> Message {
        Message::new(
            ChannelName::new("chat").unwrap(),
            Epoch::new(7).unwrap(),
            MessageId::new(3),
            data,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456),
        )
    }

    #[test]
    fn ws_envelope_is_pinned_and_shared() {
        let m = msg(Payload::from_json(br#"{"b":[1,"x"],"a":null}"#).unwrap());
        let env = m.ws_envelope();
        assert_eq!(
            &env[..],
            br#"{"op":"message","channel":"chat","id":3,"ts":1700000000123,"data":{"b":[1,"x"],"a":null}}"#
        );
        // Encoded once: the second call hands out the same allocation.
        assert_eq!(m.ws_envelope().as_ptr(), env.as_ptr());
    }

    #[test]
    fn websocket_frames_are_encoded_once_for_all_subscribers() {
        let m = msg(Payload::text("hi"));
        let (a, b) = (m.ws_envelope_frame().clone(), m.ws_envelope_frame().clone());
        assert_eq!(a.frame().as_ptr(), b.frame().as_ptr());
        // A server text frame: FIN + opcode 1, unmasked length, then the envelope.
        let env = m.ws_envelope();
        assert_eq!(&a.frame()[..2], &[0x81, env.len() as u8]);
        assert_eq!(&a.frame()[2..], &env[..]);
        let plain = m.plain_text_frame();
        assert_eq!(&plain.frame()[..], &[0x81, 2, b'h', b'i']);
    }

    #[test]
    fn entries_list_id_time_and_data() {
        let m = msg(Payload::text("x"));
        assert_eq!(
            serde_json::to_string(&m.entry()).unwrap(),
            r#"{"id":3,"ts":1700000000123,"data":"x"}"#
        );
    }

    #[test]
    fn plain_text_unwraps_strings_only() {
        assert_eq!(
            &msg(Payload::text("héllo")).plain_text()[..],
            "héllo".as_bytes()
        );
        assert_eq!(
            &msg(Payload::from_json(b"[1]").unwrap()).plain_text()[..],
            b"[1]"
        );
    }

    #[test]
    fn sse_event_splits_lines() {
        let m = msg(Payload::text("a\nb\r\nc\rd"));
        assert_eq!(
            &m.sse_event(SseFormat::Plain)[..],
            b"id: 7:3\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(
            &m.sse_event(SseFormat::Json)[..],
            b"id: 7:3\ndata: \"a\\nb\\r\\nc\\rd\"\n\n"
        );
        assert_eq!(
            &m.sse_event(SseFormat::Message)[..],
            b"id: 7:3\ndata: {\"id\":3,\"ts\":1700000000123,\"data\":\"a\\nb\\r\\nc\\rd\"}\n\n"
        );
        assert_eq!(sse_event(Some("reset"), "", ""), "event: reset\ndata: \n\n");
    }
}
