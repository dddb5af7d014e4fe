//! Backpressure: what sending does when the peer reads more slowly than we write.
//!
//! Every connection has a bounded write queue: [`WebSocketConfig::write_buffer_high_water`]
//! bytes may wait unwritten (the browser's `bufferedAmount`). Past that, `send` and `feed`
//! follow the connection's [`SlowConsumer`] policy, and [`try_send`] never waits: it says
//! [`TrySendError::Full`] and hands the message back.
//!
//! [`WebSocketConfig::write_buffer_high_water`]: crate::WebSocketConfig::write_buffer_high_water
//! [`try_send`]: crate::WebSocket::try_send

use crate::error::Error;
use std::fmt;
use switchboard_protocol::{CloseCode, Message};

/// What `send`/`feed` do when the write queue is over its high-water mark, chosen by the
/// application for its kind of traffic.
///
/// ```
/// use switchboard::{CloseCode, SlowConsumer, WebSocketConfig};
///
/// // A ticker: a client that falls behind misses prices rather than slowing the feed.
/// let ticker = WebSocketConfig::default()
///     .write_buffer_high_water(64 << 10)
///     .slow_consumer(SlowConsumer::Drop);
/// // A broadcast: a client that cannot keep up is cut off with 1013 Try Again Later.
/// let broadcast = WebSocketConfig::default().slow_consumer(SlowConsumer::Close(CloseCode::TRY_AGAIN_LATER));
/// # let _ = (ticker, broadcast);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// Wait until the peer has read enough (the default): the sender slows down to the
    /// peer's pace. Right when every message matters and one sender serves one peer.
    #[default]
    Wait,
    /// Drop the message and return at once: the peer misses messages but never holds the
    /// sender up. Right for state that the next message supersedes (positions, prices).
    /// [`WebSocket::dropped_messages`](crate::WebSocket::dropped_messages) counts them.
    Drop,
    /// Close the connection with this code (1008 Policy Violation or 1013 Try Again Later)
    /// and fail the send: a peer that cannot keep up is cut off, as a broadcast server
    /// must do so that one slow client cannot hold memory or the others hostage.
    Close(CloseCode),
}

/// Why [`WebSocket::try_send`](crate::WebSocket::try_send) did not queue a message.
///
/// ```no_run
/// # fn run(ws: &mut switchboard::ServerWebSocket) -> Result<(), switchboard::Error> {
/// use switchboard::TrySendError;
///
/// match ws.try_send("update") {
///     Ok(()) => {}
///     // Over the high-water mark: keep it for later, or drop it.
///     Err(TrySendError::Full(message)) => drop(message),
///     Err(TrySendError::Failed(error)) => return Err(error),
///     Err(_) => {} // non-exhaustive
/// }
/// # Ok(()) }
/// ```
#[non_exhaustive]
pub enum TrySendError {
    /// The write queue is over its high-water mark; the message is handed back.
    Full(Message),
    /// The connection cannot send (closing, closed, or the message is invalid).
    Failed(Error),
}

impl TrySendError {
    /// Whether the queue was full (and the message can be retried later).
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// The message, when it was handed back.
    pub fn into_message(self) -> Option<Message> {
        match self {
            TrySendError::Full(message) => Some(message),
            TrySendError::Failed(_) => None,
        }
    }
}

impl fmt::Debug for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The payload may be large; its size says enough.
            TrySendError::Full(message) => write!(f, "Full({} bytes)", message.len()),
            TrySendError::Failed(error) => f.debug_tuple("Failed").field(error).finish(),
        }
    }
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("the write queue is full"),
            TrySendError::Failed(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for TrySendError {}

impl From<Error> for TrySendError {
    fn from(error: Error) -> Self {
        TrySendError::Failed(error)
    }
}
