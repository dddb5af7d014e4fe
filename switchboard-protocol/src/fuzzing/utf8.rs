//! The UTF-8 target: the incremental validator against `std::str::from_utf8`.

use super::ChunkSizes;
use crate::utf8::Utf8Validator;

/// [`Utf8Validator`] fed arbitrary bytes in pieces (the first byte seeds the cuts), checked
/// against `std::str::from_utf8` after every piece: it must fail exactly when the prefix
/// so far cannot begin any valid UTF-8 (fail fast, §8.1), and finish exactly on valid input.
pub fn utf8(data: &[u8]) {
    let [seed, text @ ..] = data else { return };
    let mut sizes = ChunkSizes::new(*seed);
    let mut validator = Utf8Validator::new();
    let mut fed = 0;
    while fed < text.len() {
        let end = (fed + sizes.next()).min(text.len());
        let result = validator.feed(&text[fed..end]);
        fed = end;
        let doomed = matches!(std::str::from_utf8(&text[..fed]), Err(e) if e.error_len().is_some());
        assert_eq!(
            result.is_err(),
            doomed,
            "feed gave {result:?} after {fed} bytes"
        );
        if doomed {
            return;
        }
    }
    assert_eq!(
        validator.finish().is_ok(),
        std::str::from_utf8(text).is_ok(),
        "finish disagrees with std"
    );
}
