//! The close handshake both ways, the codes each side sees, and `close`
//! running exactly once however a socket ends.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use wshub::Config;

/// Closes from a tokio-tungstenite client; returns the code the server echoed.
async fn client_closes(code: u16, reason: &'static str) -> (u16, (u16, String)) {
    let (addr, mut events) = probe_server(Config::default()).await;
    let mut client = connect(addr).await;
    events.open().await;
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    wait("the close to be sent", client.close(Some(frame)))
        .await
        .unwrap();
    let echoed = match recv(&mut client).await {
        Msg::Close(Some(frame)) => u16::from(frame.code),
        other => panic!("expected a close frame with a code, got {other:?}"),
    };
    expect_end(&mut client).await;
    (echoed, events.close().await)
}

#[tokio::test]
async fn client_close_1000_is_echoed_and_reported_with_its_reason() {
    within(WAIT, async {
        let (echoed, seen) = client_closes(1000, "bye").await;
        assert_eq!(echoed, 1000);
        assert_eq!(seen, (1000, "bye".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn client_close_4001_is_echoed_and_reported() {
    within(WAIT, async {
        let (echoed, seen) = client_closes(4001, "").await;
        assert_eq!(echoed, 4001);
        assert_eq!(seen, (4001, String::new()));
    })
    .await;
}

#[tokio::test]
async fn close_without_a_code_is_echoed_empty_and_reported_as_1005() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await;
        raw.write(&masked(FIN | CLOSE, b"")).await;

        assert_eq!(raw.bytes(2).await, [FIN | CLOSE, 0], "an empty close frame");
        raw.expect_eof().await;
        assert_eq!(events.close().await, (1005, String::new()));
    })
    .await;
}

#[tokio::test]
async fn server_close_reaches_the_client_which_answers_and_the_stream_ends() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        events.open().await.close(4000, "done");

        match recv(&mut client).await {
            Msg::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 4000);
                assert_eq!(frame.reason, "done");
            }
            other => panic!("expected close 4000, got {other:?}"),
        }
        expect_end(&mut client).await;
        assert_eq!(events.close().await, (4000, "done".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn server_close_keeps_tcp_open_until_the_client_answers() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await.close(4000, "done");

        let close = raw.close_frame().await;
        assert_eq!((close.code, close.reason.as_str()), (4000, "done"));
        raw.assert_quiet(Duration::from_millis(200)).await;
        raw.write(&masked(FIN | CLOSE, &close_body(4000, ""))).await;
        raw.expect_eof().await;
        assert_eq!(events.close().await, (4000, "done".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn unanswered_server_close_ends_the_connection_after_close_timeout() {
    within(WAIT, async {
        let config = Config::default().close_timeout(Duration::from_millis(300));
        let (addr, mut events) = probe_server(config).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await.close(4000, "done");

        let start = Instant::now();
        assert_eq!(raw.close_frame().await.code, 4000);
        raw.expect_eof().await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
            "ended after {waited:?}"
        );
        assert_eq!(events.close().await, (4000, "done".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn messages_after_the_server_close_are_not_delivered() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await.close(4000, "done");
        assert_eq!(raw.close_frame().await.code, 4000);

        // Sent before the client answers the close: read and dropped.
        raw.write(&masked(FIN | TEXT, b"too late")).await;
        raw.write(&masked(FIN | CLOSE, &close_body(4000, ""))).await;
        raw.expect_eof().await;
        assert_eq!(events.close().await, (4000, "done".to_owned()));
        events.assert_silent(Duration::from_millis(100)).await;
    })
    .await;
}

#[tokio::test]
async fn close_code_that_cannot_be_sent_gives_an_empty_close_frame() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await.close(1005, "no status");

        assert_eq!(raw.bytes(2).await, [FIN | CLOSE, 0]);
    })
    .await;
}

#[tokio::test]
async fn close_reason_is_cut_to_fit_a_control_frame() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        let long = "é".repeat(100); // 200 bytes
        events.open().await.close(4000, &long);

        // The client-role decoder has checked the frame is at most 125 bytes
        // and the reason is UTF-8.
        let close = raw.close_frame().await;
        assert_eq!(close.code, 4000);
        assert!(long.starts_with(&close.reason) && close.reason.len() >= 122);
    })
    .await;
}

#[tokio::test]
async fn abrupt_disconnect_runs_close_once_with_1006() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let raw = RawWs::connect(addr).await;
        events.open().await;
        drop(raw);

        assert_eq!(events.close().await.0, 1006);
        events.assert_silent(Duration::from_millis(300)).await;
    })
    .await;
}

#[tokio::test]
async fn disconnect_in_the_middle_of_a_message_delivers_nothing_and_reports_1006() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await;
        raw.write(&masked(TEXT, b"first half")).await;
        let frame = masked(FIN | CONTINUATION, b"second half");
        raw.write(&frame[..frame.len() - 4]).await;
        drop(raw);

        match events.next().await {
            Event::Close(code, _) => assert_eq!(code, 1006),
            other => panic!("expected close 1006 and nothing before it, got {other:?}"),
        }
        events.assert_silent(Duration::from_millis(100)).await;
    })
    .await;
}

#[tokio::test]
async fn terminate_drops_the_connection_without_a_close_frame() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        events.open().await.terminate();

        raw.expect_eof().await;
        assert_eq!(events.close().await.0, 1006);
    })
    .await;
}

/// Every way a socket can end, one after the other on one server: each
/// socket's `close` runs once, before the next socket opens, and never again.
#[tokio::test]
async fn close_runs_exactly_once_however_the_socket_ends() {
    within(Duration::from_secs(20), async {
        let config = Config::default().close_timeout(Duration::from_millis(200));
        let (addr, mut events) = probe_server(config).await;
        let mut codes = Vec::new();

        // The client closes.
        let mut raw = RawWs::connect(addr).await;
        events.open().await;
        raw.write(&masked(FIN | CLOSE, &close_body(1000, ""))).await;
        assert_eq!(raw.close_frame().await.code, 1000);
        raw.expect_eof().await;
        codes.push(events.close().await.0);

        // The client closes and disconnects without reading the answer.
        let mut raw = RawWs::connect(addr).await;
        events.open().await;
        raw.write(&masked(FIN | CLOSE, &close_body(1001, ""))).await;
        drop(raw);
        codes.push(events.close().await.0);

        // The server closes and the client answers.
        let mut client = connect(addr).await;
        events.open().await.close(4000, "");
        recv(&mut client).await;
        expect_end(&mut client).await;
        codes.push(events.close().await.0);

        // The server closes and the client never answers.
        let mut raw = RawWs::connect(addr).await;
        events.open().await.close(4002, "");
        assert_eq!(raw.close_frame().await.code, 4002);
        raw.expect_eof().await;
        codes.push(events.close().await.0);

        // A protocol error.
        let mut raw = RawWs::connect(addr).await;
        events.open().await;
        raw.write(&unmasked(FIN | TEXT, b"x")).await;
        assert_eq!(raw.close_frame().await.code, 1002);
        events.error().await;
        codes.push(events.close().await.0);

        // A handler panic.
        let mut client = connect(addr).await;
        events.open().await;
        send(&mut client, Msg::text("panic")).await;
        events.error().await;
        codes.push(events.close().await.0);

        // The client vanishes.
        drop(RawWs::connect(addr).await);
        events.open().await;
        codes.push(events.close().await.0);

        // The server terminates.
        let _raw = RawWs::connect(addr).await;
        events.open().await.terminate();
        codes.push(events.close().await.0);

        assert_eq!(codes, [1000, 1001, 4000, 4002, 1002, 1011, 1006, 1006]);
        events.assert_silent(Duration::from_millis(500)).await;
    })
    .await;
}
