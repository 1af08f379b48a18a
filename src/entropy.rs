//! Unpredictable bytes for what a client must not let anyone guess: the
//! masking key of every frame it sends (RFC 6455 §5.3) and the
//! `Sec-WebSocket-Key` of its handshake (§4.1).
//!
//! Each thread keeps a small pool filled from the operating system's
//! generator, so masking a frame costs a copy of four bytes, not a system
//! call.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};

/// Bytes fetched from the OS at a time: 64 masking keys.
const POOL: usize = 256;

struct Pool {
    bytes: [u8; POOL],
    /// Bytes of `bytes` already handed out.
    used: usize,
}

thread_local! {
    static POOL_OF_THREAD: RefCell<Pool> = const {
        RefCell::new(Pool { bytes: [0; POOL], used: POOL })
    };
}

/// Fills `out` with random bytes.
pub(crate) fn fill(out: &mut [u8]) {
    POOL_OF_THREAD.with(|pool| {
        let Ok(mut pool) = pool.try_borrow_mut() else {
            refill(out);
            return;
        };
        let mut out = out;
        while !out.is_empty() {
            if pool.used == POOL {
                refill(&mut pool.bytes);
                pool.used = 0;
            }
            let take = out.len().min(POOL - pool.used);
            let (head, rest) = out.split_at_mut(take);
            head.copy_from_slice(&pool.bytes[pool.used..pool.used + take]);
            pool.used += take;
            out = rest;
        }
    });
}

/// A fresh masking key.
pub(crate) fn mask_key() -> [u8; 4] {
    let mut key = [0; 4];
    fill(&mut key);
    key
}

/// Fills `buf` from the OS. Should the OS fail us, SipHash keyed from the
/// process's random hasher seed stands in: still unpredictable to a peer.
fn refill(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    let seed = std::collections::hash_map::RandomState::new();
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut hasher = seed.build_hasher();
        hasher.write_usize(i);
        chunk.copy_from_slice(&hasher.finish().to_ne_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_across_a_pool_refill() {
        let keys: Vec<[u8; 4]> = (0..3 * POOL / 4).map(|_| mask_key()).collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        // 192 random 32-bit keys: a repeat has odds of about 4 in a million.
        assert!(
            distinct.len() >= keys.len() - 1,
            "{} distinct",
            distinct.len()
        );
        assert!(keys.iter().any(|k| *k != [0; 4]));
    }

    #[test]
    fn fill_spans_refills() {
        let mut big = [0u8; 3 * POOL + 7];
        fill(&mut big);
        assert!(big.chunks(64).all(|chunk| chunk.iter().any(|&b| b != 0)));
    }
}
