//! A TCP stream served by a socket loop: non-blocking reads and writes on
//! the stream itself, with readiness kept in a small slot that the loop
//! sets from its epoll events.

use std::io::{self, IoSlice, Read as _, Write as _};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Shared;

/// Readiness bits of a slot.
pub(super) const READABLE: u8 = 1;
pub(super) const WRITABLE: u8 = 2;
/// The peer closed its side, or the stream failed: reads find the end or
/// the error at once, however often a read clears `READABLE`.
pub(super) const READ_CLOSED: u8 = 4;
/// The stream can no longer be written: writes find the error at once.
pub(super) const WRITE_CLOSED: u8 = 8;

/// The bits that let `bit` (`READABLE` or `WRITABLE`) go ahead: its own,
/// and the closed state of its direction, which nothing clears.
fn passing(bit: u8) -> u8 {
    if bit == READABLE {
        READABLE | READ_CLOSED
    } else {
        WRITABLE | WRITE_CLOSED
    }
}

/// What the loop knows of one stream: whether it may be read or written
/// without blocking, and the socket's waker to call when that changes.
///
/// Both sides are used only from the loop's task (the loop sets bits
/// between polls of its sockets; a stream clears them inside its socket's
/// poll), so a bit set by an event is never cleared by a read that ran
/// before it.
pub(super) struct IoSlot {
    ready: AtomicU8,
    waker: AtomicWaker,
}

impl IoSlot {
    /// A new stream is assumed ready both ways: the first read or write
    /// finds out (edge-triggered events report only changes).
    pub(super) fn new() -> Self {
        Self {
            ready: AtomicU8::new(READABLE | WRITABLE),
            waker: AtomicWaker::new(),
        }
    }

    /// Marks `bits` ready; returns the waker to call, if one waits.
    pub(super) fn set(&self, bits: u8) -> Option<std::task::Waker> {
        self.ready.fetch_or(bits, Ordering::AcqRel);
        self.waker.take()
    }

    /// Whether `bit` is ready (or its direction closed); if not, `cx` is
    /// woken when it becomes so.
    fn poll_ready(&self, cx: &mut Context<'_>, bit: u8) -> Poll<()> {
        let passing = passing(bit);
        if self.ready.load(Ordering::Acquire) & passing != 0 {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.ready.load(Ordering::Acquire) & passing != 0 {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Clears `bits`.
    fn clear(&self, bits: u8) {
        self.ready.fetch_and(!bits, Ordering::AcqRel);
    }
}

/// A socket's TCP stream, registered with its loop's epoll instead of
/// tokio's reactor.
pub(crate) struct LoopStream {
    io: mio::net::TcpStream,
    slot: Arc<IoSlot>,
    key: u32,
    home: Arc<Shared>,
}

impl LoopStream {
    pub(super) fn new(
        io: mio::net::TcpStream,
        slot: Arc<IoSlot>,
        key: u32,
        home: Arc<Shared>,
    ) -> Self {
        Self {
            io,
            slot,
            key,
            home,
        }
    }

    /// The loop this stream belongs to, where its socket's future runs.
    pub(crate) fn home(&self) -> super::Loop {
        super::Loop(Arc::clone(&self.home))
    }

    /// Runs a non-blocking `op` once the stream is `bit`-ready or its
    /// direction closed; a `WouldBlock` clears both and waits for the
    /// loop's next event. A short read clears `READABLE` too
    /// (edge-triggered: anything arriving after it brings a new event),
    /// saving the syscall that would fail, but not `READ_CLOSED`. A short
    /// write does not: the peer drains the buffer meanwhile, and waiting
    /// for the next event (a third of the buffer free) writes later and in
    /// bigger pieces; tokio's `TcpStream` writes the same way.
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        bit: u8,
        wanted: usize,
        mut op: impl FnMut(&mut mio::net::TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.slot.poll_ready(cx, bit).is_pending() {
                return Poll::Pending;
            }
            match op(&mut self.io) {
                Ok(n) => {
                    if bit == READABLE && n > 0 && n < wanted {
                        // Only `READABLE`: the event that told of the
                        // peer's FIN may have been taken by a look before
                        // this read, which stopped at the end without
                        // reading it, and no event comes after it (tokio
                        // keeps its closed readiness for the same reason).
                        self.slot.clear(READABLE);
                    }
                    return Poll::Ready(Ok(n));
                }
                // A stream that would block is not closed: its closed bit,
                // if set, came from a stale event and goes too (else every
                // poll would try again at once).
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.slot.clear(passing(bit));
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl Drop for LoopStream {
    fn drop(&mut self) {
        // Closing the descriptor removes it from the epoll set; the slot's
        // key goes back to the loop (a late event for it wakes nobody, or
        // the next stream given the key, which then finds nothing to read).
        self.home.release(self.key);
    }
}

impl AsyncRead for LoopStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let unfilled = buf.initialize_unfilled();
        let wanted = unfilled.len();
        let n = std::task::ready!(this.poll_io(cx, READABLE, wanted, |io| io.read(unfilled)))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for LoopStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_io(cx, WRITABLE, buf.len(), |io| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let wanted = bufs.iter().map(|buf| buf.len()).sum();
        self.get_mut()
            .poll_io(cx, WRITABLE, wanted, |io| io.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.io.shutdown(Shutdown::Write))
    }
}
