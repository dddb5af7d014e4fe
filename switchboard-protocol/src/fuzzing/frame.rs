//! The frame header target: `FrameHeader::parse` and `encode` against a reference.

use crate::frame::{FrameHeader, HeaderError, MAX_HEADER_LEN};

/// [`FrameHeader::parse`] on arbitrary bytes, checked against a reference decoder written
/// from the RFC 6455 §5.2 diagram, and re-encoded.
pub fn frame_header(data: &[u8]) {
    let parsed = FrameHeader::parse(data);
    let reference = reference_header(data);
    match (parsed, reference) {
        (Ok(None), Reference::Incomplete) => {}
        (Err(HeaderError::ReservedOpcode(op)), Reference::ReservedOpcode(expected)) => {
            assert_eq!(op, expected)
        }
        (Err(HeaderError::LengthTopBit), Reference::LengthTopBit) => {}
        (Ok(Some((header, n))), Reference::Header { len, payload_len }) => {
            assert_eq!(n, len, "header length");
            assert_eq!(header.fin, data[0] & 0x80 != 0, "FIN");
            assert_eq!(header.rsv, (data[0] >> 4) & 0x07, "RSV1-3");
            assert_eq!(header.opcode.as_u8(), data[0] & 0x0f, "opcode");
            assert_eq!(header.payload_len, payload_len, "payload length");
            let expected_mask =
                (data[1] & 0x80 != 0).then(|| [data[n - 4], data[n - 3], data[n - 2], data[n - 1]]);
            assert_eq!(header.mask, expected_mask, "masking key");

            let mut encoded = [0u8; MAX_HEADER_LEN];
            let m = header.encode(&mut encoded);
            assert_eq!(m, header.encoded_len(), "encode and encoded_len disagree");
            assert_eq!(
                FrameHeader::parse(&encoded[..m]),
                Ok(Some((header, m))),
                "re-encoded header"
            );
            // §5.2: "the minimal number of bytes MUST be used to encode the length".
            let minimal = match data[1] & 0x7f {
                126 => payload_len >= 126,
                127 => payload_len > 0xffff,
                _ => true,
            };
            if minimal {
                assert_eq!(
                    &encoded[..m],
                    &data[..n],
                    "a minimal header did not re-encode byte for byte"
                );
            } else {
                assert!(
                    m < n,
                    "a non-minimal header re-encoded to {m} bytes, not fewer than {n}"
                );
            }
            for cut in 0..n {
                assert_eq!(
                    FrameHeader::parse(&data[..cut]),
                    Ok(None),
                    "a {cut}-byte prefix is not incomplete"
                );
            }
        }
        (parsed, reference) => panic!("parse gave {parsed:?}, the reference {reference:?}"),
    }
}

#[derive(Debug)]
enum Reference {
    Incomplete,
    ReservedOpcode(u8),
    LengthTopBit,
    Header { len: usize, payload_len: u64 },
}

/// The §5.2 header read field by field.
fn reference_header(data: &[u8]) -> Reference {
    if data.len() < 2 {
        return Reference::Incomplete;
    }
    // Opcodes %x3-7 and %xB-F are "reserved for further (non-)control frames".
    let opcode = data[0] & 0x0f;
    if (0x3..=0x7).contains(&opcode) || (0xb..=0xf).contains(&opcode) {
        return Reference::ReservedOpcode(opcode);
    }
    let (extended, payload_len) = match data[1] & 0x7f {
        126 if data.len() >= 4 => (2, (u64::from(data[2]) << 8) | u64::from(data[3])),
        127 if data.len() >= 10 => {
            if data[2] & 0x80 != 0 {
                return Reference::LengthTopBit;
            }
            (
                8,
                data[2..10]
                    .iter()
                    .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
            )
        }
        126 | 127 => return Reference::Incomplete,
        short => (0, u64::from(short)),
    };
    let len = 2 + extended + if data[1] & 0x80 != 0 { 4 } else { 0 };
    if data.len() < len {
        return Reference::Incomplete;
    }
    Reference::Header { len, payload_len }
}
