//! The standalone router end to end on loopback: endpoints by path, refusals with their
//! statuses, per-route options, security hooks, limits, slowloris, TLS.

#[cfg(feature = "tls")]
#[path = "support/pki.rs"]
mod pki;

use http::StatusCode;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::router::{Route, Router, ServerWebSocket};
use switchboard::security::{ConnectionLimiter, OriginPolicy, TrustedProxies};
use switchboard::{Client, CloseCode, Message, Reject, WebSocketConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

async fn echo(mut ws: ServerWebSocket) {
    while let Some(Ok(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

async fn start(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(router.serve(listener));
    addr
}

/// Sends `request` and reads until the server closes: the whole answer.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(LIMIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

fn two_endpoints() -> Router {
    Router::new()
        .route("/echo", Route::new(|ws, _| echo(ws)))
        .route(
            "/upper",
            Route::new(|mut ws, _| async move {
                while let Some(Ok(Message::Text(text))) = ws.recv().await {
                    let _ = ws.send(text.to_uppercase()).await;
                }
            }),
        )
}

#[tokio::test]
async fn each_path_has_its_own_handler_and_unknown_paths_get_404() {
    let addr = start(two_endpoints()).await;
    let (mut echo, _) = switchboard::connect(&format!("ws://{addr}/echo"))
        .await
        .unwrap();
    let (mut upper, _) = switchboard::connect(&format!("ws://{addr}/upper?x=1"))
        .await
        .unwrap();
    echo.send("hello").await.unwrap();
    upper.send("hello").await.unwrap();
    assert_eq!(echo.recv().await.unwrap().unwrap(), Message::from("hello"));
    assert_eq!(upper.recv().await.unwrap().unwrap(), Message::from("HELLO"));
    echo.close(CloseCode::NORMAL, "").await.unwrap();

    let error = switchboard::connect(&format!("ws://{addr}/nope"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    let answer = raw(addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nno WebSocket endpoint at this path\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_plain_get_on_a_websocket_path_gets_426_and_the_socket_closes() {
    let addr = start(two_endpoints()).await;
    let answer = raw(
        addr,
        "GET /echo HTTP/1.1\r\nHost: x\r\nUser-Agent: curl\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{answer}"
    );
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{answer}");
    assert!(
        lower.contains("\r\nsec-websocket-version: 13\r\n"),
        "{answer}"
    );
    assert!(lower.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nthis endpoint speaks WebSocket only\n"),
        "{answer}"
    );
    // A malformed upgrade still gets the RFC's answer.
    let answer = raw(
        addr,
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("missing Sec-WebSocket-Key header\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn routes_have_their_own_options() {
    let router = Router::new()
        .route(
            "/small",
            Route::new(|ws, _| echo(ws)).config(WebSocketConfig::default().max_message_size(16)),
        )
        .route(
            "/proto",
            Route::new(|mut ws, _| async move {
                let _ = ws.send(ws.protocol().unwrap_or("none").to_owned()).await;
            })
            .protocols(["b", "a"]),
        )
        .route(
            "/zip/*",
            Route::new(|ws, _| echo(ws)).config(WebSocketConfig::default().compression(true)),
        );
    let addr = start(router).await;

    let (mut ws, _) = switchboard::connect(&format!("ws://{addr}/small"))
        .await
        .unwrap();
    ws.send("x".repeat(17)).await.unwrap();
    assert!(!matches!(ws.recv().await, Some(Ok(_))));
    assert_eq!(ws.close_info().unwrap().code, CloseCode::MESSAGE_TOO_BIG);

    let client = Client::builder().protocols(["a", "b"]).build().unwrap();
    let (mut ws, _) = client.connect(&format!("ws://{addr}/proto")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("b"));

    let client = Client::builder()
        .config(WebSocketConfig::default().compression(true))
        .build()
        .unwrap();
    let (ws, _) = client
        .connect(&format!("ws://{addr}/zip/anything"))
        .await
        .unwrap();
    assert!(ws.is_compressed());
    let (ws, _) = client.connect(&format!("ws://{addr}/small")).await.unwrap();
    assert!(!ws.is_compressed());
}

#[tokio::test]
async fn origin_and_authentication_run_before_the_101() {
    let router = Router::new().route(
        "/private",
        Route::new(|mut ws, info| async move {
            let user = info
                .extensions()
                .get::<String>()
                .cloned()
                .unwrap_or_default();
            let _ = ws.send(format!("hello {user}")).await;
        })
        .origins(OriginPolicy::allow(["https://app.example"]))
        .authenticate(|req| {
            let user = match (
                req.query_param("token").as_deref(),
                req.cookie("session"),
                req.header("authorization"),
            ) {
                (Some("t0k"), _, _) => "query",
                (_, Some("c00kie"), _) => "cookie",
                (_, _, Some("Bearer b34rer")) => "header",
                _ => return Err(Reject::new(StatusCode::UNAUTHORIZED, "who are you?")),
            };
            req.extensions_mut().insert(user.to_owned());
            Ok(())
        }),
    );
    let addr = start(router).await;
    let url = format!("ws://{addr}/private");
    let origin = |o: &str| Client::builder().header("origin", o);

    let error = origin("https://evil.example")
        .header("cookie", "session=c00kie")
        .connect(&url)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN));
    let error = origin("https://app.example")
        .connect(&url)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));

    for (client, url, who) in [
        (
            origin("https://app.example"),
            format!("{url}?token=t0k"),
            "query",
        ),
        (
            origin("https://app.example").header("cookie", "a=b; session=c00kie"),
            url.clone(),
            "cookie",
        ),
        (
            Client::builder().header("authorization", "Bearer b34rer"),
            url.clone(),
            "header",
        ),
    ] {
        let (mut ws, _) = client.connect(&url).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::from(format!("hello {who}"))
        );
    }

    // The same credentials in an `http::Request` given to `connect`.
    let request = http::Request::get(&url)
        .header("origin", "https://app.example")
        .header("authorization", "Bearer b34rer")
        .body(())
        .unwrap();
    let (mut ws, _) = switchboard::connect(request).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from("hello header")
    );
}

#[tokio::test]
async fn connection_limits_answer_429_and_503() {
    let limiter = ConnectionLimiter::new(3, 2);
    let router = Router::new()
        .route("/", Route::new(|ws, _| echo(ws)))
        .connection_limits(limiter.clone());
    let addr = start(router).await;
    let url = format!("ws://{addr}/");
    let (mut a, _) = switchboard::connect(&url).await.unwrap();
    let (_b, _) = switchboard::connect(&url).await.unwrap();
    let error = switchboard::connect(&url).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    // From another loopback address: the total limit.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let (_c, _) = Client::default()
        .connect_on(tcp.connect(addr).await.unwrap(), &url)
        .await
        .unwrap();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let error = Client::default()
        .connect_on(tcp.connect(addr).await.unwrap(), &url)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));

    a.close(CloseCode::NORMAL, "").await.unwrap();
    tokio::time::timeout(LIMIT, async {
        while limiter.active() > 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let (mut again, _) = switchboard::connect(&url).await.unwrap();
    again.send("back").await.unwrap();
    assert_eq!(again.recv().await.unwrap().unwrap(), Message::from("back"));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_counts() {
    let limiter = ConnectionLimiter::new(100, 1);
    let router = Router::new()
        .route(
            "/",
            Route::new(|mut ws, info| async move {
                let _ = ws.send(info.client_ip().to_string()).await;
                echo(ws).await;
            }),
        )
        .connection_limits(limiter)
        .trusted_proxies(TrustedProxies::new(["127.0.0.1"]).unwrap());
    let addr = start(router).await;
    let url = format!("ws://{addr}/");
    let via =
        |client: &str| Client::builder().header("x-forwarded-for", format!("6.6.6.6, {client}"));
    let (mut first, _) = via("203.0.113.1").connect(&url).await.unwrap();
    assert_eq!(
        first.recv().await.unwrap().unwrap(),
        Message::from("203.0.113.1")
    );
    // Same forwarded client: over its limit although the proxy's address is shared.
    let error = via("203.0.113.1").connect(&url).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    let (mut other, _) = via("203.0.113.2").connect(&url).await.unwrap();
    assert_eq!(
        other.recv().await.unwrap().unwrap(),
        Message::from("203.0.113.2")
    );
}

/// Slowloris: 1,000 connections that never finish their request head do not stop a normal
/// client from being served, and are cut off at the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_half_open_handshakes_do_not_block_a_normal_client() {
    let timeout = Duration::from_millis(1500);
    let router = Router::new().route(
        "/",
        Route::new(|ws, _| echo(ws))
            .config(WebSocketConfig::default().handshake_timeout(Some(timeout))),
    );
    let addr = start(router).await;

    let mut loris = Vec::with_capacity(1000);
    for i in 0..1000 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // Half a request head, then nothing.
        tcp.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ").as_bytes())
            .await
            .unwrap();
        loris.push(tcp);
    }
    let started = std::time::Instant::now();
    let (mut ws, _) = switchboard::connect(&format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.send("still served").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from("still served")
    );
    assert!(
        started.elapsed() < timeout,
        "the normal client waited {:?}",
        started.elapsed()
    );

    // Every half-open connection is closed by the server once its time is up.
    let mut buf = [0u8; 64];
    for tcp in loris.iter_mut() {
        let read = tokio::time::timeout(LIMIT, tcp.read(&mut buf))
            .await
            .expect("closed by the handshake timeout");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn the_router_terminates_tls() {
    use switchboard::tls;
    let pki = pki::Pki::new("router");
    let acceptor = tls::acceptor_from_pem(pki.path("cert.pem"), pki.path("key.pem")).unwrap();
    let router = Router::new()
        .route(
            "/secure",
            Route::new(|mut ws, _| async move {
                let tls = ws.get_ref().is_tls();
                let _ = ws.send(format!("tls={tls}")).await;
                echo(ws).await;
            }),
        )
        .tls(acceptor);
    let addr = start(router).await;
    let config = tls::client_config([pki.path("ca.pem")]).unwrap();
    let stream = tls::connect(TcpStream::connect(addr).await.unwrap(), "localhost", config)
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/secure", addr.port());
    let (mut ws, _) = Client::default().connect_on(stream, &url).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("tls=true"));
    ws.send("secret").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("secret"));
    // A plain-text client gets nowhere (and does not hang the server): a complete, valid
    // upgrade request, which a router without TLS would answer 101, is not.
    let answer = tokio::time::timeout(LIMIT, async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"GET /secure HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out).await;
        out
    })
    .await
    .unwrap();
    assert!(!answer.starts_with(b"HTTP/1.1 101"));
}

/// A graceful shutdown stops accepting and does not outlive its deadline, even for a
/// handler that never returns on its own.
#[tokio::test]
async fn shutdown_stops_accepting_and_keeps_its_deadline() {
    let router = Router::new()
        .route(
            "/stuck",
            Route::new(|ws, _| async move {
                let _keep = ws;
                std::future::pending::<()>().await;
            }),
        )
        .shutdown_timeout(Duration::from_millis(300));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(router.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));
    let (mut ws, _) = switchboard::connect(&format!("ws://{addr}/stuck"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(LIMIT, server)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The stuck connection was dropped at the deadline, and nobody listens any more.
    assert!(!matches!(
        tokio::time::timeout(LIMIT, ws.recv()).await.unwrap(),
        Some(Ok(_))
    ));
    assert!(TcpStream::connect(addr).await.is_err());
}

/// A route's `OriginPolicy` is the whole policy, `Host` rules included: `hosts` refuses a
/// request for any other name, and the router's own origin passes on a known host.
#[tokio::test]
async fn a_routes_origin_policy_checks_the_host_too() {
    let router = Router::new()
        .route(
            "/named",
            Route::new(|ws, _| echo(ws)).origins(OriginPolicy::any().hosts(["chat.example"])),
        )
        .route(
            "/listed",
            Route::new(|ws, _| echo(ws)).origins(OriginPolicy::allow(["https://app.example"])),
        );
    let addr = start(router).await;
    // The client's `Host` is 127.0.0.1:PORT, not chat.example.
    let error = switchboard::connect(format!("ws://{addr}/named").as_str())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN));
    let named = http::Request::get(format!("ws://{addr}/named"))
        .header("host", "chat.example")
        .body(())
        .unwrap();
    switchboard::connect(named).await.unwrap();
    // The router's own origin (a page it would serve) is not on the list, and passes.
    let own = Client::builder()
        .header("origin", format!("http://{addr}"))
        .build()
        .unwrap();
    own.connect(format!("ws://{addr}/listed")).await.unwrap();
    let foreign = Client::builder()
        .header("origin", "http://elsewhere.example")
        .build()
        .unwrap();
    let error = foreign
        .connect(format!("ws://{addr}/listed"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN));
}
