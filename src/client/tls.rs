//! `wss://`: the TLS handshake of a client connection (rustls with the ring
//! provider, as the server's), checked against the webpki roots by default.

use std::io;
use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::ConnectError;
use crate::driver::Transport;

/// The one protocol a WebSocket upgrade runs over.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// A client configuration trusting `roots`: the ring provider, TLS 1.2 and
/// 1.3, ALPN `http/1.1`.
pub(crate) fn config_with_roots(roots: RootCertStore) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        // Fails only for a provider without a TLS 1.2 or 1.3 cipher suite:
        // ring's default has both.
        .expect("ring's provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Arc::new(config)
}

/// The default: the Mozilla roots of `webpki-roots`, built once.
fn default_config() -> Arc<ClientConfig> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    Arc::clone(DEFAULT.get_or_init(|| {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        config_with_roots(roots)
    }))
}

/// Runs the TLS handshake over `tcp` for `host` with `config` (the default
/// roots when `None`).
pub(crate) async fn handshake(
    tcp: TcpStream,
    host: &str,
    config: Option<&Arc<ClientConfig>>,
) -> Result<Transport, ConnectError> {
    let failed = |source| ConnectError::Tls {
        host: host.to_owned(),
        source,
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let config = config.cloned().unwrap_or_else(default_config);
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(failed)?;
    Ok(Transport::ClientTls(Box::new(stream)))
}
