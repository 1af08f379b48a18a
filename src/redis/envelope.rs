//! The bytes a node puts on a Redis channel: who sent a message and how,
//! then the message itself. Pure code, no I/O.
//!
//! ```text
//! offset  size  field
//! 0       1     version, 1
//! 1       1     flags: bit 0 binary (else text), bit 1 compress; others 0
//! 2       8     node id, big-endian: the publishing node, so it can skip
//!               its own messages when Redis echoes them back
//! 10      ..    payload, the message's bytes as they were published
//! ```
//!
//! A node ignores (and counts as malformed) anything shorter than the
//! header, of another version, with unknown flags, or text that is not
//! UTF-8: other software may publish on the same channels.

use bytes::Bytes;

use crate::Message;

/// The version this node writes and reads.
const VERSION: u8 = 1;
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 10;
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
    #[error("version {0}, not {VERSION}")]
    Version(u8),
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
    #[error("a text message that is not UTF-8")]
    NotUtf8,
}

/// The envelope of `message`, published by `node`: one buffer, one copy of
/// the payload.
pub(crate) fn encode(node: u64, message: &Message, compress: bool) -> Vec<u8> {
    let mut flags = 0;
    if message.is_binary() {
        flags |= BINARY;
    }
    if compress {
        flags |= COMPRESS;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + message.len());
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&node.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out
}

/// The node id of an envelope, read without checking the rest: a node
/// skips its own messages before paying for a copy or a UTF-8 check.
pub(crate) fn sender(bytes: &[u8]) -> Option<u64> {
    let id = bytes.get(2..HEADER_LEN)?;
    Some(u64::from_be_bytes(id.try_into().ok()?))
}

/// Reads an envelope, copying its payload once.
pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope, Malformed> {
    let (header, payload) = bytes.split_at_checked(HEADER_LEN).ok_or(Malformed::Short)?;
    let node = sender(header).ok_or(Malformed::Short)?;
    if header[0] != VERSION {
        return Err(Malformed::Version(header[0]));
    }
    let flags = header[1];
    if flags & !(BINARY | COMPRESS) != 0 {
        return Err(Malformed::Flags(flags));
    }
    let payload = Bytes::copy_from_slice(payload);
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
                Ok(envelope) => {
                    prop_assert_eq!(envelope.message.as_bytes(), &bytes[HEADER_LEN..]);
                    prop_assert_eq!(Some(envelope.node), sender(&bytes));
                }
                Err(_) => prop_assert!(bytes.len() < HEADER_LEN || bytes[0] != VERSION || bytes[1] > 3 || bytes[1] & BINARY == 0),
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
            let envelope = decode(&encode(node, &message, compress)).unwrap();
            prop_assert_eq!(envelope, Envelope { node, compress, message });
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
                let envelope = decode(&bytes).unwrap();
                assert_eq!(
                    envelope,
                    Envelope {
                        node,
                        compress,
                        message: message.clone()
                    }
                );
            }
        }
    }

    #[test]
    fn the_header_is_as_documented() {
        let bytes = encode(1, &Message::binary(vec![9u8]), true);
        assert_eq!(bytes, [1, 0b11, 0, 0, 0, 0, 0, 0, 0, 1, 9]);
        let bytes = encode(u64::MAX, &Message::from("a"), false);
        assert_eq!(bytes, [1, 0, 255, 255, 255, 255, 255, 255, 255, 255, b'a']);
    }

    #[test]
    fn rejects_what_another_publisher_might_put_on_the_channel() {
        assert_eq!(decode(b""), Err(Malformed::Short));
        assert_eq!(decode(b"hello"), Err(Malformed::Short));
        assert_eq!(sender(b"hello"), None);
        let mut bytes = encode(3, &Message::from("x"), false);
        bytes[0] = 2;
        assert_eq!(decode(&bytes), Err(Malformed::Version(2)));
        bytes[0] = VERSION;
        bytes[1] = 0b100;
        assert_eq!(decode(&bytes), Err(Malformed::Flags(0b100)));
        let mut bytes = encode(3, &Message::from("x"), false);
        bytes[HEADER_LEN] = 0xff;
        assert_eq!(decode(&bytes), Err(Malformed::NotUtf8));
        // The same bytes as binary are fine.
        bytes[1] = BINARY;
        assert!(decode(&bytes).unwrap().message.is_binary());
    }
}
