//! A published message and the wire forms it is sent in, each encoded once.

use std::sync::OnceLock;
use std::time::SystemTime;

use bytes::Bytes;
use switchboard::{PreparedMessage, Utf8Bytes};

use super::{ChannelName, Cursor, Epoch, MessageId, Payload};

/// One message as stored in history and handed to every subscriber.
///
/// Messages are shared behind an `Arc`: history and every subscriber queue hold the same one.
/// The wire forms ([`Message::ws_envelope`], [`Message::plain_text`], [`Message::sse_event`])
/// are computed by the first subscriber that needs them and then shared as `Bytes` by all the
/// others, so fan-out to 10 000 WebSocket subscribers encodes the envelope once, not 10 000
/// times.
#[derive(Debug)]
pub struct Message {
    channel: ChannelName,
    epoch: Epoch,
    id: MessageId,
    data: Payload,
    published_at: SystemTime,
    ws_envelope: OnceLock<PreparedMessage>,
    plain_text: OnceLock<PreparedMessage>,
    sse_json: OnceLock<Bytes>,
    sse_plain: OnceLock<Bytes>,
    sse_message: OnceLock<Bytes>,
}

/// One message in a list, `{"id":…,"ts":…,"data":…}` (see [`Message::entry`]).
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseFormat {
    /// The payload's JSON text, exact (what the browser client asks for).
    Json,
    /// [`Payload::plain_text`], what a plain `new EventSource()` chat page wants to show.
    Plain,
    /// `{"id":…,"ts":…,"data":…}`, the shape of a history entry: the payload with the
    /// hub's acceptance time, which the two other forms have no room for.
    Message,
}

impl Message {
    /// A message; `published_at` is when the hub accepted it, by the wall clock (messages
    /// cross processes through a networked broker, where only wall-clock time means the same
    /// thing on every node: history age and fan-out latency are measured against it).
    pub fn new(
        channel: ChannelName,
        epoch: Epoch,
        id: MessageId,
        data: Payload,
        published_at: SystemTime,
    ) -> Self {
        Self {
            channel,
            epoch,
            id,
            data,
            published_at,
            ws_envelope: OnceLock::new(),
            plain_text: OnceLock::new(),
            sse_json: OnceLock::new(),
            sse_plain: OnceLock::new(),
            sse_message: OnceLock::new(),
        }
    }

    /// The channel it was published on.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The epoch of the channel when it was published.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Its id within the channel.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The cursor that points at this message (resume after it).
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.epoch, self.id)
    }

    /// Its data.
    pub fn data(&self) -> &Payload {
        &self.data
    }

    /// When the hub accepted it (wall clock).
    pub fn published_at(&self) -> SystemTime {
        self.published_at
    }

    /// [`Message::published_at`] as the wire's `ts`: whole milliseconds since the Unix epoch
    /// (what JavaScript's `Date` takes; exact in a JSON number for the next 285 000 years).
    /// A time before 1970 (a badly set clock) is sent as 0 rather than failing delivery.
    pub fn published_ms(&self) -> u64 {
        self.published_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The `/ws` JSON protocol frame:
    /// `{"op":"message","channel":…,"id":…,"ts":…,"data":…}`.
    pub fn ws_envelope(&self) -> Bytes {
        payload(self.ws_envelope_frame())
    }

    /// [`Message::ws_envelope`] as a WebSocket frame encoded once for every subscriber.
    pub fn ws_envelope_frame(&self) -> &PreparedMessage {
        self.ws_envelope.get_or_init(|| {
            // Channel names need no JSON escaping (see `ChannelName`), and the payload is
            // already compact JSON, so the envelope is spliced, not serialised.
            let mut out = Vec::with_capacity(self.data.len() + self.channel.as_str().len() + 48);
            out.extend_from_slice(b"{\"op\":\"message\",\"channel\":\"");
            out.extend_from_slice(self.channel.as_str().as_bytes());
            out.extend_from_slice(b"\",\"id\":");
            out.extend_from_slice(self.id.to_string().as_bytes());
            out.extend_from_slice(b",\"ts\":");
            out.extend_from_slice(self.published_ms().to_string().as_bytes());
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(self.data.json());
            out.push(b'}');
            prepared_text(Bytes::from(out))
        })
    }

    /// This message as a history page, a long poll and a `format=message` SSE event list
    /// it: `{"id":…,"ts":…,"data":…}`.
    pub fn entry(&self) -> Entry<'_> {
        Entry {
            id: self.id,
            ts: self.published_ms(),
            data: &self.data,
        }
    }

    /// The payload as plain UTF-8 text, as the seeds' chat room (`/ws/{channel}`) sends it.
    pub fn plain_text(&self) -> Bytes {
        payload(self.plain_text_frame())
    }

    /// [`Message::plain_text`] as a WebSocket frame encoded once for every subscriber.
    pub fn plain_text_frame(&self) -> &PreparedMessage {
        self.plain_text
            .get_or_init(|| prepared_text(Bytes::from(self.data.plain_text().into_owned())))
    }

    /// The whole SSE event, `id: EPOCH:ID` line, `data:` lines and the blank line.
    pub fn sse_event(&self, format: SseFormat) -> Bytes {
        let cell = match format {
            SseFormat::Json => &self.sse_json,
            SseFormat::Plain => &self.sse_plain,
            SseFormat::Message => &self.sse_message,
        };
        cell.get_or_init(|| {
            let text = match format {
                SseFormat::Json => std::borrow::Cow::Borrowed(self.data.as_str()),
                SseFormat::Plain => self.data.plain_text(),
                // Serialising ids, integers and compact JSON cannot fail.
                SseFormat::Message => std::borrow::Cow::Owned(
                    serde_json::to_string(&self.entry()).unwrap_or_default(),
                ),
            };
            Bytes::from(sse_event(None, &self.cursor().to_string(), &text))
        })
        .clone()
    }
}

/// Formats one Server-Sent Event. Every line break in `data` (CR, LF or CRLF, all of which
/// the SSE parser treats as line ends) starts a new `data:` line, so the browser's
/// `event.data` gets the text back with `\n` separators.
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
    use super::*;

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
    fn ws_envelope_is_valid_json_and_shared() {
        let m = msg(Payload::from_json(br#"{"a":[1,"x"]}"#).unwrap());
        let env = m.ws_envelope();
        let v: serde_json::Value = serde_json::from_slice(&env).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"op":"message","channel":"chat","id":3,"ts":1_700_000_000_123_u64,"data":{"a":[1,"x"]}})
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
    fn time_is_whole_milliseconds_and_never_fails() {
        let m = msg(Payload::text("x"));
        assert_eq!(m.published_ms(), 1_700_000_000_123);
        let entry = serde_json::to_value(m.entry()).unwrap();
        assert_eq!(
            entry,
            serde_json::json!({"id":3,"ts":1_700_000_000_123_u64,"data":"x"})
        );
        let before_1970 = Message::new(
            ChannelName::new("chat").unwrap(),
            Epoch::new(7).unwrap(),
            MessageId::new(1),
            Payload::text("x"),
            SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(5),
        );
        assert_eq!(before_1970.published_ms(), 0);
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
