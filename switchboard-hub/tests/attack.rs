//! The hub under attack, tried as an attacker would: raw sockets that misbehave on purpose.
//! Every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{request, start, WAIT};
use switchboard_hub::metrics::Transport;
use switchboard_hub::{Hub, HubConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A WebSocket handshake on a socket with a tiny receive window, answered 101; the socket
/// is returned right after the response head.
async fn raw_ws(addr: SocketAddr, path: &str, extra: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    tcp.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
             sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "closed during the handshake: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// A masked text frame.
fn text_frame(payload: &str) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let bytes = payload.as_bytes();
    let mut frame = vec![0x81];
    match bytes.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=65535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(bytes.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Floods `tcp` with commands that each earn a 32 KiB answer (an error naming the unknown
/// op) and never reads, until the server stops reading too (a write stalls) or
/// `for_at_most` passes. Returns the socket, still open.
async fn flood_without_reading(mut tcp: TcpStream, for_at_most: Duration) -> TcpStream {
    let frames = text_frame(&format!(r#"{{"op":"{}"}}"#, "x".repeat(32 << 10)));
    let started = Instant::now();
    while started.elapsed() < for_at_most {
        match tokio::time::timeout(Duration::from_millis(500), tcp.write_all(&frames)).await {
            Ok(Ok(())) => {}
            // Stalled (the server stopped reading: its session is stuck or gone) or broken.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    tcp
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn open_ws(hub: &Hub) -> i64 {
    hub.metrics().open_connections(Transport::WebSocket)
}

fn no_rate_limit() -> HubConfig {
    let mut config = HubConfig::default();
    config.rate_limit.messages_per_second = 0.0;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_but_never_reads_is_dropped_within_the_write_timeout() {
    let mut config = no_rate_limit();
    config.limits.write_timeout_secs = 1;
    let hub = start(config).await;
    let tcp = raw_ws(hub.addr, "/ws", "").await;
    let tcp = flood_without_reading(tcp, Duration::from_secs(10)).await;
    wait_until(
        "the stuck client is dropped",
        Duration::from_secs(5),
        || open_ws(&hub.hub) == 0,
    )
    .await;
    let text =
        String::from_utf8(request(hub.addr, "GET", "/metrics", &[], b"").await.body).unwrap();
    assert!(
        text.contains("switchboard_slow_disconnects_total 1\n"),
        "{text}"
    );
    drop(tcp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_kills_a_client_whose_replies_are_stuck() {
    let mut config = no_rate_limit();
    config.limits.write_timeout_secs = 600;
    config.admin_api = true;
    let hub = start(config).await;
    let tcp = raw_ws(hub.addr, "/ws", "").await;
    let tcp = flood_without_reading(tcp, Duration::from_secs(10)).await;
    assert_eq!(open_ws(&hub.hub), 1);
    let r = request(hub.addr, "POST", "/api/admin/disconnect", &[], b"").await;
    assert_eq!(r.json()["disconnected"], 1);
    wait_until("the killed client is gone", Duration::from_secs(2), || {
        open_ws(&hub.hub) == 0
    })
    .await;
    drop(tcp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_on_a_client_that_does_not_read() {
    let mut config = no_rate_limit();
    config.limits.write_timeout_secs = 600;
    let mut hub = start(config).await;
    let tcp = raw_ws(hub.addr, "/ws", "").await;
    let tcp = flood_without_reading(tcp, Duration::from_secs(10)).await;
    assert_eq!(open_ws(&hub.hub), 1);
    let started = Instant::now();
    hub.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(WAIT, &mut hub.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The server's grace for polite closes is 10 s; a stuck writer is let go after 2.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    drop(tcp);
}

/// A connection from `source` (any 127.0.0.0/8 address works on loopback).
async fn tcp_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// One `Connection: close` request on `tcp`; the status and the whole response.
async fn exchange(mut tcp: TcpStream, head: &str) -> (u16, String) {
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("no answer")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: hub\r\nconnection: close\r\n\r\n")
}

#[tokio::test]
async fn connection_caps_per_ip_and_in_total_answer_429_and_503_but_health_still_answers() {
    let mut config = no_rate_limit();
    config.limits.max_connections = 5;
    config.limits.max_connections_per_ip = 3;
    let hub = start(config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tcp_from("127.0.0.1", hub.addr).await);
    }
    let (status, text) =
        exchange(tcp_from("127.0.0.1", hub.addr).await, &get("/api/channels")).await;
    assert_eq!(status, 429, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 5"),
        "{text}"
    );
    assert!(text.contains("too_many_connections"), "{text}");
    let (status, _) = exchange(tcp_from("127.0.0.1", hub.addr).await, &get("/healthz")).await;
    assert_eq!(status, 200);
    for _ in 0..2 {
        held.push(tcp_from("127.0.0.2", hub.addr).await);
    }
    let (status, text) = exchange(tcp_from("127.0.0.3", hub.addr).await, &get("/sse/c")).await;
    assert_eq!(status, 503, "{text}");
    let (status, _) = exchange(tcp_from("127.0.0.3", hub.addr).await, &get("/healthz")).await;
    assert_eq!(status, 200);
    // The connections held are served as usual, and a freed place is taken again.
    let (status, _) = exchange(held.pop().unwrap(), &get("/api/channels")).await;
    assert_eq!(status, 200);
    let mut freed = false;
    for _ in 0..100 {
        let (status, _) =
            exchange(tcp_from("127.0.0.3", hub.addr).await, &get("/api/channels")).await;
        if status == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "the place of a closed connection was not freed");
}

#[tokio::test]
async fn a_body_that_never_arrives_is_cut_off_and_a_huge_declared_one_refused_at_once() {
    let mut config = no_rate_limit();
    config.limits.body_timeout_secs = 1;
    let hub = start(config).await;
    let started = Instant::now();
    let (status, text) = exchange(
        TcpStream::connect(hub.addr).await.unwrap(),
        "POST /api/channels/c/messages HTTP/1.1\r\nhost: hub\r\ncontent-type: text/plain\r\n\
         content-length: 100\r\nconnection: close\r\n\r\nonly ten b",
    )
    .await;
    assert_eq!(status, 408, "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
    tcp.write_all(
        b"POST /api/channels/c/messages HTTP/1.1\r\nhost: hub\r\ncontent-type: text/plain\r\n\
          content-length: 10000000000\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut buf))
        .await
        .expect("a 10 GB declared body was waited for")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 413");
}

#[tokio::test]
async fn with_auth_on_an_unauthenticated_ws_upgrade_is_refused_at_the_handshake() {
    let mut config = HubConfig::default();
    config.auth = Some(switchboard_hub::config::AuthConfig {
        jwt_secret: "a secret of sixteen+ bytes".into(),
    });
    let hub = start(config).await;
    let (status, text) = exchange(
        TcpStream::connect(hub.addr).await.unwrap(),
        "GET /ws HTTP/1.1\r\nhost: hub\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401, "{text}");
}

#[tokio::test]
async fn the_listen_backlog_is_the_configured_one() {
    let mut config = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..HubConfig::default()
    };
    config.limits.listen_backlog = 777;
    let listener = switchboard_hub::bind(&config).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // `ss` shows a listening socket's backlog as its Send-Q.
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) is needed by this test");
    let text = String::from_utf8_lossy(&out.stdout);
    let send_q: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(send_q.get(2), Some(&"777"), "{text}");
}

#[tokio::test]
async fn deep_json_lone_surrogates_and_infinite_numbers_are_refused_and_escaped_names_understood() {
    let hub = start(no_rate_limit()).await;
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let r = request(
        hub.addr,
        "POST",
        "/api/channels/c/messages",
        &[("content-type", "application/json")],
        deep.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let r = request(
        hub.addr,
        "POST",
        "/api/channels/c/messages",
        &[("content-type", "application/json")],
        br#"{"t":"\udc00"}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // Valid JSON text that subscribers' decoders refuse or turn into infinity.
    let r = request(
        hub.addr,
        "POST",
        "/api/channels/c/messages",
        &[("content-type", "application/json")],
        br#"{"t":[1e400]}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("1e400"));
    let (mut ws, _) = switchboard::connect(&format!("ws://{}/ws", hub.addr))
        .await
        .unwrap();
    let mut ask = async |text: String| {
        ws.send(switchboard::Message::Text(text.into()))
            .await
            .unwrap();
        match tokio::time::timeout(WAIT, ws.recv()).await.unwrap() {
            Some(Ok(switchboard::Message::Text(t))) => {
                serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap()
            }
            other => panic!("{other:?}"),
        }
    };
    let e = ask(format!(
        r#"{{"op":"publish","channel":"c","data":{deep},"ref":1}}"#
    ))
    .await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_i64()),
        (Some("invalid_message"), Some(1))
    );
    let e = ask(r#"{"op":"publish","channel":"c","data":-2e999,"ref":4}"#.into()).await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_i64()),
        (Some("invalid_message"), Some(4))
    );
    let a = ask(r#"{"op":"publ\u0069sh","channel":"\u0063","data":2,"ref":2}"#.into()).await;
    assert_eq!(
        (a["op"].as_str(), a["channel"].as_str()),
        (Some("ack"), Some("c"))
    );
    let e = ask(r#"{"op":"subscribe","channel":"c","since":"nope","ref":3}"#.into()).await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_i64()),
        (Some("invalid_cursor"), Some(3))
    );
}

fn publish_head(extra: &str) -> String {
    format!(
        "POST /api/channels/c/messages HTTP/1.1\r\nhost: hub\r\ncontent-type: text/plain\r\n\
         content-length: 2\r\nconnection: close\r\n{extra}\r\nhi"
    )
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    for (header, forwarded) in [
        ("x-forwarded-for", "x-forwarded-for: {ip}\r\n"),
        ("forwarded", "forwarded: for={ip}\r\n"),
    ] {
        let mut config = HubConfig::from_toml(&format!(
            "trust_proxy = [\"127.0.0.1\"]\ntrust_proxy_header = \"{header}\"\n\
             [rate_limit]\nmessages_per_second = 0.01\nburst = 2\n"
        ))
        .unwrap();
        config.limits.max_connections_per_ip = 100;
        let hub = start(config).await;
        let from = |ip: &str| publish_head(&forwarded.replace("{ip}", ip));
        let tcp = || TcpStream::connect(hub.addr);
        for _ in 0..2 {
            let (status, text) = exchange(tcp().await.unwrap(), &from("203.0.113.1")).await;
            assert_eq!(status, 200, "{text}");
        }
        let (status, _) = exchange(tcp().await.unwrap(), &from("203.0.113.1")).await;
        assert_eq!(status, 429, "{header}");
        // Another client behind the same proxy is not blocked by the first.
        let (status, text) = exchange(tcp().await.unwrap(), &from("203.0.113.2")).await;
        assert_eq!(status, 200, "{header}: {text}");
    }
}

#[tokio::test]
async fn more_ws_connections_buy_no_more_rate_from_one_address() {
    let config =
        HubConfig::from_toml("[rate_limit]\nper_ip_messages_per_second = 0.01\nper_ip_burst = 3\n")
            .unwrap();
    let hub = start(config).await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        let (mut ws, _) = switchboard::connect(&format!("ws://{}/ws", hub.addr))
            .await
            .unwrap();
        // A ping first: ops other than publish cost only the connection's own bucket.
        ws.send(switchboard::Message::Text(r#"{"op":"ping"}"#.into()))
            .await
            .unwrap();
        match tokio::time::timeout(WAIT, ws.recv()).await.unwrap() {
            Some(Ok(switchboard::Message::Text(t))) => assert!(t.as_str().contains("pong"), "{t}"),
            other => panic!("{other:?}"),
        }
        ws.send(switchboard::Message::Text(
            r#"{"op":"publish","channel":"rate","data":"x"}"#.into(),
        ))
        .await
        .unwrap();
        match tokio::time::timeout(WAIT, ws.recv()).await.unwrap() {
            Some(Ok(switchboard::Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                answers.push(
                    v["op"].as_str().unwrap().to_owned() + ":" + v["code"].as_str().unwrap_or(""),
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        answers,
        [
            "ack:",
            "ack:",
            "ack:",
            "error:rate_limited",
            "error:rate_limited",
            "error:rate_limited"
        ]
    );
}

const SECRET: &str = "a secret of sixteen+ bytes";

fn auth_config() -> HubConfig {
    let mut config = no_rate_limit();
    config.auth = Some(switchboard_hub::config::AuthConfig {
        jwt_secret: SECRET.into(),
    });
    config
}

fn token(exp_in_secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    switchboard_hub::security::JwtKey::new(SECRET.as_bytes()).sign(
        &switchboard_hub::security::Claims {
            exp: Some(now + exp_in_secs),
            subscribe: vec!["*".into()],
            publish: vec!["*".into()],
            ..Default::default()
        },
    )
}

async fn ws_text(
    ws: &mut switchboard::WebSocket<switchboard::MaybeTlsStream>,
) -> Option<serde_json::Value> {
    match tokio::time::timeout(WAIT, ws.recv()).await.unwrap() {
        Some(Ok(switchboard::Message::Text(t))) => Some(serde_json::from_str(t.as_str()).unwrap()),
        None => None,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_token_that_expires_while_connected_closes_with_4001_unless_refreshed() {
    let hub = start(auth_config()).await;
    // Expiry is checked to the second: a token valid for 2 s ends within 3.
    let (mut ws, _) = switchboard::connect(&format!("ws://{}/ws?token={}", hub.addr, token(2)))
        .await
        .unwrap();
    let started = Instant::now();
    assert!(ws_text(&mut ws).await.is_none());
    assert_eq!(ws.close_info().map(|c| c.code.0), Some(4001));
    assert!(started.elapsed() < Duration::from_secs(4));
    // The same, refreshed in time: still open after the first token's end.
    let (mut ws, _) = switchboard::connect(&format!("ws://{}/ws?token={}", hub.addr, token(2)))
        .await
        .unwrap();
    let auth = serde_json::json!({"op": "auth", "token": token(3600), "ref": 1});
    ws.send(switchboard::Message::Text(auth.to_string().into()))
        .await
        .unwrap();
    let a = ws_text(&mut ws).await.unwrap();
    assert_eq!(
        (a["op"].as_str(), a["ref"].as_i64()),
        (Some("authed"), Some(1))
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    ws.send(switchboard::Message::Text(r#"{"op":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(ws_text(&mut ws).await.unwrap()["op"], "pong");
    // A refresh with a bad token is refused and changes nothing.
    ws.send(switchboard::Message::Text(
        r#"{"op":"auth","token":"x.y.z"}"#.into(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_text(&mut ws).await.unwrap()["code"], "unauthorized");
}

#[tokio::test]
async fn an_sse_stream_ends_with_an_expired_event_when_its_token_expires() {
    let hub = start(auth_config()).await;
    let mut sse = common::HttpStream::open(
        hub.addr,
        "GET",
        &format!("/sse/c?token={}", token(2)),
        &[],
        b"",
    )
    .await;
    assert_eq!(sse.status, 200);
    let mut saw_expired = false;
    while let Some(block) = tokio::time::timeout(WAIT, sse.next_sse_block())
        .await
        .unwrap()
    {
        saw_expired |= block.event.as_deref() == Some("expired");
    }
    assert!(saw_expired);
}

#[tokio::test]
async fn bearer_is_case_insensitive_and_metrics_can_need_a_token() {
    let mut config = auth_config();
    config.metrics_token = Some("metrics token, 16+ bytes".into());
    let hub = start(config).await;
    let t = token(60);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {t}");
        let r = request(
            hub.addr,
            "GET",
            "/api/channels",
            &[("authorization", &auth)],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "{scheme}");
    }
    assert_eq!(
        request(hub.addr, "GET", "/metrics", &[], b"").await.status,
        401
    );
    let wrong = [("authorization", "Bearer metrics token, 16+ bytez")];
    assert_eq!(
        request(hub.addr, "GET", "/metrics", &wrong, b"")
            .await
            .status,
        401
    );
    let right = [("authorization", "bearer metrics token, 16+ bytes")];
    let r = request(hub.addr, "GET", "/metrics", &right, b"").await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("switchboard_"));
}

/// A request with raw header lines (any bytes), answered with `Connection: close`.
async fn raw_request(addr: SocketAddr, head: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("no answer")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn with_headers(method: &str, path: &str, lines: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\n{lines}connection: close\r\ncontent-length: 0\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn same_origin_means_scheme_host_and_port_and_rebinding_and_bad_bytes_are_refused() {
    let hub = start(no_rate_limit()).await;
    let a = hub.addr;
    let ask = |host: String, origin: String| {
        with_headers(
            "GET",
            "/api/channels",
            &format!("host: {host}\r\norigin: {origin}\r\n"),
        )
    };
    assert_eq!(
        raw_request(a, &ask(a.to_string(), format!("http://{a}")))
            .await
            .0,
        200
    );
    for origin in [
        format!("https://{a}"),
        format!("gopher://{a}"),
        format!("ws://{a}x"),
    ] {
        let (status, text) = raw_request(a, &ask(a.to_string(), origin.clone())).await;
        assert_eq!(status, 403, "{origin}: {text}");
    }
    // DNS rebinding: the attacker's name in both Host and Origin.
    let evil = format!("evil.example:{}", a.port());
    let (status, _) = raw_request(a, &ask(evil.clone(), format!("http://{evil}"))).await;
    assert_eq!(status, 403);
    // An Origin that is not ASCII is refused, not taken for a missing one; also on /ws.
    let mut bad = b"GET /api/channels HTTP/1.1\r\nhost: h\r\norigin: http://\xff\xfe\r\nconnection: close\r\n\r\n".to_vec();
    assert_eq!(raw_request(a, &bad).await.0, 403);
    bad = b"GET /ws HTTP/1.1\r\nhost: h\r\norigin: http://\xc3\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec();
    assert_eq!(raw_request(a, &bad).await.0, 403);
}

#[tokio::test]
async fn allowed_hosts_refuse_every_other_host() {
    let mut config = no_rate_limit();
    config.allowed_hosts = vec!["hub.example".into()];
    let hub = start(config).await;
    let get = |host: &str| with_headers("GET", "/api/channels", &format!("host: {host}\r\n"));
    let (status, text) = raw_request(hub.addr, &get("evil.example")).await;
    assert_eq!(status, 403);
    assert!(text.contains("host_not_allowed"), "{text}");
    assert_eq!(raw_request(hub.addr, &get("hub.example:8080")).await.0, 200);
    let same = with_headers(
        "GET",
        "/api/channels",
        "host: hub.example\r\norigin: http://hub.example\r\n",
    );
    assert_eq!(raw_request(hub.addr, &same).await.0, 200);
}

#[tokio::test]
async fn cors_preflight_and_headers_for_allowed_origins_only_on_every_http_transport() {
    let mut config = no_rate_limit();
    config.allowed_origins = vec!["https://app.example".into()];
    config.limits.poll_timeout_secs = 1;
    let hub = start(config).await;
    let a = hub.addr;
    let preflight = |origin: &str| {
        with_headers(
            "OPTIONS",
            "/api/channels/c/messages",
            &format!(
                "host: {a}\r\norigin: {origin}\r\naccess-control-request-method: POST\r\n\
                 access-control-request-headers: content-type, authorization\r\n"
            ),
        )
    };
    let (status, text) = raw_request(a, &preflight("https://app.example")).await;
    let lower = text.to_ascii_lowercase();
    assert_eq!(status, 204, "{text}");
    assert!(
        lower.contains("access-control-allow-origin: https://app.example"),
        "{text}"
    );
    assert!(
        lower.contains("access-control-allow-methods: get, post, options"),
        "{text}"
    );
    assert!(
        lower.contains("access-control-allow-headers: authorization, content-type"),
        "{text}"
    );
    let (status, text) = raw_request(a, &preflight("https://evil.example")).await;
    assert_eq!(status, 403);
    assert!(!text
        .to_ascii_lowercase()
        .contains("access-control-allow-origin"));
    let publish = format!(
        "POST /api/channels/c/messages HTTP/1.1\r\nhost: {a}\r\norigin: https://app.example\r\n\
         content-type: application/json\r\ncontent-length: 1\r\nconnection: close\r\n\r\n1"
    );
    for head in [
        publish.into_bytes(),
        with_headers(
            "GET",
            "/api/channels/c/messages",
            &format!("host: {a}\r\norigin: https://app.example\r\n"),
        ),
        with_headers(
            "GET",
            "/poll/c?since=0",
            &format!("host: {a}\r\norigin: https://app.example\r\n"),
        ),
    ] {
        let (status, text) = raw_request(a, &head).await;
        assert_eq!(status, 200, "{text}");
        let lower = text.to_ascii_lowercase();
        assert!(
            lower.contains("access-control-allow-origin: https://app.example"),
            "{text}"
        );
        assert!(lower.contains("vary: origin"), "{text}");
    }
    let mut sse = common::HttpStream::open(
        a,
        "GET",
        "/sse/c",
        &[("origin", "https://app.example")],
        b"",
    )
    .await;
    assert_eq!(sse.status, 200);
    assert!(sse
        .headers
        .to_ascii_lowercase()
        .contains("access-control-allow-origin: https://app.example"));
    drop(sse.next_sse_block());
}

async fn backlog_hub(messages: usize) -> common::Running {
    let mut config = no_rate_limit();
    config.history.max_messages = messages;
    config.limits.queue_size = 256;
    let hub = start(config).await;
    let channel = switchboard_hub::core::ChannelName::new("c").unwrap();
    for i in 0..messages {
        hub.hub
            .publish(
                &channel,
                switchboard_hub::core::Payload::text(&format!("m{i}")),
                Transport::Rest,
            )
            .await
            .unwrap();
    }
    hub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_larger_than_the_queue_is_paced_by_the_reader_on_every_transport() {
    const N: usize = 5000;
    let hub = backlog_hub(N).await;
    // /ws with since 0.
    let (mut ws, _) = switchboard::connect(&format!("ws://{}/ws", hub.addr))
        .await
        .unwrap();
    ws.send(switchboard::Message::Text(
        r#"{"op":"subscribe","channel":"c","since":0}"#.into(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_text(&mut ws).await.unwrap()["op"], "subscribed");
    for id in 1..=N as u64 {
        let m = ws_text(&mut ws).await.expect("dropped during the replay");
        assert_eq!(m["id"].as_u64(), Some(id));
    }
    // The chat room.
    let (mut chat, _) = switchboard::connect(&format!("ws://{}/ws/c?since=0", hub.addr))
        .await
        .unwrap();
    for i in 0..N {
        match tokio::time::timeout(WAIT, chat.recv()).await.unwrap() {
            Some(Ok(switchboard::Message::Text(t))) => assert_eq!(t.as_str(), format!("m{i}")),
            other => panic!("chat room replay ended at {i}: {other:?}"),
        }
    }
    // SSE.
    let mut sse = common::HttpStream::open(hub.addr, "GET", "/sse/c?since=0", &[], b"").await;
    let mut seen = 0;
    while seen < N {
        let block = tokio::time::timeout(WAIT, sse.next_event())
            .await
            .unwrap()
            .expect("SSE stream ended during the replay");
        if block.data.is_some() {
            assert_eq!(block.data.as_deref(), Some(format!("m{seen}").as_str()));
            seen += 1;
        }
    }
    assert!(
        !String::from_utf8(request(hub.addr, "GET", "/metrics", &[], b"").await.body)
            .unwrap()
            .contains("switchboard_slow_disconnects_total 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_every_acknowledged_message_before_1001() {
    const SUBS: usize = 200;
    let mut hub = start(no_rate_limit()).await;
    let mut subs = Vec::new();
    for _ in 0..SUBS {
        let (mut ws, _) = switchboard::connect(&format!("ws://{}/ws", hub.addr))
            .await
            .unwrap();
        ws.send(switchboard::Message::Text(
            r#"{"op":"subscribe","channel":"c"}"#.into(),
        ))
        .await
        .unwrap();
        assert_eq!(ws_text(&mut ws).await.unwrap()["op"], "subscribed");
        subs.push(ws);
    }
    let mut last = 0;
    for i in 0..20 {
        last = common::publish(hub.addr, "c", &format!("m{i}")).await["id"]
            .as_u64()
            .unwrap();
    }
    // The last publish was acknowledged: now the signal.
    hub.stop.take().unwrap().send(()).unwrap();
    let mut complete = 0;
    for mut ws in subs {
        let mut max_id = 0;
        while let Some(m) = ws_text(&mut ws).await {
            max_id = max_id.max(m["id"].as_u64().unwrap_or(0));
        }
        assert_eq!(ws.close_info().map(|c| c.code.0), Some(1001));
        complete += usize::from(max_id == last);
    }
    assert_eq!(
        complete, SUBS,
        "subscribers that got the last message before 1001"
    );
}

#[tokio::test]
async fn a_chat_client_closed_for_its_rate_still_gets_the_echoes_of_what_was_accepted() {
    let config =
        HubConfig::from_toml("[rate_limit]\nmessages_per_second = 0.01\nburst = 5\n").unwrap();
    let hub = start(config).await;
    let (mut ws, _) = switchboard::connect(&format!("ws://{}/ws/room", hub.addr))
        .await
        .unwrap();
    for i in 0..8 {
        ws.send(switchboard::Message::Text(format!("t{i}").into()))
            .await
            .unwrap();
    }
    let mut echoes = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, ws.recv()).await.unwrap() {
            Some(Ok(switchboard::Message::Text(t))) => echoes.push(t.as_str().to_owned()),
            None | Some(Err(_)) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(echoes, ["t0", "t1", "t2", "t3", "t4"]);
    assert_eq!(ws.close_info().map(|c| c.code.0), Some(1008));
}

/// Issue 11, item 11: a client dropped for not reading is counted as dropped only once it is
/// gone (its connection closed, its tasks ended), and what sat in its queue, never written
/// to its socket, is not counted as delivered. Over `/ws` and over SSE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_is_gone_when_counted_and_its_queue_is_not_counted_as_out() {
    const QUEUE: usize = 1024;
    for transport in [Transport::WebSocket, Transport::Sse] {
        let mut config = no_rate_limit();
        config.limits.queue_size = QUEUE;
        config.limits.write_timeout_secs = 2;
        let hub = start(config).await;
        // A subscriber with a tiny receive window that reads its first answer, then nothing.
        let held = match transport {
            Transport::WebSocket => {
                let mut tcp = raw_ws(hub.addr, "/ws", "").await;
                tcp.write_all(&text_frame(r#"{"op":"subscribe","channel":"c"}"#))
                    .await
                    .unwrap();
                let mut seen = Vec::new();
                let mut buf = [0u8; 256];
                while !String::from_utf8_lossy(&seen).contains("subscribed") {
                    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(n > 0);
                    seen.extend_from_slice(&buf[..n]);
                }
                Held::Ws(tcp)
            }
            _ => {
                let mut sse = common::HttpStream::open_small_window(hub.addr, "/sse/c").await;
                sse.next_sse_block().await.expect("the preamble");
                Held::Sse(sse)
            }
        };
        let metrics = std::sync::Arc::clone(hub.hub.metrics());
        // A publisher that keeps going until the client is dropped (a client is only found
        // slow while there is something to send it).
        let publisher = {
            let (hub, metrics) = (hub.hub.clone(), std::sync::Arc::clone(&metrics));
            tokio::spawn(async move {
                let ch = switchboard_hub::core::ChannelName::new("c").unwrap();
                let payload = switchboard_hub::core::Payload::text(&"x".repeat(16 << 10));
                while metrics.slow_disconnects() == 0 {
                    hub.publish(&ch, payload.clone(), Transport::Rest)
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            })
        };
        // Watch closely: the moment it is counted, it must be gone.
        let started = Instant::now();
        while metrics.slow_disconnects() == 0 {
            assert!(
                started.elapsed() < WAIT,
                "{transport:?}: never dropped (open {}, lagged {}, out {})",
                metrics.open_connections(transport),
                metrics.lagged_subscribers(),
                metrics.delivered(transport)
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(
            metrics.open_connections(transport),
            0,
            "{transport:?}: counted as dropped while still connected"
        );
        let out = metrics.delivered(transport);
        assert!(
            out < QUEUE as u64 / 2,
            "{transport:?}: {out} messages counted as out, but at most the socket buffers' \
             worth of 16 KiB messages can have been written to a client that never read"
        );
        publisher.await.unwrap();
        drop(held);
    }
}

/// A client connection kept open, unread.
#[allow(dead_code)] // held for its socket
enum Held {
    Ws(TcpStream),
    Sse(common::HttpStream),
}
