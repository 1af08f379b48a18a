//! The streaming UTF-8 validator against std, under splits the input picks.
//!
//! Input: a count `n` (mod 8), `n` cut positions (scaled to the text), the
//! text. After each piece the validator must fail exactly when std finds
//! bytes that no continuation can make valid; at the end it must accept
//! exactly what std accepts.
//!
//! `cargo +nightly fuzz run utf8`
#![no_main]

use libfuzzer_sys::fuzz_target;
use wshub::protocol::utf8::{Utf8Validator, validate};

fuzz_target!(|input: &[u8]| {
    let [count, rest @ ..] = input else {
        return;
    };
    let count = usize::from(count % 8).min(rest.len());
    let (cuts, text) = rest.split_at(count);
    let mut ends: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) * text.len() / 255)
        .collect();
    ends.push(text.len());
    ends.sort_unstable();

    let whole = std::str::from_utf8(text);
    assert_eq!(validate(text).is_ok(), whole.is_ok());

    let mut validator = Utf8Validator::new();
    let mut start = 0;
    for end in ends {
        let fed = validator.feed(&text[start..end]);
        let broken = std::str::from_utf8(&text[..end]).is_err_and(|e| e.error_len().is_some());
        assert_eq!(fed.is_err(), broken, "after {end} bytes of {text:x?}");
        if broken {
            return;
        }
        start = end;
    }
    assert_eq!(validator.finish().is_ok(), whole.is_ok());
});
