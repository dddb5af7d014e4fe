//! Fuzz entry points, compiled only under `cfg(fuzzing)` (which `cargo fuzz` sets).
//!
//! Each target in `fuzz/fuzz_targets/` is a one-line call to a function here, so the harness
//! lives next to the code it checks and can see its internals (the quinn and rustls habit).
//! Every function checks an oracle beyond "does not panic", and panics when it fails:
//!
//! | target | oracle |
//! | --- | --- |
//! | [`server_conn`], [`client_conn`] | every error closes with 1002, 1007 or 1009, in exactly one close frame, the last one sent; every frame sent parses, is masked exactly when the role says so, and a peer connection accepts the output and sees exactly the pongs, echoes and close reply expected; the close bookkeeping matches; the input fed whole or in chunks gives the same events, error and bytes |
//! | [`frame_header`] | agrees with a reference decoder; re-encoding parses back to the same header, byte for byte when the length encoding was minimal; every strict prefix is incomplete |
//! | [`handshake_request`] | a rejection is 4xx and serializes to a well-formed response; an accepted request's 101 carries the accept key (computed here from RFC 6455 §4.2.2) and passes the client's own validation |
//! | [`handshake_response`] | success implies status 101, the accept key, the upgrade tokens, and only offered subprotocols and extensions |
//! | [`inflate`] | compressed messages round-trip from a client to a server connection; no message exceeds the limit; errors close with 1007 or 1009 |
//! | [`utf8`] | the incremental validator fails exactly when a prefix cannot begin valid UTF-8, and accepts exactly what `std::str::from_utf8` accepts |
//!
//! The first input bytes of the connection targets are options (limits, permessage-deflate
//! parameters, echo, close first, chunk sizes), so one corpus covers every configuration.
//! Seeds are in `fuzz/seeds/<target>/`; `scripts/fuzz.sh` runs every target.

mod conn;
mod frame;
mod handshake;
mod inflate;
mod utf8;

pub use conn::{client_conn, server_conn};
pub use frame::frame_header;
pub use handshake::{handshake_request, handshake_response};
pub use inflate::inflate;
pub use utf8::utf8;

/// Chunk sizes for the split-invariance run: the low two bits of the seed pick the largest
/// chunk (1, 3, 16 or 200 bytes), the rest seed a PRNG.
struct ChunkSizes {
    max: usize,
    state: u32,
}

impl ChunkSizes {
    fn new(seed: u8) -> Self {
        let max = [1, 3, 16, 200][usize::from(seed & 0b11)];
        ChunkSizes {
            max,
            state: u32::from(seed >> 2) | 0x100,
        }
    }

    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        1 + self.state as usize % self.max
    }
}
