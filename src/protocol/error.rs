//! What a peer can do wrong, and the close code each answer carries.

use super::close::close_code;

/// A violation of RFC 6455 by the peer, or of a limit we set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Opcodes 3–7 and 11–15 are reserved.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// An RSV bit was set without an extension that defines it.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// Control frames may not be fragmented.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// Control frames carry at most 125 bytes.
    #[error("control frame longer than 125 bytes")]
    ControlFrameTooLong,
    /// A 64-bit payload length with its most significant bit set.
    #[error("invalid payload length")]
    InvalidLength,
    /// A client sent an unmasked frame.
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A server sent a masked frame.
    #[error("server frame is masked")]
    MaskedFrame,
    /// A continuation frame arrived with no fragmented message to continue.
    #[error("continuation frame outside a fragmented message")]
    UnexpectedContinuation,
    /// A new text or binary frame arrived before the fragmented message ended.
    #[error("new message started inside a fragmented message")]
    ExpectedContinuation,
    /// A close frame with a 1-byte body or a code that may not be sent.
    #[error("invalid close code")]
    InvalidCloseCode,
    /// A text message, or a close reason, is not valid UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A compressed message is not valid deflate data.
    #[error("invalid compressed data")]
    InvalidCompressedData,
    /// A message grew past `max_payload_length`.
    #[error("message larger than the limit of {limit} bytes")]
    MessageTooBig {
        /// The configured limit.
        limit: usize,
    },
}

impl ProtocolError {
    /// The code of the close frame that answers this error.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData => close_code::INVALID,
            Self::MessageTooBig { .. } => close_code::SIZE,
            _ => close_code::PROTOCOL,
        }
    }
}

impl From<super::utf8::InvalidUtf8> for ProtocolError {
    fn from(_: super::utf8::InvalidUtf8) -> Self {
        Self::InvalidUtf8
    }
}
