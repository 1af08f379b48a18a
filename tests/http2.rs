//! WebSockets over HTTP/2 (RFC 8441) through `wshub::serve`: real HTTP/2
//! clients (hyper's, with tokio-tungstenite over the stream; h2's own for
//! streams reset on purpose) open sockets as extended CONNECT streams, next
//! to HTTP/1.1 clients of the same server, and get the same handler, hub,
//! backpressure and shutdown. Bad HTTP/2 handshakes get clear answers and
//! leave the connection's other streams alone.

mod common;

use std::future::{IntoFuture as _, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use bytes::Bytes;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, Method, Request, StatusCode, header};
use hyper::client::conn::http2;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::Role;
use wshub::{Config, Handler, Hub, Message, SendStatus, WebSocket, WebSocketLayer};

/// A socket over one HTTP/2 stream.
type H2Socket = WebSocketStream<TokioIo<Upgraded>>;

/// An echoing [`Probe`] on `/` behind `wshub::serve`, with `config`.
async fn probe(config: Config) -> (SocketAddr, Events) {
    let (app, events) = probe_app(config);
    (serve_wshub(app).await, events)
}

/// An HTTP/2 connection (prior knowledge) whose server has said, in its
/// SETTINGS, that it takes extended CONNECT.
async fn h2_connect<I>(io: I) -> http2::SendRequest<String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, mut conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .expect("HTTP/2 handshake");
    // hyper runs the connection's reading in a task of its own: look at
    // the flag between polls of the request side.
    wait("SETTINGS_ENABLE_CONNECT_PROTOCOL", async {
        while !conn.is_extended_connect_protocol_enabled() {
            if let Poll::Ready(ended) =
                poll_fn(|cx| Poll::Ready(Pin::new(&mut conn).poll(cx))).await
            {
                panic!("the connection ended before its SETTINGS: {ended:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    tokio::spawn(conn);
    send
}

/// h2c to `addr`.
async fn h2c(addr: SocketAddr) -> http2::SendRequest<String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    h2_connect(tcp).await
}

/// An extended CONNECT to `/` with the protocol `:protocol` (None: a plain
/// CONNECT) and `headers`.
fn connect_request(protocol: Option<&'static str>, headers: &[(&str, &str)]) -> Request<String> {
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri("http://localhost/");
    if let Some(protocol) = protocol {
        req = req.extension(hyper::ext::Protocol::from_static(protocol));
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(String::new()).unwrap()
}

/// Opens a WebSocket over a new stream of `send`'s connection.
async fn open(
    send: &mut http2::SendRequest<String>,
    headers: &[(&str, &str)],
) -> (H2Socket, HeaderMap) {
    let mut all = vec![("sec-websocket-version", "13")];
    all.extend_from_slice(headers);
    let mut response = wait(
        "the CONNECT response",
        send.send_request(connect_request(Some("websocket"), &all)),
    )
    .await
    .expect("CONNECT");
    assert_eq!(response.status(), StatusCode::OK, "{response:?}");
    let headers = response.headers().clone();
    let upgraded = wait("the stream", hyper::upgrade::on(&mut response))
        .await
        .expect("the CONNECT stream");
    let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    (socket, headers)
}

/// Sends `text` and returns the next text message.
async fn round_trip(socket: &mut H2Socket, text: &str) -> String {
    socket.send(Msg::text(text)).await.unwrap();
    next_text(socket).await
}

async fn next_text(socket: &mut H2Socket) -> String {
    match wait("a message", socket.next()).await {
        Some(Ok(Msg::Text(text))) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[tokio::test]
async fn sockets_open_as_http2_streams_next_to_http1_clients() {
    within(WAIT, async {
        let (addr, mut events) = probe(Config::default()).await;
        let mut send = h2c(addr).await;
        // Two sockets on one HTTP/2 connection, and one over HTTP/1.1.
        let (mut first, headers) = open(&mut send, &[]).await;
        // No HTTP/1.1 handshake headers on a 200: the stream is the socket.
        for name in [
            header::SEC_WEBSOCKET_ACCEPT,
            header::UPGRADE,
            header::CONNECTION,
        ] {
            assert!(!headers.contains_key(&name), "{name} in {headers:?}");
        }
        let (mut second, _) = open(&mut send, &[]).await;
        let mut over_h1 = connect(addr).await;
        for _ in 0..3 {
            events.open().await;
        }

        assert_eq!(round_trip(&mut first, "one").await, "one");
        assert_eq!(round_trip(&mut second, "two").await, "two");
        send_and_echo(&mut over_h1).await;
        // A large message spans many DATA frames and window updates.
        let large = "x".repeat(1 << 20);
        assert_eq!(round_trip(&mut first, &large).await, large);

        for _ in 0..4 {
            events.message().await;
        }

        // Closing one stream's socket leaves the other.
        first.close(None).await.unwrap();
        assert_eq!(events.close().await.0, 1005);
        assert_eq!(round_trip(&mut second, "still here").await, "still here");
    })
    .await;
}

async fn send_and_echo(client: &mut Client) {
    send(client, Msg::text("over HTTP/1.1")).await;
    assert_eq!(recv(client).await, Msg::text("over HTTP/1.1"));
}

/// Subscribes every socket to one room and publishes what each says.
struct Room;

impl Handler for Room {
    type Data = ();

    async fn open(&self, ws: &WebSocket) {
        ws.subscribe("room");
    }

    async fn message(&self, ws: &WebSocket, msg: Message) {
        ws.publish("room", msg);
    }
}

#[tokio::test]
async fn one_hub_for_sockets_over_both_versions() {
    within(WAIT, async {
        let layer = WebSocketLayer::new(Room).config(Config::default().publish_to_self(true));
        let hub = layer.hub();
        let app = Router::new().route("/", any(accept)).layer(layer);
        let addr = serve_wshub(app).await;
        let mut send = h2c(addr).await;
        let (mut h2, headers) = open(&mut send, &[("sec-websocket-protocol", "chat")]).await;
        // The route accepted without choosing a protocol: none is named.
        assert!(!headers.contains_key(header::SEC_WEBSOCKET_PROTOCOL));
        let mut h1 = connect(addr).await;
        wait("both subscribed", async {
            while hub.subscriber_count("room") < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;

        h2.send(Msg::text("from h2")).await.unwrap();
        assert_eq!(next_text(&mut h2).await, "from h2");
        assert_eq!(recv(&mut h1).await, Msg::text("from h2"));
        common::send(&mut h1, Msg::text("from h1")).await;
        assert_eq!(recv(&mut h1).await, Msg::text("from h1"));
        assert_eq!(next_text(&mut h2).await, "from h1");
        hub.publish("room", "from the hub");
        assert_eq!(next_text(&mut h2).await, "from the hub");
        assert_eq!(recv(&mut h1).await, Msg::text("from the hub"));
    })
    .await;
}

/// Sends `req` on a fresh stream; the status, headers and body of the answer.
async fn ask(
    send: &mut http2::SendRequest<String>,
    req: Request<String>,
) -> (StatusCode, HeaderMap, String) {
    use http_body::Body as _;
    let response = wait("an answer", send.send_request(req))
        .await
        .expect("a response");
    let (parts, mut body) = response.into_parts();
    let mut text = Vec::new();
    while let Some(frame) = wait("the body", poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))).await
    {
        if let Ok(data) = frame.expect("the body").into_data() {
            text.extend_from_slice(&data);
        }
    }
    (
        parts.status,
        parts.headers,
        String::from_utf8(text).unwrap(),
    )
}

#[tokio::test]
async fn bad_http2_handshakes_get_clear_answers_and_the_connection_stays_usable() {
    within(WAIT, async {
        let (addr, mut events) = probe(Config::default()).await;
        let mut send = h2c(addr).await;

        // Another protocol than `websocket`.
        let (status, _, body) = ask(
            &mut send,
            connect_request(Some("chat"), &[("sec-websocket-version", "13")]),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("`:protocol`"), "{body}");

        // No version, then an old one: 426 naming the one spoken.
        for headers in [&[][..], &[("sec-websocket-version", "8")][..]] {
            let (status, answer, body) =
                ask(&mut send, connect_request(Some("websocket"), headers)).await;
            assert_eq!(status, StatusCode::UPGRADE_REQUIRED, "{headers:?}");
            assert_eq!(answer[header::SEC_WEBSOCKET_VERSION], "13");
            assert!(body.contains("Sec-WebSocket-Version"), "{body}");
        }

        // A plain GET to the socket's route.
        let get = Request::get("http://localhost/")
            .body(String::new())
            .unwrap();
        let (status, answer, body) = ask(&mut send, get).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer[header::ALLOW], "CONNECT");
        assert!(body.contains("CONNECT"), "{body}");

        // A request head over `max_header_size` (64 KiB by default).
        let huge = "a".repeat(100 * 1024);
        let oversized = ask(
            &mut send,
            connect_request(
                Some("websocket"),
                &[("sec-websocket-version", "13"), ("x-huge", &huge)],
            ),
        );
        let (status, _, _) = oversized.await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

        // None of them opened a socket; the connection still opens one.
        let (mut socket, _) = open(&mut send, &[]).await;
        assert!(matches!(events.next().await, Event::Open(_)));
        assert_eq!(round_trip(&mut socket, "fine").await, "fine");
    })
    .await;
}

/// h2's own client: frames written by hand on a stream that the test
/// resets when it likes.
async fn raw_h2(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await.unwrap();
    wait("SETTINGS_ENABLE_CONNECT_PROTOCOL", async {
        while !send.is_extended_connect_protocol_enabled() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    send = send.ready().await.unwrap();
    send
}

async fn raw_open(
    send: &mut h2::client::SendRequest<Bytes>,
) -> (h2::SendStream<Bytes>, h2::RecvStream) {
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri("http://localhost/")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    let (response, stream) = send.send_request(req, false).expect("send CONNECT");
    let response = wait("the CONNECT response", response).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    (stream, response.into_body())
}

#[tokio::test]
async fn a_stream_reset_mid_message_ends_that_socket_only() {
    within(WAIT, async {
        let (addr, mut events) = probe(Config::default()).await;
        let mut send = raw_h2(addr).await;
        let (mut cut, _cut_body) = raw_open(&mut send).await;
        events.open().await;
        let (mut kept, mut kept_body) = raw_open(&mut send).await;
        events.open().await;

        // Half a message: a frame of 100 bytes, 10 of them sent.
        let frame = masked(FIN | TEXT, &[b'a'; 100]);
        cut.send_data(Bytes::copy_from_slice(&frame[..16]), false)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        cut.send_reset(h2::Reason::CANCEL);

        // The reset is the stream's error, as a TCP reset is the
        // connection's: reported, then close with 1006; no message.
        match events.next().await {
            Event::Error(wshub::Error::Io(error)) => {
                assert!(format!("{error:?}").contains("CANCEL"), "{error:?}")
            }
            other => panic!("expected the reset, and nothing before it, got {other:?}"),
        }
        assert_eq!(events.close().await.0, 1006);
        // The other socket on the same connection still echoes.
        kept.send_data(Bytes::from(masked(FIN | TEXT, b"still here")), false)
            .unwrap();
        let mut echoed = Vec::new();
        let expected = unmasked(FIN | TEXT, b"still here");
        while echoed.len() < expected.len() {
            let data = wait("the echo", kept_body.data())
                .await
                .expect("the stream is open")
                .unwrap();
            let _ = kept_body.flow_control().release_capacity(data.len());
            echoed.extend_from_slice(&data);
        }
        assert_eq!(echoed, expected);
        assert!(matches!(events.next().await, Event::Message(_)));
        events.assert_silent(Duration::from_millis(100)).await;
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_meets_backpressure_then_drain() {
    within(WAIT, async {
        let (addr, mut events) = probe(Config::default().backpressure_limit(256 * 1024)).await;
        let mut send = h2c(addr).await;
        let (mut socket, _) = open(&mut send, &[]).await;
        let ws = events.open().await;

        // The peer reads nothing: HTTP/2 flow control stops the writes,
        // and the socket's own limit stops the sends.
        let chunk = "y".repeat(64 * 1024);
        let mut queued = 0;
        let mut saw_backpressure = false;
        loop {
            match ws.send(chunk.clone()) {
                SendStatus::Sent(_) => queued += 1,
                SendStatus::Backpressure => {
                    saw_backpressure = true;
                    queued += 1;
                }
                SendStatus::Dropped => break,
            }
            assert!(queued < 1000, "64 MiB queued and no drop: no backpressure");
            if queued % 8 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert!(saw_backpressure);

        // Reading again: every queued message arrives, then `drain`.
        for _ in 0..queued {
            assert_eq!(next_text(&mut socket).await.len(), chunk.len());
        }
        events.drain().await;
        assert_eq!(round_trip(&mut socket, "after").await, "after");
    })
    .await;
}

#[tokio::test]
async fn limits_apply_over_http2() {
    within(WAIT, async {
        let (addr, mut events) = probe(Config::default().max_payload_length(1024)).await;
        let mut send = h2c(addr).await;
        let (mut socket, _) = open(&mut send, &[]).await;
        events.open().await;
        socket.send(Msg::text("z".repeat(2048))).await.unwrap();
        match wait("the close", socket.next()).await {
            Some(Ok(Msg::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1009),
            other => panic!("expected close 1009, got {other:?}"),
        }
        assert!(matches!(events.next().await, Event::Error(_)));
        assert_eq!(events.close().await.0, 1009);
    })
    .await;
}

#[tokio::test]
async fn hub_shutdown_closes_http2_sockets_and_the_server_returns() {
    within(WAIT, async {
        let (probe, mut events) = Probe::new();
        let layer = WebSocketLayer::new(probe);
        let hub: Hub = layer.hub();
        let app = Router::new().route("/", any(accept)).layer(layer);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            wshub::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        let mut send = h2c(addr).await;
        let (mut socket, _) = open(&mut send, &[]).await;
        events.open().await;

        stop.send(()).unwrap();
        let shutdown = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.shutdown(Duration::from_secs(5)).await })
        };
        match wait("the close", socket.next()).await {
            Some(Ok(Msg::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
        // The client answers the close; the stream, then the server, end.
        assert!(wait("the end", socket.next()).await.is_none());
        drop(socket);
        assert_eq!(events.close().await.0, 1001);
        wait("the hub's shutdown", shutdown).await.unwrap();
        wait("the server", server).await.unwrap().unwrap();
    })
    .await;
}

/// `wss://` with ALPN: a client that offers `h2` gets HTTP/2, and its
/// socket is a stream of it.
#[cfg(feature = "tls")]
#[tokio::test]
async fn h2_chosen_by_alpn_over_tls() {
    use common::tls::{TestCert, client_config};
    use wshub::tls::rustls::pki_types::ServerName;
    within(WAIT, async {
        let cert = TestCert::generate();
        let (app, mut events) = probe_app(Config::default());
        let addr = common::tls::serve_tls(app, cert.server_config(), Duration::from_secs(5)).await;

        let mut config = Arc::unwrap_or_clone(client_config(&[&cert]));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let mut send = h2_connect(tls).await;
        let (mut socket, _) = open(&mut send, &[]).await;
        events.open().await;
        assert_eq!(
            round_trip(&mut socket, "over h2 and TLS").await,
            "over h2 and TLS"
        );
    })
    .await;
}

/// Reads until the server closes, for at most `limit`; what it sent.
async fn read_to_close(tcp: &mut TcpStream, limit: Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut all = Vec::new();
    let read = tcp.read_to_end(&mut all);
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(_)) => all,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionReset => all,
        Ok(Err(error)) => panic!("read failed: {error}"),
        Err(_) => panic!("the server kept the connection open past {limit:?}"),
    }
}

#[tokio::test]
async fn slow_or_silent_http2_clients_are_cut_off_at_the_header_read_timeout() {
    use tokio::io::AsyncWriteExt as _;
    within(WAIT, async {
        let (app, _events) = probe_app(Config::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let timeout = Duration::from_millis(300);
        tokio::spawn(
            wshub::serve(listener, app)
                .header_read_timeout(timeout)
                .into_future(),
        );
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

        // The preface a byte at a time, too slowly to finish in time.
        let started = tokio::time::Instant::now();
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        for byte in &preface[..4] {
            // The last ones may meet a connection already closed.
            let _ = trickle.write_all(&[*byte]).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        read_to_close(&mut trickle, Duration::from_secs(2)).await;
        assert!(started.elapsed() >= timeout);

        // The whole preface, its SETTINGS, and then no request.
        let started = tokio::time::Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        silent.write_all(preface).await.unwrap();
        // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
        silent
            .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        let sent = read_to_close(&mut silent, Duration::from_secs(2)).await;
        assert!(started.elapsed() >= timeout);
        // The server did speak HTTP/2: its own SETTINGS came first.
        assert_eq!(sent.get(3), Some(&4), "{sent:?}");

        // An HTTP/1.1 client is told apart at its first byte and served.
        let mut h1 = connect(addr).await;
        send_and_echo(&mut h1).await;
    })
    .await;
}

/// Behind `axum::serve` (axum's `http2` feature, which the `http2` feature
/// turns on) rather than `wshub::serve`: axum's server takes h2c and
/// extended CONNECT too, and the layer and extractor work the same.
#[tokio::test]
async fn behind_axum_serve_too() {
    within(WAIT, async {
        let (app, mut events) = probe_app(Config::default());
        let addr = common::serve(app).await;
        let mut send = h2c(addr).await;
        let (mut socket, _) = open(&mut send, &[]).await;
        let ws = events.open().await;
        // axum's `ConnectInfo` gives the socket its peer, over HTTP/2 too.
        assert!(ws.remote_addr().is_some_and(|peer| peer.ip().is_loopback()));
        assert_eq!(round_trip(&mut socket, "via axum").await, "via axum");
    })
    .await;
}
