//! Inflating `permessage-deflate` messages from any bytes.
//!
//! Input: a settings byte (inflater kind, window, context), a 2-byte limit,
//! then messages, each a 2-byte little-endian length and its bytes.
//! Inflating must never return more than the limit, and each message
//! compressed by the shared compressor must inflate back to itself.
//!
//! `cargo +nightly fuzz run inflate`
#![no_main]

use libfuzzer_sys::fuzz_target;
use wshub::fuzz::{InflateError, Inflater, compress_shared, inflate};

fuzz_target!(|input: &[u8]| {
    let [settings, lo, hi, rest @ ..] = input else {
        return;
    };
    let mut rest = rest;
    let limit = usize::from(u16::from_le_bytes([*lo, *hi]));
    let window = 9 + settings % 7;
    let dedicated = settings & 0x08 != 0;
    let takeover = settings & 0x10 != 0;
    let mut inflater = Inflater::new(dedicated, window, takeover);
    while let &[a, b, ref after @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([a, b])).min(after.len());
        let (message, after) = after.split_at(len);
        rest = after;

        if let Ok(inflated) = inflater.inflate(message, limit) {
            assert!(inflated.len() <= limit);
        }
        if let Ok(inflated) = inflate(message, limit) {
            assert!(inflated.len() <= limit);
        }

        let compressed = compress_shared(window, message).expect("zlib compresses");
        match inflate(&compressed, limit) {
            Ok(inflated) => assert_eq!(inflated, message),
            Err(error) => {
                assert_eq!(error, InflateError::TooBig);
                assert!(message.len() > limit);
            }
        }
    }
});
