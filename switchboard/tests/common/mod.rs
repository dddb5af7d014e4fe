//! Test helpers: a bare `switchboard_protocol::Connection` driven by hand over a stream, so
//! the tokio shell is checked against the core byte for byte (no shell on the other side).
#![allow(dead_code, unreachable_pub)]

use bytes::BytesMut;
use std::time::Duration;
use switchboard_protocol::{Config, Connection, Event, ProtocolError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A peer made of the sans-I/O core and a stream, with no cleverness of its own.
pub struct Peer<S> {
    pub conn: Connection,
    pub io: S,
    pub buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    pub fn client(io: S) -> Self {
        let mut n = 0u8;
        // Deterministic but non-zero masks: the shell must unmask whatever it gets.
        let mask = move || {
            n = n.wrapping_add(1);
            [n, 0x5a, n ^ 0xff, 0x3c]
        };
        Peer {
            conn: Connection::client(Config::default(), mask),
            io,
            buf: BytesMut::new(),
        }
    }

    pub fn server(io: S) -> Self {
        Peer {
            conn: Connection::server(Config::default()),
            io,
            buf: BytesMut::new(),
        }
    }

    /// Writes everything the core has queued.
    pub async fn flush(&mut self) {
        let out: Vec<u8> = self.conn.output_chunks_vec().concat();
        self.io.write_all(&out).await.expect("peer write");
        self.io.flush().await.expect("peer flush");
        self.conn.advance_output(out.len());
    }

    /// Writes raw bytes, bypassing the core.
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("peer raw write");
        self.io.flush().await.expect("peer flush");
    }

    /// The next event, reading as needed; `None` at end of file.
    pub async fn next_event(&mut self) -> Option<Result<Event, ProtocolError>> {
        loop {
            match self.conn.poll_event(&mut self.buf) {
                Ok(Some(event)) => return Some(Ok(event)),
                Err(e) => return Some(Err(e)),
                Ok(None) => {}
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await.expect("peer read");
            if n == 0 {
                self.conn.handle_eof();
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Like `next_event`, with a deadline (tests must never hang).
    pub async fn expect_event(&mut self) -> Event {
        match tokio::time::timeout(Duration::from_secs(10), self.next_event()).await {
            Ok(Some(Ok(event))) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Reads until end of file, returning how many bytes arrived meanwhile.
    pub async fn expect_eof(&mut self) -> usize {
        let mut total = 0;
        let mut chunk = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(10), self.io.read(&mut chunk))
                .await
                .expect("timed out waiting for EOF")
                .unwrap_or(0);
            if n == 0 {
                return total;
            }
            total += n;
        }
    }
}

/// A masked client frame, encoded by hand: `fin`, `opcode`, `payload`, key 1 2 3 4.
pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// An unmasked frame (what a server sends, or a broken client).
pub fn unmasked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    assert!(payload.len() < 126);
    out.push(payload.len() as u8);
    out.extend_from_slice(payload);
    out
}
