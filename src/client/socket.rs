//! [`ClientSocket`]: a client connection read as a stream of messages.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::inbox::{Closed, Inbox};
use crate::{Message, ReadyState, SendStatus, WebSocket, close_code};

/// A client connection as a [`Stream`] of the messages the server sends,
/// with the socket's `send` and `close`.
///
/// The connection runs in a task of its own: sends are queued and written
/// whether or not the stream is being read, pings are answered, and idle
/// pings keep it open. Messages wait in a bounded buffer until read (see
/// [`Client::receive_buffer`](super::Client::receive_buffer)). The stream
/// ends after the close handshake, or when the connection drops; then
/// [`closed`](Self::closed) says how.
///
/// Dropping it closes the connection with 1000.
#[derive(Debug)]
pub struct ClientSocket {
    ws: WebSocket<Inbox>,
    /// Messages taken from the inbox in one go, not yet handed out.
    ready: VecDeque<Message>,
    closed: Option<Closed>,
}

impl ClientSocket {
    pub(crate) fn new(ws: WebSocket<Inbox>) -> Self {
        Self {
            ws,
            ready: VecDeque::new(),
            closed: None,
        }
    }

    /// A handle to the socket, to send from other tasks (a [`WebSocket`]
    /// like the server's, whose messages this stream reads).
    pub fn handle(&self) -> WebSocket<Inbox> {
        self.ws.clone()
    }

    /// Queues a text or binary message; see [`WebSocket::send`].
    pub fn send(&self, msg: impl Into<Message>) -> SendStatus {
        self.ws.send(msg)
    }

    /// Queues a message, compressed only if `compress` is true and
    /// compression was negotiated; see [`WebSocket::send_with`].
    pub fn send_with(&self, msg: impl Into<Message>, compress: bool) -> SendStatus {
        self.ws.send_with(msg, compress)
    }

    /// Queues a ping; see [`WebSocket::ping`].
    pub fn ping(&self, payload: impl Into<Bytes>) -> SendStatus {
        self.ws.ping(payload)
    }

    /// Starts the close handshake; the stream ends once the server answers
    /// (or after the close timeout).
    pub fn close(&self, code: u16, reason: &str) {
        self.ws.close(code, reason);
    }

    /// Bytes queued and not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.ws.buffered_amount()
    }

    /// Where the socket stands in its life.
    pub fn ready_state(&self) -> ReadyState {
        self.ws.ready_state()
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.ws.protocol()
    }

    /// How the connection ended, once the stream has.
    pub fn closed(&self) -> Option<&Closed> {
        self.closed.as_ref()
    }
}

impl Stream for ClientSocket {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = self.get_mut();
        if let Some(msg) = this.ready.pop_front() {
            return Poll::Ready(Some(msg));
        }
        if this.closed.is_some() {
            return Poll::Ready(None);
        }
        match this.ws.data().poll_take(cx, &mut this.ready) {
            Poll::Ready(None) => Poll::Ready(this.ready.pop_front()),
            Poll::Ready(Some(closed)) => {
                this.closed = Some(closed);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ClientSocket {
    fn drop(&mut self) {
        if self.ws.ready_state() == ReadyState::Open {
            self.ws.close(close_code::NORMAL, "");
        }
    }
}
