//! Pings and pongs both ways, and the handler's `ping` / `pong` calls.

mod common;

use common::*;
use futures_util::SinkExt as _;
use wshub::protocol::Frame;
use wshub::{Config, SendStatus};

#[tokio::test]
async fn client_ping_gets_a_pong_with_the_same_payload() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        send(&mut client, Msg::Ping("are you there?".into())).await;

        assert_eq!(recv(&mut client).await, Msg::Pong("are you there?".into()));
        assert_eq!(events.ping().await, "are you there?");
    })
    .await;
}

#[tokio::test]
async fn empty_and_125_byte_pings_are_answered_on_the_wire() {
    within(WAIT, async {
        let (addr, _events) = probe_server(Config::default()).await;
        let mut raw = RawWs::connect(addr).await;
        let longest = [b'p'; 125];
        raw.write(&[masked(FIN | PING, b""), masked(FIN | PING, &longest)].concat())
            .await;

        assert_eq!(raw.frame().await, Frame::Pong("".into()));
        assert_eq!(raw.frame().await, Frame::Pong(longest.to_vec().into()));
    })
    .await;
}

#[tokio::test]
async fn server_ping_reaches_the_client_and_its_pong_reaches_the_handler() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;

        assert_eq!(ws.ping("hello"), SendStatus::Sent(7));
        assert_eq!(recv(&mut client).await, Msg::Ping("hello".into()));
        // tokio-tungstenite queued its automatic pong; flushing writes it.
        wait("the pong to be written", client.flush())
            .await
            .unwrap();
        assert_eq!(events.pong().await, "hello");
    })
    .await;
}

#[tokio::test]
async fn server_ping_payload_is_cut_to_125_bytes() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;

        assert_eq!(ws.ping(vec![b'x'; 200]), SendStatus::Sent(127));
        assert_eq!(recv(&mut client).await, Msg::Ping(vec![b'x'; 125].into()));
    })
    .await;
}

#[tokio::test]
async fn unsolicited_pong_reaches_the_client_and_a_client_pong_reaches_the_handler() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;

        ws.pong("heartbeat");
        assert_eq!(recv(&mut client).await, Msg::Pong("heartbeat".into()));

        send(&mut client, Msg::Pong("unsolicited".into())).await;
        assert_eq!(events.pong().await, "unsolicited");
    })
    .await;
}

/// A peer that floods pings and never reads cannot grow the server's queue
/// of pongs past the backpressure limit: past it, pongs are dropped (a peer
/// that reads nothing needs none; RFC 6455 §5.5.3 asks a pong for the most
/// recent ping only), and the socket still works once it reads again.
#[tokio::test]
async fn a_ping_flood_from_a_peer_that_never_reads_stays_within_the_limit() {
    const LIMIT: usize = 64 * 1024;
    const PINGS: usize = 100_000;
    within(WAIT * 4, async {
        let config = Config::default().backpressure_limit(LIMIT);
        let (addr, mut events) = probe_server(config).await;
        let mut raw = RawWs::connect(addr).await;
        let ws = events.open().await;
        let ping = masked(FIN | PING, &[b'p'; 125]);
        let flood: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * PINGS)
            .collect();
        raw.write(&flood).await;
        raw.write(&masked(FIN | TEXT, b"done")).await;
        // The server has read every ping once the message after them arrives.
        assert_eq!(events.message().await.as_text(), Some("done"));
        let buffered = ws.buffered_amount();
        assert!(
            buffered <= LIMIT + 127,
            "{buffered} bytes of pongs queued for a peer that reads nothing (limit {LIMIT})"
        );
        // Reading again: the queued pongs (and the echo of "done", if it
        // fit) until the queue is back under the limit, then everything is
        // answered as usual.
        let mut pongs = 0;
        let next_frame = async |raw: &mut RawWs, pongs: &mut usize| loop {
            match raw.frame().await {
                Frame::Pong(_) => *pongs += 1,
                Frame::Message(msg) if msg.as_text() == Some("done") => {}
                Frame::Message(msg) => return msg,
                other => panic!("expected pongs or a message, got {other:?}"),
            }
        };
        tokio::select! {
            () = events.drain() => {}
            msg = next_frame(&mut raw, &mut pongs) => panic!("unexpected {msg:?}"),
        }
        raw.write(&masked(FIN | TEXT, b"still here")).await;
        let echo = next_frame(&mut raw, &mut pongs).await;
        assert_eq!(echo.as_text(), Some("still here"));
        assert!(pongs < PINGS, "every one of {PINGS} pings was answered");
    })
    .await;
}
