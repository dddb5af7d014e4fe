//! Payload masking (RFC 6455 §5.3): `payload[i] ^= key[(offset + i) % 4]`.
//!
//! Masking runs over every byte a client sends and a server receives, so it must run at
//! memory speed. On x86-64 the widest vector unit the CPU has is chosen at run time, the
//! first time a payload is long enough to need it (SSE2, which every x86-64 CPU has; AVX2;
//! AVX-512 with byte masks), so one generic binary gets the fast path on every machine, as
//! `simdutf8` does for UTF-8. Elsewhere eight bytes are XORed at a time in safe Rust.
//! [`apply_mask_naive`] is the reference every path is tested against; [`MaskPath`] names
//! the paths so tests and benchmarks can run each one.

/// XORs `buf` with `key`, as if `buf` started `offset` bytes into the masked payload.
///
/// `offset` lets a payload be unmasked piece by piece as it arrives.
///
/// ```
/// use switchboard_protocol::frame::apply_mask;
///
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut payload = *b"Hello";
/// apply_mask(&mut payload, key, 0);
/// assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// // Unmask in two pieces, as they arrive: the offset keeps the key in step.
/// let (first, rest) = payload.split_at_mut(2);
/// apply_mask(first, key, 0);
/// apply_mask(rest, key, 2);
/// assert_eq!(&payload, b"Hello");
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    if buf.len() < VECTOR_MIN {
        // A chat message is a few words: no vector set-up, no dispatch, and no call (this
        // much is inlined where a frame is parsed).
        return mask_words(buf, key);
    }
    apply_mask_long(buf, key);
}

/// [`apply_mask`] from [`VECTOR_MIN`] bytes on (`key` already rotated), out of line, so
/// that the short case stays small enough to inline.
#[inline(never)]
fn apply_mask_long(buf: &mut [u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    x86::apply_best(buf, key);
    #[cfg(not(target_arch = "x86_64"))]
    mask_words(buf, key);
}

/// From this length on, [`apply_mask`] takes the vector path chosen for this CPU.
pub(crate) const VECTOR_MIN: usize = 64;

/// Unmasks a payload from its first byte (as `apply_mask(buf, key, 0)`) and answers whether
/// every unmasked byte is ASCII, in the same pass: the words are ORed together as they are
/// stored, so a short text message needs no second walk for its UTF-8 check. For payloads
/// under [`VECTOR_MIN`] bytes (longer ones are faster through [`apply_mask`] and a
/// vectorised check); correct at any length.
#[inline]
pub(crate) fn unmask_checking_ascii(buf: &mut [u8], key: [u8; 4]) -> bool {
    let narrow = u32::from_ne_bytes(key);
    let wide = (u64::from(narrow) << 32) | u64::from(narrow);
    let mut seen = 0u64;
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let plain = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&plain.to_ne_bytes());
        seen |= plain;
    }
    let mut rest = chunks.into_remainder();
    if rest.len() >= 4 {
        let (word, tail) = rest.split_at_mut(4);
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(word);
        let plain = u32::from_ne_bytes(bytes) ^ narrow;
        word.copy_from_slice(&plain.to_ne_bytes());
        seen |= u64::from(plain);
        rest = tail;
    }
    for (byte, k) in rest.iter_mut().zip(key) {
        *byte ^= k;
        seen |= u64::from(*byte);
    }
    // Every byte was ORed into some byte lane; a high bit in any lane is a non-ASCII byte.
    seen & 0x8080_8080_8080_8080 == 0
}

/// The byte-at-a-time definition from the RFC; the oracle for [`apply_mask`].
///
/// ```
/// use switchboard_protocol::frame::{apply_mask, apply_mask_naive};
///
/// let key = [1, 2, 3, 4];
/// let mut fast: Vec<u8> = (0..=255).collect();
/// let mut reference = fast.clone();
/// apply_mask(&mut fast, key, 3);
/// apply_mask_naive(&mut reference, key, 3);
/// assert_eq!(fast, reference);
/// ```
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) & 3];
    }
}

/// One implementation of masking. [`apply_mask`] uses [`MaskPath::chosen`]; the others are
/// here so that tests can hold each against [`apply_mask_naive`] and benchmarks can compare
/// them. Only paths the running CPU supports can be obtained.
///
/// ```
/// use switchboard_protocol::frame::{apply_mask_naive, MaskPath};
///
/// let key = [1, 2, 3, 4];
/// let mut expected = vec![0xa5; 1000];
/// apply_mask_naive(&mut expected, key, 1);
/// for path in MaskPath::available() {
///     let mut buf = vec![0xa5; 1000];
///     path.apply(&mut buf, key, 1);
///     assert_eq!(buf, expected, "{}", path.name());
/// }
/// println!("this CPU masks with {}", MaskPath::chosen().name());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskPath(Level);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    /// Eight bytes at a time in plain Rust.
    Words,
    #[cfg(target_arch = "x86_64")]
    Sse2,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl MaskPath {
    /// Every path this CPU can run, narrowest first.
    pub fn available() -> Vec<MaskPath> {
        let mut paths = vec![MaskPath(Level::Words)];
        #[cfg(target_arch = "x86_64")]
        {
            paths.push(MaskPath(Level::Sse2));
            let best = x86::detect();
            if best >= Level::Avx2 {
                paths.push(MaskPath(Level::Avx2));
            }
            if best >= Level::Avx512 {
                paths.push(MaskPath(Level::Avx512));
            }
        }
        paths
    }

    /// The path [`apply_mask`] uses on this CPU for payloads long enough to need a vector
    /// unit (shorter ones are XORed a word at a time, with no dispatch).
    pub fn chosen() -> MaskPath {
        #[cfg(target_arch = "x86_64")]
        return MaskPath(x86::detect());
        #[cfg(not(target_arch = "x86_64"))]
        MaskPath(Level::Words)
    }

    /// A short name: `words`, `sse2`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Level::Words => "words",
            #[cfg(target_arch = "x86_64")]
            Level::Sse2 => "sse2",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => "avx512",
        }
    }

    /// [`apply_mask`] through this path, whatever the length.
    pub fn apply(self, buf: &mut [u8], key: [u8; 4], offset: usize) {
        let key = rotate(key, offset);
        match self.0 {
            Level::Words => mask_words(buf, key),
            #[cfg(target_arch = "x86_64")]
            level => x86::apply_level(level, buf, key),
        }
    }
}

/// The key as seen from `offset` bytes into the payload: a rotation of the four bytes,
/// done as one 32-bit rotate (byte 0 of the result is byte `offset % 4` of the key).
#[inline]
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    u32::from_le_bytes(key)
        .rotate_right(8 * (offset & 3) as u32)
        .to_le_bytes()
}

/// Eight bytes at a time, then four, then byte by byte; `key` is already rotated to
/// `buf[0]`. Every step but the last consumes a multiple of four bytes, so the key's phase
/// never changes.
#[inline]
fn mask_words(buf: &mut [u8], key: [u8; 4]) {
    let mut chunks = buf.chunks_exact_mut(8);
    // The key twice over, in memory order whatever the endianness (the two halves are
    // equal, so which one is "high" does not matter).
    let narrow = u32::from_ne_bytes(key);
    let wide = (u64::from(narrow) << 32) | u64::from(narrow);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let masked = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    let mut rest = chunks.into_remainder();
    if rest.len() >= 4 {
        let (word, tail) = rest.split_at_mut(4);
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u32::from_ne_bytes(bytes) ^ narrow).to_ne_bytes());
        rest = tail;
    }
    for (byte, k) in rest.iter_mut().zip(key) {
        *byte ^= k;
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    //! The vector paths. Every `unsafe` block here is one of two kinds: a load or store
    //! through a pointer into `buf` whose whole extent lies inside `buf` (each says why), or
    //! a call to a `#[target_feature]` function after [`detect`] has found that feature.
    use super::{mask_words, Level};
    use std::arch::x86_64::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// The level found by [`detect`], as `level + 1`; 0 until the first detection.
    static DETECTED: AtomicU8 = AtomicU8::new(0);

    /// The widest level this CPU supports, detected once and cached.
    pub(super) fn detect() -> Level {
        match DETECTED.load(Ordering::Relaxed) {
            1 => Level::Sse2,
            2 => Level::Avx2,
            3 => Level::Avx512,
            _ => {
                let level = if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                {
                    Level::Avx512
                } else if std::arch::is_x86_feature_detected!("avx2") {
                    Level::Avx2
                } else {
                    Level::Sse2
                };
                let code = match level {
                    Level::Avx512 => 3,
                    Level::Avx2 => 2,
                    _ => 1,
                };
                // Racing threads store the same value.
                DETECTED.store(code, Ordering::Relaxed);
                level
            }
        }
    }

    /// The widest path this CPU has.
    #[inline]
    pub(super) fn apply_best(buf: &mut [u8], key: [u8; 4]) {
        apply_level(detect(), buf, key)
    }

    /// `level` must come from [`detect`] (directly, or no wider than it): it is only ever
    /// handed out by [`super::MaskPath::available`] and [`super::MaskPath::chosen`].
    pub(super) fn apply_level(level: Level, buf: &mut [u8], key: [u8; 4]) {
        match level {
            Level::Words => mask_words(buf, key),
            Level::Sse2 => mask_sse2(buf, key),
            // SAFETY: `detect` found AVX2 (see above).
            Level::Avx2 => unsafe { mask_avx2(buf, key) },
            // SAFETY: `detect` found AVX-512F and AVX-512BW.
            Level::Avx512 => unsafe { mask_avx512(buf, key) },
        }
    }

    /// SSE2 is part of x86-64 itself: no detection needed.
    #[inline]
    fn mask_sse2(buf: &mut [u8], key: [u8; 4]) {
        // SAFETY: SSE2 is part of x86-64, so this CPU has it; no memory is touched.
        let wide = unsafe { _mm_set1_epi32(i32::from_ne_bytes(key)) };
        let mut chunks = buf.chunks_exact_mut(16);
        for chunk in &mut chunks {
            let ptr = chunk.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `chunk` is 16 bytes; unaligned load and store.
            unsafe { _mm_storeu_si128(ptr, _mm_xor_si128(_mm_loadu_si128(ptr), wide)) };
        }
        // A multiple of 16 bytes was consumed, so the key's phase is unchanged.
        mask_words(chunks.into_remainder(), key);
    }

    /// Bytes to skip so that `ptr` lands on a multiple of `align`, at most `len`.
    #[inline]
    fn head_len(ptr: *const u8, align: usize, len: usize) -> usize {
        ptr.align_offset(align).min(len)
    }

    /// 128 bytes per iteration (four 32-byte registers), stores aligned to 32 bytes so
    /// that none splits a cache line.
    #[target_feature(enable = "avx2")]
    fn mask_avx2(buf: &mut [u8], key: [u8; 4]) {
        let head = head_len(buf.as_ptr(), 32, buf.len());
        let (front, body) = buf.split_at_mut(head);
        mask_sse2(front, key);
        let key = super::rotate(key, head);
        let wide = _mm256_set1_epi32(i32::from_ne_bytes(key));
        let mut blocks = body.chunks_exact_mut(128);
        for block in &mut blocks {
            let ptr = block.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `block` is 128 bytes: four 32-byte lanes at ptr, ptr+1, ptr+2, ptr+3.
            unsafe {
                let a = _mm256_xor_si256(_mm256_loadu_si256(ptr), wide);
                let b = _mm256_xor_si256(_mm256_loadu_si256(ptr.add(1)), wide);
                let c = _mm256_xor_si256(_mm256_loadu_si256(ptr.add(2)), wide);
                let d = _mm256_xor_si256(_mm256_loadu_si256(ptr.add(3)), wide);
                _mm256_storeu_si256(ptr, a);
                _mm256_storeu_si256(ptr.add(1), b);
                _mm256_storeu_si256(ptr.add(2), c);
                _mm256_storeu_si256(ptr.add(3), d);
            }
        }
        let mut lanes = blocks.into_remainder().chunks_exact_mut(32);
        for lane in &mut lanes {
            let ptr = lane.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `lane` is 32 bytes.
            unsafe { _mm256_storeu_si256(ptr, _mm256_xor_si256(_mm256_loadu_si256(ptr), wide)) };
        }
        // Multiples of 32 were consumed since `head`: the phase is `key`'s.
        mask_sse2(lanes.into_remainder(), key);
    }

    /// 256 bytes per iteration (four 64-byte registers), stores aligned to 64 bytes (one
    /// cache line each), and the last partial register under a byte mask.
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    fn mask_avx512(buf: &mut [u8], key: [u8; 4]) {
        let head = head_len(buf.as_ptr(), 64, buf.len());
        let (front, body) = buf.split_at_mut(head);
        let wide = _mm512_set1_epi32(i32::from_ne_bytes(key));
        if head > 0 {
            // SAFETY: the mask selects the first `head` (< 64) bytes of `front`, which is
            // exactly `head` bytes long; masked-off bytes are neither read nor written.
            unsafe { xor_masked(front.as_mut_ptr(), head, wide) };
        }
        let key = super::rotate(key, head);
        let wide = _mm512_set1_epi32(i32::from_ne_bytes(key));
        let mut blocks = body.chunks_exact_mut(256);
        for block in &mut blocks {
            let ptr = block.as_mut_ptr().cast::<__m512i>();
            // SAFETY: `block` is 256 bytes: four 64-byte lanes at ptr .. ptr+3.
            unsafe {
                let a = _mm512_xor_si512(_mm512_loadu_si512(ptr), wide);
                let b = _mm512_xor_si512(_mm512_loadu_si512(ptr.add(1)), wide);
                let c = _mm512_xor_si512(_mm512_loadu_si512(ptr.add(2)), wide);
                let d = _mm512_xor_si512(_mm512_loadu_si512(ptr.add(3)), wide);
                _mm512_storeu_si512(ptr, a);
                _mm512_storeu_si512(ptr.add(1), b);
                _mm512_storeu_si512(ptr.add(2), c);
                _mm512_storeu_si512(ptr.add(3), d);
            }
        }
        let mut lanes = blocks.into_remainder().chunks_exact_mut(64);
        for lane in &mut lanes {
            let ptr = lane.as_mut_ptr().cast::<__m512i>();
            // SAFETY: `lane` is 64 bytes.
            unsafe { _mm512_storeu_si512(ptr, _mm512_xor_si512(_mm512_loadu_si512(ptr), wide)) };
        }
        let rest = lanes.into_remainder();
        if !rest.is_empty() {
            // SAFETY: `rest` is under 64 bytes and the mask selects exactly its length.
            unsafe { xor_masked(rest.as_mut_ptr(), rest.len(), wide) };
        }
    }

    /// XORs the first `len` (< 64) bytes at `ptr` with `wide`, touching no byte past them.
    ///
    /// # Safety
    ///
    /// `ptr..ptr + len` must be valid for reads and writes, and the CPU must have
    /// AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn xor_masked(ptr: *mut u8, len: usize, wide: __m512i) {
        debug_assert!(len < 64);
        let mask: __mmask64 = (1u64 << len) - 1;
        // SAFETY: by the caller's contract; masked lanes are not accessed (AVX-512
        // masked loads and stores suppress faults on them).
        unsafe {
            let v = _mm512_maskz_loadu_epi8(mask, ptr.cast());
            _mm512_mask_storeu_epi8(ptr.cast(), mask, _mm512_xor_si512(v, wide));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(data: &[u8], key: [u8; 4], offset: usize) -> Vec<u8> {
        let mut out = data.to_vec();
        apply_mask_naive(&mut out, key, offset);
        out
    }

    /// Which paths run here, so a machine without AVX-512 says it did not test it.
    #[test]
    fn paths_on_this_machine() {
        let names: Vec<_> = MaskPath::available()
            .into_iter()
            .map(MaskPath::name)
            .collect();
        eprintln!(
            "mask paths tested here: {names:?}; chosen: {}",
            MaskPath::chosen().name()
        );
        assert!(names.contains(&MaskPath::chosen().name()));
    }

    proptest! {
        #[test]
        fn fast_mask_equals_naive(data in proptest::collection::vec(any::<u8>(), 0..300),
                                  key in any::<[u8; 4]>(), offset in 0usize..16) {
            let mut fast = data.clone();
            apply_mask(&mut fast, key, offset);
            prop_assert_eq!(fast, naive(&data, key, offset));
        }

        /// Every path, at every start alignment (the vector paths align their stores, so
        /// the head before the first aligned address is a path of its own), with lengths
        /// that cross each loop's block size.
        #[test]
        fn every_path_equals_naive(data in proptest::collection::vec(any::<u8>(), 0..1200),
                                   start in 0usize..64, key in any::<[u8; 4]>(),
                                   offset in 0usize..8) {
            let start = start.min(data.len());
            let expected = naive(&data[start..], key, offset);
            for path in MaskPath::available() {
                let mut buf = data.clone();
                path.apply(&mut buf[start..], key, offset);
                prop_assert_eq!(&buf[..start], &data[..start], "{} wrote before its slice", path.name());
                prop_assert_eq!(&buf[start..], &expected[..], "path {}", path.name());
            }
        }

        #[test]
        fn unmasking_with_the_ascii_check_equals_naive(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            ascii in proptest::collection::vec(0u8..0x80, 0..200),
            key in any::<[u8; 4]>(),
        ) {
            // Random bytes (mostly not ASCII once unmasked) and masked ASCII text.
            let mut text = ascii.clone();
            apply_mask_naive(&mut text, key, 0);
            for input in [data, text] {
                let mut buf = input.clone();
                let is_ascii = unmask_checking_ascii(&mut buf, key);
                let expected = naive(&input, key, 0);
                prop_assert_eq!(is_ascii, expected.is_ascii());
                prop_assert_eq!(buf, expected);
            }
        }

        #[test]
        fn masking_in_pieces_equals_masking_whole(data in proptest::collection::vec(any::<u8>(), 0..600),
                                                   key in any::<[u8; 4]>(), cut in 0usize..600) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, pieces);
        }
    }

    #[test]
    fn every_length_and_alignment_up_to_300_matches() {
        let data: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
        for path in MaskPath::available() {
            for start in 0..64 {
                for len in 0..300 {
                    let mut buf = data.clone();
                    path.apply(&mut buf[start..start + len], [1, 2, 3, 4], 3);
                    let expected = naive(&data[start..start + len], [1, 2, 3, 4], 3);
                    assert_eq!(
                        &buf[start..start + len],
                        &expected[..],
                        "{} start {start} len {len}",
                        path.name()
                    );
                    assert_eq!(
                        &buf[..start],
                        &data[..start],
                        "{} wrote before",
                        path.name()
                    );
                    assert_eq!(
                        &buf[start + len..],
                        &data[start + len..],
                        "{} wrote past",
                        path.name()
                    );
                }
            }
        }
    }

    #[test]
    fn a_large_payload_matches_on_every_path() {
        let data: Vec<u8> = (0..(1u32 << 20) + 77)
            .map(|i| (i ^ (i >> 8)) as u8)
            .collect();
        let expected = naive(&data[5..], [0x37, 0xfa, 0x21, 0x3d], 1);
        for path in MaskPath::available() {
            let mut buf = data.clone();
            path.apply(&mut buf[5..], [0x37, 0xfa, 0x21, 0x3d], 1);
            assert!(buf[5..] == expected[..], "path {}", path.name());
        }
    }
}
