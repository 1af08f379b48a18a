//! A shared batch of frames: what one topic lane publishes into, read by
//! every subscriber of that lane.
//!
//! Every small frame published to a lane is appended to its open batch,
//! once. A subscriber's outbox holds a *cursor* into the batch: "from here to
//! wherever the batch ends when I write". The cursor stays open while the
//! subscriber writes: taking its range hands out slices of the bytes appended
//! so far (sealing them, without a copy) and moves the cursor to the end, so
//! publishers keep appending without touching any subscriber. The batch
//! counts the open cursors; a publish that finds as many as it has
//! recipients knows every recipient covers the new frame.
//!
//! A subscriber that found nothing new parks its waker here; the next append
//! hands the parked wakers back to the publisher, which wakes them once the
//! locks are released (or at the end of its turn, see [`crate::wake`]).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use bytes::{Bytes, BytesMut};
use foldhash::HashMap;

/// A batch stops taking frames at this size; the next publish starts another.
const MAX_BATCH: usize = 64 * 1024;
/// Initial capacity of a batch.
const INITIAL: usize = 4 * 1024;
/// A batch sealed into this many pieces (one per read that found new bytes)
/// takes no more frames either: a reader's range then spans at most this
/// many slices (one vectored write), finding them costs a short scan, and a
/// topic with many subscribers reading at different times does not keep a
/// long list of tiny pieces alive.
const MAX_PIECES: usize = 64;

/// Frames appended by publishers, sealed piece by piece as subscribers read.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Unique for the life of the process (an address could be reused).
    id: u64,
    data: Mutex<Data>,
}

#[derive(Debug)]
struct Data {
    /// Sealed pieces, back to back from offset 0.
    sealed: Vec<Bytes>,
    sealed_len: usize,
    /// Bytes appended since the last seal (sharing the last piece's buffer
    /// while its capacity lasts).
    tail: BytesMut,
    /// Subscriber outboxes whose open cursor points into this batch.
    cursors: usize,
    /// Subscribers (by socket id) that read to the end and wait for more.
    /// Keyed, so a socket that leaves takes its waker (and with it its
    /// task's memory) out at once, whatever the topic's traffic.
    parked: HashMap<u64, Waker>,
}

impl Data {
    fn len(&self) -> usize {
        self.sealed_len + self.tail.len()
    }

    /// Seals the tail so every byte so far can be sliced.
    fn seal(&mut self) {
        if !self.tail.is_empty() {
            let piece = self.tail.split().freeze();
            self.sealed_len += piece.len();
            self.sealed.push(piece);
        }
    }

    /// Pushes the slices covering `range` (all of it sealed) onto `out`.
    fn slices(&self, range: Range<usize>, out: &mut Vec<Bytes>) {
        let mut at = 0;
        for piece in &self.sealed {
            let piece_end = at + piece.len();
            if piece_end > range.start && at < range.end {
                let from = range.start.saturating_sub(at);
                let to = range.end.min(piece_end) - at;
                out.push(piece.slice(from..to));
            }
            at = piece_end;
            if at >= range.end {
                break;
            }
        }
    }
}

/// Where an append landed.
#[derive(Debug)]
pub(crate) struct Appended {
    pub(crate) range: Range<usize>,
    /// The batch had exactly the expected number of open cursors: every
    /// recipient already covers the new frame.
    pub(crate) all_covered: bool,
    /// Subscribers that were waiting for more: wake them once no lock is held.
    pub(crate) parked: Vec<Waker>,
}

impl Batch {
    /// An empty open batch.
    pub(crate) fn new() -> Arc<Self> {
        // From 1: an outbox takes 0 for "no batch".
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            data: Mutex::new(Data {
                sealed: Vec::new(),
                sealed_len: 0,
                tail: BytesMut::with_capacity(INITIAL),
                cursors: 0,
                parked: HashMap::default(),
            }),
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        // Nothing panics while holding the lock; recover rather than spread a poison.
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends what `write` writes (about `size` bytes), unless the batch
    /// is full, and tells
    /// whether `recipients` cursors were open at that moment.
    ///
    /// Counting under the same lock as the append is what makes skipping the
    /// recipients safe: a cursor closed before the append is not counted, one
    /// closed after it ends past the new frame.
    pub(crate) fn append(
        &self,
        recipients: usize,
        size: usize,
        write: impl FnOnce(&mut BytesMut),
    ) -> Option<Appended> {
        let mut data = self.lock();
        let start = data.len();
        if start >= MAX_BATCH || data.sealed.len() >= MAX_PIECES {
            return None;
        }
        // At most one allocation per append: once sealed pieces share the
        // tail's buffer, growing it in small steps would copy the unsealed
        // bytes into a new small buffer each time.
        data.tail.reserve(size.max(INITIAL));
        write(&mut data.tail);
        Some(Appended {
            range: start..data.len(),
            all_covered: data.cursors == recipients,
            parked: data.parked.drain().map(|(_, waker)| waker).collect(),
        })
    }

    /// Counts a cursor opened into this batch.
    pub(crate) fn open_cursor(&self) {
        self.lock().cursors += 1;
    }

    /// Uncounts a cursor; returns where the batch ends now, which is where
    /// the cursor's range ends.
    pub(crate) fn close_cursor(&self) -> usize {
        let mut data = self.lock();
        data.cursors -= 1;
        data.len()
    }

    /// How many bytes the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Pushes the bytes of `range` onto `out` as slices of the batch.
    pub(crate) fn read(&self, range: Range<usize>, out: &mut Vec<Bytes>) {
        let mut data = self.lock();
        if range.end > data.sealed_len {
            data.seal();
        }
        data.slices(range, out);
    }

    /// Pushes everything from `start` to the end onto `out` and returns the
    /// end; or, with nothing past `start`, returns `None` after parking the
    /// waker of socket `park` (if given) until the next append.
    pub(crate) fn read_or_park(
        &self,
        start: usize,
        park: Option<(u64, &Waker)>,
        out: &mut Vec<Bytes>,
    ) -> Option<usize> {
        let mut data = self.lock();
        let end = data.len();
        if end > start {
            if end > data.sealed_len {
                data.seal();
            }
            data.slices(start..end, out);
            return Some(end);
        }
        if let Some((id, waker)) = park {
            match data.parked.get(&id) {
                Some(parked) if parked.will_wake(waker) => {}
                _ => {
                    data.parked.insert(id, waker.clone());
                }
            }
        }
        None
    }

    /// Takes socket `id`'s waker out of the parked ones (its cursor left).
    pub(crate) fn unpark(&self, id: u64) {
        self.lock().parked.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(batch: &Batch, recipients: usize, bytes: &[u8]) -> Option<Appended> {
        batch.append(recipients, bytes.len(), |buf| buf.extend_from_slice(bytes))
    }

    fn concat(pieces: &[Bytes]) -> Vec<u8> {
        pieces.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn reads_share_the_buffer_and_appends_go_on() {
        let batch = Batch::new();
        let a = put(&batch, 0, b"hello ").unwrap().range;
        let b = put(&batch, 0, b"world").unwrap().range;
        assert_eq!((a.clone(), b.clone()), (0..6, 6..11));
        let (mut first, mut second) = (Vec::new(), Vec::new());
        batch.read(a.start..b.end, &mut first);
        batch.read(b, &mut second);
        assert_eq!(concat(&first), b"hello world");
        assert_eq!(concat(&second), b"world");
        assert_eq!(first[0][6..].as_ptr(), second[0].as_ptr(), "no copy");
        let c = put(&batch, 0, b"!").unwrap().range;
        assert_eq!(c, 11..12, "still open after a read");
        let mut third = Vec::new();
        batch.read(0..12, &mut third);
        assert_eq!(concat(&third), b"hello world!");
    }

    #[test]
    fn a_full_batch_takes_no_more() {
        let batch = Batch::new();
        assert!(put(&batch, 0, &[0; MAX_BATCH]).is_some());
        assert!(put(&batch, 0, b"x").is_none());
    }

    #[test]
    fn a_batch_read_in_many_pieces_takes_no_more() {
        let batch = Batch::new();
        let mut out = Vec::new();
        for i in 0..MAX_PIECES {
            assert!(put(&batch, 0, b"x").is_some(), "piece {i}");
            batch.read(i..i + 1, &mut out);
        }
        assert!(put(&batch, 0, b"x").is_none());
        out.clear();
        batch.read(0..MAX_PIECES, &mut out);
        assert_eq!(out.len(), MAX_PIECES, "one slice per piece");
    }

    #[test]
    fn counts_open_cursors() {
        let batch = Batch::new();
        assert!(put(&batch, 0, b"a").unwrap().all_covered);
        batch.open_cursor();
        batch.open_cursor();
        assert!(!put(&batch, 3, b"b").unwrap().all_covered);
        assert!(put(&batch, 2, b"c").unwrap().all_covered);
        assert_eq!(batch.close_cursor(), 3);
        assert!(!put(&batch, 2, b"d").unwrap().all_covered);
    }

    #[test]
    fn a_reader_at_the_end_parks_until_the_next_append() {
        let batch = Batch::new();
        let mut out = Vec::new();
        put(&batch, 0, b"ab");
        assert_eq!(
            batch.read_or_park(0, Some((1, Waker::noop())), &mut out),
            Some(2)
        );
        for _ in 0..2 {
            assert_eq!(
                batch.read_or_park(2, Some((1, Waker::noop())), &mut out),
                None
            );
        }
        let appended = put(&batch, 0, b"c").unwrap();
        assert_eq!(appended.parked.len(), 1, "the parked reader, once");
        assert!(put(&batch, 0, b"d").unwrap().parked.is_empty(), "once");
        assert_eq!(
            batch.read_or_park(2, Some((1, Waker::noop())), &mut out),
            Some(4)
        );
        assert_eq!(concat(&out), b"abcd");
        assert_eq!(
            batch.read_or_park(4, Some((2, Waker::noop())), &mut out),
            None
        );
        batch.unpark(2);
        assert!(put(&batch, 0, b"e").unwrap().parked.is_empty(), "left");
    }
}
