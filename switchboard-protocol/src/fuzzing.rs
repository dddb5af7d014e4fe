//! Fuzz entry points, compiled only under `cfg(fuzzing)` (which `cargo fuzz` sets).
//!
//! Each target in `fuzz/fuzz_targets/` is a one-line call to a function here, so the harness
//! lives next to the code it checks and can see its internals (the quinn and rustls habit).
//! Every function checks an oracle beyond "does not panic" and panics when it fails:
//!
//! | target | oracle |
//! | --- | --- |
//! | [`server_conn`], [`client_conn`] | every error closes with 1002/1007/1009 in exactly one close frame, the last one; every frame sent parses, is masked exactly when the role says so and is accepted by a peer connection, which sees exactly the pongs, echoes and close reply expected; feeding the input whole or in chunks gives the same events, error and bytes |
//! | [`frame_header`] | agrees with a reference decoder; re-encoding parses back to the same header, byte for byte when the length encoding was minimal; every strict prefix is incomplete |
//! | [`handshake_request`] | a rejection is 4xx and serializes to a well-formed response; an accepted request's 101 carries the accept key (computed here from RFC 6455 §4.2.2) and passes the client's own validation |
//! | [`handshake_response`] | success implies status 101, the accept key, the upgrade tokens, and only offered subprotocols and extensions |
//! | [`inflate`] | compressed messages round-trip through a client and a server connection; no message exceeds the limit; errors close with 1007 or 1009 |
//! | [`utf8`] | the incremental validator fails exactly when a prefix cannot start valid UTF-8, and accepts exactly what `std::str::from_utf8` accepts |
//!
//! Connection inputs start with option bytes, decoded by [`ConnOptions::decode`], so one
//! corpus covers all limits, extensions and chunkings.

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::connection::{CloseInfo, Connection, Event, State};
use crate::deflate::{DeflateConfig, DeflateParams};
use crate::error::ProtocolError;
use crate::frame::{apply_mask, FrameHeader, HeaderError, OpCode, Role, MAX_HEADER_LEN};
use crate::handshake::{
    encode_response, parse_request, validate_request, ClientHandshake, HandshakeError, Rejection,
};
use crate::message::Message;
use crate::utf8::Utf8Validator;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::BytesMut;
use sha1::{Digest, Sha1};

// ----- connections -----

/// Server connection: input is two option bytes, then what a client sends after the
/// handshake.
pub fn server_conn(data: &[u8]) {
    conn_target(Role::Server, data);
}

/// Client connection: input is two option bytes, then what a server sends after the
/// handshake.
pub fn client_conn(data: &[u8]) {
    conn_target(Role::Client, data);
}

fn conn_target(role: Role, data: &[u8]) {
    let [first, second, wire @ ..] = data else {
        return;
    };
    let options = ConnOptions::decode(*first);
    let whole = drive(role, &options, wire, &mut std::iter::repeat(usize::MAX));
    check_run(role, &options, &whole);
    let mut sizes = ChunkSizes::new(*second);
    let chunked = drive(
        role,
        &options,
        wire,
        &mut std::iter::from_fn(|| Some(sizes.next())),
    );
    // Split invariance: where the transport cut the bytes must not matter.
    assert_eq!(
        whole.events, chunked.events,
        "events differ between whole and chunked input"
    );
    assert_eq!(
        whole.error, chunked.error,
        "errors differ between whole and chunked input"
    );
    assert_eq!(
        whole.output, chunked.output,
        "output differs between whole and chunked input"
    );
    assert_eq!(whole.state, chunked.state);
    assert_eq!(whole.close_info, chunked.close_info);
}

/// What a connection target runs with, from its first two input bytes.
struct ConnOptions {
    config: Config,
    deflate: Option<DeflateParams>,
    /// Send every received message back (exercises the sending path, and compression).
    echo: bool,
    /// Start the close handshake before any input.
    close_first: bool,
}

impl ConnOptions {
    /// Bits of `first`: 0–1 limits, 2 deflate on, 3–4 deflate parameters, 5 echo, 6 close
    /// first, 7 compression threshold 0 (every echo is compressed). The second input byte
    /// seeds the chunk sizes (see [`ChunkSizes`]).
    fn decode(first: u8) -> Self {
        let (max_frame_size, max_message_size) = match first & 0b11 {
            // Frames smaller than messages: long messages must be fragmented.
            0 => (64, 128),
            // Messages smaller than frames: a single frame can break the message limit.
            1 => (256, 48),
            2 => (4096, 4096),
            _ => (1 << 20, 1 << 20),
        };
        let deflate = (first & 0b100 != 0).then(|| deflate_params(first >> 3));
        let policy = DeflateConfig {
            threshold: if first & 0x80 != 0 { 0 } else { 32 },
            ..DeflateConfig::default()
        };
        let config = Config {
            max_frame_size,
            max_message_size,
            deflate: Some(policy),
            ..Config::default()
        };
        ConnOptions {
            config,
            deflate,
            echo: first & 0x20 != 0,
            close_first: first & 0x40 != 0,
        }
    }

    fn connection(&self, role: Role) -> Connection {
        connection(role, self.config.clone(), self.deflate)
    }
}

/// Four agreed parameter sets, from the low two bits of `bits`.
fn deflate_params(bits: u8) -> DeflateParams {
    let (
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    ) = match bits & 0b11 {
        0 => (false, false, 15, 15),
        1 => (true, true, 15, 15),
        2 => (false, false, 8, 8),
        _ => (true, false, 9, 12),
    };
    DeflateParams {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    }
}

/// A connection whose masking keys (as a client) are a fixed sequence, so two runs over the
/// same input produce the same bytes.
fn connection(role: Role, config: Config, deflate: Option<DeflateParams>) -> Connection {
    let conn = match role {
        Role::Server => Connection::server(config),
        Role::Client => {
            let mut state = 0x9e37_79b9u32;
            Connection::client(config, move || {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_be_bytes()
            })
        }
    };
    match deflate {
        Some(params) => conn.with_deflate(params),
        None => conn,
    }
}

/// Chunk sizes for the split-invariance run: the low two bits of the seed pick the largest
/// chunk (1, 3, 16 or 200 bytes), the rest seed a PRNG.
struct ChunkSizes {
    max: usize,
    state: u32,
}

impl ChunkSizes {
    fn new(seed: u8) -> Self {
        let max = [1, 3, 16, 200][usize::from(seed & 0b11)];
        ChunkSizes {
            max,
            state: u32::from(seed >> 2) | 0x100,
        }
    }

    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        1 + self.state as usize % self.max
    }
}

/// Everything observable about one run over an input.
struct Run {
    events: Vec<Event>,
    error: Option<ProtocolError>,
    output: Vec<u8>,
    state: State,
    close_info: Option<CloseInfo>,
    /// What a peer decoding `output` must see, in order.
    expected_at_peer: Vec<Event>,
}

/// Feeds `wire` in chunks of the given sizes, polling after each, echoing when asked, and
/// draining the output after every step. Checks what must hold at each step.
fn drive(
    role: Role,
    options: &ConnOptions,
    wire: &[u8],
    sizes: &mut dyn Iterator<Item = usize>,
) -> Run {
    let mut conn = options.connection(role);
    let mut output = Vec::new();
    let mut expected_at_peer = Vec::new();
    if options.close_first {
        let frame = CloseFrame::new(CloseCode::NORMAL, "bye");
        conn.close(Some(frame.clone()))
            .expect("a new connection may close");
        expected_at_peer.push(Event::Close(Some(frame)));
    }
    drain_output(&mut conn, &mut output);

    let mut events = Vec::new();
    let mut error = None;
    let mut output_at_error = 0;
    let mut buf = BytesMut::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(usize::MAX).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            let could_send = conn.can_send();
            match conn.poll_event(&mut buf) {
                Ok(None) => break,
                Ok(Some(event)) => {
                    assert!(error.is_none(), "an event after an error: {event:?}");
                    check_event(&event, &options.config);
                    match &event {
                        // §5.5.2: the pong echoes the ping, unless our close went out first.
                        Event::Ping(payload) if could_send => {
                            expected_at_peer.push(Event::Pong(payload.clone()))
                        }
                        // §5.5.1: the close reply echoes the code and reason.
                        Event::Close(frame) if could_send => {
                            expected_at_peer.push(Event::Close(frame.clone()))
                        }
                        Event::Message(message) if options.echo && conn.can_send() => {
                            conn.send(message.clone())
                                .expect("an open connection may send");
                            expected_at_peer.push(event.clone());
                        }
                        _ => {}
                    }
                    events.push(event);
                }
                Err(e) => {
                    assert!(error.is_none(), "a second error {e:?} after {error:?}");
                    let code = e.close_code();
                    assert!(
                        [
                            CloseCode::PROTOCOL_ERROR,
                            CloseCode::INVALID_PAYLOAD,
                            CloseCode::MESSAGE_TOO_BIG
                        ]
                        .contains(&code),
                        "{e:?} closes with {code:?}"
                    );
                    assert_eq!(
                        conn.state(),
                        State::Closed,
                        "still {:?} after {e:?}",
                        conn.state()
                    );
                    assert!(buf.is_empty(), "input left in the buffer after {e:?}");
                    if could_send {
                        // The close frame carries the code and the error's text as reason.
                        let mut reason = e.to_string();
                        while reason.len() > CloseFrame::MAX_REASON_LEN {
                            reason.pop();
                        }
                        expected_at_peer
                            .push(Event::Close(Some(CloseFrame::new(code, reason.as_str()))));
                    }
                    drain_output(&mut conn, &mut output);
                    output_at_error = output.len();
                    error = Some(e);
                }
            }
            drain_output(&mut conn, &mut output);
        }
    }
    if error.is_some() {
        assert_eq!(
            output.len(),
            output_at_error,
            "output after the connection failed"
        );
        assert!(
            conn.should_close_transport(),
            "a failed connection keeps the transport open"
        );
    }
    Run {
        events,
        error,
        output,
        state: conn.state(),
        close_info: conn.close_info().cloned(),
        expected_at_peer,
    }
}

fn drain_output(conn: &mut Connection, output: &mut Vec<u8>) {
    let queued = conn.output_chunks_vec().concat();
    assert_eq!(
        queued.len(),
        conn.buffered_amount(),
        "buffered_amount disagrees with the chunks"
    );
    conn.advance_output(queued.len());
    output.extend_from_slice(&queued);
    assert_eq!(conn.buffered_amount(), 0);
}

/// What every event must satisfy on its own.
fn check_event(event: &Event, config: &Config) {
    match event {
        Event::Message(message) => {
            assert!(
                message.len() <= config.max_message_size,
                "a message of {} bytes passed the limit of {}",
                message.len(),
                config.max_message_size
            );
            if let Message::Text(text) = message {
                assert!(
                    std::str::from_utf8(text.as_bytes()).is_ok(),
                    "text message is not UTF-8"
                );
            }
        }
        Event::Ping(payload) | Event::Pong(payload) => assert!(payload.len() <= 125),
        Event::Close(Some(frame)) => {
            assert!(
                frame.code.is_valid_on_wire(),
                "close code {:?} accepted",
                frame.code
            );
            assert!(frame.reason.len() <= CloseFrame::MAX_REASON_LEN);
        }
        Event::Close(None) => {}
    }
}

/// The checks on a whole run: the frames it wrote, the close frame, and what a peer makes
/// of the output.
fn check_run(role: Role, options: &ConnOptions, run: &Run) {
    let frames = parse_output(role, options.deflate.is_some(), &run.output);
    let closes: Vec<_> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.0.opcode == OpCode::Close)
        .collect();
    assert!(closes.len() <= 1, "{} close frames sent", closes.len());
    if let Some((index, _)) = closes.first() {
        assert_eq!(
            *index,
            frames.len() - 1,
            "a frame was sent after the close frame"
        );
    }
    if let Some(error) = &run.error {
        let (header, payload) = frames.last().expect("a failed connection sent nothing");
        assert_eq!(
            header.opcode,
            OpCode::Close,
            "the last frame after {error:?} is not a close frame"
        );
        if !options.close_first {
            assert!(
                payload.len() >= 2,
                "the close frame after {error:?} has no code"
            );
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            assert_eq!(code, error.close_code().0, "close code for {error:?}");
        }
    }

    // A peer with the same extension must accept every byte and see exactly what was sent.
    let peer_role = match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let mut peer = connection(peer_role, Config::default(), options.deflate);
    let mut buf = BytesMut::from(&run.output[..]);
    let mut seen = Vec::new();
    loop {
        match peer.poll_event(&mut buf) {
            Ok(Some(event)) => seen.push(event),
            Ok(None) => break,
            Err(e) => panic!("the peer rejects our output: {e:?}"),
        }
    }
    assert!(buf.is_empty(), "the output ends inside a frame");
    assert_eq!(
        seen, run.expected_at_peer,
        "the peer did not see what was sent"
    );
}

/// Splits the output into frames with [`FrameHeader::parse`], checking each header against
/// what this end may send (§5.1 masking, §5.5 control frames, RFC 7692 §6 RSV1).
fn parse_output(role: Role, deflate: bool, mut out: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut frames = Vec::new();
    while !out.is_empty() {
        let (header, n) = match FrameHeader::parse(out) {
            Ok(Some(parsed)) => parsed,
            other => panic!("output does not parse as a frame: {other:?}"),
        };
        assert_eq!(
            header.mask.is_some(),
            role == Role::Client,
            "{role:?} sent a frame with mask {:?}",
            header.mask
        );
        assert!(header.fin, "a fragmented frame was sent");
        if header.opcode.is_control() {
            assert_eq!(header.rsv, 0, "RSV bits on a control frame");
            assert!(
                header.payload_len <= 125,
                "a control frame of {} bytes",
                header.payload_len
            );
        } else {
            let allowed = if deflate { 0b100 } else { 0 };
            assert_eq!(
                header.rsv & !allowed,
                0,
                "RSV bits {:#05b} on a data frame",
                header.rsv
            );
        }
        assert_eq!(
            header.encoded_len(),
            n,
            "the length encoding is not minimal"
        );
        let len = usize::try_from(header.payload_len).expect("payload fits in memory");
        assert!(out.len() - n >= len, "the output ends inside a frame");
        let mut payload = out[n..n + len].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        frames.push((header, payload));
        out = &out[n + len..];
    }
    frames
}

// ----- permessage-deflate -----

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

// ----- frame headers -----

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
            assert_eq!(header.fin, data[0] & 0x80 != 0);
            assert_eq!(header.rsv, (data[0] >> 4) & 0x07);
            assert_eq!(header.opcode.as_u8(), data[0] & 0x0f);
            assert_eq!(header.payload_len, payload_len);
            let expected_mask =
                (data[1] & 0x80 != 0).then(|| [data[n - 4], data[n - 3], data[n - 2], data[n - 1]]);
            assert_eq!(header.mask, expected_mask);

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

// ----- handshakes -----

/// The largest head the handshake targets accept.
const MAX_HEAD: usize = 8192;

/// A smaller limit, to check that the limit cuts the same request the same way.
const SMALL_HEAD: usize = 256;

/// The server side of the opening handshake on arbitrary bytes.
pub fn handshake_request(data: &[u8]) {
    let (request, consumed) = match parse_request(data, MAX_HEAD) {
        Ok(None) => {
            assert!(
                data.len() <= MAX_HEAD,
                "an incomplete head over the limit was not refused"
            );
            return;
        }
        Err(rejection) => return check_rejection(&rejection),
        Ok(Some(parsed)) => parsed,
    };
    assert!(consumed <= data.len());
    if consumed > 0 {
        assert!(
            matches!(parse_request(&data[..consumed - 1], MAX_HEAD), Ok(None)),
            "a cut head is not incomplete"
        );
    }
    // The limit is about where the head ends, not how the bytes arrived.
    match parse_request(data, SMALL_HEAD) {
        Ok(Some((small, n))) if consumed <= SMALL_HEAD => {
            assert_eq!(n, consumed);
            assert_eq!(small.uri(), request.uri());
            assert_eq!(small.headers(), request.headers());
        }
        Err(rejection) if consumed > SMALL_HEAD => {
            assert_eq!(
                rejection.status().as_u16(),
                431,
                "a head over the limit refused with {}",
                rejection.status()
            );
        }
        other => panic!("a {consumed}-byte head under a {SMALL_HEAD}-byte limit gave {other:?}"),
    }

    let offer = match validate_request(&request) {
        Ok(offer) => offer,
        Err(rejection) => return check_rejection(&rejection),
    };
    // §4.2.1 item 5: the key is base64 of 16 bytes, and it is the one the request sent.
    let nonce: [u8; 16] = BASE64
        .decode(offer.key())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .expect("an accepted key is base64 of 16 bytes");
    let sent: Vec<_> = request
        .headers()
        .get_all("sec-websocket-key")
        .iter()
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].as_bytes(), offer.key().as_bytes());

    let protocol = offer.protocols().first().map(String::as_str);
    let mut out = Vec::new();
    encode_response(&offer.response(protocol, None), &mut out);
    let head = parse_http_response(&out).expect("the 101 response does not parse");
    assert_eq!(
        head.len,
        out.len(),
        "the 101 response has bytes after its head"
    );
    assert_eq!(head.status, 101);
    assert_eq!(
        head.values("sec-websocket-accept"),
        [reference_accept(offer.key()).into_bytes()]
    );
    assert!(head.has_token("upgrade", "websocket"));
    assert!(head.has_token("connection", "upgrade"));
    let expected_protocol: Vec<Vec<u8>> = protocol
        .map(|p| p.as_bytes().to_vec())
        .into_iter()
        .collect();
    assert_eq!(head.values("sec-websocket-protocol"), expected_protocol);

    // The client side must accept what the server side built for its own request.
    let uri = "ws://fuzz.invalid/".parse().expect("a valid URI");
    let client = ClientHandshake::new(&uri, nonce).expect("a valid URI");
    if let Ok(client) = client.try_protocols(offer.protocols().iter().cloned()) {
        let (response, n) = ClientHandshake::parse_response(&out, MAX_HEAD)
            .expect("our 101 parses")
            .expect("our 101 is complete");
        assert_eq!(n, out.len());
        let answer = client
            .validate(&response)
            .expect("the client refuses the server's 101");
        assert_eq!(answer.protocol.as_deref(), protocol);
    }
}

/// A rejection is a client error whose bytes are a complete response with a one-line body
/// and the headers §4.4 and RFC 7231 require for its status.
fn check_rejection(rejection: &Rejection) {
    let status = rejection.status();
    assert!(status.is_client_error(), "refused with {status}");
    if !matches!(rejection.error, HandshakeError::Refused { .. }) {
        assert_eq!(rejection.error.status(), status);
    }
    let bytes = rejection.to_bytes();
    let head = parse_http_response(&bytes).expect("the rejection does not parse as HTTP");
    assert_eq!(head.status, status.as_u16());
    let body = &bytes[head.len..];
    let length = head.values("content-length");
    assert_eq!(length.len(), 1);
    assert_eq!(
        length[0],
        body.len().to_string().into_bytes(),
        "Content-Length"
    );
    assert!(
        body.ends_with(b"\n") && body.iter().filter(|&&b| b == b'\n').count() == 1,
        "body is not one line"
    );
    assert!(std::str::from_utf8(body).is_ok());
    assert!(head.has_token("connection", "close"));
    if status.as_u16() == 426 {
        assert_eq!(head.values("sec-websocket-version"), [b"13".to_vec()]);
    }
    if status.as_u16() == 405 {
        assert_eq!(head.values("allow"), [b"GET".to_vec()]);
    }
}

/// The client side of the opening handshake on arbitrary bytes, for the RFC 6455 §1.3
/// sample key, offering two subprotocols and permessage-deflate.
pub fn handshake_response(data: &[u8]) {
    const NONCE: [u8; 16] = *b"the sample nonce";
    const OFFERED: [&str; 2] = ["chat", "superchat"];
    let uri = "ws://example.com/chat".parse().expect("a valid URI");
    let client = ClientHandshake::new(&uri, NONCE)
        .expect("a valid URI")
        .protocols(OFFERED)
        .extensions("permessage-deflate; client_max_window_bits");

    let (response, consumed) = match ClientHandshake::parse_response(data, MAX_HEAD) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            assert!(data.len() <= MAX_HEAD);
            return;
        }
        Err(_) => return,
    };
    assert!(consumed <= data.len());
    let head = parse_http_response(&data[..consumed]).expect("httparse disagrees about the head");
    assert_eq!(head.len, consumed);
    assert_eq!(head.status, response.status().as_u16());

    match client.validate(&response) {
        Ok(answer) => {
            assert_eq!(head.status, 101, "accepted a {} response", head.status);
            // §1.3: the accept value for "dGhlIHNhbXBsZSBub25jZQ==".
            assert_eq!(
                head.values("sec-websocket-accept"),
                [b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_vec()]
            );
            assert!(
                head.has_token("upgrade", "websocket"),
                "accepted without Upgrade: websocket"
            );
            assert!(
                head.has_token("connection", "upgrade"),
                "accepted without Connection: upgrade"
            );
            if let Some(protocol) = &answer.protocol {
                assert!(
                    OFFERED.contains(&protocol.as_str()),
                    "accepted unoffered subprotocol {protocol:?}"
                );
            }
            for extension in &answer.extensions {
                assert!(
                    extension.name.eq_ignore_ascii_case("permessage-deflate"),
                    "accepted {:?}",
                    extension.name
                );
            }
        }
        Err(HandshakeError::NotSwitchingProtocols(status)) => {
            assert_eq!(status.as_u16(), head.status);
            assert_ne!(head.status, 101);
        }
        Err(_) => assert_eq!(
            head.status, 101,
            "a {} response refused for another reason than its status",
            head.status
        ),
    }
}

/// `Sec-WebSocket-Accept` computed from RFC 6455 §4.2.2 step 5.4 directly.
fn reference_accept(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    BASE64.encode(sha1.finalize())
}

/// A response head as httparse reads it, independent of the code under test.
struct Head {
    status: u16,
    len: usize,
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// Every value of header `name`, in order.
    fn values(&self, name: &str) -> Vec<Vec<u8>> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Whether some value of `name` lists `token` (RFC 7230 §7 list, case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name).iter().any(|value| {
            value
                .split(|&b| b == b',')
                .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }
}

fn parse_http_response(bytes: &[u8]) -> Option<Head> {
    let mut lines = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut lines);
    let httparse::Status::Complete(len) = response.parse(bytes).ok()? else {
        return None;
    };
    let headers = response
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    Some(Head {
        status: response.code?,
        len,
        headers,
    })
}

// ----- UTF-8 -----

/// [`Utf8Validator`] fed arbitrary bytes in pieces (the first byte seeds the cuts), checked
/// against `std::str::from_utf8` after every piece: it must fail exactly when the prefix
/// so far cannot begin any valid UTF-8 (fail fast, §8.1), and finish exactly on valid input.
pub fn utf8(data: &[u8]) {
    let [seed, text @ ..] = data else { return };
    let mut sizes = ChunkSizes::new(*seed);
    let mut validator = Utf8Validator::new();
    let mut fed = 0;
    while fed < text.len() {
        let end = (fed + sizes.next()).min(text.len());
        let result = validator.feed(&text[fed..end]);
        fed = end;
        let doomed = matches!(std::str::from_utf8(&text[..fed]), Err(e) if e.error_len().is_some());
        assert_eq!(
            result.is_err(),
            doomed,
            "feed gave {result:?} after {fed} bytes"
        );
        if doomed {
            return;
        }
    }
    assert_eq!(
        validator.finish().is_ok(),
        std::str::from_utf8(text).is_ok(),
        "finish disagrees with std"
    );
}
