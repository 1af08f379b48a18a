//! Server settings, with Bun's defaults.

use std::time::Duration;

use crate::Compression;

/// Settings shared by every socket of one [`WebSocketLayer`](crate::WebSocketLayer).
///
/// The defaults are Bun's: 120 s idle timeout, 16 MiB messages, a 16 MiB
/// backpressure limit, sockets kept open past it, automatic pings.
///
/// ```
/// use std::time::Duration;
/// use wshub::Config;
///
/// let config = Config::default()
///     .idle_timeout(Duration::from_secs(30))
///     .max_payload_length(1 << 20);
/// assert_eq!(config.max_payload_length, 1 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Close a socket after this long without receiving anything. `None` disables it.
    pub idle_timeout: Option<Duration>,
    /// Largest message accepted, summed over its fragments; larger ones close with 1009.
    pub max_payload_length: usize,
    /// Bytes a socket may have queued before sends report backpressure and are dropped.
    pub backpressure_limit: usize,
    /// Close a socket whose queue crosses `backpressure_limit` instead of dropping sends.
    pub close_on_backpressure_limit: bool,
    /// Ping a silent peer halfway through the idle timeout, so live peers stay open.
    pub send_pings: bool,
    /// How long to wait for the peer's close frame after sending ours, and
    /// for the peer to shut its side of TCP after the close handshake.
    pub close_timeout: Duration,
    /// Whether [`WebSocket::publish`](crate::WebSocket::publish) also reaches
    /// the publishing socket when it is subscribed (Bun's `publishToSelf`).
    pub publish_to_self: bool,
    /// `permessage-deflate` (RFC 7692): off by default, as in Bun.
    pub compression: Compression,
    /// Close a socket with 1001 this long after it opened, however busy
    /// (uWebSockets' `maxLifetime`). `None`, the default, disables it.
    pub max_lifetime: Option<Duration>,
    /// Restart the idle timeout whenever data is written to the peer, not
    /// only when something is read from it (uWebSockets'
    /// `resetIdleTimeoutOnSend`): a peer that only listens stays open
    /// while it is sent to. Off by default, as in Bun.
    pub reset_idle_timeout_on_send: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(120)),
            max_payload_length: 16 << 20,
            backpressure_limit: 16 << 20,
            close_on_backpressure_limit: false,
            send_pings: true,
            close_timeout: Duration::from_secs(5),
            publish_to_self: false,
            compression: Compression::DISABLED,
            max_lifetime: None,
            reset_idle_timeout_on_send: false,
        }
    }
}

impl Config {
    /// Sets [`idle_timeout`](Self::idle_timeout); `Duration::ZERO` disables it.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Sets [`max_payload_length`](Self::max_payload_length).
    pub fn max_payload_length(mut self, bytes: usize) -> Self {
        self.max_payload_length = bytes;
        self
    }

    /// Sets [`backpressure_limit`](Self::backpressure_limit).
    pub fn backpressure_limit(mut self, bytes: usize) -> Self {
        self.backpressure_limit = bytes;
        self
    }

    /// Sets [`close_on_backpressure_limit`](Self::close_on_backpressure_limit).
    pub fn close_on_backpressure_limit(mut self, close: bool) -> Self {
        self.close_on_backpressure_limit = close;
        self
    }

    /// Sets [`send_pings`](Self::send_pings).
    pub fn send_pings(mut self, send: bool) -> Self {
        self.send_pings = send;
        self
    }

    /// Sets [`publish_to_self`](Self::publish_to_self).
    pub fn publish_to_self(mut self, include: bool) -> Self {
        self.publish_to_self = include;
        self
    }

    /// Bun's `perMessageDeflate: true | false`: shared compressors both ways,
    /// or none.
    pub fn per_message_deflate(self, enabled: bool) -> Self {
        self.compression(if enabled {
            Compression::SHARED
        } else {
            Compression::DISABLED
        })
    }

    /// Sets [`compression`](Self::compression).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`max_lifetime`](Self::max_lifetime); `Duration::ZERO` disables
    /// it. Checked by the same sweeper as the idle timeout: a socket is
    /// closed at most an eighth of its lifetime (and at most a second)
    /// after it ends.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wshub::Config;
    ///
    /// // Clients reconnect, and pick up new credentials, every hour.
    /// let config = Config::default().max_lifetime(Duration::from_secs(3600));
    /// assert_eq!(config.max_lifetime, Some(Duration::from_secs(3600)));
    /// ```
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = (!lifetime.is_zero()).then_some(lifetime);
        self
    }

    /// Sets [`reset_idle_timeout_on_send`](Self::reset_idle_timeout_on_send).
    pub fn reset_idle_timeout_on_send(mut self, reset: bool) -> Self {
        self.reset_idle_timeout_on_send = reset;
        self
    }
}
