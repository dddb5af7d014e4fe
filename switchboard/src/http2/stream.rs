//! [`H2Stream`]: one HTTP/2 stream as a byte stream, for a WebSocket to run over.

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most we ask h2 to let us send in one write: one WebSocket write rarely exceeds it,
/// and h2 splits DATA frames at the peer's frame size anyway.
const MAX_WRITE: usize = 64 << 10;

/// An HTTP/2 stream (after an RFC 8441 extended CONNECT and its 200) read and written as
/// bytes: the transport of a [`WebSocket`](crate::WebSocket) over HTTP/2.
///
/// - Reading hands out the stream's DATA and gives the flow-control window back only as
///   the WebSocket consumes it, so a WebSocket that stops reading stops its peer without
///   holding more than the stream window.
/// - Writing hands data to h2 only as far as the peer's window grants capacity: when the
///   peer stops reading, writes wait, and the WebSocket's `send` waits and its
///   `buffered_amount` grows as on a TCP socket.
/// - Shutting down sends `END_STREAM`, then reads (and drops) what the peer still sends
///   until its `END_STREAM`, so a clean close never resets the stream.
///
/// No example: only the library makes one (a [`Router`](crate::router::Router) serving an
/// HTTP/2 connection, a [`Client`](crate::Client) with [`Http2Mode`](super::Http2Mode)),
/// and a WebSocket over it is used as any other.
pub struct H2Stream {
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    /// Received and not yet read.
    unread: Bytes,
    read_eof: bool,
    write_closed: bool,
    peer: Option<SocketAddr>,
}

impl fmt::Debug for H2Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2Stream")
            .field("peer", &self.peer)
            .field("unread", &self.unread.len())
            .field("read_eof", &self.read_eof)
            .field("write_closed", &self.write_closed)
            .finish_non_exhaustive()
    }
}

impl H2Stream {
    /// The stream whose halves are `send` (our DATA) and `recv` (the peer's), on a
    /// connection to `peer`.
    pub fn new(
        send: h2::SendStream<Bytes>,
        recv: h2::RecvStream,
        peer: Option<SocketAddr>,
    ) -> Self {
        H2Stream {
            send,
            recv,
            unread: Bytes::new(),
            read_eof: false,
            write_closed: false,
            peer,
        }
    }

    /// The address of the connection's peer, when known.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The h2 stream id, for logs.
    pub fn stream_id(&self) -> u32 {
        self.send.stream_id().as_u32()
    }

    /// Drops `n` consumed bytes from the stream window's books, so the peer may send more.
    fn release(&mut self, n: usize) {
        if n > 0 {
            // Fails only when the stream is already gone: nothing to give back then.
            let _ = self.recv.flow_control().release_capacity(n);
        }
    }

    /// The next DATA chunk into `unread`; `Ok(false)` at the peer's `END_STREAM`.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        match ready!(self.recv.poll_data(cx)) {
            Some(Ok(data)) => {
                self.unread = data;
                Poll::Ready(Ok(true))
            }
            Some(Err(error)) => {
                self.read_eof = true;
                Poll::Ready(Err(h2_error(error)))
            }
            None => {
                self.read_eof = true;
                Poll::Ready(Ok(false))
            }
        }
    }

    /// Waits until h2 lets us send up to `want` bytes; how many.
    fn poll_room(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        if self.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        loop {
            let room = self.send.capacity();
            if room > 0 {
                return Poll::Ready(Ok(room.min(want)));
            }
            self.send.reserve_capacity(want.min(MAX_WRITE));
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Poll::Ready(Err(h2_error(error))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn send(&mut self, data: Bytes) -> io::Result<()> {
        self.send.send_data(data, false).map_err(h2_error)
    }
}

/// An h2 error as I/O: a reset by the peer reads as `ConnectionReset`.
fn h2_error(error: h2::Error) -> io::Error {
    if error.is_io() {
        return error
            .into_io()
            .unwrap_or_else(|| io::Error::other("h2 I/O error"));
    }
    let kind = if error.is_reset() || error.is_go_away() {
        io::ErrorKind::ConnectionReset
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, error)
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.unread.is_empty() {
            if this.read_eof || !ready!(this.poll_chunk(cx))? {
                return Poll::Ready(Ok(()));
            }
        }
        let n = buf.remaining().min(this.unread.len());
        buf.put_slice(&this.unread[..n]);
        this.unread.advance(n);
        this.release(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(this.poll_room(cx, buf.len()))?;
        this.send(Bytes::copy_from_slice(&buf[..n]))?;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        // One DATA frame for a frame head and its payload, not one each.
        let room = ready!(this.poll_room(cx, total))?;
        let mut data = BytesMut::with_capacity(room);
        for b in bufs {
            let take = (room - data.len()).min(b.len());
            data.extend_from_slice(&b[..take]);
            if data.len() == room {
                break;
            }
        }
        let n = data.len();
        this.send(data.freeze())?;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection's task writes what h2 holds; capacity already bounds it.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.write_closed = true;
            // Fails only if the stream is already reset: then it is closed anyway.
            let _ = this.send.send_data(Bytes::new(), true);
        }
        // Dropping the stream before the peer's END_STREAM would reset it: read to the
        // end first (the WebSocket's close timeout bounds the wait).
        while !this.read_eof {
            let dropped = this.unread.len();
            this.unread.clear();
            this.release(dropped);
            if ready!(this.poll_chunk(cx)).is_err() {
                break;
            }
        }
        Poll::Ready(Ok(()))
    }
}
