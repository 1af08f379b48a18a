//! Where a client connects: a `ws://` or `wss://` URL taken apart.

use http::Uri;

use super::ConnectError;

/// A parsed WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `wss` (or `https`): TLS.
    pub(crate) tls: bool,
    /// The host to resolve and to name in TLS: no brackets around IPv6.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The `Host` header: the host, and the port when not the scheme's default.
    pub(crate) authority: String,
    /// The request target: path and query, `/` when empty.
    pub(crate) path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, ConnectError> {
        let invalid = |reason| ConnectError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("ws" | "http") => false,
            Some("wss" | "https") => true,
            Some(other) => return Err(ConnectError::UnsupportedScheme(other.to_owned())),
            None => return Err(invalid("no scheme (ws:// or wss://)")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user info is not supported"));
        }
        let bracketed = authority.host();
        if bracketed.is_empty() {
            return Err(invalid("no host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let authority = if port == default_port {
            bracketed.to_owned()
        } else {
            format!("{bracketed}:{port}")
        };
        let host = bracketed
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(bracketed)
            .to_owned();
        let path = match uri.path_and_query() {
            Some(pq) if !pq.as_str().is_empty() && pq.as_str() != "/" => pq.as_str().to_owned(),
            _ => "/".to_owned(),
        };
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        Ok(Self {
            tls,
            host,
            port,
            authority,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    #[test]
    fn urls_come_apart() {
        let t = parse("ws://example.com/chat?room=1");
        assert_eq!(
            (
                t.tls,
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path.as_str()
            ),
            (false, "example.com", 80, "example.com", "/chat?room=1")
        );
        let t = parse("wss://example.com");
        assert_eq!((t.tls, t.port, t.path.as_str()), (true, 443, "/"));
        let t = parse("ws://127.0.0.1:9001");
        assert_eq!((t.authority.as_str(), t.port), ("127.0.0.1:9001", 9001));
        let t = parse("ws://[::1]:3000/x");
        assert_eq!(
            (t.host.as_str(), t.authority.as_str()),
            ("::1", "[::1]:3000")
        );
        let t = parse("https://example.com:443/a");
        assert_eq!((t.tls, t.authority.as_str()), (true, "example.com"));
        assert!(!parse("WS://example.com/").tls);
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            Target::parse("ftp://example.com/"),
            Err(ConnectError::UnsupportedScheme(s)) if s == "ftp"
        ));
        for bad in [
            "",
            "example.com/chat",
            "ws://",
            "ws://user@host/",
            "ws://exa mple.com/",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(ConnectError::InvalidUrl { .. })),
                "{bad:?}"
            );
        }
    }
}
