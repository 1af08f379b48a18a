//! Serving `wss://` (the `tls` feature): certificates from PEM, a server
//! configuration with the settings a WebSocket server needs, and
//! certificates replaced without a restart.
//!
//! Pass the configuration to [`Serve::tls`](crate::Serve::tls):
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use wshub::{Handler, Upgrade, WebSocketLayer};
//!
//! struct Feed;
//! impl Handler for Feed { type Data = (); }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new()
//!     .route("/ws", get(|up: Upgrade| async move { up.accept(()) }))
//!     .layer(WebSocketLayer::new(Feed));
//! let tls = wshub::tls::server_config_from_pem_files("fullchain.pem", "privkey.pem")?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
//! wshub::serve(listener, app).tls(tls).await?;
//! # Ok(()) }
//! ```
//!
//! TLS is rustls with its **ring** crypto provider, chosen explicitly (not
//! rustls' process-wide default): ring is Rust and assembly built by `cc`,
//! with no cmake, Go or NASM to install, and compiles in well under a
//! minute on two cores. TLS 1.2 and 1.3 are on.
//!
//! A configuration of your own (client certificates, other cipher suites)
//! works too: build it from [`rustls`] as re-exported here, so the versions
//! match, and set `alpn_protocols` to `[b"http/1.1"]`, or with the `http2`
//! feature `[b"h2", b"http/1.1"]`: wshub serves the protocol ALPN chose,
//! and without that feature a browser that negotiated `h2` would fail.
//!
//! With the `http2` feature the configurations below offer `h2` first, as
//! browsers expect of an HTTPS server; their `wss://` sockets then open as
//! HTTP/2 streams (RFC 8441). To keep every socket on HTTP/1.1, set
//! `alpn_protocols` back to `[b"http/1.1"]`.

mod accept;
mod error;
mod pem;
mod reload;

use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use tokio_rustls::rustls;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::ResolvesServerCert;
use tokio_rustls::rustls::sign::CertifiedKey;

pub(crate) use self::accept::Acceptor;
pub use self::error::{PemOrigin, TlsError};
pub use self::pem::{load_pem_files, parse_pem};
pub use self::reload::ReloadableCert;

/// The protocols offered over ALPN, best first.
#[cfg(not(feature = "http2"))]
const ALPN: &[&[u8]] = &[b"http/1.1"];
#[cfg(feature = "http2")]
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A server configuration presenting `cert` (from [`load_pem_files`] or
/// [`parse_pem`]), with ALPN set to `http/1.1` (and `h2` before it, with
/// the `http2` feature).
///
/// ```no_run
/// let key = wshub::tls::load_pem_files("fullchain.pem", "privkey.pem")?;
/// let config = wshub::tls::server_config(key);
/// assert!(config.alpn_protocols.contains(&b"http/1.1".to_vec()));
/// # Ok::<(), wshub::tls::TlsError>(())
/// ```
pub fn server_config(cert: CertifiedKey) -> Arc<ServerConfig> {
    Arc::new(ReloadableCert::new(cert)).server_config()
}

/// [`server_config`] with the certificate chain and key in these PEM files
/// (see [`load_pem_files`]).
pub fn server_config_from_pem_files(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    load_pem_files(cert, key).map(server_config)
}

/// A server configuration whose certificate `resolver` picks at each
/// handshake (a [`ReloadableCert`], or one by SNI name), with the ring
/// provider, TLS 1.2 and 1.3, no client authentication and ALPN set to
/// `http/1.1` (`h2` and `http/1.1` with the `http2` feature).
pub fn server_config_with_resolver(resolver: Arc<dyn ResolvesServerCert>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        // Fails only for a provider without a TLS 1.2 or 1.3 cipher suite:
        // ring's default has both.
        .expect("ring's provider supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// ring's provider, built once.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}
