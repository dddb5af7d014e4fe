//! The opening handshake as I/O steps, shared by every entry point that reads a head itself
//! (the router, `accept`, the client): read a head, answer with the 101, or refuse and close.

use bytes::{Buf, BytesMut};
use std::io;
use std::time::Duration;
use switchboard_protocol::handshake::{encode_response, Rejection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads the request head in pieces this large: a browser's request is well under 1 KiB.
const HEAD_CHUNK: usize = 1 << 10;

/// How long a refused client may keep sending before we drop the connection, and how much
/// of it we read and discard meanwhile.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);
const REFUSAL_DRAIN: u64 = 64 << 10;

/// What reading a head gave.
pub(crate) enum Head<T, E> {
    /// A complete, well-formed head, its size in bytes, and the bytes read past it (the
    /// peer's first frames, if it did not wait).
    Complete {
        head: T,
        size: usize,
        rest: BytesMut,
    },
    /// A head the parser refused (malformed, too large).
    Invalid(E),
    /// The peer closed the connection before finishing its head.
    Eof,
}

/// Reads one HTTP/1.1 head of at most `max` bytes with `parse` (the protocol crate's
/// request or response parser: `Ok(None)` while incomplete). The one head reader of the
/// crate: server and client alike.
pub(crate) async fn read_head<S, T, E>(
    stream: &mut S,
    max: usize,
    parse: impl Fn(&[u8], usize) -> Result<Option<(T, usize)>, E>,
) -> io::Result<Head<T, E>>
where
    S: AsyncRead + Unpin,
{
    let mut buf = BytesMut::new();
    loop {
        match parse(&buf, max) {
            Ok(Some((head, size))) => {
                buf.advance(size);
                return Ok(Head::Complete {
                    head,
                    size,
                    rest: buf,
                });
            }
            Ok(None) => {}
            Err(error) => return Ok(Head::Invalid(error)),
        }
        // Never hold more than one byte past the limit: that byte is enough to know the
        // head is too large.
        if buf.capacity() == buf.len() {
            buf.reserve(HEAD_CHUNK.min(max + 1 - buf.len()).max(1));
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(Head::Eof);
        }
    }
}

/// Writes the 101 response.
pub(crate) async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &http::Response<()>,
) -> io::Result<()> {
    let mut head = Vec::with_capacity(256);
    encode_response(response, &mut head);
    stream.write_all(&head).await?;
    stream.flush().await
}

/// Sends the refusal, closes our side, and reads (boundedly) what the client still sends,
/// so that closing with unread input does not make the kernel reset the connection and
/// destroy the response before the client has read it.
pub(crate) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    rejection: &Rejection,
) {
    // The client may be gone already; the refusal stands either way.
    let _ = stream.write_all(&rejection.to_bytes()).await;
    let _ = stream.shutdown().await;
    let mut rest = (&mut stream).take(REFUSAL_DRAIN);
    let _ = tokio::time::timeout(
        REFUSAL_LINGER,
        tokio::io::copy(&mut rest, &mut tokio::io::sink()),
    )
    .await;
}
