//! The connection driver: one task per socket that reads frames, calls the
//! handler, writes queued frames in batches, keeps the timers and runs the
//! close handshake (RFC 6455 §7).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt as _;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::Instrument as _;

use crate::protocol::frame::OpCode;
use crate::protocol::{Decoder, Frame, Role, close_code};
use crate::socket::{Core, Entry, ReadyState, Settings};
use crate::upgrade::AcceptedConn;
use crate::{Config, Error, Handler, Hub, Message, WebSocket};

/// Size of the per-thread buffer that reads land in when no frame is pending.
const SCRATCH_LEN: usize = 64 * 1024;
/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;
/// Bounds on how much to reserve for the rest of a frame in one read.
const MIN_READ: usize = 8 * 1024;
const MAX_READ: usize = 1024 * 1024;

thread_local! {
    /// Reads into this buffer need no memory of their own while a socket is
    /// idle; only the bytes of an unfinished frame are kept per socket.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}

/// Starts the task of an accepted connection once hyper hands over the stream.
pub(crate) fn spawn<H: Handler>(
    handler: Arc<H>,
    config: Arc<Config>,
    hub: Hub,
    conn: AcceptedConn,
) {
    let AcceptedConn {
        on_upgrade,
        data,
        protocol,
        remote_addr,
        ..
    } = conn;
    let Ok(data) = data.downcast::<H::Data>() else {
        // The extractor checks the type against the layer, so this cannot happen.
        tracing::error!("upgrade data does not match the handler's data type");
        return;
    };
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade failed");
                return;
            }
        };
        let new_socket = |remote_addr| {
            let settings = Settings {
                backpressure_limit: config.backpressure_limit,
                close_on_backpressure_limit: config.close_on_backpressure_limit,
                publish_to_self: config.publish_to_self,
            };
            let core = Core::new(Arc::clone(hub.inner()), settings, remote_addr, protocol);
            WebSocket::new(core, *data)
        };
        // A plain hyper connection gives the TCP stream back: use it directly.
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let tcp = parts.io.into_inner();
                let _ = tcp.set_nodelay(true);
                let ws = new_socket(remote_addr.or_else(|| tcp.peer_addr().ok()));
                run(handler, &config, tcp, parts.read_buf, ws).await;
            }
            Err(upgraded) => {
                let ws = new_socket(remote_addr);
                run(
                    handler,
                    &config,
                    TokioIo::<Upgraded>::new(upgraded),
                    Bytes::new(),
                    ws,
                )
                .await;
            }
        }
    });
}

/// The life of one socket, from `open` to `close`.
async fn run<H, IO>(handler: Arc<H>, config: &Config, io: IO, prefix: Bytes, ws: WebSocket<H::Data>)
where
    H: Handler,
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let span = tracing::debug_span!("websocket", id = ws.id(), remote = ?ws.remote_addr());
    live(handler, config, io, prefix, &ws)
        .instrument(span)
        .await;
}

async fn live<H, IO>(
    handler: Arc<H>,
    config: &Config,
    io: IO,
    prefix: Bytes,
    ws: &WebSocket<H::Data>,
) where
    H: Handler,
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let core = ws.core();
    let mut conn = Connection::new(io, prefix, config);
    core.hub.opened();
    tracing::debug!("open");
    let opened = conn.drive(core, handler.open(ws)).await;
    let end = match opened {
        Err(error) => conn.fail(core, error),
        Ok(()) => loop {
            let result = match poll_fn(|cx| conn.poll_event(cx, core)).await {
                Event::Message(msg) => conn.drive(core, handler.message(ws, msg)).await,
                Event::Ping(payload) => conn.drive(core, handler.ping(ws, payload)).await,
                Event::Pong(payload) => conn.drive(core, handler.pong(ws, payload)).await,
                Event::Drain => conn.drive(core, handler.drain(ws)).await,
                Event::End(end) => break end,
            };
            if let Err(error) = result {
                break conn.fail(core, error);
            }
        },
    };
    let deadline = Instant::now() + config.close_timeout;
    conn.finish_writes(core, end.then, deadline).await;
    core.shut();
    core.leave_hub();
    core.hub.closed();
    tracing::debug!(code = end.code, reason = %end.reason, "close");
    if let Some(error) = end.error {
        tracing::debug!(%error, "connection failed");
        if conn.drive(core, handler.error(ws, error)).await.is_err() {
            tracing::warn!("`Handler::error` panicked");
        }
    }
    if conn
        .drive(core, handler.close(ws, end.code, &end.reason))
        .await
        .is_err()
    {
        tracing::warn!("`Handler::close` panicked");
    }
    if end.then == Then::Linger {
        conn.linger(deadline).await;
    }
}

/// What the driver hands to the handler next.
enum Event {
    Message(Message),
    Ping(Bytes),
    Pong(Bytes),
    Drain,
    End(End),
}

/// How a connection ended, and what is left to do with the stream.
struct End {
    code: u16,
    reason: String,
    error: Option<Error>,
    then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Write what is queued (our close frame), shut down our side, and wait
    /// briefly for the peer to close its side, so it reads our close before
    /// the stream goes away.
    Linger,
    /// The peer is gone; there is nothing to write.
    Drop,
}

/// Where the close handshake stands.
#[derive(Debug)]
enum State {
    /// Messages flow both ways.
    Open,
    /// Our close frame is queued; waiting for the peer's until the timer fires.
    ClosedByUs { code: u16, reason: String },
}

struct Connection<IO> {
    io: IO,
    /// Only the bytes of an unfinished frame; empty (no allocation) when idle.
    read_buf: BytesMut,
    decoder: Decoder,
    /// Entries just taken from the outbox (kept for its capacity).
    taken: VecDeque<Entry>,
    /// Frames being written, front partly written.
    writing: VecDeque<Bytes>,
    state: State,
    /// The idle check, or the close deadline once closing.
    timer: Option<Pin<Box<Sleep>>>,
    idle_timeout: Option<Duration>,
    send_pings: bool,
    close_timeout: Duration,
    last_read: Instant,
    ping_sent: bool,
    /// A flush was put off once already in this round (see `defer_flush`).
    deferred: bool,
    write_error: Option<io::Error>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Connection<IO> {
    fn new(io: IO, prefix: Bytes, config: &Config) -> Self {
        let now = Instant::now();
        let timer = config.idle_timeout.map(|idle| {
            let first = if config.send_pings { idle / 2 } else { idle };
            Box::pin(tokio::time::sleep_until(now + first))
        });
        Self {
            io,
            read_buf: BytesMut::from(&prefix[..]),
            decoder: Decoder::new(Role::Server, config.max_payload_length),
            taken: VecDeque::new(),
            writing: VecDeque::new(),
            state: State::Open,
            timer,
            idle_timeout: config.idle_timeout,
            send_pings: config.send_pings,
            close_timeout: config.close_timeout,
            last_read: now,
            ping_sent: false,
            deferred: false,
            write_error: None,
        }
    }

    /// Runs a handler future to completion, writing queued frames while it
    /// waits. A future that finishes at once writes nothing: its sends go out
    /// together with whatever comes next (automatic corking).
    async fn drive(&mut self, core: &Core, fut: impl Future<Output = ()>) -> Result<(), Error> {
        let mut fut = pin!(AssertUnwindSafe(fut).catch_unwind());
        poll_fn(|cx| match fut.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(panic)) => {
                Poll::Ready(Err(Error::HandlerPanicked(panic_message(&*panic))))
            }
            Poll::Pending => {
                if self.write_error.is_none() {
                    if let Poll::Ready(Err(error)) = self.poll_flush(cx, core) {
                        self.write_error = Some(error);
                    }
                }
                Poll::Pending
            }
        })
        .await
    }

    /// Fails the connection: queues a close frame with the error's code.
    fn fail(&mut self, core: &Core, error: Error) -> End {
        let code = error.close_code();
        let then = match error {
            Error::Io(_) => Then::Drop,
            _ => Then::Linger,
        };
        let reason = error.to_string();
        if then == Then::Linger {
            core.begin_close(code, &reason);
        }
        End {
            code,
            reason,
            error: Some(error),
            then,
        }
    }

    /// Reads, decodes and writes until there is something for the handler.
    fn poll_event(&mut self, cx: &mut Context<'_>, core: &Core) -> Poll<Event> {
        loop {
            if let Some(end) = self.check_commands(core) {
                return Poll::Ready(Event::End(end));
            }
            if let Some(error) = self.write_error.take() {
                return Poll::Ready(Event::End(self.fail(core, error.into())));
            }
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(frame)) => match self.on_frame(core, frame) {
                    Some(event) => return Poll::Ready(event),
                    None => continue,
                },
                Ok(None) => {}
                Err(error) => return Poll::Ready(Event::End(self.fail(core, error.into()))),
            }
            if let Some(end) = self.poll_timer(cx, core) {
                return Poll::Ready(Event::End(end));
            }
            if self.defer_flush(cx, core) {
                return Poll::Pending;
            }
            if let Poll::Ready(Err(error)) = self.poll_flush(cx, core) {
                return Poll::Ready(Event::End(self.fail(core, error.into())));
            }
            self.deferred = false;
            // Due once a flush (here or while a handler ran) emptied the queue.
            if core.take_drain() {
                return Poll::Ready(Event::Drain);
            }
            match self.poll_read(cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Event::End(self.peer_gone(None))),
                Poll::Ready(Ok(_)) => {
                    self.last_read = Instant::now();
                    self.ping_sent = false;
                }
                Poll::Ready(Err(error)) => {
                    return Poll::Ready(Event::End(self.peer_gone(Some(error))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Notices `WebSocket::close` and `WebSocket::terminate` from any task.
    fn check_commands(&mut self, core: &Core) -> Option<End> {
        if core.ready_state() == ReadyState::Open {
            return None;
        }
        let outbox = core.lock();
        if outbox.terminated {
            return Some(End {
                code: close_code::ABNORMAL,
                reason: "terminated".to_owned(),
                error: None,
                then: Then::Drop,
            });
        }
        if let (State::Open, Some((code, reason))) = (&self.state, &outbox.close) {
            self.state = State::ClosedByUs {
                code: *code,
                reason: reason.clone(),
            };
            let deadline = Instant::now() + self.close_timeout;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        None
    }

    /// What a decoded frame means in the current state.
    fn on_frame(&mut self, core: &Core, frame: Frame) -> Option<Event> {
        let open = matches!(self.state, State::Open);
        match frame {
            // After our close frame, data is read and dropped (RFC 6455 §1.4).
            Frame::Message(msg) => open.then_some(Event::Message(msg)),
            Frame::Ping(payload) if open => {
                core.send_control(OpCode::Pong, &payload);
                Some(Event::Ping(payload))
            }
            Frame::Pong(payload) if open => Some(Event::Pong(payload)),
            Frame::Ping(_) | Frame::Pong(_) => None,
            Frame::Close(body) => Some(Event::End(match &self.state {
                State::Open => {
                    // Echo the peer's code (an empty body if it sent none).
                    core.begin_close(body.code, "");
                    End {
                        code: body.code,
                        reason: body.reason,
                        error: None,
                        then: Then::Linger,
                    }
                }
                State::ClosedByUs { code, reason } => End {
                    code: *code,
                    reason: reason.clone(),
                    error: None,
                    then: Then::Linger,
                },
            })),
        }
    }

    /// EOF or a read error: the peer left without finishing a close handshake.
    fn peer_gone(&mut self, error: Option<io::Error>) -> End {
        let (code, reason) = match &self.state {
            State::ClosedByUs { code, reason } => (*code, reason.clone()),
            State::Open => (close_code::ABNORMAL, String::new()),
        };
        End {
            code,
            reason,
            error: error.map(Error::Io),
            then: Then::Drop,
        }
    }

    /// Idle pings and timeouts, and the close deadline.
    fn poll_timer(&mut self, cx: &mut Context<'_>, core: &Core) -> Option<End> {
        loop {
            let timer = self.timer.as_mut()?;
            if timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            if let State::ClosedByUs { code, reason } = &self.state {
                return Some(End {
                    code: *code,
                    reason: reason.clone(),
                    error: None,
                    then: Then::Linger,
                });
            }
            // The timer is re-armed lazily: reads only record the time.
            let idle = self.idle_timeout?;
            let silent = self.last_read.elapsed();
            if silent >= idle {
                core.begin_close(close_code::AWAY, "idle timeout");
                return Some(End {
                    code: close_code::AWAY,
                    reason: "idle timeout".to_owned(),
                    error: None,
                    then: Then::Linger,
                });
            }
            if self.send_pings && !self.ping_sent && silent >= idle / 2 {
                core.send_control(OpCode::Ping, b"");
                self.ping_sent = true;
            }
            let wait = if self.send_pings && !self.ping_sent {
                idle / 2
            } else {
                idle
            };
            timer.as_mut().reset(self.last_read + wait);
        }
    }

    /// Puts off writing new frames until the tasks already woken have run:
    /// publishers and other sockets then add to this socket's queue first,
    /// and it all leaves in one write (uWebSockets' cork for a whole pass of
    /// the event loop). Returns true when the caller should return `Pending`.
    fn defer_flush(&mut self, cx: &mut Context<'_>, core: &Core) -> bool {
        if self.deferred || !self.writing.is_empty() || !core.has_pending() {
            return false;
        }
        self.deferred = true;
        // A fresh `yield_now` polled once schedules this task behind the
        // others (tokio defers the wake until after the I/O driver ran).
        pin!(tokio::task::yield_now()).poll(cx).is_pending()
    }

    /// Writes queued frames until none are left (`Ready(Ok)`) or the stream
    /// is full (`Pending`). One vectored write takes many frames at once.
    fn poll_flush(&mut self, cx: &mut Context<'_>, core: &Core) -> Poll<io::Result<()>> {
        loop {
            if self.writing.is_empty() {
                if !core.take_queue(&mut self.taken, cx.waker()) {
                    return Pin::new(&mut self.io).poll_flush(cx);
                }
                self.writing
                    .extend(self.taken.drain(..).map(Entry::into_bytes));
            }
            let io = Pin::new(&mut self.io);
            let result = match self.writing.as_slices() {
                // One buffer: a plain write (`send`), cheaper than `writev`.
                ([only], []) | ([], [only]) => io.poll_write(cx, only),
                _ => {
                    let mut slices = [IoSlice::new(&[]); MAX_IOV];
                    let count = self.writing.len().min(MAX_IOV);
                    for (slice, buf) in slices.iter_mut().zip(&self.writing) {
                        *slice = IoSlice::new(buf);
                    }
                    io.poll_write_vectored(cx, &slices[..count])
                }
            };
            match result {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => {
                    advance(&mut self.writing, written);
                    core.written(written);
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    core.set_blocked();
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
            self.read_buf.reserve(rest.clamp(MIN_READ, MAX_READ));
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

    /// Writes what is still queued and shuts down our side, by `deadline`.
    async fn finish_writes(&mut self, core: &Core, then: Then, deadline: Instant) {
        core.set_state(ReadyState::Closing);
        if then == Then::Drop {
            return;
        }
        let flush_and_shutdown = async {
            poll_fn(|cx| self.poll_flush(cx, core)).await?;
            poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await
        };
        let _ = tokio::time::timeout_at(deadline, flush_and_shutdown).await;
    }

    /// Reads and drops until the peer closes its side, or `deadline`.
    async fn linger(&mut self, deadline: Instant) {
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

/// Drops `n` written bytes from the front of the queue.
fn advance(queue: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = queue.front_mut() else {
            return;
        };
        if n < front.len() {
            front.advance(n);
            return;
        }
        n -= front.len();
        queue.pop_front();
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
