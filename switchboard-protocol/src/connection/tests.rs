//! Scenario tests for the state machine, grouped by RFC 6455 section.

use super::*;
use proptest::prelude::*;

/// Encodes one frame as a peer would send it.
fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        rsv,
        opcode: OpCode::from_u8(opcode).unwrap_or(OpCode::Binary),
        mask,
        payload_len: payload.len() as u64,
    };
    let mut out = vec![0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut out);
    out.truncate(n);
    out[0] = (out[0] & 0xf0) | opcode; // allow reserved opcodes in tests
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
    out
}

/// A frame from a client (masked with a fixed key).
fn c(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0, opcode, Some([0x37, 0xfa, 0x21, 0x3d]), payload)
}

fn server() -> Connection {
    Connection::server(Config::default())
}

fn client() -> Connection {
    Connection::client(Config::default(), || [1, 2, 3, 4])
}

/// Feeds `bytes` and collects events until more input is needed or an error occurs.
fn feed(conn: &mut Connection, bytes: &[u8]) -> (Vec<Event>, Option<ProtocolError>) {
    let mut buf = BytesMut::from(bytes);
    drain(conn, &mut buf)
}

fn drain(conn: &mut Connection, buf: &mut BytesMut) -> (Vec<Event>, Option<ProtocolError>) {
    let mut events = Vec::new();
    loop {
        match conn.poll_event(buf) {
            Ok(Some(e)) => events.push(e),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

fn output(conn: &mut Connection) -> Vec<u8> {
    let out = conn.output_chunks_vec().concat();
    conn.advance_output(out.len());
    out
}

/// The connection failed with `code`: it queued exactly one close frame carrying it, is
/// closed, and wants the transport closed once that frame is out.
fn assert_failing(conn: &mut Connection, error: Option<ProtocolError>, code: u16) {
    let error = error.expect("expected a protocol error");
    assert_eq!(error.close_code().0, code, "{error:?}");
    let out = output(conn);
    let (header, n) = FrameHeader::parse(&out).unwrap().unwrap();
    assert_eq!(header.opcode, OpCode::Close);
    assert_eq!(u16::from_be_bytes([out[n], out[n + 1]]), code);
    assert_eq!(
        n + header.payload_len as usize,
        out.len(),
        "nothing after the close frame"
    );
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.should_close_transport());
}

fn text(s: &str) -> Event {
    Event::Message(Message::Text(s.into()))
}

/// RFC 6455 §5.7: the worked examples, byte for byte.
mod examples_5_7 {
    use super::*;

    #[test]
    fn single_frame_unmasked_text_to_client() {
        let (events, err) = feed(&mut client(), &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!((events, err), (vec![text("Hello")], None));
    }

    #[test]
    fn single_frame_masked_text_to_server() {
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(feed(&mut server(), &bytes), (vec![text("Hello")], None));
    }

    #[test]
    fn fragmented_unmasked_text() {
        let bytes = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
        assert_eq!(feed(&mut client(), &bytes), (vec![text("Hello")], None));
    }

    #[test]
    fn unmasked_ping_and_masked_pong() {
        let mut conn = client();
        let (events, _) = feed(&mut conn, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(events, vec![Event::Ping(Bytes::from_static(b"Hello"))]);
        // Our pong, masked with the client's key [1, 2, 3, 4].
        let mut expect = vec![0x8a, 0x85, 1, 2, 3, 4];
        expect.extend(
            b"Hello"
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
        );
        assert_eq!(output(&mut conn), expect);
    }

    #[test]
    fn masked_pong_to_server() {
        let bytes = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            feed(&mut server(), &bytes).0,
            vec![Event::Pong(Bytes::from_static(b"Hello"))]
        );
    }

    #[test]
    fn binary_256_bytes_in_one_unmasked_frame() {
        let mut conn = server();
        conn.send(Message::Binary(Bytes::from(vec![7u8; 256])))
            .unwrap();
        let out = output(&mut conn);
        assert_eq!(&out[..4], &[0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);
    }

    #[test]
    fn binary_64_kib_in_one_unmasked_frame() {
        let mut conn = server();
        conn.send(Message::Binary(Bytes::from(vec![7u8; 65536])))
            .unwrap();
        let out = output(&mut conn);
        assert_eq!(&out[..10], &[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(out.len(), 10 + 65536);
    }
}

/// §5.1 and §5.3: who masks.
mod masking_5_1 {
    use super::*;

    #[test]
    fn server_rejects_unmasked_frame() {
        let mut conn = server();
        let (_, err) = feed(&mut conn, &frame(true, 0, 1, None, b"hi"));
        assert_failing(&mut conn, err, 1002);
    }

    #[test]
    fn client_rejects_masked_frame() {
        let mut conn = client();
        let (_, err) = feed(&mut conn, &c(true, 1, b"hi"));
        assert_eq!(err, Some(ProtocolError::MaskedFrame));
    }

    #[test]
    fn client_masks_with_a_fresh_key_per_frame() {
        let mut keys = [[9, 9, 9, 9], [5, 6, 7, 8]].into_iter();
        let mut conn = Connection::client(Config::default(), move || keys.next().unwrap());
        conn.send("a".into()).unwrap();
        conn.send("b".into()).unwrap();
        let out = output(&mut conn);
        assert_eq!(
            out,
            [
                0x81,
                0x81,
                9,
                9,
                9,
                9,
                b'a' ^ 9,
                0x81,
                0x81,
                5,
                6,
                7,
                8,
                b'b' ^ 5
            ]
        );
    }
}

/// §5.2: header rules.
mod framing_5_2 {
    use super::*;

    #[test]
    fn rsv_bits_without_extension_fail() {
        for rsv in 1..8 {
            let mut conn = server();
            let (_, err) = feed(&mut conn, &frame(true, rsv, 1, Some([0; 4]), b"x"));
            assert_eq!(err, Some(ProtocolError::ReservedBits(rsv)));
        }
    }

    #[test]
    fn reserved_opcodes_fail() {
        for op in [3u8, 7, 0xb, 0xf] {
            let mut conn = server();
            let (_, err) = feed(&mut conn, &c(true, op, b""));
            assert_failing(&mut conn, err, 1002);
        }
    }

    #[test]
    fn frame_over_the_limit_is_refused_from_its_header_alone() {
        let mut conn = Connection::server(Config::default().max_frame_size(1000));
        // Only the header of a 1 MiB frame: no payload has arrived.
        let header = &frame(true, 0, 2, Some([0; 4]), &vec![0; 1 << 20])[..14];
        let (_, err) = feed(&mut conn, header);
        assert_failing(&mut conn, err, 1009);
    }

    #[test]
    fn message_over_the_limit_is_refused_at_the_fragment_that_passes_it() {
        let mut conn = Connection::server(Config::default().max_message_size(10));
        let mut bytes = c(false, 2, &[0; 6]);
        bytes.extend(&c(true, 0, &[0; 6])[..6]); // header of the second fragment only
        let (events, err) = feed(&mut conn, &bytes);
        assert!(events.is_empty());
        assert_failing(&mut conn, err, 1009);
    }
}

/// §5.4: fragmentation.
mod fragmentation_5_4 {
    use super::*;

    #[test]
    fn control_frames_may_be_interleaved() {
        let mut bytes = c(false, 1, b"Hel");
        bytes.extend(c(true, 9, b"p"));
        bytes.extend(c(false, 0, b"l"));
        bytes.extend(c(true, 0, b"o"));
        let mut conn = server();
        let (events, err) = feed(&mut conn, &bytes);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![Event::Ping(Bytes::from_static(b"p")), text("Hello")]
        );
        assert_eq!(output(&mut conn), [0x8a, 0x01, b'p']);
    }

    #[test]
    fn continuation_without_a_message_fails() {
        let mut conn = server();
        let (_, err) = feed(&mut conn, &c(true, 0, b"x"));
        assert_eq!(err, Some(ProtocolError::UnexpectedContinuation));
    }

    #[test]
    fn new_message_inside_a_fragmented_one_fails() {
        let mut bytes = c(false, 1, b"a");
        bytes.extend(c(true, 2, b"b"));
        let mut conn = server();
        let (_, err) = feed(&mut conn, &bytes);
        assert_failing(&mut conn, err, 1002);
    }

    #[test]
    fn empty_fragments_make_an_empty_message() {
        let mut bytes = c(false, 2, b"");
        bytes.extend(c(false, 0, b""));
        bytes.extend(c(true, 0, b""));
        let (events, _) = feed(&mut server(), &bytes);
        assert_eq!(events, vec![Event::Message(Message::Binary(Bytes::new()))]);
    }
}

/// §5.5: control frames.
mod control_5_5 {
    use super::*;

    #[test]
    fn fragmented_control_frame_fails() {
        let mut conn = server();
        let (_, err) = feed(&mut conn, &c(false, 9, b""));
        assert_failing(&mut conn, err, 1002);
    }

    #[test]
    fn control_frame_over_125_bytes_fails() {
        let mut conn = server();
        let (_, err) = feed(&mut conn, &c(true, 9, &[0; 126]));
        assert_eq!(err, Some(ProtocolError::ControlTooLong(126)));
    }

    #[test]
    fn ping_payload_over_125_bytes_cannot_be_sent() {
        assert_eq!(
            server().ping(Bytes::from(vec![0; 126])),
            Err(SendError::ControlTooLong(126))
        );
    }
}

/// §5.5.1 and §7: the close handshake.
mod close_7 {
    use super::*;

    fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason);
        p
    }

    #[test]
    fn peer_close_is_echoed_once_and_server_closes_tcp() {
        let mut conn = server();
        let (events, err) = feed(&mut conn, &c(true, 8, &close_payload(4000, b"bye")));
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![Event::Close(Some(CloseFrame::new(CloseCode(4000), "bye")))]
        );
        assert_eq!(
            output(&mut conn),
            [&[0x88, 0x05][..], &close_payload(4000, b"bye")].concat()
        );
        assert_eq!(conn.state(), State::Closed);
        assert!(conn.should_close_transport());
        let info = conn.close_info().unwrap();
        assert_eq!(
            (info.code, info.initiator, info.clean),
            (CloseCode(4000), Initiator::Remote, true)
        );
        // Anything after the close is discarded, and nothing more is sent.
        assert_eq!(feed(&mut conn, &c(true, 9, b"late")).0, vec![]);
        assert!(conn.output_chunks_vec().is_empty());
        assert_eq!(conn.send("x".into()), Err(SendError::Closed));
    }

    #[test]
    fn empty_close_is_answered_with_an_empty_close() {
        let mut conn = server();
        let (events, _) = feed(&mut conn, &c(true, 8, b""));
        assert_eq!(events, vec![Event::Close(None)]);
        assert_eq!(output(&mut conn), [0x88, 0x00]);
        assert_eq!(conn.close_info().unwrap().code, CloseCode::NO_STATUS);
    }

    #[test]
    fn local_close_then_peer_reply_completes_cleanly() {
        let mut conn = client();
        conn.close(Some(CloseFrame::new(CloseCode::NORMAL, "done")))
            .unwrap();
        assert_eq!(conn.state(), State::Closing);
        assert_eq!(conn.send("x".into()), Err(SendError::Closed));
        output(&mut conn);
        // Data the server sent before seeing our close still arrives.
        let mut bytes = frame(true, 0, 1, None, b"late");
        bytes.extend(frame(true, 0, 8, None, &close_payload(1000, b"")));
        let (events, _) = feed(&mut conn, &bytes);
        assert_eq!(
            events,
            vec![
                text("late"),
                Event::Close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
            ]
        );
        assert!(
            conn.output_chunks_vec().is_empty(),
            "a close is answered only once"
        );
        assert_eq!(conn.state(), State::Closed);
        // A client waits for the server to close TCP.
        assert!(!conn.should_close_transport());
        conn.handle_eof();
        assert!(conn.should_close_transport());
        let info = conn.close_info().unwrap();
        assert_eq!((info.initiator, info.clean), (Initiator::Local, true));
    }

    #[test]
    fn one_byte_close_payload_fails() {
        let mut conn = server();
        let (_, err) = feed(&mut conn, &c(true, 8, &[0x03]));
        assert_failing(&mut conn, err, 1002);
    }

    #[test]
    fn invalid_close_codes_fail() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let mut conn = server();
            let (_, err) = feed(&mut conn, &c(true, 8, &close_payload(code, b"")));
            assert_eq!(
                err,
                Some(ProtocolError::InvalidCloseCode(code)),
                "code {code}"
            );
        }
    }

    #[test]
    fn valid_close_codes_are_echoed() {
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            let mut conn = server();
            let (_, err) = feed(&mut conn, &c(true, 8, &close_payload(code, b"")));
            assert_eq!(err, None, "code {code}");
            assert_eq!(&output(&mut conn)[2..4], &code.to_be_bytes());
        }
    }

    #[test]
    fn invalid_utf8_close_reason_fails_with_1007() {
        let mut conn = server();
        let (_, err) = feed(&mut conn, &c(true, 8, &close_payload(1000, b"\xff")));
        assert_failing(&mut conn, err, 1007);
    }

    #[test]
    fn reserved_codes_cannot_be_sent() {
        for code in [1005u16, 1006, 1015, 999] {
            let err = server().close(Some(CloseFrame::new(CloseCode(code), "")));
            assert_eq!(err, Err(SendError::InvalidCloseCode(code)));
        }
    }

    #[test]
    fn eof_without_close_is_abnormal() {
        let mut conn = server();
        conn.handle_eof();
        assert_eq!(conn.state(), State::Closed);
        assert_eq!(conn.close_info().unwrap().code, CloseCode::ABNORMAL);
        assert!(!conn.close_info().unwrap().clean);
    }
}

/// §8.1: text must be UTF-8, checked as it arrives.
mod utf8_8_1 {
    use super::*;

    #[test]
    fn invalid_utf8_fails_before_the_frame_is_complete() {
        let payload = b"valid start \xce\xba then \xff and much more text that never arrives";
        let bytes = c(true, 1, payload);
        let cut = 6 + payload.iter().position(|&b| b == 0xff).unwrap() + 1;
        let mut conn = server();
        let (_, err) = feed(&mut conn, &bytes[..cut]);
        assert_failing(&mut conn, err, 1007);
    }

    #[test]
    fn invalid_utf8_in_a_whole_frame_fails_the_same_way() {
        // The whole frame in one buffer takes the one-step path; the verdict is the same.
        for payload in [
            &b"\xff"[..],
            b"ok then \xce",
            &[b'a'; 300][..299]
                .iter()
                .copied()
                .chain([0xc0])
                .collect::<Vec<_>>(),
        ] {
            let mut conn = server();
            let (events, err) = feed(&mut conn, &c(true, 1, payload));
            assert!(events.is_empty());
            assert_failing(&mut conn, err, 1007);
        }
    }

    #[test]
    fn invalid_utf8_in_a_later_fragment_fails_at_that_fragment() {
        let mut bytes = c(false, 1, "κόσμε".as_bytes());
        bytes.extend(c(false, 0, b"\xed\xa0\x80")); // a UTF-16 surrogate
        let mut conn = server();
        let (_, err) = feed(&mut conn, &bytes);
        assert_eq!(err, Some(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn code_point_split_across_fragments_is_fine() {
        let bytes = "κ".as_bytes();
        let mut all = c(false, 1, &bytes[..1]);
        all.extend(c(true, 0, &bytes[1..]));
        assert_eq!(feed(&mut server(), &all), (vec![text("κ")], None));
    }

    #[test]
    fn message_ending_inside_a_code_point_fails() {
        let (_, err) = feed(&mut server(), &c(true, 1, &"κ".as_bytes()[..1]));
        assert_eq!(err, Some(ProtocolError::InvalidUtf8));
    }
}

/// Output queue: coalescing, vectored chunks, buffered amount.
mod output {
    use super::*;

    #[test]
    fn small_frames_coalesce_into_one_chunk() {
        let mut conn = server();
        for _ in 0..10 {
            conn.send("hi".into()).unwrap();
        }
        assert_eq!(conn.output_chunks_vec().len(), 1);
        assert_eq!(conn.buffered_amount(), 40);
    }

    #[test]
    fn large_payloads_are_not_copied() {
        let mut conn = server();
        let payload = Bytes::from(vec![1u8; 10_000]);
        conn.send(Message::Binary(payload.clone())).unwrap();
        let chunks = conn.output_chunks_vec();
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            chunks[1].as_ptr(),
            payload.as_ptr(),
            "the payload chunk is the caller's bytes"
        );
        let mut slices = [IoSlice::new(&[]); 1];
        assert_eq!(conn.output_chunks(&mut slices), 1);
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut conn = server();
        conn.send(Message::Binary(Bytes::from(vec![1u8; 5000])))
            .unwrap();
        conn.send("tail".into()).unwrap();
        let all = conn.output_chunks_vec().concat();
        let mut written = Vec::new();
        while conn.buffered_amount() > 0 {
            let first = conn.output_chunks_vec()[0];
            let n = first.len().min(777);
            written.extend_from_slice(&first[..n]);
            conn.advance_output(n);
        }
        assert_eq!(written, all);
    }

    /// One step of a sender: queue a message of this many bytes, or write up to this many
    /// bytes of output (through the vectored or the one-slice view).
    #[derive(Debug, Clone)]
    enum Step {
        Send(usize),
        Write { max: usize, vectored: bool },
    }

    fn any_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0usize..9000).prop_map(Step::Send),
            (1usize..6000, any::<bool>()).prop_map(|(max, vectored)| Step::Write { max, vectored }),
        ]
    }

    proptest! {
        #[test]
        fn interleaved_sends_and_partial_writes_keep_the_byte_stream(
            steps in proptest::collection::vec(any_step(), 1..40)
        ) {
            let mut conn = server();
            let mut expected = Vec::new();
            let mut written = Vec::new();
            for (i, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Send(size) => {
                        let message = Message::Binary(Bytes::from(vec![i as u8; size]));
                        let mut alone = server();
                        alone.send(message.clone()).unwrap();
                        expected.extend(output(&mut alone));
                        conn.send(message).unwrap();
                    }
                    Step::Write { max, vectored } => {
                        let front: Vec<u8> = match (vectored, conn.contiguous_output()) {
                            (false, Some(bytes)) => bytes.to_vec(),
                            _ => {
                                let mut slices = [IoSlice::new(&[]); 4];
                                let n = conn.output_chunks(&mut slices);
                                slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
                            }
                        };
                        let n = front.len().min(max);
                        written.extend_from_slice(&front[..n]);
                        conn.advance_output(n);
                    }
                }
                prop_assert_eq!(conn.buffered_amount(), expected.len() - written.len());
            }
            written.extend(output(&mut conn));
            prop_assert_eq!(written, expected);
        }
    }
}

/// Fan-out: one encoding shared by many connections.
mod prepared {
    use super::*;

    #[test]
    fn server_connections_share_the_encoded_frame() {
        let prepared = PreparedMessage::new(Message::Binary(Bytes::from(vec![3u8; 8000])));
        let mut a = server();
        let mut b = server();
        a.send_prepared(&prepared).unwrap();
        b.send_prepared(&prepared).unwrap();
        assert_eq!(a.output_chunks_vec()[0].as_ptr(), prepared.frame().as_ptr());
        assert_eq!(b.output_chunks_vec()[0].as_ptr(), prepared.frame().as_ptr());
        let mut direct = server();
        direct.send(prepared.message().clone()).unwrap();
        assert_eq!(output(&mut a), output(&mut direct));
    }

    #[test]
    fn small_prepared_frames_coalesce_with_other_output() {
        let prepared = PreparedMessage::new("hi".into());
        let mut conn = server();
        conn.send("a".into()).unwrap();
        conn.send_prepared(&prepared).unwrap();
        assert_eq!(
            output(&mut conn),
            [0x81, 0x01, b'a', 0x81, 0x02, b'h', b'i']
        );
    }

    #[test]
    fn a_client_encodes_prepared_messages_itself() {
        let prepared = PreparedMessage::new("hi".into());
        let mut conn = client();
        conn.send_prepared(&prepared).unwrap();
        let (events, err) = feed(&mut server(), &output(&mut conn));
        assert_eq!((events, err), (vec![text("hi")], None));
    }
}

/// A client and a server connected back to back.
mod pair {
    use super::*;

    fn pipe(from: &mut Connection, to: &mut Connection) -> Vec<Event> {
        let bytes = output(from);
        let (events, err) = feed(to, &bytes);
        assert_eq!(err, None);
        events
    }

    #[test]
    fn messages_and_close_both_ways() {
        let (mut cl, mut sv) = (client(), server());
        cl.send("hello".into()).unwrap();
        cl.send(Message::Binary(Bytes::from_static(&[0, 1, 2])))
            .unwrap();
        assert_eq!(
            pipe(&mut cl, &mut sv),
            vec![
                text("hello"),
                Event::Message(Message::Binary(Bytes::from_static(&[0, 1, 2])))
            ]
        );
        sv.close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "restart")))
            .unwrap();
        assert_eq!(
            pipe(&mut sv, &mut cl),
            vec![Event::Close(Some(CloseFrame::new(
                CloseCode::GOING_AWAY,
                "restart"
            )))]
        );
        assert_eq!(
            pipe(&mut cl, &mut sv),
            vec![Event::Close(Some(CloseFrame::new(
                CloseCode::GOING_AWAY,
                "restart"
            )))]
        );
        assert!(sv.should_close_transport());
        assert_eq!(sv.close_info().unwrap().initiator, Initiator::Local);
        assert_eq!(cl.close_info().unwrap().initiator, Initiator::Remote);
    }
}

/// RFC 7692 on a connection: RSV1, fragments, limits, text validation after inflation.
mod deflate_7692 {
    use super::*;
    use crate::deflate::{DeflateConfig, DeflateParams};

    const TAKEOVER: DeflateParams = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };

    fn config(max_message: usize) -> Config {
        Config::default()
            .max_message_size(max_message)
            .deflate(Some(DeflateConfig {
                threshold: 0,
                ..DeflateConfig::default()
            }))
    }

    fn pair(params: DeflateParams, max_message: usize) -> (Connection, Connection) {
        let cl = Connection::client(config(max_message), || [9, 8, 7, 6]).with_deflate(params);
        let sv = Connection::server(config(max_message)).with_deflate(params);
        (cl, sv)
    }

    /// Compressed frames as the peer would send them: RSV1 on the first frame only.
    fn compressed_frames(
        deflate: &mut Deflate,
        opcode: u8,
        payload: &[u8],
        parts: usize,
        key: Option<[u8; 4]>,
    ) -> Vec<u8> {
        let mut data = BytesMut::new();
        deflate.compress(payload, &mut data);
        let step = data.len().div_ceil(parts.max(1)).max(1);
        let chunks: Vec<&[u8]> = data.chunks(step).collect();
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let (op, rsv) = if i == 0 { (opcode, 0b100) } else { (0, 0) };
            out.extend(frame(i + 1 == chunks.len(), rsv, op, key, chunk));
        }
        out
    }

    #[test]
    fn messages_round_trip_both_ways_with_rsv1_set() {
        let (mut cl, mut sv) = pair(TAKEOVER, 1 << 20);
        let text_msg = Message::Text("compress me ".repeat(50).into());
        cl.send(text_msg.clone()).unwrap();
        let wire = output(&mut cl);
        assert_eq!(wire[0], 0xc1, "FIN + RSV1 + text");
        assert!(
            wire.len() < 100,
            "600 repetitive bytes compress well, got {}",
            wire.len()
        );
        assert_eq!(
            feed(&mut sv, &wire),
            (vec![Event::Message(text_msg.clone())], None)
        );
        sv.send(text_msg.clone()).unwrap();
        let wire = output(&mut sv);
        assert_eq!(feed(&mut cl, &wire), (vec![Event::Message(text_msg)], None));
    }

    #[test]
    fn fragmented_compressed_message_with_interleaved_ping() {
        let (_, mut sv) = pair(TAKEOVER, 1 << 20);
        let mut peer = Deflate::new(Role::Client, TAKEOVER, &DeflateConfig::default());
        let payload = "ζ fragmented and compressed ".repeat(40);
        let mut bytes = compressed_frames(&mut peer, 1, payload.as_bytes(), 3, Some([1, 2, 3, 4]));
        // A ping between the first and second fragment.
        let first_len = FrameHeader::parse(&bytes)
            .unwrap()
            .map(|(h, n)| n + h.payload_len as usize)
            .unwrap();
        let ping = c(true, 9, b"p");
        bytes.splice(first_len..first_len, ping);
        let (events, err) = feed(&mut sv, &bytes);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![Event::Ping(Bytes::from_static(b"p")), text(&payload)]
        );
    }

    #[test]
    fn rsv1_on_a_continuation_or_control_frame_fails() {
        let (_, mut sv) = pair(TAKEOVER, 1 << 20);
        let mut bytes = frame(false, 0b100, 1, Some([0; 4]), &[0x00]);
        bytes.extend(frame(true, 0b100, 0, Some([0; 4]), &[0x00]));
        let (_, err) = feed(&mut sv, &bytes);
        assert_eq!(err, Some(ProtocolError::ReservedBits(0b100)));
        let (_, mut sv) = pair(TAKEOVER, 1 << 20);
        let (_, err) = feed(&mut sv, &frame(true, 0b100, 9, Some([0; 4]), b""));
        assert_eq!(err, Some(ProtocolError::ReservedBits(0b100)));
    }

    #[test]
    fn a_bomb_is_refused_with_1009_at_the_limit() {
        let (_, mut sv) = pair(TAKEOVER, 64 << 10);
        let mut peer = Deflate::new(
            Role::Client,
            TAKEOVER,
            &DeflateConfig {
                level: 9,
                ..DeflateConfig::default()
            },
        );
        let bytes = compressed_frames(&mut peer, 2, &vec![0u8; 8 << 20], 1, Some([5, 5, 5, 5]));
        assert!(
            bytes.len() < 16 << 10,
            "8 MiB of zeros deflates to {} bytes",
            bytes.len()
        );
        let (events, err) = feed(&mut sv, &bytes);
        assert!(events.is_empty());
        assert_failing(&mut sv, err, 1009);
    }

    #[test]
    fn invalid_utf8_after_inflation_fails_with_1007() {
        let (_, mut sv) = pair(TAKEOVER, 1 << 20);
        let mut peer = Deflate::new(Role::Client, TAKEOVER, &DeflateConfig::default());
        let bytes = compressed_frames(&mut peer, 1, b"valid \xff invalid", 1, Some([1, 1, 1, 1]));
        let (_, err) = feed(&mut sv, &bytes);
        assert_failing(&mut sv, err, 1007);
    }

    #[test]
    fn corrupt_deflate_data_fails_with_1007() {
        let (_, mut sv) = pair(TAKEOVER, 1 << 20);
        let (_, err) = feed(
            &mut sv,
            &frame(true, 0b100, 2, Some([0; 4]), &[0xff, 0xff, 0xff, 0xff]),
        );
        assert_failing(&mut sv, err, 1007);
    }

    /// [`drain`] for a connection that defers inflation: every frame handed out is
    /// inflated as a shell would, away from the connection.
    fn drain_deferred(
        conn: &mut Connection,
        buf: &mut BytesMut,
    ) -> (Vec<Event>, Option<ProtocolError>, usize) {
        let (mut events, mut jobs) = (Vec::new(), 0);
        loop {
            match conn.poll_event(buf) {
                Ok(Some(e)) => events.push(e),
                Ok(None) => match conn.take_inflation() {
                    Some(mut job) => {
                        jobs += 1;
                        // The connection parses nothing while the frame is out.
                        assert_eq!(conn.poll_event(buf), Ok(None));
                        job.run();
                        match conn.finish_inflation(job) {
                            Ok(Some(e)) => events.push(e),
                            Ok(None) => {}
                            Err(e) => return (events, Some(e), jobs),
                        }
                    }
                    None => return (events, None, jobs),
                },
                Err(e) => return (events, Some(e), jobs),
            }
        }
    }

    #[test]
    fn deferred_inflation_gives_what_inline_inflation_gives() {
        let mut peer = Deflate::new(Role::Client, TAKEOVER, &DeflateConfig::default());
        let big = "fragmented and compressed ".repeat(400);
        let mut wire = compressed_frames(&mut peer, 1, big.as_bytes(), 5, Some([1, 2, 3, 4]));
        wire.extend(frame(true, 0, 9, Some([5; 4]), b"ping"));
        wire.extend(compressed_frames(&mut peer, 2, &[7; 3000], 1, Some([4; 4])));
        let (_, mut inline) = pair(TAKEOVER, 1 << 20);
        let (expected, error) = feed(&mut inline, &wire);
        assert_eq!(error, None);
        assert_eq!(expected.len(), 3);
        let pong = output(&mut inline);
        // In one buffer and byte by byte.
        for step in [wire.len(), 1] {
            let (_, mut sv) = pair(TAKEOVER, 1 << 20);
            sv.defer_inflation(true);
            let (mut events, mut jobs) = (Vec::new(), 0);
            let mut buf = BytesMut::new();
            for chunk in wire.chunks(step) {
                buf.extend_from_slice(chunk);
                let (more, error, n) = drain_deferred(&mut sv, &mut buf);
                assert_eq!(error, None);
                events.extend(more);
                jobs += n;
            }
            assert_eq!(events, expected, "step {step}");
            assert_eq!(jobs, 6, "one per compressed frame");
            assert_eq!(output(&mut sv), pong, "the same pong");
        }
    }

    #[test]
    fn deferred_inflation_fails_as_inline_inflation_does() {
        let mut peer = Deflate::new(Role::Client, TAKEOVER, &DeflateConfig::default());
        let invalid = compressed_frames(&mut peer, 1, b"valid \xff invalid", 1, Some([1; 4]));
        let (_, mut sv) = pair(TAKEOVER, 1 << 20);
        sv.defer_inflation(true);
        let (_, error, _) = drain_deferred(&mut sv, &mut BytesMut::from(&invalid[..]));
        assert_failing(&mut sv, error, 1007);

        let mut peer = Deflate::new(Role::Client, TAKEOVER, &DeflateConfig::default());
        let big = compressed_frames(&mut peer, 2, &[0; 5000], 2, Some([1; 4]));
        let (_, mut sv) = pair(TAKEOVER, 4096);
        sv.defer_inflation(true);
        let (_, error, _) = drain_deferred(&mut sv, &mut BytesMut::from(&big[..]));
        assert_failing(&mut sv, error, 1009);
    }

    #[test]
    fn sending_goes_on_while_a_frame_is_out_and_a_failure_meanwhile_discards_it() {
        let mut peer = Deflate::new(Role::Client, TAKEOVER, &DeflateConfig::default());
        let wire = compressed_frames(&mut peer, 1, "x".repeat(2000).as_bytes(), 1, Some([1; 4]));
        let (mut cl, mut sv) = pair(TAKEOVER, 1 << 20);
        sv.defer_inflation(true);
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(sv.poll_event(&mut buf), Ok(None));
        let mut job = sv.take_inflation().unwrap();
        // The writer's side works meanwhile: its compressor is not lent.
        sv.send(Message::Text("compressed reply ".repeat(20).into()))
            .unwrap();
        job.run();
        assert!(matches!(
            sv.finish_inflation(job),
            Ok(Some(Event::Message(Message::Text(_))))
        ));
        let (events, error) = feed(&mut cl, &output(&mut sv));
        assert_eq!((events.len(), error), (1, None));

        let mut buf = BytesMut::from(&wire[..]);
        let (_, mut sv) = pair(TAKEOVER, 1 << 20);
        sv.defer_inflation(true);
        assert_eq!(sv.poll_event(&mut buf), Ok(None));
        let job = sv.take_inflation().unwrap();
        sv.handle_eof();
        assert_eq!(sv.finish_inflation(job), Ok(None));
    }

    proptest! {
        #[test]
        fn round_trip_under_any_parameters(messages in proptest::collection::vec(any_message(), 1..6),
                                           server_nct in any::<bool>(), client_nct in any::<bool>(),
                                           server_bits in 9u8..=15, client_bits in 9u8..=15) {
            let params = DeflateParams {
                server_no_context_takeover: server_nct,
                client_no_context_takeover: client_nct,
                server_max_window_bits: server_bits,
                client_max_window_bits: client_bits,
            };
            let (mut cl, mut sv) = pair(params, 1 << 20);
            for m in &messages {
                cl.send(m.clone()).unwrap();
                sv.send(m.clone()).unwrap();
            }
            let expect: Vec<Event> = messages.into_iter().map(Event::Message).collect();
            prop_assert_eq!(feed(&mut sv, &output(&mut cl)), (expect.clone(), None));
            prop_assert_eq!(feed(&mut cl, &output(&mut sv)), (expect, None));
        }
    }
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        "\\PC{0,200}".prop_map(|s| Message::Text(s.into())),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| Message::Binary(b.into())),
    ]
}

/// A message as frames: split into `parts` fragments, with pings interleaved.
fn fragments(message: &Message, parts: usize, key: [u8; 4]) -> Vec<u8> {
    let (opcode, data) = match message {
        Message::Text(t) => (1, t.as_bytes().to_vec()),
        Message::Binary(b) => (2, b.to_vec()),
    };
    let parts = parts.max(1);
    let step = data.len().div_ceil(parts).max(1);
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(step).collect()
    };
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 { opcode } else { 0 };
        out.extend(frame(i + 1 == chunks.len(), 0, op, Some(key), chunk));
        if i + 1 < chunks.len() {
            out.extend(frame(true, 0, 9, Some(key), b"x"));
        }
    }
    out
}

proptest! {
    /// Encode → decode: what a client sends is what the server receives.
    #[test]
    fn client_to_server_round_trip(messages in proptest::collection::vec(any_message(), 1..8)) {
        let mut cl = Connection::client(Config::default(), || [0xde, 0xad, 0xbe, 0xef]);
        let mut sv = server();
        for m in &messages {
            cl.send(m.clone()).unwrap();
        }
        let (events, err) = feed(&mut sv, &output(&mut cl));
        prop_assert_eq!(err, None);
        let received: Vec<Event> = messages.into_iter().map(Event::Message).collect();
        prop_assert_eq!(events, received);
    }

    /// Any split of the input bytes yields the same events as feeding them whole.
    #[test]
    fn any_split_yields_the_same_events(messages in proptest::collection::vec(any_message(), 1..5),
                                        parts in 1usize..5, key in any::<[u8; 4]>(),
                                        mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let bytes: Vec<u8> = messages.iter().flat_map(|m| fragments(m, parts, key)).collect();
        let (whole, err) = feed(&mut server(), &bytes);
        prop_assert_eq!(err, None);
        let mut cuts: Vec<usize> = cuts.drain(..).map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut conn = server();
        let mut buf = BytesMut::new();
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            buf.extend_from_slice(&bytes[start..cut]);
            start = cut;
            let (events, err) = drain(&mut conn, &mut buf);
            prop_assert_eq!(err, None);
            pieces.extend(events);
        }
        prop_assert_eq!(pieces, whole);
    }
}

/// `send`'s inline case (a server's frame of at most 125 bytes, written as two header bytes
/// and a copy) must put on the wire exactly what the general encoder does, at every length
/// around the boundary and for both data opcodes, alone and behind other queued frames.
#[test]
fn short_server_frames_match_the_general_encoder() {
    for len in [0usize, 1, 20, 124, 125, 126, 127, 300] {
        for text in [true, false] {
            let payload = vec![b'a'; len];
            let message = if text {
                Message::Text(String::from_utf8(payload.clone()).unwrap().into())
            } else {
                Message::Binary(payload.clone().into())
            };
            let mut conn = server();
            conn.send(message.clone()).unwrap();
            conn.send(message).unwrap();
            let opcode = if text { 0x1 } else { 0x2 };
            let one = frame(true, 0, opcode, None, &payload);
            let expected = [one.clone(), one].concat();
            assert_eq!(
                conn.output_chunks_vec().concat(),
                expected,
                "len {len}, text {text}"
            );
            assert_eq!(conn.buffered_amount(), expected.len());
            conn.advance_output(expected.len());
            assert_eq!(conn.buffered_amount(), 0);
            assert!(conn.output_chunks_vec().is_empty());
        }
    }
}
