//! What `wshub::serve` does to clients that abuse the opening handshake:
//! request heads sent too slowly or too large are cut off before any route.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

async fn hardened(timeout: Duration) -> std::net::SocketAddr {
    let (probe, _events) = Probe::new();
    let app = Router::new()
        .route("/", get(accept))
        .layer(wshub::WebSocketLayer::new(probe));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        wshub::serve(listener, app)
            .header_read_timeout(timeout)
            .max_header_size(16 * 1024)
            .into_future(),
    );
    addr
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

use std::future::IntoFuture as _;

#[tokio::test]
async fn a_client_sending_its_headers_one_byte_at_a_time_is_cut_off() {
    within(WAIT, async {
        let addr = hardened(Duration::from_millis(500)).await;
        let request = HttpRequest::upgrade("/").to_bytes();
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let writer = async {
            for byte in &request {
                if tcp.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        // The whole request would take ~15 s at this pace.
        let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
        let closed_after = started.elapsed();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), tcp.read_to_end(&mut rest)).await;
        assert!(
            closed_after < Duration::from_secs(3),
            "the server kept a slow client for {closed_after:?}"
        );
        assert!(!String::from_utf8_lossy(&rest).contains("101"));
    })
    .await;
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    within(WAIT, async {
        let addr = hardened(Duration::from_secs(5)).await;
        let request = HttpRequest::upgrade("/").header("x-padding", &"a".repeat(64 * 1024));
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let _ = tcp.write_all(&request.to_bytes()).await;
        let answer = String::from_utf8_lossy(&until_closed(&mut tcp).await).into_owned();
        assert!(!answer.contains(" 101 "), "{answer}");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );
    })
    .await;
}

#[tokio::test]
async fn well_behaved_clients_still_upgrade_through_serve() {
    within(WAIT, async {
        let addr = hardened(Duration::from_millis(500)).await;
        let mut client = connect(addr).await;
        send(&mut client, Msg::text("hi")).await;
        assert!(matches!(recv(&mut client).await, Msg::Text(t) if t.as_str() == "hi"));
        // An idle WebSocket is not subject to the header timeout.
        tokio::time::sleep(Duration::from_millis(800)).await;
        send(&mut client, Msg::text("still here")).await;
        assert!(matches!(recv(&mut client).await, Msg::Text(t) if t.as_str() == "still here"));
    })
    .await;
}
