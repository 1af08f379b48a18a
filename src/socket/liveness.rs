//! Whether the peer is still there: when it last sent anything, and the
//! idle timeout's ping and expiry, checked by the hub's sweeper.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use crate::clock;

/// A socket's idle timeout and what was last heard from the peer.
pub(crate) struct Liveness {
    /// Idle timeout in milliseconds; 0 for none.
    idle_ms: u32,
    send_pings: bool,
    /// When the driver last read anything ([`clock`] milliseconds).
    last_read: AtomicU32,
    /// A ping was sent since then.
    pinged: AtomicBool,
}

/// What the sweeper should do with a socket.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing yet.
    Fine,
    /// Silent for half its timeout: ping it (once).
    Ping,
    /// Silent past its timeout: close it.
    Expired,
}

impl Liveness {
    pub(crate) fn new(idle_timeout: Option<Duration>, send_pings: bool) -> Self {
        Self {
            idle_ms: idle_timeout.map_or(0, |idle| {
                u32::try_from(idle.as_millis()).unwrap_or(u32::MAX).max(1)
            }),
            send_pings,
            last_read: AtomicU32::new(clock::now()),
            pinged: AtomicBool::new(false),
        }
    }

    /// The driver read something: the peer is alive.
    pub(crate) fn touch(&self) {
        self.last_read.store(clock::now(), Ordering::Relaxed);
        self.pinged.store(false, Ordering::Relaxed);
    }

    /// The verdict at `now`: a ping halfway through the idle timeout (if
    /// pings are on), expiry after it.
    pub(crate) fn check(&self, now: u32) -> Verdict {
        if self.idle_ms == 0 {
            return Verdict::Fine;
        }
        let silent = now.wrapping_sub(self.last_read.load(Ordering::Relaxed));
        if silent >= self.idle_ms {
            Verdict::Expired
        } else if self.send_pings
            && silent >= self.idle_ms / 2
            && !self.pinged.swap(true, Ordering::Relaxed)
        {
            Verdict::Ping
        } else {
            Verdict::Fine
        }
    }

    /// How often this socket's idle timeout wants looking at.
    pub(crate) fn check_every(&self) -> Option<Duration> {
        (self.idle_ms > 0).then(|| Duration::from_millis(u64::from(self.idle_ms / 8)))
    }
}
