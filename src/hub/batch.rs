//! A shared batch of frames: what one topic publishes between two flushes.
//!
//! Every small frame published to a topic is appended to the topic's open
//! batch, once. A subscriber's queue holds a *cursor* into the batch: "from
//! here to wherever the batch ends when I write". The first publish of a
//! batch opens a cursor in every subscriber's queue; later publishes only
//! append, as long as every subscriber still has its cursor open (the batch
//! counts them). The first subscriber to write freezes the batch, and every
//! subscriber then writes a slice of the same buffer: the only per-recipient
//! copy is the kernel's.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};

/// A batch stops taking frames at this size; the next publish starts another.
const MAX_BATCH: usize = 64 * 1024;
/// Initial capacity of a batch.
const INITIAL: usize = 4 * 1024;

/// Frames appended by publishers, frozen when a subscriber writes them.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Unique for the life of the process (an address could be reused).
    id: u64,
    data: Mutex<Data>,
}

#[derive(Debug)]
struct Data {
    frames: Frames,
    /// Subscriber queues whose open cursor points into this batch.
    cursors: usize,
}

#[derive(Debug)]
enum Frames {
    Open(BytesMut),
    Frozen(Bytes),
}

impl Frames {
    fn len(&self) -> usize {
        match self {
            Self::Open(buf) => buf.len(),
            Self::Frozen(bytes) => bytes.len(),
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
}

impl Batch {
    /// An empty open batch.
    pub(crate) fn new() -> Arc<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            data: Mutex::new(Data {
                frames: Frames::Open(BytesMut::with_capacity(INITIAL)),
                cursors: 0,
            }),
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends what `write` writes, unless the batch is frozen or full, and
    /// tells whether `recipients` cursors were open at that moment.
    ///
    /// Counting under the same lock as the append is what makes skipping the
    /// recipients safe: a cursor closed before the append is not counted, one
    /// closed after it ends past the new frame.
    pub(crate) fn append(
        &self,
        recipients: usize,
        write: impl FnOnce(&mut BytesMut),
    ) -> Option<Appended> {
        let mut data = self.lock();
        let cursors = data.cursors;
        match &mut data.frames {
            Frames::Open(buf) if buf.len() < MAX_BATCH => {
                let start = buf.len();
                write(buf);
                Some(Appended {
                    range: start..buf.len(),
                    all_covered: cursors == recipients,
                })
            }
            _ => None,
        }
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
        data.frames.len()
    }

    /// How many bytes the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().frames.len()
    }

    /// The bytes of `range`, freezing the batch if it is still open.
    pub(crate) fn slice(&self, range: Range<usize>) -> Bytes {
        let mut data = self.lock();
        if let Frames::Open(buf) = &mut data.frames {
            data.frames = Frames::Frozen(std::mem::take(buf).freeze());
        }
        match &data.frames {
            Frames::Frozen(bytes) => bytes.slice(range),
            Frames::Open(_) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(batch: &Batch, recipients: usize, bytes: &[u8]) -> Option<Appended> {
        batch.append(recipients, |buf| buf.extend_from_slice(bytes))
    }

    #[test]
    fn appends_until_frozen_then_slices_share_one_buffer() {
        let batch = Batch::new();
        let a = put(&batch, 0, b"hello ").unwrap().range;
        let b = put(&batch, 0, b"world").unwrap().range;
        assert_eq!((a.clone(), b.clone()), (0..6, 6..11));
        let first = batch.slice(a.start..b.end);
        let second = batch.slice(b);
        assert_eq!(&first[..], b"hello world");
        assert_eq!(&second[..], b"world");
        assert_eq!(first[6..].as_ptr(), second.as_ptr(), "one buffer, no copy");
        assert!(put(&batch, 0, b"late").is_none(), "frozen");
    }

    #[test]
    fn a_full_batch_takes_no_more() {
        let batch = Batch::new();
        assert!(put(&batch, 0, &[0; MAX_BATCH]).is_some());
        assert!(put(&batch, 0, b"x").is_none());
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
}
