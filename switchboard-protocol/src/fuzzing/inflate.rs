//! The permessage-deflate target: compressed messages into a server `Connection`.

use super::conn::{check_event, connection, deflate_params, parse_output};
use crate::close::CloseCode;
use crate::config::Config;
use crate::connection::Event;
use crate::deflate::DeflateConfig;
use crate::error::ProtocolError;
use crate::frame::{apply_mask, FrameHeader, OpCode, Role, MAX_HEADER_LEN};
use crate::message::Message;
use bytes::BytesMut;

/// A compressed server connection fed compressed client messages.
///
/// The first byte picks: bits 0–1 the message limit, 2–3 the agreed parameters, 4 the mode,
/// 5 text (where the plaintext is UTF-8), 6–7 the largest fragment. The rest is a list of
/// records, each a length byte and that many bytes.
///
/// - **Round trip** (bit 4 clear): each record is a plaintext that a client connection with
///   the same parameters compresses and masks; the frame is re-fragmented and fed to the
///   server. The server must yield exactly the plaintexts, or fail with 1009 at the first
///   one over the limit.
/// - **Raw** (bit 4 set): each record is the compressed payload of one message, sent as is
///   with RSV1. Whatever it inflates to, no message exceeds the limit, and every error is
///   1007 (not DEFLATE, or not UTF-8) or 1009 (too big).
pub fn inflate(data: &[u8]) {
    let [options, records @ ..] = data else {
        return;
    };
    let max_message_size = [16, 300, 5000, 1 << 20][usize::from(options & 0b11)];
    let params = deflate_params(options >> 2);
    let raw = options & 0x10 != 0;
    let want_text = options & 0x20 != 0;
    let max_fragment = [1, 7, 64, usize::MAX][usize::from(options >> 6)];
    let policy = DeflateConfig {
        threshold: 0,
        ..DeflateConfig::default()
    };
    let config = Config {
        max_frame_size: 1 << 20,
        max_message_size,
        deflate: Some(policy),
        ..Config::default()
    };

    let mut client = connection(Role::Client, config.clone(), Some(params));
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for record in Records(records) {
        let opcode = if want_text && std::str::from_utf8(record).is_ok() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let compressed = if raw {
            record.to_vec()
        } else {
            let message = match opcode {
                OpCode::Text => Message::from(std::str::from_utf8(record).expect("checked above")),
                _ => Message::from(record),
            };
            client
                .send(message.clone())
                .expect("an open client may send");
            expected.push(message);
            let sent = client.output_chunks_vec().concat();
            client.advance_output(sent.len());
            let mut frames = parse_output(Role::Client, true, &sent);
            assert_eq!(frames.len(), 1, "one message, one frame");
            let (header, payload) = frames.pop().expect("checked above");
            assert_eq!(
                header.rsv, 0b100,
                "a message over the threshold of 0 went out uncompressed"
            );
            payload
        };
        push_fragments(&mut wire, opcode, &compressed, max_fragment);
    }

    let mut server = connection(Role::Server, config.clone(), Some(params));
    let mut buf = BytesMut::from(&wire[..]);
    let mut received = Vec::new();
    let error = loop {
        match server.poll_event(&mut buf) {
            Ok(Some(Event::Message(message))) => {
                check_event(&Event::Message(message.clone()), &config);
                received.push(message);
            }
            Ok(Some(other)) => panic!("only data frames were sent, got {other:?}"),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    if let Some(e) = &error {
        assert!(
            matches!(
                e,
                ProtocolError::InflateFailed
                    | ProtocolError::InvalidUtf8
                    | ProtocolError::MessageTooBig { .. }
            ),
            "unexpected error {e:?} for well-formed frames"
        );
        assert!([CloseCode::INVALID_PAYLOAD, CloseCode::MESSAGE_TOO_BIG].contains(&e.close_code()));
        let frames = parse_output(Role::Server, true, &server.output_chunks_vec().concat());
        let (header, payload) = frames.last().expect("a close frame after the error");
        assert_eq!(header.opcode, OpCode::Close);
        assert_eq!(
            u16::from_be_bytes([payload[0], payload[1]]),
            e.close_code().0
        );
    }
    if raw {
        return;
    }
    // Round trip: the plaintexts up to the first one over the limit, then 1009.
    let fits = expected
        .iter()
        .take_while(|m| m.len() <= max_message_size)
        .count();
    assert_eq!(
        received[..],
        expected[..fits],
        "inflated messages differ from what was compressed"
    );
    if fits < expected.len() {
        assert!(
            matches!(error, Some(ProtocolError::MessageTooBig { .. })),
            "a message of {} bytes over the limit of {max_message_size} gave {error:?}",
            expected[fits].len()
        );
    } else {
        assert_eq!(error, None, "a round trip failed");
    }
}

/// Length-prefixed records: a length byte, then that many bytes (fewer at the end).
struct Records<'a>(&'a [u8]);

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, rest) = self.0.split_first()?;
        let (record, rest) = rest.split_at(usize::from(len).min(rest.len()));
        self.0 = rest;
        Some(record)
    }
}

/// Appends one compressed message as masked client frames of at most `max_fragment` bytes:
/// RSV1 and the opcode on the first, continuations after, FIN on the last.
fn push_fragments(wire: &mut Vec<u8>, opcode: OpCode, payload: &[u8], max_fragment: usize) {
    let mut pieces: Vec<&[u8]> = payload.chunks(max_fragment.max(1)).collect();
    if pieces.is_empty() {
        pieces.push(&[]);
    }
    let last = pieces.len() - 1;
    for (i, piece) in pieces.into_iter().enumerate() {
        let key = [0x37, 0xfa, 0x21, i as u8];
        let header = FrameHeader {
            fin: i == last,
            rsv: if i == 0 { 0b100 } else { 0 },
            opcode: if i == 0 { opcode } else { OpCode::Continuation },
            mask: Some(key),
            payload_len: piece.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        wire.extend_from_slice(&head[..n]);
        let start = wire.len();
        wire.extend_from_slice(piece);
        apply_mask(&mut wire[start..], key, 0);
    }
}
