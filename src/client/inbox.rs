//! The queue between a stream-driven client socket's task and the code
//! reading it: messages in order, bounded in bytes, and how it ended.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::{Error, Handler, Message, WebSocket};

/// How a client socket's connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Closed {
    /// The close code: the server's (1005 when it sent none), ours when
    /// this side closed, 1006 when the connection dropped.
    pub code: u16,
    /// The close reason.
    pub reason: String,
    /// Why the connection failed, when it did.
    pub error: Option<Error>,
}

/// The data of a [`ClientSocket`](super::ClientSocket)'s socket: received
/// messages waiting to be read.
///
/// Bounded in bytes: while more than the receive buffer waits unread, the
/// socket stops reading from the network, and the server sees the
/// backpressure.
#[derive(Debug)]
pub struct Inbox {
    state: Mutex<State>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    messages: VecDeque<Message>,
    bytes: usize,
    /// The reader, waiting for a message.
    reader: Option<Waker>,
    /// The socket's task, waiting for room.
    writer: Option<Waker>,
    error: Option<Error>,
    end: Option<Closed>,
}

impl Inbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `msg` if there is room (always when the queue is empty).
    fn poll_push(&self, cx: &mut Context<'_>, msg: &mut Option<Message>) -> Poll<()> {
        let mut state = self.lock();
        if state.bytes >= self.capacity && !state.messages.is_empty() {
            state.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(msg) = msg.take() {
            state.bytes += msg.len();
            state.messages.push_back(msg);
        }
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            crate::wake::wake(reader);
        }
        Poll::Ready(())
    }

    /// Moves every queued message into `out`; at the end, how it ended.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        out: &mut VecDeque<Message>,
    ) -> Poll<Option<Closed>> {
        let mut state = self.lock();
        if !state.messages.is_empty() {
            std::mem::swap(out, &mut state.messages);
            state.bytes = 0;
            let writer = state.writer.take();
            drop(state);
            if let Some(writer) = writer {
                writer.wake();
            }
            return Poll::Ready(None);
        }
        if let Some(end) = state.end.take() {
            return Poll::Ready(Some(end));
        }
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn fail(&self, error: Error) {
        self.lock().error = Some(error);
    }

    fn end(&self, code: u16, reason: &str) {
        let mut state = self.lock();
        let error = state.error.take();
        state.end = Some(Closed {
            code,
            reason: reason.to_owned(),
            error,
        });
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// The handler of a stream-driven client socket: everything goes to its inbox.
pub(crate) struct Forward;

impl Handler for Forward {
    type Data = Inbox;

    async fn message(&self, ws: &WebSocket<Inbox>, msg: Message) {
        let mut msg = Some(msg);
        poll_fn(|cx| ws.data().poll_push(cx, &mut msg)).await;
    }

    async fn error(&self, ws: &WebSocket<Inbox>, error: Error) {
        ws.data().fail(error);
    }

    async fn close(&self, ws: &WebSocket<Inbox>, code: u16, reason: &str) {
        ws.data().end(code, reason);
    }
}
