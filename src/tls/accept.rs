//! The server side of a TLS handshake, bounded in time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// What `Serve` needs to turn an accepted TCP connection into a TLS one.
#[derive(Clone)]
pub(crate) struct Acceptor(TlsAcceptor);

impl Acceptor {
    pub(crate) fn new(config: Arc<ServerConfig>) -> Self {
        Self(TlsAcceptor::from(config))
    }

    /// Runs the handshake on `tcp` for at most `timeout`, and not past a
    /// server shutdown; `None` if it failed, timed out or was cut short.
    /// The deadline covers the whole handshake: a client that trickles its
    /// ClientHello a byte at a time is cut off like a silent one.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        timeout: Duration,
        stop: &mut watch::Receiver<()>,
    ) -> Option<TlsStream<TcpStream>> {
        let handshake = tokio::time::timeout(timeout, self.0.accept(tcp));
        tokio::select! {
            done = handshake => match done {
                Ok(Ok(tls)) => Some(tls),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(?timeout, "TLS handshake timed out");
                    None
                }
            },
            // Not yet a request: nothing to finish gracefully.
            _ = stop.changed() => None,
        }
    }
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.0.config();
        f.debug_struct("Acceptor")
            .field("alpn_protocols", &config.alpn_protocols)
            .finish_non_exhaustive()
    }
}
