//! Client and server over real loopback TCP, and the server against raw, hand-written
//! handshakes (good, bad, oversized, pipelined).

mod common;

use common::{masked_frame, Peer};
use http::StatusCode;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::{
    Accept, Acceptor, Client, CloseCode, ErrorKind, Message, Received, Reject, Server,
};
use switchboard_protocol::{CloseFrame, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An echo server on a free loopback port, accepting with `acceptor`.
async fn echo_server(acceptor: Acceptor) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = acceptor.accept(tcp).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.recv().await {
                    if ws.feed(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn text(s: &str) -> Message {
    Message::Text(s.into())
}

const GOOD_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// Sends a raw request head and returns the whole response (the server closes after a
/// refusal).
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut response))
        .await
        .expect("the server must close after refusing")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

mod client_server {
    use super::*;

    #[tokio::test]
    async fn echo_text_and_binary() {
        let addr = echo_server(Acceptor::default()).await;
        let (mut ws, response) = switchboard::connect(&format!("ws://{addr}/echo"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        ws.send("hello").await.unwrap();
        ws.send(vec![0u8, 1, 2]).await.unwrap();
        ws.send(vec![9u8; 300_000]).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), text("hello"));
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::Binary(vec![0u8, 1, 2].into())
        );
        assert_eq!(ws.recv().await.unwrap().unwrap().len(), 300_000);
        ws.close(CloseCode::NORMAL, "bye").await.unwrap();
        let info = ws.close_info().unwrap();
        assert!(info.clean);
        assert_eq!(info.code, CloseCode::NORMAL);
    }

    #[tokio::test]
    async fn recv_with_control_shows_pings_and_pongs_and_recv_does_not() {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        // The server pings with "from server", then echoes messages.
        tokio::spawn(server.serve(|mut ws| async move {
            ws.ping("from server").await.unwrap();
            ws.pong("heartbeat").await.unwrap();
            while let Some(Ok(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        }));
        // A control frame that is not surfaced would leave a `recv_with_control` waiting.
        let client = async {
            let (mut ws, _) = switchboard::connect(&format!("ws://{addr}/"))
                .await
                .unwrap();
            assert_eq!(
                ws.recv_with_control().await.unwrap().unwrap(),
                Received::Ping("from server".into())
            );
            // An unsolicited pong shows as one, and is not answered.
            assert_eq!(
                ws.recv_with_control().await.unwrap().unwrap(),
                Received::Pong("heartbeat".into())
            );
            let (mut reader, mut writer) = ws.split();
            writer.pong("from the writer").await.unwrap();
            writer.ping("from client").await.unwrap();
            assert_eq!(
                reader.recv_with_control().await.unwrap().unwrap(),
                Received::Pong("from client".into())
            );
            let mut ws = reader.reunite(writer).unwrap();
            ws.ping("from client").await.unwrap();
            assert_eq!(
                ws.recv_with_control().await.unwrap().unwrap(),
                Received::Pong("from client".into())
            );
            // `recv` skips control frames: the pong to this ping never shows, the echo does.
            ws.ping("unseen").await.unwrap();
            ws.send("after").await.unwrap();
            assert_eq!(ws.recv().await.unwrap().unwrap(), text("after"));
            ws.send("last").await.unwrap();
            assert_eq!(
                ws.recv_with_control().await.unwrap().unwrap(),
                Received::Message(text("last"))
            );
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .expect("a control frame or message did not show up");
    }

    #[tokio::test]
    async fn prepared_messages_fan_out_to_every_client() {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let prepared = switchboard::PreparedMessage::new(text("to all"));
        let big = switchboard::PreparedMessage::new(Message::Binary(vec![7u8; 100_000].into()));
        tokio::spawn(server.serve(move |mut ws| {
            let (prepared, big) = (prepared.clone(), big.clone());
            async move {
                ws.feed_prepared(&prepared).await.unwrap();
                ws.send_prepared(&big).await.unwrap();
                while ws.recv().await.is_some() {}
            }
        }));
        for _ in 0..3 {
            let (mut ws, _) = switchboard::connect(&format!("ws://{addr}/"))
                .await
                .unwrap();
            assert_eq!(ws.recv().await.unwrap().unwrap(), text("to all"));
            assert_eq!(
                ws.recv().await.unwrap().unwrap(),
                Message::Binary(vec![7u8; 100_000].into())
            );
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        }
    }

    #[tokio::test]
    async fn try_feed_prepared_queues_until_the_high_water_mark_then_flush_writes_all() {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let frame = switchboard::PreparedMessage::new(Message::Binary(vec![3u8; 40_000].into()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        tokio::spawn(server.serve(move |mut ws| {
            let (frame, tx) = (frame.clone(), tx.lock().unwrap().take());
            async move {
                // Nothing is written while queueing: it stops at the high-water mark.
                let mut queued = 0;
                while ws.try_feed_prepared(&frame).unwrap() {
                    queued += 1;
                    assert!(queued < 10_000, "never reported full");
                }
                if let Some(tx) = tx {
                    let _ = tx.send(queued);
                }
                ws.flush().await.unwrap();
                while ws.recv().await.is_some() {}
            }
        }));
        let (mut ws, _) = switchboard::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        let queued = rx.await.unwrap();
        assert!(queued >= 1, "the first frame always fits");
        for _ in 0..queued {
            assert_eq!(ws.recv().await.unwrap().unwrap().len(), 40_000);
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    }

    #[tokio::test]
    async fn server_sees_client_close_code_and_reason() {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        tokio::spawn(server.serve(move |mut ws| {
            let tx = tx.lock().unwrap().take();
            async move {
                assert!(ws.recv().await.is_none());
                let info = ws.close_info().cloned().unwrap();
                if let Some(tx) = tx {
                    let _ = tx.send(info);
                }
            }
        }));
        let (mut ws, _) = switchboard::connect(&format!("ws://{addr}")).await.unwrap();
        ws.close(CloseCode(4321), "see you").await.unwrap();
        let info = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (info.code, info.reason.as_str()),
            (CloseCode(4321), "see you")
        );
    }

    #[tokio::test]
    async fn subprotocol_headers_and_callback() {
        let acceptor = Acceptor::builder()
            .protocols(["v2.chat", "v1.chat"])
            .on_request(|req| {
                if req.path() != "/chat" {
                    return Err(Reject::new(StatusCode::NOT_FOUND, "no such endpoint"));
                }
                if req.header("x-token") != Some("let-me-in") {
                    return Err(Reject::new(StatusCode::UNAUTHORIZED, "bad token"));
                }
                if req.origin() == Some("https://evil.example") {
                    return Err(Reject::new(StatusCode::FORBIDDEN, "origin not allowed"));
                }
                Ok(Accept::new())
            })
            .build();
        let addr = echo_server(acceptor).await;
        let url = format!("ws://{addr}/chat");

        let (ws, response) = Client::builder()
            .protocols(["v1.chat", "v2.chat"])
            .header("X-Token", "let-me-in")
            .connect(&url)
            .await
            .unwrap();
        // Server preference wins among the offered ones.
        assert_eq!(ws.protocol(), Some("v2.chat"));
        assert_eq!(response.headers()["sec-websocket-protocol"], "v2.chat");

        for (path, token, origin, status) in [
            ("/other", "let-me-in", "https://ok.example", 404),
            ("/chat", "wrong", "https://ok.example", 401),
            ("/chat", "let-me-in", "https://evil.example", 403),
        ] {
            let err = Client::builder()
                .header("X-Token", token)
                .header("Origin", origin)
                .connect(&format!("ws://{addr}{path}"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Handshake, "{err}");
            assert_eq!(
                err.status(),
                Some(StatusCode::from_u16(status).unwrap()),
                "{err}"
            );
            assert_eq!(err.response().unwrap().status().as_u16(), status);
        }
    }

    #[tokio::test]
    async fn callback_can_pick_the_subprotocol() {
        let acceptor = Acceptor::builder()
            .on_request(|req| {
                let last = req.protocols().last().cloned().unwrap_or_default();
                Ok(Accept::new().protocol(last))
            })
            .build();
        let addr = echo_server(acceptor).await;
        let (ws, _) = Client::builder()
            .protocols(["a", "b", "c"])
            .connect(&format!("ws://{addr}"))
            .await
            .unwrap();
        assert_eq!(ws.protocol(), Some("c"));
    }

    #[tokio::test]
    async fn permessage_deflate_is_negotiated_when_both_want_it() {
        let addr = echo_server(
            Acceptor::builder()
                .config(switchboard::WebSocketConfig::default().compression(true))
                .build(),
        )
        .await;
        let url = format!("ws://{addr}");
        let (mut ws, response) = Client::builder()
            .config(switchboard::WebSocketConfig::default().compression(true))
            .connect(&url)
            .await
            .unwrap();
        assert!(ws.is_compressed());
        assert!(response.headers()["sec-websocket-extensions"]
            .to_str()
            .unwrap()
            .starts_with("permessage-deflate"));
        let big = "compressible ".repeat(10_000);
        ws.send(big.as_str()).await.unwrap();
        ws.send(vec![1u8; 100_000]).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), text(&big));
        assert_eq!(ws.recv().await.unwrap().unwrap().len(), 100_000);
        ws.close(CloseCode::NORMAL, "").await.unwrap();

        // Either side without it: no compression, and everything still works.
        let (mut plain, response) = Client::builder()
            .config(switchboard::WebSocketConfig::default().compression(false))
            .connect(&url)
            .await
            .unwrap();
        assert!(!plain.is_compressed());
        assert!(response.headers().get("sec-websocket-extensions").is_none());
        plain.send("x").await.unwrap();
        assert_eq!(plain.recv().await.unwrap().unwrap(), text("x"));
        let no_deflate_server = echo_server(Acceptor::default()).await;
        let (ws, _) = Client::builder()
            .config(switchboard::WebSocketConfig::default().compression(true))
            .connect(&format!("ws://{no_deflate_server}"))
            .await
            .unwrap();
        assert!(!ws.is_compressed());
    }

    #[tokio::test]
    async fn connecting_to_nothing_is_an_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = switchboard::connect(&format!("ws://{addr}"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
    }

    #[tokio::test]
    async fn bad_urls_are_invalid_input() {
        for url in ["not a url", "http//x", "ftp://127.0.0.1/"] {
            let err = switchboard::connect(url).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url}: {err}");
        }
        // wss:// needs the `tls` feature; with it, this is a refused TCP connection.
        let err = switchboard::connect("wss://127.0.0.1:1/")
            .await
            .unwrap_err();
        let expected = if cfg!(feature = "tls") {
            ErrorKind::Io
        } else {
            ErrorKind::InvalidInput
        };
        assert_eq!(err.kind(), expected, "{err}");
    }

    #[tokio::test]
    async fn one_bad_client_does_not_affect_others() {
        let addr = echo_server(Acceptor::default()).await;
        let (mut good, _) = switchboard::connect(&format!("ws://{addr}")).await.unwrap();
        // A client that breaks the protocol, and one that sends garbage instead of HTTP.
        let mut bad = TcpStream::connect(addr).await.unwrap();
        bad.write_all(format!("{GOOD_REQUEST}\r\n").as_bytes())
            .await
            .unwrap();
        bad.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap(); // unmasked
        let mut garbage = TcpStream::connect(addr).await.unwrap();
        garbage
            .write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            .await
            .unwrap();
        for i in 0..20 {
            good.send(format!("still here {i}")).await.unwrap();
            assert_eq!(
                good.recv().await.unwrap().unwrap(),
                text(&format!("still here {i}"))
            );
        }
        let (mut another, _) = switchboard::connect(&format!("ws://{addr}")).await.unwrap();
        another.send("new").await.unwrap();
        assert_eq!(another.recv().await.unwrap().unwrap(), text("new"));
    }

    #[tokio::test]
    async fn serve_with_shutdown_stops_accepting() {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve_with_shutdown(
            |mut ws| async move { while ws.recv().await.is_some() {} },
            async {
                let _ = stopped.await;
            },
        ));
        switchboard::connect(&format!("ws://{addr}")).await.unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(switchboard::connect(&format!("ws://{addr}")).await.is_err());
    }

    #[tokio::test]
    async fn split_echo_over_tcp() {
        let addr = echo_server(Acceptor::default()).await;
        let (ws, _) = switchboard::connect(&format!("ws://{addr}")).await.unwrap();
        let (mut reader, mut writer) = ws.split();
        let writes = tokio::spawn(async move {
            for i in 0..100 {
                writer.feed(format!("{i}")).await.unwrap();
            }
            writer.flush().await.unwrap();
            writer
        });
        for i in 0..100 {
            assert_eq!(reader.recv().await.unwrap().unwrap(), text(&format!("{i}")));
        }
        let mut writer = writes.await.unwrap();
        writer.close(CloseCode::NORMAL, "").await.unwrap();
        assert!(reader.recv().await.is_none());
        assert!(reader.close_info().unwrap().clean);
    }
}

mod handshake_rejections {
    use super::*;

    async fn refused(request: String) -> String {
        let addr = echo_server(Acceptor::default()).await;
        raw_exchange(addr, request.as_bytes()).await
    }

    #[tokio::test]
    async fn bad_version_is_426_with_supported_version() {
        let request = GOOD_REQUEST.replace("Version: 13", "Version: 8") + "\r\n";
        let response = refused(request).await;
        assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
        assert!(
            response
                .to_ascii_lowercase()
                .contains("sec-websocket-version: 13\r\n"),
            "{response}"
        );
    }

    #[tokio::test]
    async fn missing_key_is_400_with_one_line_reason() {
        let request =
            GOOD_REQUEST.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "") + "\r\n";
        let response = refused(request).await;
        assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(body.lines().count(), 1, "{body:?}");
        assert!(body.contains("Sec-WebSocket-Key"), "{body:?}");
    }

    #[tokio::test]
    async fn post_is_405() {
        let request = GOOD_REQUEST.replace("GET", "POST") + "\r\n";
        let response = refused(request).await;
        assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
    }

    #[tokio::test]
    async fn oversized_head_is_431() {
        let request = format!("{GOOD_REQUEST}X-Padding: {}\r\n\r\n", "a".repeat(20_000));
        let response = refused(request).await;
        assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    }

    #[tokio::test]
    async fn garbage_is_400() {
        let response = refused("HELLO\r\n\r\n".into()).await;
        assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    }

    #[tokio::test]
    async fn server_error_reports_the_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let request = GOOD_REQUEST.replace("Version: 13", "Version: 7") + "\r\n";
            raw_exchange(addr, request.as_bytes()).await
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let err = switchboard::accept(tcp).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Handshake);
        assert_eq!(err.status(), Some(StatusCode::UPGRADE_REQUIRED));
        assert!(client.await.unwrap().starts_with("HTTP/1.1 426"));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_handshake_times_out() {
        let (server_side, mut client_side) = tokio::io::duplex(1024);
        client_side.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let acceptor = Acceptor::builder()
            .config(
                switchboard::WebSocketConfig::default()
                    .handshake_timeout(Some(Duration::from_secs(3))),
            )
            .build();
        let started = tokio::time::Instant::now();
        let err = acceptor.accept(server_side).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(started.elapsed() >= Duration::from_secs(3));
    }
}

mod raw_client {
    use super::*;

    /// Performs the handshake by hand and returns the stream and any bytes after the head.
    async fn handshake(addr: SocketAddr, first_frames: &[u8]) -> (TcpStream, Vec<u8>) {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut request = format!("{GOOD_REQUEST}\r\n").into_bytes();
        request.extend_from_slice(first_frames);
        tcp.write_all(&request).await.unwrap(); // one write: head and frames together
        let mut buf = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 1024];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        (tcp, buf[end..].to_vec())
    }

    #[tokio::test]
    async fn pipelined_first_frame_is_not_lost() {
        let addr = echo_server(Acceptor::default()).await;
        let (tcp, rest) = handshake(addr, &masked_frame(true, 0x1, b"eager")).await;
        let mut peer = Peer::client(tcp);
        peer.buf.extend_from_slice(&rest);
        assert_eq!(peer.expect_event().await, Event::Message(text("eager")));
    }

    #[tokio::test]
    async fn protocol_error_closes_with_its_code_at_the_peer() {
        let addr = echo_server(Acceptor::default()).await;
        // A text frame with invalid UTF-8, then a masked close frame that must be ignored.
        let (tcp, rest) =
            handshake(addr, &masked_frame(true, 0x1, &[b'o', b'k', 0xc0, 0xaf])).await;
        let mut peer = Peer::client(tcp);
        peer.buf.extend_from_slice(&rest);
        match peer.expect_event().await {
            Event::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::INVALID_PAYLOAD),
            other => panic!("{other:?}"),
        }
        assert_eq!(peer.expect_eof().await, 0);
    }

    #[tokio::test]
    async fn ping_is_answered_by_the_server() {
        let addr = echo_server(Acceptor::default()).await;
        let (tcp, rest) = handshake(addr, &masked_frame(true, 0x9, b"hb")).await;
        let mut peer = Peer::client(tcp);
        peer.buf.extend_from_slice(&rest);
        assert_eq!(
            peer.expect_event().await,
            Event::Pong(bytes::Bytes::from_static(b"hb"))
        );
        peer.conn
            .close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "tab closed")))
            .unwrap();
        peer.flush().await;
        assert_eq!(
            peer.expect_event().await,
            Event::Close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "tab closed")))
        );
        assert_eq!(peer.expect_eof().await, 0, "the server closes TCP first");
    }
}
