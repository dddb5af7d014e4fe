use crate::deflate::DeflateConfig;

/// Limits and options for a [`crate::Connection`]. Every limit has a default that is safe
/// for a server on the open internet.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_protocol::deflate::DeflateConfig;
/// use switchboard_protocol::{CloseCode, Config, Connection};
///
/// // Small frames and messages; `deflate` is the policy the handshake negotiates with.
/// let config = Config::default()
///     .max_frame_size(1024)
///     .max_message_size(64 << 10)
///     .deflate(Some(DeflateConfig::default()));
/// let mut server = Connection::server(config);
/// // A masked binary frame announcing 4096 bytes is refused from its header alone.
/// let mut buf = BytesMut::from(&[0x82, 0xfe, 0x10, 0x00, 1, 2, 3, 4][..]);
/// let error = server.poll_event(&mut buf).unwrap_err();
/// assert_eq!(error.close_code(), CloseCode::MESSAGE_TOO_BIG);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted, in bytes. A frame whose header announces more is
    /// refused with 1009 before any of its payload is read. Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message accepted, in bytes, summed over fragments and measured after
    /// decompression. Default 16 MiB.
    pub max_message_size: usize,
    /// The largest opening handshake (request or response head) accepted, in bytes.
    /// Default 8 KiB; a larger request is answered with 431.
    pub max_handshake_size: usize,
    /// Payloads at least this large are queued as their own output chunk instead of being
    /// copied next to their header, so the shell can write them with vectored I/O.
    /// Default 4 KiB.
    pub vectored_write_threshold: usize,
    /// permessage-deflate policy; `None` (the default) never negotiates it.
    pub deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_handshake_size: 8 << 10,
            vectored_write_threshold: 4 << 10,
            deflate: None,
        }
    }
}

impl Config {
    /// Sets [`Config::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`Config::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`Config::max_handshake_size`].
    pub fn max_handshake_size(mut self, bytes: usize) -> Self {
        self.max_handshake_size = bytes;
        self
    }

    /// Sets [`Config::deflate`].
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }
}
