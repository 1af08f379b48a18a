//! The handler set: one value per server, shared by every socket.

use std::future::Future;

use bytes::Bytes;

use crate::{Error, Message, WebSocket};

/// What a server does with its sockets, written once for all of them.
///
/// One value is shared (behind an `Arc`) by every connection of a
/// [`WebSocketLayer`](crate::WebSocketLayer), like Bun's `websocket` handlers:
/// state that belongs to one socket lives in [`Handler::Data`], which the
/// upgrade attaches. Every method has a no-op default. Methods are `async`;
/// implement them with `async fn`, as long as the future is `Send`.
///
/// Sends made inside `open`, `message` and `drain` are batched: they leave in
/// one write once the method returns.
///
/// ```
/// use wshub::{Handler, Message, WebSocket};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type Data = ();
///
///     async fn message(&self, ws: &WebSocket, msg: Message) {
///         ws.send(msg);
///     }
/// }
/// # let _ = wshub::WebSocketLayer::new(Echo);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Per-socket data, given to [`Upgrade::accept`](crate::Upgrade::accept).
    /// Use interior mutability (a `Mutex`, atomics) for parts that change.
    type Data: Send + Sync + 'static;

    /// The socket is open; sends from here go out before any reply to the
    /// peer's first message.
    fn open(&self, ws: &WebSocket<Self::Data>) -> impl Future<Output = ()> + Send {
        let _ = ws;
        async {}
    }

    /// A complete text or binary message arrived.
    fn message(&self, ws: &WebSocket<Self::Data>, msg: Message) -> impl Future<Output = ()> + Send {
        let _ = (ws, msg);
        async {}
    }

    /// The socket is closed; runs exactly once per socket, after the close
    /// handshake, an error or an abrupt disconnect (code 1006).
    ///
    /// By then the socket has left every topic, so a "left the room"
    /// [`publish`](WebSocket::publish) from here reaches everyone else;
    /// [`subscriptions`](WebSocket::subscriptions) still lists the topics
    /// it was in, to know which rooms to tell.
    ///
    /// `code` is the peer's close code (1005 if it sent none) when the peer
    /// closed, the code we sent when this side closed or failed the
    /// connection, and 1006 when the connection dropped without a close.
    fn close(
        &self,
        ws: &WebSocket<Self::Data>,
        code: u16,
        reason: &str,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ws, code, reason);
        async {}
    }

    /// `messages` sends or publishes to this socket were dropped because its
    /// queue was over the backpressure limit
    /// ([`Config::backpressure_limit`](crate::Config::backpressure_limit))
    /// since this last ran: the peer missed them, and the app may resync
    /// it once it reads again ([`drain`](Self::drain)), or close it. Drops
    /// are never silent: a [`send`](WebSocket::send) says `Dropped`, and
    /// publishes, which cannot tell every subscriber's fate, are counted
    /// here. Runs in the socket's task, soon after the first drop even if
    /// the peer reads nothing; drops in the meantime are added up.
    fn dropped(
        &self,
        ws: &WebSocket<Self::Data>,
        messages: u32,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ws, messages);
        async {}
    }

    /// The socket's queue was over the backpressure limit, or the peer stopped
    /// reading, and everything queued has now been written.
    fn drain(&self, ws: &WebSocket<Self::Data>) -> impl Future<Output = ()> + Send {
        let _ = ws;
        async {}
    }

    /// The connection failed: a protocol violation, an I/O error or a panic
    /// in a handler. [`close`](Self::close) follows.
    fn error(&self, ws: &WebSocket<Self::Data>, error: Error) -> impl Future<Output = ()> + Send {
        let _ = (ws, error);
        async {}
    }

    /// The peer sent a ping; the pong has already been queued.
    fn ping(&self, ws: &WebSocket<Self::Data>, payload: Bytes) -> impl Future<Output = ()> + Send {
        let _ = (ws, payload);
        async {}
    }

    /// The peer sent a pong.
    fn pong(&self, ws: &WebSocket<Self::Data>, payload: Bytes) -> impl Future<Output = ()> + Send {
        let _ = (ws, payload);
        async {}
    }

    /// The 101 went out but the connection never became a socket: hyper
    /// failed to hand it over ([`Error::Upgrade`], for example the client
    /// left at once, or a server built without upgrade support). No other
    /// method runs for it; `data` is what [`Upgrade::accept`](crate::Upgrade::accept)
    /// was given, back for cleanup (axum's `on_failed_upgrade`).
    fn upgrade_failed(&self, data: Self::Data, error: Error) -> impl Future<Output = ()> + Send {
        let _ = (data, error);
        async {}
    }
}
