//! The opening handshake (RFC 6455 §4.2): checking a client's request and
//! computing the server's answer. Pure functions over `http` types.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderValue, Method, Version, header};
use sha1::{Digest, Sha1};

/// The GUID every server appends to the client's key (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why a request is not a valid WebSocket opening handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request has no `Upgrade: websocket` header: it is not an upgrade at all.
    #[error("expected a WebSocket upgrade request (`Upgrade: websocket`)")]
    NotUpgrade,
    /// The method is not GET.
    #[error("a WebSocket upgrade must use the GET method")]
    MethodNotGet,
    /// HTTP/1.0, or HTTP/2 and later (RFC 8441 is not supported).
    #[error("a WebSocket upgrade needs HTTP/1.1")]
    HttpVersion,
    /// `Connection` does not list `upgrade`.
    #[error("the `Connection` header must contain `upgrade`")]
    ConnectionHeader,
    /// `Sec-WebSocket-Version` is missing or not 13.
    #[error("`Sec-WebSocket-Version` must be 13")]
    WebSocketVersion,
    /// `Sec-WebSocket-Key` is missing or not 16 base64-encoded bytes.
    #[error("`Sec-WebSocket-Key` must be 16 bytes in base64")]
    Key,
}

/// Checks a client's opening handshake; returns its `Sec-WebSocket-Key`.
pub fn validate_request<'a>(
    method: &Method,
    version: Version,
    headers: &'a HeaderMap,
) -> Result<&'a HeaderValue, HandshakeError> {
    if !header_has_token(headers, &header::UPGRADE, "websocket") {
        return Err(HandshakeError::NotUpgrade);
    }
    if method != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if version != Version::HTTP_11 {
        return Err(HandshakeError::HttpVersion);
    }
    if !header_has_token(headers, &header::CONNECTION, "upgrade") {
        return Err(HandshakeError::ConnectionHeader);
    }
    let mut versions = headers.get_all(header::SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.as_bytes().trim_ascii() == b"13" => {}
        _ => return Err(HandshakeError::WebSocketVersion),
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key.as_bytes()) => Ok(key),
        _ => Err(HandshakeError::Key),
    }
}

/// A key is 16 random bytes in base64: 24 characters.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24 && BASE64.decode(key).is_ok_and(|raw| raw.len() == 16)
}

/// The `Sec-WebSocket-Accept` value for a client's key.
///
/// ```
/// // The example of RFC 6455 §1.3.
/// let accept = wshub::protocol::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    BASE64.encode(sha1.finalize())
}

/// Whether any `name` header lists `token` (comma-separated, case-insensitive).
pub fn header_has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    list_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// The comma-separated tokens of every `name` header, trimmed, empty ones skipped.
/// A value that is not visible ASCII is ignored.
pub fn list_tokens<'a>(
    headers: &'a HeaderMap,
    name: &header::HeaderName,
) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        h
    }

    fn check(headers: &HeaderMap) -> Result<(), HandshakeError> {
        validate_request(&Method::GET, Version::HTTP_11, headers).map(|_| ())
    }

    #[test]
    fn accepts_token_lists_in_any_case() {
        assert_eq!(check(&request()), Ok(()));
    }

    #[test]
    fn each_bad_variant_has_its_error() {
        let h = request();
        assert_eq!(
            validate_request(&Method::POST, Version::HTTP_11, &h),
            Err(HandshakeError::MethodNotGet)
        );
        assert_eq!(
            validate_request(&Method::GET, Version::HTTP_10, &h),
            Err(HandshakeError::HttpVersion)
        );
        let cases: [(header::HeaderName, Option<&'static str>, HandshakeError); 7] = [
            (header::UPGRADE, None, HandshakeError::NotUpgrade),
            (header::UPGRADE, Some("h2c"), HandshakeError::NotUpgrade),
            (
                header::CONNECTION,
                Some("keep-alive"),
                HandshakeError::ConnectionHeader,
            ),
            (
                header::SEC_WEBSOCKET_VERSION,
                Some("8"),
                HandshakeError::WebSocketVersion,
            ),
            (
                header::SEC_WEBSOCKET_VERSION,
                None,
                HandshakeError::WebSocketVersion,
            ),
            (
                header::SEC_WEBSOCKET_KEY,
                Some("c2hvcnQ="),
                HandshakeError::Key,
            ),
            (header::SEC_WEBSOCKET_KEY, None, HandshakeError::Key),
        ];
        for (name, value, expected) in cases {
            let mut h = request();
            match value {
                Some(v) => h.insert(name.clone(), HeaderValue::from_static(v)),
                None => h.remove(&name),
            };
            assert_eq!(check(&h), Err(expected), "{name}: {value:?}");
        }
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let mut h = request();
        h.append(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert_eq!(check(&h), Err(HandshakeError::Key));
    }

    #[test]
    fn tokens_span_header_lines() {
        let mut h = HeaderMap::new();
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chat, , v2"),
        );
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(" mqtt"),
        );
        let tokens: Vec<_> = list_tokens(&h, &header::SEC_WEBSOCKET_PROTOCOL).collect();
        assert_eq!(tokens, ["chat", "v2", "mqtt"]);
    }
}
