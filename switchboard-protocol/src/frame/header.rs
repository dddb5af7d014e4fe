use super::OpCode;

/// The longest header: 2 fixed bytes, an 8-byte length and a 4-byte mask key.
///
/// ```
/// use switchboard_protocol::frame::{FrameHeader, MAX_HEADER_LEN};
/// use switchboard_protocol::OpCode;
///
/// let header = FrameHeader {
///     fin: true,
///     rsv: 0,
///     opcode: OpCode::Binary,
///     mask: Some([1, 2, 3, 4]),
///     payload_len: 1 << 20,
/// };
/// let mut buf = [0u8; MAX_HEADER_LEN]; // room for any header
/// // A 64-bit length and a mask key: the longest a header gets.
/// assert_eq!(header.encode(&mut buf), MAX_HEADER_LEN);
/// ```
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed frame header (RFC 6455 §5.2). Parsing checks only what the header alone
/// decides; rules that depend on connection state (masking by role, RSV bits by extension,
/// fragmentation) are the connection's.
///
/// ```
/// use switchboard_protocol::frame::{FrameHeader, MAX_HEADER_LEN};
/// use switchboard_protocol::OpCode;
///
/// let header = FrameHeader {
///     fin: true,
///     rsv: 0,
///     opcode: OpCode::Text,
///     mask: None,
///     payload_len: 300,
/// };
/// let mut buf = [0u8; MAX_HEADER_LEN];
/// let n = header.encode(&mut buf);
/// assert_eq!(buf[..n], [0x81, 126, 0x01, 0x2c]); // 300 takes the 16-bit length
/// assert_eq!(FrameHeader::parse(&buf[..n]), Ok(Some((header, n))));
/// assert_eq!(FrameHeader::parse(&buf[..3]), Ok(None)); // incomplete: read more
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1, RSV2 and RSV3 as the low three bits (RSV1 = `0b100`).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit was set.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// Why a header could not be parsed.
///
/// ```
/// use switchboard_protocol::frame::{FrameHeader, HeaderError};
///
/// // FIN with opcode 0x3, one of the reserved ones.
/// assert_eq!(FrameHeader::parse(&[0x83, 0x00]), Err(HeaderError::ReservedOpcode(0x3)));
/// // A 64-bit length with its most significant bit set.
/// let huge = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
/// assert_eq!(FrameHeader::parse(&huge), Err(HeaderError::LengthTopBit));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Opcodes `0x3`–`0x7` and `0xB`–`0xF` are reserved (§5.2).
    ReservedOpcode(u8),
    /// "the most significant bit MUST be 0" in a 64-bit length (§5.2).
    LengthTopBit,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`. `Ok(None)` means more bytes are needed;
    /// `Ok(Some((header, len)))` gives the header and how many bytes it took.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let opcode = OpCode::from_u8(b0 & 0x0f).ok_or(HeaderError::ReservedOpcode(b0 & 0x0f))?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut pos) = match b1 & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut len = [0u8; 8];
                len.copy_from_slice(&buf[2..10]);
                let len = u64::from_be_bytes(len);
                if len >> 63 != 0 {
                    return Err(HeaderError::LengthTopBit);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            if buf.len() < pos + 4 {
                return Ok(None);
            }
            let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
            pos += 4;
            Some(key)
        } else {
            None
        };
        let header = FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x07,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }

    /// The number of bytes [`FrameHeader::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xffff => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header with the shortest length encoding (§5.2 "the minimal number of
    /// bytes MUST be used") and returns how many bytes were written.
    ///
    /// # Panics
    ///
    /// If `dst` is shorter than [`FrameHeader::encoded_len`].
    pub fn encode(&self, dst: &mut [u8]) -> usize {
        dst[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            len @ 0..=125 => {
                dst[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xffff => {
                dst[1] = mask_bit | 126;
                dst[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                dst[1] = mask_bit | 127;
                dst[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            dst[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(fin in any::<bool>(), rsv in 0u8..8, opcode in any_opcode(),
                                         mask in any::<Option<[u8; 4]>>(), payload_len in 0u64..(1 << 63)) {
            let header = FrameHeader { fin, rsv, opcode, mask, payload_len };
            let mut buf = [0u8; MAX_HEADER_LEN];
            let n = header.encode(&mut buf);
            prop_assert_eq!(n, header.encoded_len());
            prop_assert_eq!(FrameHeader::parse(&buf[..n]), Ok(Some((header, n))));
            // Every strict prefix is incomplete, never an error.
            for cut in 0..n {
                prop_assert_eq!(FrameHeader::parse(&buf[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn length_encodings_are_minimal() {
        for (len, expect) in [(125u64, 2usize), (126, 4), (0xffff, 4), (0x10000, 10)] {
            let h = FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: None,
                payload_len: len,
            };
            assert_eq!(h.encoded_len(), expect, "length {len}");
        }
    }

    #[test]
    fn top_bit_of_64_bit_length_is_rejected() {
        let buf = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&buf), Err(HeaderError::LengthTopBit));
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0]),
                Err(HeaderError::ReservedOpcode(op))
            );
        }
    }
}
