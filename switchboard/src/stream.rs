//! [`MaybeTlsStream`]: the transport a client connection runs over.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The stream under a client [`crate::WebSocket`] opened by [`crate::connect`]: plain TCP for
/// `ws://`, TLS through rustls for `wss://` (feature `tls`). Through a proxy, the TCP
/// connection is the CONNECT tunnel.
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard::Error> {
/// use switchboard::MaybeTlsStream;
///
/// let (ws, _response) = switchboard::connect("ws://127.0.0.1:9001").await?;
/// if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
///     println!("connected from {}", tcp.local_addr()?);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// A plain TCP connection (`ws://`).
    Plain(TcpStream),
    /// TLS over TCP (`wss://`).
    #[cfg(feature = "tls")]
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// An RFC 8441 WebSocket stream on an HTTP/2 connection (feature `http2`,
    /// [`Http2Mode`](crate::http2::Http2Mode)).
    #[cfg(feature = "http2")]
    H2(Box<crate::http2::H2Stream>),
}

impl MaybeTlsStream {
    /// The TCP connection underneath; `None` for an HTTP/2 stream, whose connection is
    /// driven by its own task.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            MaybeTlsStream::Plain(tcp) => Some(tcp),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(tls) => Some(tls.get_ref().0),
            #[cfg(feature = "http2")]
            MaybeTlsStream::H2(_) => None,
        }
    }

    /// The HTTP version the handshake ran over: 1.1, or 2 for an RFC 8441 stream.
    pub fn http_version(&self) -> http::Version {
        match self {
            #[cfg(feature = "http2")]
            MaybeTlsStream::H2(_) => http::Version::HTTP_2,
            _ => http::Version::HTTP_11,
        }
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) => Pin::new(&mut **s).poll_read(cx, buf),
            #[cfg(feature = "http2")]
            MaybeTlsStream::H2(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) => Pin::new(&mut **s).poll_write(cx, buf),
            #[cfg(feature = "http2")]
            MaybeTlsStream::H2(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "http2")]
            MaybeTlsStream::H2(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) => s.is_write_vectored(),
            #[cfg(feature = "http2")]
            MaybeTlsStream::H2(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) => Pin::new(&mut **s).poll_flush(cx),
            #[cfg(feature = "http2")]
            MaybeTlsStream::H2(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) => Pin::new(&mut **s).poll_shutdown(cx),
            #[cfg(feature = "http2")]
            MaybeTlsStream::H2(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
