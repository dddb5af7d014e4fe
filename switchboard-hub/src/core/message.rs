//! A published message: what it is (channel, epoch, id, payload, acceptance time). How it is
//! written on the wire is [`super::encode`]'s job; this only holds the cache its encodings
//! are kept in, so that they are computed once per message, not once per subscriber.

use std::time::SystemTime;

use super::encode::Encodings;
use super::{ChannelName, Cursor, Epoch, MessageId, Payload};

/// One message as stored in history and handed to every subscriber.
///
/// Messages are shared behind an `Arc`: history and every subscriber queue hold the same one.
/// The wire forms ([`Message::ws_envelope`], [`Message::plain_text`], [`Message::sse_event`])
/// are computed by the first subscriber that needs them and then shared as `Bytes` by all the
/// others, so fan-out to 10 000 WebSocket subscribers encodes the envelope once, not 10 000
/// times.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use switchboard_hub::core::{ChannelName, Epoch, Message, MessageId, Payload};
///
/// let epoch = Epoch::new(5).unwrap();
/// let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
/// let chat = ChannelName::new("chat")?;
/// let msg = Message::new(chat, epoch, MessageId::new(1), Payload::text("hi"), at);
/// assert_eq!(msg.cursor().to_string(), "5:1");
/// assert_eq!(msg.published_ms(), 1_700_000_000_000);
/// assert_eq!(
///     msg.ws_envelope(),
///     r#"{"op":"message","channel":"chat","id":1,"ts":1700000000000,"data":"hi"}"#
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Message {
    channel: ChannelName,
    epoch: Epoch,
    id: MessageId,
    data: Payload,
    published_at: SystemTime,
    encoded: Encodings,
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
            encoded: Encodings::default(),
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

    /// The wire forms computed so far.
    pub(super) fn encoded(&self) -> &Encodings {
        &self.encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_whole_milliseconds_and_never_fails() {
        let at = |t| {
            Message::new(
                ChannelName::new("chat").unwrap(),
                Epoch::new(7).unwrap(),
                MessageId::new(1),
                Payload::text("x"),
                t,
            )
            .published_ms()
        };
        let micros = std::time::Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(at(SystemTime::UNIX_EPOCH + micros), 1_700_000_000_123);
        let before_1970 = SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(5);
        assert_eq!(at(before_1970), 0);
    }
}
