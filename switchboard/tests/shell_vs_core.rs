//! The tokio `WebSocket` against a bare protocol `Connection` over `tokio::io::duplex`:
//! every test checks what the shell does on the wire, as the core on the other end sees it.

mod common;

use bytes::Bytes;
use common::{masked_frame, unmasked_frame, Peer};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use switchboard::{
    CloseCode, CloseFrame, ErrorKind, Initiator, Message, State, WebSocket, WebSocketConfig,
};
use switchboard_protocol::{Config, Connection, Event};
use tokio::io::{duplex, DuplexStream};

fn server_pair() -> (WebSocket<DuplexStream>, Peer<DuplexStream>) {
    let (a, b) = duplex(1 << 16);
    let ws = WebSocket::from_connection(
        a,
        Connection::server(Config::default()),
        &WebSocketConfig::default(),
    );
    (ws, Peer::client(b))
}

fn client_pair() -> (WebSocket<DuplexStream>, Peer<DuplexStream>) {
    let (a, b) = duplex(1 << 16);
    let conn = Connection::client(Config::default(), || [9, 8, 7, 6]);
    let ws = WebSocket::from_connection(a, conn, &WebSocketConfig::default());
    (ws, Peer::server(b))
}

fn text(s: &str) -> Message {
    Message::Text(s.into())
}

mod messages {
    use super::*;

    #[tokio::test]
    async fn text_and_binary_both_ways() {
        let (mut ws, mut peer) = server_pair();
        peer.conn.send(text("hello")).unwrap();
        peer.conn
            .send(Message::Binary(Bytes::from_static(&[0, 1, 2, 255])))
            .unwrap();
        peer.flush().await;
        assert_eq!(ws.recv().await.unwrap().unwrap(), text("hello"));
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::Binary(Bytes::from_static(&[0, 1, 2, 255]))
        );

        // Bigger than the pipe: the peer must read while `send` writes.
        let sender = tokio::spawn(async move {
            ws.send("hi back").await.unwrap();
            ws.send(vec![7u8; 70_000]).await.unwrap();
            ws
        });
        assert_eq!(peer.expect_event().await, Event::Message(text("hi back")));
        assert_eq!(
            peer.expect_event().await,
            Event::Message(Message::Binary(vec![7u8; 70_000].into()))
        );
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn client_role_masks_and_reads_unmasked() {
        let (mut ws, mut peer) = client_pair();
        ws.send("from client").await.unwrap();
        // The server core rejects unmasked frames, so arriving at all proves masking.
        assert_eq!(
            peer.expect_event().await,
            Event::Message(text("from client"))
        );
        peer.conn.send(text("from server")).unwrap();
        peer.flush().await;
        assert_eq!(ws.recv().await.unwrap().unwrap(), text("from server"));
    }

    #[tokio::test]
    async fn fragmented_message_with_interleaved_ping() {
        let (mut ws, mut peer) = server_pair();
        let mut bytes = masked_frame(false, 0x1, b"frag");
        bytes.extend(masked_frame(true, 0x9, b"mid"));
        bytes.extend(masked_frame(false, 0x0, b"men"));
        bytes.extend(masked_frame(true, 0x0, b"ted"));
        peer.write_raw(&bytes).await;
        assert_eq!(ws.recv().await.unwrap().unwrap(), text("fragmented"));
        let recv = tokio::spawn(async move {
            let _ = ws.recv().await;
        });
        assert_eq!(
            peer.expect_event().await,
            Event::Pong(Bytes::from_static(b"mid"))
        );
        recv.abort();
    }

    #[tokio::test]
    async fn feed_then_flush_coalesces() {
        let (mut ws, mut peer) = server_pair();
        for i in 0..10 {
            ws.feed(format!("m{i}")).await.unwrap();
        }
        assert!(ws.buffered_amount() > 0, "fed messages wait for flush");
        ws.flush().await.unwrap();
        assert_eq!(ws.buffered_amount(), 0);
        for i in 0..10 {
            assert_eq!(
                peer.expect_event().await,
                Event::Message(text(&format!("m{i}")))
            );
        }
    }

    #[tokio::test]
    async fn recv_flushes_fed_messages_before_waiting() {
        let (mut ws, mut peer) = server_pair();
        ws.feed("queued").await.unwrap();
        let task = tokio::spawn(async move {
            let got = ws.recv().await;
            (ws, got)
        });
        // The echo-server pattern: feed, then recv; the fed message must not sit in memory.
        assert_eq!(peer.expect_event().await, Event::Message(text("queued")));
        peer.conn.send(text("next")).unwrap();
        peer.flush().await;
        let (_ws, got) = task.await.unwrap();
        assert_eq!(got.unwrap().unwrap(), text("next"));
    }

    #[tokio::test]
    async fn stream_and_sink() {
        let (mut ws, mut peer) = server_pair();
        ws.send_all(&mut futures_util::stream::iter(vec![
            Ok(text("a")),
            Ok(text("b")),
        ]))
        .await
        .unwrap();
        assert_eq!(peer.expect_event().await, Event::Message(text("a")));
        assert_eq!(peer.expect_event().await, Event::Message(text("b")));
        peer.conn.send(text("c")).unwrap();
        peer.conn
            .close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
            .unwrap();
        peer.flush().await;
        let all: Vec<_> = (&mut ws).collect().await;
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].as_ref().unwrap(), &text("c"));
    }

    #[tokio::test]
    async fn large_message_grows_the_buffer_and_arrives_whole() {
        let (a, b) = duplex(1 << 12);
        let config = WebSocketConfig::default();
        let mut ws = WebSocket::from_connection(a, Connection::server(Config::default()), &config);
        let mut peer = Peer::client(b);
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        peer.conn
            .send(Message::Binary(payload.clone().into()))
            .unwrap();
        let writer = tokio::spawn(async move {
            peer.flush().await;
            peer
        });
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::Binary(payload.into())
        );
        writer.await.unwrap();
    }
}

mod ping {
    use super::*;

    #[tokio::test]
    async fn recv_answers_ping_while_waiting() {
        let (mut ws, mut peer) = server_pair();
        peer.conn
            .ping(Bytes::from_static(b"are you there"))
            .unwrap();
        peer.flush().await;
        let task = tokio::spawn(async move { ws.recv().await.map(|r| r.unwrap()) });
        assert_eq!(
            peer.expect_event().await,
            Event::Pong(Bytes::from_static(b"are you there"))
        );
        peer.conn.send(text("done")).unwrap();
        peer.flush().await;
        assert_eq!(task.await.unwrap(), Some(text("done")));
    }

    #[tokio::test]
    async fn ws_ping_gets_pong_and_recv_hides_it() {
        let (mut ws, mut peer) = server_pair();
        ws.ping(Bytes::from_static(b"p")).await.unwrap();
        assert_eq!(
            peer.expect_event().await,
            Event::Ping(Bytes::from_static(b"p"))
        );
        peer.flush().await; // the auto-pong
        peer.conn.send(text("after")).unwrap();
        peer.flush().await;
        assert_eq!(ws.recv().await.unwrap().unwrap(), text("after"));
    }

    #[tokio::test]
    async fn oversized_ping_is_invalid_input() {
        let (mut ws, _peer) = server_pair();
        let err = ws.ping(vec![0u8; 126]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}

mod close {
    use super::*;

    #[tokio::test]
    async fn peer_closes_with_code_and_reason() {
        let (mut ws, mut peer) = server_pair();
        peer.conn
            .close(Some(CloseFrame::new(CloseCode(4001), "bye now")))
            .unwrap();
        peer.flush().await;
        assert!(ws.recv().await.is_none(), "a clean close is not an error");
        let info = ws.close_info().unwrap();
        assert_eq!(
            (info.code, info.reason.as_str(), info.initiator, info.clean),
            (CloseCode(4001), "bye now", Initiator::Remote, true)
        );
        // The echo, then the server closes TCP first.
        assert_eq!(
            peer.expect_event().await,
            Event::Close(Some(CloseFrame::new(CloseCode(4001), "bye now")))
        );
        assert_eq!(peer.expect_eof().await, 0);
        assert!(ws.recv().await.is_none());
        assert!(ws.send("late").await.unwrap_err().is_closed());
    }

    #[tokio::test]
    async fn server_closes_and_waits_for_the_answer() {
        let (mut ws, mut peer) = server_pair();
        let peer_task = tokio::spawn(async move {
            let event = peer.expect_event().await;
            peer.flush().await; // the core queued the echo
            let eof = peer.expect_eof().await;
            (event, eof)
        });
        ws.close(CloseCode(4002), "done").await.unwrap();
        let (event, eof) = peer_task.await.unwrap();
        assert_eq!(
            event,
            Event::Close(Some(CloseFrame::new(CloseCode(4002), "done")))
        );
        assert_eq!(eof, 0);
        let info = ws.close_info().unwrap();
        assert_eq!(
            (info.code, info.initiator, info.clean),
            (CloseCode(4002), Initiator::Local, true)
        );
        assert_eq!(ws.state(), State::Closed);
        // Idempotent.
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    }

    #[tokio::test]
    async fn close_discards_messages_that_crossed_it() {
        let (mut ws, mut peer) = server_pair();
        peer.conn.send(text("in flight")).unwrap();
        peer.flush().await;
        let peer_task = tokio::spawn(async move {
            let event = peer.expect_event().await;
            peer.flush().await;
            event
        });
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        assert!(matches!(peer_task.await.unwrap(), Event::Close(_)));
    }

    #[tokio::test]
    async fn send_close_keeps_delivering_messages_until_the_answer() {
        let (mut ws, mut peer) = server_pair();
        ws.send_close(CloseCode::NORMAL, "stdin ended")
            .await
            .unwrap();
        assert_eq!(ws.state(), State::Closing);
        assert_eq!(
            peer.expect_event().await,
            Event::Close(Some(CloseFrame::new(CloseCode::NORMAL, "stdin ended")))
        );
        // The peer had one more message in flight; it answers our close after it.
        let mut in_flight = Connection::client(Config::default(), || [1, 1, 1, 1]);
        in_flight.send(text("last words")).unwrap();
        let bytes: Vec<u8> = in_flight.output_chunks_vec().concat();
        peer.write_raw(&bytes).await;
        peer.flush().await; // the close echo the core queued
        assert_eq!(ws.recv().await.unwrap().unwrap(), text("last words"));
        assert!(ws.recv().await.is_none());
        assert!(ws.close_info().unwrap().clean);
    }

    #[tokio::test]
    async fn client_waits_for_the_server_to_close_tcp() {
        let (mut ws, mut peer) = client_pair();
        let peer_task = tokio::spawn(async move {
            let event = peer.expect_event().await;
            peer.flush().await;
            // Give the client a moment; it must still be waiting for our FIN.
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(peer);
            event
        });
        let started = tokio::time::Instant::now();
        ws.close(CloseCode::NORMAL, "client done").await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "the client closed before the server's FIN"
        );
        assert!(matches!(peer_task.await.unwrap(), Event::Close(_)));
        assert!(ws.close_info().unwrap().clean);
    }

    #[tokio::test(start_paused = true)]
    async fn close_times_out_when_the_peer_never_answers() {
        let (mut ws, mut peer) = server_pair();
        let started = tokio::time::Instant::now();
        let err = ws.close(CloseCode::NORMAL, "").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(started.elapsed() >= WebSocketConfig::default().close_timeout);
        assert!(matches!(peer.expect_event().await, Event::Close(_)));
        assert!(ws.recv().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn client_stops_waiting_for_fin_after_the_timeout() {
        let (mut ws, mut peer) = client_pair();
        let peer_task = tokio::spawn(async move {
            peer.expect_event().await;
            peer.flush().await;
            peer // kept open: no FIN
        });
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        let _peer = peer_task.await.unwrap();
        assert!(ws.close_info().unwrap().clean);
    }

    #[tokio::test]
    async fn eof_without_close_frame_is_an_error_then_none() {
        let (mut ws, peer) = server_pair();
        drop(peer);
        let err = ws.recv().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(ws.close_info().unwrap().code, CloseCode::ABNORMAL);
        assert!(ws.recv().await.is_none());
    }

    #[tokio::test]
    async fn invalid_close_code_is_refused_locally() {
        let (mut ws, _peer) = server_pair();
        let err = ws.close(CloseCode::ABNORMAL, "").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn sink_close_sends_normal_closure() {
        let (mut ws, mut peer) = server_pair();
        let peer_task = tokio::spawn(async move {
            let event = peer.expect_event().await;
            peer.flush().await;
            event
        });
        SinkExt::close(&mut ws).await.unwrap();
        assert_eq!(
            peer_task.await.unwrap(),
            Event::Close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
        );
    }
}

mod protocol_errors {
    use super::*;

    async fn expect_failure(bytes: &[u8], code: CloseCode) {
        let (mut ws, mut peer) = server_pair();
        peer.write_raw(bytes).await;
        let err = ws.recv().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert_eq!(err.close_code(), Some(code));
        match peer.expect_event().await {
            Event::Close(Some(frame)) => assert_eq!(frame.code, code),
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert_eq!(
            peer.expect_eof().await,
            0,
            "the transport is closed after the close frame"
        );
        assert!(ws.recv().await.is_none(), "the error is reported once");
        assert_eq!(ws.close_info().unwrap().code, code);
    }

    #[tokio::test]
    async fn unmasked_client_frame_is_1002() {
        expect_failure(&unmasked_frame(true, 0x1, b"hi"), CloseCode::PROTOCOL_ERROR).await;
    }

    #[tokio::test]
    async fn reserved_opcode_is_1002() {
        expect_failure(&masked_frame(true, 0x3, b""), CloseCode::PROTOCOL_ERROR).await;
    }

    #[tokio::test]
    async fn invalid_utf8_is_1007() {
        expect_failure(
            &masked_frame(true, 0x1, &[0xce, 0xba, 0xff]),
            CloseCode::INVALID_PAYLOAD,
        )
        .await;
    }

    #[tokio::test]
    async fn too_big_is_1009_from_the_header_alone() {
        // A header announcing 1 GiB, and no payload at all: refused without waiting.
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 30).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        expect_failure(&header, CloseCode::MESSAGE_TOO_BIG).await;
    }
}

mod cancel_safety {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn dropping_recv_mid_frame_loses_nothing() {
        let (mut ws, mut peer) = server_pair();
        let frame = masked_frame(
            true,
            0x1,
            "cancel-safe message, split across writes".as_bytes(),
        );
        let (first, rest) = frame.split_at(9);
        peer.write_raw(first).await;
        // The header and part of the payload arrive; the recv future is dropped mid-frame.
        let attempt = tokio::time::timeout(Duration::from_millis(10), ws.recv()).await;
        assert!(attempt.is_err(), "nothing complete yet");
        peer.write_raw(&rest[..5]).await;
        tokio::select! {
            _ = ws.recv() => panic!("still incomplete"),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        peer.write_raw(&rest[5..]).await;
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            text("cancel-safe message, split across writes")
        );
    }

    #[tokio::test]
    async fn select_loop_with_recv_sees_every_message() {
        let (mut ws, mut peer) = server_pair();
        let writer = tokio::spawn(async move {
            for i in 0..200u32 {
                peer.conn
                    .send(Message::Text(
                        format!("message {i} {}", "x".repeat(i as usize * 7)).into(),
                    ))
                    .unwrap();
                let out: Vec<u8> = peer.conn.output_chunks_vec().concat();
                peer.conn.advance_output(out.len());
                // Byte-sized dribbles so that many recv futures are dropped mid-frame.
                for chunk in out.chunks(13) {
                    peer.write_raw(chunk).await;
                    tokio::task::yield_now().await;
                }
            }
            peer
        });
        let mut got = 0u32;
        let mut ticks = 0u32;
        while got < 200 {
            tokio::select! {
                biased;
                _ = tokio::task::yield_now() => ticks += 1,
                message = ws.recv() => {
                    let message = message.unwrap().unwrap();
                    assert!(message.as_text().unwrap().starts_with(&format!("message {got} ")));
                    got += 1;
                }
            }
        }
        assert!(ticks > 0);
        writer.await.unwrap();
    }
}

mod split {
    use super::*;

    #[tokio::test]
    async fn halves_work_from_two_tasks() {
        let (ws, mut peer) = server_pair();
        let (mut reader, mut writer) = ws.split();
        let read_task = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(message) = reader.recv().await {
                got.push(message.unwrap());
            }
            (reader, got)
        });
        let write_task = tokio::spawn(async move {
            for i in 0..50 {
                writer.send(format!("w{i}")).await.unwrap();
            }
            writer
        });
        for i in 0..50 {
            peer.conn.send(text(&format!("r{i}"))).unwrap();
        }
        peer.flush().await;
        for i in 0..50 {
            assert_eq!(
                peer.expect_event().await,
                Event::Message(text(&format!("w{i}")))
            );
        }
        let writer = write_task.await.unwrap();
        peer.conn
            .close(Some(CloseFrame::new(CloseCode::NORMAL, "end")))
            .unwrap();
        peer.flush().await;
        let (reader, got) = read_task.await.unwrap();
        assert_eq!(got.len(), 50);
        assert_eq!(got[49], text("r49"));
        assert!(matches!(peer.expect_event().await, Event::Close(_)));
        let ws = reader.reunite(writer).unwrap();
        assert_eq!(ws.close_info().unwrap().reason, "end");
    }

    #[tokio::test]
    async fn reader_sends_pong_while_writer_is_idle() {
        let (ws, mut peer) = server_pair();
        let (mut reader, _writer) = ws.split();
        let read_task = tokio::spawn(async move { reader.recv().await.map(|m| m.unwrap()) });
        peer.conn.ping(Bytes::from_static(b"idle?")).unwrap();
        peer.flush().await;
        assert_eq!(
            peer.expect_event().await,
            Event::Pong(Bytes::from_static(b"idle?"))
        );
        peer.conn.send(text("x")).unwrap();
        peer.flush().await;
        assert_eq!(read_task.await.unwrap(), Some(text("x")));
    }

    #[tokio::test]
    async fn writer_close_completes_through_the_reader() {
        let (ws, mut peer) = server_pair();
        let (mut reader, mut writer) = ws.split();
        let read_task = tokio::spawn(async move {
            let end = reader.recv().await.map(|m| m.map_err(|e| e.kind()));
            (reader, end)
        });
        writer
            .close(CloseCode(4100), "writer says bye")
            .await
            .unwrap();
        assert_eq!(
            peer.expect_event().await,
            Event::Close(Some(CloseFrame::new(CloseCode(4100), "writer says bye")))
        );
        peer.flush().await;
        let (reader, end) = read_task.await.unwrap();
        assert_eq!(end, None);
        let info = reader.close_info().unwrap();
        assert!(info.clean);
        assert_eq!(peer.expect_eof().await, 0);
    }

    #[tokio::test]
    async fn writer_close_without_reader_reads_itself() {
        let (ws, mut peer) = server_pair();
        let (reader, mut writer) = ws.split();
        drop(reader);
        let peer_task = tokio::spawn(async move {
            let event = peer.expect_event().await;
            peer.flush().await;
            event
        });
        writer.close(CloseCode::NORMAL, "").await.unwrap();
        assert!(matches!(peer_task.await.unwrap(), Event::Close(_)));
        assert_eq!(writer.state(), State::Closed);
    }

    #[tokio::test]
    async fn reunite_refuses_strangers() {
        let (ws1, _p1) = server_pair();
        let (ws2, _p2) = server_pair();
        let (r1, _w1) = ws1.split();
        let (_r2, w2) = ws2.split();
        assert!(r1.reunite(w2).is_err());
    }
}

mod backpressure {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn send_waits_while_the_peer_does_not_read() {
        let (a, b) = duplex(1 << 10);
        let config = WebSocketConfig::default().write_buffer_high_water(4 << 10);
        let mut ws = WebSocket::from_connection(a, Connection::server(Config::default()), &config);
        let blocked = tokio::time::timeout(Duration::from_secs(1), async {
            for _ in 0..100 {
                ws.feed(vec![1u8; 1000]).await?;
            }
            Ok::<_, switchboard::Error>(())
        })
        .await;
        assert!(blocked.is_err(), "feed must wait when nobody reads");
        assert!(
            ws.buffered_amount() <= (4 << 10) + 1100,
            "queue bounded near the high-water mark: {}",
            ws.buffered_amount()
        );
        drop(b);
    }

    #[tokio::test]
    async fn small_message_after_a_large_one() {
        // The buffer grew for 1 MiB and is released once empty; the next read starts over.
        let (mut ws, mut peer) = server_pair();
        peer.conn
            .send(Message::Binary(vec![3u8; 1 << 20].into()))
            .unwrap();
        let peer_task = tokio::spawn(async move {
            peer.flush().await;
            peer
        });
        assert_eq!(ws.recv().await.unwrap().unwrap().len(), 1 << 20);
        let mut peer = peer_task.await.unwrap();
        peer.conn.send(text("small")).unwrap();
        peer.flush().await;
        assert_eq!(ws.recv().await.unwrap().unwrap(), text("small"));
    }
}
