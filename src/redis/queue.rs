//! The hub's end of a bridge: what [`Bridge`] calls leave for the bridge's
//! task. Nothing here blocks or awaits (the hub calls it under its locks):
//! a publish, or a socket's burst of publishes to one topic, is copied into
//! the envelope of its topic's run at the end of a bounded queue under one
//! short lock, a subscription change is a map insert under another; the
//! task is woken only when the queue was empty, and takes all of it at
//! once.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use foldhash::HashMap;
use tokio::sync::Notify;

use super::envelope::Batch;
use super::stats::Counters;
use crate::{Bridge, Message};

/// Publishes made on this node to one topic, one after the other, on their
/// way to Redis as one PUBLISH.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) topic: Arc<str>,
    pub(crate) batch: Batch,
}

/// The publishes waiting for the task.
#[derive(Debug, Default)]
struct Pending {
    runs: Vec<Run>,
    /// Messages in `runs`.
    messages: usize,
    /// Payload bytes in `runs`.
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

    /// Moves every waiting run into `into` (empty), in order; false once
    /// the hub's end is gone and nothing waits.
    pub(crate) fn take(&self, into: &mut Vec<Run>) -> bool {
        let mut pending = self.pending();
        std::mem::swap(&mut pending.runs, into);
        pending.messages = 0;
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
        let mut dropped = 0;
        let mut shared_name: Option<Arc<str>> = None;
        let mut guard = self.pending();
        let pending = &mut *guard;
        let was_empty = pending.runs.is_empty();
        for (message, compress) in messages {
            let bytes = pending.bytes.saturating_add(message.len());
            if pending.closed
                || pending.messages >= self.max_queued
                || bytes > self.max_queued_bytes
            {
                dropped += 1;
                continue;
            }
            let last = pending.runs.last().filter(|run| &*run.topic == topic);
            if !last.is_some_and(|run| run.batch.fits(message.len())) {
                // The same name again if the run before is this topic's.
                let name = match last {
                    Some(run) => Arc::clone(&run.topic),
                    None => Arc::clone(shared_name.get_or_insert_with(|| topic.into())),
                };
                pending.runs.push(Run {
                    topic: name,
                    batch: Batch::new(),
                });
            }
            let Some(run) = pending.runs.last_mut() else {
                continue;
            };
            run.batch.push(message, compress);
            pending.messages += 1;
            pending.bytes = bytes;
        }
        let wake = was_empty && !pending.runs.is_empty();
        drop(guard);
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
    use super::super::envelope;
    use super::*;

    fn queue(messages: usize, bytes: usize) -> Queue {
        Queue {
            shared: Arc::new(Shared::new(messages, bytes)),
        }
    }

    fn dropped(queue: &Queue) -> u64 {
        queue.shared.counters.snapshot().dropped
    }

    /// The waiting runs: topic, and each message with its compress flag.
    fn take(queue: &Queue) -> Vec<(String, Vec<(Message, bool)>)> {
        let mut runs = Vec::new();
        assert!(queue.shared.take(&mut runs));
        runs.into_iter()
            .map(|run| {
                let envelopes = envelope::decode(&run.batch.finish(9)).unwrap();
                let messages = envelopes.into_iter().map(|e| (e.message, e.compress));
                (run.topic.to_string(), messages.collect())
            })
            .collect()
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let queue = queue(2, 1 << 20);
        for i in 0..5 {
            queue.forward("t", &Message::from(format!("{i}")), true);
        }
        assert_eq!(dropped(&queue), 3);
        let expected = vec![(Message::from("0"), true), (Message::from("1"), true)];
        assert_eq!(take(&queue), [("t".to_owned(), expected)]);
        queue.forward("t", &Message::from("5"), false);
        assert_eq!(dropped(&queue), 3, "room again once the task took them");
        let expected = vec![(Message::from("5"), false)];
        assert_eq!(take(&queue), [("t".to_owned(), expected)]);
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let queue = queue(100, 10);
        queue.forward("t", &Message::binary(vec![0u8; 6]), true);
        queue.forward("t", &Message::binary(vec![0u8; 6]), true);
        queue.forward("t", &Message::binary(vec![0u8; 4]), true);
        queue.forward("t", &Message::binary(vec![0u8; 11]), true);
        assert_eq!(dropped(&queue), 2, "the second 6 and the 11 do not fit");
        let runs = take(&queue);
        let lens: Vec<_> = runs[0].1.iter().map(|(m, _)| m.len()).collect();
        assert_eq!(lens, [6, 4]);
        assert!(take(&queue).is_empty());
    }

    #[test]
    fn consecutive_publishes_to_a_topic_share_a_run_in_order() {
        let queue = queue(5, 1 << 20);
        let burst: Vec<Message> = (0..4).map(|i| Message::from(format!("{i}"))).collect();
        queue.forward_all("room", &mut burst.iter().map(|m| (m, true)));
        queue.forward("other", &Message::binary(vec![7u8]), false);
        queue.forward("room", &Message::from("4"), false);
        assert_eq!(dropped(&queue), 1, "the sixth does not fit");
        let runs = take(&queue);
        let topics: Vec<_> = runs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(topics, ["room", "other"]);
        let room: Vec<_> = runs[0]
            .1
            .iter()
            .map(|(m, c)| (m.as_text().unwrap(), *c))
            .collect();
        assert_eq!(room, [("0", true), ("1", true), ("2", true), ("3", true)]);
        assert_eq!(runs[1].1, [(Message::binary(vec![7u8]), false)]);
    }

    #[test]
    fn a_run_ends_at_the_batch_size() {
        let queue = queue(100, 8 << 20);
        let big = Message::binary(vec![1u8; envelope::MAX_BATCH / 2]);
        for _ in 0..3 {
            queue.forward("t", &big, false);
        }
        let runs = take(&queue);
        let sizes: Vec<_> = runs.iter().map(|(_, m)| m.len()).collect();
        assert_eq!(
            sizes,
            [1, 1, 1],
            "two halves and their headers exceed a batch"
        );
        let small = Message::from("s");
        queue.forward("t", &big, false);
        queue.forward("t", &small, false);
        let sizes: Vec<_> = take(&queue).iter().map(|(_, m)| m.len()).collect();
        assert_eq!(sizes, [2]);
    }

    #[test]
    fn a_closed_queue_hands_over_the_rest_then_ends() {
        let queue = queue(4, 1 << 20);
        let shared = Arc::clone(&queue.shared);
        queue.forward("t", &Message::from("x"), true);
        drop(queue);
        let mut runs = Vec::new();
        assert!(shared.take(&mut runs), "what waited is still handed over");
        assert_eq!(runs.len(), 1);
        runs.clear();
        assert!(!shared.take(&mut runs));
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
