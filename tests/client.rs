//! The client against the crate's own server and against hand-made servers:
//! messages both ways, the handler shared by both sides, compression,
//! masking, limits, close codes, backpressure, and every way to fail to
//! connect.

mod common;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse as _;
use axum::routing::get;
use bytes::BytesMut;
use common::*;
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use wshub::client::ConnectError;
use wshub::protocol::handshake::accept_key;
use wshub::protocol::{Decoder, Frame, Role, encode_frame, frame::OpCode};
use wshub::{
    Client as WsClient, Compression, Compressor, Config, Hub, Message, ReadyState, SendStatus,
    Upgrade, WebSocketLayer, close_code,
};

fn url(addr: std::net::SocketAddr) -> String {
    format!("ws://{addr}/")
}

#[tokio::test]
async fn a_stream_client_talks_to_the_crate_server_and_closes_cleanly() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut socket = WsClient::new(url(addr)).connect().await.unwrap();
        assert_eq!(socket.ready_state(), ReadyState::Open);
        events.open().await;
        assert!(matches!(socket.send("hello"), SendStatus::Sent(_)));
        socket.send(vec![0u8, 1, 2]);
        assert_eq!(socket.next().await, Some(Message::text("hello")));
        assert_eq!(socket.next().await, Some(Message::binary(vec![0u8, 1, 2])));
        assert_eq!(events.message().await, Message::text("hello"));
        assert_eq!(events.message().await, Message::binary(vec![0u8, 1, 2]));
        socket.close(close_code::NORMAL, "done");
        assert_eq!(
            events.close().await,
            (close_code::NORMAL, "done".to_owned())
        );
        assert_eq!(socket.next().await, None);
        let closed = socket.closed().expect("how it closed");
        assert_eq!((closed.code, closed.reason.as_str()), (1000, "done"));
        assert!(closed.error.is_none());
        assert_eq!(socket.ready_state(), ReadyState::Closed);
    })
    .await;
}

/// `Probe` (tests/common) records and echoes; the same type runs the
/// server's sockets and the client's.
#[tokio::test]
async fn one_handler_type_serves_both_sides() {
    within(WAIT, async {
        let (addr, mut server) = probe_server(Config::default()).await;
        let (probe, mut client) = Probe::new();
        let ws = WsClient::new(url(addr))
            .connect_with(probe, ())
            .await
            .unwrap();
        client.open().await;
        server.open().await;
        ws.send("ping-pong");
        assert_eq!(server.message().await, Message::text("ping-pong"));
        // The server echoed; the client's probe echoes back, and so on: two
        // rounds are enough to see both handlers run.
        assert_eq!(client.message().await, Message::text("ping-pong"));
        assert_eq!(server.message().await, Message::text("ping-pong"));
        ws.close(close_code::AWAY, "leaving");
        // Echoes may still cross the close; the close comes last on both sides.
        loop {
            match server.next().await {
                Event::Message(_) => {}
                Event::Close(code, reason) => {
                    assert_eq!((code, reason.as_str()), (1001, "leaving"));
                    break;
                }
                other => panic!("server: {other:?}"),
            }
        }
        loop {
            match client.next().await {
                Event::Message(_) => {}
                Event::Close(code, reason) => {
                    assert_eq!((code, reason.as_str()), (1001, "leaving"));
                    break;
                }
                other => panic!("client: {other:?}"),
            }
        }
    })
    .await;
}

/// Every pairing of the client's and the server's compressors round-trips
/// large compressible and random messages, both ways.
#[tokio::test]
async fn compression_is_negotiated_from_the_client_side() {
    let dedicated = Compression {
        compress: Compressor::Dedicated,
        decompress: Compressor::Dedicated,
    };
    let small = Compression {
        compress: Compressor::Dedicated4KB,
        decompress: Compressor::Dedicated3KB,
    };
    let modes = [Compression::SHARED, dedicated, small, Compression::DISABLED];
    within(Duration::from_secs(60), async {
        for server in modes {
            let (addr, _events) = probe_server(Config::default().compression(server)).await;
            for client in modes {
                let mut socket = WsClient::new(url(addr))
                    .compression(client)
                    .connect()
                    .await
                    .unwrap();
                let text = "compress me ".repeat(20_000);
                let noise: Vec<u8> = (0..100_000u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                for _ in 0..3 {
                    socket.send(text.as_str());
                    socket.send(noise.clone());
                    assert_eq!(
                        socket.next().await,
                        Some(Message::text(text.clone())),
                        "{server:?} / {client:?}"
                    );
                    assert_eq!(
                        socket.next().await,
                        Some(Message::binary(noise.clone())),
                        "{server:?} / {client:?}"
                    );
                }
            }
        }
    })
    .await;
}

/// The route answers 401 with a body unless the custom header came along.
async fn token_route(up: Upgrade, headers: HeaderMap) -> wshub::Response {
    if headers.get("x-token").is_some_and(|v| v == "secret") {
        up.protocols(["b", "c"]).accept(())
    } else {
        (StatusCode::UNAUTHORIZED, "token, please").into_response()
    }
}

#[tokio::test]
async fn headers_and_subprotocols_reach_the_server_and_refusals_come_back_whole() {
    within(WAIT, async {
        let app = Router::new()
            .route("/", get(token_route))
            .layer(WebSocketLayer::new(Probe::new().0));
        let addr = serve(app).await;
        let socket = WsClient::new(url(addr))
            .header("x-token", "secret")
            .protocols(["a", "b"])
            .connect()
            .await
            .unwrap();
        assert_eq!(socket.protocol(), Some("b"));
        let plain = WsClient::new(url(addr))
            .header("x-token", "secret")
            .connect()
            .await
            .unwrap();
        assert_eq!(plain.protocol(), None);
        match WsClient::new(url(addr)).connect().await {
            Err(ConnectError::Rejected {
                status,
                headers,
                body,
            }) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED);
                assert!(headers.contains_key("content-length"));
                assert_eq!(&body[..], b"token, please");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Hand-made servers
// ---------------------------------------------------------------------------

/// A server that reads one request head, answers with `respond(key)`, and
/// hands the stream to the test.
struct FakeServer {
    listener: TcpListener,
}

impl FakeServer {
    async fn new() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn url(&self) -> String {
        url(self.listener.local_addr().unwrap())
    }

    /// Accepts one connection and reads its request head; returns the
    /// stream, the head, and its `Sec-WebSocket-Key`.
    async fn accept(&self) -> (TcpStream, String, String) {
        let (mut tcp, _) = wait("a connection", self.listener.accept()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = wait("the request", tcp.read_u8()).await.unwrap();
            head.push(byte);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_owned();
        (tcp, head, key)
    }

    /// Accepts one connection with a valid 101 plus `extra` headers.
    async fn upgrade(&self, extra: &str) -> (TcpStream, String) {
        let (mut tcp, head, key) = self.accept().await;
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(key.as_bytes())
        );
        tcp.write_all(response.as_bytes()).await.unwrap();
        (tcp, head)
    }
}

/// The client's frames, decoded as a server must: masked or an error.
struct Frames {
    tcp: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl Frames {
    fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            buf: BytesMut::new(),
            decoder: Decoder::new(Role::Server, 1 << 24),
        }
    }

    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self
                .decoder
                .decode(&mut self.buf)
                .expect("a masked, valid frame")
            {
                return Some(frame);
            }
            if wait("a frame", self.tcp.read_buf(&mut self.buf))
                .await
                .unwrap()
                == 0
            {
                return None;
            }
        }
    }

    async fn write(&mut self, opcode: OpCode, payload: &[u8]) {
        let mut frame = BytesMut::new();
        encode_frame(&mut frame, opcode, payload, None);
        self.tcp.write_all(&frame).await.unwrap();
    }
}

#[tokio::test]
async fn the_request_is_a_valid_upgrade_and_every_frame_is_masked_with_a_fresh_key() {
    within(WAIT, async {
        let server = FakeServer::new().await;
        let client = tokio::spawn(WsClient::new(server.url()).header("x-a", "1").connect());
        let (mut tcp, head) = server.upgrade("").await;
        let socket = client.await.unwrap().unwrap();
        assert!(head.starts_with("GET / HTTP/1.1\r\n"), "{head}");
        for line in [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "x-a: 1",
        ] {
            assert!(head.contains(&format!("{line}\r\n")), "{line} in {head}");
        }
        assert!(
            !head.contains("Sec-WebSocket-Extensions"),
            "no compression asked"
        );
        for i in 0..20 {
            socket.send(format!("message {i}"));
        }
        // Read the raw frames: each has the mask bit, and the keys differ.
        let mut keys = std::collections::HashSet::new();
        let mut raw = BytesMut::new();
        let mut seen = 0;
        while seen < 20 {
            wait("frames", tcp.read_buf(&mut raw)).await.unwrap();
            while raw.len() >= 6 {
                let len = usize::from(raw[1] & 0x7f);
                assert_eq!(raw[1] & 0x80, 0x80, "mask bit set");
                if raw.len() < 6 + len {
                    break;
                }
                let frame = raw.split_to(6 + len);
                keys.insert([frame[2], frame[3], frame[4], frame[5]]);
                let mut payload = frame[6..].to_vec();
                wshub::protocol::mask::apply_mask(
                    &mut payload,
                    [frame[2], frame[3], frame[4], frame[5]],
                    0,
                );
                assert_eq!(payload, format!("message {seen}").into_bytes());
                seen += 1;
            }
        }
        assert!(
            keys.len() >= 19,
            "{} distinct keys in 20 frames",
            keys.len()
        );
    })
    .await;
}

#[tokio::test]
async fn a_masked_frame_from_the_server_fails_the_connection_with_1002() {
    within(WAIT, async {
        let server = FakeServer::new().await;
        let client = tokio::spawn(WsClient::new(server.url()).connect());
        let (mut tcp, _) = server.upgrade("").await;
        let mut socket = client.await.unwrap().unwrap();
        let mut frame = BytesMut::new();
        encode_frame(&mut frame, OpCode::Text, b"masked", Some([1, 2, 3, 4]));
        tcp.write_all(&frame).await.unwrap();
        assert_eq!(socket.next().await, None);
        let closed = socket.closed().unwrap();
        assert_eq!(closed.code, close_code::PROTOCOL);
        assert!(matches!(closed.error, Some(wshub::Error::Protocol(_))));
        let mut frames = Frames::new(tcp);
        match frames.next().await {
            Some(Frame::Close(body)) => assert_eq!(body.code, close_code::PROTOCOL),
            other => panic!("expected the client's close, got {other:?}"),
        }
    })
    .await;
}

/// On the wire: the offer, a compressed frame (RSV1, smaller), and the
/// server's compressed frame inflated on the client.
#[tokio::test]
async fn the_client_offers_compresses_and_inflates() {
    within(WAIT, async {
        let server = FakeServer::new().await;
        let client = tokio::spawn(
            WsClient::new(server.url())
                .compression(Compression::SHARED)
                .connect(),
        );
        let (mut tcp, head) = server
            .upgrade(
                "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
                 client_no_context_takeover\r\n",
            )
            .await;
        let mut socket = client.await.unwrap().unwrap();
        assert!(
            head.contains(
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; \
                 client_no_context_takeover; server_no_context_takeover\r\n"
            ),
            "{head}"
        );
        let text = "all work and no play ".repeat(500);
        socket.send(text.as_str());
        let mut raw = BytesMut::new();
        let frame = loop {
            wait("a frame", tcp.read_buf(&mut raw)).await.unwrap();
            if raw.len() < 2 {
                continue;
            }
            let len = usize::from(raw[1] & 0x7f);
            assert!(len < 126, "{} bytes compressed to {len}?", text.len());
            if raw.len() >= 6 + len {
                break raw.split_to(6 + len);
            }
        };
        assert_eq!(frame[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
        // The same deflate data, unmasked, sent back by the "server": with no
        // context either way it inflates alone.
        let mut payload = frame[6..].to_vec();
        wshub::protocol::mask::apply_mask(
            &mut payload,
            [frame[2], frame[3], frame[4], frame[5]],
            0,
        );
        let mut back = vec![0x80 | 0x40 | 0x1, u8::try_from(payload.len()).unwrap()];
        back.extend_from_slice(&payload);
        tcp.write_all(&back).await.unwrap();
        assert_eq!(socket.next().await, Some(Message::text(text)));
    })
    .await;
}

#[tokio::test]
async fn pings_are_answered_and_messages_over_the_limit_close_with_1009() {
    within(WAIT, async {
        let server = FakeServer::new().await;
        let config = Config::default().max_payload_length(1024);
        let client = tokio::spawn(WsClient::new(server.url()).config(config).connect());
        let (tcp, _) = server.upgrade("").await;
        let mut socket = client.await.unwrap().unwrap();
        let mut frames = Frames::new(tcp);
        frames.write(OpCode::Ping, b"are you there").await;
        assert_eq!(
            frames.next().await,
            Some(Frame::Pong("are you there".into()))
        );
        frames.write(OpCode::Text, &[b'a'; 1024]).await;
        assert_eq!(socket.next().await.map(|m| m.len()), Some(1024));
        frames.write(OpCode::Text, &[b'a'; 1025]).await;
        match frames.next().await {
            Some(Frame::Close(body)) => assert_eq!(body.code, close_code::SIZE),
            other => panic!("expected 1009, got {other:?}"),
        }
        // The client waits for the server to close TCP (RFC 6455 §7.1.1).
        drop(frames);
        assert_eq!(socket.next().await, None);
        assert_eq!(socket.closed().unwrap().code, close_code::SIZE);
    })
    .await;
}

#[tokio::test]
async fn a_silent_server_gets_idle_pings_and_then_1001() {
    within(WAIT, async {
        let server = FakeServer::new().await;
        let config = Config::default().idle_timeout(Duration::from_millis(400));
        let client = tokio::spawn(WsClient::new(server.url()).config(config).connect());
        let (tcp, _) = server.upgrade("").await;
        let mut socket = client.await.unwrap().unwrap();
        let mut frames = Frames::new(tcp);
        assert!(matches!(frames.next().await, Some(Frame::Ping(_))));
        match frames.next().await {
            Some(Frame::Close(body)) => assert_eq!(body.code, close_code::AWAY),
            other => panic!("expected 1001, got {other:?}"),
        }
        drop(frames);
        assert_eq!(socket.next().await, None);
        assert_eq!(socket.closed().unwrap().code, close_code::AWAY);
    })
    .await;
}

#[tokio::test]
async fn sends_report_backpressure_when_the_server_stops_reading() {
    within(WAIT, async {
        let server = FakeServer::new().await;
        let config = Config::default().backpressure_limit(256 * 1024);
        let client = tokio::spawn(WsClient::new(server.url()).config(config).connect());
        // Kept, never read.
        let (_tcp, _) = server.upgrade("").await;
        let socket = client.await.unwrap().unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut statuses = Vec::new();
        for _ in 0..400 {
            let status = socket.send(chunk.clone());
            statuses.push(status);
            if status == SendStatus::Dropped {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            matches!(statuses[0], SendStatus::Sent(_)),
            "{:?}",
            statuses[0]
        );
        assert!(
            statuses.contains(&SendStatus::Backpressure),
            "backpressure before the drop"
        );
        assert_eq!(statuses.last(), Some(&SendStatus::Dropped));
        assert!(socket.buffered_amount() >= 256 * 1024);
    })
    .await;
}

#[tokio::test]
async fn dropping_the_stream_closes_with_1000() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let socket = WsClient::new(url(addr)).connect().await.unwrap();
        events.open().await;
        drop(socket);
        assert_eq!(events.close().await.0, close_code::NORMAL);
    })
    .await;
}

/// A client that does not read its stream stops reading the network: the
/// server's queue grows instead of the client's memory.
#[tokio::test]
async fn an_unread_stream_pushes_back_on_the_server() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut socket = WsClient::new(url(addr))
            .receive_buffer(64 * 1024)
            .connect()
            .await
            .unwrap();
        let ws = events.open().await;
        let chunk = vec![1u8; 16 * 1024];
        let mut sent = 0;
        while ws.buffered_amount() < 4 << 20 {
            ws.send(chunk.clone());
            sent += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert!(sent < 20_000, "the server's queue never grew");
        }
        // Everything still arrives, in order, once read.
        for _ in 0..sent {
            assert_eq!(socket.next().await.map(|m| m.len()), Some(16 * 1024));
        }
    })
    .await;
}

/// Empty messages are bounded too: each takes its place in the inbox, so an
/// unread stream stops reading however small the messages are. A server
/// writing nothing but empty frames finds its writes blocked after the
/// inbox and the kernel's buffers are full (a few MiB), not after 16 MiB.
#[tokio::test]
async fn an_unread_stream_of_empty_messages_pushes_back_too() {
    within(WAIT, async {
        let server = FakeServer::new().await;
        let client = tokio::spawn(
            WsClient::new(server.url())
                .receive_buffer(64 * 1024)
                .connect(),
        );
        let (mut tcp, _) = server.upgrade("").await;
        let _socket = client.await.unwrap().unwrap();
        // 32,768 empty binary frames per write.
        let chunk = b"\x82\x00".repeat(32 * 1024);
        let mut written = 0;
        loop {
            let write = tokio::time::timeout(Duration::from_millis(500), tcp.write_all(&chunk));
            if write.await.is_err() {
                break;
            }
            written += chunk.len();
            assert!(
                written < 16 << 20,
                "the client kept reading: {written} bytes of empty frames"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_socket_can_subscribe_and_receives_publishes_masked() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let hub = Hub::new();
        let (probe, mut client) = Probe::new();
        let ws = WsClient::new(url(addr))
            .hub(&hub)
            .connect_with(probe, ())
            .await
            .unwrap();
        client.open().await;
        assert!(ws.subscribe("bots"));
        assert_eq!(hub.publish("bots", "from the hub"), 1);
        // The server decodes as a server: an unmasked frame would fail it.
        assert_eq!(events.message().await, Message::text("from the hub"));
    })
    .await;
}

// ---------------------------------------------------------------------------
// Failing to connect
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bad_answers_to_the_upgrade_fail_with_their_error() {
    within(WAIT, async {
        let server = FakeServer::new().await;
        let url = server.url();
        let attempt = |client: WsClient| tokio::spawn(client.connect());

        let client = attempt(WsClient::new(&url));
        let (mut tcp, _, _) = server.accept().await;
        tcp.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        )
        .await
        .unwrap();
        assert!(matches!(client.await.unwrap(), Err(ConnectError::BadAccept { .. })));

        let client = attempt(WsClient::new(&url).protocols(["a"]));
        drop(server.upgrade("Sec-WebSocket-Protocol: z\r\n").await);
        assert!(matches!(
            client.await.unwrap(),
            Err(ConnectError::UnexpectedProtocol(p)) if p == "z"
        ));

        let client = attempt(WsClient::new(&url));
        drop(server.upgrade("Sec-WebSocket-Extensions: permessage-deflate\r\n").await);
        assert!(matches!(client.await.unwrap(), Err(ConnectError::Extension(_))));

        let client = attempt(WsClient::new(&url));
        drop(server.upgrade("Sec-WebSocket-Extensions: x-unknown\r\n").await);
        assert!(matches!(client.await.unwrap(), Err(ConnectError::Extension(_))));

        let client = attempt(WsClient::new(&url));
        let (mut tcp, _, _) = server.accept().await;
        tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await.unwrap();
        match client.await.unwrap() {
            Err(ConnectError::Rejected { status, body, .. }) => {
                assert_eq!((status.as_u16(), &body[..]), (200, &b"hello"[..]));
            }
            other => panic!("{other:?}"),
        }

        let client = attempt(WsClient::new(&url));
        let (mut tcp, _, _) = server.accept().await;
        tcp.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await.unwrap();
        assert!(matches!(client.await.unwrap(), Err(ConnectError::MalformedResponse(_))));

        let client = attempt(WsClient::new(&url));
        let (tcp, _, _) = server.accept().await;
        drop(tcp);
        assert!(matches!(client.await.unwrap(), Err(ConnectError::Io(_))));

        // A head that never ends is cut at 64 KiB.
        let client = attempt(WsClient::new(&url));
        let (mut tcp, _, _) = server.accept().await;
        tcp.write_all(b"HTTP/1.1 101 Switching Protocols\r\n").await.unwrap();
        let filler = format!("x-filler: {}\r\n", "y".repeat(1000));
        for _ in 0..70 {
            if tcp.write_all(filler.as_bytes()).await.is_err() {
                break;
            }
        }
        assert!(matches!(client.await.unwrap(), Err(ConnectError::MalformedResponse(m)) if m.contains("64 KiB")));
    })
    .await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    within(WAIT, async {
        let server = FakeServer::new().await;
        let client = tokio::spawn(
            WsClient::new(server.url())
                .connect_timeout(Duration::from_millis(300))
                .connect(),
        );
        let _held = server.accept().await;
        assert!(matches!(
            client.await.unwrap(),
            Err(ConnectError::Timeout(t)) if t == Duration::from_millis(300)
        ));
    })
    .await;
}

#[tokio::test]
async fn unreachable_hosts_and_bad_urls_fail_clearly() {
    within(Duration::from_secs(30), async {
        // A port nothing listens on.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(matches!(
            WsClient::new(url(addr)).connect().await,
            Err(ConnectError::Connect { .. })
        ));
        // `.invalid` never resolves (RFC 2606).
        assert!(matches!(
            WsClient::new("ws://no-such-host.invalid/").connect().await,
            Err(ConnectError::Dns { host, .. }) if host == "no-such-host.invalid"
        ));
        assert!(matches!(
            WsClient::new("ftp://127.0.0.1/").connect().await,
            Err(ConnectError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            WsClient::new("not a url").connect().await,
            Err(ConnectError::InvalidUrl { .. })
        ));
    })
    .await;
}
