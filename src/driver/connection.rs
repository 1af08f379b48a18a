//! One connection's state and the polling that moves it: decode, write,
//! read, timers, and the close handshake's bookkeeping.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use futures_util::future::CatchUnwind;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::transport::Transport;
use crate::deflate::Inflater;
use crate::outbox::Phase;
use crate::protocol::frame::OpCode;
use crate::protocol::{Decoder, Frame, Role, close_code};
use crate::socket::Core;
use crate::{Config, Error, Message};
use crate::{clock, telemetry};

/// Size of the per-thread buffer that reads land in when no frame is pending.
const SCRATCH_LEN: usize = 64 * 1024;
/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;
/// Most bytes gathered into one write for a stream without vectored writes.
const GATHER_LEN: usize = 64 * 1024;
/// Bounds on how much to reserve for the rest of a frame in one read.
const MIN_READ: usize = 8 * 1024;
const MAX_READ: usize = 1024 * 1024;
/// With at least this many bytes queued, a flush waits one pass of the
/// scheduler to gather more frames (see `defer_flush`).
const BURST: usize = 512;
/// A deferred flush waits again while its queue keeps growing, this many
/// passes at most and up to this many bytes.
const MAX_DEFERRALS: u8 = 4;
const DEFER_CAP: usize = 256 * 1024;

thread_local! {
    /// Reads into this buffer need no memory of their own while a socket is
    /// idle; only the bytes of an unfinished frame are kept per socket.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
    /// Frames gathered for a stream without vectored writes: one buffer
    /// per thread, as they are written before the next socket's turn.
    static GATHER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What the driver hands to the handler next.
pub(super) enum Event {
    Message(Message),
    Ping(Bytes),
    Pong(Bytes),
    Drain,
    /// Messages dropped for backpressure since the handler last heard.
    Dropped(u32),
    End(Box<End>),
}

/// How a connection ended, and what is left to do with the stream.
pub(super) struct End {
    pub(super) code: u16,
    pub(super) reason: String,
    pub(super) error: Option<Error>,
    pub(super) then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Then {
    /// Write what is queued (our close frame), shut down our side, and wait
    /// briefly for the peer to close its side, so it reads our close before
    /// the stream goes away.
    Linger,
    /// The peer is gone; there is nothing to write.
    Drop,
}

pub(super) struct Connection {
    io: Transport,
    /// Only the bytes of an unfinished frame; empty (no allocation) when idle.
    read_buf: BytesMut,
    decoder: Decoder,
    /// Frames taken from the outbox, front partly written. A `Vec`, eight
    /// bytes smaller than a `VecDeque`: frames are taken only once all
    /// before them are written, and a partial write moves the rest down.
    writing: Vec<Bytes>,
    /// The close deadline once our close frame is queued (idle sockets are
    /// checked by the hub's sweeper, so an open socket holds no timer).
    timer: Option<Pin<Box<Sleep>>>,
    /// How many passes the flush was put off in this round, and the bytes
    /// queued at the last one (see `defer_flush`).
    deferred: u8,
    deferred_at: u32,
    opened: u32,
    /// [`Config::close_timeout`] in milliseconds (rounded up): four bytes
    /// where the layer's `Arc<Config>` took eight in every idle task.
    close_timeout_ms: u32,
    write_error: Option<io::Error>,
}

impl Connection {
    pub(super) fn new(
        io: Transport,
        prefix: Bytes,
        config: &Config,
        inflater: Option<Inflater>,
        role: Role,
    ) -> Self {
        let mut decoder = Decoder::new(role, config.max_payload_length);
        if let Some(inflater) = inflater {
            decoder = decoder.with_inflater(inflater);
        }
        Self {
            io,
            decoder,
            read_buf: BytesMut::from(&prefix[..]),
            writing: Vec::new(),
            timer: None,
            deferred: 0,
            deferred_at: 0,
            opened: clock::now(),
            close_timeout_ms: millis_rounded_up(config.close_timeout),
            write_error: None,
        }
    }

    /// Runs a handler future to completion, writing queued frames while it
    /// waits. A future that finishes at once writes nothing: its sends go out
    /// together with whatever comes next (automatic corking).
    pub(super) fn drive<'a, F: Future<Output = ()>>(
        &'a mut self,
        core: &'a Core,
        fut: F,
    ) -> Drive<'a, F> {
        Drive {
            conn: self,
            core,
            fut: AssertUnwindSafe(fut).catch_unwind(),
        }
    }

    /// How long the connection has been open.
    pub(super) fn age(&self) -> Duration {
        clock::since(self.opened)
    }

    pub(super) fn close_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.close_timeout_ms))
    }

    /// Fails the connection: queues a close frame with the error's code.
    pub(super) fn fail(&mut self, core: &Core, error: Error) -> End {
        let code = error.close_code();
        let then = match error {
            Error::Io(_) => Then::Drop,
            _ => Then::Linger,
        };
        let reason = error.to_string();
        if then == Then::Linger {
            core.outbox().begin_close(code, &reason);
        }
        End {
            code,
            reason,
            error: Some(error),
            then,
        }
    }

    /// Reads, decodes and writes until there is something for the handler.
    pub(super) fn poll_event(&mut self, cx: &mut Context<'_>, core: &Core) -> Poll<Event> {
        loop {
            if let Some(end) = self.check_commands(core) {
                return Poll::Ready(Event::End(Box::new(end)));
            }
            if let Some(error) = self.write_error.take() {
                return Poll::Ready(Event::End(Box::new(self.fail(core, error.into()))));
            }
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(frame)) => match self.on_frame(core, frame) {
                    Some(event) => return Poll::Ready(event),
                    None => continue,
                },
                Ok(None) => {}
                Err(error) => {
                    return Poll::Ready(Event::End(Box::new(self.fail(core, error.into()))));
                }
            }
            if let Some(end) = self.poll_timer(cx, core) {
                return Poll::Ready(Event::End(Box::new(end)));
            }
            if self.defer_flush(cx, core) {
                return Poll::Pending;
            }
            if let Poll::Ready(Err(error)) = self.poll_flush(cx, core) {
                return Poll::Ready(Event::End(Box::new(self.fail(core, error.into()))));
            }
            self.deferred = 0;
            if let Some(messages) = core.outbox().take_dropped() {
                return Poll::Ready(Event::Dropped(messages));
            }
            // Due once a flush (here or while a handler ran) emptied the queue.
            if core.outbox().take_drain() {
                return Poll::Ready(Event::Drain);
            }
            match self.poll_read(cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Event::End(Box::new(self.peer_gone(core, None))));
                }
                Poll::Ready(Ok(_)) => core.touch(),
                Poll::Ready(Err(error)) => {
                    return Poll::Ready(Event::End(Box::new(self.peer_gone(core, Some(error)))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Acts on the socket's lifecycle as other tasks moved it
    /// (`WebSocket::close`, `WebSocket::terminate`, the idle sweeper).
    fn check_commands(&mut self, core: &Core) -> Option<End> {
        let phase = core.outbox().phase();
        match phase {
            Phase::Open => None,
            Phase::IdleExpired | Phase::LifetimeOver => {
                let (reason, kind) = if phase == Phase::IdleExpired {
                    ("idle timeout", "idle")
                } else {
                    ("max lifetime", "lifetime")
                };
                telemetry::timed_out(kind);
                core.outbox().begin_close(close_code::AWAY, reason);
                Some(End {
                    code: close_code::AWAY,
                    reason: reason.to_owned(),
                    error: None,
                    then: Then::Linger,
                })
            }
            Phase::Closing => {
                // Our close frame is queued: wait for the peer's, bounded.
                if self.timer.is_none() {
                    let deadline = Instant::now() + self.close_timeout();
                    self.timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
                }
                None
            }
            Phase::Terminated | Phase::Closed => Some(End {
                code: close_code::ABNORMAL,
                reason: "terminated".to_owned(),
                error: None,
                then: Then::Drop,
            }),
        }
    }

    /// What a decoded frame means in the current state.
    fn on_frame(&mut self, core: &Core, frame: Frame) -> Option<Event> {
        let open = core.outbox().phase().accepts_data();
        match frame {
            // After our close frame, data is read and dropped (RFC 6455 §1.4).
            Frame::Message(msg) => open.then(|| {
                telemetry::received(msg.len());
                Event::Message(msg)
            }),
            Frame::Ping(payload) if open => {
                core.send_control(OpCode::Pong, &payload);
                Some(Event::Ping(payload))
            }
            Frame::Pong(payload) if open => Some(Event::Pong(payload)),
            Frame::Ping(_) | Frame::Pong(_) => None,
            Frame::Close(body) => Some(Event::End(Box::new(if open {
                // Echo the peer's code (an empty body if it sent none).
                core.outbox().begin_close(body.code, "");
                End {
                    code: body.code,
                    reason: body.reason,
                    error: None,
                    then: Then::Linger,
                }
            } else {
                our_close(core, None, Then::Linger)
            }))),
        }
    }

    /// EOF or a read error: the peer left without finishing a close handshake.
    fn peer_gone(&mut self, core: &Core, error: Option<io::Error>) -> End {
        let error = error.map(Error::Io);
        if core.outbox().phase() == Phase::Closing {
            return our_close(core, error, Then::Drop);
        }
        End {
            code: close_code::ABNORMAL,
            reason: String::new(),
            error,
            then: Then::Drop,
        }
    }

    /// The close deadline, after our close frame.
    fn poll_timer(&mut self, cx: &mut Context<'_>, core: &Core) -> Option<End> {
        let timer = self.timer.as_mut()?;
        if timer.as_mut().poll(cx).is_pending() {
            return None;
        }
        Some(our_close(core, None, Then::Linger))
    }

    /// Puts off writing new frames until the tasks already woken have run:
    /// publishers and other sockets then add to this socket's queue first,
    /// and it all leaves in one write (uWebSockets' cork for a whole pass of
    /// the event loop). Only a socket with a burst queued waits: one or two
    /// frames go out at once, which keeps latency low when traffic is light.
    /// While the queue still grows from one pass to the next (a burst that
    /// arrives over several reads), it waits again, a few passes at most.
    /// Returns true when the caller should return `Pending`.
    fn defer_flush(&mut self, cx: &mut Context<'_>, core: &Core) -> bool {
        if !self.writing.is_empty() {
            return false;
        }
        let pending = core.outbox().pending_bytes();
        let defer = match self.deferred {
            0 => pending >= BURST,
            passes => {
                passes < MAX_DEFERRALS && pending > self.deferred_at as usize && pending < DEFER_CAP
            }
        };
        if !defer {
            return false;
        }
        self.deferred += 1;
        // Below `DEFER_CAP` when it matters; saturated otherwise.
        self.deferred_at = u32::try_from(pending).unwrap_or(u32::MAX);
        // A fresh `yield_now` polled once schedules this task behind the
        // others (tokio defers the wake until after the I/O driver ran).
        pin!(tokio::task::yield_now()).poll(cx).is_pending()
    }

    /// Writes queued frames until none are left (`Ready(Ok)`) or the stream
    /// is full (`Pending`). One vectored write takes many frames at once.
    fn poll_flush(&mut self, cx: &mut Context<'_>, core: &Core) -> Poll<io::Result<()>> {
        let outbox = core.outbox();
        loop {
            if self.writing.is_empty() && !outbox.take(&mut self.writing, cx.waker()) {
                return Pin::new(&mut self.io).poll_flush(cx);
            }
            let count = self.writing.len().min(MAX_IOV);
            let io = Pin::new(&mut self.io);
            let result = if count == 1 || self.writing[0].len() >= GATHER_LEN {
                // One buffer: a plain write (`send`), cheaper than `writev`.
                io.poll_write(cx, &self.writing[0])
            } else if !io.is_write_vectored() {
                // A stream that writes one slice per call (hyper's HTTP/2
                // stream: one DATA frame each, a frame's header apart from
                // its payload) gets the frames gathered into one buffer.
                GATHER.with_borrow_mut(|gather| {
                    gather.clear();
                    for bytes in &self.writing {
                        if !gather.is_empty() && gather.len() + bytes.len() > GATHER_LEN {
                            break;
                        }
                        gather.extend_from_slice(bytes);
                    }
                    io.poll_write(cx, gather)
                })
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                for (slice, bytes) in slices.iter_mut().zip(&self.writing) {
                    *slice = IoSlice::new(bytes);
                }
                io.poll_write_vectored(cx, &slices[..count])
            };
            match result {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => {
                    advance(&mut self.writing, written);
                    outbox.written(written);
                    core.sent();
                    telemetry::written(written);
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    outbox.set_blocked(cx.waker());
                    return Poll::Pending;
                }
            }
        }
    }

    /// Reads more bytes into `read_buf`.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.read_buf.is_empty() {
            // Mid-frame: read straight into the frame's buffer.
            let rest = self.decoder.frame_remaining(self.read_buf.len());
            let end = self.read_buf.len() + rest;
            if rest > 0 && rest <= MAX_READ {
                // The frame's last stretch: into a buffer of exactly its
                // size, reading nothing past its end. Its payload is then
                // the whole allocation: a message queued to a slow reader
                // holds its own bytes, not a grown buffer's slack or the
                // next frames sharing it.
                if self.read_buf.capacity() != end {
                    let mut exact = BytesMut::with_capacity(end);
                    exact.extend_from_slice(&self.read_buf);
                    self.read_buf = exact;
                }
            } else {
                self.read_buf.reserve(rest.clamp(MIN_READ, MAX_READ));
            }
            return tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read_buf);
        }
        // Idle: let go of the last buffer (frames handed out may still share it).
        self.read_buf = BytesMut::new();
        SCRATCH.with(|scratch| {
            let mut fallback;
            let mut borrowed = scratch.try_borrow_mut();
            let buf: &mut [u8] = match &mut borrowed {
                Ok(buf) => buf,
                Err(_) => {
                    fallback = vec![0; MIN_READ];
                    &mut fallback
                }
            };
            let mut read = ReadBuf::new(buf);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            self.read_buf.extend_from_slice(read.filled());
            Poll::Ready(Ok(read.filled().len()))
        })
    }

    /// Writes what is still queued and, on a server, shuts down our side,
    /// by `deadline`. A client leaves closing the TCP connection to the
    /// server (RFC 6455 §7.1.1) and only waits for it, in `linger`.
    pub(super) async fn finish_writes(&mut self, core: &Core, then: Then, deadline: Instant) {
        if then == Then::Drop {
            return;
        }
        let client = core.outbox().masks();
        let flush_and_shutdown = async {
            poll_fn(|cx| self.poll_flush(cx, core)).await?;
            if client {
                return Ok(());
            }
            poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await
        };
        let _ = tokio::time::timeout_at(deadline, flush_and_shutdown).await;
    }

    /// Reads and drops until the peer closes its side, or `deadline`.
    pub(super) async fn linger(&mut self, deadline: Instant) {
        let drain = async {
            loop {
                self.read_buf.clear();
                match poll_fn(|cx| self.poll_read(cx)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, drain).await;
    }
}

pin_project_lite::pin_project! {
    /// A handler future run by [`Connection::drive`]. A hand-written future
    /// rather than an `async fn`, which would keep the handler's future twice
    /// in every connection's task.
    pub(super) struct Drive<'a, F> {
        conn: &'a mut Connection,
        core: &'a Core,
        #[pin]
        fut: CatchUnwind<AssertUnwindSafe<F>>,
    }
}

impl<F: Future<Output = ()>> Future for Drive<'_, F> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.fut.poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(panic)) => {
                Poll::Ready(Err(Error::HandlerPanicked(panic_message(&*panic))))
            }
            Poll::Pending => {
                let conn = this.conn;
                if conn.write_error.is_none() {
                    if let Poll::Ready(Err(error)) = conn.poll_flush(cx, this.core) {
                        conn.write_error = Some(error);
                    }
                }
                Poll::Pending
            }
        }
    }
}

/// Drops `n` written bytes from the front of the queue.
fn advance(queue: &mut Vec<Bytes>, mut n: usize) {
    let mut done = 0;
    for front in queue.iter_mut() {
        let len = front.len();
        if n < len {
            bytes::Buf::advance(front, n);
            break;
        }
        n -= len;
        done += 1;
    }
    queue.drain(..done);
}

/// The end of a close this side started: its code and reason, as queued.
fn our_close(core: &Core, error: Option<Error>, then: Then) -> End {
    let (code, reason) = core
        .outbox()
        .queued_close()
        .unwrap_or((close_code::NORMAL, String::new()));
    End {
        code,
        reason,
        error,
        then,
    }
}

/// `duration` in whole milliseconds, rounded up (a sub-millisecond timeout
/// stays above zero) and saturated at `u32::MAX` (49 days).
fn millis_rounded_up(duration: Duration) -> u32 {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    u32::try_from(millis).unwrap_or(u32::MAX)
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
