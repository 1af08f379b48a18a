//! The bytes a node puts on a Redis channel: who sent a message and how,
//! then the message itself, or several messages of one topic in a row.
//! Pure code, no I/O.
//!
//! ```text
//! offset  size  field
//! 0       1     version: 1 one message, 2 a batch
//! 1       1     version 1: flags, bit 0 binary (else text), bit 1
//!               compress; others 0. Version 2: 0
//! 2       8     node id, big-endian: the publishing node, so it can skip
//!               its own messages when Redis echoes them back
//! 10      ..    version 1: the payload, the message's bytes as they were
//!               published. Version 2: the messages in the order they
//!               were published, each as flags (1 byte, as above), payload
//!               length (4 bytes, big-endian), payload
//! ```
//!
//! A node ignores (and counts as malformed) anything shorter than the
//! header, of another version, with unknown flags, text that is not UTF-8,
//! or a batch whose last message runs past its end: other software may
//! publish on the same channels. A batch is taken whole or not at all.

use std::ops::Range;

use bytes::Bytes;

use crate::Message;

/// The version of an envelope of one message.
const VERSION: u8 = 1;
/// The version of an envelope of several messages.
const BATCH: u8 = 2;
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 10;
/// Bytes before each payload of a batch: flags and length.
pub(crate) const ENTRY_LEN: usize = 5;
const BINARY: u8 = 0b01;
const COMPRESS: u8 = 0b10;

/// A message as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// The publishing node.
    pub(crate) node: u64,
    /// The `compress` flag its publish was given.
    pub(crate) compress: bool,
    pub(crate) message: Message,
}

/// Why a channel message is not an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    #[error("shorter than the {HEADER_LEN}-byte header")]
    Short,
    #[error("version {0}, not {VERSION} or {BATCH}")]
    Version(u8),
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
    #[error("a text message that is not UTF-8")]
    NotUtf8,
    #[error("a batch whose last message runs past its end")]
    Truncated,
}

fn flags(message: &Message, compress: bool) -> u8 {
    let mut flags = 0;
    if message.is_binary() {
        flags |= BINARY;
    }
    if compress {
        flags |= COMPRESS;
    }
    flags
}

/// Payload bytes one batch takes, at most; a larger message goes alone.
/// Keeps each channel message well under Redis's output buffer limit for
/// pub/sub clients (8 MiB soft by default).
pub(crate) const MAX_BATCH: usize = 1024 * 1024;

/// An envelope being filled, a message at a time, with what one node
/// publishes to one topic, in order: each payload is copied once, into the
/// buffer that goes to Redis.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The header's room, then each message as flags, length, payload.
    buf: Vec<u8>,
    count: usize,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self {
            buf: vec![0; HEADER_LEN],
            count: 0,
        }
    }

    /// How many messages it holds.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Whether a message of `len` bytes may join: the first always does,
    /// later ones while the payloads stay within [`MAX_BATCH`].
    pub(crate) fn fits(&self, len: usize) -> bool {
        let taken = self.buf.len() - HEADER_LEN;
        self.count == 0 || taken.saturating_add(ENTRY_LEN + len) <= MAX_BATCH
    }

    /// Adds `message` (check [`fits`](Self::fits) first).
    pub(crate) fn push(&mut self, message: &Message, compress: bool) {
        // Only a lone message can be 4 GiB or more, and a lone message is
        // sent as version 1, without this length.
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        self.buf.reserve(ENTRY_LEN + message.len());
        self.buf.push(flags(message, compress));
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(message.as_bytes());
        self.count += 1;
    }

    /// The envelope, from `node`: version 1 for a lone message, version 2
    /// for any other number.
    pub(crate) fn finish(mut self, node: u64) -> Vec<u8> {
        if self.count == 1 {
            let flags = self.buf.get(HEADER_LEN).copied().unwrap_or(0);
            // The payload moves up to right after a version-1 header.
            self.buf.drain(..ENTRY_LEN);
            self.buf[0] = VERSION;
            self.buf[1] = flags;
        } else {
            self.buf[0] = BATCH;
            self.buf[1] = 0;
        }
        self.buf[2..HEADER_LEN].copy_from_slice(&node.to_be_bytes());
        self.buf
    }
}

/// The envelope of `message`, published by `node`.
#[cfg(test)]
pub(crate) fn encode(node: u64, message: &Message, compress: bool) -> Vec<u8> {
    encode_all(node, std::iter::once((message, compress)))
}

/// The envelope of `messages` (message, compress), published by `node` in
/// this order.
#[cfg(test)]
pub(crate) fn encode_all<'a>(
    node: u64,
    messages: impl Iterator<Item = (&'a Message, bool)>,
) -> Vec<u8> {
    let mut batch = Batch::new();
    for (message, compress) in messages {
        batch.push(message, compress);
    }
    batch.finish(node)
}

/// The node id of an envelope, read without checking the rest: a node
/// skips its own messages before paying for a copy or a UTF-8 check.
pub(crate) fn sender(bytes: &[u8]) -> Option<u64> {
    let id = bytes.get(2..HEADER_LEN)?;
    Some(u64::from_be_bytes(id.try_into().ok()?))
}

/// Reads an envelope of one message or a batch from a copy of `bytes`.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Envelope>, Malformed> {
    decode_owned(Bytes::copy_from_slice(bytes))
}

/// Reads an envelope of one message or a batch; the messages share
/// `bytes`, nothing is copied.
pub(crate) fn decode_owned(bytes: Bytes) -> Result<Vec<Envelope>, Malformed> {
    let node = sender(&bytes).ok_or(Malformed::Short)?;
    let (header, body) = (&bytes[..HEADER_LEN], bytes.slice(HEADER_LEN..));
    let entries = match header[0] {
        VERSION => vec![(header[1], 0..body.len())],
        BATCH if header[1] == 0 => entries(&body)?,
        BATCH => return Err(Malformed::Flags(header[1])),
        other => return Err(Malformed::Version(other)),
    };
    entries
        .into_iter()
        .map(|(flags, range)| {
            if flags & !(BINARY | COMPRESS) != 0 {
                return Err(Malformed::Flags(flags));
            }
            let payload = body.slice(range);
            let message = if flags & BINARY != 0 {
                Message::binary(payload)
            } else {
                Message::text_from_utf8(payload).map_err(|_| Malformed::NotUtf8)?
            };
            Ok(Envelope {
                node,
                compress: flags & COMPRESS != 0,
                message,
            })
        })
        .collect()
}

/// The flags and the payload's place in `body` of each message of a batch.
fn entries(body: &[u8]) -> Result<Vec<(u8, Range<usize>)>, Malformed> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let head = body.get(at..at + ENTRY_LEN).ok_or(Malformed::Truncated)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let start = at + ENTRY_LEN;
        let end = start.checked_add(len).filter(|&end| end <= body.len());
        let end = end.ok_or(Malformed::Truncated)?;
        entries.push((head[0], start..end));
        at = end;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever is published on a node's channels, reading it fails
        /// cleanly or gives back exactly the payload after the header.
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            match decode(&bytes) {
                Ok(envelopes) if bytes[0] == VERSION => {
                    prop_assert_eq!(envelopes.len(), 1);
                    prop_assert_eq!(envelopes[0].message.as_bytes(), &bytes[HEADER_LEN..]);
                    prop_assert_eq!(Some(envelopes[0].node), sender(&bytes));
                }
                Ok(envelopes) => {
                    prop_assert_eq!(bytes[0], BATCH);
                    let payloads: usize = envelopes.iter().map(|e| ENTRY_LEN + e.message.len()).sum();
                    prop_assert_eq!(HEADER_LEN + payloads, bytes.len());
                }
                Err(_) => prop_assert!(bytes.len() < HEADER_LEN || bytes[0] == BATCH || bytes[0] != VERSION || bytes[1] > 3 || bytes[1] & BINARY == 0),
            }
        }

        #[test]
        fn every_message_round_trips(
            node in any::<u64>(),
            payload in prop::collection::vec(any::<u8>(), 0..256),
            text in ".{0,64}",
            binary in any::<bool>(),
            compress in any::<bool>(),
        ) {
            let message = if binary { Message::binary(payload) } else { Message::from(text) };
            let envelopes = decode(&encode(node, &message, compress)).unwrap();
            prop_assert_eq!(envelopes, vec![Envelope { node, compress, message }]);
        }

        /// A batch comes back whole and in order, whatever its messages.
        #[test]
        fn every_batch_round_trips(
            node in any::<u64>(),
            messages in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..64), ".{0,16}", any::<bool>(), any::<bool>()), 0..16),
        ) {
            let sent: Vec<Envelope> = messages
                .into_iter()
                .map(|(payload, text, binary, compress)| Envelope {
                    node,
                    compress,
                    message: if binary { Message::binary(payload) } else { Message::from(text) },
                })
                .collect();
            let bytes = encode_all(node, sent.iter().map(|e| (&e.message, e.compress)));
            prop_assert_eq!(bytes[0], if sent.len() == 1 { VERSION } else { BATCH });
            prop_assert_eq!(sender(&bytes), Some(node));
            prop_assert_eq!(decode(&bytes).unwrap(), sent);
        }

        /// A batch cut short is refused, unless the cut falls between two
        /// messages: then it reads as the messages before it.
        #[test]
        fn a_batch_cut_short_is_refused_or_its_whole_first_messages(cut in 1usize..=32) {
            let messages = [Message::from("one"), Message::binary(vec![1u8; 9]), Message::from("three")];
            let bytes = encode_all(7, messages.iter().map(|m| (m, false)));
            let short = &bytes[..bytes.len() - cut];
            if let Ok(got) = decode(short) {
                prop_assert!(got.len() < messages.len());
                for (envelope, message) in got.iter().zip(&messages) {
                    prop_assert_eq!(&envelope.message, message);
                }
            }
        }
    }

    #[test]
    fn round_trips_every_kind_and_flag() {
        let node = 0x0102_0304_0506_0708;
        for message in [
            Message::from("héllo"),
            Message::from(""),
            Message::binary(vec![0u8, 255, 7]),
            Message::binary(Vec::new()),
        ] {
            for compress in [false, true] {
                let bytes = encode(node, &message, compress);
                assert_eq!(bytes.len(), HEADER_LEN + message.len());
                assert_eq!(sender(&bytes), Some(node));
                let envelopes = decode(&bytes).unwrap();
                assert_eq!(
                    envelopes,
                    [Envelope {
                        node,
                        compress,
                        message: message.clone()
                    }]
                );
            }
        }
    }

    #[test]
    fn a_batch_takes_messages_up_to_its_size_and_a_large_one_alone() {
        let mut batch = Batch::new();
        assert!(batch.fits(MAX_BATCH * 2), "the first message always fits");
        batch.push(
            &Message::binary(vec![1u8; MAX_BATCH - 2 * ENTRY_LEN - 10]),
            false,
        );
        assert!(batch.fits(10));
        assert!(!batch.fits(11));
        batch.push(&Message::from("0123456789"), true);
        assert_eq!(batch.len(), 2);
        let envelopes = decode(&batch.finish(5)).unwrap();
        assert_eq!(envelopes.len(), 2);
        assert_eq!(envelopes[1].message, Message::from("0123456789"));
        assert!(envelopes[1].compress && !envelopes[0].compress);
    }

    #[test]
    fn the_header_is_as_documented() {
        let bytes = encode(1, &Message::binary(vec![9u8]), true);
        assert_eq!(bytes, [1, 0b11, 0, 0, 0, 0, 0, 0, 0, 1, 9]);
        let bytes = encode(u64::MAX, &Message::from("a"), false);
        assert_eq!(bytes, [1, 0, 255, 255, 255, 255, 255, 255, 255, 255, b'a']);
        let messages = [Message::from("a"), Message::binary(vec![9u8, 8])];
        let bytes = encode_all(1, messages.iter().zip([false, true]));
        #[rustfmt::skip]
        assert_eq!(bytes, [
            2, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            0, 0, 0, 0, 1, b'a',
            0b11, 0, 0, 0, 2, 9, 8,
        ]);
    }

    #[test]
    fn rejects_what_another_publisher_might_put_on_the_channel() {
        assert_eq!(decode(b""), Err(Malformed::Short));
        assert_eq!(decode(b"hello"), Err(Malformed::Short));
        assert_eq!(sender(b"hello"), None);
        let mut bytes = encode(3, &Message::from("x"), false);
        bytes[0] = 3;
        assert_eq!(decode(&bytes), Err(Malformed::Version(3)));
        bytes[0] = VERSION;
        bytes[1] = 0b100;
        assert_eq!(decode(&bytes), Err(Malformed::Flags(0b100)));
        let mut bytes = encode(3, &Message::from("x"), false);
        bytes[HEADER_LEN] = 0xff;
        assert_eq!(decode(&bytes), Err(Malformed::NotUtf8));
        // The same bytes as binary are fine.
        bytes[1] = BINARY;
        assert!(decode(&bytes).unwrap()[0].message.is_binary());
        // A batch: flags in its header, a bad entry, one cut short.
        let messages = [Message::from("x"), Message::from("y")];
        let mut bytes = encode_all(3, messages.iter().map(|m| (m, false)));
        bytes[1] = 1;
        assert_eq!(decode(&bytes), Err(Malformed::Flags(1)));
        bytes[1] = 0;
        bytes[HEADER_LEN] = 0b100;
        assert_eq!(decode(&bytes), Err(Malformed::Flags(0b100)));
        bytes[HEADER_LEN] = 0;
        bytes[HEADER_LEN + ENTRY_LEN] = 0xff;
        assert_eq!(decode(&bytes), Err(Malformed::NotUtf8));
        bytes[HEADER_LEN + ENTRY_LEN] = b'x';
        assert_eq!(decode(&bytes[..bytes.len() - 1]), Err(Malformed::Truncated));
        assert_eq!(decode(&bytes[..HEADER_LEN + 3]), Err(Malformed::Truncated));
        assert_eq!(decode(&bytes).unwrap().len(), 2);
    }
}
