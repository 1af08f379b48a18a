//! Compressing and inflating one message (RFC 7692 §7.2), with zlib-rs.
//!
//! A message is raw deflate ended by a sync flush whose `00 00 ff ff` tail
//! is left off on the wire; the receiver adds it back before inflating.

use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use zlib_rs::{
    Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Method, Status, Strategy,
};

use crate::protocol::{InflateFailure, InflateMessage};

/// What a sync flush ends with.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Output grows by at least this much at a time while inflating.
const CHUNK: usize = 16 * 1024;
/// zlib's default level, as uWebSockets uses.
const LEVEL: i32 = -1;

/// A raw-deflate compressor with `window` bits and `mem_level`.
fn new_deflate(window: u8, mem_level: u8) -> Box<Deflate> {
    Box::new(Deflate::new_with_config(DeflateConfig {
        level: LEVEL,
        method: Method::Deflated,
        window_bits: -i32::from(window),
        mem_level: i32::from(mem_level),
        strategy: Strategy::Default,
    }))
}

/// Compresses one message: the payload of a frame with RSV1 set.
///
/// Output goes through a fixed scratch buffer, so the result holds only the
/// bytes it needs, whatever the input size.
fn compress(deflate: &mut Deflate, input: &[u8]) -> Option<Bytes> {
    let mut scratch = [0u8; CHUNK];
    let mut out = Vec::new();
    let mut read = 0;
    loop {
        let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
        deflate
            .compress(&input[read..], &mut scratch, DeflateFlush::SyncFlush)
            .ok()?;
        read += usize::try_from(deflate.total_in() - in_before).ok()?;
        let gave = usize::try_from(deflate.total_out() - out_before).ok()?;
        out.extend_from_slice(&scratch[..gave]);
        // A sync flush is complete once all input is in and output space is left.
        if read == input.len() && gave < scratch.len() {
            break;
        }
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    if out.is_empty() {
        // Nothing to flush (an empty message right after another): send an
        // empty stored block's first byte, so that the tail the receiver
        // appends completes a block (RFC 7692 §7.2.3.6).
        out.push(0x00);
    }
    out.shrink_to_fit();
    Some(Bytes::from(out))
}

thread_local! {
    /// The shared compressors of this thread, one per window size (9 to 15
    /// bits), reset after every message.
    static SHARED: RefCell<[Option<Box<Deflate>>; 7]> = const { RefCell::new([None, None, None, None, None, None, None]) };
}

/// Compresses one message with this thread's shared compressor for `window`
/// bits, keeping no context. `None` if zlib fails (then send it plain).
pub(crate) fn compress_shared(window: u8, input: &[u8]) -> Option<Bytes> {
    let window = window.clamp(9, 15);
    SHARED.with(|shared| {
        let mut shared = shared.try_borrow_mut().ok()?;
        let deflate = shared[usize::from(window - 9)].get_or_insert_with(|| new_deflate(window, 8));
        let compressed = compress(deflate, input);
        deflate.reset();
        compressed
    })
}

/// A socket's own compressor, created on its first compressed message.
pub(crate) struct Deflater {
    state: Mutex<Option<Box<Deflate>>>,
    window: u8,
    mem_level: u8,
    takeover: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("window", &self.window)
            .field("mem_level", &self.mem_level)
            .field("takeover", &self.takeover)
            .finish_non_exhaustive()
    }
}

/// A locked [`Deflater`]: hold it until the compressed frame is queued, so
/// frames leave in the order their context saw them.
pub(crate) struct DeflaterGuard<'a> {
    deflater: &'a Deflater,
    state: MutexGuard<'a, Option<Box<Deflate>>>,
}

impl Deflater {
    pub(crate) fn new(window: u8, mem_level: u8, takeover: bool) -> Self {
        Self {
            state: Mutex::new(None),
            window: window.clamp(9, 15),
            mem_level: mem_level.clamp(1, 9),
            takeover,
        }
    }

    pub(crate) fn lock(&self) -> DeflaterGuard<'_> {
        DeflaterGuard {
            deflater: self,
            state: self.state.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

impl DeflaterGuard<'_> {
    /// Compresses one message; `None` if zlib fails (then send it plain).
    pub(crate) fn compress(&mut self, input: &[u8]) -> Option<Bytes> {
        let Deflater {
            window,
            mem_level,
            takeover,
            ..
        } = *self.deflater;
        let deflate = self
            .state
            .get_or_insert_with(|| new_deflate(window, mem_level));
        let compressed = compress(deflate, input);
        if !takeover || compressed.is_none() {
            deflate.reset();
        }
        compressed
    }
}

thread_local! {
    /// The shared inflater of this thread (full window, reset per message).
    static SHARED_INFLATE: RefCell<Option<Box<Inflate>>> = const { RefCell::new(None) };
}

/// Inflates the messages of one connection.
pub(crate) enum Inflater {
    /// This thread's shared inflater; the client keeps no context.
    Shared,
    /// The connection's own inflater, created on its first compressed message.
    Dedicated {
        state: Option<Box<Inflate>>,
        window: u8,
        takeover: bool,
    },
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shared => f.write_str("Shared"),
            Self::Dedicated {
                window, takeover, ..
            } => f
                .debug_struct("Dedicated")
                .field("window", window)
                .field("takeover", takeover)
                .finish_non_exhaustive(),
        }
    }
}

impl Inflater {
    /// An inflater for a client compressing with `window` bits.
    pub(crate) fn new(dedicated: bool, window: u8, takeover: bool) -> Self {
        if dedicated {
            Self::Dedicated {
                state: None,
                // zlib inflates raw deflate with 9 bits at least; a larger
                // window than the sender's is always safe.
                window: window.clamp(9, 15),
                takeover,
            }
        } else {
            Self::Shared
        }
    }
}

impl InflateMessage for Inflater {
    fn inflate(&mut self, input: &[u8], limit: usize) -> Result<Vec<u8>, InflateFailure> {
        match self {
            Self::Shared => SHARED_INFLATE.with(|shared| {
                let mut shared = shared
                    .try_borrow_mut()
                    .map_err(|_| InflateFailure::Invalid)?;
                let inflate = shared.get_or_insert_with(|| Box::new(Inflate::new(false, 15)));
                let result = inflate_message(inflate, input, limit);
                inflate.reset(false);
                result.map(|inflated| inflated.out)
            }),
            Self::Dedicated {
                state,
                window,
                takeover,
            } => {
                let inflate = state.get_or_insert_with(|| Box::new(Inflate::new(false, *window)));
                let result = inflate_message(inflate, input, limit);
                let ended = result.as_ref().map_or(true, |inflated| inflated.ended);
                if !*takeover || ended {
                    // Resetting restores the full window, which inflates any sender.
                    inflate.reset(false);
                }
                result.map(|inflated| inflated.out)
            }
        }
    }
}

fn inflate_message(
    inflate: &mut Inflate,
    input: &[u8],
    limit: usize,
) -> Result<Inflated, InflateFailure> {
    let mut out = Vec::new();
    let mut written = 0;
    let mut ended = false;
    for part in [input, &TAIL[..]] {
        ended |= inflate_part(inflate, part, limit, &mut out, &mut written)?;
    }
    out.truncate(written);
    Ok(Inflated { out, ended })
}

/// One inflated message, and whether the sender ended its deflate stream
/// (a final block, which RFC 7692 §7.2.3.4 allows): the context is then
/// spent and the next message starts a new stream.
struct Inflated {
    out: Vec<u8>,
    ended: bool,
}

/// Feeds `input` through, growing `out` (never past `limit + 1` bytes);
/// returns whether the deflate stream ended.
///
/// Every pass either grows `out`, or inflates into room it has, or returns:
/// zlib takes input (of which there is a finite amount) or gives output (at
/// most `limit + 1` bytes of it), and a pass that does neither with room to
/// spare fails. So the loop ends, whatever the input and the limit.
fn inflate_part(
    inflate: &mut Inflate,
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    written: &mut usize,
) -> Result<bool, InflateFailure> {
    // One byte past the limit shows that a message is too big. Saturating:
    // `usize::MAX` is a limit a user may set (`max_payload_length`), and
    // `limit + 1` would overflow (a panic, or in release a capacity of 0 and
    // a loop that never ends).
    let capacity = limit.saturating_add(1);
    let mut read = 0;
    loop {
        if *written == out.len() {
            // At least 1: `written <= limit` here (past it we returned), and
            // a `Vec` never holds `usize::MAX` bytes.
            let room = (capacity - *written).min(CHUNK.max(*written));
            out.resize(*written + room, 0);
        }
        let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
        let status = inflate
            .decompress(
                &input[read..],
                &mut out[*written..],
                InflateFlush::SyncFlush,
            )
            .map_err(|_| InflateFailure::Invalid)?;
        let took =
            usize::try_from(inflate.total_in() - in_before).map_err(|_| InflateFailure::Invalid)?;
        let gave = usize::try_from(inflate.total_out() - out_before)
            .map_err(|_| InflateFailure::Invalid)?;
        read += took;
        *written += gave;
        if *written > limit {
            return Err(InflateFailure::TooBig);
        }
        if status == Status::StreamEnd {
            return Ok(true);
        }
        if read == input.len() && *written < out.len() {
            return Ok(false);
        }
        if took == 0 && gave == 0 && *written < out.len() {
            // No progress with room to spare: the data is broken.
            return Err(InflateFailure::Invalid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(deflater: &Deflater, inflater: &mut Inflater, message: &[u8]) {
        let compressed = deflater.lock().compress(message).unwrap();
        assert!(!compressed.ends_with(&TAIL));
        assert_eq!(inflater.inflate(&compressed, 1 << 20).unwrap(), message);
    }

    #[test]
    fn round_trips_with_and_without_context() {
        for takeover in [true, false] {
            let deflater = Deflater::new(15, 8, takeover);
            let mut inflater = Inflater::new(true, 15, takeover);
            for message in [
                &b"Hello, Hello, Hello!"[..],
                b"",
                &[7; 10_000],
                b"Hello again",
            ] {
                round_trip(&deflater, &mut inflater, message);
            }
        }
    }

    #[test]
    fn context_takeover_makes_repeats_smaller() {
        let deflater = Deflater::new(15, 8, true);
        let message = b"a message that repeats itself a message that repeats";
        let first = deflater.lock().compress(message).unwrap();
        let second = deflater.lock().compress(message).unwrap();
        assert!(
            second.len() < first.len(),
            "{} vs {}",
            second.len(),
            first.len()
        );
    }

    #[test]
    fn shared_compression_needs_no_context() {
        let mut inflater = Inflater::new(false, 15, false);
        for window in 9..=15 {
            let message = b"shared shared shared shared".repeat(40);
            let compressed = compress_shared(window, &message).unwrap();
            assert_eq!(inflater.inflate(&compressed, 1 << 20).unwrap(), message);
        }
    }

    #[test]
    fn small_presets_round_trip() {
        for (window, mem) in [(9, 1), (9, 2), (10, 3), (11, 4), (12, 5), (13, 6), (14, 7)] {
            let deflater = Deflater::new(window, mem, true);
            let mut inflater = Inflater::new(true, window, true);
            for _ in 0..3 {
                round_trip(&deflater, &mut inflater, &b"0123456789abcdef".repeat(500));
            }
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 64 << 20];
        let bomb = compress_shared(15, &zeros).unwrap();
        assert!(bomb.len() < 128 * 1024, "{} bytes on the wire", bomb.len());
        let mut inflater = Inflater::new(false, 15, false);
        assert_eq!(
            inflater.inflate(&bomb, 1 << 20),
            Err(InflateFailure::TooBig)
        );
        // The shared inflater is fine for the next message.
        let after = b"after the bomb, after the bomb, after the bomb".repeat(4);
        let ok = compress_shared(15, &after).unwrap();
        assert_eq!(inflater.inflate(&ok, 1 << 20).unwrap(), after);
    }

    #[test]
    fn exactly_the_limit_is_allowed() {
        let message = vec![b'x'; 4096];
        let compressed = compress_shared(15, &message).unwrap();
        let mut inflater = Inflater::new(false, 15, false);
        assert_eq!(inflater.inflate(&compressed, 4096).unwrap().len(), 4096);
        assert_eq!(
            inflater.inflate(&compressed, 4095),
            Err(InflateFailure::TooBig)
        );
    }

    /// `max_payload_length(usize::MAX)` reaches the inflater as the limit:
    /// `limit + 1` overflowed (a panic in debug builds, a loop that never
    /// ended in release ones).
    #[test]
    fn the_largest_limit_inflates() {
        let message = b"no limit, no limit, no limit at all".repeat(1000);
        let compressed = compress_shared(15, &message).unwrap();
        for mut inflater in [
            Inflater::new(false, 15, false),
            Inflater::new(true, 15, true),
        ] {
            assert_eq!(inflater.inflate(&compressed, usize::MAX).unwrap(), message);
            assert_eq!(inflater.inflate(&[0x00], usize::MAX).unwrap(), b"");
            assert_eq!(
                inflater.inflate(&[0xff; 32], usize::MAX),
                Err(InflateFailure::Invalid)
            );
        }
    }

    #[test]
    fn large_messages_round_trip() {
        let big = vec![7u8; 4 << 20];
        let compressed = Deflater::new(15, 8, true).lock().compress(&big).unwrap();
        assert!(compressed.len() < 64 * 1024);
        let mut inflater = Inflater::new(false, 15, false);
        assert_eq!(inflater.inflate(&compressed, 8 << 20).unwrap(), big);
    }

    #[test]
    fn garbage_is_invalid() {
        let mut inflater = Inflater::new(true, 15, true);
        assert_eq!(
            inflater.inflate(&[0xff; 32], 1 << 20),
            Err(InflateFailure::Invalid)
        );
        // And the dedicated inflater recovers for the next message.
        let deflater = Deflater::new(15, 8, true);
        round_trip(&deflater, &mut inflater, b"recovered");
    }

    mod properties {
        use proptest::prelude::*;
        use proptest::sample::Index;
        // Named, so that it wins over zlib's `Strategy` from the glob below.
        use proptest::strategy::Strategy;

        use super::*;

        /// Messages: random bytes, runs of a short pattern, and a block
        /// repeated at distances beyond the small windows.
        fn message() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..2048),
                (prop::collection::vec(any::<u8>(), 1..16), 0usize..40_000)
                    .prop_map(|(pattern, len)| pattern.iter().cycle().take(len).copied().collect()),
                (prop::collection::vec(any::<u8>(), 1..3000), 1usize..6)
                    .prop_map(|(block, times)| block.repeat(times)),
            ]
        }

        /// A sequence drawn from a few messages, so that later ones repeat
        /// earlier ones and a kept context has something to refer to.
        fn conversation() -> impl Strategy<Value = Vec<Vec<u8>>> {
            (
                prop::collection::vec(message(), 1..4),
                prop::collection::vec(any::<Index>(), 1..6),
            )
                .prop_map(|(pool, picks)| picks.iter().map(|i| i.get(&pool).clone()).collect())
        }

        /// A message compressed as a finished stream (BFINAL set) followed
        /// by an empty block's first byte, as RFC 7692 §7.2.3.4 lets a
        /// sender flush.
        fn compress_final(window: u8, input: &[u8]) -> Vec<u8> {
            let mut deflate = new_deflate(window, 8);
            let mut out = vec![0u8; input.len() + input.len() / 8 + 128];
            let status = deflate
                .compress(input, &mut out, DeflateFlush::Finish)
                .unwrap();
            assert_eq!(status, Status::StreamEnd);
            out.truncate(usize::try_from(deflate.total_out()).unwrap());
            out.push(0x00);
            out
        }

        /// Valid compressed data with a few bytes overwritten, cut short or
        /// extended, or anything at all.
        fn hostile() -> impl Strategy<Value = Vec<u8>> {
            let damaged = (
                message(),
                9u8..=15,
                prop::collection::vec((any::<Index>(), any::<u8>()), 0..4),
                any::<Option<Index>>(),
                prop::collection::vec(any::<u8>(), 0..8),
            )
                .prop_map(|(message, window, damage, cut, extra)| {
                    let mut bytes = compress_shared(window, &message).unwrap().to_vec();
                    for (at, byte) in damage {
                        *at.get_mut(&mut bytes) = byte;
                    }
                    if let Some(cut) = cut {
                        bytes.truncate(cut.index(bytes.len() + 1));
                    }
                    bytes.extend(extra);
                    bytes
                });
            prop_oneof![prop::collection::vec(any::<u8>(), 0..512), damaged]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Shared compression inflates with the shared inflater and with
            /// dedicated ones, with or without a kept context.
            #[test]
            fn shared_round_trip(window in 9u8..=15, messages in conversation()) {
                let mut inflaters = [
                    Inflater::new(false, 15, false),
                    Inflater::new(true, window, false),
                    Inflater::new(true, window, true),
                ];
                for message in &messages {
                    let compressed = compress_shared(window, message).unwrap();
                    for inflater in &mut inflaters {
                        prop_assert_eq!(&inflater.inflate(&compressed, 1 << 20).unwrap(), message);
                    }
                }
            }

            /// A dedicated compressor, keeping its context or not, inflates
            /// message after message with the inflater the negotiation gives.
            #[test]
            fn dedicated_round_trip(
                window in 9u8..=15,
                mem_level in 1u8..=9,
                takeover in any::<bool>(),
                messages in conversation(),
            ) {
                let deflater = Deflater::new(window, mem_level, takeover);
                let mut inflater = Inflater::new(true, window, takeover);
                for message in &messages {
                    let compressed = deflater.lock().compress(message).unwrap();
                    prop_assert!(!compressed.ends_with(&TAIL));
                    prop_assert_eq!(&inflater.inflate(&compressed, 1 << 20).unwrap(), message);
                }
            }

            /// A sender that ends each message with a final block is
            /// understood by every inflater that keeps no context.
            #[test]
            fn final_block_round_trip(
                window in 9u8..=15,
                dedicated in any::<bool>(),
                messages in conversation(),
            ) {
                let mut inflater = Inflater::new(dedicated, window, false);
                for message in &messages {
                    let compressed = compress_final(window, message);
                    prop_assert_eq!(&inflater.inflate(&compressed, 1 << 20).unwrap(), message);
                }
            }

            /// The same with a kept context: a final block spends the
            /// context, and the next message starts a fresh stream.
            #[test]
            fn final_block_round_trip_with_context(window in 9u8..=15, messages in conversation()) {
                let mut inflater = Inflater::new(true, window, true);
                for message in &messages {
                    let compressed = compress_final(window, message);
                    prop_assert_eq!(&inflater.inflate(&compressed, 1 << 20).unwrap(), message);
                }
            }

            /// The limit holds to the byte: a message of exactly the limit
            /// inflates, one byte more does not.
            #[test]
            fn limit_is_exact(message in message(), slack in -3isize..=3) {
                let limit = message.len().saturating_add_signed(slack);
                let compressed = compress_shared(15, &message).unwrap();
                let inflated = Inflater::new(false, 15, false).inflate(&compressed, limit);
                if message.len() <= limit {
                    prop_assert_eq!(inflated, Ok(message));
                } else {
                    prop_assert_eq!(inflated, Err(InflateFailure::TooBig));
                }
            }

            /// Whatever a peer sends, inflating neither panics nor returns
            /// more than the limit, and after a failure (which resets the
            /// inflater) a context-free message inflates again.
            #[test]
            fn inflate_is_bounded_on_any_input(
                dedicated in any::<bool>(),
                window in 9u8..=15,
                takeover in any::<bool>(),
                inputs in prop::collection::vec(hostile(), 1..4),
                limit in 0usize..4096,
            ) {
                let mut inflater = Inflater::new(dedicated, window, takeover);
                let mut failed = false;
                for input in &inputs {
                    match inflater.inflate(input, limit) {
                        Ok(inflated) => {
                            prop_assert!(inflated.len() <= limit);
                            failed = false;
                        }
                        Err(_) => failed = true,
                    }
                }
                if failed {
                    let text = b"after a failure";
                    let fresh = compress_shared(window, text).unwrap();
                    prop_assert_eq!(inflater.inflate(&fresh, limit.max(64)), Ok(text.to_vec()));
                }
            }
        }
    }

    /// RFC 7692 §7.2.3.4 lets a sender flush with a final block; its example,
    /// "Hello" in a block with BFINAL set and an empty block's first byte.
    const FINAL_HELLO: [u8; 8] = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];

    #[test]
    fn final_block_without_context_inflates_every_message() {
        for dedicated in [false, true] {
            let mut inflater = Inflater::new(dedicated, 15, false);
            for _ in 0..3 {
                assert_eq!(inflater.inflate(&FINAL_HELLO, 1024).unwrap(), b"Hello");
            }
        }
    }

    /// Found by `final_block_round_trip_with_context`: a dedicated inflater
    /// that keeps its context used to stay at stream end after a final
    /// block and inflate every later message to nothing.
    #[test]
    fn final_block_with_context_starts_a_fresh_stream() {
        let mut inflater = Inflater::new(true, 15, true);
        assert_eq!(inflater.inflate(&FINAL_HELLO, 1024).unwrap(), b"Hello");
        assert_eq!(inflater.inflate(&FINAL_HELLO, 1024).unwrap(), b"Hello");
    }
}
