//! The hub's own HTTP/1.1 driver for SSE streams and long polls (`server::front`), over
//! raw sockets: keep-alive and pipelining with requests hyper serves, chunked framing, a
//! vanished client ending its stream, HTTP/1.0, and the head limits (431, 400, timeout).

mod common;

use std::time::{Duration, Instant};

use common::WAIT;
use switchboard_hub::config::PresenceConfig;
use switchboard_hub::metrics::Transport;
use switchboard_hub::HubConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; panics after `WAIT`.
async fn read_to_end(tcp: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut all))
        .await
        .expect("the hub never closed the connection")
        .unwrap_or_default();
    all
}

/// Reads until `all` holds `needle`; panics after `WAIT` or at end of file.
async fn read_until(tcp: &mut TcpStream, all: &mut Vec<u8>, needle: &[u8]) {
    let deadline = Instant::now() + WAIT;
    while !all.windows(needle.len()).any(|w| w == needle) {
        let mut buf = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for {:?}",
                    String::from_utf8_lossy(needle)
                )
            })
            .unwrap();
        assert!(
            n > 0,
            "closed before {:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(all)
        );
        all.extend_from_slice(&buf[..n]);
    }
}

/// One response at the start of `raw` with a `Content-Length` body: (status, head, body,
/// the rest).
fn split_response(raw: &[u8]) -> (u16, String, Vec<u8>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let body = raw[end + 4..end + 4 + len].to_vec();
    (status, head, body, raw[end + 4 + len..].to_vec())
}

#[tokio::test]
async fn a_poll_then_a_publish_pipelined_on_one_connection() {
    let hub = common::start(HubConfig::default()).await;
    let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
    // Both requests in one write: the second is read while the first is being answered,
    // and must reach hyper (a POST with a body) intact.
    let requests = "GET /poll/pipe?timeout=0 HTTP/1.1\r\nhost: x\r\n\r\n\
                    POST /api/channels/pipe/messages HTTP/1.1\r\nhost: x\r\n\
                    content-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";
    tcp.write_all(requests.as_bytes()).await.unwrap();
    let raw = read_to_end(&mut tcp).await;
    let (status, head, body, rest) = split_response(&raw);
    assert_eq!(status, 200, "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let poll: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(poll["messages"], serde_json::json!([]), "{poll}");
    let (status, head, body, rest) = split_response(&rest);
    assert_eq!(status, 200, "{head}");
    let published: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(published["id"], 1, "{published}");
    assert!(rest.is_empty());
    // The publish was stored: a poll from the first one's position sees it.
    let next = poll["next"].as_str().unwrap();
    let path = format!("/poll/pipe?since={next}&timeout=0");
    let r = common::request(hub.addr, "GET", &path, &[], b"").await;
    assert_eq!(r.json()["messages"][0]["data"], "hello");
}

#[tokio::test]
async fn two_polls_keep_the_connection_and_the_second_waits_for_a_message() {
    let hub = common::start(HubConfig::default()).await;
    let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
    tcp.write_all(b"GET /poll/ka?timeout=0 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    read_until(&mut tcp, &mut raw, b"\"next\"").await;
    read_until(&mut tcp, &mut raw, b"}").await;
    let (status, _, body, _) = split_response(&raw);
    assert_eq!(status, 200);
    let next = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["next"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = format!(
        "GET /poll/ka?since={next}&timeout=20 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(second.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    common::publish(hub.addr, "ka", "second").await;
    let raw = read_to_end(&mut tcp).await;
    let (status, head, body, _) = split_response(&raw);
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let poll: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(poll["messages"][0]["data"], "second", "{poll}");
}

#[tokio::test]
async fn sse_is_chunked_exactly() {
    let hub = common::start(HubConfig::default()).await;
    let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
    tcp.write_all(b"GET /sse/chunks HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    read_until(&mut tcp, &mut raw, b"\r\n\r\n").await;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..end].to_vec())
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    raw.drain(..end + 4);
    // Both messages, then decode strictly: every chunk is `{hex}\r\n{exactly that}\r\n`.
    common::publish(hub.addr, "chunks", "one").await;
    common::publish(hub.addr, "chunks", &"x".repeat(5000)).await;
    let mut decoded = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !String::from_utf8_lossy(&decoded).contains(&"x".repeat(5000)) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            String::from_utf8_lossy(&decoded)
        );
        let Some(line) = raw.windows(2).position(|w| w == b"\r\n") else {
            read_until(&mut tcp, &mut raw, b"\r\n").await;
            continue;
        };
        let size_text = std::str::from_utf8(&raw[..line]).unwrap();
        assert!(
            size_text.chars().all(|c| c.is_ascii_hexdigit()),
            "bad size line {size_text:?}"
        );
        let size = usize::from_str_radix(size_text, 16).unwrap();
        assert!(size > 0, "the stream ended");
        while raw.len() < line + 2 + size + 2 {
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0);
            raw.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            &raw[line + 2 + size..line + 4 + size],
            b"\r\n",
            "chunk not closed"
        );
        decoded.extend_from_slice(&raw[line + 2..line + 2 + size]);
        raw.drain(..line + 4 + size);
    }
    let text = String::from_utf8(decoded).unwrap();
    assert!(text.starts_with("retry: 1000\nid: "), "{text}");
    assert!(text.contains("\ndata: one\n\n"), "{text}");
}

#[tokio::test]
async fn a_client_that_goes_ends_its_stream_and_leaves_presence() {
    let config = HubConfig {
        presence: PresenceConfig {
            grace_ms: 0,
            ..PresenceConfig::default()
        },
        ..HubConfig::default()
    };
    let hub = common::start(config).await;
    let metrics = hub.hub.metrics().clone();
    let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
    tcp.write_all(b"GET /sse/gone?client=c1 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    read_until(&mut tcp, &mut raw, b"retry: 1000").await;
    let here = common::request(hub.addr, "GET", "/api/channels/gone/presence", &[], b"").await;
    assert_eq!(here.json()["clients"], 1, "{}", here.json());
    assert_eq!(metrics.open_connections(Transport::Sse), 1);
    // Nothing is published after this: only reading the socket can tell the client went.
    drop(tcp);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let here = common::request(hub.addr, "GET", "/api/channels/gone/presence", &[], b"").await;
        if here.json()["clients"] == 0 && metrics.open_connections(Transport::Sse) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still present: {} (open sse {})",
            here.json(),
            metrics.open_connections(Transport::Sse)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_waiting_poll_whose_client_went_is_dropped() {
    let hub = common::start(HubConfig::default()).await;
    let metrics = hub.hub.metrics().clone();
    let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
    tcp.write_all(b"GET /poll/wait?timeout=60 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while metrics.open_connections(Transport::Poll) != 1 {
        assert!(Instant::now() < deadline, "the poll never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(tcp);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics.open_connections(Transport::Poll) != 0 {
        assert!(Instant::now() < deadline, "the poll outlived its client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn http_1_0_gets_one_answer_then_the_close() {
    let hub = common::start(HubConfig::default()).await;
    let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
    tcp.write_all(b"GET /poll/old?timeout=0 HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let raw = read_to_end(&mut tcp).await;
    let (status, head, body, rest) = split_response(&raw);
    assert_eq!(status, 200, "{head}");
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    assert!(rest.is_empty());
}

#[tokio::test]
async fn an_oversized_head_is_431_and_garbage_400() {
    let hub = common::start(HubConfig::default()).await;
    for path in ["/sse/big", "/api/channels"] {
        let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
        let big = format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(20_000)
        );
        // The hub may close before it read everything: a failed write is fine.
        let _ = tcp.write_all(big.as_bytes()).await;
        let raw = read_to_end(&mut tcp).await;
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 431 "), "{path}: {text}");
        assert!(text.contains("request_head_too_large"), "{text}");
    }
    let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
    tcp.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .await
        .unwrap();
    let raw = read_to_end(&mut tcp).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(text.contains("\"code\":\"bad_request\""), "{text}");
    // A head of 12 KB is within the limit, for the front and for hyper alike.
    for path in ["/poll/mid?timeout=0", "/api/channels"] {
        let r = common::request(
            hub.addr,
            "GET",
            path,
            &[("x-mid", &"m".repeat(12_000))],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "{path}");
    }
}

#[tokio::test]
async fn a_head_trickled_slowly_is_cut_off() {
    let hub = common::start(HubConfig::default()).await;
    let mut tcp = TcpStream::connect(hub.addr).await.unwrap();
    let started = Instant::now();
    // A byte every 500 ms: the timeout is for the whole head, not between bytes.
    let mut closed_after = None;
    for byte in b"GET /sse/slow HTTP/1.1\r\nx-slow: "
        .iter()
        .cycle()
        .take(80)
    {
        if tcp.write_all(&[*byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await
        {
            assert_eq!(read.unwrap_or(0), 0, "the hub answered a partial head");
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("still open after 40 s of head");
    assert!(
        closed_after >= Duration::from_secs(14) && closed_after < Duration::from_secs(20),
        "closed after {closed_after:?}"
    );
}
