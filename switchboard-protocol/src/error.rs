//! What can go wrong: [`ProtocolError`] for the peer's violations, [`SendError`] for ours.

use crate::close::CloseCode;
use thiserror::Error;

/// The peer broke RFC 6455 or RFC 7692, or exceeded a limit. The connection has already
/// queued a close frame with [`ProtocolError::close_code`] and will close the transport once
/// it is written.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_protocol::{CloseCode, Config, Connection, ProtocolError, State};
///
/// let mut server = Connection::server(Config::default());
/// // An unmasked text frame "hi": a server must refuse it (RFC 6455 §5.1).
/// let mut buf = BytesMut::from(&b"\x81\x02hi"[..]);
/// let error = server.poll_event(&mut buf).unwrap_err();
/// assert_eq!(error, ProtocolError::UnmaskedFrame);
/// assert_eq!(error.close_code(), CloseCode::PROTOCOL_ERROR);
/// // The close frame with 1002 is queued: write it out, then close the transport.
/// assert_eq!(server.state(), State::Closed);
/// assert!(server.buffered_amount() > 0 && !server.should_close_transport());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A server received a frame without the MASK bit (§5.1 "MUST close the connection").
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A client received a masked frame (§5.1 "MUST close the connection").
    #[error("server frame is masked")]
    MaskedFrame,
    /// RSV1–3 set without a negotiated extension that defines them (§5.2), or RSV1 on a
    /// control or continuation frame (RFC 7692 §6).
    #[error("reserved bits {0:#05b} set without an extension that defines them")]
    ReservedBits(u8),
    /// An opcode from the reserved ranges (§5.2).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A 64-bit payload length with its most significant bit set (§5.2).
    #[error("64-bit payload length has its most significant bit set")]
    LengthTopBit,
    /// A control frame without FIN (§5.5 "Control frames MUST NOT be fragmented").
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload (§5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    /// A continuation frame with no message to continue (§5.4).
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is incomplete (§5.4).
    #[error("new data frame while a fragmented message is incomplete")]
    ExpectedContinuation,
    /// A text message, or a close reason, that is not UTF-8 (§8.1, §5.5.1).
    #[error("invalid UTF-8 in text")]
    InvalidUtf8,
    /// A close frame with a one-byte payload (§5.5.1: a body starts with a 2-byte code).
    #[error("close frame payload of 1 byte")]
    InvalidClosePayload,
    /// A close code that may not appear on the wire (§7.4).
    #[error("close code {0} is not valid on the wire")]
    InvalidCloseCode(u16),
    /// A frame larger than [`crate::Config::max_frame_size`].
    #[error("frame of {size} bytes exceeds the limit of {max}")]
    FrameTooBig {
        /// Announced payload length.
        size: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message larger than [`crate::Config::max_message_size`], after decompression.
    #[error("message of at least {size} bytes exceeds the limit of {max}")]
    MessageTooBig {
        /// Bytes the message had reached when it was refused.
        size: u64,
        /// The configured limit.
        max: usize,
    },
    /// A compressed message that is not valid DEFLATE data (RFC 7692 §7.2.2).
    #[error("compressed message is not valid DEFLATE data")]
    InflateFailed,
}

impl ProtocolError {
    /// The status code this error closes the connection with. This is the only place that
    /// decides it.
    pub fn close_code(&self) -> CloseCode {
        use ProtocolError::*;
        match self {
            InvalidUtf8 | InflateFailed => CloseCode::INVALID_PAYLOAD,
            FrameTooBig { .. } | MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            UnmaskedFrame
            | MaskedFrame
            | ReservedBits(_)
            | ReservedOpcode(_)
            | LengthTopBit
            | FragmentedControl
            | ControlTooLong(_)
            | UnexpectedContinuation
            | ExpectedContinuation
            | InvalidClosePayload
            | InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// The application asked for something the connection cannot do. Never caused by the peer.
///
/// ```
/// use bytes::Bytes;
/// use switchboard_protocol::{Config, Connection, Message, SendError};
///
/// let mut server = Connection::server(Config::default());
/// let too_long = Bytes::from(vec![0; 126]);
/// assert_eq!(server.ping(too_long), Err(SendError::ControlTooLong(126)));
/// server.close(None)?;
/// // After our close frame, nothing more may be sent (RFC 6455 §5.5.1).
/// assert_eq!(server.send(Message::from("late")), Err(SendError::Closed));
/// # Ok::<(), SendError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// A close frame was already sent; RFC 6455 §5.5.1: no data frames after it.
    #[error("the connection is closing or closed; no more frames may be sent")]
    Closed,
    /// Ping and pong payloads are at most 125 bytes (§5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(usize),
    /// The close code may not be sent (1005, 1006, 1015, or outside the valid ranges).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A close reason is at most 123 bytes.
    #[error("close reason of {0} bytes exceeds 123")]
    ReasonTooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_close_code() {
        use ProtocolError::*;
        let table: &[(ProtocolError, u16)] = &[
            (UnmaskedFrame, 1002),
            (MaskedFrame, 1002),
            (ReservedBits(0b100), 1002),
            (ReservedOpcode(3), 1002),
            (LengthTopBit, 1002),
            (FragmentedControl, 1002),
            (ControlTooLong(126), 1002),
            (UnexpectedContinuation, 1002),
            (ExpectedContinuation, 1002),
            (InvalidClosePayload, 1002),
            (InvalidCloseCode(999), 1002),
            (InvalidUtf8, 1007),
            (InflateFailed, 1007),
            (FrameTooBig { size: 2, max: 1 }, 1009),
            (MessageTooBig { size: 2, max: 1 }, 1009),
        ];
        for (error, code) in table {
            assert_eq!(error.close_code().0, *code, "{error:?}");
        }
    }
}
