//! TLS for the tests: self-signed certificates made with rcgen, a server on
//! loopback behind `Serve::tls`, a tokio-tungstenite client that trusts
//! exactly the certificates given, and the bytes of a real ClientHello.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::client::Response as ClientResponse;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use wshub::tls::rustls::pki_types::{CertificateDer, ServerName};
use wshub::tls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, ServerConfig};

/// A wss:// client connection.
pub type WssClient = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A self-signed certificate for `localhost` and `127.0.0.1`, as PEM.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCert {
    pub fn generate() -> Self {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let generated = rcgen::generate_simple_self_signed(names).expect("rcgen");
        Self {
            cert_pem: generated.cert.pem(),
            key_pem: generated.signing_key.serialize_pem(),
            der: generated.cert.der().clone(),
        }
    }

    /// The server's certificate and key, parsed by wshub.
    pub fn certified_key(&self) -> rustls::sign::CertifiedKey {
        wshub::tls::parse_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
            .expect("parse the generated PEM")
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        wshub::tls::server_config(self.certified_key())
    }

    /// Writes `cert.pem` and `key.pem` into `dir`; returns their paths.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// A fresh directory under the system's temporary one, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("wshub-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves `app` over TLS with `config` on 127.0.0.1 in a spawned task.
pub async fn serve_tls(app: Router, config: Arc<ServerConfig>, handshake: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = wshub::serve(listener, app)
        .tls(config)
        .tls_handshake_timeout(handshake);
    tokio::spawn(async move { server.await.unwrap() });
    addr
}

/// A client configuration (ring, like the server) that trusts `certs` only.
pub fn client_config(certs: &[&TestCert]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert.der.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Opens `wss://localhost:PORT/` with tokio-tungstenite over rustls.
pub async fn wss_connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> (WssClient, ClientResponse) {
    let url = format!("wss://localhost:{}/", addr.port());
    let tcp = TcpStream::connect(addr).await.unwrap();
    // Or the client's Finished and its HTTP request wait for a delayed ACK.
    tcp.set_nodelay(true).unwrap();
    let connector = Connector::Rustls(Arc::clone(config));
    super::wait(
        "the wss handshake",
        tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector)),
    )
    .await
    .expect("wss handshake")
}

/// The end-entity certificate the server presented to `client`.
pub fn peer_certificate(client: &WssClient) -> CertificateDer<'static> {
    match client.get_ref() {
        MaybeTlsStream::Rustls(tls) => tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .expect("a certificate from the server")
            .clone()
            .into_owned(),
        _ => panic!("not a TLS connection"),
    }
}

/// The first flight of a rustls client for `localhost`: a whole ClientHello
/// record, for tests that send part of one.
pub fn client_hello() -> Vec<u8> {
    let config = client_config(&[]);
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    hello
}

/// A client configuration that accepts any certificate the server shows
/// (still checking the handshake's signatures): for the examples, which
/// make a new self-signed certificate each start.
pub fn client_config_trusting_any() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate(Arc::clone(&provider)));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
