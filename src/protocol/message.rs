//! A complete text or binary message.

use bytes::Bytes;
use bytestring::ByteString;

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
    repr: Repr,
}

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    /// Checked once, when the message was built or received.
    Text(ByteString),
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            repr: Repr::Text(ByteString::from(text.into())),
        }
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self {
            repr: Repr::Binary(bytes.into()),
        }
    }

    /// A text message from received bytes; fails if they are not UTF-8.
    pub(crate) fn text_from_utf8(payload: Bytes) -> Result<Self, super::utf8::InvalidUtf8> {
        let text = ByteString::try_from(payload).map_err(|_| super::utf8::InvalidUtf8)?;
        Ok(Self {
            repr: Repr::Text(text),
        })
    }

    /// The payload as shared bytes.
    pub(crate) fn payload(&self) -> &Bytes {
        match &self.repr {
            Repr::Text(text) => text.as_bytes(),
            Repr::Binary(bytes) => bytes,
        }
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self.repr, Repr::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        !self.is_text()
    }

    /// The text of a text message; `None` for a binary one. Free: the text
    /// was checked once, when the message arrived.
    pub fn as_text(&self) -> Option<&str> {
        match &self.repr {
            Repr::Text(text) => Some(text),
            Repr::Binary(_) => None,
        }
    }

    /// The payload bytes, whatever the kind.
    pub fn as_bytes(&self) -> &[u8] {
        self.payload()
    }

    /// The payload, without copying.
    pub fn into_bytes(self) -> Bytes {
        match self.repr {
            Repr::Text(text) => text.into_bytes(),
            Repr::Binary(bytes) => bytes,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.payload().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_text() {
            Some(text) => f.debug_tuple("Text").field(&text).finish(),
            None => f.debug_tuple("Binary").field(&self.len()).finish(),
        }
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self {
            repr: Repr::Text(ByteString::from(text)),
        }
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
