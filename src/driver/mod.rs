//! The connection driver: one future per socket that reads frames, calls
//! the handler, writes queued frames in batches, keeps the timers and runs
//! the close handshake (RFC 6455 §7). It runs on a socket loop (see
//! [`crate::event_loop`]) when its stream is plain TCP from wshub's own
//! server, and as a tokio task of its own otherwise.
//!
//! An idle socket costs its future, its shared state and its stream's
//! registration: no read buffer (reads land in a per-thread buffer), and
//! every handler future and the close handshake are boxed only while they
//! run (`message` in a box reused through a burst), so they do not size
//! every idle socket. The future is under 280 bytes, whatever the
//! handler (see the test at the end). Per idle socket of a chat room on a loop,
//! on the heap: the future in a box, the loop's node for it (80) and its
//! readiness slot (48), the socket's `Arc` (`Core`, 248, and the typed
//! data), and the hub's and the topic's entries (about 130, amortized);
//! nothing aligned to more than 16 bytes (`tests/idle_memory.rs` counts
//! the blocks). On a task of its own, tokio's cell (384 bytes, aligned to
//! 128) and I/O registration (256, aligned to 128) replace the box, the
//! node and the slot, and glibc adds some 290 bytes of fragments around
//! them.

mod connection;
mod transport;
pub(crate) mod turn;

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_util::future::OptionFuture;
use tokio::time::Instant;
use tracing::Instrument as _;

pub(crate) use self::connection::panic_message;
use self::connection::{Connection, End, Event, Then};
pub(crate) use self::transport::Transport;
use self::transport::Unwrapped;
use self::turn::Turn;
#[cfg(feature = "client")]
use crate::client::Handoff;
use crate::deflate::{Inflater, Negotiated, Outgoing};
use crate::hub::HubInner;
use crate::protocol::{Role, close_code};
use crate::socket::{Core, Settings, Timers};
use crate::upgrade::AcceptedConn;
use crate::{Config, Error, Handler, Hub, WebSocket, telemetry};

/// Starts the task of an accepted connection once hyper hands over the stream.
pub(crate) fn spawn<H: Handler>(
    handler: Arc<H>,
    config: Arc<Config>,
    hub: &Hub,
    conn: AcceptedConn,
) {
    let AcceptedConn {
        on_upgrade,
        data,
        protocol,
        remote_addr,
        deflate,
        path,
        http2,
        colocate,
        ..
    } = conn;
    let Ok(data) = data.downcast::<H::Data>() else {
        // The extractor checks the type against the layer, so this cannot happen.
        tracing::error!("upgrade data does not match the handler's data type");
        return;
    };
    let hub = Arc::clone(hub.inner());
    // This small task only waits for hyper; the socket's own task, spawned
    // from it, holds nothing but what the connection needs.
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade failed");
                handler.upgrade_failed(*data, Error::Upgrade(error)).await;
                return;
            }
        };
        telemetry::upgraded(http2);
        let Unwrapped {
            transport,
            prefix,
            peer,
        } = Transport::from_upgraded(upgraded);
        // A plain TCP stream leaves tokio's reactor for a socket loop.
        #[cfg(unix)]
        let transport = match transport.into_loop(colocate) {
            Ok(transport) => transport,
            Err(error) => {
                tracing::debug!(%error, "cannot move the connection to a socket loop");
                handler.upgrade_failed(*data, Error::Io(error)).await;
                return;
            }
        };
        let open = Open {
            transport,
            prefix,
            role: Role::Server,
            remote_addr: remote_addr.or(peer),
            protocol,
            deflate,
            path,
        };
        start(handler, config, hub, *data, open);
    });
}

/// A connection whose opening handshake is done, on either side.
pub(crate) struct Open {
    pub(crate) transport: Transport,
    /// Bytes read past the handshake: the start of the first frames.
    pub(crate) prefix: Bytes,
    pub(crate) role: Role,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) protocol: Option<Box<str>>,
    pub(crate) deflate: Option<Negotiated>,
    /// The request path, for the connection's tracing span.
    pub(crate) path: Box<str>,
}

/// Spawns the task of a socket whose handshake is done, and returns the
/// socket's handle.
pub(crate) fn start<H: Handler>(
    handler: Arc<H>,
    config: Arc<Config>,
    hub: Arc<HubInner>,
    data: H::Data,
    open: Open,
) -> WebSocket<H::Data> {
    let Open {
        transport,
        prefix,
        role,
        remote_addr,
        protocol,
        deflate,
        path,
    } = open;
    let settings = Settings {
        backpressure_limit: config.backpressure_limit,
        close_on_backpressure_limit: config.close_on_backpressure_limit,
        publish_to_self: config.publish_to_self,
        timers: Timers {
            idle_timeout: config.idle_timeout,
            send_pings: config.send_pings,
            reset_on_send: config.reset_idle_timeout_on_send,
            max_lifetime: config.max_lifetime,
        },
        role,
    };
    let compression = config.compression;
    let outgoing =
        deflate.and_then(|agreed| Outgoing::new(compression.compress, agreed.sent_by(role)));
    let inflater = deflate.map(|agreed| {
        let dedicated = compression.decompress.is_dedicated();
        let (window, takeover) = agreed.received_by(role);
        Inflater::new(dedicated, window, takeover)
    });
    let core = Core::new(hub, settings, remote_addr, protocol, outgoing);
    let ws = WebSocket::new(core, data);
    #[cfg(unix)]
    let home = transport.home();
    #[cfg(not(unix))]
    let home = None;
    let conn = Connection::new(transport, prefix, &config, inflater, role);
    let handle = ws.clone();
    // The span costs every socket 40 bytes and a little per poll: only
    // when someone listens.
    if tracing::enabled!(tracing::Level::DEBUG) {
        let remote = ws.remote_addr().map(tracing::field::display);
        let side = match role {
            Role::Server => "server",
            Role::Client => "client",
        };
        let span = tracing::debug_span!("websocket", id = ws.id(), remote, %path, side);
        let ws = Registered::open(ws);
        launch(home, Turn::new(run(handler, conn, ws)).instrument(span));
    } else {
        launch(home, Turn::new(run(handler, conn, Registered::open(ws))));
    }
    handle
}

/// Where a socket's future runs: its socket loop, or a task of its own.
#[cfg(unix)]
type Home = Option<crate::event_loop::Loop>;
#[cfg(not(unix))]
type Home = Option<std::convert::Infallible>;

fn launch(home: Home, socket: impl Future<Output = ()> + Send + 'static) {
    match home {
        #[cfg(unix)]
        Some(home) => home.spawn(Box::pin(socket)),
        #[cfg(not(unix))]
        Some(never) => match never {},
        None => {
            tokio::spawn(socket);
        }
    }
}

/// The life of one socket, from `open` to `close`.
///
/// A function returning an `async move` block, not an `async fn`: the block
/// keeps each captured value once, where an `async fn` would also copy its
/// parameters into locals, doubling the size of every idle socket's task.
/// One block, using what it captured in place: a second future for the
/// loop would keep three more references in every idle task.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its parameters twice"
)]
fn run<H: Handler>(
    handler: Arc<H>,
    mut conn: Connection,
    ws: Registered<H::Data>,
) -> impl Future<Output = ()> + Send {
    async move {
        tracing::debug!("open");
        // `message`'s future lives in a box made for the first message of
        // a burst and reused for the next ones (no allocation per message),
        // let go of whenever the socket waits (no memory while idle).
        let mut message = None;
        let mut next = Running::Boxed(Box::pin(handler.open(&ws.0)));
        let end = loop {
            if let Err(error) = conn.drive(ws.0.core(), next).await {
                break conn.fail(ws.0.core(), error);
            }
            // Messages are handled inside this poll, each future in the
            // reused box, polled at once: one that finishes there (most do)
            // costs no trip through the task's own loop. One that waits is
            // driven below, with the connection writing meanwhile.
            let step = poll_fn(|cx| {
                let mut handoff = Handoff::new(&*handler, &ws.0);
                loop {
                    let msg = match conn.poll_event(cx, ws.0.core()) {
                        Poll::Ready(Event::Message(msg)) => msg,
                        Poll::Ready(event) => return Poll::Ready(Step::Event(event)),
                        Poll::Pending => {
                            message = None;
                            return Poll::Pending;
                        }
                    };
                    let Err(msg) = handoff.offer(msg) else {
                        continue;
                    };
                    // What the handoff holds goes first: order is kept.
                    handoff.flush();
                    let fut = reuse(&mut message, handler.message(&ws.0, msg));
                    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                        Ok(Poll::Ready(_)) => {}
                        Ok(Poll::Pending) => return Poll::Ready(Step::Waiting),
                        Err(panic) => return Poll::Ready(Step::Panicked(panic)),
                    }
                }
            })
            .await;
            // Decided in plain functions, so the event is not kept across
            // the handler's `.await`; every handler future is boxed, so
            // none of them sizes the idle task.
            next = match step {
                Step::Waiting => match message.as_mut() {
                    Some(fut) => Running::Message(fut.as_mut()),
                    None => Running::Boxed(Box::pin(async {})),
                },
                Step::Panicked(panic) => {
                    let error = Error::HandlerPanicked(panic_message(&*panic));
                    break conn.fail(ws.0.core(), error);
                }
                Step::Event(event) => match handling(&*handler, &ws.0, event) {
                    Ok(next) => Running::Boxed(next),
                    Err(end) => break *end,
                },
            };
        };
        Box::pin(close(&*handler, &mut conn, &ws.0, end)).await;
    }
}

/// What a pass of reading and handling messages ended with.
enum Step {
    /// A message's future is waiting, in the reused box.
    Waiting,
    /// A message's handler panicked.
    Panicked(Box<dyn std::any::Any + Send>),
    /// Something else for the handler, or the end.
    Event(Event),
}

/// Without the client, every message goes through `Handler::message`.
#[cfg(not(feature = "client"))]
struct Handoff;

#[cfg(not(feature = "client"))]
impl Handoff {
    fn new<H: Handler>(_: &H, _: &WebSocket<H::Data>) -> Self {
        Self
    }

    #[expect(
        clippy::unused_self,
        reason = "the client's handoff has the same shape"
    )]
    fn offer(&mut self, msg: crate::Message) -> Result<(), crate::Message> {
        Err(msg)
    }

    #[expect(
        clippy::unused_self,
        reason = "the client's handoff has the same shape"
    )]
    fn flush(&mut self) {}
}

/// A handler future, boxed: it exists only while the handler runs, so an
/// idle socket's task has no room for it.
type Handling<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A running handler future: in a box of its own, or in the reused box of
/// `message`'s futures.
enum Running<'a, F> {
    Boxed(Handling<'a>),
    Message(Pin<&'a mut OptionFuture<F>>),
}

impl<F: Future<Output = ()>> Future for Running<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match self.get_mut() {
            Self::Boxed(fut) => fut.as_mut().poll(cx),
            Self::Message(fut) => fut.as_mut().poll(cx).map(|_| ()),
        }
    }
}

/// `fut` in `slot`'s box: the box already there (the previous future, done,
/// is dropped in place), or a new one.
fn reuse<F: Future>(
    slot: &mut Option<Pin<Box<OptionFuture<F>>>>,
    fut: F,
) -> Pin<&mut OptionFuture<F>> {
    let fut = OptionFuture::from(Some(fut));
    let boxed = match slot {
        Some(boxed) => {
            boxed.set(fut);
            boxed
        }
        None => slot.insert(Box::pin(fut)),
    };
    boxed.as_mut()
}

/// The handler's future for `event` (the driver runs messages in a reused
/// box instead), or how the connection ended.
fn handling<'a, H: Handler>(
    handler: &'a H,
    ws: &'a WebSocket<H::Data>,
    event: Event,
) -> Result<Handling<'a>, Box<End>> {
    Ok(match event {
        Event::Message(msg) => Box::pin(handler.message(ws, msg)),
        Event::Ping(payload) => Box::pin(handler.ping(ws, payload)),
        Event::Pong(payload) => Box::pin(handler.pong(ws, payload)),
        Event::Drain => Box::pin(handler.drain(ws)),
        Event::Dropped(messages) => Box::pin(handler.dropped(ws, messages)),
        Event::End(end) => return Err(end),
    })
}

/// A socket registered with its hub, owned by its task. Dropping it
/// unregisters the socket, leaves its topics and shuts its outbox, whether
/// the task ended normally or was dropped mid-way (the runtime shut down,
/// the task was aborted, a panic outside a handler): `Hub::shutdown` never
/// waits for a socket that is gone, and no topic keeps it. Registered
/// before the task starts, and holding the socket itself rather than a
/// reference to it, so the idle task keeps no extra pointer for it.
struct Registered<T>(WebSocket<T>);

impl<T: Send + Sync + 'static> Registered<T> {
    /// Registers `ws` with its hub; a hub shutting down closes it at once.
    fn open(ws: WebSocket<T>) -> Self {
        let core = ws.core();
        if !core.hub.opened(ws.subscriber()) {
            core.outbox()
                .begin_close(close_code::AWAY, "server shutting down");
        }
        Self(ws)
    }
}

impl<T> Drop for Registered<T> {
    fn drop(&mut self) {
        let core = self.0.core();
        core.end();
        // Only if `close` did not run (the task was dropped): 1006.
        core.hub.closed(core.id(), close_code::ABNORMAL);
    }
}

/// Ends the connection: writes our close frame, leaves the hub, runs
/// `error` and `close`, and waits (bounded) for the peer to hang up.
async fn close<H: Handler>(handler: &H, conn: &mut Connection, ws: &WebSocket<H::Data>, end: End) {
    let core = ws.core();
    let deadline = Instant::now() + conn.close_timeout();
    conn.finish_writes(core, end.then, deadline).await;
    core.end();
    let duration_ms = conn.age().as_millis() as u64;
    tracing::debug!(code = end.code, reason = %end.reason, duration_ms, "close");
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
    // Counted closed once its handlers ran: `Hub::shutdown` waits for this.
    core.hub.closed(core.id(), end.code);
    if end.then == Then::Linger {
        conn.linger(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned_size<A, B, C, R>(_: impl FnOnce(A, B, C) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    struct Nop;
    impl Handler for Nop {
        type Data = ();
    }

    /// Large data, and a message handler that keeps a large buffer across
    /// an `.await`.
    struct Big;
    impl Handler for Big {
        type Data = [u8; 1000];

        async fn message(&self, ws: &WebSocket<[u8; 1000]>, _: crate::Message) {
            let buf = [7u8; 512];
            tokio::task::yield_now().await;
            ws.send_binary(buf.to_vec());
        }
    }

    /// tokio allocates a task as one cell aligned to 128 bytes on x86_64:
    /// 104 bytes of its own (header, scheduler, id, stage tag, trailer)
    /// and the future. Up to 280 bytes of future, every idle socket's task
    /// takes 384 bytes; past it, 512. Boxed handler futures and typed data
    /// behind the socket's `Arc` keep the size the same for every handler
    /// (measured 248 bytes in release, 256 in debug, 2026-11-28).
    #[test]
    fn an_idle_task_fits_in_384_bytes() {
        let size = returned_size(run::<Nop>);
        eprintln!("socket task future: {size} bytes");
        assert!(size <= 280, "the socket task's future grew to {size} bytes");
        assert_eq!(returned_size(run::<Big>), size, "the same for any handler");
    }
}
