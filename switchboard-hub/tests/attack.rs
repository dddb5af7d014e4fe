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
