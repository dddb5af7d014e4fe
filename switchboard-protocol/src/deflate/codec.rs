//! The per-connection compressor and decompressor (RFC 7692 §7.2).
//!
//! zlib state is large (see the module docs of [`crate::deflate`] for the measured sizes), so
//! each direction allocates it on its first message and drops it after every message when
//! that direction has no context takeover: an idle connection then holds no zlib state.

use super::params::{clamp_bits, MAX_WINDOW_BITS};
use super::{DeflateConfig, DeflateParams};
use crate::frame::Role;
use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The empty stored block a sync flush ends with, stripped by the sender and put back by the
/// receiver (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output is produced in steps of at most this many bytes. Small enough that a bounded
/// inflate overshoots its limit by little, large enough that zlib calls are few.
const CHUNK: usize = 32 * 1024;

/// zlib's smallest raw-deflate window. zlib (and zlib-rs) refuse 8 for raw streams; see
/// [`Compressor::zlib_bits`] for why 9 is still correct when 8 was agreed.
const ZLIB_MIN_WINDOW_BITS: u8 = 9;

/// Why a compressed message could not be inflated.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_protocol::deflate::{Deflate, DeflateConfig, DeflateParams, InflateError};
/// use switchboard_protocol::{CloseCode, Role};
///
/// # let params = DeflateParams {
/// #     server_no_context_takeover: false,
/// #     client_no_context_takeover: false,
/// #     server_max_window_bits: 15,
/// #     client_max_window_bits: 15,
/// # };
/// let mut server = Deflate::new(Role::Server, params, &DeflateConfig::default());
/// let mut out = BytesMut::new();
/// // 0xff starts a block of the reserved type 3: not DEFLATE data.
/// let code = match server.decompress(&[0xff, 0xff], true, 1 << 20, &mut out) {
///     Ok(()) => None,
///     Err(InflateError::TooBig) => Some(CloseCode::MESSAGE_TOO_BIG),
///     Err(InflateError::Corrupt) => Some(CloseCode::INVALID_PAYLOAD),
/// };
/// assert_eq!(code, Some(CloseCode::INVALID_PAYLOAD));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// The inflated message would exceed the caller's limit (close with 1009).
    #[error("the inflated message exceeds the size limit")]
    TooBig,
    /// The input is not valid DEFLATE data (close with 1007, RFC 7692 §8: data that
    /// cannot be decompressed is invalid).
    #[error("the compressed message is not valid DEFLATE data")]
    Corrupt,
}

/// One connection's compressor and decompressor.
///
///
/// [`Connection::with_deflate`](crate::Connection::with_deflate) runs one for you; use it
/// directly only with framing of your own.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_protocol::deflate::{Deflate, DeflateConfig, DeflateParams};
/// use switchboard_protocol::Role;
///
/// let params = DeflateParams {
///     server_no_context_takeover: false,
///     client_no_context_takeover: false,
///     server_max_window_bits: 15,
///     client_max_window_bits: 15,
/// };
/// let mut client = Deflate::new(Role::Client, params, &DeflateConfig::default());
/// let mut server = Deflate::new(Role::Server, params, &DeflateConfig::default());
/// let message = "hello ".repeat(100);
/// assert!(client.should_compress(message.len()));
/// let mut wire = BytesMut::new();
/// client.compress(message.as_bytes(), &mut wire);
/// assert!(wire.len() < message.len());
/// let mut inflated = BytesMut::new();
/// server.decompress(&wire, true, 1 << 20, &mut inflated)?;
/// assert_eq!(inflated, message.as_bytes());
/// assert_eq!(server.holds_state(), (false, true)); // the window is kept for the next message
/// # Ok::<(), switchboard_protocol::deflate::InflateError>(())
/// ```
pub struct Deflate {
    compressor: Compressor,
    decompressor: Decompressor,
    /// Messages shorter than this go out uncompressed (`DeflateConfig::threshold`).
    threshold: usize,
    /// Compressed frames are handed out to be inflated elsewhere
    /// (`Connection::defer_inflation`) rather than inflated by the parser.
    pub(crate) defer: bool,
    /// A frame handed out but not yet taken (`Connection::take_inflation`).
    pub(crate) pending: Option<crate::connection::Inflation>,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("compressor_allocated", &self.compressor.state.is_some())
            .field("decompressor_allocated", &self.decompressor.state.is_some())
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl Deflate {
    /// A codec for `role` with the agreed `params`.
    ///
    /// The `server_*` parameters govern what the server compresses, the `client_*` ones
    /// what the client compresses (RFC 7692 §7.1): a server compresses with `server_*` and
    /// inflates with `client_*`, a client the other way round. Nothing is allocated yet.
    pub fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Self {
        let (own_bits, own_no_context_takeover, peer_no_context_takeover) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        Deflate {
            compressor: Compressor {
                state: None,
                level: Compression::new(config.level.min(9)),
                window_bits: Compressor::zlib_bits(own_bits),
                no_context_takeover: own_no_context_takeover,
            },
            decompressor: Decompressor {
                state: None,
                no_context_takeover: peer_no_context_takeover,
            },
            threshold: config.threshold,
            defer: false,
            pending: None,
        }
    }

    /// The decompressor, lent out for one frame (an empty one with the same settings
    /// stays): give it back with [`Deflate::return_decompressor`].
    pub(crate) fn lend_decompressor(&mut self) -> Decompressor {
        let empty = Decompressor {
            state: None,
            no_context_takeover: self.decompressor.no_context_takeover,
        };
        std::mem::replace(&mut self.decompressor, empty)
    }

    pub(crate) fn decompressor_mut(&mut self) -> &mut Decompressor {
        &mut self.decompressor
    }

    /// Takes back what [`Deflate::lend_decompressor`] lent.
    pub(crate) fn return_decompressor(&mut self, decompressor: Decompressor) {
        self.decompressor = decompressor;
    }

    /// Whether a message of `len` bytes should be compressed (the threshold).
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.threshold
    }

    /// Compresses a whole message payload, appending to `out` without the trailing
    /// `00 00 ff ff` (RFC 7692 §7.2.1).
    pub fn compress(&mut self, payload: &[u8], out: &mut BytesMut) {
        self.compressor.compress(payload, out);
    }

    /// Inflates one frame's payload of a compressed message, appending to `out`; on `fin`,
    /// appends the `00 00 ff ff` tail first. `out` may not grow past `max_len` bytes in total.
    ///
    /// Output is produced in bounded steps, so a small input that would inflate to gigabytes
    /// fails with [`InflateError::TooBig`] having written at most `max_len + 1` bytes
    /// (plus one step of spare capacity). After an error the message is lost and `out` holds
    /// a partial result; the decompressor is dropped, and the connection should close
    /// (1009 for [`InflateError::TooBig`], 1007 for [`InflateError::Corrupt`]).
    pub fn decompress(
        &mut self,
        input: &[u8],
        fin: bool,
        max_len: usize,
        out: &mut BytesMut,
    ) -> Result<(), InflateError> {
        self.decompressor.decompress(input, fin, max_len, out)
    }

    /// Whether zlib state is held right now: `(compressor, decompressor)`. Both are `false`
    /// until the first message in each direction, and stay `false` between messages for a
    /// direction without context takeover.
    pub fn holds_state(&self) -> (bool, bool) {
        (
            self.compressor.state.is_some(),
            self.decompressor.state.is_some(),
        )
    }
}

/// Our sending direction.
struct Compressor {
    /// `None` until the first compressed message, and again after every message when
    /// `no_context_takeover` (dropping instead of resetting returns the memory).
    state: Option<Compress>,
    level: Compression,
    /// The window zlib runs with (9–15), see [`Compressor::zlib_bits`].
    window_bits: u8,
    /// Each message starts from an empty window (we promised not to use context takeover).
    no_context_takeover: bool,
}

impl Compressor {
    /// The zlib window for an agreed `server_`/`client_max_window_bits` of our side.
    ///
    /// An agreed 8 runs zlib with 9 bits, and that is safe, not just tolerated: zlib never
    /// emits a match farther back than `window − MIN_LOOKAHEAD` (`MAX_DIST`; MIN_LOOKAHEAD
    /// is 262), i.e. 250 bytes for a 512-byte window, within the 256 bytes an 8-bit window
    /// allows. It is the same substitution zlib's own `deflateInit2` makes for 8 ("until
    /// 256-byte window bug fixed"); `compress_window_9_stays_within_an_8_bit_window` pins it.
    fn zlib_bits(agreed: u8) -> u8 {
        clamp_bits(agreed).max(ZLIB_MIN_WINDOW_BITS)
    }

    fn compress(&mut self, payload: &[u8], out: &mut BytesMut) {
        // §7.2.3.6: an empty message is sent as a single empty stored block with its tail
        // removed, `00`. Writing it directly avoids allocating zlib state for nothing, and
        // covers the case where zlib refuses a second sync flush without new input.
        if payload.is_empty() {
            out.extend_from_slice(&[0x00]);
            return;
        }
        let (level, window_bits) = (self.level, self.window_bits);
        let zlib = self
            .state
            .get_or_insert_with(|| Compress::new_with_window_bits(level, false, window_bits));
        let mut consumed = 0;
        loop {
            let start = out.len();
            // Deflate never expands by more than a few bytes per 16 KiB stored block, so
            // `remaining + 64` usually finishes in one step.
            let room = (payload.len() - consumed + 64).min(CHUNK);
            out.resize(start + room, 0);
            let (in_before, out_before) = (zlib.total_in(), zlib.total_out());
            let status =
                zlib.compress(&payload[consumed..], &mut out[start..], FlushCompress::Sync);
            let produced = (zlib.total_out() - out_before) as usize;
            consumed += (zlib.total_in() - in_before) as usize;
            out.truncate(start + produced);
            // zlib reports only stream misuse (Z_STREAM_ERROR) as an error, and this loop
            // never misuses the stream: a failure here is a bug, not bad input.
            let status = status.expect("deflate with a sync flush on a valid stream cannot fail");
            // Done once all input is in and zlib left output space unused (zlib.h: with a
            // flush, call again while avail_out == 0).
            if consumed == payload.len() && (produced < room || status == Status::BufError) {
                break;
            }
        }
        // §7.2.1: remove the 4-octet tail of the sync flush.
        debug_assert!(
            out.ends_with(&TAIL),
            "a sync flush ends with an empty stored block"
        );
        out.truncate(out.len() - TAIL.len());
        if self.no_context_takeover {
            self.state = None;
        }
    }
}

/// The peer's sending direction.
pub(crate) struct Decompressor {
    /// `None` until the first compressed frame, after every message when
    /// `no_context_takeover`, and after an error.
    ///
    /// It always inflates with a 15-bit window, whatever the peer agreed to: inflating
    /// with a window at least as large as the compressor's is always correct, and
    /// zlib-rs allocates a 32 KiB window for any size anyway, so a smaller one would save
    /// nothing and only make a peer that overshoots its limit fail depending on how its
    /// frames happen to be split.
    state: Option<Decompress>,
    /// The peer starts every message from an empty window, so we may too.
    no_context_takeover: bool,
}

impl Decompressor {
    pub(crate) fn decompress(
        &mut self,
        input: &[u8],
        fin: bool,
        max_len: usize,
        out: &mut BytesMut,
    ) -> Result<(), InflateError> {
        let zlib = self
            .state
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, MAX_WINDOW_BITS));
        let mut result = inflate(zlib, input, max_len, out);
        if result.is_ok() && fin {
            // §7.2.2: append the 4 octets 0x00 0x00 0xff 0xff to the payload of the message.
            result = inflate(zlib, &TAIL, max_len, out);
        }
        if result.is_err() || (fin && self.no_context_takeover) {
            self.state = None;
        }
        result
    }
}

/// Inflates all of `input` into `out`, never letting `out` exceed `max_len + 1` bytes.
fn inflate(
    zlib: &mut Decompress,
    input: &[u8],
    max_len: usize,
    out: &mut BytesMut,
) -> Result<(), InflateError> {
    // One byte beyond the limit tells "exactly max_len" from "more than max_len".
    let limit = max_len.saturating_add(1);
    // Output space grows from a guess at the inflated size to CHUNK, so a small message
    // does not make `out` reserve a whole chunk.
    let mut step = input.len().saturating_mul(4).clamp(256, CHUNK);
    let mut consumed = 0;
    loop {
        if out.len() >= limit {
            return Err(InflateError::TooBig);
        }
        let start = out.len();
        let room = (limit - start).min(step);
        step = (step * 2).min(CHUNK);
        out.resize(start + room, 0);
        let (in_before, out_before) = (zlib.total_in(), zlib.total_out());
        let status = zlib.decompress(&input[consumed..], &mut out[start..], FlushDecompress::None);
        let produced = (zlib.total_out() - out_before) as usize;
        let used = (zlib.total_in() - in_before) as usize;
        consumed += used;
        out.truncate(start + produced);
        let status = status.map_err(|_| InflateError::Corrupt)?;
        if out.len() > max_len {
            return Err(InflateError::TooBig);
        }
        match status {
            // §7.2.3.4: a sender may end a message with a BFINAL block; what follows
            // (at least our appended tail) starts a new raw stream. Resetting drops the
            // window, which is right: a new stream cannot refer to the old one.
            Status::StreamEnd => {
                zlib.reset(false);
                if consumed == input.len() {
                    return Ok(());
                }
            }
            Status::Ok | Status::BufError => {
                if produced == room {
                    continue; // output space ran out: there may be more
                }
                if consumed == input.len() {
                    return Ok(());
                }
                if produced == 0 && used == 0 {
                    // Input left, output space left, and no progress: cannot happen with
                    // zlib, but never loop forever on hostile input.
                    return Err(InflateError::Corrupt);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agreed(
        server_bits: u8,
        client_bits: u8,
        server_nct: bool,
        client_nct: bool,
    ) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: server_nct,
            client_no_context_takeover: client_nct,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        }
    }

    /// A server and a client codec over the same agreement.
    fn pair(params: DeflateParams, level: u32) -> (Deflate, Deflate) {
        let config = DeflateConfig {
            level,
            ..DeflateConfig::default()
        };
        (
            Deflate::new(Role::Server, params, &config),
            Deflate::new(Role::Client, params, &config),
        )
    }

    fn compress(codec: &mut Deflate, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        codec.compress(payload, &mut out);
        out.to_vec()
    }

    fn inflate_whole(codec: &mut Deflate, payload: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut out = BytesMut::new();
        codec.decompress(payload, true, usize::MAX, &mut out)?;
        Ok(out.to_vec())
    }

    fn default_pair() -> (Deflate, Deflate) {
        pair(agreed(15, 15, false, false), 6)
    }

    /// RFC 7692 §7.2.3: the worked examples, byte for byte.
    mod rfc_examples {
        use super::*;

        const HELLO: &[u8] = b"Hello";

        /// §7.2.3.1 A message compressed using one compressed DEFLATE block.
        #[test]
        fn one_compressed_block() {
            let (mut server, mut client) = default_pair();
            let wire = compress(&mut server, HELLO);
            assert_eq!(wire, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
            assert_eq!(inflate_whole(&mut client, &wire).unwrap(), HELLO);
        }

        /// §7.2.3.1, fragmented: `f2 48 cd` and `c9 c9 07 00`.
        #[test]
        fn one_compressed_block_in_two_fragments() {
            let (_, mut client) = default_pair();
            let mut out = BytesMut::new();
            client
                .decompress(&[0xf2, 0x48, 0xcd], false, 100, &mut out)
                .unwrap();
            client
                .decompress(&[0xc9, 0xc9, 0x07, 0x00], true, 100, &mut out)
                .unwrap();
            assert_eq!(&out[..], HELLO);
        }

        /// §7.2.3.2 Sharing LZ77 sliding window: the second "Hello" refers to the first.
        #[test]
        fn sharing_the_window() {
            let (mut server, mut client) = default_pair();
            let first = compress(&mut server, HELLO);
            let second = compress(&mut server, HELLO);
            assert_eq!(first, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
            assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
            assert_eq!(inflate_whole(&mut client, &first).unwrap(), HELLO);
            assert_eq!(inflate_whole(&mut client, &second).unwrap(), HELLO);
        }

        /// Without context takeover, the second message is compressed afresh, and the
        /// context-dependent RFC example cannot be inflated by a fresh decompressor.
        #[test]
        fn no_context_takeover() {
            let (mut server, mut client) = pair(agreed(15, 15, true, false), 6);
            let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
            assert_eq!(compress(&mut server, HELLO), hello);
            assert_eq!(compress(&mut server, HELLO), hello);
            assert_eq!(inflate_whole(&mut client, &hello).unwrap(), HELLO);
            assert_eq!(
                inflate_whole(&mut client, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
                Err(InflateError::Corrupt)
            );
        }

        /// §7.2.3.3 Using a DEFLATE block with no compression.
        #[test]
        fn stored_block() {
            let (_, mut client) = default_pair();
            let wire = [
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ];
            assert_eq!(inflate_whole(&mut client, &wire).unwrap(), HELLO);
        }

        /// §7.2.3.4 Using a DEFLATE block with BFINAL set to 1, then a normal message.
        #[test]
        fn bfinal_block() {
            let (_, mut client) = default_pair();
            let wire = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
            assert_eq!(inflate_whole(&mut client, &wire).unwrap(), HELLO);
            let next = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
            assert_eq!(inflate_whole(&mut client, &next).unwrap(), HELLO);
        }

        /// §7.2.3.5 Two DEFLATE blocks in one message.
        #[test]
        fn two_blocks() {
            let (_, mut client) = default_pair();
            let wire = [
                0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
            ];
            assert_eq!(inflate_whole(&mut client, &wire).unwrap(), HELLO);
        }

        /// §7.2.3.6 Generating an empty fragment: an empty message is `00`.
        #[test]
        fn empty_message() {
            let (mut server, mut client) = default_pair();
            assert_eq!(compress(&mut server, b""), [0x00]);
            assert_eq!(inflate_whole(&mut client, &[0x00]).unwrap(), b"");
            // Also between messages that share the window, in both directions.
            let hello = compress(&mut server, HELLO);
            assert_eq!(compress(&mut server, b""), [0x00]);
            let again = compress(&mut server, HELLO);
            assert_eq!(again, [0xf2, 0x00, 0x11, 0x00, 0x00]);
            for (wire, expected) in [(&hello[..], HELLO), (&[0x00], b""), (&again[..], HELLO)] {
                assert_eq!(inflate_whole(&mut client, wire).unwrap(), expected);
            }
            // An empty final fragment after a non-empty one.
            let mut out = BytesMut::new();
            client.decompress(&hello, false, 100, &mut out).unwrap();
            client.decompress(&[], true, 100, &mut out).unwrap();
            assert_eq!(&out[..], HELLO);
        }
    }

    mod inflate_limits {
        use super::*;

        /// A message of `mib` MiB of zeros, deflated, without compressing them all: after
        /// the first MiB fills the window, every further MiB compresses to the same bytes
        /// (checked here), so the stream is the first chunk plus copies of the second.
        fn zero_bomb(mib: usize) -> Vec<u8> {
            let zeros = vec![0u8; 1 << 20];
            let mut zlib = Compress::new_with_window_bits(Compression::best(), false, 15);
            let mut chunk = || {
                let mut out = Vec::new();
                let before = zlib.total_in() as usize;
                loop {
                    out.reserve(64 * 1024);
                    let fed = zlib.total_in() as usize - before;
                    zlib.compress_vec(&zeros[fed..], &mut out, FlushCompress::Sync)
                        .unwrap();
                    if zlib.total_in() as usize - before == zeros.len()
                        && out.capacity() > out.len()
                    {
                        return out;
                    }
                }
            };
            let first = chunk();
            let repeated = chunk();
            assert_eq!(chunk(), repeated, "steady-state chunks must be identical");
            let mut bomb = first;
            for _ in 1..mib {
                bomb.extend_from_slice(&repeated);
            }
            assert!(bomb.ends_with(&TAIL));
            bomb.truncate(bomb.len() - TAIL.len());
            bomb
        }

        #[test]
        fn zero_bomb_is_what_it_claims() {
            let (_, mut client) = default_pair();
            let inflated = inflate_whole(&mut client, &zero_bomb(4)).unwrap();
            assert_eq!(inflated.len(), 4 << 20);
            assert!(inflated.iter().all(|&b| b == 0));
        }

        /// 1 GiB of zeros is about 1 MiB deflated; with a 1 MiB limit inflation stops after
        /// a little over 1 MiB of output.
        #[test]
        fn bomb_is_refused_without_inflating_it() {
            let bomb = zero_bomb(1024);
            assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
            eprintln!("1 GiB of zeros deflates to {} bytes", bomb.len());
            let (_, mut client) = default_pair();
            let max_len = 1 << 20;
            let mut out = BytesMut::new();
            let started = std::time::Instant::now();
            assert_eq!(
                client.decompress(&bomb, true, max_len, &mut out),
                Err(InflateError::TooBig)
            );
            assert!(out.len() <= max_len + 1);
            assert!(
                out.capacity() <= 2 * max_len + CHUNK,
                "capacity {}",
                out.capacity()
            );
            let elapsed = started.elapsed();
            eprintln!("refused after {} bytes in {elapsed:?}", out.len());
            assert!(elapsed < std::time::Duration::from_secs(5));
            // The failed decompressor is gone; the next message starts clean.
            assert_eq!(client.holds_state(), (false, false));
        }

        #[test]
        fn limit_is_exact_and_counts_what_out_already_holds() {
            let (mut server, mut client) = default_pair();
            let payload = vec![b'a'; 100_000];
            let wire = compress(&mut server, &payload);

            let mut out = BytesMut::new();
            client
                .decompress(&wire, true, payload.len(), &mut out)
                .unwrap();
            assert_eq!(&out[..], &payload[..]);

            let (mut server, mut client) = default_pair();
            let wire = compress(&mut server, &payload);
            let mut out = BytesMut::new();
            let err = client.decompress(&wire, true, payload.len() - 1, &mut out);
            assert_eq!(err, Err(InflateError::TooBig));

            // Earlier fragments count against the limit.
            let (mut server, mut client) = default_pair();
            let wire = compress(&mut server, &payload);
            let mut out = BytesMut::from(&b"xyz"[..]);
            let err = client.decompress(&wire, true, payload.len() + 2, &mut out);
            assert_eq!(err, Err(InflateError::TooBig));
        }

        #[test]
        fn too_big_across_fragments() {
            let (mut server, mut client) = default_pair();
            let payload = vec![7u8; 50_000];
            let wire = compress(&mut server, &payload);
            let (a, b) = wire.split_at(wire.len() / 2);
            let mut out = BytesMut::new();
            let first = client.decompress(a, false, 40_000, &mut out);
            let second = first.and_then(|()| client.decompress(b, true, 40_000, &mut out));
            assert_eq!(second, Err(InflateError::TooBig));
            assert!(out.len() <= 40_001);
        }

        #[test]
        fn corrupt_input() {
            for wire in [
                &[0xff, 0xff, 0xff, 0xff][..],       // BTYPE 11 is reserved
                &[0x00, 0x05, 0x00, 0x00, 0x00][..], // stored block: LEN and NLEN disagree
                &[0xf2, 0x00, 0x11, 0x00, 0x00][..], // refers back past an empty window
            ] {
                let (_, mut client) = default_pair();
                assert_eq!(
                    inflate_whole(&mut client, wire),
                    Err(InflateError::Corrupt),
                    "{wire:x?}"
                );
                assert_eq!(client.holds_state(), (false, false));
            }
        }
    }

    mod window {
        use super::*;

        /// Pseudo-random bytes without short-range repeats worth matching.
        fn noise(len: usize, seed: u32) -> Vec<u8> {
            let mut x = seed | 1;
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect()
        }

        /// The 8-bit rule: compressing with zlib's 9-bit window never reaches further back
        /// than 256 bytes. A 300-byte random block repeated is only compressible with
        /// matches at distance 300; with 9 bits they must not appear, with 10 bits they do
        /// (which shows the test can tell).
        #[test]
        fn compress_window_9_stays_within_an_8_bit_window() {
            let block = noise(300, 7);
            let payload: Vec<u8> = block.iter().copied().cycle().take(300 * 40).collect();
            // Every zlib-rs strategy: stored (0), quick (1), fast, medium and slow (9).
            for level in [0, 1, 3, 6, 9] {
                let size = |bits: u8| {
                    let (mut server, _) = pair(agreed(bits, 15, false, false), level);
                    compress(&mut server, &payload).len()
                };
                assert!(
                    size(8) > payload.len() * 9 / 10,
                    "level {level}, 8 → {}",
                    size(8)
                );
                assert_eq!(size(8), size(9));
                if level > 0 {
                    assert!(
                        size(10) < payload.len() / 4,
                        "level {level}, 10 → {}",
                        size(10)
                    );
                }
            }
        }

        #[test]
        fn zlib_bits() {
            assert_eq!(Compressor::zlib_bits(8), 9);
            assert_eq!(Compressor::zlib_bits(12), 12);
            assert_eq!(Compressor::zlib_bits(99), 15);
        }
    }

    mod state {
        use super::*;

        #[test]
        fn allocated_lazily_and_released_without_context_takeover() {
            let (mut server, mut client) = pair(agreed(15, 15, true, true), 1);
            assert_eq!(server.holds_state(), (false, false));
            let wire = compress(&mut server, b"a message long enough to matter");
            assert_eq!(server.holds_state(), (false, false));
            let mut out = BytesMut::new();
            client
                .decompress(&wire[..3], false, 1000, &mut out)
                .unwrap();
            assert_eq!(client.holds_state(), (false, true), "held mid-message");
            client.decompress(&wire[3..], true, 1000, &mut out).unwrap();
            assert_eq!(client.holds_state(), (false, false));
        }

        #[test]
        fn kept_with_context_takeover() {
            let (mut server, mut client) = pair(agreed(15, 15, false, false), 1);
            let wire = compress(&mut server, b"a message long enough to matter");
            assert_eq!(server.holds_state(), (true, false));
            inflate_whole(&mut client, &wire).unwrap();
            assert_eq!(client.holds_state(), (false, true));
        }

        /// Each role compresses with its own side's parameters.
        #[test]
        fn roles_pick_their_direction() {
            let params = agreed(10, 12, true, false);
            let config = DeflateConfig::default();
            let server = Deflate::new(Role::Server, params, &config);
            let client = Deflate::new(Role::Client, params, &config);
            assert_eq!(server.compressor.window_bits, 10);
            assert!(server.compressor.no_context_takeover);
            assert!(!server.decompressor.no_context_takeover);
            assert_eq!(client.compressor.window_bits, 12);
            assert!(!client.compressor.no_context_takeover);
            assert!(client.decompressor.no_context_takeover);
        }

        #[test]
        fn threshold() {
            let config = DeflateConfig {
                threshold: 32,
                ..DeflateConfig::default()
            };
            let codec = Deflate::new(Role::Server, agreed(15, 15, false, false), &config);
            assert!(!codec.should_compress(31));
            assert!(codec.should_compress(32));
        }

        #[test]
        fn level_changes_output() {
            let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog; "
                .iter()
                .copied()
                .cycle()
                .take(20_000)
                .collect();
            let sizes: Vec<usize> = [0, 1, 9]
                .into_iter()
                .map(|level| {
                    compress(&mut pair(agreed(15, 15, false, false), level).0, &text).len()
                })
                .collect();
            assert!(sizes[0] > text.len(), "level 0 stores: {sizes:?}");
            assert!(
                sizes[1] < text.len() / 10 && sizes[2] <= sizes[1],
                "{sizes:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Messages round-trip in order, in either direction, under any agreement, and
        /// inflating in any frame split equals inflating whole.
        #[test]
        fn round_trip(
            server_bits in 8u8..=15,
            client_bits in 8u8..=15,
            server_nct: bool,
            client_nct: bool,
            level in 0u32..=9,
            messages in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..2000),
                    prop::collection::vec(prop::sample::select(b"ab c".to_vec()), 0..5000),
                ],
                1..6,
            ),
            splits in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let params = agreed(server_bits, client_bits, server_nct, client_nct);
            let (mut server, mut client) = pair(params, level);
            for message in &messages {
                // Server → client, inflated whole.
                let wire = compress(&mut server, message);
                prop_assert_eq!(&inflate_whole(&mut client, &wire).unwrap(), message);
                // Client → server, inflated in frames cut at arbitrary points.
                let wire = compress(&mut client, message);
                let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(wire.len() + 1)).collect();
                cuts.sort_unstable();
                cuts.push(wire.len());
                let mut out = BytesMut::new();
                let mut from = 0;
                for (i, &cut) in cuts.iter().enumerate() {
                    let fin = i == cuts.len() - 1;
                    server.decompress(&wire[from..cut], fin, message.len(), &mut out).unwrap();
                    from = cut;
                }
                prop_assert_eq!(&out[..], &message[..]);
            }
            prop_assert_eq!(server.holds_state().0, !server_nct && messages.iter().any(|m| !m.is_empty()));
            prop_assert_eq!(client.holds_state().0, !client_nct && messages.iter().any(|m| !m.is_empty()));
        }
    }
}

/// Measures what the zlib state costs, with an allocator that counts per thread.
///
/// The counting allocator is the test binary's global allocator; it forwards to the system
/// allocator and counts only on threads that switched counting on, so other tests are
/// unaffected. It needs `unsafe` (implementing `GlobalAlloc` is an unsafe trait); the
/// product code stays free of it.
#[cfg(test)]
#[allow(unsafe_code)]
mod memory {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;

    thread_local! {
        static COUNTING: Cell<bool> = const { Cell::new(false) };
        static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    fn track(delta: isize) {
        // `try_with`: thread-locals may be gone while a thread shuts down.
        let _ = COUNTING.try_with(|on| {
            if on.get() {
                let _ = LIVE.try_with(|live| live.set(live.get() + delta));
            }
        });
    }

    // SAFETY: every call forwards to `System` with the caller's arguments unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            track(layout.size() as isize);
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            track(layout.size() as isize);
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            track(-(layout.size() as isize));
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            track(new_size as isize - layout.size() as isize);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Bytes still allocated after `f` returns, leaving out what `f` hands back.
    fn retained<T>(f: impl FnOnce() -> T) -> (isize, T) {
        COUNTING.with(|on| on.set(true));
        let before = LIVE.with(Cell::get);
        let value = f();
        let after = LIVE.with(Cell::get);
        COUNTING.with(|on| on.set(false));
        (after - before, value)
    }

    fn params(bits: u8, no_context_takeover: bool) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: no_context_takeover,
            client_no_context_takeover: no_context_takeover,
            server_max_window_bits: bits,
            client_max_window_bits: bits,
        }
    }

    const MESSAGE: &[u8] =
        br#"{"op":"message","channel":"chat","id":42,"data":"hello, hello, hello"}"#;

    /// `(compressor, decompressor)` bytes a connection holds between messages after one
    /// message each way.
    fn held(bits: u8, no_context_takeover: bool) -> (isize, isize) {
        let config = DeflateConfig::default();
        let mut server = Deflate::new(Role::Server, params(bits, no_context_takeover), &config);
        let mut client = Deflate::new(Role::Client, params(bits, no_context_takeover), &config);
        let mut wire = BytesMut::new();
        let (compressor, ()) = retained(|| server.compress(MESSAGE, &mut wire));
        let compressor = compressor - wire.capacity() as isize;
        let mut out = BytesMut::with_capacity(1024);
        let (decompressor, result) = retained(|| client.decompress(&wire, true, 1024, &mut out));
        result.unwrap();
        assert_eq!(&out[..], MESSAGE);
        assert_eq!(
            out.capacity(),
            1024,
            "a small message fits the buffer it was given"
        );
        (compressor, decompressor)
    }

    /// Prints the table in the module docs and pins its shape.
    #[test]
    fn figures() {
        let kib = |bytes: isize| bytes as f64 / 1024.0;
        println!("| window bits | context takeover | compressor | decompressor |");
        println!("| --- | --- | --- | --- |");
        for bits in [15, 12, 9] {
            let (c, d) = held(bits, false);
            println!("| {bits} | kept | {:.1} KiB | {:.1} KiB |", kib(c), kib(d));
        }
        let (c, d) = held(15, true);
        println!("| any | none | {:.1} KiB | {:.1} KiB |", kib(c), kib(d));

        let (c15, d15) = held(15, false);
        let (c9, d9) = held(9, false);
        assert!(
            (200 * 1024..512 * 1024).contains(&c15),
            "compressor 15: {c15}"
        );
        assert!(c9 < c15 && c9 > 128 * 1024, "compressor 9: {c9}");
        assert!(d15 > 32 * 1024 && d15 < 64 * 1024, "decompressor 15: {d15}");
        assert_eq!(d9, d15, "the decompressor always inflates with 15 bits");
        assert_eq!(held(15, true), (0, 0), "no context takeover holds nothing");
    }

    /// Nothing is allocated before the first message.
    #[test]
    fn new_codec_allocates_nothing_for_zlib() {
        let (bytes, codec) =
            retained(|| Deflate::new(Role::Server, params(15, false), &DeflateConfig::default()));
        assert_eq!(bytes, 0);
        drop(codec);
    }

    /// Inflating a bomb holds about the limit, not the inflated size.
    #[test]
    fn bounded_inflate_allocates_about_the_limit() {
        let mut zlib = Compress::new_with_window_bits(Compression::fast(), false, 15);
        let zeros = vec![0u8; 16 << 20];
        let mut wire = Vec::with_capacity(1 << 20);
        zlib.compress_vec(&zeros, &mut wire, FlushCompress::Sync)
            .unwrap();
        assert_eq!(
            zlib.total_in(),
            zeros.len() as u64,
            "one call compresses it all"
        );
        wire.truncate(wire.len() - TAIL.len());
        drop(zeros);

        let mut client = Deflate::new(Role::Client, params(15, false), &DeflateConfig::default());
        let max_len = 256 * 1024;
        let (bytes, (result, out)) = retained(|| {
            let mut out = BytesMut::new();
            let result = client.decompress(&wire, true, max_len, &mut out);
            (result, out)
        });
        assert_eq!(result, Err(InflateError::TooBig));
        assert!(bytes <= (2 * max_len + CHUNK) as isize, "{bytes}");
        drop(out);
    }
}
