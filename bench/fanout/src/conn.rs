//! Opening connections: TCP, the WebSocket upgrade, and the target's join step.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use switchboard_loadgen::wire;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::target::Target;

/// How long one connection attempt (TCP, upgrade and join) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts per connection: a burst of thousands of connects can overflow the listen
/// backlog, which shows up as a refused or timed-out attempt that a retry fixes.
const ATTEMPTS: u32 = 3;

/// An open, joined connection and the bytes already read past the join.
pub(crate) struct Joined {
    /// The socket.
    pub(crate) stream: TcpStream,
    /// Bytes read after the join (the start of the first broadcast, if any).
    pub(crate) leftover: Vec<u8>,
}

/// Opens connection number `n` to `path` on `addr` and joins as `target` wants.
pub(crate) async fn open(
    target: Target,
    addr: SocketAddr,
    path: &str,
    n: u64,
) -> anyhow::Result<Joined> {
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, try_open(target, addr, path, n)).await {
            Ok(Ok(j)) => return Ok(j),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(anyhow::anyhow!("timed out after {CONNECT_TIMEOUT:?}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
        .with_context(|| format!("connection {n} to {addr}{path}"))
}

async fn try_open(target: Target, addr: SocketAddr, path: &str, n: u64) -> anyhow::Result<Joined> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let key = wire::client_key(n);
    stream
        .write_all(&wire::client_request(&addr.to_string(), path, &key))
        .await?;
    let mut buf = Vec::with_capacity(1024);
    let head = loop {
        let mut chunk = [0u8; 1024];
        let got = stream.read(&mut chunk).await?;
        anyhow::ensure!(got > 0, "connection closed during the handshake");
        buf.extend_from_slice(&chunk[..got]);
        if let Some(len) = wire::check_server_response(&buf, &key)? {
            break len;
        }
    };
    buf.drain(..head);
    target.join(&mut stream, &mut buf).await?;
    Ok(Joined {
        stream,
        leftover: buf,
    })
}
