//! The hyper/axum upgrade path end to end: a real axum (and a bare hyper) server on
//! loopback, our client on the other side, and raw HTTP for the refusals.

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::axum::{WebSocket, WebSocketUpgrade};
use switchboard::{Client, CloseCode, ErrorKind, Message, WebSocketConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if socket.send(message).await.is_err() {
            break;
        }
    }
}

/// Serves `router` on a loopback port for the rest of the test.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn app() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/echo",
            get(|ws: WebSocketUpgrade| async move {
                ws.config(WebSocketConfig::default().compression(true))
                    .on_upgrade(echo)
            }),
        )
        .route(
            "/proto",
            get(|ws: WebSocketUpgrade| async move {
                let ws = ws.protocols(["v2", "v1"]);
                let chosen = ws.selected_protocol().map(str::to_owned);
                ws.on_upgrade(move |mut socket| async move {
                    assert_eq!(socket.protocol(), chosen.as_deref());
                    let reply = format!("protocol={}", socket.protocol().unwrap_or("none"));
                    let _ = socket.send(reply).await;
                    let _ = socket.close(CloseCode::NORMAL, "done").await;
                })
            }),
        )
        .route(
            "/small",
            get(|ws: WebSocketUpgrade| async move {
                ws.config(WebSocketConfig::default().max_message_size(16))
                    .on_upgrade(echo)
            }),
        )
}

/// Sends a raw HTTP/1.1 request and reads the whole response (the server closes or we stop
/// at the end of the body given by `Content-Length`).
async fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(LIMIT, async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&response);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_some_and(|len| body.len() >= len) {
                    break;
                }
            }
        }
    })
    .await
    .expect("response in time");
    String::from_utf8(response).unwrap()
}

#[tokio::test]
async fn rest_and_websocket_share_one_port() {
    let addr = serve(app()).await;
    let health = raw_request(
        addr,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");

    let (mut ws, response) = switchboard::connect(&format!("ws://{addr}/echo"))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws.send("hello").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("hello"));
    ws.send(vec![0u8, 1, 2, 255]).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::Binary(Bytes::from_static(&[0, 1, 2, 255]))
    );
    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    let info = ws.close_info().expect("closed");
    assert_eq!(info.code, CloseCode::NORMAL);
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_when_the_route_allows_it() {
    let addr = serve(app()).await;
    let client = Client::builder()
        .config(WebSocketConfig::default().compression(true))
        .build()
        .unwrap();
    let (mut ws, response) = client.connect(&format!("ws://{addr}/echo")).await.unwrap();
    assert!(response.headers().contains_key("sec-websocket-extensions"));
    assert!(ws.is_compressed());
    let big = "switchboard ".repeat(1000);
    ws.send(big.as_str()).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from(big.as_str())
    );
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test]
async fn the_servers_preferred_subprotocol_wins() {
    let addr = serve(app()).await;
    let client = Client::builder().protocols(["v1", "v2"]).build().unwrap();
    let (mut ws, _) = client.connect(&format!("ws://{addr}/proto")).await.unwrap();
    assert_eq!(ws.protocol(), Some("v2"));
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from("protocol=v2")
    );
    assert!(ws.recv().await.is_none());
    assert_eq!(ws.close_info().unwrap().code, CloseCode::NORMAL);

    // No protocol in common: the connection goes ahead without one (RFC 6455 §4.2.2).
    let client = Client::builder().protocols(["v9"]).build().unwrap();
    let (mut ws, response) = client.connect(&format!("ws://{addr}/proto")).await.unwrap();
    assert!(!response.headers().contains_key("sec-websocket-protocol"));
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from("protocol=none")
    );
}

#[tokio::test]
async fn the_message_limit_closes_with_1009() {
    let addr = serve(app()).await;
    let (mut ws, _) = switchboard::connect(&format!("ws://{addr}/small"))
        .await
        .unwrap();
    ws.send("short").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("short"));
    ws.send("this message is longer than sixteen bytes")
        .await
        .unwrap();
    let end = tokio::time::timeout(LIMIT, ws.recv()).await.unwrap();
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
    assert_eq!(ws.close_info().unwrap().code, CloseCode::MESSAGE_TOO_BIG);
}

#[tokio::test]
async fn a_plain_get_on_a_websocket_route_gets_426_with_a_short_body() {
    let addr = serve(app()).await;
    let response = raw_request(addr, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{response}");
    assert!(
        lower.contains("\r\nsec-websocket-version: 13\r\n"),
        "{response}"
    );
    let body = response.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(body, "this endpoint speaks WebSocket only\n");

    // Our client sees the status and does not get a socket.
    let error = switchboard::connect(&format!("ws://{addr}/health"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    assert_eq!(error.status(), Some(http::StatusCode::OK));
}

#[tokio::test]
async fn invalid_upgrade_requests_get_the_rfc_status() {
    let addr = serve(app()).await;
    let base = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    let version_8 = format!(
        "{base}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    );
    let response = raw_request(addr, &version_8).await;
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\nsec-websocket-version: 13\r\n"),
        "{response}"
    );

    let bad_key = format!("{base}Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n");
    let response = raw_request(addr, &bad_key).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.ends_with("Sec-WebSocket-Key is not base64 of 16 bytes\n"),
        "{response}"
    );
}

/// A bare hyper 1 service using `switchboard::upgrade` directly, without axum.
#[tokio::test]
async fn a_bare_hyper_service_upgrades_with_upgrade() {
    use http_body_util::{combinators::BoxBody, BodyExt, Full};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use switchboard::upgrade::{is_upgrade_request, upgrade, UpgradeOptions};

    async fn service(
        mut req: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<BoxBody<Bytes, Infallible>>, Infallible> {
        if !is_upgrade_request(&req) {
            return Ok(http::Response::new(
                Full::new(Bytes::from_static(b"plain\n")).boxed(),
            ));
        }
        let options = UpgradeOptions::new().protocols(["echo"]);
        match upgrade(&mut req, &options) {
            Ok((response, websocket)) => {
                tokio::spawn(async move {
                    let mut ws = websocket.await.expect("upgraded");
                    assert_eq!(ws.protocol(), Some("echo"));
                    while let Some(Ok(message)) = ws.recv().await {
                        if ws.send(message).await.is_err() {
                            break;
                        }
                    }
                });
                Ok(response.map(|body| body.map_err(|never| match never {}).boxed()))
            }
            Err(rejection) => Ok(rejection
                .response
                .map(|body| Full::new(Bytes::from(body)).boxed())),
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(service))
                    .with_upgrades(),
            );
        }
    });

    let client = Client::builder().protocols(["echo"]).build().unwrap();
    let (mut ws, _) = client.connect(&format!("ws://{addr}/")).await.unwrap();
    for i in 0..20 {
        ws.send(format!("message {i}")).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::from(format!("message {i}"))
        );
    }
    ws.close(CloseCode::NORMAL, "").await.unwrap();

    let plain = raw_request(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.ends_with("plain\n"), "{plain}");
    let refused = raw_request(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 405"), "{refused}");
}

/// Origin allowlist and per-client limits in an axum handler.
#[tokio::test]
async fn origin_policy_and_connection_limits_guard_a_route() {
    use axum::extract::{ConnectInfo, State};
    use axum::response::IntoResponse;
    use switchboard::security::{ConnectionLimiter, OriginPolicy};

    async fn guarded(
        ws: WebSocketUpgrade,
        ConnectInfo(peer): ConnectInfo<SocketAddr>,
        State(limiter): State<ConnectionLimiter>,
    ) -> Result<axum::response::Response, axum::response::Response> {
        let policy = OriginPolicy::allow(["https://good.example"]).allow_missing(false);
        let ws = ws
            .allow_origins(&policy)
            .map_err(IntoResponse::into_response)?;
        let permit = limiter
            .try_acquire(peer.ip())
            .map_err(IntoResponse::into_response)?;
        Ok(ws.on_upgrade(move |socket| async move {
            echo(socket).await;
            drop(permit);
        }))
    }

    let limiter = ConnectionLimiter::new(100, 1);
    let router = Router::new()
        .route("/guarded", get(guarded))
        .with_state(limiter.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let url = format!("ws://{addr}/guarded");
    let with_origin = |origin: &str| Client::builder().header("origin", origin).build().unwrap();

    for (origin, status) in [(None, 403), (Some("https://evil.example"), 403)] {
        let client = match origin {
            Some(origin) => with_origin(origin),
            None => Client::default(),
        };
        let error = client.connect(&url).await.unwrap_err();
        assert_eq!(
            error.status().map(|s| s.as_u16()),
            Some(status),
            "{origin:?}"
        );
    }

    // The server's own origin (a page it serves, on its IP address) is not listed, and
    // passes, as OriginPolicy::check_request has it.
    let (own, _) = with_origin(&format!("http://{addr}"))
        .connect(&url)
        .await
        .unwrap();
    drop(own);
    tokio::time::timeout(LIMIT, async {
        while limiter.active() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();

    let good = with_origin("https://good.example");
    let (mut first, _) = good.connect(&url).await.unwrap();
    let error = good.connect(&url).await.unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(error.response().unwrap().headers()["retry-after"], "5");
    first.send("still here").await.unwrap();
    assert_eq!(
        first.recv().await.unwrap().unwrap(),
        Message::from("still here")
    );
    first.close(CloseCode::NORMAL, "").await.unwrap();

    // The place is freed when the server's handler ends.
    tokio::time::timeout(LIMIT, async {
        while limiter.active() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let (mut again, _) = good.connect(&url).await.unwrap();
    again.close(CloseCode::NORMAL, "").await.unwrap();
}
