//! A coarse clock for timestamps kept per socket: milliseconds in a `u32`
//! (4 bytes instead of an `Instant`'s 16), wrapping after 49 days, which is
//! fine for measuring silences and lifetimes far shorter than that.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// Milliseconds since the first call in this process (wrapping).
pub(crate) fn now() -> u32 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_millis() as u32
}

/// Time since a reading of [`now`].
pub(crate) fn since(then: u32) -> Duration {
    Duration::from_millis(u64::from(now().wrapping_sub(then)))
}
