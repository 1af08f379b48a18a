//! `--tls`: the benchmark over `wss://`. The orchestrator makes one
//! self-signed certificate (rcgen) at start and writes it to a temporary
//! directory; the servers read it from there (wshub's `Serve::tls`, Bun's
//! `tls: { cert, key }`), and the load clients trust exactly it (rustls with
//! ring, as wshub's own TLS).
//!
//! A load client's connection is a [`Stream`]: plain TCP split into owned
//! halves as before, or a TLS stream split with `tokio::io::split` (one
//! uncontended lock per poll on the client's single thread). rustls takes
//! at most 4 KiB from its transport per read, so the TLS stream reads the
//! socket through a 64 KiB buffer, as the plain client reads: one syscall
//! where there would be up to sixteen.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use wshub::tls::rustls::pki_types::pem::PemObject as _;
use wshub::tls::rustls::pki_types::{CertificateDer, ServerName};
use wshub::tls::rustls::{self, ClientConfig, RootCertStore};

/// The certificate's file in a certificate directory.
pub fn cert_path(dir: &Path) -> PathBuf {
    dir.join("cert.pem")
}

/// The private key's file in a certificate directory.
pub fn key_path(dir: &Path) -> PathBuf {
    dir.join("key.pem")
}

/// A temporary directory holding a fresh self-signed certificate for
/// `localhost` and `127.0.0.1` (`cert.pem`, `key.pem`), removed when dropped.
pub struct CertDir {
    dir: PathBuf,
}

impl CertDir {
    pub fn generate() -> Result<Self, String> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| format!("generating a certificate: {e}"))?;
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("chat-room-tls-{}-{made}", std::process::id()));
        let write = |path: PathBuf, pem: String| {
            std::fs::write(&path, pem).map_err(|e| format!("writing {}: {e}", path.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let cert_dir = Self { dir };
        write(cert_path(&cert_dir.dir), generated.cert.pem())?;
        write(
            key_path(&cert_dir.dir),
            generated.signing_key.serialize_pem(),
        )?;
        Ok(cert_dir)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// wshub's server configuration for the certificate in `dir`.
pub fn server_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    wshub::tls::server_config_from_pem_files(cert_path(dir), key_path(dir))
        .map_err(|e| e.to_string())
}

/// A client trusting only the certificate in `dir`: ring, TLS 1.2 and 1.3
/// (rustls' defaults, so TLS 1.3 with AES-GCM in practice), ALPN `http/1.1`.
pub fn connector(dir: &Path) -> Result<TlsConnector, String> {
    let path = cert_path(dir);
    let cert = CertificateDer::from_pem_file(&path)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(cert)
        .map_err(|e| format!("trusting {}: {e}", path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The plain client's read size, for the socket under TLS.
const READ_BUFFER: usize = 64 * 1024;

/// TLS over TCP read through a [`READ_BUFFER`] (writes pass straight through).
type TlsTcp = TlsStream<BufReader<TcpStream>>;

/// A load client's connection: plain TCP, TLS over it, or one stream of
/// an HTTP/2 connection (`wshub-h2`, see [`crate::h2`]).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsTcp>),
    H2(Box<H2Stream>),
}

/// A WebSocket's HTTP/2 stream, as hyper's client hands it over.
pub type H2Stream = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

impl Stream {
    /// The TLS handshake over `tcp` with the server at `addr`.
    pub async fn tls(
        connector: &TlsConnector,
        addr: SocketAddr,
        tcp: TcpStream,
    ) -> io::Result<Self> {
        let name = ServerName::IpAddress(addr.ip().into());
        let tcp = BufReader::with_capacity(READ_BUFFER, tcp);
        let tls = connector.connect(name, tcp).await?;
        Ok(Self::Tls(Box::new(tls)))
    }

    /// What TLS agreed, as `TLSv1_3 TLS13_AES_256_GCM_SHA384`; `None` for TCP.
    pub fn describe_tls(&self) -> Option<String> {
        let Self::Tls(tls) = self else {
            return None;
        };
        let session = tls.get_ref().1;
        let version = session.protocol_version()?;
        let suite = session.negotiated_cipher_suite()?;
        Some(format!("{version:?} {:?}", suite.suite()))
    }

    /// The reading and the writing half, for a reader task and a writer.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Plain(tcp) => {
                let (read, write) = tcp.into_split();
                (ReadHalf::Plain(read), WriteHalf::Plain(write))
            }
            Self::Tls(tls) => {
                let (read, write) = tokio::io::split(*tls);
                (ReadHalf::Tls(read), WriteHalf::Tls(write))
            }
            Self::H2(stream) => {
                let (read, write) = tokio::io::split(*stream);
                (ReadHalf::H2(read), WriteHalf::H2(write))
            }
        }
    }
}

pub enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsTcp>),
    H2(tokio::io::ReadHalf<H2Stream>),
}

pub enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsTcp>),
    H2(tokio::io::WriteHalf<H2Stream>),
}

/// `AsyncRead` for an enum of a plain and a TLS stream: the variant's own.
macro_rules! delegate_read {
    ($type:ident) => {
        impl AsyncRead for $type {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $type::Plain(s) => Pin::new(s).poll_read(cx, buf),
                    $type::Tls(s) => Pin::new(s).poll_read(cx, buf),
                    $type::H2(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }
    };
}

/// `AsyncWrite` for an enum of a plain and a TLS stream: the variant's own.
macro_rules! delegate_write {
    ($type:ident) => {
        impl AsyncWrite for $type {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $type::Plain(s) => Pin::new(s).poll_write(cx, buf),
                    $type::Tls(s) => Pin::new(s).poll_write(cx, buf),
                    $type::H2(s) => Pin::new(s).poll_write(cx, buf),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $type::Plain(s) => Pin::new(s).poll_flush(cx),
                    $type::Tls(s) => Pin::new(s).poll_flush(cx),
                    $type::H2(s) => Pin::new(s).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $type::Plain(s) => Pin::new(s).poll_shutdown(cx),
                    $type::Tls(s) => Pin::new(s).poll_shutdown(cx),
                    $type::H2(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

delegate_read!(Stream);
delegate_write!(Stream);
delegate_read!(ReadHalf);
delegate_write!(WriteHalf);

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
    use wshub::Compression;

    use super::*;
    use crate::servers::{self, serves_tls};
    use crate::wire::{Rng, connect_with, say_hi};

    #[tokio::test]
    async fn a_load_client_chats_with_wshub_over_wss() {
        let certs = CertDir::generate().unwrap();
        let config = server_config(certs.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = servers::wshub_app(Compression::DISABLED, false);
        tokio::spawn(async move { wshub::serve(listener, app).tls(config).await });

        let connector = connector(certs.path()).unwrap();
        let mut rng = Rng::new(1);
        let connected = connect_with(addr, "name=Alice0", &mut rng, None, Some(&connector))
            .await
            .unwrap();
        let agreed = connected.stream.describe_tls().unwrap();
        assert!(agreed.starts_with("TLSv1_3"), "{agreed}");
        // The chat publishes to the room, sender included.
        let got = say_hi(connected, &mut rng).await;
        assert_eq!(got, [(0x81, b"Alice0: hi".to_vec())]);
    }

    #[test]
    fn the_certificate_directory_goes_with_its_owner() {
        let certs = CertDir::generate().unwrap();
        let dir = certs.path().to_owned();
        assert!(cert_path(&dir).is_file() && key_path(&dir).is_file());
        drop(certs);
        assert!(!dir.exists());
    }

    #[test]
    fn wss_is_served_by_bun_and_the_wshub_servers_but_hyper_and_slow() {
        for kind in [
            "wshub",
            "wshub-ct",
            "wshub-deflate-shared",
            "bun",
            "bun-deflate-3kb",
        ] {
            assert!(serves_tls(kind), "{kind}");
        }
        for kind in ["wshub-hyper", "wshub-slow", "axum", "axum-batched@65536"] {
            assert!(!serves_tls(kind), "{kind}");
        }
    }
}
