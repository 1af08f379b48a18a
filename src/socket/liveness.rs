//! Whether the peer is still there: when it last sent anything, and the
//! idle timeout's ping and expiry, checked by the hub's sweeper; and when
//! the socket's lifetime ends, if it has one.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use crate::clock;

/// A socket's idle timeout and what was last heard from the peer.
pub(crate) struct Liveness {
    /// Idle timeout in milliseconds; 0 for none.
    idle_ms: u32,
    send_pings: bool,
    /// Writing to the peer restarts the idle timeout too.
    reset_on_send: bool,
    /// The socket's lifetime in milliseconds; 0 for no limit.
    lifetime_ms: u32,
    /// When it ends ([`clock`] milliseconds).
    ends_at: u32,
    /// When the driver last read anything ([`clock`] milliseconds), or
    /// wrote with `reset_on_send`.
    last_read: AtomicU32,
    /// A ping was sent since then.
    pinged: AtomicBool,
}

/// The timers a socket is held to.
pub(crate) struct Timers {
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) send_pings: bool,
    pub(crate) reset_on_send: bool,
    pub(crate) max_lifetime: Option<Duration>,
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
    /// Past its lifetime: close it.
    LifetimeOver,
}

impl Liveness {
    pub(crate) fn new(timers: &Timers) -> Self {
        let now = clock::now();
        Self {
            idle_ms: timers.idle_timeout.map_or(0, millis),
            send_pings: timers.send_pings,
            reset_on_send: timers.reset_on_send,
            lifetime_ms: timers.max_lifetime.map_or(0, millis),
            ends_at: now.wrapping_add(timers.max_lifetime.map_or(0, millis)),
            last_read: AtomicU32::new(now),
            pinged: AtomicBool::new(false),
        }
    }

    /// The driver wrote to the peer: restarts the idle timeout if so
    /// configured.
    pub(crate) fn sent(&self) {
        if self.reset_on_send {
            self.touch();
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
        // `clock` milliseconds wrap after 49 days: compared as distances.
        if self.lifetime_ms > 0 {
            let left = self.ends_at.wrapping_sub(now);
            if left == 0 || left > u32::MAX / 2 {
                return Verdict::LifetimeOver;
            }
        }
        if self.idle_ms == 0 {
            return Verdict::Fine;
        }
        // The sweeper reads `now` once for a whole pass; a socket that reads
        // during the pass stores a later time than that. Heard from after
        // `now` is silent for no time at all, not for 49 days.
        let silent = match now.wrapping_sub(self.last_read.load(Ordering::Relaxed)) {
            ahead if ahead > u32::MAX / 2 => 0,
            silent => silent,
        };
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

    /// How often this socket's timers want looking at: an eighth of the
    /// shorter of the idle timeout and the lifetime.
    pub(crate) fn check_every(&self) -> Option<Duration> {
        let shortest = match (self.idle_ms, self.lifetime_ms) {
            (0, 0) => return None,
            (0, only) | (only, 0) => only,
            (idle, lifetime) => idle.min(lifetime),
        };
        Some(Duration::from_millis(u64::from(shortest / 8)))
    }
}

/// `duration` in whole milliseconds, at least 1, saturated.
fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis())
        .unwrap_or(u32::MAX / 2)
        .clamp(1, u32::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timers(idle_ms: u64, lifetime_ms: u64) -> Timers {
        let ms = |ms| (ms > 0).then(|| Duration::from_millis(ms));
        Timers {
            idle_timeout: ms(idle_ms),
            send_pings: false,
            reset_on_send: false,
            max_lifetime: ms(lifetime_ms),
        }
    }

    #[test]
    fn the_lifetime_ends_on_time_even_across_the_clock_wrapping() {
        let live = Liveness::new(&timers(0, 1000));
        let start = live.ends_at.wrapping_sub(1000);
        assert_eq!(live.check(start), Verdict::Fine);
        assert_eq!(live.check(start.wrapping_add(999)), Verdict::Fine);
        assert_eq!(live.check(start.wrapping_add(1000)), Verdict::LifetimeOver);
        assert_eq!(
            live.check(start.wrapping_add(60_000)),
            Verdict::LifetimeOver
        );
        // The same a millisecond before the clock wraps.
        let mut late = Liveness::new(&timers(0, 1000));
        late.ends_at = u32::MAX.wrapping_add(1000);
        assert_eq!(late.check(u32::MAX), Verdict::Fine);
        assert_eq!(late.check(998), Verdict::Fine);
        assert_eq!(late.check(999), Verdict::LifetimeOver);
    }

    #[test]
    fn a_read_after_the_sweepers_now_is_not_a_silence() {
        let mut with_pings = timers(1000, 0);
        with_pings.send_pings = true;
        let live = Liveness::new(&with_pings);
        // The sweeper took its `now`; the socket then read something a
        // few milliseconds later, while the pass was still going.
        let sweep_now = live.last_read.load(Ordering::Relaxed);
        live.last_read
            .store(sweep_now.wrapping_add(3), Ordering::Relaxed);
        assert_eq!(live.check(sweep_now), Verdict::Fine);
        // The same across the clock wrapping.
        live.last_read.store(2, Ordering::Relaxed);
        assert_eq!(live.check(u32::MAX - 1), Verdict::Fine);
        // Silences are still measured from that read: ping at half, expire
        // at the whole timeout.
        assert_eq!(live.check(2 + 499), Verdict::Fine);
        assert_eq!(live.check(2 + 500), Verdict::Ping);
        assert_eq!(live.check(2 + 999), Verdict::Fine);
        assert_eq!(live.check(2 + 1000), Verdict::Expired);
    }

    #[test]
    fn the_sweeper_looks_at_an_eighth_of_the_shorter_timer() {
        let every = |idle, lifetime| Liveness::new(&timers(idle, lifetime)).check_every();
        assert_eq!(every(0, 0), None);
        assert_eq!(every(800, 0), Some(Duration::from_millis(100)));
        assert_eq!(every(0, 1600), Some(Duration::from_millis(200)));
        assert_eq!(every(8000, 1600), Some(Duration::from_millis(200)));
    }
}
