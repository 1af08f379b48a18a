//! `permessage-deflate` (RFC 7692) for real: interop with Python's
//! `websockets`, the RSV1 bit and the close codes on the wire, a room of
//! compressing and plain subscribers, deflate bombs against the memory of a
//! separate server process, and context takeover across fragments.
//!
//! The Python peer (`tests/peers/deflate_echo.py`) needs `python3` with the
//! `websockets` package (`pip install websockets`; `scripts/test.sh` installs
//! it). Without them those tests fail, saying so.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::any;
use common::deflate::{ClientDeflater, ClientInflater, DeflateWs, RawMessage};
use common::echo_server::EchoServer;
use common::*;
use serde_json::Value;
use wshub::{Compression, Compressor, Config, Handler, Message, WebSocket, WebSocketLayer};
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Strategy};

/// The same compressor both ways.
const fn both(compressor: Compressor) -> Compression {
    Compression {
        compress: compressor,
        decompress: compressor,
    }
}

const DEDICATED: Compression = both(Compressor::Dedicated);

/// What a shared server answers to a bare `permessage-deflate` offer.
const SHARED_ANSWER: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Echoes every message with `send`: compressed whenever negotiated.
struct Echo;

impl Handler for Echo {
    type Data = ();

    async fn message(&self, ws: &WebSocket, msg: Message) {
        ws.send(msg);
    }
}

async fn echo_server(config: Config) -> SocketAddr {
    let app = Router::new()
        .route("/", any(accept))
        .layer(WebSocketLayer::new(Echo).config(config));
    serve(app).await
}

fn opcode(msg: &Message) -> u8 {
    if msg.is_text() { TEXT } else { BINARY }
}

/// A message's payload as the client sees it: inflated when RSV1 is set.
fn content(msg: &RawMessage, inflater: &mut ClientInflater) -> Vec<u8> {
    if msg.rsv1 {
        inflater
            .inflate(&msg.payload)
            .unwrap_or_else(|e| panic!("cannot inflate the server's message: {e}"))
    } else {
        msg.payload.clone()
    }
}

/// `payload` cut into `n` pieces of about the same size (some may be empty).
fn pieces(payload: &[u8], n: usize) -> Vec<&[u8]> {
    let step = payload.len() / n;
    (0..n)
        .map(|i| {
            let end = if i + 1 == n {
                payload.len()
            } else {
                (i + 1) * step
            };
            &payload[i * step..end]
        })
        .collect()
}

/// A message's frames: the first with `first_flags | opcode`, then
/// continuations, the last with FIN.
fn fragments(opcode: u8, first_flags: u8, payload: &[u8], n: usize) -> Vec<Vec<u8>> {
    pieces(payload, n)
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let fin = if i + 1 == n { FIN } else { 0 };
            let first = if i == 0 {
                first_flags | opcode
            } else {
                CONTINUATION
            };
            masked(fin | first, piece)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Interop with Python's `websockets`
// ---------------------------------------------------------------------------

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/deflate_echo.py");

/// The Python peer's offers, in the order of the expected answers below.
const OFFERS: [&str; 5] = [
    "default",
    "client_no_context_takeover",
    "server_max_window_bits=10",
    "client_max_window_bits=9",
    "server_no_context_takeover",
];

/// Messages one run of the peer sends: 5 sizes, 4 kinds, 2 rounds.
const PEER_MESSAGES: u64 = 40;

/// Fails (never skips) when the peer cannot run.
async fn require_python_websockets() {
    let output = tokio::process::Command::new("python3")
        .args(["-c", "import websockets"])
        .stdin(Stdio::null())
        .output()
        .await;
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "python3 cannot import `websockets`, which the interop tests need: \
             run `pip install websockets` (scripts/test.sh does). python3 said: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => panic!("python3, which the interop tests need, cannot run: {error}"),
    }
}

/// Runs the Python peer against `addr` with `offer` and returns its JSON line.
async fn python_echo(addr: SocketAddr, offer: &str) -> Value {
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(PEER)
        .arg(format!("ws://{addr}/"))
        .arg(offer)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(Duration::from_secs(120), command.output()).await {
        Ok(output) => output.expect("run python3"),
        Err(_) => panic!("the Python peer ({offer}) did not finish within 120 s"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output from the Python peer ({offer}); stderr: {stderr}"));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("the Python peer printed {line:?} ({e}); stderr: {stderr}"))
}

/// Runs the peer with every offer against an echo server with
/// `compression`, expecting `answers[i]` as the negotiated extension.
async fn interop(compression: Compression, answers: [&str; 5]) {
    require_python_websockets().await;
    let addr = echo_server(Config::default().compression(compression)).await;
    for (offer, answer) in OFFERS.into_iter().zip(answers) {
        let result = python_echo(addr, offer).await;
        let context = format!("{compression:?}, offer {offer}: {result}");
        assert_eq!(result["error"], Value::Null, "{context}");
        assert_eq!(result["extensions"], answer, "{context}");
        assert_eq!(result["sent"], PEER_MESSAGES, "{context}");
        assert_eq!(result["matched"], PEER_MESSAGES, "{context}");
        assert_eq!(result["mismatches"], serde_json::json!([]), "{context}");
        // The peer compresses every message once the extension is agreed ...
        assert_eq!(result["sent_compressed"], PEER_MESSAGES, "{context}");
        // ... and so does the server, unless it does not compress at all.
        let compressed = if compression.compress == Compressor::Disabled {
            0
        } else {
            PEER_MESSAGES
        };
        assert_eq!(result["received_compressed"], compressed, "{context}");
        assert_eq!(
            result["received_plain"],
            PEER_MESSAGES - compressed,
            "{context}"
        );
        assert_eq!(result["close_code"], 1000, "{context}");
    }
}

#[tokio::test]
async fn python_peer_with_shared_compression() {
    const NO_TAKEOVER: &str = "permessage-deflate; server_no_context_takeover";
    interop(
        Compression::SHARED,
        [
            SHARED_ANSWER,
            SHARED_ANSWER,
            &format!("{NO_TAKEOVER}; server_max_window_bits=10; client_no_context_takeover"),
            &format!("{NO_TAKEOVER}; client_no_context_takeover; client_max_window_bits=9"),
            SHARED_ANSWER,
        ],
    )
    .await;
}

#[tokio::test]
async fn python_peer_with_dedicated_compression() {
    interop(
        DEDICATED,
        [
            "permessage-deflate",
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=9",
            "permessage-deflate; server_no_context_takeover",
        ],
    )
    .await;
}

#[tokio::test]
async fn python_peer_with_the_3kb_preset() {
    // 2^9 windows both ways: the preset limits what the client lets it limit.
    const NINE: &str = "server_max_window_bits=9; client_max_window_bits=9";
    interop(
        both(Compressor::Dedicated3KB),
        [
            &format!("permessage-deflate; {NINE}"),
            &format!("permessage-deflate; {NINE}"),
            &format!("permessage-deflate; {NINE}"),
            &format!("permessage-deflate; {NINE}"),
            &format!("permessage-deflate; server_no_context_takeover; {NINE}"),
        ],
    )
    .await;
}

#[tokio::test]
async fn python_peer_with_the_64kb_preset() {
    interop(
        both(Compressor::Dedicated64KB),
        [
            "permessage-deflate; server_max_window_bits=13; client_max_window_bits=13",
            "permessage-deflate; server_max_window_bits=13; client_max_window_bits=13",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=13",
            "permessage-deflate; server_max_window_bits=13; client_max_window_bits=9",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=13; \
             client_max_window_bits=13",
        ],
    )
    .await;
}

#[tokio::test]
async fn python_peer_with_a_server_that_only_decompresses() {
    const ANSWER: &str = "permessage-deflate; server_no_context_takeover";
    interop(
        Compression {
            compress: Compressor::Disabled,
            decompress: Compressor::Dedicated,
        },
        [
            ANSWER,
            ANSWER,
            &format!("{ANSWER}; server_max_window_bits=10"),
            &format!("{ANSWER}; client_max_window_bits=9"),
            ANSWER,
        ],
    )
    .await;
}

#[tokio::test]
async fn python_peer_with_a_server_that_only_compresses() {
    const ANSWER: &str = "permessage-deflate; client_no_context_takeover";
    interop(
        Compression {
            compress: Compressor::Dedicated,
            decompress: Compressor::Disabled,
        },
        [
            ANSWER,
            ANSWER,
            "permessage-deflate; server_max_window_bits=10; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------
// 2. On the wire
// ---------------------------------------------------------------------------

/// A probe server with `compression` and a raw client that offered `offer`;
/// the server's handle of that socket.
async fn raw_pair(compression: Compression, offer: Option<&str>) -> (DeflateWs, WebSocket, Events) {
    let (addr, mut events) = probe_server(Config::default().compression(compression)).await;
    let client = DeflateWs::connect(addr, "/", offer).await;
    let ws = events.open().await;
    (client, ws, events)
}

#[tokio::test]
async fn server_frames_carry_rsv1_exactly_when_compressed() {
    within(Duration::from_secs(60), async {
        for (compression, answer, takeover) in [
            (Compression::SHARED, SHARED_ANSWER, false),
            (DEDICATED, "permessage-deflate", true),
        ] {
            let (mut client, ws, _events) = raw_pair(compression, Some("permessage-deflate")).await;
            assert_eq!(client.extensions.as_deref(), Some(answer));
            let mut inflater = ClientInflater::new(takeover);
            let text = "compress me, compress me! ".repeat(200);

            for (what, sent) in [
                ("send", ws.send(text.as_str())),
                ("send_text", ws.send_text(text.as_str())),
                ("send_binary", ws.send_binary(text.clone().into_bytes())),
                (
                    "send_with(true)",
                    ws.send_with(Message::binary(vec![1, 2, 3]), true),
                ),
                ("send of an empty message", ws.send("")),
            ] {
                assert!(!matches!(sent, wshub::SendStatus::Dropped), "{what}");
                let msg = client.message().await;
                assert!(msg.rsv1, "{what} did not compress ({compression:?})");
                let inflated = content(&msg, &mut inflater);
                assert!(!inflated.is_empty() || what.contains("empty"), "{what}");
            }
            // The big ones came out small.
            ws.send(text.as_str());
            let msg = client.message().await;
            assert!(
                msg.rsv1 && msg.payload.len() < text.len() / 10,
                "{} bytes",
                msg.payload.len()
            );
            assert_eq!(content(&msg, &mut inflater), text.as_bytes());

            // Asked not to compress: a plain frame with the very bytes.
            for msg in [Message::from(text.as_str()), Message::binary(vec![9; 5000])] {
                ws.send_with(msg.clone(), false);
                let got = client.message().await;
                assert!(!got.rsv1, "send_with(false) set RSV1");
                assert_eq!(
                    (got.opcode, &got.payload[..]),
                    (opcode(&msg), msg.as_bytes())
                );
            }
            // Control frames never carry RSV1.
            ws.ping("are you there");
            let ping = client.frame().await;
            assert_eq!((ping.opcode, ping.rsv1), (PING, false));

            // Publishes, compressed or not, on a topic this socket is in.
            assert!(ws.subscribe("t"));
            let hub = ws.hub();
            hub.publish("t", text.as_str());
            hub.publish_with("t", text.as_str(), false);
            let compressed = client.message().await;
            assert!(compressed.rsv1);
            assert_eq!(content(&compressed, &mut inflater), text.as_bytes());
            let plain = client.message().await;
            assert!(!plain.rsv1);
            assert_eq!(plain.payload, text.as_bytes());

            // The client's compressed message comes back compressed and equal.
            let mut deflater = ClientDeflater::new(15, takeover);
            client
                .send(TEXT, text.as_bytes(), Some(&mut deflater))
                .await;
            let echo = client.message().await;
            assert!(echo.rsv1);
            assert_eq!(content(&echo, &mut inflater), text.as_bytes());
        }
    })
    .await;
}

#[tokio::test]
async fn sockets_without_the_extension_never_see_rsv1() {
    within(Duration::from_secs(60), async {
        let text = "plain plain plain plain ".repeat(300);
        // A compressing server and a client that did not offer; a server
        // without compression and a client that did.
        for (compression, offer) in [
            (Compression::SHARED, None),
            (DEDICATED, None),
            (Compression::DISABLED, Some("permessage-deflate")),
        ] {
            let (mut client, ws, _events) = raw_pair(compression, offer).await;
            assert_eq!(client.extensions, None, "{compression:?}");
            ws.subscribe("t");
            ws.send(text.as_str());
            ws.send_with(text.as_str(), true);
            ws.send_binary(text.clone().into_bytes());
            ws.hub().publish("t", text.as_str());
            ws.hub().publish_with("t", "small", true);
            client.write(&masked(FIN | TEXT, text.as_bytes())).await;
            for want in [&text, &text, &text, &text, "small", &text] {
                let got = client.message().await;
                assert!(
                    !got.rsv1,
                    "RSV1 on a socket without the extension ({compression:?})"
                );
                assert_eq!(got.payload, want.as_bytes());
            }
        }
    })
    .await;
}

/// Sends `frames` on a connection with `compression` that offered `offer`,
/// and expects the server to close with `code` (and report it to `error`).
async fn expect_failure(
    compression: Compression,
    offer: Option<&str>,
    frames: &[Vec<u8>],
    code: u16,
    what: &str,
) {
    let (mut client, _ws, mut events) = raw_pair(compression, offer).await;
    for frame in frames {
        client.write(frame).await;
    }
    assert_eq!(client.closed_with().await, code, "{what}");
    assert_eq!(events.error().await.close_code(), code, "{what}");
    assert_eq!(events.close().await.0, code, "{what}");
}

#[tokio::test]
async fn rsv1_on_a_continuation_or_control_frame_is_a_protocol_error() {
    within(Duration::from_secs(60), async {
        let offer = Some("permessage-deflate");
        let compressed =
            ClientDeflater::new(15, false).compress("a message in two frames".as_bytes());
        let (head, tail) = compressed.split_at(compressed.len() / 2);
        let cases: [(&str, Vec<Vec<u8>>); 6] = [
            (
                "RSV1 on both frames of a compressed message",
                vec![
                    masked(RSV1 | TEXT, head),
                    masked(FIN | RSV1 | CONTINUATION, tail),
                ],
            ),
            (
                "RSV1 on the continuation of a plain message",
                vec![
                    masked(TEXT, b"plain "),
                    masked(FIN | RSV1 | CONTINUATION, b"text"),
                ],
            ),
            ("RSV1 on a ping", vec![masked(FIN | RSV1 | PING, b"ping")]),
            ("RSV1 on a pong", vec![masked(FIN | RSV1 | PONG, b"pong")]),
            (
                "RSV1 on a close",
                vec![masked(FIN | RSV1 | CLOSE, &close_body(1000, ""))],
            ),
            (
                "RSV1 on a ping between the fragments of a compressed message",
                vec![masked(RSV1 | TEXT, head), masked(FIN | RSV1 | PING, b"")],
            ),
        ];
        for (what, frames) in cases {
            for compression in [Compression::SHARED, DEDICATED] {
                expect_failure(compression, offer, &frames, 1002, what).await;
            }
        }
        // RSV2 and RSV3 stay reserved with the extension.
        for rsv in [RSV2, RSV3] {
            let frames = [masked(FIN | RSV1 | rsv | TEXT, &compressed)];
            expect_failure(Compression::SHARED, offer, &frames, 1002, "RSV2/RSV3").await;
        }
    })
    .await;
}

#[tokio::test]
async fn rsv1_without_the_extension_is_a_protocol_error() {
    within(Duration::from_secs(60), async {
        let compressed = ClientDeflater::new(15, false).compress("hello".as_bytes());
        let frames = [masked(FIN | RSV1 | TEXT, &compressed)];
        // The client did not offer; the server does not compress.
        for (compression, offer) in [
            (Compression::SHARED, None),
            (Compression::DISABLED, Some("permessage-deflate")),
        ] {
            expect_failure(compression, offer, &frames, 1002, "RSV1 not negotiated").await;
        }
    })
    .await;
}

#[tokio::test]
async fn invalid_deflate_data_closes_with_1007() {
    within(Duration::from_secs(60), async {
        let offer = Some("permessage-deflate");
        let cases: [(&str, &[u8]); 3] = [
            ("a reserved block type", &[0xff, 0xff, 0xff]),
            (
                "stored block lengths that disagree",
                &[0x00, 0x05, 0x00, 0x00, 0x00, b'x'],
            ),
            (
                "a reserved block type after a good block",
                &[0x4a, 0x04, 0x00, 0x07],
            ),
        ];
        for (what, payload) in cases {
            for compression in [
                Compression::SHARED,
                DEDICATED,
                both(Compressor::Dedicated3KB),
            ] {
                for op in [TEXT, BINARY] {
                    let frames = [masked(FIN | RSV1 | op, payload)];
                    expect_failure(compression, offer, &frames, 1007, what).await;
                }
            }
        }
        // The same data split over fragments.
        let frames = fragments(BINARY, RSV1, &[0xff, 0xff, 0xff, 0xff], 3);
        expect_failure(DEDICATED, offer, &frames, 1007, "fragmented").await;
    })
    .await;
}

#[tokio::test]
async fn context_kept_against_client_no_context_takeover_closes_with_1007() {
    // The shared inflater starts every message afresh, as negotiated: a
    // client that keeps its context anyway sends a message that points back
    // into the previous one, which cannot be inflated.
    within(Duration::from_secs(30), async {
        let (mut client, _ws, mut events) =
            raw_pair(Compression::SHARED, Some("permessage-deflate")).await;
        assert_eq!(client.extensions.as_deref(), Some(SHARED_ANSWER));
        let mut deflater = ClientDeflater::new(15, true);
        let text = "Remember me? Remember me? The same words again. ".repeat(20);
        client
            .send(TEXT, text.as_bytes(), Some(&mut deflater))
            .await;
        assert!(client.message().await.rsv1);
        assert_eq!(events.message().await.as_text(), Some(text.as_str()));
        client
            .send(TEXT, text.as_bytes(), Some(&mut deflater))
            .await;
        assert_eq!(client.closed_with().await, 1007);
        assert_eq!(events.error().await.close_code(), 1007);
        assert_eq!(events.close().await.0, 1007);
    })
    .await;
}

#[tokio::test]
async fn compressed_text_that_inflates_to_invalid_utf8_closes_with_1007() {
    within(Duration::from_secs(60), async {
        let offer = Some("permessage-deflate");
        let mut bad = "κόσμε ".repeat(50).into_bytes();
        bad.extend_from_slice(&[0xed, 0xa0, 0x80]); // a surrogate
        bad.extend_from_slice(&"after the surrogate".repeat(10).into_bytes());
        let compressed = ClientDeflater::new(15, false).compress(&bad);
        for compression in [Compression::SHARED, DEDICATED] {
            let frames = [masked(FIN | RSV1 | TEXT, &compressed)];
            expect_failure(compression, offer, &frames, 1007, "one frame").await;
            let frames = fragments(TEXT, RSV1, &compressed, 4);
            expect_failure(compression, offer, &frames, 1007, "four fragments").await;
        }
        // The same bytes as a binary message are fine, and come back.
        let (mut client, _ws, _events) = raw_pair(DEDICATED, offer).await;
        client
            .write(&masked(FIN | RSV1 | BINARY, &compressed))
            .await;
        let echo = client.message().await;
        assert_eq!(echo.opcode, BINARY);
        assert_eq!(content(&echo, &mut ClientInflater::new(true)), bad);
    })
    .await;
}

// ---------------------------------------------------------------------------
// 3. A room of compressing and plain subscribers
// ---------------------------------------------------------------------------

const ROOM: &str = "room";
/// Asks the handler to run [`script`].
const SCRIPT: &str = "run the script";
/// Asks the handler to publish this through the hub, reaching everyone.
const SYNC: &str = "sync";
/// The last message of the test, through the hub.
const END: &str = "end";

/// Who publishes: the socket (excluding itself) or its hub (everyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Socket,
    Hub,
}

/// Publishes made by the handler, in order, in one call.
fn script() -> Vec<(Via, bool, Message)> {
    vec![
        (Via::Socket, true, Message::from("script: from the socket")),
        (Via::Hub, true, Message::from("script: from the hub")),
        (Via::Socket, false, Message::from(text_of_len(6000))),
        (Via::Hub, false, Message::binary(bytes_of_len(5000))),
        (Via::Socket, true, Message::from("y".repeat(9000))),
        (Via::Hub, true, Message::binary(Vec::new())),
        (Via::Socket, true, Message::binary(random_bytes(3, 7000))),
        (Via::Hub, true, Message::from("script done")),
    ]
}

struct Room;

impl Handler for Room {
    type Data = ();

    async fn open(&self, ws: &WebSocket) {
        ws.subscribe(ROOM);
    }

    async fn message(&self, ws: &WebSocket, msg: Message) {
        match msg.as_text() {
            Some(SCRIPT) => {
                for (via, compress, msg) in script() {
                    match via {
                        Via::Socket => ws.publish_with(ROOM, msg, compress),
                        Via::Hub => ws.hub().publish_with(ROOM, msg, compress),
                    };
                }
            }
            Some(SYNC) => {
                ws.hub().publish(ROOM, SYNC);
            }
            _ => {
                ws.publish(ROOM, msg);
            }
        }
    }
}

/// Bytes that do not compress, from a small xorshift generator.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// One subscriber of the room, how it reads, and what it got.
struct Member {
    name: &'static str,
    client: DeflateWs,
    /// Whether frames it gets may carry RSV1.
    compresses: bool,
    inflater: ClientInflater,
    /// (opcode, content, RSV1) of every message so far.
    got: Vec<(u8, Vec<u8>, bool)>,
}

impl Member {
    /// Reads messages until the text `last`, which it keeps too.
    async fn read_until(&mut self, last: &str) {
        loop {
            let msg = self.client.message().await;
            assert!(
                self.compresses || !msg.rsv1,
                "{}: RSV1 on a plain socket",
                self.name
            );
            let content = content(&msg, &mut self.inflater);
            let done = msg.opcode == TEXT && content == last.as_bytes();
            self.got.push((msg.opcode, content, msg.rsv1));
            if done {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_room_of_compressing_and_plain_subscribers_gets_the_same_messages_in_order() {
    within(Duration::from_secs(90), async {
        // Four layers, four compression settings, one hub.
        let hub = wshub::Hub::new();
        let layer = |compression| {
            WebSocketLayer::new(Room)
                .with_hub(hub.clone())
                .config(Config::default().compression(compression))
        };
        let app = Router::new()
            .route("/shared", any(accept).layer(layer(Compression::SHARED)))
            .route("/dedicated", any(accept).layer(layer(DEDICATED)))
            .route(
                "/small",
                any(accept).layer(layer(both(Compressor::Dedicated3KB))),
            )
            .route("/plain", any(accept).layer(layer(Compression::DISABLED)));
        let addr = serve(app).await;

        // (name, path, offer, answer, server keeps its context)
        let members = [
            (
                "shared",
                "/shared",
                Some("permessage-deflate"),
                Some(SHARED_ANSWER),
                false,
            ),
            (
                "shared, 2^10 window",
                "/shared",
                Some("permessage-deflate; server_max_window_bits=10"),
                Some(
                    "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
                     client_no_context_takeover",
                ),
                false,
            ),
            (
                "dedicated",
                "/dedicated",
                Some("permessage-deflate"),
                Some("permessage-deflate"),
                true,
            ),
            (
                "3KB preset",
                "/small",
                Some("permessage-deflate; client_max_window_bits"),
                Some("permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"),
                true,
            ),
            ("no offer", "/shared", None, None, false),
            (
                "no compression on the server",
                "/plain",
                Some("permessage-deflate"),
                None,
                false,
            ),
        ];
        let mut room = Vec::new();
        for (name, path, offer, answer, takeover) in members {
            let client = DeflateWs::connect(addr, path, offer).await;
            assert_eq!(client.extensions.as_deref(), answer, "{name}");
            room.push(Member {
                name,
                compresses: answer.is_some(),
                client,
                inflater: ClientInflater::new(takeover),
                got: Vec::new(),
            });
        }
        wait("everyone in the room", async {
            while hub.subscriber_count(ROOM) < room.len() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;

        // (opcode, content, compress, who is left out)
        let mut expected: Vec<(u8, Vec<u8>, bool, Option<usize>)> = Vec::new();

        // From outside any socket, through the hub.
        let outside = [
            Message::from("hello room"),
            Message::from("compressible ".repeat(2000)),
            Message::binary(random_bytes(1, 10_000)),
            Message::from(""),
            Message::binary(bytes_of_len(3000)),
            Message::from(text_of_len(200)),
        ];
        for (i, msg) in outside.into_iter().enumerate() {
            let compress = i % 3 != 2;
            expected.push((opcode(&msg), msg.as_bytes().to_vec(), compress, None));
            assert_eq!(hub.publish_with(ROOM, msg, compress), room.len());
        }

        // From the shared socket: `ws.publish` of what it sends, compressed.
        let publisher = 0;
        let mut deflater = ClientDeflater::new(15, false);
        let from_socket = [
            (TEXT, "from a socket".as_bytes().to_vec()),
            (BINARY, random_bytes(2, 8000)),
            (TEXT, "z".repeat(50_000).into_bytes()),
            (BINARY, Vec::new()),
        ];
        for (op, payload) in from_socket {
            room[publisher]
                .client
                .send(op, &payload, Some(&mut deflater))
                .await;
            expected.push((op, payload, true, Some(publisher)));
        }
        room[publisher]
            .client
            .send(TEXT, SYNC.as_bytes(), Some(&mut deflater))
            .await;
        expected.push((TEXT, SYNC.as_bytes().to_vec(), true, None));
        // The sync comes back to the publisher once its publishes are done.
        room[publisher].read_until(SYNC).await;

        // From inside the dedicated socket's handler, socket and hub mixed.
        let scripted = 2;
        room[scripted]
            .client
            .write(&masked(FIN | TEXT, SCRIPT.as_bytes()))
            .await;
        for (via, compress, msg) in script() {
            let left_out = (via == Via::Socket).then_some(scripted);
            expected.push((opcode(&msg), msg.as_bytes().to_vec(), compress, left_out));
        }
        room[scripted].read_until("script done").await;

        hub.publish(ROOM, END);
        expected.push((TEXT, END.as_bytes().to_vec(), true, None));

        for (index, member) in room.iter_mut().enumerate() {
            member.read_until(END).await;
            let want: Vec<_> = expected
                .iter()
                .filter(|(.., left_out)| *left_out != Some(index))
                .collect();
            assert_eq!(member.got.len(), want.len(), "{}: how many", member.name);
            for (i, ((op, content, rsv1), (want_op, want_content, compress, _))) in
                member.got.iter().zip(&want).enumerate()
            {
                assert_eq!(op, want_op, "{}: message {i}", member.name);
                assert_same_payload(content, want_content);
                assert_eq!(
                    *rsv1,
                    *compress && member.compresses,
                    "{}: RSV1 of message {i}",
                    member.name
                );
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// 4. Deflate bombs
// ---------------------------------------------------------------------------

/// One message of `len` zero bytes, compressed (about 1 KiB per MiB).
fn zeros_compressed(len: usize) -> Vec<u8> {
    let mut deflate = Deflate::new_with_config(DeflateConfig {
        level: 9,
        method: Method::Deflated,
        window_bits: -15,
        mem_level: 8,
        strategy: Strategy::Rle,
    });
    let chunk = vec![0u8; 1 << 20];
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    loop {
        let take = left.min(chunk.len());
        left -= take;
        let flush = if left == 0 {
            DeflateFlush::SyncFlush
        } else {
            DeflateFlush::NoFlush
        };
        let mut input = &chunk[..take];
        loop {
            let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
            deflate.compress(input, &mut buf, flush).expect("deflate");
            input = &input[(deflate.total_in() - in_before) as usize..];
            let gave = (deflate.total_out() - out_before) as usize;
            out.extend_from_slice(&buf[..gave]);
            if input.is_empty() && gave < buf.len() {
                break;
            }
        }
        if left == 0 {
            break;
        }
    }
    assert!(out.ends_with(&common::deflate::TAIL));
    out.truncate(out.len() - 4);
    out
}

/// 64 MiB of zeros, compressed once per test process.
fn bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let started = Instant::now();
        let bomb = zeros_compressed(64 << 20);
        eprintln!(
            "bomb: 64 MiB of zeros in {} KiB, made in {:?}",
            bomb.len() / 1024,
            started.elapsed()
        );
        bomb
    })
}

const MIB: u64 = 1 << 20;
const SMALL_LIMIT: usize = 1 << 20;

/// Sends `bomb()` in `frames` frames and expects 1009, within `limit`.
async fn bomb_closes(addr: SocketAddr, frames: usize, limit: Duration) -> Duration {
    let bomb = tokio::task::spawn_blocking(bomb).await.unwrap();
    let started = Instant::now();
    let mut client = DeflateWs::connect(addr, "/", Some("permessage-deflate")).await;
    assert!(client.extensions.is_some());
    let wire: Vec<u8> = fragments(BINARY, RSV1, bomb, frames).concat();
    // The server may close before it has read it all: ignore write errors.
    let _ = client.try_write(&wire).await;
    assert_eq!(client.closed_with().await, 1009);
    let took = started.elapsed();
    assert!(took < limit, "the bomb took {took:?} to close");
    took
}

#[tokio::test]
async fn a_bomb_closes_with_1009() {
    let config = |compression| {
        Config::default()
            .max_payload_length(SMALL_LIMIT)
            .compression(compression)
    };
    for compression in [
        Compression::SHARED,
        DEDICATED,
        both(Compressor::Dedicated3KB),
    ] {
        let (addr, mut events) = probe_server(config(compression)).await;
        // Fragments are summed as they inflate, not only on the wire.
        for frames in [1, 3, 16] {
            let took = bomb_closes(addr, frames, Duration::from_secs(20)).await;
            eprintln!("{compression:?}: a {frames}-frame bomb closed in {took:?}");
            events.open().await;
            assert_eq!(events.error().await.close_code(), 1009);
            assert_eq!(events.close().await.0, 1009);
        }
    }
}

#[tokio::test]
async fn bombs_on_twenty_connections_at_once_close_with_1009() {
    let config = Config::default()
        .max_payload_length(SMALL_LIMIT)
        .per_message_deflate(true);
    let (addr, _events) = probe_server(config).await;
    tokio::task::spawn_blocking(bomb).await.unwrap();
    let attacks: Vec<_> = (0..20)
        .map(|_| tokio::spawn(bomb_closes(addr, 1, Duration::from_secs(60))))
        .collect();
    for attack in attacks {
        attack.await.unwrap();
    }
}

#[tokio::test]
async fn messages_that_inflate_to_exactly_the_limit_pass_one_byte_more_does_not() {
    within(Duration::from_secs(60), async {
        let config = Config::default()
            .max_payload_length(SMALL_LIMIT)
            .compression(DEDICATED);
        let addr = echo_server(config).await;
        let at_limit = zeros_compressed(SMALL_LIMIT);
        let mut client = DeflateWs::connect(addr, "/", Some("permessage-deflate")).await;
        let mut inflater = ClientInflater::new(true);
        for _ in 0..10 {
            client.write(&masked(FIN | RSV1 | BINARY, &at_limit)).await;
            let echo = client.message().await;
            assert!(echo.rsv1);
            let content = content(&echo, &mut inflater);
            assert!(content.len() == SMALL_LIMIT && content.iter().all(|&b| b == 0));
        }
        client
            .write(&masked(
                FIN | RSV1 | BINARY,
                &zeros_compressed(SMALL_LIMIT + 1),
            ))
            .await;
        assert_eq!(client.closed_with().await, 1009);
    })
    .await;
}

/// `max_payload_length(usize::MAX)` with compression: the inflater's limit
/// used to overflow (`limit + 1`), which panicked the connection in debug
/// builds and spun it forever in release ones.
#[tokio::test]
async fn the_largest_payload_limit_echoes_compressed_messages() {
    within(Duration::from_secs(60), async {
        let config = Config::default()
            .max_payload_length(usize::MAX)
            .per_message_deflate(true);
        let addr = echo_server(config).await;
        let mut client = DeflateWs::connect(addr, "/", Some("permessage-deflate")).await;
        assert_eq!(client.extensions.as_deref(), Some(SHARED_ANSWER));
        let mut deflater = ClientDeflater::new(15, false);
        let mut inflater = ClientInflater::new(false);
        for text in ["small", &"no limit at all, ".repeat(10_000)] {
            client
                .send(TEXT, text.as_bytes(), Some(&mut deflater))
                .await;
            let echo = client.message().await;
            assert!(echo.rsv1 && echo.opcode == TEXT, "{echo:?}");
            assert_same_payload(&content(&echo, &mut inflater), text.as_bytes());
        }
        assert_eq!(client.close(1000).await, 1000);
    })
    .await;
}

/// Peak memory of the echo example (a separate process, 16 MiB limit)
/// while bombs hit it, checked against that limit.
async fn bomb_memory(mode: &str) {
    const LIMIT: u64 = 16 * MIB;
    const MARGIN: u64 = 8 * MIB;
    // Inflating is synchronous, on the worker that reads the frame, and a
    // bomb fills `LIMIT` bytes before it fails: bombs at once hold up to
    // one `LIMIT` per worker thread. The example's runtime has one worker
    // per core by default, which made the bound grow with the machine (+328
    // MiB on 20 cores, room for a leak of 300 MiB): here it runs with a
    // fixed number of workers, so the bound is one figure on every machine,
    // and inflating off the workers (say on the blocking pool, where all 20
    // could inflate at once) breaks it everywhere.
    const WORKERS: u64 = 2;
    tokio::task::spawn_blocking(bomb).await.unwrap();
    // Started outside the timeout: the first start builds the example.
    let server = EchoServer::start_with_workers(mode, WORKERS as usize).await;
    let addr = server.addr;
    let kib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    within(Duration::from_secs(300), async {
        // Warm up: one compressed echo, so every lazily made piece exists.
        let mut client = DeflateWs::connect(addr, "/", Some("permessage-deflate")).await;
        let mut deflater = ClientDeflater::new(15, false);
        let warm = "warm up ".repeat(8000);
        client
            .send(TEXT, warm.as_bytes(), Some(&mut deflater))
            .await;
        let echo = client.message().await;
        assert_eq!(
            content(&echo, &mut ClientInflater::new(false)),
            warm.as_bytes()
        );
        assert_eq!(client.close(1000).await, 1000);
        let base = server.peak_rss_kib();
        eprintln!("echo {mode}: peak RSS after warm-up {}", kib(base));
        let check = |stage: &str, bound: u64| {
            let peak = server.peak_rss_kib();
            let growth = (peak - base) * 1024;
            eprintln!(
                "echo {mode}: {stage}: peak RSS {} (+{}), bound +{}, RSS now {}",
                kib(peak),
                kib(growth / 1024),
                kib(bound / 1024),
                kib(server.rss_kib())
            );
            assert!(
                growth < bound,
                "{stage}: peak RSS grew by {growth} bytes, over {bound}"
            );
        };

        bomb_closes(addr, 1, Duration::from_secs(60)).await;
        check("one 64 MiB bomb", LIMIT + MARGIN);

        bomb_closes(addr, 8, Duration::from_secs(60)).await;
        check("a bomb in 8 frames", LIMIT + MARGIN);

        for _ in 0..10 {
            bomb_closes(addr, 1, Duration::from_secs(60)).await;
        }
        check("10 bombs in a row", LIMIT + MARGIN);

        let attacks: Vec<_> = (0..20)
            .map(|_| tokio::spawn(bomb_closes(addr, 1, Duration::from_secs(120))))
            .collect();
        for attack in attacks {
            attack.await.unwrap();
        }
        // At most one bomb per worker is being inflated at any moment.
        // Measured on 2 cores (2026-11-28): +32.4 MiB (shared) and +33.4
        // MiB (dedicated), that is two bombs of 16 MiB and about 1 MiB of
        // 20 connections; the bound is +40 MiB.
        check("20 bombs at once", WORKERS * LIMIT + MARGIN);
    })
    .await;
}

#[tokio::test]
async fn bombs_keep_the_shared_echo_server_within_its_limit() {
    bomb_memory("shared").await;
}

#[tokio::test]
async fn bombs_keep_the_dedicated_echo_server_within_its_limit() {
    bomb_memory("dedicated").await;
}

/// Ten "bombs" that inflate to exactly the echo example's limit (16 MiB of
/// zeros, 16 KiB on the wire) in a row on one connection, each echoed, then
/// one past it: peak memory is one inflated message and a constant.
async fn limit_sized_messages_in_a_row(mode: &str) {
    const LIMIT: u64 = 16 * MIB;
    const MARGIN: u64 = 8 * MIB;
    tokio::task::spawn_blocking(bomb).await.unwrap();
    let at_limit = zeros_compressed(LIMIT as usize);
    let server = EchoServer::start(mode).await;
    within(Duration::from_secs(180), async {
        let mut client = DeflateWs::connect(server.addr, "/", Some("permessage-deflate")).await;
        let mut deflater = ClientDeflater::new(15, false);
        client.send(TEXT, b"warm up", Some(&mut deflater)).await;
        let mut inflater = ClientInflater::new(mode == "dedicated");
        content(&client.message().await, &mut inflater);
        let base = server.peak_rss_kib();
        let mut peaks = Vec::new();
        for _ in 0..10 {
            client.write(&masked(FIN | RSV1 | BINARY, &at_limit)).await;
            let echo = client.message().await;
            assert!(echo.rsv1 && echo.payload.len() < 64 << 10);
            let content = content(&echo, &mut inflater);
            assert!(content.len() == LIMIT as usize && content.iter().all(|&b| b == 0));
            peaks.push(server.peak_rss_kib() - base);
        }
        client.write(&masked(FIN | RSV1 | BINARY, bomb())).await;
        assert_eq!(client.closed_with().await, 1009);
        let growth = (server.peak_rss_kib() - base) * 1024;
        let mib: Vec<_> = peaks
            .iter()
            .map(|kib| format!("{:.1}", *kib as f64 / 1024.0))
            .collect();
        eprintln!(
            "echo {mode}: 10 messages of 16 MiB zeros on one connection, then a bomb: \
             peak RSS +[{}] MiB, at the end +{:.1} MiB (bound +{:.1} MiB), RSS now {:.1} MiB",
            mib.join(", "),
            growth as f64 / MIB as f64,
            (LIMIT + MARGIN) as f64 / MIB as f64,
            server.rss_kib() as f64 / 1024.0,
        );
        assert!(
            growth < LIMIT + MARGIN,
            "peak RSS grew by {growth} bytes (per message: +{peaks:?} KiB)"
        );
    })
    .await;
}

#[tokio::test]
async fn limit_sized_messages_in_a_row_keep_the_shared_echo_server_within_its_limit() {
    limit_sized_messages_in_a_row("shared").await;
}

#[tokio::test]
async fn limit_sized_messages_in_a_row_keep_the_dedicated_echo_server_within_its_limit() {
    limit_sized_messages_in_a_row("dedicated").await;
}

/// A message as large as the echo example takes that does not compress
/// (random bytes): while the server inflates it and compresses the echo, at
/// most three copies are alive at once: the compressed frame read, the
/// inflated message, the compressed echo. Each is about the limit.
#[tokio::test]
async fn a_large_incompressible_echo_stays_within_three_copies() {
    const LIMIT: u64 = 16 * MIB;
    const MARGIN: u64 = 8 * MIB;
    // Under the limit even once deflate's stored blocks add their headers.
    let payload = random_bytes(5, (16 << 20) - (64 << 10));
    let server = EchoServer::start("shared").await;
    within(Duration::from_secs(180), async {
        let mut client = DeflateWs::connect(server.addr, "/", Some("permessage-deflate")).await;
        assert_eq!(client.extensions.as_deref(), Some(SHARED_ANSWER));
        let mut deflater = ClientDeflater::new(15, false);
        client.send(TEXT, b"warm up", Some(&mut deflater)).await;
        client.message().await;
        let base = server.peak_rss_kib();
        let started = Instant::now();
        client.send(BINARY, &payload, Some(&mut deflater)).await;
        let echo = client.message().await;
        assert!(echo.rsv1);
        let growth = (server.peak_rss_kib() - base) * 1024;
        eprintln!(
            "echo shared: a {} KiB incompressible message, {} KiB compressed back, in {:?}: \
             peak RSS +{:.1} MiB (bound +{:.1} MiB)",
            payload.len() / 1024,
            echo.payload.len() / 1024,
            started.elapsed(),
            growth as f64 / MIB as f64,
            (3 * LIMIT + MARGIN) as f64 / MIB as f64,
        );
        assert_same_payload(&content(&echo, &mut ClientInflater::new(false)), &payload);
        assert!(
            growth < 3 * LIMIT + MARGIN,
            "peak RSS grew by {growth} bytes for one {} byte echo",
            payload.len()
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// 5. Context takeover
// ---------------------------------------------------------------------------

/// Lowercase words that compress only so much on their own.
fn random_text(seed: u64, len: usize) -> Vec<u8> {
    random_bytes(seed, len)
        .into_iter()
        .map(|b| if b % 6 == 0 { b' ' } else { b'a' + b % 26 })
        .collect()
}

/// Messages for the context tests: (opcode, payload, frames). Messages 2
/// and 4 repeat 1 and 3: with context, they cost a few bytes.
fn conversation() -> Vec<(u8, Vec<u8>, usize)> {
    let short = random_text(10, 200);
    let long = random_text(11, 20_000);
    vec![
        (TEXT, b"hello hello hello".to_vec(), 1),
        (TEXT, short.clone(), 3),
        (TEXT, short, 1),
        (TEXT, long.clone(), 3),
        (TEXT, long, 2),
        (BINARY, random_bytes(9, 5000), 4),
        (TEXT, Vec::new(), 1),
        (TEXT, "κόσμε, κόσμε, κόσμε".as_bytes().to_vec(), 5),
        (BINARY, bytes_of_len(70_000), 3),
        (
            TEXT,
            "It was the best of times, it was the worst of times, "
                .repeat(400)
                .into_bytes(),
            6,
        ),
    ]
}

/// Sends the conversation compressed, fragments with a ping and a pong
/// between them, and checks every echo, inflated as `inflater` does.
async fn converse(
    client: &mut DeflateWs,
    mut deflater: ClientDeflater,
    mut inflater: ClientInflater,
) -> Vec<usize> {
    let mut echo_sizes = Vec::new();
    let mut pings = 0;
    for (i, (op, payload, frames)) in conversation().into_iter().enumerate() {
        let compressed = deflater.compress(&payload);
        let mut wire = Vec::new();
        for (f, frame) in fragments(op, RSV1, &compressed, frames)
            .into_iter()
            .enumerate()
        {
            if f > 0 {
                wire.extend(masked(FIN | PING, format!("ping {i}.{f}").as_bytes()));
                wire.extend(masked(FIN | PONG, b"unsolicited"));
                pings += 1;
            }
            wire.extend(frame);
        }
        client.write(&wire).await;
        let echo = client.message().await;
        assert_eq!(echo.opcode, op, "message {i}");
        assert!(echo.rsv1, "message {i} came back uncompressed");
        echo_sizes.push(echo.payload.len());
        assert_same_payload(&content(&echo, &mut inflater), &payload);
    }
    let pongs: Vec<_> = client.controls.drain(..).collect();
    assert_eq!(pongs.len(), pings, "one pong per ping");
    assert!(
        pongs
            .iter()
            .all(|pong| pong.opcode == PONG && pong.payload.starts_with(b"ping "))
    );
    echo_sizes
}

#[tokio::test]
async fn dedicated_contexts_survive_fragments_and_interleaved_control_frames() {
    within(Duration::from_secs(60), async {
        for (compression, offer, answer, window) in [
            (DEDICATED, "permessage-deflate", "permessage-deflate", 15),
            (
                both(Compressor::Dedicated3KB),
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
                9,
            ),
        ] {
            let (mut client, _ws, mut events) = raw_pair(compression, Some(offer)).await;
            assert_eq!(client.extensions.as_deref(), Some(answer));
            // Both sides keep their context: one deflater and one inflater
            // for the whole connection.
            let sizes = converse(
                &mut client,
                ClientDeflater::new(window, true),
                ClientInflater::new(true),
            )
            .await;
            // The server kept its context: a repeated message costs little
            // (the long one only if its window reaches back that far).
            assert!(
                sizes[2] * 5 < sizes[1],
                "echo sizes {sizes:?} ({compression:?})"
            );
            if window == 15 {
                assert!(
                    sizes[4] * 20 < sizes[3],
                    "echo sizes {sizes:?} ({compression:?})"
                );
            }
            for (i, (op, payload, _)) in conversation().into_iter().enumerate() {
                let msg = events.message().await;
                assert_eq!(
                    (opcode(&msg), msg.as_bytes()),
                    (op, &payload[..]),
                    "message {i}"
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn shared_compression_keeps_no_context_across_fragments_and_control_frames() {
    within(Duration::from_secs(60), async {
        let (mut client, _ws, _events) =
            raw_pair(Compression::SHARED, Some("permessage-deflate")).await;
        assert_eq!(client.extensions.as_deref(), Some(SHARED_ANSWER));
        // As negotiated, each side starts every message afresh: an inflater
        // reset per message proves the server kept no context.
        let sizes = converse(
            &mut client,
            ClientDeflater::new(15, false),
            ClientInflater::new(false),
        )
        .await;
        assert!(
            sizes[2] * 2 > sizes[1],
            "echo sizes {sizes:?}: context was kept"
        );
        assert!(
            sizes[4] * 2 > sizes[3],
            "echo sizes {sizes:?}: context was kept"
        );
    })
    .await;
}
