//! permessage-deflate (RFC 7692): negotiation and the per-connection codec.
//!
//! - [`params`](DeflateConfig) — the handshake: [`DeflateConfig::client_offer`],
//!   [`DeflateConfig::client_accept`] and [`DeflateConfig::server_accept`] turn a policy and
//!   the peer's `Sec-WebSocket-Extensions` entries into agreed [`DeflateParams`].
//! - [`codec`](Deflate) — the data path: [`Deflate::compress`] one whole message,
//!   [`Deflate::decompress`] one frame at a time, bounded by the message size limit.
//!
//! # Negotiation choices
//!
//! - **All four parameters, both ways** (§7.1). The client sends one offer with what it is
//!   configured to ask for, always including `client_max_window_bits`; it fails the
//!   handshake on any response that is malformed (unknown or repeated parameter, bad value)
//!   or does not fit the offer (a larger `server_max_window_bits` than asked, a missing
//!   `server_no_context_takeover` or `server_max_window_bits` it asked for,
//!   `client_max_window_bits` it did not offer), as §7 requires of a client.
//! - **The server declines malformed offers** (unknown parameter, repeated parameter, bad
//!   value) and moves on to the client's next offer, because RFC 7692 §7 says "a server
//!   MUST decline an extension negotiation offer" in exactly those cases. A client whose
//!   every offer is malformed gets a connection without compression, not a failed
//!   handshake.
//! - **Window bits 8.** zlib cannot run a raw deflate stream with an 8-bit window, but its
//!   9-bit compressor never emits a match more than 250 bytes back (`MAX_DIST` is the
//!   window minus 262 bytes of lookahead), which an 8-bit (256-byte) window covers. So an
//!   8 is accepted and answered as 8 — never as 9, which §7.1.2.1 forbids ("the same or
//!   smaller value") — and compressed with 9. The decompressor always inflates with 15
//!   bits: a window at least the peer's is always correct, and zlib-rs allocates 32 KiB
//!   whatever the size, so a smaller one would save nothing.
//!
//! # Memory
//!
//! Bytes a connection holds between messages once a message has gone each way, at level 1,
//! with zlib-rs 0.6 (the allocator's own overhead not included):
//!
//! | window bits | context takeover | compressor | decompressor |
//! | --- | --- | --- | --- |
//! | 15 | kept | 371 KiB | 46 KiB |
//! | 12 | kept | 259 KiB | 46 KiB |
//! | 9 | kept | 245 KiB | 46 KiB |
//! | any | none | 0 | 0 |
//!
//! Measured by a counting global allocator in the crate's tests: print the table with
//! `cargo test -p switchboard-protocol deflate::codec::memory -- --nocapture`; the test also
//! pins these figures' shape, so it fails if they drift far.
//!
//! So a default connection that compresses both ways holds about 417 KiB. The compressor
//! dominates: of its 371 KiB, the window and its chain table (128 KiB at 15 bits) shrink
//! with `*_max_window_bits`, but the 128 KiB hash table and 112 KiB of pending and symbol
//! buffers do not, hence 245 KiB even at 9 bits. The decompressor's 32 KiB window is
//! allocated at full size whatever the agreed bits. What really cuts memory is **no
//! context takeover**: the state is then allocated for one message and dropped after it,
//! so an idle connection holds nothing (at the price of an allocation per message and a
//! worse ratio on small messages). `server_no_context_takeover` removes the server's
//! compressor, `client_no_context_takeover` its decompressor. In every mode nothing is
//! allocated before the first compressed message in a direction, and
//! [`Deflate::decompress`] never holds more output than the message size limit.

mod codec;
mod params;

pub(crate) use codec::Decompressor;
pub use codec::{Deflate, InflateError};
pub use params::{DeflateConfig, DeflateParams, NegotiationError};
