//! Why a client could not connect.

use std::io;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::deflate::ExtensionError;

/// Why [`Client::connect`](super::Client::connect) failed: before the
/// socket opened, nothing was delivered to any handler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL does not parse, or has no host.
    #[error("invalid WebSocket URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The URL's scheme is not `ws`, `wss`, `http` or `https`.
    #[error("unsupported URL scheme {0:?} (expected ws or wss)")]
    UnsupportedScheme(String),
    /// A custom header's name or value is not valid HTTP.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// A custom header the handshake sets itself (`Sec-WebSocket-Key`,
    /// `Upgrade`, ...); use the builder's methods for subprotocols.
    #[error("the handshake sets the {0} header itself")]
    ReservedHeader(http::HeaderName),
    /// A `wss://` URL, and the crate was built without the `tls` feature.
    #[error("wss:// needs wshub's `tls` feature")]
    TlsUnavailable,
    /// The host name did not resolve.
    #[error("could not resolve {host}: {source}")]
    Dns {
        /// The host looked up.
        host: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
    /// No address of the host accepted a TCP connection.
    #[error("could not connect to {host}: {source}")]
    Connect {
        /// The host connected to.
        host: String,
        /// The last address's error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed (an untrusted certificate, a name that does
    /// not match, no protocol in common, ...).
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        /// The server name the certificate was checked against.
        host: String,
        /// The TLS error.
        #[source]
        source: io::Error,
    },
    /// Connecting and the opening handshake took longer than the timeout.
    #[error("connecting timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Reading or writing the handshake failed, or the server hung up.
    #[error("I/O error during the handshake: {0}")]
    Io(#[from] io::Error),
    /// The server's answer is not a valid HTTP/1.1 response, or its head is
    /// over 64 KiB.
    #[error("malformed handshake response: {0}")]
    MalformedResponse(String),
    /// The server answered with something other than `101 Switching Protocols`.
    #[error("the server refused the upgrade with {status}")]
    Rejected {
        /// Its status.
        status: StatusCode,
        /// Its headers (boxed: they would make every error large).
        headers: Box<HeaderMap>,
        /// Its body (the first 64 KiB).
        body: Bytes,
    },
    /// A 101 without `Upgrade: websocket` and `Connection: upgrade`.
    #[error("the server's 101 response is not a WebSocket upgrade")]
    NotUpgraded,
    /// `Sec-WebSocket-Accept` does not match the key sent.
    #[error("bad Sec-WebSocket-Accept: expected {expected:?}, got {got:?}")]
    BadAccept {
        /// The value RFC 6455 §4.1 computes from our key.
        expected: String,
        /// What the server sent (empty when missing).
        got: String,
    },
    /// The server picked a subprotocol that was not offered (or several).
    #[error("the server chose a subprotocol that was not offered: {0:?}")]
    UnexpectedProtocol(String),
    /// The server accepted an extension that was not offered, or answered
    /// the `permessage-deflate` offer with parameters that break it.
    #[error(transparent)]
    Extension(#[from] ExtensionError),
}
