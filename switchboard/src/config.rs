//! Options for a WebSocket: the protocol limits plus what only an I/O shell has (timers and
//! the write buffer's high-water mark). The one settings type of the crate: every entry
//! point takes it whole, and none has setters of its own for what it holds.

use crate::backpressure::SlowConsumer;
use std::time::Duration;
use switchboard_protocol::deflate::DeflateConfig;
use switchboard_protocol::Config;

/// Options for one WebSocket connection, client or server: set once, then given to whichever
/// entry point makes the connection, each of which takes it with a `config` method:
/// [`AcceptorBuilder::config`](crate::AcceptorBuilder::config),
/// [`Route::config`](crate::router::Route::config),
/// `UpgradeOptions::config` (hyper), `WebSocketUpgrade::config` (axum) and
/// [`ClientBuilder::config`](crate::ClientBuilder::config). The entry points keep only what is
/// theirs (request inspection, subprotocols, TLS, URL, proxy).
///
/// # Limits and defaults
///
/// | setting | default | what happens at the limit |
/// | --- | --- | --- |
/// | [`max_message_size`](Self::max_message_size) | 16 MiB | close 1009 (after decompression) |
/// | [`max_frame_size`](Self::max_frame_size) | 16 MiB | close 1009, before the payload is read |
/// | [`max_handshake_size`](Self::max_handshake_size) | 8 KiB | server: 431; client: a handshake error |
/// | [`compression`](Self::compression) / [`deflate`](Self::deflate) | off | permessage-deflate not negotiated |
/// | [`write_buffer_high_water`](Self::write_buffer_high_water) | 64 KiB | `send` waits ([`slow_consumer`](Self::slow_consumer)) |
/// | [`close_timeout`](Self::close_timeout) | 5 s | the connection is cut |
/// | [`handshake_timeout`](Self::handshake_timeout) | 10 s | the connection is dropped, [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) |
/// | [`keepalive`](Self::keepalive) | no pings; 20 s for the pong | close 1011 |
/// | [`idle_timeout`](Self::idle_timeout) | none | close 1001 |
///
/// The protocol limits live in [`protocol`](Self::protocol) ([`switchboard_protocol::Config`]),
/// whose documentation is where their defaults are written down.
///
/// ```
/// use std::time::Duration;
/// use switchboard::WebSocketConfig;
///
/// // The table above, checked.
/// let defaults = WebSocketConfig::default();
/// assert_eq!(defaults.protocol.max_message_size, 16 << 20);
/// assert_eq!(defaults.protocol.max_frame_size, 16 << 20);
/// assert_eq!(defaults.protocol.max_handshake_size, 8 << 10);
/// assert!(defaults.protocol.deflate.is_none());
/// assert_eq!(defaults.write_buffer_high_water, 64 << 10);
/// assert_eq!(defaults.close_timeout, Duration::from_secs(5));
/// assert_eq!(defaults.handshake_timeout, Some(Duration::from_secs(10)));
/// assert_eq!((defaults.ping_interval, defaults.pong_timeout), (None, Duration::from_secs(20)));
/// assert!(!defaults.steady_pings);
/// assert_eq!(defaults.idle_timeout, None);
///
/// let config = WebSocketConfig::default().max_message_size(64 << 20).compression(true);
/// assert_eq!(config.protocol.max_message_size, 64 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebSocketConfig {
    /// Protocol limits and the permessage-deflate policy (see [`switchboard_protocol::Config`]).
    pub protocol: Config,
    /// `send`/`feed` wait while more than this many bytes are queued but unwritten, so a
    /// slow peer slows the sender instead of growing memory. Default 64 KiB.
    pub write_buffer_high_water: usize,
    /// How long to wait for the peer's close frame after ours (and, on a client, for the
    /// server to close TCP after the handshake), before cutting the connection. Default 5 s.
    pub close_timeout: Duration,
    /// How long the opening handshake may take, from the first byte to the 101 (slowloris
    /// protection on a server). `None`: no limit. Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// Send a ping when the peer has sent nothing for this long (keepalive); `None`: never.
    /// Any bytes from the peer count as its answer. Default `None`. The timers run while
    /// the connection is read (`recv` polled), as every connection should be.
    pub ping_interval: Option<Duration>,
    /// How long the peer has to answer a keepalive ping before the connection is
    /// considered dead: it is cut off with 1011 and `recv` reports a timeout. Default 20 s.
    pub pong_timeout: Duration,
    /// Ping every [`ping_interval`](Self::ping_interval) whatever the peer sends, instead of
    /// only after that long of silence from it. For a server behind a proxy that cuts
    /// connections on which *it* has been silent (nginx's `proxy_read_timeout` counts only
    /// the upstream's bytes): a peer that talks while the server has nothing to say still
    /// gets a frame every interval. The pong timeout and "any bytes count as the answer"
    /// are the same either way (and while a ping waits for its answer, no other is sent).
    /// Default `false`.
    pub steady_pings: bool,
    /// Close with 1001 "idle timeout" when the peer has sent nothing for this long;
    /// `None`: never. Default `None`.
    pub idle_timeout: Option<Duration>,
    /// What `send`/`feed` do when the write queue is over the high-water mark. Default
    /// [`SlowConsumer::Wait`].
    pub slow_consumer: SlowConsumer,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            protocol: Config::default(),
            write_buffer_high_water: 64 << 10,
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Some(Duration::from_secs(10)),
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            steady_pings: false,
            idle_timeout: None,
            slow_consumer: SlowConsumer::Wait,
        }
    }
}

impl WebSocketConfig {
    /// Sets the largest accepted message (after decompression), in bytes.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.protocol.max_message_size = bytes;
        self
    }

    /// Sets the largest accepted frame payload, in bytes.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.protocol.max_frame_size = bytes;
        self
    }

    /// Sets the largest accepted handshake head, in bytes.
    pub fn max_handshake_size(mut self, bytes: usize) -> Self {
        self.protocol.max_handshake_size = bytes;
        self
    }

    /// Sets the permessage-deflate policy (`None`: never negotiate it).
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.protocol.deflate = deflate;
        self
    }

    /// Turns permessage-deflate on with the default policy, or off.
    pub fn compression(self, on: bool) -> Self {
        self.deflate(on.then(DeflateConfig::default))
    }

    /// Sets [`WebSocketConfig::write_buffer_high_water`].
    pub fn write_buffer_high_water(mut self, bytes: usize) -> Self {
        self.write_buffer_high_water = bytes;
        self
    }

    /// Sets [`WebSocketConfig::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`WebSocketConfig::handshake_timeout`].
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the keepalive: a ping after `interval` of silence, and `pong_timeout` for the
    /// answer (see [`WebSocketConfig::ping_interval`]).
    pub fn keepalive(mut self, interval: Option<Duration>, pong_timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.pong_timeout = pong_timeout;
        self
    }

    /// Sets [`WebSocketConfig::steady_pings`]: keepalive pings every interval, not only
    /// after that long of silence from the peer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard::WebSocketConfig;
    ///
    /// let config = WebSocketConfig::default()
    ///     .keepalive(Some(Duration::from_secs(30)), Duration::from_secs(20))
    ///     .steady_pings(true);
    /// assert!(config.steady_pings);
    /// ```
    pub fn steady_pings(mut self, on: bool) -> Self {
        self.steady_pings = on;
        self
    }

    /// Sets [`WebSocketConfig::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`WebSocketConfig::slow_consumer`].
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.slow_consumer = policy;
        self
    }
}
