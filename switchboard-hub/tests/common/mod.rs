//! A real hub on a loopback port, and a minimal raw HTTP/1.1 client for streaming tests
//! (chunked decoding, SSE event parsing). Every wait is bounded.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_hub::{Hub, HubConfig, HubServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Running {
    pub addr: SocketAddr,
    pub hub: Hub,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

pub async fn start(config: HubConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HubServer::new(config);
    let hub = server.hub().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(listener, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        hub,
        stop: Some(tx),
        task,
    }
}

/// A response read to the end.
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// One request with `Connection: close`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = HttpStream::open(addr, method, path, headers, body).await;
    let mut rest = Vec::new();
    loop {
        let before = s.body.len();
        if !s.fill().await {
            break;
        }
        let _ = before;
    }
    rest.extend_from_slice(&s.body);
    Response {
        status: s.status,
        headers: s.headers.clone(),
        body: rest,
    }
}

pub async fn publish(addr: SocketAddr, channel: &str, text: &str) -> serde_json::Value {
    let r = request(
        addr,
        "POST",
        &format!("/api/channels/{channel}/messages"),
        &[("content-type", "text/plain")],
        text.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A response being read incrementally (SSE, long polls).
pub struct HttpStream {
    tcp: TcpStream,
    raw: Vec<u8>,
    pub status: u16,
    pub headers: String,
    chunked: bool,
    eof: bool,
    /// Decoded body bytes not consumed yet.
    pub body: Vec<u8>,
}

impl HttpStream {
    pub async fn open(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Self::open_on(tcp, addr, method, path, headers, body).await
    }

    /// Like [`HttpStream::open`] with a fixed, tiny receive buffer: a client that stops
    /// reading stops the server's writes quickly (no window autotuning).
    pub async fn open_small_window(addr: SocketAddr, path: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        Self::open_on(tcp, addr, "GET", path, &[], b"").await
    }

    pub async fn open_on(
        mut tcp: TcpStream,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Self {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        tcp.write_all(body).await.unwrap();
        let mut s = Self {
            tcp,
            raw: Vec::new(),
            status: 0,
            headers: String::new(),
            chunked: false,
            eof: false,
            body: Vec::new(),
        };
        while !s.raw.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(
                s.read_raw().await,
                "connection closed before the response head"
            );
        }
        let end = s.raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(s.raw[..end].to_vec()).unwrap();
        s.raw.drain(..end + 4);
        let (status_line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
        s.status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        s.headers = headers.replace("\r\n", "\n");
        s.chunked = s
            .headers
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        s.decode();
        s
    }

    async fn read_raw(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let n = tokio::time::timeout(WAIT, self.tcp.read(&mut buf))
            .await
            .expect("timed out reading")
            .unwrap_or(0);
        if n == 0 {
            self.eof = true;
            return false;
        }
        self.raw.extend_from_slice(&buf[..n]);
        true
    }

    fn decode(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = std::str::from_utf8(&self.raw[..line_end]).unwrap();
            let size =
                usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                self.raw.clear();
                self.eof = true;
                return;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            let chunk = self.raw[line_end + 2..line_end + 2 + size].to_vec();
            self.body.extend_from_slice(&chunk);
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    /// Reads more of the body; false at the end of the response.
    pub async fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let more = self.read_raw().await;
        self.decode();
        more && !self.eof
    }

    /// The next SSE block (up to a blank line), or `None` when the stream ended.
    pub async fn next_sse_block(&mut self) -> Option<SseBlock> {
        // Scan only what has not been scanned yet: events can be large.
        let mut from = 0;
        loop {
            if let Some(end) = self.body[from..].windows(2).position(|w| w == b"\n\n") {
                let end = from + end;
                let block = String::from_utf8(self.body[..end].to_vec()).unwrap();
                self.body.drain(..end + 2);
                return Some(SseBlock::parse(&block));
            }
            from = self.body.len().saturating_sub(1);
            if !self.fill().await && !self.body[from..].windows(2).any(|w| w == b"\n\n") {
                return None;
            }
        }
    }

    /// The next SSE event that carries data, skipping comments and id-only blocks.
    pub async fn next_event(&mut self) -> Option<SseBlock> {
        loop {
            let b = self.next_sse_block().await?;
            if b.data.is_some() {
                return Some(b);
            }
        }
    }
}

/// One parsed SSE block.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SseBlock {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    pub comments: Vec<String>,
}

impl SseBlock {
    fn parse(block: &str) -> Self {
        let mut b = SseBlock::default();
        for line in block.split('\n') {
            if let Some(c) = line.strip_prefix(':') {
                b.comments.push(c.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "event" => b.event = Some(value),
                "id" => b.id = Some(value),
                "retry" => b.retry = Some(value),
                "data" => {
                    b.data = Some(match b.data.take() {
                        Some(d) => format!("{d}\n{value}"),
                        None => value,
                    })
                }
                _ => {}
            }
        }
        b
    }
}

/// A WebSocket client of the hub.
pub type Client = switchboard::WebSocket<switchboard::MaybeTlsStream>;

/// Opens a WebSocket to `path` on the hub.
pub async fn connect(addr: SocketAddr, path: &str) -> Client {
    let (ws, _) = switchboard::connect(&format!("ws://{addr}{path}"))
        .await
        .unwrap();
    ws
}

/// Sends `v` as one text frame.
pub async fn send(ws: &mut Client, v: serde_json::Value) {
    ws.send(switchboard::Message::Text(v.to_string().into()))
        .await
        .unwrap();
}

/// The next frame, which must be text, within [`WAIT`].
pub async fn recv_text(ws: &mut Client) -> String {
    match tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("timed out")
    {
        Some(Ok(switchboard::Message::Text(t))) => t.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// The next frame as JSON.
pub async fn recv_json(ws: &mut Client) -> serde_json::Value {
    serde_json::from_str(&recv_text(ws).await).unwrap()
}
