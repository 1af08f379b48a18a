//! A complete text or binary message.

use bytes::Bytes;

/// A WebSocket data message: text (always valid UTF-8) or binary.
///
/// Cheap to clone: the payload is reference-counted [`Bytes`].
///
/// ```
/// use wshub::Message;
///
/// let msg = Message::from("hello");
/// assert_eq!(msg.as_text(), Some("hello"));
/// assert!(Message::from(vec![1u8, 2, 3]).is_binary());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    text: bool,
    payload: Bytes,
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: true,
            payload: Bytes::from(text.into()),
        }
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self {
            text: false,
            payload: bytes.into(),
        }
    }

    /// A text message from bytes already checked to be UTF-8.
    pub(crate) fn text_unchecked_utf8(payload: Bytes) -> Self {
        Self {
            text: true,
            payload,
        }
    }

    /// The payload as shared bytes.
    pub(crate) fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        !self.text
    }

    /// The text of a text message; `None` for a binary one.
    pub fn as_text(&self) -> Option<&str> {
        if self.text {
            super::utf8::validate(&self.payload).ok()
        } else {
            None
        }
    }

    /// The payload bytes, whatever the kind.
    pub fn as_bytes(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.payload
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_text() {
            Some(text) => f.debug_tuple("Text").field(&text).finish(),
            None => f.debug_tuple("Binary").field(&self.payload.len()).finish(),
        }
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::text_unchecked_utf8(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<Bytes> for Message {
    fn from(bytes: Bytes) -> Self {
        Self::binary(bytes)
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Self::binary(bytes)
    }
}

impl From<&[u8]> for Message {
    fn from(bytes: &[u8]) -> Self {
        Self::binary(Bytes::copy_from_slice(bytes))
    }
}
