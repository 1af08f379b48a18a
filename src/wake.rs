//! Wake-ups held for the rest of a socket task's *turn* (one poll of its
//! future, see `driver::turn`): publishes reaching other sockets and sends
//! to them wake those sockets once the turn ends, all together.
//!
//! On one thread this changes nothing: woken tasks run after the current
//! one anyway. On many, it is what keeps a publisher's whole read together:
//! a subscriber woken by the first of 50 published messages would otherwise
//! start on another thread at once, write one message, park, and be woken
//! again by the second — a wake-up and a write per subscriber per message
//! (tokio queues a woken task on the waking thread and lets idle threads
//! steal it). Held to the end of the turn, the 50 messages leave in one
//! write per subscriber, as they do on one thread: cross-thread work per
//! batch, not per message (uWebSockets defers its cross-loop work the same
//! way, once per loop iteration).

use std::cell::RefCell;
use std::task::Waker;

thread_local! {
    /// The wakers held by the turn running on this thread, if one is.
    static HELD: RefCell<Held> = const { RefCell::new(Held { active: false, wakers: Vec::new() }) };
}

struct Held {
    active: bool,
    wakers: Vec<Waker>,
}

/// Wakes `waker` now, or at the end of the turn running on this thread.
pub(crate) fn wake(waker: Waker) {
    let waker = HELD.with(|held| match held.try_borrow_mut() {
        Ok(mut held) if held.active => {
            held.wakers.push(waker);
            None
        }
        _ => Some(waker),
    });
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Wakes every waker of `wakers`, now or at the end of the turn.
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        wake(waker);
    }
}

/// Starts holding this thread's wake-ups (a turn begins); returns whether
/// a turn was already holding them (then that one releases them).
pub(crate) fn hold() -> bool {
    HELD.with(|held| std::mem::replace(&mut held.borrow_mut().active, true))
}

/// Stops holding and makes every held wake-up (the turn ends).
pub(crate) fn release() {
    HELD.with(|held| held.borrow_mut().active = false);
    wake_held();
}

/// Makes every wake-up held so far and goes on holding (a long turn
/// delivers part of what it holds).
pub(crate) fn release_held() {
    wake_held();
}

/// Makes the wake-ups held now, keeping the list's allocation for the
/// next turn on this thread.
fn wake_held() {
    let mut wakers = HELD.with(|held| {
        held.try_borrow_mut()
            .map(|mut held| std::mem::take(&mut held.wakers))
            .unwrap_or_default()
    });
    for waker in wakers.drain(..) {
        waker.wake();
    }
    HELD.with(|held| {
        if let Ok(mut held) = held.try_borrow_mut() {
            // Still holding (`release_held`), a wake-up may have been held
            // meanwhile: only an empty list gives way.
            if held.wakers.is_empty() && held.wakers.capacity() < wakers.capacity() {
                held.wakers = wakers;
            }
        }
    });
}

/// Whether a turn holds this thread's wake-ups now.
pub(crate) fn holding() -> bool {
    HELD.with(|held| held.try_borrow().is_ok_and(|held| held.active))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_are_held_until_the_turn_ends() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let seen_inside = Arc::new(AtomicUsize::new(usize::MAX));
        let inside = Arc::clone(&seen_inside);
        let counted = Arc::clone(&count);
        assert!(!hold());
        wake(waker.clone());
        wake(waker);
        inside.store(counted.0.load(Ordering::SeqCst), Ordering::SeqCst);
        release();
        assert_eq!(seen_inside.load(Ordering::SeqCst), 0, "held inside");
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "made at the end");
        wake(Waker::from(Arc::clone(&count)));
        assert_eq!(count.0.load(Ordering::SeqCst), 3, "outside a turn: at once");
    }
}
