//! Errors a connection can end with.

use crate::protocol::{ProtocolError, close_code};

/// Why a connection failed, as passed to [`Handler::error`](crate::Handler::error).
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
}

impl Error {
    /// The close code the connection ends with because of this error.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::Protocol(e) => e.close_code(),
            Self::Io(_) => close_code::ABNORMAL,
            Self::HandlerPanicked(_) => close_code::ERROR,
        }
    }
}
