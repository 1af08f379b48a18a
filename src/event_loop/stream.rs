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

    /// Whether `bit` is ready; if not, `cx` is woken when it becomes so.
    fn poll_ready(&self, cx: &mut Context<'_>, bit: u8) -> Poll<()> {
        if self.ready.load(Ordering::Acquire) & bit != 0 {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.ready.load(Ordering::Acquire) & bit != 0 {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    fn clear(&self, bit: u8) {
        self.ready.fetch_and(!bit, Ordering::AcqRel);
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

    /// Runs a non-blocking `op` once the stream is `bit`-ready; a
    /// `WouldBlock` clears the bit and waits for the loop's next event.
    /// A short read clears it too (edge-triggered: anything arriving after
    /// it brings a new event), saving the syscall that would fail. A short
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
                        self.slot.clear(bit);
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.slot.clear(bit),
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
