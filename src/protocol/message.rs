//! A complete text or binary message.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

/// Room a thread's formatting buffer makes at a time: a new block once
/// the last one is used up and some message still holds part of it.
/// Small, because a message kept alive keeps its whole block.
const FORMAT_BLOCK: usize = 4 * 1024;

/// Room below which a new block is made before formatting: most messages
/// then fit the room they find and are formatted without a reallocation.
const FORMAT_ROOM: usize = 256;

thread_local! {
    /// Where [`Message::text_fmt`] formats: messages are split off it and
    /// share its block, so a message formatted on a warm thread costs no
    /// allocation of its own.
    static FORMATTED: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

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

    /// A text message formatted from `args`, as `format!` would make it,
    /// without a `String` of its own: the text is written into a buffer
    /// the thread keeps, and the message shares that buffer's block. For a
    /// handler that publishes a formatted line per message (a chat's
    /// `"{name}: {text}"`), where `format!` costs an allocation, a
    /// reallocation and a free for each.
    ///
    /// The messages made on a thread share blocks of 4 KiB: one that you
    /// keep (in a history, say) keeps its block's memory too, so for
    /// messages kept long, [`Message::text`] with `format!` is leaner.
    ///
    /// ```
    /// use wshub::Message;
    ///
    /// let (name, text) = ("ada", "hello");
    /// let msg = Message::text_fmt(format_args!("{name}: {text}"));
    /// assert_eq!(msg.as_text(), Some("ada: hello"));
    /// ```
    pub fn text_fmt(args: fmt::Arguments<'_>) -> Self {
        if let Some(text) = args.as_str() {
            return Self {
                repr: Repr::Text(ByteString::from_static(text)),
            };
        }
        let bytes = FORMATTED.with(|buf| match buf.try_borrow_mut() {
            Ok(mut buf) => {
                if buf.capacity() - buf.len() < FORMAT_ROOM {
                    buf.reserve(FORMAT_BLOCK);
                }
                // Writing to a `BytesMut` cannot fail; a `Display` that
                // fails leaves what it wrote (where `format!` panics).
                let _ = buf.write_fmt(args);
                buf.split().freeze()
            }
            // Called again from inside a `Display` being formatted here:
            // that inner message gets a buffer of its own.
            Err(_) => {
                let mut own = BytesMut::new();
                let _ = own.write_fmt(args);
                own.freeze()
            }
        });
        // `fmt::Write` is only ever given `&str`s: the check cannot fail.
        Self {
            repr: Repr::Text(ByteString::try_from(bytes).unwrap_or_default()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_messages_keep_their_text_across_blocks() {
        // Enough held at once to fill several blocks, one longer than a
        // block, and one with nothing to format.
        let long = "x".repeat(3 * FORMAT_BLOCK);
        let mut held = Vec::new();
        for i in 0..2_000 {
            held.push((
                format!("user{i}: hello {i}"),
                Message::text_fmt(format_args!("user{i}: hello {i}")),
            ));
            if i == 1_000 {
                held.push((
                    format!("{long}!"),
                    Message::text_fmt(format_args!("{long}!")),
                ));
            }
        }
        held.push((
            "static".to_owned(),
            Message::text_fmt(format_args!("static")),
        ));
        for (want, msg) in &held {
            assert!(msg.is_text());
            assert_eq!(msg.as_text(), Some(want.as_str()));
        }
        // A `Display` that makes a formatted message of its own.
        struct Nested;
        impl fmt::Display for Nested {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let inner = Message::text_fmt(format_args!("inner {}", 7));
                f.write_str(inner.as_text().unwrap_or_default())
            }
        }
        let outer = Message::text_fmt(format_args!("outer [{Nested}]"));
        assert_eq!(outer.as_text(), Some("outer [inner 7]"));
        // Dropped, their blocks are taken back: later messages are intact too.
        drop(held);
        for i in 0..2_000 {
            let msg = Message::text_fmt(format_args!("again {i}"));
            assert_eq!(msg.as_text(), Some(format!("again {i}").as_str()));
        }
    }
}
