//! A peer that breaks the rules, or a handler that panics, fails the
//! connection: the right close code on the wire, `Handler::error` with the
//! cause, then `close` with the same code, and the server ends the stream.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use tokio::sync::mpsc;
use wshub::{Config, Error, Handler, Message, ProtocolError, WebSocket, WebSocketLayer};

const LIMIT: usize = 1024;

/// Sends `wire` after the handshake and checks how the server fails.
async fn fails_with(wire: &[u8], code: u16, cause: ProtocolError) {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default().max_payload_length(LIMIT)).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await;
        raw.write(wire).await;

        assert_eq!(
            raw.close_frame().await.code,
            code,
            "close code for {cause:?}"
        );
        raw.expect_eof().await;
        match events.error().await {
            Error::Protocol(error) => assert_eq!(error, cause),
            other => panic!("expected {cause:?}, got {other:?}"),
        }
        assert_eq!(events.close().await.0, code);
        events.assert_silent(Duration::from_millis(100)).await;
    })
    .await;
}

fn too_big() -> ProtocolError {
    ProtocolError::MessageTooBig { limit: LIMIT }
}

// --- Size limit: 1009 ---

#[tokio::test]
async fn message_at_the_limit_is_accepted() {
    within(WAIT, async {
        let (addr, _events) = probe_server(Config::default().max_payload_length(LIMIT)).await;
        let mut raw = RawWs::connect(addr).await;
        let payload = bytes_of_len(LIMIT);
        raw.write(&masked(FIN | BINARY, &payload)).await;
        assert_eq!(raw.message().await, Message::binary(payload));
    })
    .await;
}

#[tokio::test]
async fn message_over_the_limit_closes_with_1009() {
    fails_with(
        &masked(FIN | BINARY, &bytes_of_len(LIMIT + 1)),
        1009,
        too_big(),
    )
    .await;
}

#[tokio::test]
async fn fragments_summing_over_the_limit_close_with_1009() {
    let half = bytes_of_len(LIMIT / 2);
    let wire = [
        masked(TEXT, &[b'a'; LIMIT / 2]),
        masked(CONTINUATION, &[b'b'; LIMIT / 2]),
        masked(FIN | CONTINUATION, b"c"),
    ]
    .concat();
    fails_with(&wire, 1009, too_big()).await;
    let wire = [
        masked(BINARY, &half),
        masked(FIN | CONTINUATION, &[half.as_slice(), b"!"].concat()),
    ]
    .concat();
    fails_with(&wire, 1009, too_big()).await;
}

#[tokio::test]
async fn oversized_frame_header_alone_closes_with_1009() {
    // Nothing but a header announcing 1 GiB: the server must not wait for it.
    fails_with(&masked_header(FIN | BINARY, 1 << 30), 1009, too_big()).await;
}

#[tokio::test]
async fn default_limit_rejects_16_mib_plus_one_from_the_header() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await;
        raw.write(&masked_header(FIN | TEXT, (16 << 20) + 1)).await;

        assert_eq!(raw.close_frame().await.code, 1009);
        assert!(matches!(
            events.error().await,
            Error::Protocol(ProtocolError::MessageTooBig { limit }) if limit == 16 << 20
        ));
    })
    .await;
}

// --- Invalid UTF-8: 1007 ---

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    fails_with(
        &masked(FIN | TEXT, b"caf\xc3("),
        1007,
        ProtocolError::InvalidUtf8,
    )
    .await;
}

#[tokio::test]
async fn text_ending_inside_a_character_closes_with_1007() {
    fails_with(
        &masked(FIN | TEXT, "caf€".as_bytes().split_last().unwrap().1),
        1007,
        ProtocolError::InvalidUtf8,
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_split_across_fragments_closes_with_1007() {
    // A 3-byte lead at the end of one fragment, a non-continuation byte next.
    let wire = [masked(TEXT, b"ok \xe2"), masked(FIN | CONTINUATION, b"x")].concat();
    fails_with(&wire, 1007, ProtocolError::InvalidUtf8).await;
}

#[tokio::test]
async fn invalid_utf8_in_a_middle_fragment_fails_before_the_last_one() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await;
        raw.write(&masked(TEXT, "première ".as_bytes())).await;
        raw.write(&masked(CONTINUATION, b"bad \xff here")).await;

        // The final fragment is never sent: the server fails on the bad byte.
        assert_eq!(raw.close_frame().await.code, 1007);
        raw.expect_eof().await;
        assert!(matches!(
            events.error().await,
            Error::Protocol(ProtocolError::InvalidUtf8)
        ));
        assert_eq!(events.close().await.0, 1007);
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_fails_before_the_rest_of_its_frame_arrives() {
    within(WAIT, async {
        let (addr, _events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        let mut payload = b"\xff".to_vec();
        payload.extend(bytes_of_len(1000));
        let frame = masked(FIN | TEXT, &payload);
        // The header, the mask and the bad byte; the other 1000 bytes never come.
        raw.write(&frame[..frame.len() - 1000]).await;

        assert_eq!(raw.close_frame().await.code, 1007);
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_in_a_close_reason_closes_with_1007() {
    fails_with(
        &masked(FIN | CLOSE, b"\x03\xe8bad \xff"),
        1007,
        ProtocolError::InvalidUtf8,
    )
    .await;
}

// --- Protocol errors: 1002 ---

#[tokio::test]
async fn unmasked_client_frame_closes_with_1002() {
    fails_with(
        &unmasked(FIN | TEXT, b"hello"),
        1002,
        ProtocolError::UnmaskedFrame,
    )
    .await;
}

#[tokio::test]
async fn reserved_opcodes_close_with_1002() {
    for opcode in [0x3, 0x7, 0xb, 0xf] {
        fails_with(
            &masked(FIN | opcode, b""),
            1002,
            ProtocolError::ReservedOpcode(opcode),
        )
        .await;
    }
}

#[tokio::test]
async fn reserved_bits_close_with_1002() {
    for rsv in [RSV1, RSV2, RSV3] {
        fails_with(
            &masked(FIN | rsv | TEXT, b"x"),
            1002,
            ProtocolError::ReservedBits,
        )
        .await;
    }
}

#[tokio::test]
async fn fragmented_control_frame_closes_with_1002() {
    fails_with(
        &masked(PING, b"half"),
        1002,
        ProtocolError::FragmentedControlFrame,
    )
    .await;
}

#[tokio::test]
async fn control_frame_over_125_bytes_closes_with_1002() {
    fails_with(
        &masked(FIN | PING, &[0; 126]),
        1002,
        ProtocolError::ControlFrameTooLong,
    )
    .await;
}

#[tokio::test]
async fn continuation_without_a_start_closes_with_1002() {
    fails_with(
        &masked(FIN | CONTINUATION, b"orphan"),
        1002,
        ProtocolError::UnexpectedContinuation,
    )
    .await;
}

#[tokio::test]
async fn new_message_inside_a_fragmented_one_closes_with_1002() {
    let wire = [masked(TEXT, b"first"), masked(FIN | BINARY, b"second")].concat();
    fails_with(&wire, 1002, ProtocolError::ExpectedContinuation).await;
}

#[tokio::test]
async fn close_codes_that_may_not_be_sent_close_with_1002() {
    for code in [999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000] {
        fails_with(
            &masked(FIN | CLOSE, &close_body(code, "")),
            1002,
            ProtocolError::InvalidCloseCode,
        )
        .await;
    }
}

#[tokio::test]
async fn one_byte_close_payload_closes_with_1002() {
    fails_with(
        &masked(FIN | CLOSE, &[0x03]),
        1002,
        ProtocolError::InvalidCloseCode,
    )
    .await;
}

#[tokio::test]
async fn length_with_the_top_bit_set_closes_with_1002() {
    let mut wire = masked_header(FIN | BINARY, 0x1_0000);
    wire[2] = 0x80; // the 64-bit length now starts with its most significant bit
    fails_with(&wire, 1002, ProtocolError::InvalidLength).await;
}

// --- Handler panics: 1011 ---

#[tokio::test]
async fn panic_in_message_closes_with_1011() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        events.open().await;
        send(&mut client, Msg::text("panic")).await;

        match recv(&mut client).await {
            Msg::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1011),
            other => panic!("expected close 1011, got {other:?}"),
        }
        expect_end(&mut client).await;
        match events.error().await {
            Error::HandlerPanicked(message) => {
                assert!(message.contains("asked `message` to panic"), "{message}")
            }
            other => panic!("expected HandlerPanicked, got {other:?}"),
        }
        assert_eq!(events.close().await.0, 1011);
        events.assert_silent(Duration::from_millis(200)).await;
    })
    .await;
}

/// Panics in `open`; reports what `error` and `close` see.
struct PanicsInOpen {
    seen: mpsc::UnboundedSender<String>,
}

impl Handler for PanicsInOpen {
    type Data = ();

    async fn open(&self, _: &WebSocket) {
        panic!("no welcome today");
    }

    async fn error(&self, _: &WebSocket, error: Error) {
        let _ = self.seen.send(format!("error: {error}"));
    }

    async fn close(&self, _: &WebSocket, code: u16, _: &str) {
        let _ = self.seen.send(format!("close: {code}"));
    }
}

#[tokio::test]
async fn panic_in_open_closes_with_1011() {
    within(WAIT, async {
        let (seen, mut calls) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/", get(accept))
            .layer(WebSocketLayer::new(PanicsInOpen { seen }));
        let mut raw = RawWs::connect(serve(app).await).await;

        assert_eq!(raw.close_frame().await.code, 1011);
        raw.expect_eof().await;
        let error = wait("error", calls.recv()).await.unwrap();
        assert!(error.contains("no welcome today"), "{error}");
        assert_eq!(wait("close", calls.recv()).await.unwrap(), "close: 1011");
    })
    .await;
}
