//! The connection driver: one task per socket that reads frames, calls the
//! handler, writes queued frames in batches, keeps the timers and runs the
//! close handshake (RFC 6455 §7).
//!
//! An idle socket costs its task, its shared state and tokio's registration:
//! no read buffer (reads land in a per-thread buffer), and rare or large
//! futures (`open`, `close`, pings, the close handshake) are boxed only while
//! they run, so they do not size every idle task.

mod connection;
mod transport;
mod turn;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::Instrument as _;

use self::connection::{Connection, End, Event, Then};
use self::transport::{Transport, Unwrapped};
use self::turn::Turn;
use crate::deflate::{Inflater, Outgoing};
use crate::protocol::close_code;
use crate::socket::{Core, Settings};
use crate::upgrade::AcceptedConn;
use crate::{Config, Handler, Hub, WebSocket};

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
                return;
            }
        };
        let Unwrapped {
            transport,
            prefix,
            peer,
        } = Transport::unwrap(upgraded);
        let settings = Settings {
            backpressure_limit: config.backpressure_limit,
            close_on_backpressure_limit: config.close_on_backpressure_limit,
            publish_to_self: config.publish_to_self,
            idle_timeout: config.idle_timeout,
            send_pings: config.send_pings,
        };
        let compression = config.compression;
        let outgoing = deflate.and_then(|agreed| Outgoing::new(compression.compress, &agreed));
        let inflater = deflate.map(|agreed| {
            let dedicated = compression.decompress.is_dedicated();
            Inflater::new(dedicated, agreed.client_window, agreed.client_takeover)
        });
        let core = Core::new(hub, settings, remote_addr.or(peer), protocol, outgoing);
        let ws = WebSocket::new(core, *data);
        let conn = Connection::new(transport, prefix, &config, inflater);
        // The span costs every task 40 bytes and a little per poll: only
        // when someone listens.
        if tracing::enabled!(tracing::Level::DEBUG) {
            let remote = ws.remote_addr().map(tracing::field::display);
            let span = tracing::debug_span!("websocket", id = ws.id(), remote, %path);
            let ws = Registered::open(ws);
            tokio::spawn(Turn::new(run(handler, conn, ws)).instrument(span));
        } else {
            tokio::spawn(Turn::new(run(handler, conn, Registered::open(ws))));
        }
    });
}

/// The life of one socket, from `open` to `close`.
///
/// A function returning an `async move` block, not an `async fn`: the block
/// keeps each captured value once, where an `async fn` would also copy its
/// parameters into locals, doubling the size of every idle socket's task.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its parameters twice"
)]
fn run<H: Handler>(
    handler: Arc<H>,
    mut conn: Connection,
    ws: Registered<H::Data>,
) -> impl Future<Output = ()> + Send {
    async move { live(&*handler, &mut conn, &ws.0).await }
}

/// From `open` to `close`, driving `conn`.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its parameters twice"
)]
fn live<'a, H: Handler>(
    handler: &'a H,
    conn: &'a mut Connection,
    ws: &'a WebSocket<H::Data>,
) -> impl Future<Output = ()> + Send + 'a {
    async move {
        tracing::debug!("open");
        let mut next: Handling<'_> = Box::pin(handler.open(ws));
        let end = loop {
            if let Err(error) = conn.drive(ws.core(), next).await {
                break conn.fail(ws.core(), error);
            }
            // Decided in a plain function, so the event is not kept across
            // the handler's `.await`; every handler future is boxed, so none
            // of them sizes the idle task.
            let event = poll_fn(|cx| conn.poll_event(cx, ws.core())).await;
            next = match handling(handler, ws, event) {
                Ok(next) => next,
                Err(end) => break *end,
            };
        };
        Box::pin(close(handler, conn, ws, end)).await;
    }
}

/// A handler future, boxed: it exists only while the handler runs, so an
/// idle socket's task has no room for it.
type Handling<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The handler's future for `event`, or how the connection ended.
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
        core.hub.closed(core.id());
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
    core.hub.closed(core.id());
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
        type Data = [u8; 100];
    }

    /// tokio allocates a task as one cell aligned to 128 bytes on x86_64:
    /// 104 bytes of its own (header, scheduler, id, stage tag, trailer)
    /// and the future. Up to 280 bytes of future, every idle socket's task
    /// takes 384 bytes; past it, 512. Boxed handler futures and typed data
    /// behind the socket's `Arc` keep the size the same for every handler.
    #[test]
    fn an_idle_task_fits_in_384_bytes() {
        let size = returned_size(run::<Nop>);
        eprintln!("socket task future: {size} bytes");
        assert!(size <= 280, "the socket task's future grew to {size} bytes");
        assert_eq!(returned_size(run::<Nop>), size, "same for any handler");
    }
}
