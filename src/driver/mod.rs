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
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use tokio::time::Instant;
use tracing::Instrument as _;

use self::connection::{Connection, End, Event, Then};
pub(crate) use self::transport::Transport;
use self::transport::Unwrapped;
use self::turn::Turn;
use crate::deflate::{Inflater, Negotiated, Outgoing};
use crate::hub::HubInner;
use crate::protocol::{Role, close_code};
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
        } = Transport::from_upgraded(upgraded);
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
        idle_timeout: config.idle_timeout,
        send_pings: config.send_pings,
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
    let conn = Connection::new(transport, prefix, config, inflater, role);
    let task = run(handler, conn, ws.clone());
    // The span costs every task 40 bytes and a little per poll: only
    // when someone listens.
    if tracing::enabled!(tracing::Level::DEBUG) {
        let remote = ws.remote_addr().map(tracing::field::display);
        let side = match role {
            Role::Server => "server",
            Role::Client => "client",
        };
        let span = tracing::debug_span!("websocket", id = ws.id(), remote, %path, side);
        tokio::spawn(Turn::new(task).instrument(span));
    } else {
        tokio::spawn(Turn::new(task));
    }
    ws
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
    ws: WebSocket<H::Data>,
) -> impl Future<Output = ()> + Send {
    async move { live(&*handler, &mut conn, &ws).await }
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
        let core = ws.core();
        let open = core.hub.opened(ws.subscriber());
        // From here on the socket leaves the hub however this future ends.
        let _registered = Registered(core);
        if !open {
            core.outbox()
                .begin_close(close_code::AWAY, "server shutting down");
        }
        tracing::debug!("open");
        let end = if let Err(error) = conn.drive(core, Box::pin(handler.open(ws))).await {
            conn.fail(core, error)
        } else {
            loop {
                let result = match poll_fn(|cx| conn.poll_event(cx, core)).await {
                    Event::Message(msg) => conn.drive(core, handler.message(ws, msg)).await,
                    Event::Ping(payload) => {
                        conn.drive(core, Box::pin(handler.ping(ws, payload))).await
                    }
                    Event::Pong(payload) => {
                        conn.drive(core, Box::pin(handler.pong(ws, payload))).await
                    }
                    Event::Drain => conn.drive(core, Box::pin(handler.drain(ws))).await,
                    Event::End(end) => break *end,
                };
                if let Err(error) = result {
                    break conn.fail(core, error);
                }
            }
        };
        Box::pin(close(handler, conn, ws, end)).await;
    }
}

/// A socket registered with its hub. Dropping it unregisters the socket,
/// leaves its topics and shuts its outbox, whether the task ended normally
/// or was dropped mid-way (the runtime shut down, the task was aborted, a
/// panic outside a handler): `Hub::shutdown` never waits for a socket that
/// is gone, and no topic keeps it.
struct Registered<'a>(&'a Core);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let core = self.0;
        core.end();
        core.hub.closed(core.id);
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
    core.hub.closed(core.id);
    if end.then == Then::Linger {
        conn.linger(deadline).await;
    }
}
