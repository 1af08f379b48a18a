//! The hub's end of a bridge: what [`Bridge`] calls leave for the bridge's
//! task. Nothing here blocks or awaits (the hub calls it under its locks):
//! a publish is a `try_send` into a bounded queue, a subscription change a
//! map insert under a short lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use foldhash::HashMap;
use tokio::sync::{Notify, mpsc};

use super::stats::Counters;
use crate::{Bridge, Message};

/// A publish made on this node, on its way to Redis.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) topic: Box<str>,
    pub(crate) message: Message,
    pub(crate) compress: bool,
}

/// What the hub's end and the task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    /// Topics whose local subscription changed since the task last looked:
    /// `true` if the topic has subscribers now. The last change wins, so a
    /// topic opened and closed between two looks costs Redis nothing.
    changes: Mutex<HashMap<Box<str>, bool>>,
    /// Wakes the task when `changes` gains an entry.
    pub(crate) changed: Notify,
    /// Payload bytes in the queue.
    queued_bytes: AtomicUsize,
    max_queued_bytes: usize,
}

impl Shared {
    pub(crate) fn new(max_queued_bytes: usize) -> Self {
        Self {
            counters: Counters::default(),
            changes: Mutex::default(),
            changed: Notify::new(),
            queued_bytes: AtomicUsize::new(0),
            max_queued_bytes,
        }
    }

    /// The subscription changes since the last call.
    pub(crate) fn take_changes(&self) -> HashMap<Box<str>, bool> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `bytes` of payload left the queue.
    pub(crate) fn dequeued(&self, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn changed(&self, topic: &str, open: bool) {
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.into(), open);
        self.changed.notify_one();
    }

    /// Reserves room for `bytes` more; false if the queue is full.
    fn reserve(&self, bytes: usize) -> bool {
        self.queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                queued
                    .checked_add(bytes)
                    .filter(|&total| total <= self.max_queued_bytes)
            })
            .is_ok()
    }
}

/// The [`Bridge`] a Redis-bridged hub calls.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) shared: std::sync::Arc<Shared>,
    pub(crate) outgoing: mpsc::Sender<Outgoing>,
}

impl Bridge for Queue {
    fn topic_opened(&self, topic: &str) {
        self.shared.changed(topic, true);
    }

    fn topic_closed(&self, topic: &str) {
        self.shared.changed(topic, false);
    }

    fn forward(&self, topic: &str, msg: &Message, compress: bool) {
        let bytes = msg.len();
        if !self.shared.reserve(bytes) {
            Counters::add(&self.shared.counters.dropped, 1);
            return;
        }
        let outgoing = Outgoing {
            topic: topic.into(),
            message: msg.clone(),
            compress,
        };
        if self.outgoing.try_send(outgoing).is_err() {
            self.shared.dequeued(bytes);
            Counters::add(&self.shared.counters.dropped, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn queue(messages: usize, bytes: usize) -> (Queue, mpsc::Receiver<Outgoing>) {
        let (outgoing, rx) = mpsc::channel(messages);
        let shared = Arc::new(Shared::new(bytes));
        (Queue { shared, outgoing }, rx)
    }

    fn dropped(queue: &Queue) -> u64 {
        queue.shared.counters.snapshot().dropped
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (queue, mut rx) = queue(2, 1 << 20);
        for i in 0..5 {
            queue.forward("t", &Message::from(format!("{i}")), true);
        }
        assert_eq!(dropped(&queue), 3);
        assert_eq!(rx.try_recv().unwrap().message, Message::from("0"));
        queue.shared.dequeued(1);
        queue.forward("t", &Message::from("5"), false);
        assert_eq!(dropped(&queue), 3, "room again once the task took one");
        assert_eq!(rx.try_recv().unwrap().message, Message::from("1"));
        let last = rx.try_recv().unwrap();
        assert_eq!(
            (&*last.topic, last.message, last.compress),
            ("t", Message::from("5"), false)
        );
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let (queue, mut rx) = queue(100, 10);
        queue.forward("t", &Message::binary(vec![0u8; 6]), true);
        queue.forward("t", &Message::binary(vec![0u8; 6]), true);
        queue.forward("t", &Message::binary(vec![0u8; 4]), true);
        queue.forward("t", &Message::binary(vec![0u8; 11]), true);
        assert_eq!(dropped(&queue), 2, "the second 6 and the 11 do not fit");
        assert_eq!(rx.try_recv().unwrap().message.len(), 6);
        assert_eq!(rx.try_recv().unwrap().message.len(), 4);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_closed_queue_counts_what_it_could_not_take() {
        let (queue, rx) = queue(4, 1 << 20);
        drop(rx);
        queue.forward("t", &Message::from("x"), true);
        assert_eq!(dropped(&queue), 1);
        assert!(queue.shared.reserve(1 << 20), "the bytes were given back");
    }

    #[test]
    fn the_last_subscription_change_of_a_topic_wins() {
        let (queue, _rx) = queue(4, 1 << 20);
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
