//! Close codes (RFC 6455 §7.4) and the close frame body.

/// Named close codes, for [`WebSocket::close`](crate::WebSocket::close) and
/// [`Handler::close`](crate::Handler::close).
pub mod close_code {
    /// Normal closure: the purpose of the connection was fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away: server shutdown or a page navigated away.
    pub const AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL: u16 = 1002;
    /// The endpoint received a kind of data it cannot accept.
    pub const UNSUPPORTED: u16 = 1003;
    /// No status code was present in the close frame. Never sent on the wire.
    pub const STATUS: u16 = 1005;
    /// The connection dropped without a close frame. Never sent on the wire.
    pub const ABNORMAL: u16 = 1006;
    /// A text message was not valid UTF-8.
    pub const INVALID: u16 = 1007;
    /// A message violated the endpoint's policy.
    pub const POLICY: u16 = 1008;
    /// A message was larger than the endpoint accepts.
    pub const SIZE: u16 = 1009;
    /// The client expected an extension the server did not negotiate.
    pub const EXTENSION: u16 = 1010;
    /// The server hit an unexpected condition (a handler panicked, say).
    pub const ERROR: u16 = 1011;
    /// The server is restarting.
    pub const RESTART: u16 = 1012;
    /// The server is overloaded: try again later.
    pub const AGAIN: u16 = 1013;
}

/// The longest reason that fits in a control frame after the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// Whether `code` may appear in a close frame on the wire.
///
/// 1005, 1006 and 1015 are reserved for reporting and never sent; 1004 and
/// 1016–2999 are reserved for future RFCs; 3000–4999 belong to applications.
pub fn is_valid_on_wire(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What a close frame's body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseBody {
    /// The status code; [`close_code::STATUS`] when the frame had no body.
    pub code: u16,
    /// The UTF-8 reason, possibly empty.
    pub reason: String,
}

/// Why a received close frame body is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadClose {
    /// A 1-byte body, or a code that may not be sent on the wire.
    Code,
    /// The reason is not UTF-8.
    Reason,
}

impl CloseBody {
    /// Parses a received close frame body.
    pub fn parse(payload: &[u8]) -> Result<Self, BadClose> {
        match payload {
            [] => Ok(Self {
                code: close_code::STATUS,
                reason: String::new(),
            }),
            [_] => Err(BadClose::Code),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !is_valid_on_wire(code) {
                    return Err(BadClose::Code);
                }
                let reason = super::utf8::validate(reason).map_err(|_| BadClose::Reason)?;
                Ok(Self {
                    code,
                    reason: reason.to_owned(),
                })
            }
        }
    }

    /// The payload of a close frame carrying `code` and `reason`.
    ///
    /// A code that may not go on the wire (1005 included) gives an empty body,
    /// which the peer reads as "no status"; the reason is cut at a character
    /// boundary to fit in a control frame.
    pub fn encode(code: u16, reason: &str) -> Vec<u8> {
        if !is_valid_on_wire(code) {
            return Vec::new();
        }
        let reason = truncate(reason, MAX_REASON_LEN);
        let mut body = Vec::with_capacity(2 + reason.len());
        body.extend_from_slice(&code.to_be_bytes());
        body.extend_from_slice(reason.as_bytes());
        body
    }
}

/// `s` cut to at most `max` bytes without splitting a character.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(is_valid_on_wire(code), "{code}");
        }
        // Autobahn 7.9.*: codes that must be rejected.
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_on_wire(code), "{code}");
        }
    }

    #[test]
    fn parse_bodies() {
        assert_eq!(
            CloseBody::parse(&[]).map(|b| b.code),
            Ok(close_code::STATUS)
        );
        assert_eq!(CloseBody::parse(&[0x03]), Err(BadClose::Code));
        assert_eq!(CloseBody::parse(&[0x03, 0xed]), Err(BadClose::Code)); // 1005
        assert_eq!(CloseBody::parse(&[0x03, 0xe8, 0xff]), Err(BadClose::Reason));
        let body = CloseBody::parse(b"\x03\xe8bye").unwrap();
        assert_eq!((body.code, body.reason.as_str()), (1000, "bye"));
    }

    #[test]
    fn encode_truncates_at_a_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let body = CloseBody::encode(1000, &long);
        assert!(body.len() <= 125);
        assert!(std::str::from_utf8(&body[2..]).is_ok());
        assert!(CloseBody::encode(close_code::STATUS, "x").is_empty());
        assert!(CloseBody::encode(close_code::ABNORMAL, "").is_empty());
    }
}
