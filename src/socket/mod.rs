//! The socket handle: what handlers and other tasks use to talk to one peer.

mod core;
mod liveness;
mod topics;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub(crate) use self::core::{Core, Settings, Timers};
use crate::Message;
use crate::hub::{Lane, Subscriber, deliver_staged};
use crate::outbox::Outbox;
use crate::protocol::frame::OpCode;

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
        self.core().id()
    }

    /// Where the socket stands in its life.
    pub fn ready_state(&self) -> ReadyState {
        self.core().outbox().phase().ready_state()
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

    /// Queues a text or binary message, compressed when the socket
    /// negotiated `permessage-deflate` and the layer compresses.
    pub fn send(&self, msg: impl Into<Message>) -> SendStatus {
        self.send_with(msg, true)
    }

    /// Queues a message, compressed only if `compress` is true and the socket
    /// negotiated compression (Bun's `send(message, compress)`).
    pub fn send_with(&self, msg: impl Into<Message>, compress: bool) -> SendStatus {
        let msg = msg.into();
        let opcode = if msg.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let status = self.core().send_data(opcode, msg.into_bytes(), compress);
        if status != SendStatus::Dropped {
            crate::telemetry::sent();
        }
        status
    }

    /// Queues a text message.
    pub fn send_text(&self, text: impl Into<String>) -> SendStatus {
        self.core()
            .send_data(OpCode::Text, Bytes::from(text.into()), true)
    }

    /// Queues a binary message.
    pub fn send_binary(&self, bytes: impl Into<Bytes>) -> SendStatus {
        self.core().send_data(OpCode::Binary, bytes.into(), true)
    }

    /// Queues a ping; a payload over 125 bytes is cut to 125. Like a
    /// message, it is `Dropped` while the socket is over its backpressure
    /// limit (pongs the server answers pings with are too).
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
        deliver_staged();
        self.core().outbox().begin_close(code, reason);
    }

    /// Drops the connection at once, without a close frame; `close` runs with 1006.
    pub fn terminate(&self) {
        deliver_staged();
        self.core().outbox().terminate();
    }

    /// Bytes queued and not yet written to the connection.
    pub fn buffered_amount(&self) -> usize {
        self.core().outbox().buffered()
    }

    /// Batches the sends made inside `f` into one write.
    ///
    /// Sends made inside the handler's `open`, `message` and `drain` are
    /// batched already; `cork` is for sends from other tasks.
    pub fn cork<R>(&self, f: impl FnOnce(&Self) -> R) -> R {
        struct Uncork<'a>(&'a Outbox);
        impl Drop for Uncork<'_> {
            fn drop(&mut self) {
                self.0.uncork();
            }
        }
        deliver_staged();
        self.core().outbox().cork();
        let _uncork = Uncork(self.core().outbox());
        f(self)
    }
}

impl<T: Send + Sync + 'static> WebSocket<T> {
    /// Subscribes to `topic`; false if it already was, or the socket is closed.
    pub fn subscribe(&self, topic: &str) -> bool {
        self.core()
            .subscribe(topic, || Arc::clone(&self.inner) as Arc<dyn Subscriber>)
    }

    /// Leaves `topic`; false if it was not subscribed, or the socket is
    /// closed (it has left every topic then).
    pub fn unsubscribe(&self, topic: &str) -> bool {
        self.core().unsubscribe(topic)
    }

    /// Whether the socket is subscribed to `topic`; once closed, whether it
    /// was when it closed.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.core().is_subscribed(topic)
    }

    /// The topics the socket is subscribed to. Once closed (in
    /// [`Handler::close`](crate::Handler::close) and after), the topics it
    /// was in when it closed: it has left them, but the app can still see
    /// which rooms to tell.
    pub fn subscriptions(&self) -> Vec<String> {
        self.core().subscription_names()
    }

    /// The hub this socket's topics live in: publish to everyone (this
    /// socket included), count subscribers, list topics.
    pub fn hub(&self) -> crate::Hub {
        crate::Hub::from_inner(Arc::clone(&self.core().hub))
    }

    /// This socket as the hub holds it.
    pub(crate) fn subscriber(&self) -> Arc<dyn Subscriber> {
        Arc::clone(&self.inner) as Arc<dyn Subscriber>
    }

    /// Publishes to every subscriber of `topic` but this socket (unless
    /// `publish_to_self` is configured), whether or not this socket is
    /// subscribed itself. Returns how many sockets it reached.
    ///
    /// The frame is encoded once and shared by every subscriber's queue;
    /// subscribers that negotiated compression get it compressed (once, by
    /// the shared compressor, or by each dedicated one).
    ///
    /// Inside a handler, a publish to a topic this socket is in is queued
    /// when the socket task's current poll ends, together with the other
    /// publishes of that poll (a burst then costs one lock of the topic, not
    /// one per message); it returns the topic's subscriber count, this socket
    /// aside unless it publishes to itself. Order is kept: a send, a close
    /// or a change of subscriptions made afterwards on the same thread
    /// queues what was published first.
    pub fn publish(&self, topic: &str, msg: impl Into<Message>) -> usize {
        self.publish_with(topic, msg, true)
    }

    /// [`publish`](Self::publish), telling how many subscribers got the
    /// message at once, behind backpressure, or not at all (see
    /// [`Hub::publish_counted`](crate::Hub::publish_counted)). Delivered at
    /// once, not at the end of the handler's turn, so it can be counted;
    /// what this socket published before still goes first.
    pub fn publish_counted(&self, topic: &str, msg: impl Into<Message>) -> crate::Published {
        let exclude = (!self.core().publish_to_self).then_some(self.id());
        self.core()
            .hub
            .publish_counted(topic, &msg.into(), exclude, true)
    }

    /// [`publish`](Self::publish), compressed only if `compress` is true
    /// (Bun's `publish(topic, message, compress)`).
    pub fn publish_with(&self, topic: &str, msg: impl Into<Message>, compress: bool) -> usize {
        self.core().publish(topic, msg.into(), compress)
    }
}

impl<T: Send + Sync + 'static> Subscriber for Socket<T> {
    fn id(&self) -> u64 {
        self.core.id()
    }

    fn lane(&self) -> Lane {
        self.core.lane()
    }

    fn outbox(&self) -> &Outbox {
        self.core.outbox()
    }

    fn send_own(&self, opcode: OpCode, payload: &Bytes, compress: bool) -> SendStatus {
        self.core.send_own(opcode, payload, compress)
    }

    fn sweep(&self, now: u32) -> Option<Duration> {
        self.core.sweep(now)
    }
}
