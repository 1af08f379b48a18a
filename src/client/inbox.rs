//! The queue between a stream-driven client socket's task and the code
//! reading it: messages in order, bounded in bytes, and how it ended.

use std::any::{Any, TypeId};
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
    /// An empty queue with room, for the next [`Handoff`]'s batch.
    spare: VecDeque<Message>,
    /// The reader, waiting for a message.
    reader: Option<Waker>,
    /// The socket's task, waiting for room.
    writer: Option<Waker>,
    error: Option<Error>,
    end: Option<Closed>,
}

impl State {
    /// No room for another message: at least `capacity` bytes wait (a
    /// message is always taken into an empty queue).
    fn full(&self, capacity: usize) -> bool {
        self.bytes >= capacity && !self.messages.is_empty()
    }

    /// Moves `batch` to the back of the queue: by swapping when the queue
    /// is empty, the common case.
    fn append(&mut self, batch: &mut VecDeque<Message>) {
        self.bytes += batch.iter().map(cost).sum::<usize>();
        if self.messages.is_empty() {
            std::mem::swap(&mut self.messages, batch);
        } else {
            self.messages.append(batch);
        }
    }

    /// Lets go of the lock, then wakes the reader if it waits.
    fn unlock_and_wake(mut this: MutexGuard<'_, Self>) {
        let reader = this.reader.take();
        drop(this);
        if let Some(reader) = reader {
            crate::wake::wake(reader);
        }
    }
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
        if state.full(self.capacity) {
            state.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(msg) = msg.take() {
            state.bytes += cost(&msg);
            state.messages.push_back(msg);
        }
        State::unlock_and_wake(state);
        Poll::Ready(())
    }

    /// Queues `batch`, which the caller made sure fits, then `msg` if the
    /// inbox has room for it (always when the queue is empty), or gives it
    /// back. Returns the room left. `batch` comes back empty, with room.
    fn push(&self, batch: &mut VecDeque<Message>, msg: Message) -> (Result<(), Message>, usize) {
        let mut state = self.lock();
        state.append(batch);
        let pushed = if state.full(self.capacity) {
            Err(msg)
        } else {
            state.bytes += cost(&msg);
            state.messages.push_back(msg);
            Ok(())
        };
        if batch.capacity() == 0 {
            std::mem::swap(batch, &mut state.spare);
        }
        let room = self.capacity.saturating_sub(state.bytes);
        State::unlock_and_wake(state);
        (pushed, room)
    }

    /// Queues `batch`, which the caller made sure fits, and keeps its
    /// memory for the next batch.
    fn push_batch(&self, batch: &mut VecDeque<Message>) {
        let mut state = self.lock();
        state.append(batch);
        if batch.capacity() > state.spare.capacity() {
            state.spare = std::mem::take(batch);
        }
        State::unlock_and_wake(state);
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

/// What a message takes of the inbox's capacity: its payload, and its own
/// place in the queue (so that empty messages are bounded too).
fn cost(msg: &Message) -> usize {
    msg.len() + std::mem::size_of::<Message>()
}

/// Messages on their way from a client stream's task to its inbox, taken
/// without a handler future each and queued together: one lock per pass of
/// the driver, not one per message. For any other handler it takes nothing.
///
/// It batches only what fits in the room the inbox had when last locked
/// (the reader only ever makes more), so the inbox's bound is the same as
/// one message at a time. A message that may not fit is queued with the
/// batch under the lock, or given back for `Handler::message`, which waits
/// for room. Dropping the handoff queues what it holds.
pub(crate) struct Handoff<'a> {
    inbox: Option<&'a Inbox>,
    batch: VecDeque<Message>,
    room: usize,
}

impl<'a> Handoff<'a> {
    /// A handoff for `handler`'s socket: a real one when `handler` is the
    /// stream's own [`Forward`], which is known per handler type when the
    /// driver is compiled, so other handlers pay nothing.
    #[inline]
    pub(crate) fn new<H: Handler>(_: &H, ws: &'a WebSocket<H::Data>) -> Self {
        // Constants once `H` is known: the branch is compiled out.
        let inbox = if TypeId::of::<H>() == TypeId::of::<Forward>() {
            let ws: &dyn Any = ws;
            ws.downcast_ref::<WebSocket<Inbox>>().map(WebSocket::data)
        } else {
            None
        };
        Self {
            inbox,
            batch: VecDeque::new(),
            room: 0,
        }
    }

    /// Takes `msg`, or gives it back for `Handler::message`.
    #[inline]
    pub(crate) fn offer(&mut self, msg: Message) -> Result<(), Message> {
        let Some(inbox) = self.inbox else {
            return Err(msg);
        };
        let cost = cost(&msg);
        if cost <= self.room {
            self.room -= cost;
            self.batch.push_back(msg);
            return Ok(());
        }
        let (pushed, room) = inbox.push(&mut self.batch, msg);
        self.room = room;
        pushed
    }
}

impl Handoff<'_> {
    /// Queues what the handoff holds.
    #[inline]
    pub(crate) fn flush(&mut self) {
        if let (Some(inbox), false) = (self.inbox, self.batch.is_empty()) {
            inbox.push_batch(&mut self.batch);
        }
    }
}

impl Drop for Handoff<'_> {
    #[inline]
    fn drop(&mut self) {
        self.flush();
    }
}

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
