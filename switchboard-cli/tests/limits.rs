//! `switchboard serve` under a low open-file limit: more idle connections than descriptors
//! must not take the health check or existing clients down, nor spin the accept loop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const FDS: usize = 256;

async fn upgrade(addr: SocketAddr) -> Option<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    tcp.write_all(
        b"GET /ws/c HTTP/1.1\r\nhost: hub\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
          sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .ok()?;
    Some(tcp)
}

async fn status_of(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: hub\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test]
async fn more_idle_connections_than_descriptors_leave_health_and_clients_served() {
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={FDS}:{FDS}"))
        .args([BIN, "serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) is needed by this test");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let listening = log
        .recv_timeout(Duration::from_secs(20))
        .expect("the hub did not start");
    let addr: SocketAddr = listening
        .split("http://")
        .nth(1)
        .and_then(|r| r.split([' ', '/']).next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{listening}"));
    let mut held = Vec::new();
    for _ in 0..FDS + 100 {
        if let Some(tcp) = upgrade(addr).await {
            held.push(tcp);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut healthy = 0;
    while healthy < 5 && Instant::now() < deadline {
        if status_of(addr, "/healthz").await == Some(200) {
            healthy += 1;
        }
    }
    assert_eq!(
        healthy, 5,
        "/healthz did not answer at the descriptor limit"
    );
    // The first client is still served: a publish reaches it.
    assert_eq!(status_of(addr, "/api/channels").await, Some(503));
    let mut first = held.swap_remove(0);
    let mut head = [0u8; 12];
    first.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let warnings = log
        .try_iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(warnings <= 2, "{warnings} accept warnings");
}
