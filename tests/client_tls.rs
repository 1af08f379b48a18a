//! The client over `wss://`: against the crate's own TLS server and Python's
//! `websockets` over `ssl`, trusting a test certificate; and the ways the
//! TLS side fails (an untrusted certificate, a server that does not speak
//! TLS).

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use common::tls::{TempDir, TestCert, serve_tls};
use common::*;
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;
use wshub::client::ConnectError;
use wshub::tls::rustls::RootCertStore;
use wshub::{Client as WsClient, Compression, Config, Message, WebSocketLayer, close_code};

fn trusting(cert: &TestCert) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    roots
}

async fn tls_probe(cert: &TestCert, config: Config) -> (std::net::SocketAddr, Events) {
    let (probe, events) = Probe::new();
    let app = Router::new()
        .route("/", any(accept))
        .layer(WebSocketLayer::new(probe).config(config));
    let addr = serve_tls(app, cert.server_config(), Duration::from_secs(5)).await;
    (addr, events)
}

#[tokio::test]
async fn wss_round_trips_with_compression_and_closes_cleanly() {
    within(WAIT, async {
        let cert = TestCert::generate();
        let (addr, mut events) =
            tls_probe(&cert, Config::default().per_message_deflate(true)).await;
        for host in ["localhost", "127.0.0.1"] {
            let mut socket = WsClient::new(format!("wss://{host}:{}/", addr.port()))
                .tls_roots(trusting(&cert))
                .compression(Compression::SHARED)
                .connect()
                .await
                .unwrap_or_else(|e| panic!("{host}: {e}"));
            let ws = events.open().await;
            assert_eq!(ws.remote_addr().map(|a| a.ip().is_loopback()), Some(true));
            // Past one 16 KiB TLS record, and many small ones.
            let big = "x".repeat(100_000);
            socket.send(big.as_str());
            for i in 0..100 {
                socket.send(format!("{i}"));
            }
            assert_eq!(socket.next().await, Some(Message::text(big.clone())));
            for i in 0..100 {
                assert_eq!(socket.next().await, Some(Message::text(format!("{i}"))));
            }
            socket.close(close_code::NORMAL, "bye");
            assert_eq!(socket.next().await, None);
            assert_eq!(socket.closed().unwrap().code, 1000);
            loop {
                if let Event::Close(code, _) = events.next().await {
                    assert_eq!(code, 1000);
                    break;
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn an_untrusted_certificate_or_no_tls_fails_the_connect() {
    within(WAIT, async {
        let cert = TestCert::generate();
        let (addr, _events) = tls_probe(&cert, Config::default()).await;
        let url = format!("wss://localhost:{}/", addr.port());
        // The default roots (Mozilla's) do not know a self-signed certificate.
        match WsClient::new(&url).connect().await {
            Err(ConnectError::Tls { host, source }) => {
                assert_eq!(host, "localhost");
                assert!(source.to_string().contains("certificate"), "{source}");
            }
            other => panic!("expected a TLS error, got {other:?}"),
        }
        // Trusting another certificate is no better.
        let other = TestCert::generate();
        assert!(matches!(
            WsClient::new(&url)
                .tls_roots(trusting(&other))
                .connect()
                .await,
            Err(ConnectError::Tls { .. })
        ));
        // A plain ws:// server on a wss:// URL.
        let (plain, _events) = probe_server(Config::default()).await;
        assert!(matches!(
            WsClient::new(format!("wss://localhost:{}/", plain.port()))
                .tls_roots(trusting(&cert))
                .connect()
                .await,
            Err(ConnectError::Tls { .. })
        ));
    })
    .await;
}

/// Python's `websockets` serving `wss://` with `ssl` and compression.
#[tokio::test]
async fn python_websockets_over_ssl() {
    within(Duration::from_secs(60), async {
        let cert = TestCert::generate();
        let dir = TempDir::new("client-tls-python");
        let (cert_path, key_path) = cert.write_to(&dir.0);
        let mut child = tokio::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/echo_server.py"
            ))
            .arg("default")
            .arg("--cert")
            .arg(&cert_path)
            .arg("--key")
            .arg(&key_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().expect("the peer's port");
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"]
            .as_u64()
            .unwrap();
        let mut socket = WsClient::new(format!("wss://localhost:{port}/"))
            .tls_config(tls_client_config(&cert))
            .compression(Compression::SHARED)
            .connect()
            .await
            .unwrap();
        let text = "over ssl, compressed ".repeat(5000);
        socket.send(text.as_str());
        socket.send(vec![9u8; 70_000]);
        assert_eq!(socket.next().await, Some(Message::text(text)));
        assert_eq!(
            socket.next().await,
            Some(Message::binary(vec![9u8; 70_000]))
        );
        socket.close(close_code::NORMAL, "");
        assert_eq!(socket.next().await, None);
        let report: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(report["close_code"], 1000, "{report}");
        assert!(
            report["received_compressed"].as_u64() >= Some(1),
            "{report}"
        );
    })
    .await;
}

/// A configuration of one's own: the test's roots, ALPN `http/1.1`.
fn tls_client_config(cert: &TestCert) -> Arc<wshub::tls::rustls::ClientConfig> {
    let mut config = (*common::tls::client_config(&[cert])).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}
