//! permessage-deflate (RFC 7692): negotiation and the per-connection codec.
//!
//! INTERFACE STUB — to be implemented (negotiation in `params.rs`, codec in `codec.rs`).

use crate::frame::Role;
use crate::handshake::Extension;
use bytes::BytesMut;

/// Policy for permessage-deflate on one side: what we offer (client) or accept (server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// zlib compression level, 0–9. Default 1: most of the ratio for a fraction of the CPU.
    pub level: u32,
    /// The largest LZ77 window we use when compressing, 9–15 (8 is served as 9).
    pub server_max_window_bits: u8,
    /// The largest LZ77 window the client may use, 9–15.
    pub client_max_window_bits: u8,
    /// Ask for / grant `server_no_context_takeover`.
    pub server_no_context_takeover: bool,
    /// Ask for / grant `client_no_context_takeover`.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 1,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            threshold: 32,
        }
    }
}

/// The parameters both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// Window bits the server compresses with (9–15).
    pub server_max_window_bits: u8,
    /// Window bits the client compresses with (9–15).
    pub client_max_window_bits: u8,
}

/// Why permessage-deflate negotiation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permessage-deflate negotiation failed: {0}")]
pub struct NegotiationError(pub String);

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message would exceed the caller's limit.
    TooBig,
    /// The input is not valid DEFLATE data.
    Corrupt,
}

impl DeflateConfig {
    /// Client: the `Sec-WebSocket-Extensions` value to offer.
    pub fn client_offer(&self) -> String {
        todo!()
    }

    /// Client: checks the server's accepted extensions. `Ok(None)` if the server declined.
    pub fn client_accept(&self, accepted: &[Extension]) -> Result<Option<DeflateParams>, NegotiationError> {
        let _ = accepted;
        todo!()
    }

    /// Server: picks the first acceptable offer. Returns the agreed parameters and the
    /// `Sec-WebSocket-Extensions` response value, or `Ok(None)` if nothing was offered
    /// that we accept.
    pub fn server_accept(&self, offers: &[Extension]) -> Result<Option<(DeflateParams, String)>, NegotiationError> {
        let _ = offers;
        todo!()
    }
}

/// One connection's compressor and decompressor.
pub struct Deflate {
    _private: (),
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate").finish_non_exhaustive()
    }
}

impl Deflate {
    /// A codec for `role` with the agreed `params`.
    pub fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Self {
        let _ = (role, params, config);
        todo!()
    }

    /// Whether a message of `len` bytes should be compressed (the threshold).
    pub fn should_compress(&self, len: usize) -> bool {
        let _ = len;
        todo!()
    }

    /// Compresses a whole message payload, appending to `out` without the trailing
    /// `00 00 ff ff` (RFC 7692 §7.2.1).
    pub fn compress(&mut self, payload: &[u8], out: &mut BytesMut) {
        let _ = (payload, out);
        todo!()
    }

    /// Inflates one frame's payload of a compressed message, appending to `out`; on `fin`,
    /// appends the `00 00 ff ff` tail first. `out` may not grow past `max_len` bytes in total.
    pub fn decompress(&mut self, input: &[u8], fin: bool, max_len: usize, out: &mut BytesMut) -> Result<(), InflateError> {
        let _ = (input, fin, max_len, out);
        todo!()
    }
}
