//! A shared batch of frames: what one topic publishes between two flushes.
//!
//! Every small frame published to a topic is appended to the topic's open
//! batch, once. Subscribers queue only a range of it; the first subscriber to
//! write freezes the batch, and every subscriber then writes a slice of the
//! same buffer. Consecutive messages to one subscriber merge into one range,
//! so a burst of publishes costs each subscriber one slice, not one buffer
//! per message.

use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

/// A batch stops taking frames at this size; the next publish starts another.
const MAX_BATCH: usize = 64 * 1024;
/// Initial capacity of a batch.
const INITIAL: usize = 4 * 1024;

/// Frames appended by publishers, frozen when a subscriber writes them.
#[derive(Debug)]
pub(crate) struct Batch {
    data: Mutex<Data>,
}

#[derive(Debug)]
enum Data {
    Open(BytesMut),
    Frozen(Bytes),
}

impl Batch {
    /// An empty open batch.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            data: Mutex::new(Data::Open(BytesMut::with_capacity(INITIAL))),
        })
    }

    /// Appends what `write` writes, unless the batch is frozen or full;
    /// returns the range it landed in.
    pub(crate) fn append(&self, write: impl FnOnce(&mut BytesMut)) -> Option<Range<usize>> {
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *data {
            Data::Open(buf) if buf.len() < MAX_BATCH => {
                let start = buf.len();
                write(buf);
                Some(start..buf.len())
            }
            _ => None,
        }
    }

    /// The bytes of `range`, freezing the batch if it is still open.
    pub(crate) fn slice(&self, range: Range<usize>) -> Bytes {
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        if let Data::Open(buf) = &mut *data {
            *data = Data::Frozen(std::mem::take(buf).freeze());
        }
        match &*data {
            Data::Frozen(bytes) => bytes.slice(range),
            Data::Open(_) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_until_frozen_then_slices_share_one_buffer() {
        let batch = Batch::new();
        let a = batch.append(|b| b.extend_from_slice(b"hello ")).unwrap();
        let b = batch.append(|b| b.extend_from_slice(b"world")).unwrap();
        assert_eq!((a.clone(), b.clone()), (0..6, 6..11));
        let first = batch.slice(a.start..b.end);
        let second = batch.slice(b);
        assert_eq!(&first[..], b"hello world");
        assert_eq!(&second[..], b"world");
        assert_eq!(first[6..].as_ptr(), second.as_ptr(), "one buffer, no copy");
        assert!(
            batch.append(|b| b.extend_from_slice(b"late")).is_none(),
            "frozen"
        );
    }

    #[test]
    fn a_full_batch_takes_no_more() {
        let batch = Batch::new();
        assert!(
            batch
                .append(|b| b.extend_from_slice(&[0; MAX_BATCH]))
                .is_some()
        );
        assert!(batch.append(|b| b.extend_from_slice(b"x")).is_none());
    }
}
