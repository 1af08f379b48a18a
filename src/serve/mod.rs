//! [`serve`]: an HTTP/1.1 (and, with the `http2` feature, HTTP/2) server
//! for an axum `Router`, set up the way a WebSocket server needs it.

#[cfg(feature = "http2")]
mod http2;

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

/// hyper refuses a smaller read buffer.
const MIN_HEADER_BUFFER: usize = 8 * 1024;

/// Serves `app` on `listener` over HTTP/1.1, with what WebSocket servers need:
///
/// - **`TCP_NODELAY`** on every connection. wshub batches its writes itself;
///   with Nagle's algorithm on, a small frame written while an earlier one is
///   unacknowledged waits for the peer's delayed ACK (up to 40 ms on Linux).
/// - **Bounded request heads**: a client that sends its request line and
///   headers too slowly ([`header_read_timeout`](Serve::header_read_timeout),
///   10 s) or too large ([`max_header_size`](Serve::max_header_size), 64 KiB)
///   is cut off before it reaches any route.
/// - **The peer's address** for [`WebSocket::remote_addr`](crate::WebSocket::remote_addr)
///   and for routes (axum's `ConnectInfo<SocketAddr>`).
/// - **Graceful shutdown** with [`Serve::with_graceful_shutdown`]; pair it
///   with [`Hub::shutdown`](crate::Hub::shutdown) to close the WebSockets too.
///
/// Upgraded connections keep the bare TCP stream, without hyper's wrapper.
///
/// With the `http2` feature it speaks **HTTP/2** too: h2c from clients that
/// start with HTTP/2's preface (prior knowledge), and `h2` chosen by ALPN
/// over TLS. WebSockets then open as streams of the HTTP/2 connection
/// (RFC 8441, extended CONNECT: route them with `any`, see
/// [`Upgrade`](crate::Upgrade)). HTTP/1.1 stays the fast path: a socket
/// over HTTP/2 shares its connection's flow control and frames, so it costs
/// more per message. An HTTP/2 client must make its first request within
/// the header read timeout, and its request heads are bounded by the same
/// [`max_header_size`](Serve::max_header_size).
///
/// With the `tls` feature, `Serve::tls` serves `wss://` and `https://`
/// with the same guarantees, and a handshake deadline
/// (`Serve::tls_handshake_timeout`, 10 s).
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use wshub::{Handler, Upgrade, WebSocketLayer};
///
/// struct Feed;
/// impl Handler for Feed { type Data = (); }
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let app = Router::new()
///     .route("/ws", get(|up: Upgrade| async move { up.accept(()) }))
///     .layer(WebSocketLayer::new(Feed));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// wshub::serve(listener, app).await
/// # }
/// ```
pub fn serve(listener: TcpListener, app: Router) -> Serve {
    Serve {
        listener,
        app,
        limits: Limits {
            header_read_timeout: Duration::from_secs(10),
            max_header_size: 64 * 1024,
            #[cfg(feature = "tls")]
            tls_handshake_timeout: Duration::from_secs(10),
        },
        #[cfg(feature = "tls")]
        tls: None,
    }
}

/// A server to `.await`; see [`serve`].
#[must_use = "a server does nothing until awaited"]
#[derive(Debug)]
pub struct Serve {
    listener: TcpListener,
    app: Router,
    limits: Limits,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::Acceptor>,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    max_header_size: usize,
    #[cfg(feature = "tls")]
    tls_handshake_timeout: Duration,
}

impl Serve {
    /// How long a client may take to send a request's line and headers
    /// (10 s by default); slower clients are disconnected.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// The largest request head accepted, in bytes (64 KiB by default, at
    /// least 8 KiB); larger ones get `431` and the connection closes.
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.limits.max_header_size = bytes.max(MIN_HEADER_BUFFER);
        self
    }

    /// Serves TLS (`wss://`, `https://`) with `config`, from
    /// [`tls::server_config`](crate::tls::server_config) and its siblings or
    /// your own (set its ALPN to `http/1.1`, or `h2` and `http/1.1` with
    /// the `http2` feature; see [`tls`](crate::tls)).
    /// Upgraded sockets write straight to the TLS stream, with batched
    /// writes and [`WebSocket::remote_addr`](crate::WebSocket::remote_addr)
    /// as over TCP.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let app = axum::Router::new();
    /// let tls = wshub::tls::server_config_from_pem_files("fullchain.pem", "privkey.pem")?;
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
    /// wshub::serve(listener, app).tls(tls).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: std::sync::Arc<crate::tls::rustls::ServerConfig>) -> Self {
        self.tls = Some(crate::tls::Acceptor::new(config));
        self
    }

    /// How long a client may take to complete the TLS handshake (10 s by
    /// default), from the moment its connection is accepted; a client that
    /// sends nothing, or its ClientHello a byte at a time, is disconnected.
    /// Then [`header_read_timeout`](Self::header_read_timeout) applies.
    #[cfg(feature = "tls")]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.limits.tls_handshake_timeout = timeout;
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Stops accepting when `signal` resolves, lets every HTTP request in
    /// flight finish, and then resolves.
    ///
    /// A WebSocket over HTTP/1.1 has left its HTTP connection and does not
    /// hold the server up; one over HTTP/2 is a request of its connection
    /// until it closes, so close them with [`Hub::shutdown`](crate::Hub::shutdown).
    pub fn with_graceful_shutdown<F>(self, signal: F) -> WithGracefulShutdown<F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        WithGracefulShutdown {
            serve: self,
            signal,
        }
    }

    async fn run(self, signal: impl Future<Output = ()>) -> io::Result<()> {
        let Self {
            listener,
            app,
            limits,
            #[cfg(feature = "tls")]
            tls,
        } = self;
        // Connections watch `stop`, and hold `done` until they end.
        let (stop_tx, stop_rx) = watch::channel(());
        let (done_tx, done_rx) = watch::channel(());
        let mut signal = pin!(signal);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        accept_failed(error).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            let service = WithPeer {
                inner: app.clone(),
                peer,
            };
            let conn = Conn {
                service,
                limits,
                stop: stop_rx.clone(),
                _done: done_rx.clone(),
            };
            #[cfg(feature = "tls")]
            if let Some(tls) = &tls {
                tokio::spawn(conn.serve_tls(tcp, tls.clone()));
                continue;
            }
            tokio::spawn(conn.serve(tcp));
        }
        drop(listener);
        drop((stop_rx, done_rx));
        let _ = stop_tx.send(());
        done_tx.closed().await;
        Ok(())
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run(std::future::pending()))
    }
}

/// A server that shuts down gracefully; see [`Serve::with_graceful_shutdown`].
#[must_use = "a server does nothing until awaited"]
#[derive(Debug)]
pub struct WithGracefulShutdown<F> {
    serve: Serve,
    signal: F,
}

impl<F> IntoFuture for WithGracefulShutdown<F>
where
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.serve.run(self.signal))
    }
}

/// One accepted connection and what serving it needs.
struct Conn {
    service: WithPeer,
    limits: Limits,
    stop: watch::Receiver<()>,
    /// Held until the connection ends: the server waits for every one.
    _done: watch::Receiver<()>,
}

impl Conn {
    /// Serves a TCP connection until it ends, is upgraded, or the server stops.
    async fn serve(self, tcp: TcpStream) {
        set_nodelay(&tcp);
        #[cfg(feature = "http2")]
        self.h2c_or_http(tcp).await;
        #[cfg(not(feature = "http2"))]
        self.http(TokioIo::new(tcp)).await;
    }

    /// [`serve`](Self::serve) after a TLS handshake, which must finish
    /// within the handshake deadline.
    #[cfg(feature = "tls")]
    async fn serve_tls(mut self, tcp: TcpStream, tls: crate::tls::Acceptor) {
        set_nodelay(&tcp);
        let timeout = self.limits.tls_handshake_timeout;
        if let Some(stream) = tls.handshake(tcp, timeout, &mut self.stop).await {
            #[cfg(feature = "http2")]
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                return http2::serve(TokioIo::new(stream), self).await;
            }
            self.http(TokioIo::new(stream)).await;
        }
    }

    /// HTTP/1.1 over `io`, with upgrades, until it ends or the server stops.
    async fn http<I>(self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Self {
            service,
            limits,
            mut stop,
            _done,
        } = self;
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_size);
        let conn = builder
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        let mut conn = pin!(conn);
        let ended = tokio::select! {
            ended = conn.as_mut() => ended,
            _ = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(error) = ended {
            tracing::trace!(%error, "HTTP connection ended");
        }
    }
}

#[cfg(feature = "http2")]
impl Conn {
    /// HTTP/2 for a client that starts with its preface (h2c), HTTP/1.1
    /// for the rest.
    async fn h2c_or_http(mut self, tcp: TcpStream) {
        let timeout = self.limits.header_read_timeout;
        let h2 = tokio::select! {
            h2 = http2::sniff(&tcp, timeout) => h2,
            // Not yet a request: nothing to finish gracefully.
            _ = self.stop.changed() => None,
        };
        match h2 {
            Some(true) => http2::serve(TokioIo::new(tcp), self).await,
            Some(false) => self.http(TokioIo::new(tcp)).await,
            None => {}
        }
    }
}

fn set_nodelay(tcp: &TcpStream) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
}

/// Running out of file descriptors must not spin the accept loop.
async fn accept_failed(error: io::Error) {
    tracing::warn!(%error, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The router, with the peer's address put into every request.
#[derive(Clone)]
struct WithPeer {
    inner: Router,
    peer: SocketAddr,
}

impl Service<Request<Incoming>> for WithPeer {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = <Router as Service<Request<Incoming>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        <Router as Service<Request<Incoming>>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        self.inner.call(req)
    }
}
