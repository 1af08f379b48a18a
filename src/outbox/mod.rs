//! What waits to be written to one socket: its queue of frames, its cursor
//! into a topic's shared batch, the backpressure and drain accounting, the
//! driver's wake-up, and the socket's lifecycle (which decides what may
//! still be queued).
//!
//! Handles, the hub and the driver talk to it through a few methods:
//! [`push`](Outbox::push) and [`begin_close`](Outbox::begin_close) queue,
//! [`join_batch`](Outbox::join_batch) and its siblings let a topic publish
//! into the batch, [`take`](Outbox::take) hands the driver everything
//! queued, and [`shut`](Outbox::shut) ends it.
//!
//! # Lock order
//!
//! Where locks nest they are taken in this order, outer first, and never
//! the other way:
//!
//! 1. a socket's subscription list (`socket`),
//! 2. the hub's topic map (`hub`),
//! 3. a topic (`hub::topic`),
//! 4. a socket's dedicated compressor (`deflate`), held while its frame is
//!    queued so frames leave in the order the compressor made them,
//! 5. a socket's outbox (this module),
//! 6. a batch (`outbox::batch`).
//!
//! No lock is held while a waker runs: wake-ups are made after unlocking,
//! or at the end of the socket task's turn ([`crate::wake`]).

pub(crate) mod batch;
mod lifecycle;

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use bytes::{Bytes, BytesMut};

pub(crate) use self::batch::Batch;
use self::lifecycle::Lifecycle;
pub(crate) use self::lifecycle::{Expiry, Phase};
use crate::protocol::close::CloseBody;
use crate::protocol::close_code;
use crate::protocol::encode_frame;
use crate::protocol::frame::OpCode;
use crate::{SendStatus, telemetry, wake};

/// Payloads up to this size are copied next to their header into one buffer;
/// larger ones are queued as they are, behind a separate header.
pub(crate) const COPY_LIMIT: usize = 4096;

/// One item of the queue.
#[derive(Debug)]
enum Entry {
    /// Encoded frame bytes owned by this queue (or shared, for large payloads).
    Bytes(Bytes),
    /// Frames published to a topic: a closed range of its shared batch.
    Slice {
        batch: Arc<Batch>,
        range: Range<usize>,
    },
}

/// An open range of a topic's batch: from `start` to wherever the batch
/// ends. Logically the last entry of the queue.
#[derive(Debug)]
struct Cursor {
    batch: Arc<Batch>,
    start: usize,
}

/// The state behind the outbox's lock.
#[derive(Default)]
struct Queue {
    /// Appended to, and taken all at once: a `Vec` (8 bytes smaller than
    /// a `VecDeque`).
    entries: Vec<Entry>,
    cursor: Option<Cursor>,
    /// The cursor's batch may hold this socket's waker (parked at its
    /// end): taken out when the cursor closes.
    parked: bool,
    /// The batch (by id; 0 for none, no batch has it) and the end of the
    /// last cursor closed in this queue, so a publish racing that close is
    /// not queued twice. Two fields, not an `Option` of a pair: 12 bytes
    /// packed with the others instead of 24.
    covered: u64,
    covered_end: u32,
    /// Set by the driver when it found the queue empty.
    waker: Option<Waker>,
    /// Open `cork` calls: the driver is not woken until the last one ends.
    corks: u32,
    /// The close frame this side queued: its code and reason.
    close: Option<Box<(u16, String)>>,
    /// Messages dropped for backpressure since the driver last looked.
    dropped: u32,
}

/// The outbound side of one socket. See the [module docs](self).
pub(crate) struct Outbox {
    /// The socket's id, for traces.
    id: u64,
    queue: Mutex<Queue>,
    life: Lifecycle,
    /// Bytes queued plus those the driver took and has not written.
    buffered: AtomicUsize,
    /// The driver holds data the connection would not take.
    blocked: AtomicBool,
    /// A send reported backpressure or was dropped: call `drain` once empty.
    needs_drain: AtomicBool,
    /// Everything was written since `needs_drain` was set.
    drained: AtomicBool,
    /// Messages were dropped for backpressure since the driver last looked
    /// (how many: `Queue::dropped`).
    dropped: AtomicBool,
    limit: usize,
    close_on_limit: bool,
    /// The socket is a client's: every frame it sends is masked (RFC 6455 §5.3).
    masked: bool,
}

impl Outbox {
    /// An empty outbox for socket `id`, holding at most about `limit` bytes;
    /// `masked` for a client's socket.
    pub(crate) fn new(id: u64, limit: usize, close_on_limit: bool, masked: bool) -> Self {
        Self {
            id,
            queue: Mutex::new(Queue::default()),
            life: Lifecycle::new(),
            buffered: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            needs_drain: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            limit,
            close_on_limit,
            masked,
        }
    }

    /// The socket's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether frames queued here must be masked: the socket is a client's.
    pub(crate) fn masks(&self) -> bool {
        self.masked
    }

    /// The masking key for the next frame queued here: a fresh random one
    /// on a client's socket, none on a server's.
    pub(crate) fn frame_mask(&self) -> Option<[u8; 4]> {
        self.masked.then(crate::entropy::mask_key)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; recover rather than spread a poison.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the socket is in its life.
    pub(crate) fn phase(&self) -> Phase {
        self.life.phase()
    }

    /// Bytes queued and not yet written (an open cursor's not counted).
    pub(crate) fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Acquire)
    }

    /// How many bytes wait to be written, those of an open cursor included.
    pub(crate) fn pending_bytes(&self) -> usize {
        let queue = self.lock();
        let open = queue
            .cursor
            .as_ref()
            .map_or(0, |c| c.batch.len().saturating_sub(c.start));
        self.buffered() + open
    }

    /// Queues encoded frames (one, or a header and its payload) unless the
    /// socket is closing or over its backpressure limit (counted as dropped).
    pub(crate) fn push(&self, frame: Bytes, payload: Option<Bytes>) -> SendStatus {
        let len = frame.len() + payload.as_ref().map_or(0, Bytes::len);
        let Some(mut queue) = self.admit(true) else {
            return SendStatus::Dropped;
        };
        self.settle_cursor(&mut queue);
        queue.entries.push(Entry::Bytes(frame));
        if let Some(payload) = payload {
            queue.entries.push(Entry::Bytes(payload));
        }
        self.queued(queue, len)
    }

    /// Locks the queue if a data frame may be queued: not closing, not over
    /// the backpressure limit (which may close the socket instead). A
    /// message refused for the limit is `counted` as dropped.
    fn admit(&self, counted: bool) -> Option<MutexGuard<'_, Queue>> {
        let mut queue = self.lock();
        if !self.life.accepts_data() {
            return None;
        }
        if self.buffered() > self.limit {
            if counted {
                telemetry::dropped();
                // The first drop since the driver last looked wakes it, so
                // the handler hears of it even while the peer reads nothing.
                queue.dropped = queue.dropped.saturating_add(1);
                if !self.dropped.swap(true, Ordering::AcqRel) {
                    if let Some(waker) = queue.waker.take() {
                        wake::wake(waker);
                    }
                }
            }
            drop(queue);
            tracing::trace!(
                id = self.id,
                buffered = self.buffered(),
                "dropped: over the backpressure limit"
            );
            self.enter_backpressure();
            if self.close_on_limit {
                self.begin_close(close_code::POLICY, "backpressure limit");
            }
            return None;
        }
        Some(queue)
    }

    /// A send met backpressure: `drain` is due once the queue empties (one
    /// episode until then).
    fn enter_backpressure(&self) {
        if !self.needs_drain.swap(true, Ordering::AcqRel) {
            telemetry::backpressure();
        }
    }

    /// Whether a send queued with `buffered` bytes waiting is behind
    /// backpressure: past the limit, or the stream would not take more.
    fn behind(&self, buffered: usize) -> bool {
        buffered > self.limit || self.blocked.load(Ordering::Acquire)
    }

    /// What a send that was just queued would report: `Backpressure` when
    /// unsent data is ahead of it or the queue is past the limit.
    pub(crate) fn status_of_queued(&self) -> SendStatus {
        if self.behind(self.buffered()) {
            SendStatus::Backpressure
        } else {
            SendStatus::Sent(0)
        }
    }

    /// Counts `len` newly queued bytes, wakes the driver unless corked, and
    /// reports the status of the send.
    fn queued(&self, queue: MutexGuard<'_, Queue>, len: usize) -> SendStatus {
        let buffered = self.buffered.fetch_add(len, Ordering::AcqRel) + len;
        self.wake(queue);
        if self.behind(buffered) {
            self.enter_backpressure();
            SendStatus::Backpressure
        } else {
            SendStatus::Sent(len)
        }
    }

    /// Wakes the driver, unless corked, to write what is queued. A driver
    /// blocked on a full stream takes it when the stream has room: waking
    /// it before would only fail another write.
    fn wake(&self, mut queue: MutexGuard<'_, Queue>) {
        let waker = if queue.corks == 0 && !self.blocked.load(Ordering::Acquire) {
            queue.waker.take()
        } else {
            None
        };
        drop(queue);
        if let Some(waker) = waker {
            wake::wake(waker);
        }
    }

    /// Queues a close frame unless one is queued already (or the socket is
    /// terminated or gone); returns whether it did.
    pub(crate) fn begin_close(&self, code: u16, reason: &str) -> bool {
        let mut frame = BytesMut::new();
        encode_frame(
            &mut frame,
            OpCode::Close,
            &CloseBody::encode(code, reason),
            self.frame_mask(),
        );
        let len = frame.len();
        let mut queue = self.lock();
        if !self.life.advance(Phase::Closing) {
            return false;
        }
        queue.close = Some(Box::new((code, reason.to_owned())));
        self.settle_cursor(&mut queue);
        queue.entries.push(Entry::Bytes(frame.freeze()));
        self.queued(queue, len);
        true
    }

    /// The close frame this side queued: its code and reason.
    pub(crate) fn queued_close(&self) -> Option<(u16, String)> {
        self.lock().close.as_deref().cloned()
    }

    /// Asks the driver to drop the connection without a close frame.
    pub(crate) fn terminate(&self) {
        self.command(Phase::Terminated);
    }

    /// One of the sweeper's timers ran out: asks the driver to close it.
    pub(crate) fn expire(&self, expiry: Expiry) {
        self.command(expiry.into());
    }

    fn command(&self, phase: Phase) {
        let mut queue = self.lock();
        if self.life.advance(phase) {
            // Past any cork: the driver must see the command.
            let waker = queue.waker.take();
            drop(queue);
            if let Some(waker) = waker {
                wake::wake(waker);
            }
        }
    }

    /// The connection is gone: drops whatever is still queued and refuses
    /// everything later. Idempotent.
    pub(crate) fn shut(&self) {
        let dropped = {
            let mut queue = self.lock();
            self.life.advance(Phase::Closed);
            queue.waker = None;
            self.settle_cursor(&mut queue);
            std::mem::take(&mut queue.entries)
        };
        drop(dropped);
        // Whatever the driver still held is gone with it too.
        self.buffered.store(0, Ordering::Release);
    }

    /// Makes sure the frame at `range` of `batch` reaches this socket: it is
    /// covered already, or a cursor opens at it. Returns false if the socket
    /// takes no data (closing, or over its backpressure limit).
    pub(crate) fn join_batch(&self, batch: &Arc<Batch>, range: &Range<usize>) -> bool {
        let Some(mut queue) = self.admit(true) else {
            return false;
        };
        let id = batch.id();
        let open_here = queue.cursor.as_ref().is_some_and(|c| c.batch.id() == id);
        let closed_past = queue.covered == id && queue.covered_end as usize >= range.end;
        if !open_here && !closed_past {
            self.open_cursor(&mut queue, batch, range.start);
            self.wake(queue);
        }
        true
    }

    /// Closes this socket's cursor if it points into `batch` (it leaves the
    /// topic, or its own message must fall outside the cursor).
    pub(crate) fn leave_batch(&self, batch: &Batch) {
        let mut queue = self.lock();
        if queue
            .cursor
            .as_ref()
            .is_some_and(|c| c.batch.id() == batch.id())
        {
            self.settle_cursor(&mut queue);
        }
    }

    /// Opens a cursor at `at` (just past this socket's own message) so the
    /// next publishes reach it without a visit, if it takes data.
    pub(crate) fn rejoin_batch(&self, batch: &Arc<Batch>, at: usize) {
        if let Some(mut queue) = self.admit(false) {
            self.open_cursor(&mut queue, batch, at);
            self.wake(queue);
        }
    }

    fn open_cursor(&self, queue: &mut Queue, batch: &Arc<Batch>, start: usize) {
        self.settle_cursor(queue);
        batch.open_cursor();
        queue.cursor = Some(Cursor {
            batch: Arc::clone(batch),
            start,
        });
    }

    /// Closes the open cursor, if any, into a queued range.
    fn settle_cursor(&self, queue: &mut Queue) {
        let Some(Cursor { batch, start }) = queue.cursor.take() else {
            return;
        };
        if std::mem::take(&mut queue.parked) {
            batch.unpark(self.id);
        }
        let end = batch.close_cursor();
        // Batches stay far below 4 GiB (64 KiB plus one small frame).
        queue.covered = batch.id();
        queue.covered_end = u32::try_from(end).unwrap_or(u32::MAX);
        if end > start {
            self.buffered.fetch_add(end - start, Ordering::AcqRel);
            queue.entries.push(Entry::Slice {
                batch,
                range: start..end,
            });
        }
    }

    /// Moves everything queued onto `into` as the bytes to write, the open
    /// cursor's new frames included (the cursor stays open). Returns false,
    /// and arranges for `waker` to be woken by the next send or publish, when
    /// there was nothing: everything queued has then been written.
    pub(crate) fn take(&self, into: &mut Vec<Bytes>, waker: &Waker) -> bool {
        let mut queue = self.lock();
        let mut slices = Vec::new();
        for entry in queue.entries.drain(..) {
            match entry {
                Entry::Bytes(bytes) => into.push(bytes),
                Entry::Slice { batch, range } => {
                    batch.read(range, &mut slices);
                    into.append(&mut slices);
                }
            }
        }
        let took = !into.is_empty();
        let queue = &mut *queue;
        if let Some(cursor) = &mut queue.cursor {
            // With something to write already, read what is new; park only
            // when there is nothing at all.
            let park = (!took).then_some((self.id, waker));
            match cursor.batch.read_or_park(cursor.start, park, &mut slices) {
                Some(end) => {
                    self.buffered
                        .fetch_add(end - cursor.start, Ordering::AcqRel);
                    cursor.start = end;
                    queue.parked = false;
                    into.append(&mut slices);
                    return true;
                }
                None => queue.parked |= !took,
            }
        }
        if took {
            return true;
        }
        if !queue.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            queue.waker = Some(waker.clone());
        }
        self.blocked.store(false, Ordering::Release);
        if self.needs_drain.swap(false, Ordering::AcqRel) {
            self.drained.store(true, Ordering::Release);
        }
        false
    }

    /// The driver wrote `n` queued bytes.
    pub(crate) fn written(&self, n: usize) {
        self.buffered.fetch_sub(n, Ordering::AcqRel);
    }

    /// The stream would not take all the driver had to write: until it
    /// does, `waker` is woken by a drop (see `admit`).
    pub(crate) fn set_blocked(&self, waker: &Waker) {
        self.blocked.store(true, Ordering::Release);
        let mut queue = self.lock();
        if !queue.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            queue.waker = Some(waker.clone());
        }
    }

    /// How many messages were dropped for backpressure since the last call,
    /// if any. Free (one atomic load) when none were.
    pub(crate) fn take_dropped(&self) -> Option<u32> {
        if !self.dropped.load(Ordering::Acquire) {
            return None;
        }
        let mut queue = self.lock();
        self.dropped.store(false, Ordering::Release);
        Some(std::mem::take(&mut queue.dropped)).filter(|&n| n > 0)
    }

    /// Whether `drain` is due, once.
    pub(crate) fn take_drain(&self) -> bool {
        self.drained.load(Ordering::Acquire) && self.drained.swap(false, Ordering::AcqRel)
    }

    /// Holds back the driver's wake-up until the matching [`uncork`](Self::uncork).
    pub(crate) fn cork(&self) {
        self.lock().corks += 1;
    }

    /// Ends a [`cork`](Self::cork); the last one wakes the driver if anything is queued.
    pub(crate) fn uncork(&self) {
        let mut queue = self.lock();
        queue.corks = queue.corks.saturating_sub(1);
        if queue.corks == 0 && (!queue.entries.is_empty() || queue.cursor.is_some()) {
            self.wake(queue);
        }
    }
}
