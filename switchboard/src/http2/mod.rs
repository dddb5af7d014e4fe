//! WebSocket over HTTP/2 (RFC 8441, feature `http2`): the settings of an h2 connection and
//! the stream adapter a [`WebSocket`](crate::WebSocket) runs over.
//!
//! Over HTTP/2 a WebSocket is one stream of a shared connection, opened by an *extended
//! CONNECT* (`:method = CONNECT`, `:protocol = websocket`) and answered `200`. The
//! handshake negotiates subprotocols and permessage-deflate with the same code as the
//! HTTP/1.1 upgrade; after it, the same RFC 6455 frames flow as the stream's DATA, driven
//! by the same protocol core. Only the transport differs: [`H2Stream`] turns an h2
//! stream's two halves into `AsyncRead`/`AsyncWrite`.
//!
//! # Flow control, and why these sizes
//!
//! HTTP/2 has a window per stream and one per connection. A WebSocket that stops reading
//! stops releasing its stream window, so the peer stops sending on *that* stream; the
//! others go on as long as the connection window is not used up by stalled streams. The
//! defaults ([`Http2Config::default`]):
//!
//! - stream window 256 KiB: a 16 KiB message echo loop never waits for a WINDOW_UPDATE,
//!   and what one unread stream can make us buffer is bounded by it;
//! - at most 32 concurrent streams per connection (a page rarely opens more than a few
//!   WebSockets; the browsers' own default connection pools are of that order);
//! - connection window 32 × 256 KiB = 8 MiB: even with every stream stalled the others
//!   still get their full window, so one slow stream never stalls the rest. 8 MiB is also
//!   the most one connection can make us hold in receive buffers;
//! - send buffer 256 KiB per stream: [`H2Stream`] hands data to h2 only as the peer's
//!   window grants capacity, so a slow reader makes `send` wait (and `buffered_amount`
//!   grow) exactly as a full TCP socket does over HTTP/1.1.
//!
//! # Closing
//!
//! A WebSocket stream ends with the Close frames, then `END_STREAM` from both sides
//! ([`H2Stream`]'s shutdown sends `END_STREAM` and waits for the peer's), never with
//! `RST_STREAM` on a clean close: Chrome remembers a reset as a failure and falls back for
//! later sockets. At server shutdown every WebSocket closes with 1001 and the connection
//! sends GOAWAY, so no new stream starts.

mod client;
mod stream;

pub use client::Http2Mode;
pub(crate) use client::{connect_h2, H2Connected};
pub use stream::H2Stream;

/// The HTTP/2 settings of a server (the [`Router`](crate::router::Router)) or a client:
/// whether h2 is offered at all, and its windows and stream limit (see the
/// [module documentation](self) for why these defaults).
///
/// ```
/// use switchboard::http2::Http2Config;
///
/// // More streams per connection, larger windows for large messages.
/// let config = Http2Config::default()
///     .max_concurrent_streams(128)
///     .stream_window(1 << 20);
/// assert!(config.is_enabled());
/// assert!(!Http2Config::disabled().is_enabled()); // the kill switch: HTTP/1.1 only
/// # let _ = switchboard::router::Router::new().http2(config);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Config {
    enabled: bool,
    stream_window: u32,
    connection_window: u32,
    max_concurrent_streams: u32,
    max_send_buffer: usize,
}

impl Default for Http2Config {
    /// On; 256 KiB stream windows, an 8 MiB connection window, 32 streams, 256 KiB send
    /// buffer per stream.
    fn default() -> Self {
        Http2Config {
            enabled: true,
            stream_window: 256 << 10,
            connection_window: 8 << 20,
            max_concurrent_streams: 32,
            max_send_buffer: 256 << 10,
        }
    }
}

impl Http2Config {
    /// HTTP/2 off: TLS listeners offer only `http/1.1` over ALPN (the kill switch,
    /// `--no-http2`).
    pub fn disabled() -> Self {
        Http2Config {
            enabled: false,
            ..Http2Config::default()
        }
    }

    /// Turns HTTP/2 on or off.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Whether HTTP/2 is offered.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The initial window of each stream, in bytes: what the peer may send on one stream
    /// before we read it (at least 64 KiB - 1, the protocol's default).
    pub fn stream_window(mut self, bytes: u32) -> Self {
        self.stream_window = bytes.max(65_535);
        self
    }

    /// The connection window, in bytes: what the peer may send on all streams together
    /// before we read it. Keep it at least `max_concurrent_streams × stream_window` so
    /// that stalled streams cannot starve the others.
    pub fn connection_window(mut self, bytes: u32) -> Self {
        self.connection_window = bytes.max(65_535);
        self
    }

    /// The most streams the peer may have open at once on one connection.
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = streams.max(1);
        self
    }

    /// The most bytes queued for sending per stream, past which writes wait.
    pub fn max_send_buffer(mut self, bytes: usize) -> Self {
        self.max_send_buffer = bytes.max(16 << 10);
        self
    }

    /// The stream window set by [`Http2Config::stream_window`], for other HTTP/2 servers
    /// that should use the same sizes (the hub's hyper server).
    pub fn stream_window_bytes(&self) -> u32 {
        self.stream_window
    }

    /// The connection window set by [`Http2Config::connection_window`].
    pub fn connection_window_bytes(&self) -> u32 {
        self.connection_window
    }

    /// The stream limit set by [`Http2Config::max_concurrent_streams`].
    pub fn max_streams(&self) -> u32 {
        self.max_concurrent_streams
    }

    /// The send buffer set by [`Http2Config::max_send_buffer`].
    pub fn send_buffer_bytes(&self) -> usize {
        self.max_send_buffer
    }

    /// The ALPN names a TLS endpoint with these settings offers, most preferred first:
    /// `h2` and `http/1.1`, or only `http/1.1` when HTTP/2 is off.
    pub fn alpn_protocols(&self) -> Vec<Vec<u8>> {
        alpn(self.enabled)
    }

    /// The h2 server builder with these settings and extended CONNECT on.
    pub(crate) fn server_builder(&self) -> h2::server::Builder {
        let mut builder = h2::server::Builder::new();
        builder
            .initial_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_concurrent_streams(self.max_concurrent_streams)
            .max_send_buffer_size(self.max_send_buffer)
            .enable_connect_protocol();
        builder
    }

    /// The h2 client builder with these settings.
    pub(crate) fn client_builder(&self) -> h2::client::Builder {
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_send_buffer_size(self.max_send_buffer);
        builder
    }
}

/// The ALPN names a TLS endpoint offers: `h2` first when HTTP/2 is on.
pub(crate) fn alpn(http2: bool) -> Vec<Vec<u8>> {
    if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    }
}
