//! WebSocket over HTTP/2 (RFC 8441) end to end on loopback: the router over TLS with ALPN
//! h2, our client forced onto h2, and the protocol cases of the foundation issue replayed
//! through an h2 stream.
//!
//! The conformance table ([`CASES`]) is the over-h2 stand-in for Autobahn's sections 1-7
//! (framing, pings, reserved bits, opcodes, fragmentation, UTF-8, close), whose
//! fuzzingserver speaks only HTTP/1.1: each case writes raw client frames (masked, some
//! malformed on purpose) straight into the stream under our client's WebSocket and reads
//! the server's frames until the stream ends. Every case runs over HTTP/1.1 too, as the
//! control that the expectations are the ones the same server meets there.

#[path = "support/pki.rs"]
mod pki;

use pki::Pki;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::http2::{Http2Config, Http2Mode};
use switchboard::router::{Route, Router, ServerWebSocket};
use switchboard::{Client, CloseCode, MaybeTlsStream, Message, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(10);

async fn echo(mut ws: ServerWebSocket) {
    while let Some(Ok(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

fn router(pki: &Pki) -> Router {
    let acceptor =
        switchboard::tls::acceptor_from_pem(pki.path("cert.pem"), pki.path("key.pem")).unwrap();
    Router::new()
        .route(
            "/echo",
            Route::new(|ws, info| async move {
                assert_eq!(info.request().version(), http::Version::HTTP_2);
                echo(ws).await
            })
            .protocols(["echo.v1"])
            .config(switchboard::WebSocketConfig::default().compression(true)),
        )
        .route("/any", Route::new(|ws, _| echo(ws)))
        .tls(acceptor)
}

async fn start(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(router.serve(listener));
    addr
}

fn client(pki: &Pki, mode: Http2Mode) -> switchboard::ClientBuilder {
    Client::builder()
        .tls_config(switchboard::tls::client_config([pki.path("ca.pem")]).unwrap())
        .http2(mode)
}

async fn connect(
    pki: &Pki,
    addr: SocketAddr,
    path: &str,
    mode: Http2Mode,
) -> WebSocket<MaybeTlsStream> {
    let url = format!("wss://localhost:{}{path}", addr.port());
    let (ws, _) = tokio::time::timeout(LIMIT, client(pki, mode).connect(&url))
        .await
        .unwrap()
        .unwrap();
    ws
}

#[tokio::test]
async fn echo_over_h2_with_the_same_negotiation_as_http11() {
    let pki = Pki::new("h2-echo");
    let addr = start(router(&pki)).await;
    let url = format!("wss://localhost:{}/echo", addr.port());
    let (mut ws, response) = client(&pki, Http2Mode::Force)
        .protocols(["other", "echo.v1"])
        .config(switchboard::WebSocketConfig::default().compression(true))
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(ws.get_ref().http_version(), http::Version::HTTP_2);
    assert_eq!(ws.protocol(), Some("echo.v1"));
    assert!(ws.is_compressed());
    for message in [Message::from("hello"), Message::from(vec![7u8; 100_000])] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), message);
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    assert_eq!(ws.close_info().unwrap().code, CloseCode::NORMAL);
    assert!(ws.close_info().unwrap().clean);

    // The same route over HTTP/1.1 from a client that does not ask for h2.
    let (ws, response) = client(&pki, Http2Mode::Never)
        .protocols(["echo.v1"])
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(ws.get_ref().http_version(), http::Version::HTTP_11);
    assert_eq!(ws.protocol(), Some("echo.v1"));
}

#[tokio::test]
async fn auto_falls_back_to_http11_when_the_router_has_h2_off() {
    let pki = Pki::new("h2-off");
    let addr = start(router(&pki).http2(Http2Config::disabled())).await;
    let mut ws = connect(&pki, addr, "/any", Http2Mode::Auto).await;
    assert_eq!(ws.get_ref().http_version(), http::Version::HTTP_11);
    ws.send("x").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("x"));
    let url = format!("wss://localhost:{}/any", addr.port());
    let forced = client(&pki, Http2Mode::Force).connect(&url).await;
    assert!(
        forced.is_err(),
        "forced h2 against an HTTP/1.1-only server must fail"
    );
}

#[tokio::test]
async fn refusals_are_answered_on_the_stream() {
    let pki = Pki::new("h2-refuse");
    let addr = start(router(&pki)).await;
    let url = format!("wss://localhost:{}/nowhere", addr.port());
    let error = client(&pki, Http2Mode::Force)
        .connect(&url)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::NOT_FOUND), "{error}");
}

#[tokio::test]
async fn shutdown_closes_h2_websockets_with_1001() {
    let pki = Pki::new("h2-shutdown");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        router(&pki)
            .shutdown_timeout(Duration::from_secs(5))
            .serve_with_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let mut ws = connect(&pki, addr, "/any", Http2Mode::Force).await;
    ws.send("before").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("before"));
    stop.send(()).unwrap();
    let end = tokio::time::timeout(LIMIT, ws.recv()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_eq!(ws.close_info().unwrap().code, CloseCode::GOING_AWAY);
    tokio::time::timeout(LIMIT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_peer_that_does_not_read_makes_send_wait_with_bounded_buffers() {
    let pki = Pki::new("h2-backpressure");
    let acceptor =
        switchboard::tls::acceptor_from_pem(pki.path("cert.pem"), pki.path("key.pem")).unwrap();
    // The handler holds the socket and never reads.
    let router = Router::new()
        .route(
            "/sink",
            Route::new(|ws, _| async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(ws);
            }),
        )
        .tls(acceptor);
    let addr = start(router).await;
    let mut ws = connect(&pki, addr, "/sink", Http2Mode::Force).await;
    let chunk = Message::from(vec![1u8; 16 << 10]);
    let mut sent = 0usize;
    let stalled = loop {
        match tokio::time::timeout(Duration::from_millis(500), ws.send(chunk.clone())).await {
            Ok(result) => {
                result.unwrap();
                sent += 16 << 10;
                assert!(
                    sent < 16 << 20,
                    "16 MiB went out to a peer that reads nothing"
                );
            }
            Err(_) => break sent,
        }
    };
    // The stream window (256 KiB) and our own high-water mark bound it.
    assert!(
        (64 << 10..2 << 20).contains(&stalled),
        "stalled after {stalled} bytes"
    );
    assert!(ws.buffered_amount() > 0);
}

/// One conformance case: raw client frames in, and what the server must do.
struct Case {
    name: &'static str,
    frames: Vec<Vec<u8>>,
    expect: Expect,
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// These server frames (opcode, payload), then the server's close with this code.
    Frames(Vec<(u8, Vec<u8>)>, u16),
}

/// A masked client frame.
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(true, 0, 0x8, &payload)
}

fn cases() -> Vec<Case> {
    let text = |s: &[u8]| frame(true, 0, 0x1, s);
    let echoed = |op: u8, p: &[u8]| (op, p.to_vec());
    let bye = close(1000, b"");
    let mut cases = Vec::new();
    // 1.x: framing, every length encoding.
    for n in [0usize, 125, 126, 127, 65535, 65536, 100_000] {
        let payload = vec![b'*'; n];
        cases.push(Case {
            name: "1.x text of a length",
            frames: vec![text(&payload), frame(true, 0, 0x2, &payload), bye.clone()],
            expect: Expect::Frames(vec![echoed(1, &payload), echoed(2, &payload)], 1000),
        });
    }
    // 2.x: pings.
    cases.push(Case {
        name: "2.2 ping with payload is ponged",
        frames: vec![frame(true, 0, 0x9, b"ping!"), bye.clone()],
        expect: Expect::Frames(vec![echoed(0xA, b"ping!")], 1000),
    });
    cases.push(Case {
        name: "2.5 ping of 126 bytes is a protocol error",
        frames: vec![frame(true, 0, 0x9, &[0u8; 126])],
        expect: Expect::Frames(vec![], 1002),
    });
    cases.push(Case {
        name: "2.7 unsolicited pong is ignored",
        frames: vec![frame(true, 0, 0xA, b"x"), text(b"after"), bye.clone()],
        expect: Expect::Frames(vec![echoed(1, b"after")], 1000),
    });
    cases.push(Case {
        name: "2.x fragmented ping is a protocol error",
        frames: vec![frame(false, 0, 0x9, b"a")],
        expect: Expect::Frames(vec![], 1002),
    });
    // 3.x: reserved bits without an extension.
    for rsv in [1u8, 2, 4, 3, 7] {
        cases.push(Case {
            name: "3.x reserved bits",
            frames: vec![frame(true, rsv, 0x1, b"rsv")],
            expect: Expect::Frames(vec![], 1002),
        });
    }
    // 4.x: reserved opcodes.
    for opcode in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        cases.push(Case {
            name: "4.x reserved opcode",
            frames: vec![frame(true, 0, opcode, b"")],
            expect: Expect::Frames(vec![], 1002),
        });
    }
    // 5.x: fragmentation.
    cases.push(Case {
        name: "5.6 fragmented text with a ping between the fragments",
        frames: vec![
            frame(false, 0, 0x1, b"frag"),
            frame(true, 0, 0x9, b"p"),
            frame(true, 0, 0x0, b"mented"),
            bye.clone(),
        ],
        expect: Expect::Frames(vec![echoed(0xA, b"p"), echoed(1, b"fragmented")], 1000),
    });
    cases.push(Case {
        name: "5.9 continuation without a start",
        frames: vec![frame(true, 0, 0x0, b"orphan")],
        expect: Expect::Frames(vec![], 1002),
    });
    cases.push(Case {
        name: "5.18 a new text inside a fragmented message",
        frames: vec![frame(false, 0, 0x1, b"a"), frame(true, 0, 0x1, b"b")],
        expect: Expect::Frames(vec![], 1002),
    });
    // 6.x: UTF-8.
    let valid = "κόσμε, 𝄞, ∮ E⋅da".as_bytes();
    cases.push(Case {
        name: "6.2 valid UTF-8 split inside a code point across fragments",
        frames: vec![
            frame(false, 0, 0x1, &valid[..3]),
            frame(true, 0, 0x0, &valid[3..]),
            bye.clone(),
        ],
        expect: Expect::Frames(vec![echoed(1, valid)], 1000),
    });
    for bad in [
        &b"\xc0\xaf"[..],
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"ok\xff",
    ] {
        cases.push(Case {
            name: "6.x invalid UTF-8 text",
            frames: vec![text(bad)],
            expect: Expect::Frames(vec![], 1007),
        });
    }
    cases.push(Case {
        name: "6.x invalid UTF-8 in a later fragment",
        frames: vec![frame(false, 0, 0x1, b"fine"), frame(true, 0, 0x0, b"\xce")],
        expect: Expect::Frames(vec![], 1007),
    });
    // 7.x: close.
    cases.push(Case {
        name: "7.1 close 1000 is answered with 1000",
        frames: vec![close(1000, b"bye")],
        expect: Expect::Frames(vec![], 1000),
    });
    cases.push(Case {
        name: "7.3 close with a 1-byte payload",
        frames: vec![frame(true, 0, 0x8, b"x")],
        expect: Expect::Frames(vec![], 1002),
    });
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        cases.push(Case {
            name: "7.9 invalid close code",
            frames: vec![close(code, b"")],
            expect: Expect::Frames(vec![], 1002),
        });
    }
    for code in [1001u16, 1003, 1007, 1011, 3000, 4999] {
        cases.push(Case {
            name: "7.7 valid close code is echoed",
            frames: vec![close(code, b"")],
            expect: Expect::Frames(vec![], code),
        });
    }
    cases.push(Case {
        name: "7.5 close reason that is not UTF-8",
        frames: vec![close(1000, b"\xff\xfe")],
        expect: Expect::Frames(vec![], 1007),
    });
    cases.push(Case {
        name: "7.x text after close is not echoed",
        frames: vec![bye, text(b"late")],
        expect: Expect::Frames(vec![], 1000),
    });
    cases
}

/// Whether `buf` holds whole frames up to a close frame.
fn ends_with_close(mut buf: &[u8]) -> bool {
    while buf.len() >= 2 {
        let (len, head) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return false,
            n => (n as usize, 2),
        };
        if buf.len() < head + len {
            return false;
        }
        if buf[0] & 0x0f == 0x8 {
            return true;
        }
        buf = &buf[head + len..];
    }
    false
}

/// The server's frames until the stream ends: (opcode, payload) each.
fn parse_server_frames(mut buf: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut partial: Option<(u8, Vec<u8>)> = None;
    while buf.len() >= 2 {
        let (fin, opcode) = (buf[0] & 0x80 != 0, buf[0] & 0x0f);
        assert_eq!(buf[1] & 0x80, 0, "server frames are not masked");
        let (len, head) = match buf[1] & 0x7f {
            126 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let payload = buf[head..head + len].to_vec();
        buf = &buf[head + len..];
        if opcode >= 8 {
            frames.push((opcode, payload));
        } else if let Some((op, mut data)) = partial.take() {
            data.extend_from_slice(&payload);
            if fin {
                frames.push((op, data));
            } else {
                partial = Some((op, data));
            }
        } else if fin {
            frames.push((opcode, payload));
        } else {
            partial = Some((opcode, payload));
        }
    }
    assert!(buf.is_empty(), "a truncated frame at the end");
    frames
}

async fn run_case(pki: &Pki, addr: SocketAddr, mode: Http2Mode, case: &Case) -> Result<(), String> {
    let mut ws = connect(pki, addr, "/any", mode).await;
    let expected_version = if mode == Http2Mode::Force {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    assert_eq!(ws.get_ref().http_version(), expected_version);
    // Under the WebSocket: the frames go out exactly as written.
    let io = ws.get_mut();
    // Written before anything is read: the echoes of one case must fit the windows.
    let write_all = async {
        for f in &case.frames {
            io.write_all(f).await?;
        }
        io.flush().await
    };
    tokio::time::timeout(LIMIT, write_all)
        .await
        .map_err(|_| "the server stopped reading".to_owned())?
        .map_err(|e| e.to_string())?;
    // Read until the server's close, answer it as a client must (else the server waits
    // for the answer until its close timeout), then read to the end of the stream.
    let mut received = Vec::new();
    let read_all = async {
        let mut chunk = [0u8; 16 << 10];
        while !ends_with_close(&received) {
            let n = io.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            received.extend_from_slice(&chunk[..n]);
        }
        // Our reply; a server that closed the stream already refuses it, which is fine.
        let _ = io.write_all(&close(1000, b"")).await;
        let _ = io.flush().await;
        io.read_to_end(&mut received).await.map(drop)
    };
    tokio::time::timeout(LIMIT, read_all)
        .await
        .map_err(|_| "the server did not end the stream".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut frames = parse_server_frames(&received);
    let Expect::Frames(want, code) = &case.expect;
    let last = frames.pop().ok_or("no close frame")?;
    if last.0 != 0x8 || last.1.len() < 2 {
        return Err(format!("last frame is not a close: {last:?}"));
    }
    let got_code = u16::from_be_bytes([last.1[0], last.1[1]]);
    if frames != *want || got_code != *code {
        return Err(format!(
            "got {} frames {:?} and close {got_code}, want {} frames and close {code}",
            frames.len(),
            frames
                .iter()
                .map(|(op, p)| (*op, p.len()))
                .collect::<Vec<_>>(),
            want.len()
        ));
    }
    let _ = io.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn protocol_cases_over_h2_match_http11() {
    let pki = Pki::new("h2-cases");
    let addr = start(router(&pki)).await;
    let cases = cases();
    let mut failures = Vec::new();
    for mode in [Http2Mode::Never, Http2Mode::Force] {
        for case in &cases {
            if let Err(why) = run_case(&pki, addr, mode, case).await {
                failures.push(format!("{mode:?} {}: {why}", case.name));
            }
        }
    }
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
