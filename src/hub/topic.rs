//! One topic: its subscribers and the fan-out of a publish.

use foldhash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};

use super::batch::Batch;
use crate::protocol::frame::OpCode;
use crate::protocol::{encode_frame, encode_header};
use crate::socket::{COPY_LIMIT, Core};

/// A socket as a topic sees it.
pub(crate) trait Subscriber: Send + Sync {
    fn core(&self) -> &Core;
}

/// A named topic and the sockets subscribed to it.
pub(crate) struct Topic {
    name: Arc<str>,
    state: Mutex<State>,
}

struct State {
    subscribers: Vec<Arc<dyn Subscriber>>,
    /// Socket id → position in `subscribers`, for O(1) removal.
    index: HashMap<u64, usize>,
    /// Where small frames published now are appended.
    batch: Option<Arc<Batch>>,
    /// Dropped from the hub's map once empty: joining it again means finding
    /// (or making) the topic anew.
    removed: bool,
}

impl Topic {
    pub(crate) fn new(name: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            name,
            state: Mutex::new(State {
                subscribers: Vec::new(),
                index: HashMap::default(),
                batch: None,
                removed: false,
            }),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a subscriber; false if the topic was removed from the hub meanwhile.
    pub(crate) fn add(&self, subscriber: Arc<dyn Subscriber>) -> bool {
        let mut state = self.lock();
        if state.removed {
            return false;
        }
        let id = subscriber.core().id;
        if !state.index.contains_key(&id) {
            let at = state.subscribers.len();
            state.subscribers.push(subscriber);
            state.index.insert(id, at);
        }
        true
    }

    /// Removes a subscriber; returns whether the topic is now empty.
    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut state = self.lock();
        if let Some(at) = state.index.remove(&id) {
            let gone = state.subscribers.swap_remove(at);
            // Its cursor must not count for the subscribers that remain.
            if let Some(batch) = &state.batch {
                gone.core().close_cursor_on(batch);
            }
            if let Some(moved) = state.subscribers.get(at) {
                let moved = moved.core().id;
                state.index.insert(moved, at);
            }
        }
        if state.subscribers.is_empty() {
            state.batch = None;
            state.index = HashMap::default();
            state.subscribers = Vec::new();
        }
        state.subscribers.is_empty()
    }

    /// Marks the topic removed if it is still empty; returns whether it did.
    pub(crate) fn remove_if_empty(&self) -> bool {
        let mut state = self.lock();
        state.removed = state.subscribers.is_empty();
        state.removed
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Frames `payload` once and queues it to every subscriber but `exclude`;
    /// returns how many it reached.
    ///
    /// While every recipient's queue holds an open cursor into the topic's
    /// batch, this appends the frame and touches no subscriber at all; the
    /// first publish into a batch opens the cursors (skipping sockets that
    /// are closing or over their backpressure limit).
    pub(crate) fn publish(&self, opcode: OpCode, payload: &Bytes, exclude: Option<u64>) -> usize {
        let mut state = self.lock();
        let sender = exclude
            .and_then(|id| state.index.get(&id))
            .map(|&at| Arc::clone(&state.subscribers[at]));
        if payload.len() > COPY_LIMIT {
            // Large payloads are shared as they are, behind one shared header.
            let mut head = BytesMut::new();
            encode_header(&mut head, opcode, payload.len());
            let head = head.freeze();
            return state
                .subscribers
                .iter()
                .filter(|s| Some(s.core().id) != exclude)
                .filter(|s| s.core().deliver_pair(&head, payload))
                .count();
        }
        let recipients = state.subscribers.len() - usize::from(sender.is_some());
        // The sender's own message must fall outside its cursor.
        if let (Some(sender), Some(batch)) = (&sender, &state.batch) {
            sender.core().close_cursor_on(batch);
        }
        let (batch, appended) = loop {
            if let Some(batch) = &state.batch {
                let write = |buf: &mut BytesMut| encode_frame(buf, opcode, payload, None);
                if let Some(appended) = batch.append(recipients, write) {
                    break (Arc::clone(batch), appended);
                }
            }
            state.batch = Some(Batch::new());
        };
        let reached = if appended.all_covered {
            recipients
        } else {
            state
                .subscribers
                .iter()
                .filter(|s| Some(s.core().id) != exclude)
                .filter(|s| s.core().deliver_cursor(&batch, &appended.range))
                .count()
        };
        if let Some(sender) = sender {
            sender.core().reopen_cursor(&batch, appended.range.end);
        }
        reached
    }
}
