//! [`ReloadableCert`]: a certificate that can be replaced while the server runs.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use super::{TlsError, load_pem_files, server_config_with_resolver};

/// The certificate a server presents, replaceable without a restart: renew
/// the files (certbot, cert-manager, ...) and call
/// [`reload_from_pem_files`](Self::reload_from_pem_files). Handshakes that
/// start afterwards get the new certificate; connections already open keep
/// theirs, and so does a client that resumes a TLS session made before the
/// reload (resumption skips the certificate), until that session expires.
/// A reload that fails (a half-written file, a key that does not match)
/// changes nothing.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use wshub::tls::ReloadableCert;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let app = axum::Router::new();
/// let cert = Arc::new(ReloadableCert::from_pem_files("fullchain.pem", "privkey.pem")?);
/// let reloader = Arc::clone(&cert);
/// tokio::spawn(async move {
///     loop {
///         tokio::time::sleep(Duration::from_secs(12 * 3600)).await;
///         if let Err(error) = reloader.reload_from_pem_files("fullchain.pem", "privkey.pem") {
///             eprintln!("keeping the current certificate: {error}");
///         }
///     }
/// });
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
/// wshub::serve(listener, app).tls(cert.server_config()).await?;
/// # Ok(()) }
/// ```
pub struct ReloadableCert {
    // Read once per handshake, written once per reload: a lock held for an
    // `Arc` clone is all either needs.
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Starts with `cert` (from [`load_pem_files`] or
    /// [`parse_pem`](super::parse_pem)).
    pub fn new(cert: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(cert)),
        }
    }

    /// Starts with the certificate chain and key in these PEM files (see
    /// [`load_pem_files`]).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        load_pem_files(cert, key).map(Self::new)
    }

    /// Presents `cert` from the next handshake on.
    pub fn reload(&self, cert: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(cert);
    }

    /// Loads the chain and key from these PEM files and presents them from
    /// the next handshake on; on error the current certificate stays.
    pub fn reload_from_pem_files(
        &self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<(), TlsError> {
        self.reload(load_pem_files(cert, key)?);
        Ok(())
    }

    /// The certificate presented now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// A server configuration that presents this certificate, whatever it is
    /// at the time of each handshake (see
    /// [`server_config_with_resolver`](super::server_config_with_resolver)).
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        server_config_with_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>)
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The chain's length only: certificates are long and keys secret.
        f.debug_struct("ReloadableCert")
            .field("chain_len", &self.current().cert.len())
            .finish()
    }
}
