//! How a bridge names its channels, how much it queues, and how it
//! reconnects.

use std::time::Duration;

/// Settings of a [`RedisBridge`](super::RedisBridge), for
/// [`RedisBridge::connect_with`](super::RedisBridge::connect_with). Every
/// node sharing a hub must use the same [`prefix`](Self::prefix).
///
/// ```
/// use std::time::Duration;
/// use wshub::redis::Options;
///
/// let options = Options::default()
///     .prefix("chat:")
///     .max_queued(4096)
///     .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(2));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) prefix: String,
    pub(crate) max_queued: usize,
    pub(crate) max_queued_bytes: usize,
    pub(crate) timeout: Duration,
    pub(crate) ping_every: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
}

impl Default for Options {
    /// Prefix `wshub:`, 262,144 messages or 64 MiB queued, 5 s timeouts, a
    /// ping every 15 s, reconnects 100 ms … 5 s apart.
    fn default() -> Self {
        Self {
            prefix: "wshub:".to_owned(),
            max_queued: 262_144,
            max_queued_bytes: 64 << 20,
            timeout: Duration::from_secs(5),
            ping_every: Duration::from_secs(15),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl Options {
    /// The channel of topic `t` is `prefix + t` (default `wshub:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many publishes may wait for the bridge's task (at least 1);
    /// beyond that a publish still reaches this node's subscribers but not
    /// Redis, and is counted in [`Stats::dropped`](super::Stats::dropped).
    /// The queue must hold what a busy node publishes between two turns of
    /// the bridge's task: at 16 clients sending 1,600-message bursts on one
    /// saturated thread, 65,536 was not always enough. A waiting publish
    /// takes a few dozen bytes besides its payload (which
    /// [`max_queued_bytes`](Self::max_queued_bytes) bounds).
    pub fn max_queued(mut self, messages: usize) -> Self {
        self.max_queued = messages.max(1);
        self
    }

    /// How many payload bytes may wait for the bridge's task; as
    /// [`max_queued`](Self::max_queued), in bytes. A message larger than
    /// this alone is never forwarded.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// How long connecting or any Redis reply may take before the
    /// connection counts as lost.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How often the subscriber connection PINGs Redis, to notice a
    /// connection that died without closing (it only reads otherwise; the
    /// publishing connection notices by its replies'
    /// [`timeout`](Self::timeout)).
    pub fn ping_every(mut self, every: Duration) -> Self {
        self.ping_every = every.max(Duration::from_millis(1));
        self
    }

    /// The first wait before reconnecting, doubled after each failed
    /// attempt up to `max`.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_min);
        self
    }
}
