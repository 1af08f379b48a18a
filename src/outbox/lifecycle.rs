//! A socket's life as one state machine.
//!
//! Every transition happens under the outbox's lock, because what the socket
//! accepts to queue depends on it (nothing after our close frame). The
//! phase is mirrored in an atomic so the driver and the handle read it
//! without the lock.
//!
//! ```text
//!            expire                 close (ours, or echoing the peer's)
//!   Open ───────────────▶ IdleExpired ──────────────▶ Closing ──┐
//!    │ │    expire          or LifetimeOver                ▲     │
//!    │ └──────────────────────────────────────────────────┘     │ end
//!    │ terminate (from Open, an expiry or Closing)               ▼
//!    └──────────────────▶ Terminated ─────────────────────▶ Closed
//! ```

use std::sync::atomic::{AtomicU8, Ordering};

use crate::ReadyState;

/// Where a socket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Messages flow both ways.
    Open = 0,
    /// The sweeper found the socket silent past its idle timeout; the
    /// driver closes it with 1001.
    IdleExpired = 1,
    /// The sweeper found the socket past its lifetime; the driver closes
    /// it with 1001.
    LifetimeOver = 2,
    /// Our close frame is queued: no data may follow; waiting for the peer's.
    Closing = 3,
    /// `terminate`: the driver drops the connection without a close frame.
    Terminated = 4,
    /// The connection is gone; nothing is written any more.
    Closed = 5,
}

/// Which of the sweeper's timers ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The idle timeout.
    Idle,
    /// The socket's lifetime.
    Lifetime,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Open,
            1 => Self::IdleExpired,
            2 => Self::LifetimeOver,
            3 => Self::Closing,
            4 => Self::Terminated,
            _ => Self::Closed,
        }
    }

    /// Whether data (or our first close frame) may still be queued, and
    /// the peer's messages still go to the handler: before our close.
    pub(crate) fn accepts_data(self) -> bool {
        self <= Self::LifetimeOver
    }

    /// What the browser API would call it.
    pub(crate) fn ready_state(self) -> ReadyState {
        match self {
            Self::Open => ReadyState::Open,
            Self::IdleExpired | Self::LifetimeOver | Self::Closing | Self::Terminated => {
                ReadyState::Closing
            }
            Self::Closed => ReadyState::Closed,
        }
    }
}

impl From<Expiry> for Phase {
    fn from(expiry: Expiry) -> Self {
        match expiry {
            Expiry::Idle => Self::IdleExpired,
            Expiry::Lifetime => Self::LifetimeOver,
        }
    }
}

/// The phase of one socket, readable without a lock.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// Written under the outbox's lock, read anywhere.
    phase: AtomicU8,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Open as u8),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Whether a data frame (or our first close frame) may still be queued.
    pub(crate) fn accepts_data(&self) -> bool {
        self.phase().accepts_data()
    }

    /// Moves to `to` if the machine allows it from where it is; returns
    /// whether it moved. Call with the outbox locked.
    pub(crate) fn advance(&self, to: Phase) -> bool {
        let from = self.phase();
        let allowed = match to {
            Phase::Open => false,
            Phase::IdleExpired | Phase::LifetimeOver | Phase::Closing => from < to,
            Phase::Terminated => from < Phase::Terminated,
            Phase::Closed => from < Phase::Closed,
        };
        if allowed {
            self.phase.store(to as u8, Ordering::Release);
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_forward() {
        let life = Lifecycle::new();
        assert!(life.accepts_data());
        assert!(life.advance(Phase::IdleExpired));
        assert!(!life.advance(Phase::IdleExpired), "once");
        assert!(life.advance(Phase::LifetimeOver), "the lifetime wins");
        assert!(!life.advance(Phase::IdleExpired));
        assert!(life.accepts_data(), "the driver still queues its close");
        assert!(life.advance(Phase::Closing));
        assert!(!life.accepts_data());
        assert!(!life.advance(Phase::IdleExpired), "no way back");
        assert!(!life.advance(Phase::LifetimeOver), "no way back");
        assert!(life.advance(Phase::Terminated));
        assert!(!life.advance(Phase::Closing));
        assert!(life.advance(Phase::Closed));
        assert!(!life.advance(Phase::Terminated));
        assert_eq!(life.phase().ready_state(), ReadyState::Closed);
    }
}
