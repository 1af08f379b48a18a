//! Helpers shared by the integration tests: a server on loopback, a recording
//! handler, a tokio-tungstenite client, a raw client that writes hand-made
//! frames, and a raw HTTP client for handshakes.
//!
//! Every wait here has a timeout, so a bug fails a test instead of hanging it.
#![allow(dead_code)] // each test crate uses a different subset

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response as ClientResponse;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::Layer as _;
use wshub::protocol::close::CloseBody;
use wshub::protocol::{Decoder, Frame, Role};
use wshub::{Config, Error, Handler, Message, Upgrade, WebSocket, WebSocketLayer};

pub use tokio_tungstenite::tungstenite;
/// The client's message type (wshub's own is `Message`).
pub use tokio_tungstenite::tungstenite::Message as Msg;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Runs `fut`, failing the test if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("test did not finish within {limit:?}"),
    }
}

/// Awaits `fut` for at most [`WAIT`]; `what` names it in the failure.
pub async fn wait<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// Serves `app` on 127.0.0.1 (with connect info) in a spawned task, with
/// `axum::serve`: its sockets keep a task each, over hyper's `Upgraded`.
/// With `WSHUB_TEST_SERVE=wshub`, with `wshub::serve` instead: its sockets
/// run on socket loops (`scripts/test.sh` runs the tests both ways).
pub async fn serve(app: Router) -> SocketAddr {
    if std::env::var_os("WSHUB_TEST_SERVE").is_some_and(|v| v == "wshub") {
        return serve_wshub(app).await;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Serves `app` with `wshub::serve` on 127.0.0.1 in a spawned task: its
/// plain TCP sockets run on socket loops, and h2c clients are served too
/// (with the `http2` feature).
pub async fn serve_wshub(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { wshub::serve(listener, app).await.unwrap() });
    addr
}

/// An echoing [`Probe`] on `/` (any method, so bad handshakes reach it) with `config`.
pub async fn probe_server(config: Config) -> (SocketAddr, Events) {
    let (app, events) = probe_app(config);
    (serve(app).await, events)
}

/// The app of [`probe_server`], for a test to serve as it likes.
pub fn probe_app(config: Config) -> (Router, Events) {
    let (probe, events) = Probe::new();
    let app = Router::new()
        .route("/", any(accept))
        .layer(WebSocketLayer::new(probe).config(config));
    (app, events)
}

/// Serves `handler` with hyper and tower alone (no axum): a `service_fn`
/// that accepts every valid handshake and answers the rest with the rejection.
pub async fn serve_hyper<H: Handler<Data = ()>>(handler: H) -> SocketAddr {
    serve_hyper_with(handler, (), true).await
}

/// [`serve_hyper`], accepting each socket with a copy of `data`; with
/// `upgrades` false, hyper's connections are served without upgrade
/// support (hyper answers the 101 but never hands the connection over).
pub async fn serve_hyper_with<H: Handler>(handler: H, data: H::Data, upgrades: bool) -> SocketAddr
where
    H::Data: Clone,
{
    let service = WebSocketLayer::new(handler).layer(tower::service_fn(
        move |mut req: http::Request<hyper::body::Incoming>| {
            let data = data.clone();
            async move {
                let response = match Upgrade::<H::Data>::from_request(&mut req) {
                    Ok(up) => up.accept(data),
                    Err(rejection) => wshub::Response::from(rejection),
                };
                Ok::<_, Infallible>(response)
            }
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            let conn = http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
            if upgrades {
                tokio::spawn(conn.with_upgrades());
            } else {
                tokio::spawn(conn);
            }
        }
    });
    addr
}

/// A route handler that accepts every valid handshake.
pub async fn accept(up: Upgrade) -> wshub::Response {
    up.accept(())
}

// ---------------------------------------------------------------------------
// The recording handler
// ---------------------------------------------------------------------------

/// What a [`Probe`] saw, in order.
#[derive(Debug)]
pub enum Event {
    /// `open`, with a handle the test may keep.
    Open(WebSocket),
    Message(Message),
    Ping(Bytes),
    Pong(Bytes),
    Drain,
    Error(Error),
    Close(u16, String),
}

/// A handler that records every call and echoes every message back.
///
/// The text message `"panic"` makes `message` panic.
#[derive(Debug)]
pub struct Probe {
    events: mpsc::UnboundedSender<Event>,
}

impl Probe {
    pub fn new() -> (Self, Events) {
        let (events, rx) = mpsc::unbounded_channel();
        (Self { events }, Events(rx))
    }

    fn record(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

impl Handler for Probe {
    type Data = ();

    async fn open(&self, ws: &WebSocket) {
        self.record(Event::Open(ws.clone()));
    }

    async fn message(&self, ws: &WebSocket, msg: Message) {
        if msg.as_text() == Some("panic") {
            panic!("the test asked `message` to panic");
        }
        self.record(Event::Message(msg.clone()));
        ws.send(msg);
    }

    async fn ping(&self, _: &WebSocket, payload: Bytes) {
        self.record(Event::Ping(payload));
    }

    async fn pong(&self, _: &WebSocket, payload: Bytes) {
        self.record(Event::Pong(payload));
    }

    async fn drain(&self, _: &WebSocket) {
        self.record(Event::Drain);
    }

    async fn error(&self, _: &WebSocket, error: Error) {
        self.record(Event::Error(error));
    }

    async fn close(&self, _: &WebSocket, code: u16, reason: &str) {
        self.record(Event::Close(code, reason.to_owned()));
    }
}

/// The receiving end of a [`Probe`].
#[derive(Debug)]
pub struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    /// The next event.
    pub async fn next(&mut self) -> Event {
        wait("a handler call", self.0.recv())
            .await
            .expect("the handler is gone")
    }

    /// Waits for `open` and returns the socket's handle.
    pub async fn open(&mut self) -> WebSocket {
        match self.next().await {
            Event::Open(ws) => ws,
            other => panic!("expected open, got {other:?}"),
        }
    }

    /// The next message, skipping `open`, pings and pongs.
    pub async fn message(&mut self) -> Message {
        loop {
            match self.next().await {
                Event::Message(msg) => return msg,
                Event::Open(_) | Event::Ping(_) | Event::Pong(_) | Event::Drain => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The next `ping` or `pong` payload, skipping `open` and messages.
    pub async fn ping(&mut self) -> Bytes {
        self.control(true).await
    }

    pub async fn pong(&mut self) -> Bytes {
        self.control(false).await
    }

    async fn control(&mut self, ping: bool) -> Bytes {
        loop {
            match self.next().await {
                Event::Ping(payload) if ping => return payload,
                Event::Pong(payload) if !ping => return payload,
                Event::Open(_)
                | Event::Message(_)
                | Event::Ping(_)
                | Event::Pong(_)
                | Event::Drain => {}
                other => panic!("expected a ping or pong, got {other:?}"),
            }
        }
    }

    /// Waits for `drain`, skipping `open`, messages, pings and pongs.
    pub async fn drain(&mut self) {
        loop {
            match self.next().await {
                Event::Drain => return,
                Event::Open(_) | Event::Message(_) | Event::Ping(_) | Event::Pong(_) => {}
                other => panic!("expected drain, got {other:?}"),
            }
        }
    }

    /// The error passed to `error`, which must be the next handler call:
    /// whatever comes first (`open` included) fails the test, so a caller
    /// consumes what it expects before, by name.
    pub async fn error(&mut self) -> Error {
        match self.next().await {
            Event::Error(error) => error,
            other => panic!("expected error, got {other:?}"),
        }
    }

    /// The code and reason given to `close`, which must be the next handler
    /// call: a message (or anything else) delivered before it fails the
    /// test, so a test that says nothing reaches the handler after a close
    /// can fail.
    pub async fn close(&mut self) -> (u16, String) {
        match self.next().await {
            Event::Close(code, reason) => (code, reason),
            other => panic!("expected close, got {other:?}"),
        }
    }

    /// Fails if any handler method runs within `period`, and if the handler
    /// is dropped (its server stopped): a closed channel is not silence.
    pub async fn assert_silent(&mut self, period: Duration) {
        match tokio::time::timeout(period, self.0.recv()).await {
            Err(_elapsed) => {}
            Ok(Some(event)) => panic!("expected no handler call, got {event:?}"),
            Ok(None) => panic!("expected no handler call, but the handler is gone"),
        }
    }
}

// ---------------------------------------------------------------------------
// The tokio-tungstenite client
// ---------------------------------------------------------------------------

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Large enough for the 16 MiB messages the server accepts by default.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

/// Connects to `ws://addr/`.
pub async fn connect(addr: SocketAddr) -> Client {
    connect_with(format!("ws://{addr}/")).await.unwrap().0
}

/// Connects with a request the caller built (path, headers, subprotocols).
pub async fn connect_with(
    request: impl IntoClientRequest + Unpin,
) -> Result<(Client, ClientResponse), tungstenite::Error> {
    wait(
        "the handshake",
        tokio_tungstenite::connect_async_with_config(request, Some(client_config()), false),
    )
    .await
}

/// The client's local address, as the server sees it.
pub fn local_addr(client: &Client) -> SocketAddr {
    match client.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap(),
        MaybeTlsStream::Rustls(tls) => tls.get_ref().0.local_addr().unwrap(),
        _ => unreachable!("the tests use plain TCP or rustls"),
    }
}

/// The next message from the server; fails on an error or the end of the stream.
pub async fn recv(client: &mut Client) -> Msg {
    match wait("a message from the server", client.next()).await {
        Some(Ok(msg)) => msg,
        Some(Err(error)) => panic!("client error: {error}"),
        None => panic!("the connection ended"),
    }
}

/// Sends `msg` (and flushes).
pub async fn send(client: &mut Client, msg: Msg) {
    wait("a send to the server", client.send(msg))
        .await
        .unwrap();
}

/// Waits until the stream ends: `None` or an error, never another message.
pub async fn expect_end(client: &mut Client) {
    match wait("the end of the connection", client.next()).await {
        None | Some(Err(_)) => {}
        Some(Ok(msg)) => panic!("expected the connection to end, got {msg:?}"),
    }
}

// ---------------------------------------------------------------------------
// The raw client: hand-made frames on a real handshake
// ---------------------------------------------------------------------------

/// First-byte flags and opcodes for [`masked`] and [`unmasked`].
pub const FIN: u8 = 0x80;
pub const RSV1: u8 = 0x40;
pub const RSV2: u8 = 0x20;
pub const RSV3: u8 = 0x10;
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xa;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `first` is the whole first byte (FIN, RSV bits, opcode).
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = header(first, payload.len(), true);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// A frame without a mask, which a client must never send.
pub fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = header(first, payload.len(), false);
    frame.extend_from_slice(payload);
    frame
}

/// Only the header of a masked frame announcing `len` payload bytes.
pub fn masked_header(first: u8, len: usize) -> Vec<u8> {
    header(first, len, true)
}

fn header(first: u8, len: usize, mask: bool) -> Vec<u8> {
    let mask_bit = if mask { 0x80 } else { 0 };
    let mut head = vec![first];
    match len {
        0..=125 => head.push(mask_bit | len as u8),
        126..=0xffff => {
            head.push(mask_bit | 126);
            head.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            head.push(mask_bit | 127);
            head.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if mask {
        head.extend_from_slice(&MASK);
    }
    head
}

/// A close frame body: the code, big-endian, then the reason.
pub fn close_body(code: u16, reason: &str) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason.as_bytes());
    body
}

/// A WebSocket connection used as a plain TCP stream: frames are written by
/// hand and the server's are parsed with wshub's client-role decoder.
///
/// The handshake is written by hand too, and the response read up to its
/// blank line only: a client library reads ahead and would keep frames the
/// server sends right after the 101 (from `open`) in its own buffer.
pub struct RawWs {
    tcp: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl RawWs {
    /// Connects to `ws://addr/`.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_to(addr, "/").await
    }

    /// Connects to `ws://addr{path}`.
    pub async fn connect_to(addr: SocketAddr, path: &str) -> Self {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&HttpRequest::upgrade(path).to_bytes())
            .await
            .unwrap();
        let mut read = BytesMut::new();
        let response = read_response(&mut tcp, &mut read).await;
        assert_eq!(response.status, 101);
        assert_eq!(response.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT));
        Self::from_upgraded(tcp, read)
    }

    /// Wraps a stream whose handshake the caller did; `read` holds any bytes
    /// already read past the 101 response.
    pub fn from_upgraded(tcp: TcpStream, read: BytesMut) -> Self {
        Self {
            tcp,
            buf: read,
            decoder: Decoder::new(Role::Client, usize::MAX),
        }
    }

    pub fn tcp(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// Writes `bytes` as they are.
    pub async fn write(&mut self, bytes: &[u8]) {
        wait("a write to the server", self.tcp().write_all(bytes))
            .await
            .unwrap();
    }

    /// Bytes read from the server and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Reads and drops whatever the server sent so far, without waiting.
    pub fn drain_available(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(1..) = self.tcp.try_read(&mut buf) {}
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        match wait("bytes from the server", self.tcp.read_buf(&mut self.buf)).await {
            Ok(0) => false,
            Ok(_) => true,
            Err(error) => panic!("read failed: {error}"),
        }
    }

    /// The next frame the server sent, checked as a client must.
    pub async fn frame(&mut self) -> Frame {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => return frame,
                Ok(None) => {}
                Err(error) => panic!("the server sent an invalid frame: {error}"),
            }
            assert!(
                self.fill().await,
                "the connection ended before a whole frame"
            );
        }
    }

    /// The next `n` bytes on the wire, exactly as sent.
    pub async fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill().await,
                "the connection ended after {:?}",
                &self.buf[..]
            );
        }
        self.buf.split_to(n).to_vec()
    }

    /// The next frame, which must be a message.
    pub async fn message(&mut self) -> Message {
        match self.frame().await {
            Frame::Message(msg) => msg,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next frame, which must be a close frame.
    pub async fn close_frame(&mut self) -> CloseBody {
        match self.frame().await {
            Frame::Close(body) => body,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Waits until the server ends the TCP connection, with nothing more sent.
    pub async fn expect_eof(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unread bytes before the end: {:?}",
            &self.buf[..]
        );
        match wait(
            "the server to end the connection",
            self.tcp.read_buf(&mut self.buf),
        )
        .await
        {
            Ok(0) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(_) => panic!("expected the end of the stream, got {:?}", &self.buf[..]),
            Err(error) => panic!("read failed: {error}"),
        }
    }

    /// Fails if the server sends anything or ends the connection within `period`.
    pub async fn assert_quiet(&mut self, period: Duration) {
        if let Ok(read) = tokio::time::timeout(period, self.tcp.read_buf(&mut self.buf)).await {
            panic!("expected silence, got {read:?} with {:?}", &self.buf[..]);
        }
    }
}

// ---------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------

/// A hand-written HTTP/1.x request, for handshakes no client library would send.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    method: String,
    path: String,
    version: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// The key of RFC 6455 §1.3, and the accept value it gives.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

impl HttpRequest {
    /// A request without headers.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            version: "HTTP/1.1".to_owned(),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// A valid WebSocket opening handshake for `path`.
    pub fn upgrade(path: &str) -> Self {
        Self::new("GET", path)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", SAMPLE_KEY)
    }

    pub fn method(mut self, method: &str) -> Self {
        method.clone_into(&mut self.method);
        self
    }

    pub fn version(mut self, version: &str) -> Self {
        version.clone_into(&mut self.version);
        self
    }

    /// Adds a header line (a second one if the name is already there).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces every header called `name` with one line.
    pub fn set(self, name: &str, value: &str) -> Self {
        self.without(name).header(name, value)
    }

    /// Removes every header called `name`.
    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        body.clone_into(&mut self.body);
        self
    }

    /// The request as bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = format!(
            "{} {} {}\r\nhost: localhost\r\n",
            self.method, self.path, self.version
        );
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() {
            text.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        text.push_str("\r\n");
        text.push_str(&self.body);
        text.into_bytes()
    }

    /// Sends the request on a new connection and reads the response.
    pub async fn send(&self, addr: SocketAddr) -> HttpResponse {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&self.to_bytes()).await.unwrap();
        let mut read = BytesMut::new();
        let response = read_response(&mut tcp, &mut read).await;
        if response.status == 101 {
            return response;
        }
        let body = wait(
            "the response body",
            read_body(&mut tcp, &mut read, &response),
        )
        .await;
        HttpResponse { body, ..response }
    }
}

/// A response read off the wire.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a status line and headers; bytes past them stay in `read`.
pub async fn read_response(tcp: &mut TcpStream, read: &mut BytesMut) -> HttpResponse {
    let end = loop {
        if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = wait("the response head", tcp.read_buf(read)).await.unwrap();
        assert!(
            n > 0,
            "the connection ended before the response head: {:?}",
            &read[..]
        );
    };
    let head = String::from_utf8(read.split_to(end + 4).to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    HttpResponse {
        status,
        headers,
        body: String::new(),
    }
}

async fn read_body(tcp: &mut TcpStream, read: &mut BytesMut, response: &HttpResponse) -> String {
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let done = |read: &BytesMut| match response.header("content-length") {
        Some(len) => read.len() >= len.parse::<usize>().unwrap(),
        None if chunked => read.ends_with(b"0\r\n\r\n"),
        None => false, // read to the end of the stream
    };
    while !done(read) {
        if tcp.read_buf(read).await.unwrap() == 0 {
            break;
        }
    }
    let raw = String::from_utf8(read.to_vec()).unwrap();
    if !chunked {
        return raw;
    }
    // Chunk sizes in hex, each followed by its data; the last one is 0.
    let mut body = String::new();
    let mut rest = raw.as_str();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    body
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

/// Valid UTF-8 of exactly `len` bytes with 1- to 4-byte characters.
pub fn text_of_len(len: usize) -> String {
    const PATTERN: &str = "aé€😀"; // 1 + 2 + 3 + 4 bytes
    let mut text = PATTERN.repeat(len / PATTERN.len());
    while text.len() < len {
        text.push('x');
    }
    text
}

/// `len` bytes that are not all alike.
pub fn bytes_of_len(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Compares payloads without printing megabytes on failure.
pub fn assert_same_payload(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "payload length");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("payloads differ first at byte {at} of {}", want.len());
    }
}

pub mod chat_server;
pub mod deflate;
pub mod echo_server;
pub mod process;
#[cfg(feature = "tls")]
pub mod tls;
