//! The hub's end of a bridge: what [`Bridge`] calls leave for the bridge's
//! task. Nothing here blocks or awaits (the hub calls it under its locks):
//! a publish, or a socket's burst of publishes to one topic, is pushed onto
//! a bounded list under one short lock, a subscription change is a map
//! insert under another; the task is woken only when the list was empty,
//! and takes all of it at once.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use foldhash::HashMap;
use tokio::sync::Notify;

use super::stats::Counters;
use crate::{Bridge, Message};

/// A publish made on this node, on its way to Redis.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Shared by the messages of one burst.
    pub(crate) topic: Arc<str>,
    pub(crate) message: Message,
    pub(crate) compress: bool,
}

/// The publishes waiting for the task.
#[derive(Debug, Default)]
struct Pending {
    outgoing: Vec<Outgoing>,
    /// Payload bytes in `outgoing`.
    bytes: usize,
    /// The hub's end is gone: the task ends once it took the rest.
    closed: bool,
}

/// What the hub's end and the task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    pending: Mutex<Pending>,
    max_queued: usize,
    max_queued_bytes: usize,
    /// Wakes the task when `pending` gains its first publish (or closes).
    pub(crate) ready: Notify,
    /// Topics whose local subscription changed since the task last looked:
    /// `true` if the topic has subscribers now. The last change wins, so a
    /// topic opened and closed between two looks costs Redis nothing.
    changes: Mutex<HashMap<Box<str>, bool>>,
    /// Wakes the task when `changes` gains an entry.
    pub(crate) changed: Notify,
}

impl Shared {
    pub(crate) fn new(max_queued: usize, max_queued_bytes: usize) -> Self {
        Self {
            counters: Counters::default(),
            pending: Mutex::default(),
            max_queued,
            max_queued_bytes,
            ready: Notify::new(),
            changes: Mutex::default(),
            changed: Notify::new(),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves every waiting publish into `into` (empty), in order; false
    /// once the hub's end is gone and nothing waits.
    pub(crate) fn take(&self, into: &mut Vec<Outgoing>) -> bool {
        let mut pending = self.pending();
        std::mem::swap(&mut pending.outgoing, into);
        pending.bytes = 0;
        !(pending.closed && into.is_empty())
    }

    /// The subscription changes since the last call.
    pub(crate) fn take_changes(&self) -> HashMap<Box<str>, bool> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn changed(&self, topic: &str, open: bool) {
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.into(), open);
        self.changed.notify_one();
    }

    /// Queues what fits of `messages` for `topic`, counting the rest as
    /// dropped; wakes the task if it had nothing.
    fn push(&self, topic: &str, messages: &mut dyn Iterator<Item = (&Message, bool)>) {
        let mut topic_name: Option<Arc<str>> = None;
        let mut dropped = 0;
        let mut pending = self.pending();
        let was_empty = pending.outgoing.is_empty();
        for (message, compress) in messages {
            let bytes = pending.bytes.saturating_add(message.len());
            if pending.closed
                || pending.outgoing.len() >= self.max_queued
                || bytes > self.max_queued_bytes
            {
                dropped += 1;
                continue;
            }
            let topic = topic_name.get_or_insert_with(|| topic.into());
            pending.bytes = bytes;
            pending.outgoing.push(Outgoing {
                topic: Arc::clone(topic),
                message: message.clone(),
                compress,
            });
        }
        let wake = was_empty && !pending.outgoing.is_empty();
        drop(pending);
        if dropped > 0 {
            Counters::add(&self.counters.dropped, dropped);
        }
        if wake {
            self.ready.notify_one();
        }
    }

    fn close(&self) {
        self.pending().closed = true;
        self.ready.notify_one();
    }
}

/// The [`Bridge`] a Redis-bridged hub calls.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) shared: Arc<Shared>,
}

impl Bridge for Queue {
    fn topic_opened(&self, topic: &str) {
        self.shared.changed(topic, true);
    }

    fn topic_closed(&self, topic: &str) {
        self.shared.changed(topic, false);
    }

    fn forward(&self, topic: &str, msg: &Message, compress: bool) {
        self.shared
            .push(topic, &mut std::iter::once((msg, compress)));
    }

    fn forward_all(&self, topic: &str, messages: &mut dyn Iterator<Item = (&Message, bool)>) {
        self.shared.push(topic, messages);
    }
}

impl Drop for Queue {
    /// The hub is gone: the task sends what waits and ends.
    fn drop(&mut self) {
        self.shared.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(messages: usize, bytes: usize) -> Queue {
        Queue {
            shared: Arc::new(Shared::new(messages, bytes)),
        }
    }

    fn dropped(queue: &Queue) -> u64 {
        queue.shared.counters.snapshot().dropped
    }

    fn take(queue: &Queue) -> Vec<Outgoing> {
        let mut out = Vec::new();
        assert!(queue.shared.take(&mut out));
        out
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let queue = queue(2, 1 << 20);
        for i in 0..5 {
            queue.forward("t", &Message::from(format!("{i}")), true);
        }
        assert_eq!(dropped(&queue), 3);
        let got: Vec<_> = take(&queue).into_iter().map(|o| o.message).collect();
        assert_eq!(got, [Message::from("0"), Message::from("1")]);
        queue.forward("t", &Message::from("5"), false);
        assert_eq!(dropped(&queue), 3, "room again once the task took them");
        let last = take(&queue).pop().unwrap();
        assert_eq!(
            (&*last.topic, last.message, last.compress),
            ("t", Message::from("5"), false)
        );
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let queue = queue(100, 10);
        queue.forward("t", &Message::binary(vec![0u8; 6]), true);
        queue.forward("t", &Message::binary(vec![0u8; 6]), true);
        queue.forward("t", &Message::binary(vec![0u8; 4]), true);
        queue.forward("t", &Message::binary(vec![0u8; 11]), true);
        assert_eq!(dropped(&queue), 2, "the second 6 and the 11 do not fit");
        let lens: Vec<_> = take(&queue).iter().map(|o| o.message.len()).collect();
        assert_eq!(lens, [6, 4]);
        assert!(take(&queue).is_empty());
    }

    #[test]
    fn a_burst_keeps_its_order_and_shares_its_topic() {
        let queue = queue(3, 1 << 20);
        let burst: Vec<Message> = (0..4).map(|i| Message::from(format!("{i}"))).collect();
        queue.forward_all("room", &mut burst.iter().map(|m| (m, m.len() == 1)));
        assert_eq!(dropped(&queue), 1, "the fourth does not fit");
        let got = take(&queue);
        let texts: Vec<_> = got.iter().map(|o| o.message.as_text().unwrap()).collect();
        assert_eq!(texts, ["0", "1", "2"]);
        assert!(
            got.iter()
                .all(|o| Arc::ptr_eq(&o.topic, &got[0].topic) && o.compress)
        );
    }

    #[test]
    fn a_closed_queue_hands_over_the_rest_then_ends() {
        let queue = queue(4, 1 << 20);
        let shared = Arc::clone(&queue.shared);
        queue.forward("t", &Message::from("x"), true);
        drop(queue);
        let mut out = Vec::new();
        assert!(shared.take(&mut out), "what waited is still handed over");
        assert_eq!(out.len(), 1);
        out.clear();
        assert!(!shared.take(&mut out));
    }

    #[test]
    fn the_last_subscription_change_of_a_topic_wins() {
        let queue = queue(4, 1 << 20);
        for _ in 0..1000 {
            queue.topic_opened("a");
            queue.topic_closed("a");
        }
        queue.topic_opened("b");
        queue.topic_closed("c");
        let mut changes: Vec<_> = queue.shared.take_changes().into_iter().collect();
        changes.sort();
        let expected: [(Box<str>, bool); 3] =
            [("a".into(), false), ("b".into(), true), ("c".into(), false)];
        assert_eq!(changes, expected);
        assert!(queue.shared.take_changes().is_empty());
    }
}
