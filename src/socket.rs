//! The socket handle: what handlers and other tasks use to talk to one peer.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use bytes::{Bytes, BytesMut};

use crate::Message;
use crate::protocol::close::CloseBody;
use crate::protocol::frame::{MAX_CONTROL_PAYLOAD, OpCode};
use crate::protocol::{encode_frame, encode_header};

/// Payloads up to this size are copied next to their header into one buffer;
/// larger ones are queued as they are, behind a separate header.
const COPY_LIMIT: usize = 4096;

/// What happened to a message given to [`WebSocket::send`], as in Bun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued with nothing unsent ahead of it: the frame's size in bytes.
    Sent(usize),
    /// Queued, but behind data the peer has not taken yet, or past the
    /// backpressure limit: slow down until [`Handler::drain`](crate::Handler::drain).
    Backpressure,
    /// Not queued: the socket is closing, or was already over the limit.
    Dropped,
}

/// The state of a socket, numbered as in the browser API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ReadyState {
    /// The handshake is under way.
    Connecting = 0,
    /// Messages flow both ways.
    Open = 1,
    /// A close frame was sent or received; no more messages can be sent.
    Closing = 2,
    /// The connection is gone.
    Closed = 3,
}

/// A handle to one connection, with its typed data.
///
/// Cheap to clone (one reference count) and usable from any task: sends are
/// queued and written by the connection's own task, in order, in batches.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # fn demo(ws: wshub::WebSocket<String>) {
/// ws.send("hello");                        // text
/// ws.send(vec![1u8, 2, 3]);               // binary
/// println!("{} from {:?}", ws.data(), ws.remote_addr());
/// ws.close(wshub::close_code::NORMAL, "bye");
/// # }
/// ```
pub struct WebSocket<T = ()> {
    inner: Arc<Socket<T>>,
}

struct Socket<T> {
    core: Core,
    data: T,
}

impl<T> Clone for WebSocket<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for WebSocket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.id())
            .field("remote_addr", &self.remote_addr())
            .field("ready_state", &self.ready_state())
            .finish_non_exhaustive()
    }
}

impl<T> WebSocket<T> {
    pub(crate) fn new(core: Core, data: T) -> Self {
        Self {
            inner: Arc::new(Socket { core, data }),
        }
    }

    pub(crate) fn core(&self) -> &Core {
        &self.inner.core
    }

    /// The data attached by [`Upgrade::accept`](crate::Upgrade::accept).
    pub fn data(&self) -> &T {
        &self.inner.data
    }

    /// A number unique to this socket within the process.
    pub fn id(&self) -> u64 {
        self.core().id
    }

    /// Where the socket stands in its life.
    pub fn ready_state(&self) -> ReadyState {
        self.core().ready_state()
    }

    /// The peer's IP address and port as the server saw them.
    ///
    /// Known when the server hands the TCP stream to hyper directly, or when
    /// axum serves with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.core().remote_addr
    }

    /// The subprotocol chosen at the upgrade, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.core().protocol.as_deref()
    }

    /// Queues a text or binary message.
    pub fn send(&self, msg: impl Into<Message>) -> SendStatus {
        let msg = msg.into();
        let opcode = if msg.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        self.core().send_data(opcode, msg.into_bytes())
    }

    /// Queues a text message.
    pub fn send_text(&self, text: impl Into<String>) -> SendStatus {
        self.core()
            .send_data(OpCode::Text, Bytes::from(text.into()))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, bytes: impl Into<Bytes>) -> SendStatus {
        self.core().send_data(OpCode::Binary, bytes.into())
    }

    /// Queues a ping; a payload over 125 bytes is cut to 125.
    pub fn ping(&self, payload: impl Into<Bytes>) -> SendStatus {
        self.core().send_control(OpCode::Ping, &payload.into())
    }

    /// Queues an unsolicited pong; a payload over 125 bytes is cut to 125.
    pub fn pong(&self, payload: impl Into<Bytes>) -> SendStatus {
        self.core().send_control(OpCode::Pong, &payload.into())
    }

    /// Starts the close handshake after everything already queued.
    ///
    /// Later sends are dropped. The connection ends when the peer answers, or
    /// after [`Config::close_timeout`](crate::Config::close_timeout). A code
    /// that may not be sent (1005, 1006, 1015, reserved ranges) sends a close
    /// frame without a code; the reason is cut to 123 bytes.
    pub fn close(&self, code: u16, reason: &str) {
        self.core().begin_close(code, reason);
    }

    /// Drops the connection at once, without a close frame; `close` runs with 1006.
    pub fn terminate(&self) {
        let core = self.core();
        let waker = {
            let mut outbox = core.lock();
            outbox.terminated = true;
            outbox.waker.take()
        };
        core.set_state(ReadyState::Closing);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Bytes queued and not yet written to the connection.
    pub fn buffered_amount(&self) -> usize {
        self.core().buffered.load(Ordering::Acquire)
    }
}

/// The untyped state of a socket, shared by its handles and its driver.
pub(crate) struct Core {
    id: u64,
    remote_addr: Option<SocketAddr>,
    protocol: Option<Box<str>>,
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
    outbox: Mutex<Outbox>,
}

/// Frames waiting for the driver, and the driver's wake-up.
#[derive(Default)]
pub(crate) struct Outbox {
    pub(crate) queue: VecDeque<Bytes>,
    /// Set by the driver when it found the queue empty.
    pub(crate) waker: Option<Waker>,
    /// The close frame queued so far, if any: no data may follow it.
    pub(crate) close: Option<(u16, String)>,
    pub(crate) terminated: bool,
    /// The connection is gone: nothing will be written any more.
    ended: bool,
}

impl Outbox {
    /// Whether a data frame (or a first close frame) may still be queued.
    fn accepts_data(&self) -> bool {
        self.close.is_none() && !self.terminated && !self.ended
    }
}

impl Core {
    pub(crate) fn new(
        remote_addr: Option<SocketAddr>,
        protocol: Option<Box<str>>,
        limit: usize,
        close_on_limit: bool,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            remote_addr,
            protocol,
            state: AtomicU8::new(ReadyState::Open as u8),
            buffered: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            needs_drain: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            limit,
            close_on_limit,
            outbox: Mutex::new(Outbox::default()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Outbox> {
        // Nothing panics while holding the lock; recover rather than spread a poison.
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Moves every queued frame into `into` (which must be empty); returns
    /// false, and arranges for `waker` to be woken by the next send, when
    /// there were none: everything queued has then been written.
    pub(crate) fn take_queue(&self, into: &mut VecDeque<Bytes>, waker: &Waker) -> bool {
        let mut outbox = self.lock();
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

    /// Whether `drain` is due, once.
    pub(crate) fn take_drain(&self) -> bool {
        self.drained.load(Ordering::Acquire) && self.drained.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn over_limit(&self) -> bool {
        self.buffered() > self.limit
    }

    fn send_data(&self, opcode: OpCode, payload: Bytes) -> SendStatus {
        let (head, body) = encode(opcode, payload);
        let len = head.len() + body.as_ref().map_or(0, Bytes::len);
        let mut outbox = self.lock();
        if !outbox.accepts_data() {
            return SendStatus::Dropped;
        }
        if self.over_limit() {
            drop(outbox);
            self.needs_drain.store(true, Ordering::Release);
            if self.close_on_limit {
                self.begin_close(crate::close_code::POLICY, "backpressure limit");
            }
            return SendStatus::Dropped;
        }
        outbox.queue.push_back(head);
        outbox.queue.extend(body);
        self.push_done(outbox, len)
    }

    pub(crate) fn send_control(&self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        let mut frame = BytesMut::new();
        encode_frame(&mut frame, opcode, payload, None);
        let len = frame.len();
        let mut outbox = self.lock();
        if !outbox.accepts_data() {
            return SendStatus::Dropped;
        }
        outbox.queue.push_back(frame.freeze());
        self.push_done(outbox, len)
    }

    /// The connection is gone: drops whatever is still queued and refuses
    /// every later send.
    pub(crate) fn shut(&self) {
        let queued = {
            let mut outbox = self.lock();
            outbox.ended = true;
            outbox.waker = None;
            std::mem::take(&mut outbox.queue)
        };
        drop(queued);
        // Whatever the driver still held is gone with it too.
        self.buffered.store(0, Ordering::Release);
        self.set_state(ReadyState::Closed);
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
        outbox.close = Some((code, reason.to_owned()));
        outbox.queue.push_back(frame.freeze());
        self.set_state(ReadyState::Closing);
        self.push_done(outbox, len);
        true
    }

    /// Counts `len` newly queued bytes, wakes the driver, reports the status.
    fn push_done(&self, mut outbox: MutexGuard<'_, Outbox>, len: usize) -> SendStatus {
        let buffered = self.buffered.fetch_add(len, Ordering::AcqRel) + len;
        let waker = outbox.waker.take();
        drop(outbox);
        if let Some(waker) = waker {
            waker.wake();
        }
        if buffered > self.limit || self.blocked.load(Ordering::Acquire) {
            self.needs_drain.store(true, Ordering::Release);
            SendStatus::Backpressure
        } else {
            SendStatus::Sent(len)
        }
    }
}

/// A server frame (unmasked, FIN set) as one or two buffers.
fn encode(opcode: OpCode, payload: Bytes) -> (Bytes, Option<Bytes>) {
    let mut head = BytesMut::new();
    if payload.len() <= COPY_LIMIT {
        encode_frame(&mut head, opcode, &payload, None);
        (head.freeze(), None)
    } else {
        encode_header(&mut head, opcode, payload.len());
        (head.freeze(), Some(payload))
    }
}
