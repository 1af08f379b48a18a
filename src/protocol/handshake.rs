//! The opening handshake: checking a client's request and computing the
//! server's answer, over HTTP/1.1 (RFC 6455 §4.2: `GET` with `Upgrade`) and
//! over HTTP/2 (RFC 8441: `CONNECT` with `:protocol websocket`). Pure
//! functions over `http` types.

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
    /// HTTP/1.0 or HTTP/3; or HTTP/2 where the server does not take
    /// WebSockets over it (wshub without its `http2` feature).
    #[error("a WebSocket handshake needs HTTP/1.1, or HTTP/2 with extended CONNECT (RFC 8441)")]
    HttpVersion,
    /// An HTTP/2 request to a WebSocket route whose method is not `CONNECT`.
    #[error("a WebSocket over HTTP/2 must use the CONNECT method (RFC 8441)")]
    MethodNotConnect,
    /// An HTTP/2 `CONNECT` whose `:protocol` is missing or not `websocket`.
    #[error("a WebSocket over HTTP/2 needs `:protocol` set to `websocket` (RFC 8441)")]
    ConnectProtocol,
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
    // The method first: a `POST` to a socket's route is told to use `GET`,
    // with or without the upgrade headers.
    if method != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if !header_has_token(headers, &header::UPGRADE, "websocket") {
        return Err(HandshakeError::NotUpgrade);
    }
    if version != Version::HTTP_11 {
        return Err(HandshakeError::HttpVersion);
    }
    if !header_has_token(headers, &header::CONNECTION, "upgrade") {
        return Err(HandshakeError::ConnectionHeader);
    }
    check_version(headers)?;
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key.as_bytes()) => Ok(key),
        _ => Err(HandshakeError::Key),
    }
}

/// Checks a client's opening handshake over HTTP/2 (RFC 8441 §4): an
/// extended `CONNECT` whose `:protocol` pseudo-header (`protocol`) is
/// `websocket`, with `Sec-WebSocket-Version: 13`. There is no key to check
/// and no `Upgrade` or `Connection` header: the HTTP/2 stream is the socket.
///
/// ```
/// use http::{HeaderMap, HeaderValue, Method};
/// use wshub::protocol::handshake::{HandshakeError, validate_extended_connect};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
/// assert_eq!(validate_extended_connect(&Method::CONNECT, Some("websocket"), &headers), Ok(()));
/// assert_eq!(
///     validate_extended_connect(&Method::CONNECT, Some("chat"), &headers),
///     Err(HandshakeError::ConnectProtocol)
/// );
/// ```
pub fn validate_extended_connect(
    method: &Method,
    protocol: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), HandshakeError> {
    if method != Method::CONNECT {
        return Err(HandshakeError::MethodNotConnect);
    }
    if protocol != Some("websocket") {
        return Err(HandshakeError::ConnectProtocol);
    }
    check_version(headers)
}

/// Exactly one `Sec-WebSocket-Version`, and it is 13.
fn check_version(headers: &HeaderMap) -> Result<(), HandshakeError> {
    let mut versions = headers.get_all(header::SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.as_bytes().trim_ascii() == b"13" => Ok(()),
        _ => Err(HandshakeError::WebSocketVersion),
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
    fn extended_connect_checks_method_protocol_and_version() {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        let check = |method: &Method, protocol, headers: &HeaderMap| {
            validate_extended_connect(method, protocol, headers)
        };
        assert_eq!(check(&Method::CONNECT, Some("websocket"), &h), Ok(()));
        assert_eq!(
            check(&Method::GET, Some("websocket"), &h),
            Err(HandshakeError::MethodNotConnect)
        );
        // Plain CONNECT (a proxy tunnel) and other protocols are not WebSockets;
        // the pseudo-header's value is case-sensitive (RFC 8441 §4).
        for protocol in [None, Some("WebSocket"), Some("websocket2"), Some("")] {
            assert_eq!(
                check(&Method::CONNECT, protocol, &h),
                Err(HandshakeError::ConnectProtocol),
                "{protocol:?}"
            );
        }
        let mut missing = h.clone();
        missing.remove(header::SEC_WEBSOCKET_VERSION);
        let mut twice = h.clone();
        twice.append(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        let mut old = h.clone();
        old.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        for headers in [&missing, &twice, &old] {
            assert_eq!(
                check(&Method::CONNECT, Some("websocket"), headers),
                Err(HandshakeError::WebSocketVersion)
            );
        }
    }

    #[test]
    fn any_other_method_is_told_to_use_get() {
        for method in [Method::POST, Method::HEAD, Method::PUT] {
            assert_eq!(
                validate_request(&method, Version::HTTP_11, &HeaderMap::new()),
                Err(HandshakeError::MethodNotGet),
                "{method}"
            );
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
