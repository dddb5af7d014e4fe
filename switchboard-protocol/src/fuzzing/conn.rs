//! The connection targets: a server or client `Connection` fed arbitrary bytes after the
//! handshake, in one piece and in chunks.

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::connection::{CloseInfo, Connection, Event, Initiator, State};
use crate::deflate::{DeflateConfig, DeflateParams};
use crate::error::ProtocolError;
use crate::frame::{apply_mask, FrameHeader, OpCode, Role};
use crate::message::Message;
use bytes::BytesMut;

use super::ChunkSizes;

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
pub(super) fn deflate_params(bits: u8) -> DeflateParams {
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
pub(super) fn connection(role: Role, config: Config, deflate: Option<DeflateParams>) -> Connection {
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
pub(super) fn check_event(event: &Event, config: &Config) {
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
    check_close_info(options, run);
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

/// The state and [`CloseInfo`] after the run agree with how it ended (§7.1.5–§7.1.7):
/// who closed first, with which code, and whether both close frames were exchanged.
fn check_close_info(options: &ConnOptions, run: &Run) {
    let peer_close = run.events.iter().find_map(|event| match event {
        Event::Close(frame) => Some(frame),
        _ => None,
    });
    let ours = options.close_first.then_some(CloseCode::NORMAL);
    let expected = match (&run.error, peer_close) {
        (Some(_), Some(_)) => panic!("an error after the peer's close"),
        (Some(error), None) => Some((ours.unwrap_or(error.close_code()), Initiator::Local, false)),
        (None, Some(frame)) => Some(match ours {
            Some(code) => (code, Initiator::Local, true),
            None => (
                frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code),
                Initiator::Remote,
                true,
            ),
        }),
        (None, None) => ours.map(|code| (code, Initiator::Local, false)),
    };
    let actual = run
        .close_info
        .as_ref()
        .map(|info| (info.code, info.initiator, info.clean));
    assert_eq!(
        actual, expected,
        "close info {:?} after {:?}",
        run.close_info, run.error
    );
    let state = match (&run.error, peer_close, ours) {
        (Some(_), _, _) | (_, Some(_), _) => State::Closed,
        (None, None, Some(_)) => State::Closing,
        (None, None, None) => State::Open,
    };
    assert_eq!(run.state, state);
}

/// Splits the output into frames with [`FrameHeader::parse`], checking each header against
/// what this end may send (§5.1 masking, §5.5 control frames, RFC 7692 §6 RSV1).
pub(super) fn parse_output(
    role: Role,
    deflate: bool,
    mut out: &[u8],
) -> Vec<(FrameHeader, Vec<u8>)> {
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
