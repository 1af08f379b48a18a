//! Messages make the round trip unchanged: every length encoding, the
//! default 16 MiB limit, and messages the client sends in fragments.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use wshub::protocol::Frame;
use wshub::{Config, Message};

/// Around each boundary of the 7-bit, 16-bit and 64-bit length encodings.
const LENGTHS: [usize; 5] = [0, 125, 126, 65535, 65536];

const DEFAULT_LIMIT: usize = 16 << 20;

#[tokio::test]
async fn echoes_text_of_every_length_encoding() {
    within(Duration::from_secs(20), async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        for len in LENGTHS {
            let text = text_of_len(len);
            send(&mut client, Msg::text(text.clone())).await;
            match recv(&mut client).await {
                Msg::Text(got) => assert_same_payload(got.as_bytes(), text.as_bytes()),
                other => panic!("expected text of {len} bytes, got {other:?}"),
            }
            assert_eq!(events.message().await, Message::text(text));
        }
    })
    .await;
}

#[tokio::test]
async fn echoes_binary_of_every_length_encoding() {
    within(Duration::from_secs(20), async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        for len in LENGTHS {
            let bytes = bytes_of_len(len);
            send(&mut client, Msg::binary(bytes.clone())).await;
            match recv(&mut client).await {
                Msg::Binary(got) => assert_same_payload(&got, &bytes),
                other => panic!("expected {len} binary bytes, got {other:?}"),
            }
            assert_eq!(events.message().await, Message::binary(bytes));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_16_mib_text_and_binary_at_the_default_limit() {
    within(Duration::from_secs(60), async {
        let (addr, _events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;

        let text = text_of_len(DEFAULT_LIMIT);
        send(&mut client, Msg::text(text.clone())).await;
        match recv(&mut client).await {
            Msg::Text(got) => assert_same_payload(got.as_bytes(), text.as_bytes()),
            other => panic!("expected 16 MiB of text, got {other:?}"),
        }
        drop(text);

        let bytes = bytes_of_len(DEFAULT_LIMIT);
        send(&mut client, Msg::binary(bytes.clone())).await;
        match recv(&mut client).await {
            Msg::Binary(got) => assert_same_payload(&got, &bytes),
            other => panic!("expected 16 MiB of binary, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn joins_text_fragments_that_split_characters() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        let text = "Grüße, 世界! €";
        let bytes = text.as_bytes();
        // 3 cuts 'ü' (bytes 2..4) and 10 cuts '世' (bytes 9..12).
        assert!(!text.is_char_boundary(3) && !text.is_char_boundary(10));
        let wire = [
            masked(TEXT, &bytes[..3]),
            masked(CONTINUATION, &bytes[3..10]),
            masked(FIN | CONTINUATION, &bytes[10..]),
        ]
        .concat();
        raw.write(&wire).await;

        assert_eq!(raw.message().await, Message::from(text));
        assert_eq!(events.message().await, Message::from(text));
    })
    .await;
}

#[tokio::test]
async fn answers_a_ping_sent_between_fragments() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        let wire = [
            masked(TEXT, b"frag"),
            masked(FIN | PING, b"in between"),
            masked(CONTINUATION, b"ment"),
            masked(FIN | CONTINUATION, b"ed"),
        ]
        .concat();
        raw.write(&wire).await;

        assert_eq!(raw.frame().await, Frame::Pong("in between".into()));
        assert_eq!(raw.message().await, Message::from("fragmented"));
        assert_eq!(events.ping().await, "in between");
        assert_eq!(events.message().await, Message::from("fragmented"));
    })
    .await;
}

#[tokio::test]
async fn joins_binary_fragments_including_empty_ones() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        let wire = [
            masked(BINARY, &[]),
            masked(CONTINUATION, &[1, 2, 3]),
            masked(CONTINUATION, &[]),
            masked(FIN | CONTINUATION, &[4]),
        ]
        .concat();
        raw.write(&wire).await;

        assert_eq!(raw.message().await, Message::binary(vec![1, 2, 3, 4]));
        assert_eq!(events.message().await, Message::binary(vec![1, 2, 3, 4]));
    })
    .await;
}

#[tokio::test]
async fn message_then_next_message_in_one_write_both_arrive() {
    within(WAIT, async {
        let (addr, _events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        let wire = [masked(FIN | TEXT, b"one"), masked(FIN | BINARY, b"two")].concat();
        raw.write(&wire).await;

        assert_eq!(raw.message().await, Message::from("one"));
        assert_eq!(raw.message().await, Message::binary(&b"two"[..]));
    })
    .await;
}

#[tokio::test]
async fn frame_sent_with_the_handshake_is_not_lost_through_axum() {
    within(WAIT, async {
        let (addr, _events) = probe_server(Config::default()).await;
        handshake_and_frame_in_one_write(addr).await;
    })
    .await;
}

#[tokio::test]
async fn frame_sent_with_the_handshake_is_not_lost_through_hyper() {
    within(WAIT, async {
        let (probe, _events) = Probe::new();
        let addr = serve_hyper(probe).await;
        handshake_and_frame_in_one_write(addr).await;
    })
    .await;
}

/// A client may send its first frame right behind the request, before the
/// 101: the bytes the HTTP server read past the request belong to the socket.
async fn handshake_and_frame_in_one_write(addr: std::net::SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut wire = HttpRequest::upgrade("/").to_bytes();
    wire.extend(masked(FIN | TEXT, b"early"));
    tcp.write_all(&wire).await.unwrap();

    let mut read = BytesMut::new();
    let response = read_response(&mut tcp, &mut read).await;
    assert_eq!(response.status, 101);
    let mut raw = RawWs::from_upgraded(tcp, read);
    assert_eq!(raw.message().await, Message::from("early"));
}
