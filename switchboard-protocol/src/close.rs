//! Close codes and the close frame's payload (RFC 6455 §5.5.1, §7.4).

use crate::utf8::Utf8Bytes;
use std::fmt;

/// A close status code: an open newtype, so codes this crate has no name for (3000–4999,
/// registered or private) still round-trip.
///
/// ```
/// use switchboard_protocol::CloseCode;
///
/// let private = CloseCode::from(4001); // an application's own code: 4000–4999
/// assert!(private.is_valid_on_wire());
/// assert_eq!(private.to_string(), "4001");
/// assert_eq!(u16::from(CloseCode::GOING_AWAY), 1001);
/// // 1006 only reports a dropped connection; it may not be sent.
/// assert!(!CloseCode::ABNORMAL.is_valid_on_wire());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutting down, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept (e.g. binary for a text-only endpoint).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present. Reserved: never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection dropped without a close frame. Reserved: never sent on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (e.g. invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message is too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client) the server did not negotiate a required extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: (server) an unexpected condition prevented fulfilling the request.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later, e.g. the server is overloaded (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway got an invalid response from upstream (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: the TLS handshake failed. Reserved: never sent on the wire.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether the code may appear in a close frame (RFC 6455 §7.4.1–§7.4.2 and the IANA
    /// registry): 1000–1003, 1007–1014, and 3000–4999 for libraries, frameworks and
    /// applications. 1004 is reserved, 1005, 1006 and 1015 are for reporting only, and
    /// everything below 1000 or in 1016–2999 is unassigned or reserved.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

/// The payload of a close frame: a status code and a UTF-8 reason of at most 123 bytes.
///
/// ```
/// use switchboard_protocol::{CloseCode, CloseFrame, Config, Connection};
///
/// let mut server = Connection::server(Config::default());
/// server.close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "restarting")))?;
/// // FIN + close, 12 bytes of payload: the code 1001 (0x03e9), then the reason.
/// assert_eq!(server.output_chunks_vec().concat(), b"\x88\x0c\x03\xe9restarting");
/// # Ok::<(), switchboard_protocol::SendError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// Why, for humans; may be empty.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// The longest reason that fits in a control frame: 125 bytes less the 2-byte code.
    pub const MAX_REASON_LEN: usize = 123;

    /// A close frame with `code` and `reason`.
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}
