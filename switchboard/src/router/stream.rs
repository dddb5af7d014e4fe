//! [`ServerStream`]: the transport under every server-side connection, whichever entry point
//! accepted it, so that one handler serves them all.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The stream under a server [`WebSocket`](crate::WebSocket), whichever entry point made it:
/// plain TCP from a [`Router`](super::Router) or a [`Server`](crate::Server), TLS when the
/// router terminates it (feature `tls`), one stream of an HTTP/2 connection (feature
/// `http2`), or a connection hyper or axum upgraded (feature `hyper`). One type for all, so
/// a handler written once (a function of a [`ServerWebSocket`](crate::ServerWebSocket))
/// does not depend on how the server is deployed or which HTTP version the client chose.
///
/// An enum rather than a `Box<dyn ..>`: reads and writes are one `match` away from the
/// stream, with no allocation or virtual call on the echo path.
///
/// ```
/// async fn handler(ws: switchboard::ServerWebSocket) {
///     let stream: &switchboard::ServerStream = ws.get_ref();
///     let how = (stream.http_version(), stream.is_tls(), stream.peer_addr().ok());
///     # let _ = how;
/// }
/// # let _ = handler;
/// ```
// `repr(u8)`: the variant is a tag byte of its own rather than a niche of the
// `TcpStream`, which every read and write would decode (7 instructions per echoed
// message; `Core` keeps its 384-byte budget through a 32-bit high-water mark).
#[derive(Debug)]
#[non_exhaustive]
#[repr(u8)]
pub enum ServerStream {
    /// Plain TCP (`ws://`, or TLS terminated by a proxy in front).
    Plain(TcpStream),
    /// TLS terminated here (`wss://`).
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// An RFC 8441 WebSocket stream of an HTTP/2 connection (over TLS).
    #[cfg(feature = "http2")]
    H2(Box<crate::http2::H2Stream>),
    /// A connection that hyper (or axum on hyper) upgraded and handed over.
    #[cfg(feature = "hyper")]
    Upgraded(Box<crate::upgrade::UpgradedStream>),
}

impl ServerStream {
    /// The TCP connection underneath; `None` for an HTTP/2 stream, whose connection is
    /// shared with other streams and owned by the router, and for a hyper upgrade, whose
    /// transport hyper owns.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            ServerStream::Plain(tcp) => Some(tcp),
            #[cfg(feature = "tls")]
            ServerStream::Tls(tls) => Some(tls.get_ref().0),
            #[cfg(feature = "http2")]
            ServerStream::H2(_) => None,
            #[cfg(feature = "hyper")]
            ServerStream::Upgraded(_) => None,
        }
    }

    /// The TCP peer's address (a proxy's, behind one: see
    /// [`ConnectionInfo::client_ip`](super::ConnectionInfo::client_ip)). Not known for a
    /// hyper upgrade (`NotConnected`): take it from hyper's connection info instead.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self.tcp() {
            Some(tcp) => tcp.peer_addr(),
            None => self.h2_peer(),
        }
    }

    #[cfg(feature = "http2")]
    fn h2_peer(&self) -> io::Result<SocketAddr> {
        match self {
            ServerStream::H2(h2) => h2
                .peer_addr()
                .ok_or_else(|| io::ErrorKind::NotConnected.into()),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    #[cfg(not(feature = "http2"))]
    fn h2_peer(&self) -> io::Result<SocketAddr> {
        Err(io::ErrorKind::NotConnected.into())
    }

    /// Whether TLS is terminated here (by this crate: `false` for a hyper upgrade, whose
    /// transport is hyper's).
    pub fn is_tls(&self) -> bool {
        match self {
            ServerStream::Plain(_) => false,
            #[cfg(feature = "tls")]
            ServerStream::Tls(_) => true,
            #[cfg(feature = "http2")]
            ServerStream::H2(_) => true,
            #[cfg(feature = "hyper")]
            ServerStream::Upgraded(_) => false,
        }
    }

    /// The HTTP version the WebSocket's handshake ran over: 1.1, or 2 for an RFC 8441
    /// stream.
    pub fn http_version(&self) -> http::Version {
        match self {
            #[cfg(feature = "http2")]
            ServerStream::H2(_) => http::Version::HTTP_2,
            #[cfg(feature = "hyper")]
            ServerStream::Upgraded(upgraded) => upgraded.http_version(),
            _ => http::Version::HTTP_11,
        }
    }

    /// Whether the client picked `h2` over ALPN on this TLS connection.
    #[cfg(feature = "http2")]
    pub(crate) fn alpn_is_h2(&self) -> bool {
        match self {
            ServerStream::Tls(tls) => tls.get_ref().1.alpn_protocol() == Some(b"h2"),
            _ => false,
        }
    }
}

/// Forwards a method to whichever stream is inside. The methods are `#[inline]` and the
/// hyper arm calls out of line, so the plain-TCP arm inlines into the read and write loops
/// as the bare `TcpStream` would (callgrind: ~45 instructions per echoed message otherwise).
macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self.get_mut() {
            ServerStream::Plain($s) => {
                let $s = Pin::new($s);
                $call
            }
            #[cfg(feature = "tls")]
            ServerStream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $call
            }
            #[cfg(feature = "http2")]
            ServerStream::H2($s) => {
                let $s = Pin::new(&mut **$s);
                $call
            }
            #[cfg(feature = "hyper")]
            ServerStream::Upgraded($s) => {
                let $s = Pin::new(&mut **$s);
                $call
            }
        }
    };
}

impl AsyncRead for ServerStream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for ServerStream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            ServerStream::Tls(s) => s.is_write_vectored(),
            #[cfg(feature = "http2")]
            ServerStream::H2(s) => s.is_write_vectored(),
            #[cfg(feature = "hyper")]
            ServerStream::Upgraded(s) => s.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
