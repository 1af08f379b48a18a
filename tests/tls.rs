//! `wss://` through `wshub::serve(..).tls(..)`, seen by real clients:
//! tokio-tungstenite over rustls and Python's `websockets` with `ssl`.
//! Echo, compression, the peer's address, close codes, graceful shutdown,
//! certificate reload, and the errors of loading a certificate.
//! (Hostile handshakes: `tests/tls_hostile.rs`; Chromium: `tests/browser.rs`.)

mod common;

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use common::tls::*;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpListener;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use wshub::tls::{PemOrigin, ReloadableCert, TlsError};
use wshub::{Compression, Config, Hub, WebSocketLayer};

const HANDSHAKE: Duration = Duration::from_secs(10);

/// A [`Probe`] echo server on `wss://`, its events and hub, and the
/// certificate its clients must trust.
async fn probe_over_tls(config: Config) -> (SocketAddr, Events, Hub, TestCert) {
    let cert = TestCert::generate();
    let (probe, events) = Probe::new();
    let layer = WebSocketLayer::new(probe).config(config);
    let hub = layer.hub();
    let app = Router::new().route("/", any(accept)).layer(layer);
    let addr = serve_tls(app, cert.server_config(), HANDSHAKE).await;
    (addr, events, hub, cert)
}

fn close_code(msg: Msg) -> (u16, String) {
    match msg {
        Msg::Close(Some(frame)) => (u16::from(frame.code), frame.reason.to_string()),
        other => panic!("expected a close frame with a code, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_of_every_size_echo_over_wss() {
    within(WAIT, async {
        let (addr, mut events, _hub, cert) = probe_over_tls(Config::default()).await;
        let (mut client, response) = wss_connect(addr, &client_config(&[&cert])).await;
        assert_eq!(response.status(), 101);
        events.open().await;
        // Past one TLS record (16 KiB) and many of them.
        for size in [0, 1, 125, 126, 16 * 1024 + 1, 1 << 20] {
            let text = "x".repeat(size);
            send(&mut client, Msg::text(text.clone())).await;
            assert_eq!(recv(&mut client).await, Msg::text(text), "text of {size}");
            let binary: Vec<u8> = (0..size).map(|i| i as u8).collect();
            send(&mut client, Msg::binary(binary.clone())).await;
            assert_eq!(
                recv(&mut client).await,
                Msg::binary(binary),
                "binary of {size}"
            );
        }
        // A burst: many frames queued at once leave in batched writes.
        for i in 0..500 {
            send(&mut client, Msg::text(format!("burst {i}"))).await;
        }
        for i in 0..500 {
            assert_eq!(recv(&mut client).await, Msg::text(format!("burst {i}")));
        }
        send(&mut client, Msg::Ping(b"over tls".to_vec().into())).await;
        assert_eq!(
            recv(&mut client).await,
            Msg::Pong(b"over tls".to_vec().into())
        );
    })
    .await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    within(WAIT, async {
        let (addr, _events, _hub, _cert) = probe_over_tls(Config::default()).await;
        let other = TestCert::generate();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connector = tokio_tungstenite::Connector::Rustls(client_config(&[&other]));
        let url = format!("wss://localhost:{}/", addr.port());
        let result =
            tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector)).await;
        let Err(error) = result else {
            panic!("a client that does not trust the certificate connected");
        };
        assert!(
            error.to_string().contains("certificate"),
            "unexpected error: {error}"
        );
    })
    .await;
}

#[tokio::test]
async fn remote_addr_is_the_clients_address_over_wss() {
    within(WAIT, async {
        let (addr, mut events, _hub, cert) = probe_over_tls(Config::default()).await;
        let (client, _) = wss_connect(addr, &client_config(&[&cert])).await;
        let ws = events.open().await;
        assert_eq!(ws.remote_addr(), Some(local_addr(&client)));
    })
    .await;
}

/// A server of one's own (hyper over tokio-rustls, no `ConnectInfo`): the
/// driver reaches the TLS stream behind hyper's `Upgraded` and reads the
/// peer's address from its TCP stream.
#[tokio::test]
async fn remote_addr_comes_from_the_tls_stream_itself() {
    within(WAIT, async {
        let cert = TestCert::generate();
        let (probe, mut events) = Probe::new();
        let app = Router::new()
            .route("/", any(accept))
            .layer(WebSocketLayer::new(probe));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config());
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await.unwrap();
            let service = TowerToHyperService::new(app);
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await;
        });
        let (mut client, _) = wss_connect(addr, &client_config(&[&cert])).await;
        let ws = events.open().await;
        assert_eq!(ws.remote_addr(), Some(local_addr(&client)));
        send(&mut client, Msg::text("still echoing")).await;
        assert_eq!(recv(&mut client).await, Msg::text("still echoing"));
    })
    .await;
}

#[tokio::test]
async fn close_codes_travel_both_ways_over_wss() {
    within(WAIT, async {
        let config = Config::default().max_payload_length(1024);
        let (addr, mut events, _hub, cert) = probe_over_tls(config).await;
        let client_tls = client_config(&[&cert]);

        // The client closes: the server reports and echoes its code.
        let (mut client, _) = wss_connect(addr, &client_tls).await;
        events.open().await;
        let frame = CloseFrame {
            code: CloseCode::from(4000),
            reason: "bye".into(),
        };
        wait("the close", client.close(Some(frame))).await.unwrap();
        assert_eq!(close_code(recv(&mut client).await), (4000, String::new()));
        expect_end(&mut client).await;
        assert_eq!(events.close().await, (4000, "bye".to_owned()));

        // The server closes with a code of its own.
        let (mut client, _) = wss_connect(addr, &client_tls).await;
        let ws = events.open().await;
        ws.close(4001, "done");
        assert_eq!(close_code(recv(&mut client).await), (4001, "done".into()));
        expect_end(&mut client).await;
        assert_eq!(events.close().await, (4001, "done".to_owned()));

        // A message over the limit closes with 1009.
        let (mut client, _) = wss_connect(addr, &client_tls).await;
        events.open().await;
        send(&mut client, Msg::binary(vec![0; 2048])).await;
        assert_eq!(close_code(recv(&mut client).await).0, 1009);
        expect_end(&mut client).await;
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_closes_wss_sockets_with_1001() {
    within(WAIT, async {
        let cert = TestCert::generate();
        let (probe, mut events) = Probe::new();
        let layer = WebSocketLayer::new(probe);
        let hub = layer.hub();
        let app = Router::new().route("/", any(accept)).layer(layer);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown_hub = hub.clone();
        let server = tokio::spawn(
            wshub::serve(listener, app)
                .tls(cert.server_config())
                // Longer than the test: a handshake in progress must not
                // hold the shutdown up.
                .tls_handshake_timeout(Duration::from_secs(600))
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                    shutdown_hub.shutdown(Duration::from_secs(5)).await;
                })
                .into_future(),
        );
        let client_tls = client_config(&[&cert]);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(wss_connect(addr, &client_tls).await.0);
            // A message queued before the shutdown still arrives, then the 1001.
            events.open().await.send("last words");
        }
        // And one that stopped halfway through its ClientHello.
        let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
        let hello = client_hello();
        stalled.write_all(&hello[..hello.len() / 2]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop_tx.send(()).unwrap();
        for client in &mut clients {
            assert_eq!(recv(client).await, Msg::text("last words"));
            assert_eq!(close_code(recv(client).await).0, 1001);
            expect_end(client).await;
        }
        // Once the hub is closed the server stops, without waiting for the
        // handshake.
        let mut buf = [0u8; 64];
        let read = wait(
            "the stalled handshake to be dropped",
            stalled.read(&mut buf),
        )
        .await;
        assert!(matches!(read, Ok(0) | Err(_)), "got {read:?}");
        wait("the server to stop", server).await.unwrap().unwrap();
        assert_eq!(hub.connections(), 0);
        // The listener is gone.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
}

/// A client sees the first certificate; after a reload, a new connection
/// sees the second while the one already open keeps working.
#[tokio::test]
async fn a_reloaded_certificate_is_presented_to_new_connections() {
    within(WAIT, async {
        let dir = TempDir::new("reload");
        let (first, second) = (TestCert::generate(), TestCert::generate());
        let (cert_path, key_path) = first.write_to(&dir.0);
        let reloadable = Arc::new(ReloadableCert::from_pem_files(&cert_path, &key_path).unwrap());
        let (probe, mut events) = Probe::new();
        let app = Router::new()
            .route("/", any(accept))
            .layer(WebSocketLayer::new(probe));
        let addr = serve_tls(app, reloadable.server_config(), HANDSHAKE).await;
        // A new client configuration for each connection: one shared would
        // resume its first TLS session, skipping the certificate exchange.
        let trusts_both = || client_config(&[&first, &second]);

        let (mut before, _) = wss_connect(addr, &trusts_both()).await;
        events.open().await;
        assert_eq!(peer_certificate(&before), first.der);

        // Renewed files, then a reload.
        second.write_to(&dir.0);
        reloadable
            .reload_from_pem_files(&cert_path, &key_path)
            .unwrap();
        assert_eq!(reloadable.current().cert[0], second.der);

        let (mut after, _) = wss_connect(addr, &trusts_both()).await;
        events.open().await;
        assert_eq!(peer_certificate(&after), second.der);
        // A client that trusts only the old certificate is now refused.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connector = tokio_tungstenite::Connector::Rustls(client_config(&[&first]));
        let url = format!("wss://localhost:{}/", addr.port());
        let refused =
            tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector)).await;
        assert!(refused.is_err(), "the old certificate is still presented");

        for client in [&mut before, &mut after] {
            send(client, Msg::text("hello")).await;
            assert_eq!(recv(client).await, Msg::text("hello"));
        }

        // A failed reload (the key of another certificate) changes nothing.
        std::fs::write(&key_path, &first.key_pem).unwrap();
        let error = reloadable
            .reload_from_pem_files(&cert_path, &key_path)
            .unwrap_err();
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
        let (still, _) = wss_connect(addr, &trusts_both()).await;
        assert_eq!(peer_certificate(&still), second.der);
    })
    .await;
}

/// Each way a certificate and key can be wrong has its own error, naming
/// the file.
#[test]
fn loading_pem_files_fails_with_an_error_that_names_the_problem() {
    let dir = TempDir::new("pem");
    let (good, other) = (TestCert::generate(), TestCert::generate());
    let (cert, key) = good.write_to(&dir.0);
    assert!(wshub::tls::load_pem_files(&cert, &key).is_ok());
    let config = wshub::tls::server_config_from_pem_files(&cert, &key).unwrap();
    // HTTP/1.1, and HTTP/2 first where the server speaks it.
    let alpn: &[&[u8]] = if cfg!(feature = "http2") {
        &[b"h2", b"http/1.1"]
    } else {
        &[b"http/1.1"]
    };
    assert_eq!(config.alpn_protocols, alpn);

    let missing = dir.0.join("missing.pem");
    match wshub::tls::load_pem_files(&missing, &key) {
        Err(TlsError::Read { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Read, got {other:?}"),
    }
    let error = wshub::tls::load_pem_files(&cert, &missing).unwrap_err();
    assert!(error.to_string().contains("missing.pem"), "{error}");

    // The key where the certificate should be, and the other way round.
    match wshub::tls::load_pem_files(&key, &key) {
        Err(TlsError::NoCertificate(PemOrigin::File(path))) => assert_eq!(path, key),
        other => panic!("expected NoCertificate, got {other:?}"),
    }
    match wshub::tls::load_pem_files(&cert, &cert) {
        Err(TlsError::NoKey(PemOrigin::File(path))) => assert_eq!(path, cert),
        other => panic!("expected NoKey, got {other:?}"),
    }

    // DER, or anything that is not PEM at all.
    let der = dir.0.join("cert.der");
    std::fs::write(&der, &good.der).unwrap();
    assert!(matches!(
        wshub::tls::load_pem_files(&der, &key),
        Err(TlsError::NoCertificate(_))
    ));

    // A certificate section cut short.
    let truncated = dir.0.join("truncated.pem");
    let cut = &good.cert_pem[..good.cert_pem.len() / 2];
    std::fs::write(&truncated, cut).unwrap();
    match wshub::tls::load_pem_files(&truncated, &key) {
        Err(TlsError::Pem { origin, .. }) => assert_eq!(origin, PemOrigin::File(truncated)),
        other => panic!("expected Pem, got {other:?}"),
    }

    // Another certificate's key.
    let other_key = dir.0.join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    match wshub::tls::load_pem_files(&cert, &other_key) {
        Err(TlsError::KeyMismatch { cert: c, key: k }) => {
            assert_eq!((c, k), (PemOrigin::File(cert), PemOrigin::File(other_key)));
        }
        other => panic!("expected KeyMismatch, got {other:?}"),
    }

    // In memory, the same checks.
    let error = wshub::tls::parse_pem(good.key_pem.as_bytes(), good.key_pem.as_bytes());
    assert!(matches!(
        error,
        Err(TlsError::NoCertificate(PemOrigin::Memory("certificate")))
    ));
}

// ---------------------------------------------------------------------------
// Python's `websockets` over `ssl`, with permessage-deflate
// ---------------------------------------------------------------------------

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/deflate_echo.py");

/// The Python peer (the deflate interop peer, given a CA file) echoes 40
/// messages up to 200 KiB, compressed both ways, over `wss://`.
#[tokio::test]
async fn python_websockets_over_ssl_with_compression() {
    within(Duration::from_secs(150), async {
        let (addr, _events, _hub, cert) =
            probe_over_tls(Config::default().compression(Compression::SHARED)).await;
        let dir = TempDir::new("python-ca");
        let (ca, _) = cert.write_to(&dir.0);
        let mut command = tokio::process::Command::new("python3");
        command
            .arg(PEER)
            .arg(format!("wss://localhost:{}/", addr.port()))
            .arg("default")
            .arg("--ca")
            .arg(&ca)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = command
            .output()
            .await
            .expect("python3 must run (scripts/test.sh installs `websockets`)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("no output from the Python peer; stderr: {stderr}"));
        let result: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the Python peer printed {line:?} ({e}); stderr: {stderr}"));
        assert_eq!(result["error"], Value::Null, "{result}");
        assert_eq!(
            result["extensions"],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "{result}"
        );
        assert_eq!(result["sent"], 40, "{result}");
        assert_eq!(result["matched"], 40, "{result}");
        assert_eq!(result["sent_compressed"], 40, "{result}");
        assert_eq!(result["received_compressed"], 40, "{result}");
        assert_eq!(result["close_code"], 1000, "{result}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// The echo example with --tls: idle wss connections, held and served
// ---------------------------------------------------------------------------

/// 1,000 idle `wss://` connections to the echo example (`--tls`, its own
/// process): every one is served, and the server's memory per connection
/// is reported and bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_wss_connections_are_held_and_served() {
    const N: usize = 1_000;
    testkit::raise_nofile(2 * N as u64 + 1_000).unwrap();
    within(Duration::from_secs(180), async {
        let server = common::echo_server::EchoServer::start_tls_with_workers("off", 2).await;
        let config = client_config_trusting_any();
        // One connection first: the runtime, rustls and the allocator set
        // up what every connection shares.
        let (mut first, _) = wss_connect(server.addr, &config).await;
        send(&mut first, Msg::text("warm")).await;
        assert_eq!(recv(&mut first).await, Msg::text("warm"));
        let before = server.rss_kib();
        let mut clients = Vec::with_capacity(N);
        for _ in 0..N {
            clients.push(wss_connect(server.addr, &config).await.0);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let held = server.rss_kib().saturating_sub(before) as f64 / N as f64;
        eprintln!("echo server RSS per idle wss connection: {held:.2} KiB");
        assert!(
            held < MAX_KIB_PER_IDLE_WSS,
            "{held:.2} KiB per idle wss connection"
        );
        for client in &mut clients {
            send(client, Msg::text("still there?")).await;
        }
        for client in &mut clients {
            assert_eq!(recv(client).await, Msg::text("still there?"));
        }
    })
    .await;
}

/// Measured 9.0 to 9.4 KiB (2 cores, the test profile, 2026-11-29): the
/// 1.5 KiB of a plain socket (`tests/scale.rs`) plus a rustls session,
/// which keeps a 4 KiB read buffer while idle. Another buffer of that size
/// per socket fails it.
const MAX_KIB_PER_IDLE_WSS: f64 = 12.0;

// ---------------------------------------------------------------------------
// Batched writes survive TLS
// ---------------------------------------------------------------------------

/// Sends `count` numbered messages at once when asked with `burst COUNT`.
struct Burst;

impl wshub::Handler for Burst {
    type Data = ();

    async fn message(&self, ws: &wshub::WebSocket, msg: wshub::Message) {
        let count = msg
            .as_text()
            .and_then(|text| text.strip_prefix("burst "))
            .and_then(|count| count.parse::<usize>().ok())
            .unwrap_or(0);
        for i in 0..count {
            ws.send(format!("message {i}"));
        }
    }
}

/// Counts the TLS application-data records (content type 23) read through it.
struct RecordTap {
    inner: tokio::net::TcpStream,
    records: Arc<AtomicUsize>,
    /// The record header being read, and how much of it has arrived.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current record's body still to come.
    body_left: usize,
}

impl RecordTap {
    fn scan(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.body_left > 0 {
                let skip = self.body_left.min(rest.len());
                self.body_left -= skip;
                rest = &rest[skip..];
                continue;
            }
            self.header[self.header_len] = rest[0];
            self.header_len += 1;
            rest = &rest[1..];
            if self.header_len == 5 {
                self.header_len = 0;
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                if self.header[0] == 23 {
                    self.records.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl AsyncRead for RecordTap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = buf.filled()[before..].to_vec();
        self.scan(&new);
        polled
    }
}

impl AsyncWrite for RecordTap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// 500 messages sent in one go reach the client in a handful of TLS
/// records: the driver's vectored writes hand rustls many frames at once,
/// and it seals them together (a write per frame would cost a record, 22
/// bytes and an encryption each).
#[tokio::test]
async fn a_burst_of_sends_leaves_in_a_few_tls_records() {
    const BURST: usize = 500;
    within(WAIT, async {
        let cert = TestCert::generate();
        let app = Router::new()
            .route("/", any(accept))
            .layer(WebSocketLayer::new(Burst));
        let addr = serve_tls(app, cert.server_config(), HANDSHAKE).await;
        let records = Arc::new(AtomicUsize::new(0));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let tap = RecordTap {
            inner: tcp,
            records: Arc::clone(&records),
            header: [0; 5],
            header_len: 0,
            body_left: 0,
        };
        let connector = tokio_rustls::TlsConnector::from(client_config(&[&cert]));
        let name = wshub::tls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = wait("the TLS handshake", connector.connect(name, tap))
            .await
            .unwrap();
        let (mut client, _) = wait(
            "the WebSocket handshake",
            tokio_tungstenite::client_async(format!("wss://localhost:{}/", addr.port()), tls),
        )
        .await
        .unwrap();
        // Session tickets and the 101 are behind us.
        records.store(0, Ordering::Relaxed);
        wait(
            "the request",
            client.send(Msg::text(format!("burst {BURST}"))),
        )
        .await
        .unwrap();
        for i in 0..BURST {
            match wait("a message", client.next()).await {
                Some(Ok(msg)) => assert_eq!(msg, Msg::text(format!("message {i}"))),
                other => panic!("expected message {i}, got {other:?}"),
            }
        }
        let records = records.load(Ordering::Relaxed);
        eprintln!("{BURST} messages arrived in {records} TLS records");
        // Up to 64 frames per vectored write: 8 writes, a record each.
        assert!(records <= 16, "{BURST} messages took {records} TLS records");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Request heads are bounded after the handshake too
// ---------------------------------------------------------------------------

/// A TLS client that finished its handshake, over a raw stream.
async fn tls_stream(
    addr: SocketAddr,
    cert: &TestCert,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&[cert]));
    let name = wshub::tls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    wait("the TLS handshake", connector.connect(name, tcp))
        .await
        .unwrap()
}

/// Over TLS as over TCP: a request head over `max_header_size` gets 431, and
/// a client that completes the handshake and then sends nothing is cut off
/// after `header_read_timeout`.
#[tokio::test]
async fn request_heads_are_bounded_over_tls() {
    within(WAIT, async {
        let cert = TestCert::generate();
        let app = Router::new()
            .route("/", any(accept))
            .layer(WebSocketLayer::new(Probe::new().0));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = wshub::serve(listener, app)
            .tls(cert.server_config())
            .max_header_size(8 * 1024)
            .header_read_timeout(Duration::from_secs(1));
        tokio::spawn(server.into_future());

        let mut big = tls_stream(addr, &cert).await;
        let filler = "x".repeat(16 * 1024);
        let request = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Filler: {filler}\r\n\r\n");
        // The server may stop reading before the whole head is written.
        let _ = big.write_all(request.as_bytes()).await;
        let mut response = Vec::new();
        let _ = wait("the 431", big.read_to_end(&mut response)).await;
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 431"), "got {response:?}");

        let mut silent = tls_stream(addr, &cert).await;
        let since = std::time::Instant::now();
        let mut buf = [0u8; 1024];
        let mut received = Vec::new();
        loop {
            match wait("the connection to end", silent.read(&mut buf)).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        let elapsed = since.elapsed();
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
            "cut after {elapsed:?}"
        );
        let received = String::from_utf8_lossy(&received);
        assert!(
            received.is_empty() || received.starts_with("HTTP/1.1 408"),
            "got {received:?}"
        );
    })
    .await;
}
