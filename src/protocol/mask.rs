//! Payload masking (RFC 6455 §5.3).
//!
//! Every frame a client sends is XOR-ed with a 4-byte key. Unmasking runs over
//! every byte a server receives, so it is written to let the compiler use the
//! widest registers it has: the body is processed in 32-byte blocks against a
//! pre-rotated key, which LLVM turns into SIMD XORs without any `unsafe`.
//! [`apply_mask_scalar`] is the byte-at-a-time reference the fast path is
//! tested against.

/// Width of one block of the fast path.
const BLOCK: usize = 32;

/// XORs `buf` with `mask`, as if `buf` started `offset` bytes into the payload.
///
/// `offset` lets a payload be unmasked piece by piece as it arrives: the key
/// byte used for `buf[i]` is `mask[(offset + i) % 4]`.
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mask = rotate(mask, offset);
    let mut blocks = buf.chunks_exact_mut(BLOCK);
    if blocks.len() > 0 {
        let wide = widen(mask);
        for block in &mut blocks {
            for (byte, key) in block.iter_mut().zip(wide.iter()) {
                *byte ^= key;
            }
        }
    }
    // Blocks and words are multiples of 4 bytes, so each tail starts on key byte 0.
    let mut words = blocks.into_remainder().chunks_exact_mut(4);
    let key = u32::from_ne_bytes(mask);
    for word in &mut words {
        let value = u32::from_ne_bytes([word[0], word[1], word[2], word[3]]) ^ key;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    apply_mask_scalar(words.into_remainder(), mask, 0);
}

/// Byte-at-a-time masking: the reference for [`apply_mask`].
#[inline]
pub fn apply_mask_scalar(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) & 3];
    }
}

/// The key as it applies to a buffer starting `offset` bytes into the payload.
fn rotate(mask: [u8; 4], offset: usize) -> [u8; 4] {
    // Byte i of the result is mask[(offset + i) % 4]: in little-endian order
    // that is a right rotation by whole bytes.
    let shift = 8 * (offset & 3) as u32;
    u32::from_le_bytes(mask).rotate_right(shift).to_le_bytes()
}

/// The 4-byte key repeated over one block.
fn widen(mask: [u8; 4]) -> [u8; BLOCK] {
    let mut wide = [0u8; BLOCK];
    for (i, key) in wide.iter_mut().enumerate() {
        *key = mask[i & 3];
    }
    wide
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn matches_scalar_on_misaligned_odd_buffers() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let backing = pattern(4096 + 64);
        for start in 0..9 {
            for len in [0, 1, 3, 4, 5, 31, 32, 33, 63, 64, 65, 127, 1000, 4095] {
                for offset in 0..5 {
                    let mut fast = backing[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    apply_mask(&mut fast, mask, offset);
                    apply_mask_scalar(&mut slow, mask, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn masking_twice_restores_the_payload() {
        let original = pattern(1001);
        let mut buf = original.clone();
        apply_mask(&mut buf, [1, 2, 3, 4], 0);
        assert_ne!(buf, original);
        apply_mask(&mut buf, [1, 2, 3, 4], 0);
        assert_eq!(buf, original);
    }

    #[test]
    fn piecewise_equals_whole() {
        let mask = [0xde, 0xad, 0xbe, 0xef];
        let original = pattern(777);
        let mut whole = original.clone();
        apply_mask(&mut whole, mask, 0);
        let mut pieces = original.clone();
        let mut at = 0;
        for cut in [1, 2, 33, 70, 300, 777] {
            apply_mask(&mut pieces[at..cut], mask, at);
            at = cut;
        }
        assert_eq!(whole, pieces);
    }

    #[test]
    fn rfc_example() {
        // RFC 6455 §5.7: a masked "Hello".
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }
}
