//! One `WebSocketConfig`, every entry point: each setting is given through `accept`'s
//! `Acceptor`, a `Router` route, the hyper upgrade, the axum extractor and the `Client`, and
//! each is seen to take effect on a real loopback connection.
//!
//! The handshake limits (timeout, head size) are checked where this crate reads the head:
//! the acceptor, the router and the client (hyper and axum read their own requests).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::router::{Route, Router};
use switchboard::upgrade::{upgrade, UpgradeOptions};
use switchboard::{Acceptor, Client, CloseCode, ErrorKind, Message, WebSocket, WebSocketConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bounds every wait, so a setting that does not take effect fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(10);

/// The four server entry points.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Acceptor,
    Router,
    Hyper,
    Axum,
}

const ENTRIES: [Entry; 4] = [Entry::Acceptor, Entry::Router, Entry::Hyper, Entry::Axum];

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) {
    while let Some(Ok(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// An echo server on a loopback port whose connections get `config` through `entry`.
async fn serve(entry: Entry, config: WebSocketConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match entry {
        Entry::Acceptor => {
            let acceptor = Acceptor::builder().config(config).build();
            tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        if let Ok(ws) = acceptor.accept(tcp).await {
                            echo(ws).await;
                        }
                    });
                }
            });
        }
        Entry::Router => {
            let router = Router::new().route("/", Route::new(|ws, _| echo(ws)).config(config));
            tokio::spawn(router.serve(listener));
        }
        Entry::Hyper => {
            let options = std::sync::Arc::new(UpgradeOptions::new().config(config));
            tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let options = options.clone();
                    let service = hyper::service::service_fn(move |mut req| {
                        let answer = match upgrade(&mut req, &options) {
                            Ok((response, websocket)) => {
                                tokio::spawn(async move {
                                    if let Ok(ws) = websocket.await {
                                        echo(ws).await;
                                    }
                                });
                                response.map(|body| body.map_err(|never| match never {}).boxed())
                            }
                            Err(rejection) => rejection
                                .response
                                .map(|body| Full::new(Bytes::from(body)).boxed()),
                        };
                        async move { Ok::<_, Infallible>(answer) }
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                            .with_upgrades(),
                    );
                }
            });
        }
        Entry::Axum => {
            let app = axum::Router::new().route(
                "/",
                axum::routing::get(move |ws: switchboard::axum::WebSocketUpgrade| async move {
                    ws.config(config).on_upgrade(echo)
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
    }
    addr
}

async fn connect(addr: SocketAddr, client: &Client) -> WebSocket<switchboard::MaybeTlsStream> {
    let (ws, _) = tokio::time::timeout(LIMIT, client.connect(&format!("ws://{addr}/")))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

/// The close code the connection ended with, after sending `message` (if any) and reading
/// until the end.
async fn ends_with<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocket<S>,
    message: Option<Message>,
) -> CloseCode {
    if let Some(message) = message {
        ws.send(message).await.unwrap();
    }
    tokio::time::timeout(LIMIT, async { while let Some(Ok(_)) = ws.recv().await {} })
        .await
        .expect("the connection ends in time");
    ws.close_info().expect("closed with a close frame").code
}

#[tokio::test]
async fn max_message_size_is_refused_with_1009_through_every_server_entry_point() {
    for entry in ENTRIES {
        let addr = serve(entry, WebSocketConfig::default().max_message_size(16)).await;
        let client = Client::default();
        let mut ws = connect(addr, &client).await;
        ws.send("x".repeat(16)).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::from("x".repeat(16)),
            "{entry:?}"
        );
        let code = ends_with(ws, Some(Message::from("x".repeat(17)))).await;
        assert_eq!(code, CloseCode::MESSAGE_TOO_BIG, "{entry:?}");
    }
}

#[tokio::test]
async fn max_frame_size_is_refused_with_1009_through_every_server_entry_point() {
    for entry in ENTRIES {
        // The message limit would allow it: only the frame limit refuses.
        let addr = serve(entry, WebSocketConfig::default().max_frame_size(16)).await;
        let ws = connect(addr, &Client::default()).await;
        let code = ends_with(ws, Some(Message::from("y".repeat(17)))).await;
        assert_eq!(code, CloseCode::MESSAGE_TOO_BIG, "{entry:?}");
    }
}

#[tokio::test]
async fn compression_is_negotiated_only_where_configured() {
    let offering = Client::builder()
        .config(WebSocketConfig::default().compression(true))
        .build()
        .unwrap();
    for entry in ENTRIES {
        for on in [true, false] {
            let addr = serve(entry, WebSocketConfig::default().compression(on)).await;
            let mut ws = connect(addr, &offering).await;
            assert_eq!(ws.is_compressed(), on, "{entry:?}");
            let big = "compressible ".repeat(1000);
            ws.send(big.as_str()).await.unwrap();
            assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from(big));
        }
        // A client that does not offer it gets none, whatever the server allows.
        let addr = serve(entry, WebSocketConfig::default().compression(true)).await;
        assert!(!connect(addr, &Client::default()).await.is_compressed());
    }
}

#[tokio::test]
async fn the_idle_timeout_closes_with_1001_through_every_entry_point() {
    let idle = WebSocketConfig::default().idle_timeout(Some(Duration::from_millis(200)));
    for entry in ENTRIES {
        let addr = serve(entry, idle.clone()).await;
        let ws = connect(addr, &Client::default()).await;
        assert_eq!(
            ends_with(ws, None).await,
            CloseCode::GOING_AWAY,
            "{entry:?}"
        );
    }
    // The client's own: a server that stays silent is closed by the client.
    let addr = serve(Entry::Router, WebSocketConfig::default()).await;
    let client = Client::builder().config(idle).build().unwrap();
    let ws = connect(addr, &client).await;
    assert_eq!(ends_with(ws, None).await, CloseCode::GOING_AWAY);
}

#[tokio::test]
async fn the_client_takes_the_message_limit_too() {
    let addr = serve(Entry::Router, WebSocketConfig::default()).await;
    let client = Client::builder()
        .config(WebSocketConfig::default().max_message_size(16))
        .build()
        .unwrap();
    let ws = connect(addr, &client).await;
    // The echo comes back over the client's limit.
    let code = ends_with(ws, Some(Message::from("z".repeat(17)))).await;
    assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);
}

/// Writes `head` to a server and reads its answer's head (up to the empty line, or until it
/// closes); `""` if it closed without answering.
async fn raw(addr: SocketAddr, head: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(LIMIT, async {
        let mut buf = [0u8; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server answers or ends the connection in time");
    String::from_utf8_lossy(&answer).into_owned()
}

fn upgrade_head(padding: usize) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         X-Padding: {}\r\n\r\n",
        "p".repeat(padding)
    )
    .into_bytes()
}

#[tokio::test]
async fn the_handshake_limits_hold_where_this_crate_reads_the_head() {
    for entry in [Entry::Acceptor, Entry::Router] {
        // Head size: 1 KiB passes a 2 KiB limit, 3 KiB does not.
        let addr = serve(
            entry,
            WebSocketConfig::default().max_handshake_size(2 << 10),
        )
        .await;
        let answer = raw(addr, &upgrade_head(1 << 10)).await;
        assert!(answer.starts_with("HTTP/1.1 101"), "{entry:?}: {answer}");
        let answer = raw(addr, &upgrade_head(3 << 10)).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{entry:?}: {answer}");

        // Timeout: half a head, then silence, is dropped at the limit.
        let timeout = Duration::from_millis(300);
        let addr = serve(
            entry,
            WebSocketConfig::default().handshake_timeout(Some(timeout)),
        )
        .await;
        let started = std::time::Instant::now();
        let answer = raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        let waited = started.elapsed();
        assert_eq!(answer, "", "{entry:?}");
        assert!(
            waited >= timeout && waited < Duration::from_secs(5),
            "{entry:?}: {waited:?}"
        );
    }
}

#[tokio::test]
async fn the_router_holds_each_request_to_its_own_routes_head_limits() {
    let small = WebSocketConfig::default().max_handshake_size(1 << 10);
    let router = Router::new()
        .route("/small", Route::new(|ws, _| echo(ws)).config(small))
        .route("/", Route::new(|ws, _| echo(ws)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(router.serve(listener));
    let head = String::from_utf8(upgrade_head(2 << 10)).unwrap();
    let answer = raw(addr, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let answer = raw(addr, head.replacen("GET / ", "GET /small ", 1).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn the_client_takes_the_handshake_limits() {
    // A server that accepts TCP and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let client = Client::builder()
        .config(WebSocketConfig::default().handshake_timeout(Some(Duration::from_millis(200))))
        .build()
        .unwrap();
    let error = client
        .connect(&format!("ws://{addr}/"))
        .await
        .expect_err("no answer");
    assert_eq!(error.kind(), ErrorKind::Timeout);
    silent.abort();

    // A server whose 101 head is larger than the client allows.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nX-Big: {}\r\n\r\n",
            "b".repeat(2048)
        );
        let _ = tcp.write_all(head.as_bytes()).await;
        let _ = tcp.read(&mut buf).await;
    });
    let client = Client::builder()
        .config(WebSocketConfig::default().max_handshake_size(1 << 10))
        .build()
        .unwrap();
    let error = client
        .connect(&format!("ws://{addr}/"))
        .await
        .expect_err("head too large");
    assert_eq!(error.kind(), ErrorKind::Handshake, "{error}");
}
