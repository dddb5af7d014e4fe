//! Payload masking (RFC 6455 §5.3): `payload[i] ^= key[(offset + i) % 4]`.
//!
//! Masking runs over every byte a client sends and a server receives, so it must run at
//! memory speed. The fast path XORs eight bytes at a time with a 64-bit key in safe Rust,
//! which the compiler vectorises; `apply_mask_naive` is the reference it is tested against.

/// XORs `buf` with `key`, as if `buf` started `offset` bytes into the masked payload.
///
/// `offset` lets a payload be unmasked piece by piece as it arrives.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let rotated = rotate(key, offset);
    let mut chunks = buf.chunks_exact_mut(8);
    let wide = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let masked = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i & 3];
    }
}

/// The byte-at-a-time definition from the RFC; the oracle for [`apply_mask`].
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) & 3];
    }
}

#[inline]
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = key;
    rotated.rotate_left(offset & 3);
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_mask_equals_naive(data in proptest::collection::vec(any::<u8>(), 0..300),
                                  key in any::<[u8; 4]>(), offset in 0usize..16) {
            let mut fast = data.clone();
            let mut naive = data.clone();
            apply_mask(&mut fast, key, offset);
            apply_mask_naive(&mut naive, key, offset);
            prop_assert_eq!(fast, naive);
        }

        #[test]
        fn masking_in_pieces_equals_masking_whole(data in proptest::collection::vec(any::<u8>(), 0..300),
                                                   key in any::<[u8; 4]>(), cut in 0usize..300) {
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
    fn every_length_up_to_64_matches() {
        for len in 0..64 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            let mut naive = data;
            apply_mask(&mut fast, [1, 2, 3, 4], 3);
            apply_mask_naive(&mut naive, [1, 2, 3, 4], 3);
            assert_eq!(fast, naive, "length {len}");
        }
    }
}
