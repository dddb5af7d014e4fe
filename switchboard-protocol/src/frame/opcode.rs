/// A frame's opcode (RFC 6455 §5.2, §11.8).
///
/// ```
/// use switchboard_protocol::OpCode;
///
/// assert_eq!(OpCode::from_u8(0x9), Some(OpCode::Ping));
/// assert_eq!(OpCode::Ping.as_u8(), 0x9);
/// assert!(OpCode::Ping.is_control() && !OpCode::Text.is_control());
/// assert_eq!(OpCode::from_u8(0x3), None); // reserved
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// `0x0`: continues a fragmented message.
    Continuation = 0x0,
    /// `0x1`: the first frame of a UTF-8 text message.
    Text = 0x1,
    /// `0x2`: the first frame of a binary message.
    Binary = 0x2,
    /// `0x8`: the close handshake.
    Close = 0x8,
    /// `0x9`: a ping; the peer answers with a pong.
    Ping = 0x9,
    /// `0xA`: a pong, solicited or not.
    Pong = 0xA,
}

impl OpCode {
    /// Decodes the low four bits of the first header byte; `None` for the reserved opcodes
    /// `0x3`–`0x7` and `0xB`–`0xF`.
    pub fn from_u8(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The four-bit wire value.
    #[inline]
    pub fn as_u8(self) -> u8 {
        // The discriminants are the wire values: a cast, not a lookup.
        self as u8
    }

    /// Close, ping and pong: frames that may not be fragmented and carry at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}
