//! Streaming UTF-8 validation for text messages.
//!
//! A text message may arrive as many fragments, and one frame may arrive in
//! many reads. [`Utf8Validator`] checks each piece as it comes, so a bad byte
//! fails the connection at once (RFC 6455 §8.1, Autobahn 6.4.*) instead of
//! after the whole message was buffered. A code point split across pieces is
//! carried over in at most three bytes.

use simdutf8::compat::from_utf8;

/// The bytes are not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8 in a text message")]
pub struct InvalidUtf8;

/// Validates UTF-8 fed in arbitrary pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// The start of a code point that the last piece cut off.
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Self {
            partial: [0; 4],
            partial_len: 0,
        }
    }

    /// Checks the next piece; fails as soon as a byte can no longer be part of
    /// valid UTF-8, whatever follows.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let used = self.complete_partial(input)?;
            input = &input[used..];
            if self.partial_len > 0 {
                return Ok(());
            }
        }
        match from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &input[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the message: a code point still cut off is an error.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.partial_len > 0;
        self.partial_len = 0;
        if incomplete { Err(InvalidUtf8) } else { Ok(()) }
    }

    /// Adds bytes from `input` to the carried-over code point; returns how many
    /// it took. `partial_len` drops to 0 once the code point is complete.
    fn complete_partial(&mut self, input: &[u8]) -> Result<usize, InvalidUtf8> {
        let have = usize::from(self.partial_len);
        let want = sequence_len(self.partial[0]);
        let take = (want - have).min(input.len());
        self.partial[have..have + take].copy_from_slice(&input[..take]);
        let now = have + take;
        match from_utf8(&self.partial[..now]) {
            Ok(_) => self.partial_len = 0,
            Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
            Err(_) => self.partial_len = now as u8,
        }
        Ok(take)
    }
}

/// Length of the sequence a (valid) lead byte starts.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        _ => 2,
    }
}

/// Validates a complete piece of text in one call.
pub fn validate(bytes: &[u8]) -> Result<&str, InvalidUtf8> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(bytes: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            v.feed(&bytes[at..cut])?;
            at = cut;
        }
        v.finish()
    }

    #[test]
    fn accepts_code_points_split_anywhere() {
        let text = "κόσμε €𝄞 aé".as_bytes();
        for a in 0..=text.len() {
            for b in a..=text.len() {
                assert_eq!(feed_split(text, &[a, b]), Ok(()), "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let text = "Hello-µ@ßöäüàá-UTF-8!! 𝄞".as_bytes();
        let cuts: Vec<usize> = (1..text.len()).collect();
        assert_eq!(feed_split(text, &cuts), Ok(()));
    }

    #[test]
    fn fails_on_the_first_bad_piece() {
        // Autobahn 6.4.1: valid prefix, then a code point beyond U+10FFFF.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed("κόσμε".as_bytes()), Ok(()));
        assert_eq!(v.feed(&[0xf4, 0x90, 0x80, 0x80]), Err(InvalidUtf8));
    }

    #[test]
    fn fails_fast_inside_a_split_code_point() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[b'a', 0xf4]), Ok(()));
        // 0xf4 0x90 can never start a valid sequence: fail without waiting.
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_code_point_at_end_is_an_error() {
        assert_eq!(feed_split(&[0xe2, 0x82], &[1]), Err(InvalidUtf8));
    }

    #[test]
    fn rejects_surrogates_and_overlongs() {
        for bad in [
            &[0xed, 0xa0, 0x80][..],
            &[0xc0, 0xaf],
            &[0xe0, 0x80, 0xaf],
            &[0xff],
        ] {
            for cut in 0..=bad.len() {
                assert_eq!(
                    feed_split(bad, &[cut]),
                    Err(InvalidUtf8),
                    "{bad:x?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn finish_resets_for_the_next_message() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xe2]), Ok(()));
        assert_eq!(v.finish(), Err(InvalidUtf8));
        assert_eq!(v.feed(b"ok"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }
}
