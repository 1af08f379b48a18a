//! `wshub-h2`: the wshub server, its load clients over HTTP/2 (h2c, RFC
//! 8441). Each client opens its own HTTP/2 connection, as browsers of
//! different users would, and its WebSocket as an extended CONNECT stream
//! of it; the frames inside are the same as over HTTP/1.1.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::tls::Stream;
use crate::wire::{Agreed, Connected, connect_tcp};

/// How long a server may take to say, in its SETTINGS, that it takes
/// extended CONNECT.
const SETTINGS_WAIT: Duration = Duration::from_secs(5);

/// Opens a WebSocket to `/?QUERY` over a new h2c connection to `addr`,
/// offering the extension `offer`.
pub async fn connect(addr: SocketAddr, query: &str, offer: Option<&str>) -> io::Result<Connected> {
    let tcp = connect_tcp(addr).await?;
    let (mut send, mut conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(io::Error::other)?;
    // hyper reads the connection in a task of its own: look at the flag
    // between polls of the request side.
    let deadline = Instant::now() + SETTINGS_WAIT;
    while !conn.is_extended_connect_protocol_enabled() {
        if let Poll::Ready(ended) = poll_fn(|cx| Poll::Ready(Pin::new(&mut conn).poll(cx))).await {
            return Err(io::Error::other(format!(
                "HTTP/2 connection ended before its SETTINGS: {ended:?}"
            )));
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(
                "the server does not take extended CONNECT (no SETTINGS_ENABLE_CONNECT_PROTOCOL)",
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{addr}/?{query}"))
        .header("sec-websocket-version", "13")
        .extension(hyper::ext::Protocol::from_static("websocket"));
    if let Some(offer) = offer {
        request = request.header("sec-websocket-extensions", offer);
    }
    let request = request.body(String::new()).map_err(io::Error::other)?;
    // The connection's request side runs in its own task (it sends the
    // request), with a handle on it: it lives as long as the socket.
    let keep = send.clone();
    tokio::spawn(async move {
        let _keep = keep;
        let _ = conn.await;
    });
    let mut response = send.send_request(request).await.map_err(io::Error::other)?;
    if response.status() != StatusCode::OK {
        return Err(io::Error::other(format!(
            "extended CONNECT refused: {}",
            response.status()
        )));
    }
    let deflate = match response.headers().get("sec-websocket-extensions") {
        None => None,
        Some(answer) => {
            let answer = answer.to_str().map_err(io::Error::other)?;
            if offer.is_none() {
                return Err(io::Error::other(format!(
                    "extension {answer:?} accepted but never offered"
                )));
            }
            Some(Agreed::parse(answer).ok_or_else(|| {
                io::Error::other(format!("unexpected extension answer {answer:?}"))
            })?)
        }
    };
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(io::Error::other)?;
    Ok(Connected {
        stream: Stream::H2(Box::new(TokioIo::new(upgraded))),
        early: Vec::new(),
        deflate,
    })
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
    use wshub::Compression;

    use super::*;
    use crate::servers;
    use crate::wire::{Rng, say_hi};

    #[tokio::test]
    async fn a_load_client_chats_with_wshub_over_h2c() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = servers::wshub_app(Compression::DISABLED, false);
        tokio::spawn(async move { wshub::serve(listener, app).await });

        let connected = connect(addr, "name=Alice0", None).await.unwrap();
        assert!(matches!(connected.stream, Stream::H2(_)));
        // The chat publishes to the room, sender included.
        let got = say_hi(connected, &mut Rng::new(1)).await;
        assert_eq!(got, [(0x81, b"Alice0: hi".to_vec())]);
    }
}
