//! The client's side of the opening handshake (RFC 6455 §4.1): the request
//! it writes, and the checks on the server's answer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::ConnectError;
use super::target::Target;
use crate::deflate::{Compression, Negotiated, client_accept};
use crate::protocol::handshake::{accept_key, header_has_token, list_tokens};

/// The largest response head read, and the most of a refusal's body kept.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024;
/// Headers a response may have.
const MAX_HEADERS: usize = 100;

/// Headers the handshake writes itself; a custom one of these is refused.
pub(crate) const RESERVED: [HeaderName; 6] = [
    header::UPGRADE,
    header::CONNECTION,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::SEC_WEBSOCKET_EXTENSIONS,
];

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64.
pub(crate) fn new_key() -> String {
    let mut nonce = [0; 16];
    crate::entropy::fill(&mut nonce);
    BASE64.encode(nonce)
}

/// The request's bytes. `headers` were checked against [`RESERVED`]; a
/// `Host` among them replaces the URL's.
pub(crate) fn request(
    target: &Target,
    key: &str,
    protocols: &[String],
    offer: Option<&HeaderValue>,
    headers: &HeaderMap,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(format!("GET {} HTTP/1.1\r\n", target.path).as_bytes());
    let mut line = |name: &str, value: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    if !headers.contains_key(header::HOST) {
        line("Host", target.authority.as_bytes());
    }
    line("Upgrade", b"websocket");
    line("Connection", b"Upgrade");
    line("Sec-WebSocket-Key", key.as_bytes());
    line("Sec-WebSocket-Version", b"13");
    if !protocols.is_empty() {
        line("Sec-WebSocket-Protocol", protocols.join(", ").as_bytes());
    }
    if let Some(offer) = offer {
        line("Sec-WebSocket-Extensions", offer.as_bytes());
    }
    for (name, value) in headers {
        line(name.as_str(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A response head, and the bytes read past it.
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) rest: BytesMut,
}

/// Reads a response head (at most 64 KiB) from `io`.
pub(crate) async fn read_response<S: AsyncRead + Unpin>(
    io: &mut S,
) -> Result<Response, ConnectError> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some(response) = parse(&mut buf)? {
            return Ok(response);
        }
        if buf.len() >= MAX_HEAD {
            return Err(ConnectError::MalformedResponse(
                "the response head is over 64 KiB".to_owned(),
            ));
        }
        buf.reserve(4096.min(MAX_HEAD - buf.len()));
        if io.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection before answering the upgrade",
            )
            .into());
        }
    }
}

/// Parses a complete head off the front of `buf`; `None` while incomplete.
fn parse(buf: &mut BytesMut) -> Result<Option<Response>, ConnectError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let malformed = |e: &dyn std::fmt::Display| ConnectError::MalformedResponse(e.to_string());
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(malformed(&error)),
    };
    if parsed.version != Some(1) {
        return Err(malformed(&"not an HTTP/1.1 response"));
    }
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| malformed(&"bad status code"))?;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| malformed(&e))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|e| malformed(&e))?;
        headers.append(name, value);
    }
    let rest = buf.split_off(len);
    Ok(Some(Response {
        status,
        headers,
        rest,
    }))
}

/// The body of a refusal: `Content-Length` bytes, or up to the end of the
/// stream, at most 64 KiB either way.
pub(crate) async fn read_body<S: AsyncRead + Unpin>(io: &mut S, response: &mut Response) -> Bytes {
    let length = response
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let want = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    let mut body = std::mem::take(&mut response.rest);
    while body.len() < want {
        body.reserve((want - body.len()).min(16 * 1024));
        match io.read_buf(&mut body).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    body.truncate(want);
    body.freeze()
}

/// What the server agreed to in a 101 response: the subprotocol and the
/// compression.
pub(crate) struct Agreed {
    pub(crate) protocol: Option<Box<str>>,
    pub(crate) deflate: Option<Negotiated>,
}

/// Checks a `101` against what was asked (RFC 6455 §4.1, the client's
/// checks 1 to 6).
pub(crate) fn check(
    response: &Response,
    key: &str,
    protocols: &[String],
    compression: Compression,
) -> Result<Agreed, ConnectError> {
    let headers = &response.headers;
    if !header_has_token(headers, &header::UPGRADE, "websocket")
        || !header_has_token(headers, &header::CONNECTION, "upgrade")
    {
        return Err(ConnectError::NotUpgraded);
    }
    let expected = accept_key(key.as_bytes());
    let mut accepts = headers.get_all(header::SEC_WEBSOCKET_ACCEPT).iter();
    match (accepts.next(), accepts.next()) {
        (Some(got), None) if got.as_bytes() == expected.as_bytes() => {}
        (got, _) => {
            return Err(ConnectError::BadAccept {
                expected,
                got: got.map_or_else(String::new, |v| {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                }),
            });
        }
    }
    let mut chosen = list_tokens(headers, &header::SEC_WEBSOCKET_PROTOCOL);
    let protocol = match (chosen.next(), chosen.next()) {
        (None, _) => None,
        (Some(one), None) if protocols.iter().any(|p| p == one) => Some(Box::from(one)),
        _ => {
            let all = headers
                .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ConnectError::UnexpectedProtocol(all));
        }
    };
    let deflate = client_accept(
        headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS),
        compression,
    )?;
    Ok(Agreed { protocol, deflate })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::parse("ws://example.com:8080/chat?x=1").unwrap()
    }

    #[test]
    fn the_request_has_every_header_once() {
        let mut extra = HeaderMap::new();
        extra.insert("authorization", HeaderValue::from_static("Bearer t"));
        let offer = HeaderValue::from_static("permessage-deflate");
        let protocols = ["a".to_owned(), "b".to_owned()];
        let req = request(&target(), "k", &protocols, Some(&offer), &extra);
        let text = String::from_utf8(req).unwrap();
        assert_eq!(
            text,
            "GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\
             authorization: Bearer t\r\n\r\n"
        );
        extra.insert(header::HOST, HeaderValue::from_static("other"));
        let text = String::from_utf8(request(&target(), "k", &[], None, &extra)).unwrap();
        assert_eq!(
            text.matches("Host").count() + text.matches("host").count(),
            1
        );
        assert!(text.contains("host: other\r\n"));
    }

    fn response(head: &str) -> Response {
        let mut buf = BytesMut::from(head.as_bytes());
        parse(&mut buf).unwrap().unwrap()
    }

    /// RFC 6455 §1.3's example key and answer.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn upgrade(extra: &str) -> Response {
        response(&format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\nframes"
        ))
    }

    #[test]
    fn a_good_answer_passes_and_keeps_what_follows() {
        let r = upgrade("Sec-WebSocket-Protocol: b\r\n");
        assert_eq!(&r.rest[..], b"frames");
        let protocols = ["a".to_owned(), "b".to_owned()];
        let agreed = check(&r, KEY, &protocols, Compression::DISABLED).unwrap();
        assert_eq!(agreed.protocol.as_deref(), Some("b"));
        assert!(agreed.deflate.is_none());
    }

    #[test]
    fn bad_answers_get_their_error() {
        let none: &[String] = &[];
        let bad_accept = response(
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
             Sec-WebSocket-Accept: nope\r\n\r\n",
        );
        assert!(matches!(
            check(&bad_accept, KEY, none, Compression::DISABLED),
            Err(ConnectError::BadAccept { got, .. }) if got == "nope"
        ));
        let no_upgrade = response(&format!(
            "HTTP/1.1 101 OK\r\nConnection: upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        ));
        assert!(matches!(
            check(&no_upgrade, KEY, none, Compression::DISABLED),
            Err(ConnectError::NotUpgraded)
        ));
        let unasked = upgrade("Sec-WebSocket-Protocol: c\r\n");
        assert!(matches!(
            check(&unasked, KEY, &["a".to_owned()], Compression::DISABLED),
            Err(ConnectError::UnexpectedProtocol(p)) if p == "c"
        ));
        let two = upgrade("Sec-WebSocket-Protocol: a, a\r\n");
        assert!(check(&two, KEY, &["a".to_owned()], Compression::DISABLED).is_err());
        let extension = upgrade("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(matches!(
            check(&extension, KEY, none, Compression::DISABLED),
            Err(ConnectError::Extension(_))
        ));
    }

    #[test]
    fn heads_parse_when_complete() {
        let mut partial = BytesMut::from(&b"HTTP/1.1 101 Switching"[..]);
        assert!(parse(&mut partial).unwrap().is_none());
        let mut garbage = BytesMut::from(&b"SSH-2.0-OpenSSH\r\n\r\n"[..]);
        assert!(matches!(
            parse(&mut garbage),
            Err(ConnectError::MalformedResponse(_))
        ));
    }
}
