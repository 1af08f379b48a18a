//! Errors a connection can end with.

use crate::protocol::{ProtocolError, close_code};

/// Why a connection failed, as passed to [`Handler::error`](crate::Handler::error)
/// (or, for a failed upgrade, [`Handler::upgrade_failed`](crate::Handler::upgrade_failed)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke RFC 6455 or a configured limit.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// Reading from or writing to the connection failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A handler method panicked; the socket is closed with 1011.
    #[error("a handler panicked: {0}")]
    HandlerPanicked(String),
    /// hyper could not hand the connection over after the 101, as passed to
    /// [`Handler::upgrade_failed`](crate::Handler::upgrade_failed).
    #[error("the upgrade failed after the 101: {0}")]
    Upgrade(#[source] hyper::Error),
}

impl Error {
    /// The close code the connection ends with because of this error.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::Protocol(e) => e.close_code(),
            Self::Io(_) | Self::Upgrade(_) => close_code::ABNORMAL,
            Self::HandlerPanicked(_) => close_code::ERROR,
        }
    }
}
