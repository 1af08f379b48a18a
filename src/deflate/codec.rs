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

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateFailure {
    /// It inflates to more than the limit.
    TooBig,
    /// It is not valid deflate data.
    Invalid,
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

    /// Inflates one message, failing as soon as it grows past `limit` bytes.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, InflateFailure> {
        match self {
            Self::Shared => SHARED_INFLATE.with(|shared| {
                let mut shared = shared
                    .try_borrow_mut()
                    .map_err(|_| InflateFailure::Invalid)?;
                let inflate = shared.get_or_insert_with(|| Box::new(Inflate::new(false, 15)));
                let result = inflate_message(inflate, input, limit);
                inflate.reset(false);
                result
            }),
            Self::Dedicated {
                state,
                window,
                takeover,
            } => {
                let inflate = state.get_or_insert_with(|| Box::new(Inflate::new(false, *window)));
                let result = inflate_message(inflate, input, limit);
                if !*takeover || result.is_err() {
                    // Resetting restores the full window, which inflates any sender.
                    inflate.reset(false);
                }
                result
            }
        }
    }
}

fn inflate_message(
    inflate: &mut Inflate,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, InflateFailure> {
    let mut out = Vec::new();
    let mut written = 0;
    for part in [input, &TAIL[..]] {
        inflate_part(inflate, part, limit, &mut out, &mut written)?;
    }
    out.truncate(written);
    Ok(out)
}

/// Feeds `input` through, growing `out` (never past `limit + 1` bytes).
fn inflate_part(
    inflate: &mut Inflate,
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    written: &mut usize,
) -> Result<(), InflateFailure> {
    let mut read = 0;
    loop {
        if *written == out.len() {
            let room = (limit + 1 - *written).min(CHUNK.max(*written));
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
        let done = read == input.len() && *written < out.len();
        if done || status == Status::StreamEnd {
            return Ok(());
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
}
