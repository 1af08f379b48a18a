//! What a bridge counts: messages out and in, and what it lost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A snapshot of a [`RedisBridge`](super::RedisBridge)'s counters, from
/// [`RedisBridge::stats`](super::RedisBridge::stats). Every count is since
/// the bridge was made.
///
/// ```
/// let stats = wshub::redis::Stats::default();
/// assert_eq!(stats.published + stats.dropped, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages this node PUBLISHed to Redis (acknowledged by it).
    pub published: u64,
    /// PUBLISH commands those messages travelled in: the messages to one
    /// topic that are next to each other in a pipeline share one.
    pub publishes: u64,
    /// Pipelines those PUBLISHes travelled in: one round trip each.
    pub pipelines: u64,
    /// Messages from other nodes delivered to this node's subscribers.
    pub received: u64,
    /// Publishes made here that never reached Redis: the queue was full, the
    /// connection was down, or it failed while they were on the way.
    pub dropped: u64,
    /// Channel messages from other nodes (each one PUBLISH: a message or a
    /// batch) this node dropped because it fell too far behind reading
    /// them: more than 4,096 or 32 MiB waited for the bridge's task.
    pub missed: u64,
    /// Channel messages that were not envelopes of this version (ignored).
    pub malformed: u64,
    /// Times the bridge connected again after losing Redis.
    pub reconnects: u64,
    /// Whether the bridge is connected to Redis now.
    pub connected: bool,
}

/// The live counters behind [`Stats`], shared by the bridge's handles, its
/// [`Bridge`](crate::Bridge) end and its task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) publishes: AtomicU64,
    pub(crate) pipelines: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) missed: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) connected: AtomicBool,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            published: load(&self.published),
            publishes: load(&self.publishes),
            pipelines: load(&self.pipelines),
            received: load(&self.received),
            dropped: load(&self.dropped),
            missed: load(&self.missed),
            malformed: load(&self.malformed),
            reconnects: load(&self.reconnects),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}
