//! [`ServerStream`]: the transport under a connection the [`Router`](super::Router) accepted.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The stream under a server [`WebSocket`](crate::WebSocket) from a [`Router`](super::Router):
/// plain TCP, or TLS when the router terminates it (feature `tls`). One type for both, so
/// handlers do not depend on how the server is deployed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerStream {
    /// Plain TCP (`ws://`, or TLS terminated by a proxy in front).
    Plain(TcpStream),
    /// TLS terminated here (`wss://`).
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ServerStream {
    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ServerStream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            ServerStream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// The TCP peer's address (a proxy's, behind one: see
    /// [`ConnectionInfo::client_ip`](super::ConnectionInfo::client_ip)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// Whether TLS is terminated here.
    pub fn is_tls(&self) -> bool {
        match self {
            ServerStream::Plain(_) => false,
            #[cfg(feature = "tls")]
            ServerStream::Tls(_) => true,
        }
    }
}

/// Forwards a method to whichever stream is inside.
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
        }
    };
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            ServerStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
