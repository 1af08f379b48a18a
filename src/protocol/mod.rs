//! The WebSocket protocol as pure code: bytes in, frames out, no I/O.
//!
//! The [`Decoder`] and the encoding functions know nothing of sockets; the
//! connection driver adapts them to a stream. They are public for tools such
//! as fuzzers and for anyone who needs the codec alone.
//!
//! This module uses nothing else of wshub. `permessage-deflate` reaches the
//! decoder as a crate-private trait for its inflate step, which the
//! compression module implements with zlib.

pub mod close;
mod codec;
mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
mod message;
pub mod utf8;

pub use close::close_code;
pub use codec::{Decoder, Frame, Role, encode_frame, encode_header, encode_message_frame};
pub(crate) use codec::{InflateFailure, InflateMessage};
pub use error::ProtocolError;
pub use message::Message;
