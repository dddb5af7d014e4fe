//! Liveness and backpressure over loopback TCP: keepalive pings with a pong timeout, the
//! idle timeout, graceful shutdown with 1001, and slow consumers (`try_send`, the drop and
//! close policies).

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use switchboard::router::{Route, Router, ServerWebSocket};
use switchboard::{Client, CloseCode, ErrorKind, Message, SlowConsumer, WebSocketConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(10);

async fn start(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(router.serve(listener));
    addr
}

/// A client that completes the handshake and then neither reads nor writes: a dead peer
/// whose kernel still acknowledges.
async fn silent_peer(addr: SocketAddr, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "the server closed during the handshake"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// A route whose handler reads until the end and reports how it ended and when.
fn reporting(
    config: WebSocketConfig,
    report: mpsc::UnboundedSender<(Option<ErrorKind>, Option<u16>, Instant)>,
) -> Route {
    Route::new(move |mut ws: ServerWebSocket, _| {
        let report = report.clone();
        async move {
            let mut kind = None;
            while let Some(received) = ws.recv().await {
                if let Err(error) = received {
                    kind = Some(error.kind());
                }
            }
            let code = ws.close_info().map(|info| info.code.0);
            let _ = report.send((kind, code, Instant::now()));
        }
    })
    .config(config)
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_cut_off_within_the_timeout() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = WebSocketConfig::default()
        .keepalive(Some(Duration::from_millis(200)), Duration::from_millis(300));
    let addr = start(Router::new().route("/", reporting(config, tx))).await;

    // A live client (it keeps reading, so its pongs go out) is never cut off.
    let (mut alive, _) = switchboard::connect(&format!("ws://{addr}/"))
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let ended = alive.recv().await;
        (ended.is_none(), alive)
    });

    let mut dead = silent_peer(addr, "/").await;
    let connected = Instant::now();
    let (kind, code, at) = tokio::time::timeout(LIMIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let took = at - connected;
    assert_eq!(kind, Some(ErrorKind::Timeout));
    assert_eq!(code, Some(1011));
    // 200 ms of silence, a ping, 300 ms without an answer: cut at about 500 ms.
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    // The server dropped the transport: the silent peer sees the end of the stream (after
    // the pings and, possibly, the close frame that were sent to it).
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, dead.read_to_end(&mut rest))
        .await
        .unwrap()
        .ok();
    assert_eq!(
        rest[0], 0x89,
        "the first frame the silent peer got is a ping"
    );

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!reader.is_finished(), "the live client was cut off");
    assert!(rx.try_recv().is_err());
    reader.abort();
}

#[tokio::test]
async fn keepalive_pings_from_a_client_keep_an_idle_server_from_closing() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = WebSocketConfig::default().idle_timeout(Some(Duration::from_millis(400)));
    let addr = start(Router::new().route("/", reporting(server, tx))).await;

    // Without pings: closed with 1001 "idle timeout" after 400 ms.
    let (mut quiet, _) = switchboard::connect(&format!("ws://{addr}/"))
        .await
        .unwrap();
    let started = Instant::now();
    assert!(tokio::time::timeout(LIMIT, quiet.recv())
        .await
        .unwrap()
        .is_none());
    let info = quiet.close_info().unwrap();
    assert_eq!(
        (info.code, info.reason.as_str()),
        (CloseCode::GOING_AWAY, "idle timeout")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(rx.recv().await.unwrap().1, Some(1001));

    // With the client's keepalive every 100 ms, the server never sees 400 ms of silence.
    let config = WebSocketConfig::default()
        .keepalive(Some(Duration::from_millis(100)), Duration::from_secs(1));
    let client = Client::builder().config(config).build().unwrap();
    let (mut pinging, _) = client.connect(&format!("ws://{addr}/")).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_millis(1200), pinging.recv()).await;
    assert!(
        outcome.is_err(),
        "closed although the client was pinging: {outcome:?}"
    );
    pinging.close(CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001() {
    let echo = Route::new(|mut ws: ServerWebSocket, _| async move {
        while let Some(Ok(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    });
    let router = Router::new()
        .route("/", echo)
        .shutdown_timeout(Duration::from_secs(5));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(router.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));

    let mut clients = Vec::new();
    for _ in 0..5 {
        let (mut ws, _) = switchboard::connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        ws.send("hi").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("hi"));
        clients.push(ws);
    }
    let started = Instant::now();
    stop.send(()).unwrap();
    for ws in &mut clients {
        assert!(tokio::time::timeout(LIMIT, ws.recv())
            .await
            .unwrap()
            .is_none());
        let info = ws.close_info().unwrap();
        assert_eq!(
            (info.code, info.reason.as_str(), info.clean),
            (CloseCode::GOING_AWAY, "server shutting down", true)
        );
    }
    tokio::time::timeout(LIMIT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Everyone answered the close at once: no waiting for the deadline.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A server that writes 64 KiB messages to a peer that never reads, with `policy`; returns
/// what the writer saw.
async fn flood(policy: SlowConsumer) -> (Vec<&'static str>, u64, usize) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = WebSocketConfig::default()
        .write_buffer_high_water(256 << 10)
        .slow_consumer(policy);
    let route = Route::new(move |mut ws: ServerWebSocket, _| {
        let tx = tx.clone();
        async move {
            let payload = bytes::Bytes::from(vec![b'x'; 64 << 10]);
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(5);
            // Bounded in count and time: the kernel buffers fill long before either.
            for _ in 0..2000 {
                if Instant::now() > deadline {
                    break;
                }
                let outcome = match policy {
                    SlowConsumer::Wait => match ws.try_send(payload.clone()) {
                        Ok(()) => "queued",
                        Err(e) if e.is_full() => "full",
                        Err(_) => "failed",
                    },
                    _ => match tokio::time::timeout(
                        Duration::from_millis(200),
                        ws.feed(payload.clone()),
                    )
                    .await
                    {
                        Ok(Ok(())) => "fed",
                        Ok(Err(_)) => "failed",
                        Err(_) => "waited",
                    },
                };
                if seen.last() != Some(&outcome) {
                    seen.push(outcome);
                }
                if outcome != "queued" && outcome != "fed" && seen.len() > 1 {
                    break;
                }
            }
            let _ = tx.send((seen, ws.dropped_messages(), ws.buffered_amount()));
        }
    })
    .config(config);
    let addr = start(Router::new().route("/", route)).await;
    let _peer = silent_peer(addr, "/").await;
    tokio::time::timeout(LIMIT, rx.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn try_send_reports_full_and_the_buffered_amount_shows_the_backlog() {
    let (seen, dropped, buffered) = flood(SlowConsumer::Wait).await;
    assert_eq!(seen, ["queued", "full"]);
    assert_eq!(dropped, 0);
    assert!(buffered > 256 << 10, "{buffered}");
}

#[tokio::test]
async fn the_drop_policy_drops_instead_of_waiting() {
    let (seen, dropped, buffered) = flood(SlowConsumer::Drop).await;
    // `feed` never waits: first messages are queued, then dropped (still `Ok`).
    assert_eq!(seen, ["fed"]);
    assert!(dropped > 0, "{dropped}");
    assert!(buffered < (256 << 10) + (64 << 10) + 1024, "{buffered}");
}

#[tokio::test]
async fn the_close_policy_fails_the_send_and_closes_with_its_code() {
    let (seen, dropped, _) = flood(SlowConsumer::Close(CloseCode::TRY_AGAIN_LATER)).await;
    assert_eq!(seen, ["fed", "failed"]);
    assert_eq!(dropped, 0);
}

/// The keepalive ping's round trip is the connection's latency, on the whole socket and on
/// the split halves alike; without keepalive there is none.
#[tokio::test]
async fn keepalive_pings_measure_the_latency() {
    let (report, mut reports) = mpsc::unbounded_channel();
    let config = WebSocketConfig::default()
        .keepalive(Some(Duration::from_millis(50)), Duration::from_secs(5));
    let router = Router::new().route(
        "/",
        Route::new(move |mut ws: ServerWebSocket, _| {
            let report = report.clone();
            async move {
                assert_eq!(ws.latency(), None, "nothing measured yet");
                // The client answers pings while it waits for our message.
                let deadline = Instant::now() + LIMIT;
                while ws.latency().is_none() && Instant::now() < deadline {
                    let _ = tokio::time::timeout(Duration::from_millis(20), ws.recv()).await;
                }
                let whole = ws.latency();
                let (mut reader, writer) = ws.split();
                let mut halves = None;
                while halves.is_none() && Instant::now() < deadline {
                    let _ = tokio::time::timeout(Duration::from_millis(20), reader.recv()).await;
                    halves = reader.latency().zip(writer.latency());
                }
                let _ = report.send((whole, halves));
            }
        })
        .config(config),
    );
    let addr = start(router).await;
    let (mut ws, _) = switchboard::connect(format!("ws://{addr}/").as_str())
        .await
        .unwrap();
    assert_eq!(ws.latency(), None, "no keepalive: no latency");
    let client = tokio::spawn(async move { while let Some(Ok(_)) = ws.recv().await {} });
    let (whole, halves) = tokio::time::timeout(LIMIT, reports.recv())
        .await
        .unwrap()
        .unwrap();
    let whole = whole.expect("measured by the whole socket");
    assert!(whole < Duration::from_secs(1), "{whole:?}");
    let (read, write) = halves.expect("measured by the halves");
    assert_eq!(read, write);
    client.abort();
}
