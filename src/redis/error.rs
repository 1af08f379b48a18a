//! Why a bridge could not be made.

use std::time::Duration;

/// Why [`RedisBridge::connect`](super::RedisBridge::connect) failed. Once
/// connected, a bridge never fails: it reconnects (see the
/// [module docs](super)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a Redis URL (`redis://host:port/db`).
    #[error("invalid Redis URL")]
    Url(#[source] ::redis::RedisError),
    /// Redis refused the connection or its setup (auth, database).
    #[error("could not connect to Redis")]
    Redis(#[source] ::redis::RedisError),
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}
