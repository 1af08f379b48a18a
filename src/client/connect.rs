//! Opening the byte stream to a server: DNS, TCP, and TLS for `wss://`.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::ConnectError;
use super::target::Target;
use crate::driver::Transport;

/// The stream's TLS settings: the crate's default roots, or the user's.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    /// `None`: the webpki roots.
    #[cfg(feature = "tls")]
    pub(crate) config: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

/// Connects to `target`: each resolved address in turn until one accepts,
/// then TLS when the URL asks for it. Returns the stream and the server's
/// address.
pub(crate) async fn open(
    target: &Target,
    tls: &TlsSettings,
) -> Result<(Transport, SocketAddr), ConnectError> {
    #[cfg(not(feature = "tls"))]
    if target.tls {
        let _ = tls;
        return Err(ConnectError::TlsUnavailable);
    }
    let addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|source| ConnectError::Dns {
            host: target.host.clone(),
            source,
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                #[cfg(feature = "tls")]
                if target.tls {
                    let stream =
                        super::tls::handshake(tcp, &target.host, tls.config.as_ref()).await?;
                    return Ok((stream, addr));
                }
                return Ok((Transport::Tcp(tcp), addr));
            }
            Err(error) => last = Some(error),
        }
    }
    Err(ConnectError::Connect {
        host: target.host.clone(),
        source: last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
        }),
    })
}
