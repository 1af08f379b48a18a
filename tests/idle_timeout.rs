//! The idle timeout: silent peers are closed with 1001, pinged first when
//! `send_pings` is on, and peers that answer or talk stay open.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use wshub::Config;
use wshub::protocol::Frame;

fn idle(ms: u64, pings: bool) -> Config {
    Config::default()
        .idle_timeout(Duration::from_millis(ms))
        .send_pings(pings)
}

#[tokio::test]
async fn silent_client_is_closed_with_1001_and_the_stream_ends() {
    within(WAIT, async {
        let (addr, _events) = probe_server(idle(300, false)).await;
        let mut raw = RawWs::connect(addr).await;
        let start = Instant::now();

        assert_eq!(raw.close_frame().await.code, 1001);
        let closed = start.elapsed();
        assert!(
            closed >= Duration::from_millis(250) && closed < Duration::from_secs(1),
            "closed after {closed:?}"
        );
        raw.expect_eof().await;
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "ended after {:?}",
            start.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn idle_timeout_reports_the_code_it_sent_to_close() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(idle(300, false)).await;
        let mut client = connect(addr).await;
        events.open().await;

        match recv(&mut client).await {
            Msg::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
        expect_end(&mut client).await;
        // `Handler::close` gets "the code we sent when this side closed".
        assert_eq!(events.close().await.0, 1001);
    })
    .await;
}

#[tokio::test]
async fn silent_client_is_pinged_before_the_timeout() {
    within(WAIT, async {
        let (addr, _events) = probe_server(idle(400, true)).await;
        let mut raw = RawWs::connect(addr).await;
        let start = Instant::now();

        assert_eq!(raw.frame().await, Frame::Ping("".into()));
        let pinged = start.elapsed();
        assert!(
            pinged < Duration::from_millis(400),
            "pinged after {pinged:?}"
        );
        // Still silent: the timeout follows.
        assert_eq!(raw.close_frame().await.code, 1001);
        let closed = start.elapsed();
        assert!(
            closed >= Duration::from_millis(350),
            "closed after {closed:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn client_answering_pings_stays_open_past_several_timeouts() {
    within(WAIT, async {
        let (addr, _events) = probe_server(idle(300, true)).await;
        let mut client = connect(addr).await;
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        let mut pings = 0;
        while let Ok(next) = tokio::time::timeout_at(until, client.next()).await {
            match next {
                Some(Ok(Msg::Ping(_))) => {
                    pings += 1;
                    // Writes tungstenite's automatic pong now.
                    client.flush().await.unwrap();
                }
                other => panic!("expected only pings, got {other:?}"),
            }
        }
        assert!(pings >= 3, "{pings} pings in 1.5 s");
        send(&mut client, Msg::text("still here")).await;
        loop {
            match recv(&mut client).await {
                Msg::Ping(_) => {} // one more may come before the echo
                msg => break assert_eq!(msg, Msg::text("still here")),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn client_traffic_resets_the_idle_timer() {
    within(WAIT, async {
        let (addr, _events) = probe_server(idle(300, false)).await;
        let mut client = connect(addr).await;
        for i in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            send(&mut client, Msg::text(format!("{i}"))).await;
            assert_eq!(recv(&mut client).await, Msg::text(format!("{i}")));
        }
    })
    .await;
}

#[tokio::test]
async fn zero_idle_timeout_never_pings_or_closes() {
    within(WAIT, async {
        let (addr, _events) = probe_server(Config::default().idle_timeout(Duration::ZERO)).await;
        let mut raw = RawWs::connect(addr).await;
        raw.assert_quiet(Duration::from_millis(700)).await;
    })
    .await;
}
