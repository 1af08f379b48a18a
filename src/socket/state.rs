//! The untyped state of a socket, shared by its handles, its driver and the
//! topics it subscribes to: the outbound queue, counters and subscriptions.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::ReadyState;
use crate::deflate::{Outgoing, compress_shared};
use crate::hub::{Batch, HubInner, Topic};
use crate::protocol::close::CloseBody;
use crate::protocol::close_code;
use crate::protocol::frame::{MAX_CONTROL_PAYLOAD, OpCode};
use crate::protocol::{encode_frame, encode_header, encode_message_frame};
use crate::{SendStatus, clock};

/// Payloads up to this size are copied next to their header into one buffer;
/// larger ones are queued as they are, behind a separate header.
pub(crate) const COPY_LIMIT: usize = 4096;

/// One item of the outbound queue.
#[derive(Debug)]
pub(crate) enum Entry {
    /// Encoded frame bytes owned by this queue (or shared, for large payloads).
    Bytes(Bytes),
    /// Frames published to a topic: a range of the topic's shared batch.
    Slice {
        batch: Arc<Batch>,
        range: Range<usize>,
    },
}

impl Entry {
    /// Turns a batch range into the bytes to write (freezing the batch).
    pub(crate) fn resolve(&mut self) {
        if let Self::Slice { batch, range } = self {
            *self = Self::Bytes(batch.slice(range.clone()));
        }
    }

    /// The bytes of a resolved entry (none before [`resolve`](Self::resolve)).
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Self::Bytes(bytes) => bytes,
            Self::Slice { .. } => &[],
        }
    }

    /// Drops `n` written bytes from the front of a resolved entry.
    pub(crate) fn advance(&mut self, n: usize) {
        if let Self::Bytes(bytes) = self {
            bytes::Buf::advance(bytes, n);
        }
    }

    /// The bytes to write.
    #[cfg(test)]
    pub(crate) fn into_bytes(mut self) -> Bytes {
        self.resolve();
        match self {
            Self::Bytes(bytes) => bytes,
            Self::Slice { .. } => Bytes::new(),
        }
    }
}

/// Which of a topic's frame streams a socket reads (see [`Core::stream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Uncompressed frames, shared by every socket without compression.
    Plain,
    /// Frames compressed once by a shared compressor with the full window.
    Deflate,
    /// Frames made for this socket alone (its own compressor or window).
    Own,
}

/// Everything about a socket that is not its typed data.
pub(crate) struct Core {
    pub(crate) id: u64,
    /// How outgoing messages are compressed; `None` when they are not.
    deflate: Option<Box<Outgoing>>,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) protocol: Option<Box<str>>,
    pub(crate) hub: Arc<HubInner>,
    pub(crate) publish_to_self: bool,
    state: AtomicU8,
    /// Bytes in the outbox plus those the driver took and has not written.
    buffered: AtomicUsize,
    /// The driver holds data the connection would not take.
    blocked: AtomicBool,
    /// A send reported backpressure or was dropped: call `drain` once empty.
    needs_drain: AtomicBool,
    /// Everything was written since `needs_drain` was set.
    drained: AtomicBool,
    limit: usize,
    close_on_limit: bool,
    /// Idle timeout in milliseconds; 0 for none.
    idle_ms: u32,
    send_pings: bool,
    /// When the driver last read anything ([`clock`] milliseconds).
    last_read: AtomicU32,
    /// A ping was sent since then.
    pinged: AtomicBool,
    outbox: Mutex<Outbox>,
    topics: Mutex<Subscriptions>,
}

/// Frames waiting for the driver, and the driver's wake-up.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Entry>,
    /// Published frames still arriving: logically the last entry of `queue`.
    cursor: Option<Cursor>,
    /// The batch (by id) and the end of the last cursor closed in this queue,
    /// so a publish racing that close is not queued twice.
    covered: Option<(u64, u32)>,
    /// Set by the driver when it found the queue empty.
    waker: Option<Waker>,
    /// Open `cork` calls: the driver is not woken until the last one ends.
    corks: u32,
    /// The close frame queued so far, if any: no data may follow it.
    pub(crate) close: Option<Box<(u16, String)>>,
    pub(crate) terminated: bool,
    /// The hub's sweeper found the socket silent past its idle timeout.
    pub(crate) idle_expired: bool,
    /// The connection is gone: nothing will be written any more.
    ended: bool,
}

impl Outbox {
    /// Whether a data frame (or a first close frame) may still be queued.
    fn accepts_data(&self) -> bool {
        self.close.is_none() && !self.terminated && !self.ended
    }
}

/// An open range of a topic's batch: from `start` to wherever the batch ends
/// when the range is closed (by the driver taking it, or by anything else
/// being queued after it).
#[derive(Debug)]
struct Cursor {
    batch: Arc<Batch>,
    start: usize,
}

/// The topics a socket is subscribed to.
#[derive(Default)]
struct Subscriptions {
    topics: Vec<Arc<Topic>>,
    /// The socket has left the hub for good: no new subscriptions.
    closed: bool,
}

/// Settings a socket takes from its layer.
pub(crate) struct Settings {
    pub(crate) backpressure_limit: usize,
    pub(crate) close_on_backpressure_limit: bool,
    pub(crate) publish_to_self: bool,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) send_pings: bool,
}

impl Core {
    pub(crate) fn new(
        hub: Arc<HubInner>,
        settings: Settings,
        remote_addr: Option<SocketAddr>,
        protocol: Option<Box<str>>,
        deflate: Option<Outgoing>,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            deflate: deflate.map(Box::new),
            remote_addr,
            protocol,
            hub,
            publish_to_self: settings.publish_to_self,
            state: AtomicU8::new(ReadyState::Open as u8),
            buffered: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            needs_drain: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            limit: settings.backpressure_limit,
            close_on_limit: settings.close_on_backpressure_limit,
            idle_ms: settings.idle_timeout.map_or(0, |idle| {
                u32::try_from(idle.as_millis()).unwrap_or(u32::MAX).max(1)
            }),
            send_pings: settings.send_pings,
            last_read: AtomicU32::new(clock::now()),
            pinged: AtomicBool::new(false),
            outbox: Mutex::new(Outbox::default()),
            topics: Mutex::new(Subscriptions::default()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Outbox> {
        // Nothing panics while holding the lock; recover rather than spread a poison.
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn subscriptions(&self) -> MutexGuard<'_, Subscriptions> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn ready_state(&self) -> ReadyState {
        match self.state.load(Ordering::Acquire) {
            0 => ReadyState::Connecting,
            1 => ReadyState::Open,
            2 => ReadyState::Closing,
            _ => ReadyState::Closed,
        }
    }

    pub(crate) fn set_state(&self, state: ReadyState) {
        self.state.fetch_max(state as u8, Ordering::AcqRel);
    }

    pub(crate) fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Acquire)
    }

    /// The driver wrote `n` queued bytes.
    pub(crate) fn written(&self, n: usize) {
        self.buffered.fetch_sub(n, Ordering::AcqRel);
    }

    /// The stream would not take all the driver had to write.
    pub(crate) fn set_blocked(&self) {
        self.blocked.store(true, Ordering::Release);
    }

    /// Moves every queued entry into `into` (which must be empty); returns
    /// false, and arranges for `waker` to be woken by the next send, when
    /// there were none: everything queued has then been written.
    pub(crate) fn take_queue(&self, into: &mut VecDeque<Entry>, waker: &Waker) -> bool {
        let mut outbox = self.lock();
        self.settle_cursor(&mut outbox);
        if !outbox.queue.is_empty() {
            std::mem::swap(&mut outbox.queue, into);
            return true;
        }
        if !outbox.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            outbox.waker = Some(waker.clone());
        }
        drop(outbox);
        self.blocked.store(false, Ordering::Release);
        if self.needs_drain.swap(false, Ordering::AcqRel) {
            self.drained.store(true, Ordering::Release);
        }
        false
    }

    /// The close frame this side queued: its code and reason.
    pub(crate) fn queued_close(&self) -> Option<(u16, String)> {
        self.lock().close.as_deref().cloned()
    }

    /// How many bytes wait to be written, those of an open cursor included.
    pub(crate) fn pending_bytes(&self) -> usize {
        let outbox = self.lock();
        let open = outbox
            .cursor
            .as_ref()
            .map_or(0, |c| c.batch.len().saturating_sub(c.start));
        self.buffered() + open
    }

    /// Whether `drain` is due, once.
    pub(crate) fn take_drain(&self) -> bool {
        self.drained.load(Ordering::Acquire) && self.drained.swap(false, Ordering::AcqRel)
    }

    /// Which of a topic's streams this socket reads: the frames all plain
    /// sockets share, those all shared-compressor sockets share, or its own.
    pub(crate) fn stream(&self) -> Stream {
        match self.deflate.as_deref() {
            None => Stream::Plain,
            Some(Outgoing::Shared { window: 15 }) => Stream::Deflate,
            Some(_) => Stream::Own,
        }
    }

    /// Queues a data message sent to this socket alone, compressed if asked
    /// and negotiated.
    pub(crate) fn send_data(&self, opcode: OpCode, payload: Bytes, compress: bool) -> SendStatus {
        match (compress, self.deflate.as_deref()) {
            (true, Some(Outgoing::Dedicated(deflater))) => {
                // Held until queued: frames leave in the order the context saw them.
                let mut deflater = deflater.lock();
                match deflater.compress(&payload) {
                    Some(compressed) => self.push_frame(opcode, compressed, true),
                    None => self.push_frame(opcode, payload, false),
                }
            }
            (true, Some(Outgoing::Shared { window })) => match compress_shared(*window, &payload) {
                Some(compressed) => self.push_frame(opcode, compressed, true),
                None => self.push_frame(opcode, payload, false),
            },
            _ => self.push_frame(opcode, payload, false),
        }
    }

    /// Queues one frame of `payload` (already compressed when `compressed`).
    fn push_frame(&self, opcode: OpCode, payload: Bytes, compressed: bool) -> SendStatus {
        let mut head = BytesMut::new();
        if payload.len() <= COPY_LIMIT {
            encode_message_frame(&mut head, opcode, compressed, &payload, None);
            self.push(Entry::Bytes(head.freeze()))
        } else {
            encode_header(&mut head, opcode, compressed, payload.len());
            self.push_pair(Entry::Bytes(head.freeze()), Entry::Bytes(payload))
        }
    }

    /// Queues a ping or pong, unless the socket is closing or over its
    /// backpressure limit.
    pub(crate) fn send_control(&self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        let mut frame = BytesMut::new();
        encode_frame(&mut frame, opcode, payload, None);
        let len = frame.len();
        // Held to the backpressure limit like data: a peer that sends pings
        // and never reads must not grow a queue of pongs without bound.
        let Some(mut outbox) = self.admit() else {
            return SendStatus::Dropped;
        };
        self.settle_cursor(&mut outbox);
        outbox.queue.push_back(Entry::Bytes(frame.freeze()));
        self.queued(outbox, len)
    }

    /// Makes sure the frame at `range` of `batch` reaches this socket: it is
    /// covered already, or a cursor opens at it. Returns false if the socket
    /// takes no data (closing, or over its backpressure limit).
    pub(crate) fn deliver_cursor(&self, batch: &Arc<Batch>, range: &Range<usize>) -> bool {
        let Some(mut outbox) = self.admit() else {
            return false;
        };
        let id = batch.id();
        let open_here = outbox.cursor.as_ref().is_some_and(|c| c.batch.id() == id);
        let closed_past = outbox
            .covered
            .is_some_and(|(covered, end)| covered == id && end as usize >= range.end);
        if !open_here && !closed_past {
            self.open_cursor(&mut outbox, batch, range.start);
            self.wake(outbox);
        }
        true
    }

    /// Closes this socket's cursor if it points into `batch`.
    pub(crate) fn close_cursor_on(&self, batch: &Batch) {
        let mut outbox = self.lock();
        if outbox
            .cursor
            .as_ref()
            .is_some_and(|c| c.batch.id() == batch.id())
        {
            self.settle_cursor(&mut outbox);
        }
    }

    /// Opens a cursor at `at` (just past this socket's own message) so the
    /// next publishes reach it without a visit, if it takes data.
    pub(crate) fn reopen_cursor(&self, batch: &Arc<Batch>, at: usize) {
        if let Some(mut outbox) = self.admit() {
            self.open_cursor(&mut outbox, batch, at);
            self.wake(outbox);
        }
    }

    fn open_cursor(&self, outbox: &mut Outbox, batch: &Arc<Batch>, start: usize) {
        self.settle_cursor(outbox);
        batch.open_cursor();
        outbox.cursor = Some(Cursor {
            batch: Arc::clone(batch),
            start,
        });
    }

    /// Closes the open cursor, if any, into a queued range.
    fn settle_cursor(&self, outbox: &mut Outbox) {
        let Some(Cursor { batch, start }) = outbox.cursor.take() else {
            return;
        };
        let end = batch.close_cursor();
        // Batches stay far below 4 GiB (64 KiB plus one small frame).
        outbox.covered = Some((batch.id(), u32::try_from(end).unwrap_or(u32::MAX)));
        if end > start {
            self.buffered.fetch_add(end - start, Ordering::AcqRel);
            outbox.queue.push_back(Entry::Slice {
                batch,
                range: start..end,
            });
        }
    }

    /// Wakes the driver, unless corked, to write what is queued.
    fn wake(&self, mut outbox: MutexGuard<'_, Outbox>) {
        let waker = if outbox.corks == 0 {
            outbox.waker.take()
        } else {
            None
        };
        drop(outbox);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Queues a published message for a socket that compresses on its own.
    pub(crate) fn deliver_own(&self, opcode: OpCode, payload: &Bytes, compress: bool) -> bool {
        !matches!(
            self.send_data(opcode, payload.clone(), compress),
            SendStatus::Dropped
        )
    }

    /// Queues a published large frame (its header and its shared payload).
    pub(crate) fn deliver_pair(&self, head: &Bytes, body: &Bytes) -> bool {
        !matches!(
            self.push_pair(Entry::Bytes(head.clone()), Entry::Bytes(body.clone())),
            SendStatus::Dropped
        )
    }

    fn push(&self, entry: Entry) -> SendStatus {
        let len = entry_len(&entry);
        let Some(mut outbox) = self.admit() else {
            return SendStatus::Dropped;
        };
        self.settle_cursor(&mut outbox);
        outbox.queue.push_back(entry);
        self.queued(outbox, len)
    }

    fn push_pair(&self, head: Entry, body: Entry) -> SendStatus {
        let len = entry_len(&head) + entry_len(&body);
        let Some(mut outbox) = self.admit() else {
            return SendStatus::Dropped;
        };
        self.settle_cursor(&mut outbox);
        outbox.queue.push_back(head);
        outbox.queue.push_back(body);
        self.queued(outbox, len)
    }

    /// Locks the outbox if a data frame may be queued: not closing, not over
    /// the backpressure limit (which may close the socket instead).
    fn admit(&self) -> Option<MutexGuard<'_, Outbox>> {
        let outbox = self.lock();
        if !outbox.accepts_data() {
            return None;
        }
        if self.buffered() > self.limit {
            drop(outbox);
            tracing::trace!(
                id = self.id,
                buffered = self.buffered(),
                "dropped: over the backpressure limit"
            );
            self.needs_drain.store(true, Ordering::Release);
            if self.close_on_limit {
                self.begin_close(close_code::POLICY, "backpressure limit");
            }
            return None;
        }
        Some(outbox)
    }

    /// Queues a close frame unless one is queued already; returns whether it did.
    pub(crate) fn begin_close(&self, code: u16, reason: &str) -> bool {
        let mut frame = BytesMut::new();
        encode_frame(
            &mut frame,
            OpCode::Close,
            &CloseBody::encode(code, reason),
            None,
        );
        let len = frame.len();
        let mut outbox = self.lock();
        if !outbox.accepts_data() {
            return false;
        }
        outbox.close = Some(Box::new((code, reason.to_owned())));
        self.settle_cursor(&mut outbox);
        outbox.queue.push_back(Entry::Bytes(frame.freeze()));
        self.set_state(ReadyState::Closing);
        self.queued(outbox, len);
        true
    }

    /// The connection is gone: drops whatever is still queued and refuses
    /// every later send.
    pub(crate) fn shut(&self) {
        let queued = {
            let mut outbox = self.lock();
            outbox.ended = true;
            outbox.waker = None;
            self.settle_cursor(&mut outbox);
            std::mem::take(&mut outbox.queue)
        };
        drop(queued);
        // Whatever the driver still held is gone with it too.
        self.buffered.store(0, Ordering::Release);
        self.set_state(ReadyState::Closed);
    }

    /// The driver read something: the peer is alive.
    pub(crate) fn touch(&self) {
        self.last_read.store(clock::now(), Ordering::Relaxed);
        self.pinged.store(false, Ordering::Relaxed);
    }

    /// The sweeper's look at this socket at `now`: a ping halfway through
    /// the idle timeout (if pings are on), the timeout after it.
    pub(crate) fn sweep(&self, now: u32) {
        if self.idle_ms == 0 {
            return;
        }
        let silent = now.wrapping_sub(self.last_read.load(Ordering::Relaxed));
        if silent >= self.idle_ms {
            self.expire_idle();
        } else if self.send_pings
            && silent >= self.idle_ms / 2
            && !self.pinged.swap(true, Ordering::Relaxed)
        {
            self.send_control(OpCode::Ping, b"");
        }
    }

    /// How often this socket's idle timeout wants looking at.
    pub(crate) fn sweep_every(&self) -> Option<Duration> {
        (self.idle_ms > 0).then(|| Duration::from_millis(u64::from(self.idle_ms / 8)))
    }

    fn expire_idle(&self) {
        let waker = {
            let mut outbox = self.lock();
            if !outbox.accepts_data() || outbox.idle_expired {
                return;
            }
            outbox.idle_expired = true;
            outbox.waker.take()
        };
        self.set_state(ReadyState::Closing);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Drops the connection without a close frame.
    pub(crate) fn terminate(&self) {
        let waker = {
            let mut outbox = self.lock();
            outbox.terminated = true;
            outbox.waker.take()
        };
        self.set_state(ReadyState::Closing);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Counts `len` newly queued bytes, wakes the driver unless corked, and
    /// reports the status of the send.
    fn queued(&self, outbox: MutexGuard<'_, Outbox>, len: usize) -> SendStatus {
        let buffered = self.buffered.fetch_add(len, Ordering::AcqRel) + len;
        self.wake(outbox);
        if buffered > self.limit || self.blocked.load(Ordering::Acquire) {
            self.needs_drain.store(true, Ordering::Release);
            SendStatus::Backpressure
        } else {
            SendStatus::Sent(len)
        }
    }

    /// Holds back the driver's wake-up until the matching [`uncork`](Self::uncork).
    pub(crate) fn cork(&self) {
        self.lock().corks += 1;
    }

    /// Ends a [`cork`](Self::cork); the last one wakes the driver if anything is queued.
    pub(crate) fn uncork(&self) {
        let waker = {
            let mut outbox = self.lock();
            outbox.corks = outbox.corks.saturating_sub(1);
            if outbox.corks == 0 && (!outbox.queue.is_empty() || outbox.cursor.is_some()) {
                outbox.waker.take()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Subscribes to `name` through `me` (this socket as a subscriber);
    /// false if already subscribed or closed.
    pub(crate) fn subscribe(
        &self,
        name: &str,
        me: impl FnOnce() -> Arc<dyn crate::hub::Subscriber>,
    ) -> bool {
        let mut subs = self.subscriptions();
        if subs.closed || subs.topics.iter().any(|t| t.name() == name) {
            return false;
        }
        let topic = self.hub.subscribe(name, me());
        subs.topics.push(topic);
        true
    }

    /// Leaves `name`; false if not subscribed.
    pub(crate) fn unsubscribe(&self, name: &str) -> bool {
        let mut subs = self.subscriptions();
        let Some(at) = subs.topics.iter().position(|t| t.name() == name) else {
            return false;
        };
        let topic = subs.topics.swap_remove(at);
        drop(subs);
        self.hub.unsubscribe(&topic, self.id);
        true
    }

    pub(crate) fn is_subscribed(&self, name: &str) -> bool {
        self.subscriptions().topics.iter().any(|t| t.name() == name)
    }

    pub(crate) fn subscription_names(&self) -> Vec<String> {
        self.subscriptions()
            .topics
            .iter()
            .map(|t| t.name().to_owned())
            .collect()
    }

    /// Leaves every topic for good; the socket is closed.
    pub(crate) fn leave_hub(&self) {
        let topics = {
            let mut subs = self.subscriptions();
            subs.closed = true;
            std::mem::take(&mut subs.topics)
        };
        for topic in topics {
            self.hub.unsubscribe(&topic, self.id);
        }
    }
}

fn entry_len(entry: &Entry) -> usize {
    match entry {
        Entry::Bytes(bytes) => bytes.len(),
        Entry::Slice { range, .. } => range.len(),
    }
}
