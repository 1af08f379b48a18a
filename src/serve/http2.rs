//! HTTP/2 for [`serve`](super::serve) (the `http2` feature): telling an
//! h2c client from an HTTP/1.1 one, and serving an HTTP/2 connection with
//! extended CONNECT on, so WebSockets run over its streams (RFC 8441).

use std::convert::Infallible;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tower_service::Service;

use super::{Conn, WithPeer};

/// What an HTTP/2 client sends first, with prior knowledge (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The longest wait between two looks at a preface that came in part.
const PEEK_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Whether a plain TCP client speaks HTTP/2 with prior knowledge (h2c),
/// looked at without reading: `Some(false)` leaves every byte to HTTP/1.1.
/// `None` if the connection failed or sent too little before `timeout`.
///
/// An HTTP/1.1 request differs from the preface at its first byte (no
/// method is `PRI`), so only an HTTP/2 client, or one that trickles the
/// preface's first bytes, is looked at more than once.
pub(super) async fn sniff(tcp: &TcpStream, timeout: Duration) -> Option<bool> {
    let look = async {
        let mut buf = [0u8; PREFACE.len()];
        let mut backoff = Duration::from_millis(1);
        loop {
            let n = tcp.peek(&mut buf).await?;
            // Closed (`n == 0`; HTTP/1.1 sees the end), or not the preface.
            if n == 0 || buf[..n] != PREFACE[..n] {
                return Ok::<_, io::Error>(false);
            }
            if n == PREFACE.len() {
                return Ok(true);
            }
            // The socket stays readable while the first bytes sit unread:
            // wait for the rest instead of spinning on them.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(PEEK_BACKOFF_MAX);
        }
    };
    match tokio::time::timeout(timeout, look).await {
        Ok(Ok(h2)) => Some(h2),
        Ok(Err(error)) => {
            tracing::trace!(%error, "connection failed before its first request");
            None
        }
        Err(_) => {
            tracing::debug!(?timeout, "no request within the header read timeout");
            None
        }
    }
}

/// Serves an HTTP/2 connection over `io` until it ends, or until the server
/// stops and its streams (WebSockets among them) have ended.
///
/// A client must make its first request within the header read timeout;
/// request heads are bounded by the same `max_header_size` as over
/// HTTP/1.1 (`SETTINGS_MAX_HEADER_LIST_SIZE`).
pub(super) async fn serve<I>(io: I, conn: Conn)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Conn {
        service,
        limits,
        mut stop,
        _done,
    } = conn;
    let asked = Arc::new(AtomicBool::new(false));
    let service = Asked {
        inner: service,
        asked: Arc::clone(&asked),
    };
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        // SETTINGS_ENABLE_CONNECT_PROTOCOL: the client may open WebSockets.
        .enable_connect_protocol()
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX));
    let conn = builder.serve_connection(io, TowerToHyperService::new(service));
    let mut conn = pin!(conn);
    let first_request = tokio::time::sleep(limits.header_read_timeout);
    let mut first_request = pin!(first_request);
    let mut waiting = true;
    let ended = loop {
        tokio::select! {
            ended = conn.as_mut() => break ended,
            () = &mut first_request, if waiting => {
                waiting = false;
                if !asked.load(Ordering::Relaxed) {
                    tracing::debug!("no HTTP/2 request within the header read timeout");
                    return;
                }
            }
            _ = stop.changed() => {
                // GOAWAY: no new streams; those open finish first.
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
        }
    };
    if let Err(error) = ended {
        tracing::trace!(%error, "HTTP/2 connection ended");
    }
}

/// The router, noting that a request came.
#[derive(Clone)]
struct Asked {
    inner: WithPeer,
    asked: Arc<AtomicBool>,
}

impl Service<Request<Incoming>> for Asked {
    type Response = <WithPeer as Service<Request<Incoming>>>::Response;
    type Error = Infallible;
    type Future = <WithPeer as Service<Request<Incoming>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        self.asked.store(true, Ordering::Relaxed);
        self.inner.call(req)
    }
}
