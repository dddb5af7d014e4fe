//! The `switchboard` binary as deployed: SIGTERM closes every client with 1001 and the
//! process exits within its shutdown deadline; `connect --proxy` goes through a CONNECT
//! proxy; a plain GET gets 426.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{EchoServer, LIMIT};
use switchboard::{CloseCode, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn sigterm_closes_every_client_with_1001_and_exits_within_the_deadline() {
    let mut echo = EchoServer::start(&["--shutdown-timeout", "3"]);
    let url = echo.url();
    let mut clients = Vec::new();
    for i in 0..4 {
        let (mut ws, _) = switchboard::connect(&url).await.unwrap();
        ws.send(format!("client {i}")).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::from(format!("client {i}"))
        );
        clients.push(ws);
    }

    // The exit is due 5 s from the signal: past the 3 s deadline, with room to spare.
    let deadline = Instant::now() + Duration::from_secs(5);
    echo.sigterm();
    for ws in &mut clients {
        assert!(tokio::time::timeout(LIMIT, ws.recv())
            .await
            .unwrap()
            .is_none());
        let info = ws.close_info().unwrap();
        assert_eq!(info.code, CloseCode::GOING_AWAY, "{info:?}");
    }
    let exit = echo.exit_by(deadline).await;
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn sigterm_does_not_wait_past_the_deadline_for_a_client_that_never_answers() {
    let mut echo = EchoServer::start(&["--shutdown-timeout", "1"]);
    // Completes the handshake, then never reads or answers the close.
    let mut tcp = TcpStream::connect(echo.addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");

    // Long after the 1 s deadline: the exit status does not matter here, only that it comes.
    echo.terminate(Duration::from_secs(4)).await;
}

#[tokio::test]
async fn a_plain_get_gets_426() {
    let echo = EchoServer::start(&[]);
    let mut tcp = TcpStream::connect(echo.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(LIMIT, tcp.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{answer}"
    );
}

/// A one-shot CONNECT proxy: answers one tunnel and relays it; returns its address and
/// the target it was asked for.
async fn one_tunnel_proxy() -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            client.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let target = head.split_whitespace().nth(1).unwrap().to_owned();
        assert!(head.starts_with("CONNECT "), "{head}");
        let mut upstream = TcpStream::connect(&target).await.unwrap();
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        target
    });
    (addr, task)
}

#[tokio::test]
async fn connect_goes_through_a_connect_proxy() {
    let echo = EchoServer::start(&[]);
    let (proxy, tunnel) = one_tunnel_proxy().await;
    let mut command = support::switchboard(&[
        "connect",
        &echo.url(),
        "--proxy",
        &format!("http://{proxy}"),
    ]);
    command.env_remove("HTTP_PROXY").env_remove("http_proxy");
    // On a blocking thread: the proxy task runs on this test's runtime.
    let output =
        tokio::task::spawn_blocking(move || support::run(command, "via the proxy\n", LIMIT))
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout, "via the proxy\n");
    assert!(stderr.contains("closed: 1000"), "{stderr}");
    assert_eq!(
        tokio::time::timeout(LIMIT, tunnel).await.unwrap().unwrap(),
        echo.addr.to_string()
    );
}
