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
