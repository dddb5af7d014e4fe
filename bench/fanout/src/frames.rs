//! Server-to-client WebSocket frames (RFC 6455 §5.2), just enough to tell a data message
//! from a control frame and to look at a small payload. Client frames come from
//! `switchboard_loadgen::wire::masked_frame`.
//!
//! Unlike the echo generator's parser, this one keeps payloads: the fan-out client must
//! see them (a Socket.IO ping is a text frame `2`, an event is `42[…]`), and they are small.

/// Why the byte stream was not a server's WebSocket stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Servers never mask (RFC 6455 §5.1).
    #[error("server frame is masked")]
    Masked,
    /// A payload longer than the client is willing to buffer.
    #[error("server frame of {0} bytes is larger than the limit")]
    TooLarge(u64),
    /// Fragmented messages are not expected from either server under test.
    #[error("fragmented server message")]
    Fragmented,
}

/// The largest frame payload accepted.
pub(crate) const MAX_PAYLOAD: u64 = 1 << 20;

/// One complete frame found at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    /// The opcode (low nibble of the first byte).
    pub(crate) opcode: u8,
    /// The (unmasked) payload.
    pub(crate) payload: &'a [u8],
}

/// Parses one frame from the front of `buf`: `Ok(Some((frame, consumed)))`, or `Ok(None)`
/// when `buf` does not hold a whole frame yet.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    let opcode = b0 & 0x0f;
    if b0 & 0x80 == 0 || opcode == 0 {
        return Err(FrameError::Fragmented);
    }
    let (len, head) = match b1 & 0x7f {
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
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    let end = head + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((
        Frame {
            opcode,
            payload: &buf[head..end],
        },
        end,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_extended_lengths() {
        assert_eq!(parse(&[0x81]).unwrap(), None);
        let (f, n) = parse(&[0x81, 2, b'h', b'i', 0xff]).unwrap().unwrap();
        assert_eq!((f.opcode, f.payload, n), (1, &b"hi"[..], 4));
        let mut long = vec![0x82, 126, 0x01, 0x00];
        assert_eq!(parse(&long).unwrap(), None);
        long.extend(std::iter::repeat_n(7u8, 256));
        let (f, n) = parse(&long).unwrap().unwrap();
        assert_eq!((f.opcode, f.payload.len(), n), (2, 256, 260));
    }

    #[test]
    fn refuses_masked_fragmented_and_huge() {
        assert_eq!(parse(&[0x81, 0x82, 0, 0, 0, 0]), Err(FrameError::Masked));
        assert_eq!(parse(&[0x01, 0]), Err(FrameError::Fragmented));
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(MAX_PAYLOAD + 1).to_be_bytes());
        assert_eq!(parse(&huge), Err(FrameError::TooLarge(MAX_PAYLOAD + 1)));
    }
}
