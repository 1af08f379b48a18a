//! Crate-private decoders behind thin wrappers, for the targets in `fuzz/`.
//!
//! Enabled by the `__fuzz` feature; not part of the public API and free to
//! change with any release.

use bytes::Bytes;
use http::HeaderValue;

use crate::Compression;
use crate::deflate;
use crate::protocol::{Decoder, InflateFailure, InflateMessage as _, Role};

/// Why [`Inflater::inflate`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The message inflates to more than the limit.
    TooBig,
    /// The message is not valid deflate data.
    Invalid,
}

/// The inflater a connection holds when `permessage-deflate` is negotiated.
#[derive(Debug)]
pub struct Inflater(deflate::Inflater);

impl Inflater {
    /// This thread's shared inflater (`dedicated` false), or one of the
    /// connection's own for a client compressing with `window` bits, keeping
    /// its context between messages when `takeover`.
    pub fn new(dedicated: bool, window: u8, takeover: bool) -> Self {
        Self(deflate::Inflater::new(dedicated, window, takeover))
    }

    /// Inflates one message (the payload of frames with RSV1 set), failing as
    /// soon as it grows past `limit` bytes.
    pub fn inflate(&mut self, input: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        self.0
            .inflate(input, limit)
            .map_err(|failure| match failure {
                InflateFailure::TooBig => InflateError::TooBig,
                InflateFailure::Invalid => InflateError::Invalid,
            })
    }
}

/// Inflates one message with this thread's shared inflater.
pub fn inflate(input: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    Inflater::new(false, 15, false).inflate(input, limit)
}

/// Compresses one message with this thread's shared compressor for `window`
/// bits; `None` if zlib fails.
pub fn compress_shared(window: u8, input: &[u8]) -> Option<Bytes> {
    deflate::compress_shared(window, input)
}

/// The `Sec-WebSocket-Extensions` answer to a request carrying `values`, as
/// a server configured with `compression` gives it; `None` when the
/// connection would run without compression.
pub fn negotiate<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
    compression: Compression,
) -> Option<String> {
    let (_, answer) = deflate::negotiate(values, compression)?;
    answer.to_str().ok().map(str::to_owned)
}

/// A decoder for `role` that also accepts compressed messages, inflated
/// with `inflater`, as on a connection that negotiated `permessage-deflate`.
pub fn deflate_decoder(role: Role, max_payload: usize, inflater: Inflater) -> Decoder {
    Decoder::new(role, max_payload).with_inflater(inflater.0)
}
