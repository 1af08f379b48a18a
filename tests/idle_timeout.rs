//! The idle timeout: silent peers are closed with 1001, pinged first when
//! `send_pings` is on, and peers that answer or talk stay open.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::any;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use wshub::protocol::Frame;
use wshub::{Config, WebSocketLayer};

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

/// `/off` with the idle timeout set to `short` and then disabled (so a
/// setter that ignored `Duration::ZERO` would leave `short`), `/short` with
/// `short`, both on one hub: one sweeper looks at every socket of both.
async fn off_and_short_server(short: Duration) -> SocketAddr {
    let (off, _) = Probe::new();
    let (on, _) = Probe::new();
    let short_layer = WebSocketLayer::new(on).config(idle(short.as_millis() as u64, true));
    let off_layer = WebSocketLayer::new(off)
        .config(idle(short.as_millis() as u64, true).idle_timeout(Duration::ZERO))
        .with_hub(short_layer.hub());
    let app = Router::new()
        .route("/off", any(accept).layer(off_layer))
        .route("/short", any(accept).layer(short_layer));
    serve(app).await
}

/// The disabled socket is compared with siblings on the same hub: a silent
/// one with a 300 ms timeout is pinged and closed, and one that answers its
/// pings keeps the sweeper looking every ~40 ms, while the disabled one
/// hears nothing for six of those timeouts, and is still served after.
///
/// The siblings connect first: the sweeper sets its pace when it wakes, so
/// a short timeout that joins a hub sweeping at the disabled socket's pace
/// (1 s) would wait for that.
#[tokio::test]
async fn zero_idle_timeout_never_pings_or_closes() {
    const SHORT: Duration = Duration::from_millis(300);
    within(WAIT, async {
        let addr = off_and_short_server(SHORT).await;
        let (mut live, _) = connect_with(format!("ws://{addr}/short")).await.unwrap();
        let mut silent = RawWs::connect_to(addr, "/short").await;
        let mut off = RawWs::connect_to(addr, "/off").await;
        let until = tokio::time::Instant::now() + 6 * SHORT;

        let live = tokio::spawn(async move {
            let mut pings = 0;
            while let Ok(next) = tokio::time::timeout_at(until, live.next()).await {
                match next {
                    Some(Ok(Msg::Ping(_))) => {
                        pings += 1;
                        live.flush().await.unwrap(); // tungstenite's pong
                    }
                    other => panic!("expected only pings on /short, got {other:?}"),
                }
            }
            pings
        });
        assert_eq!(silent.frame().await, Frame::Ping("".into()));
        assert_eq!(silent.close_frame().await.code, 1001);

        // Whatever the server sent since the handshake is read at once.
        off.assert_quiet(until - tokio::time::Instant::now()).await;
        let pings = live.await.unwrap();
        assert!(pings >= 4, "{pings} pings on /short in {:?}", 6 * SHORT);
        off.write(&masked(FIN | TEXT, b"still here")).await;
        assert_eq!(off.message().await.as_text(), Some("still here"));
    })
    .await;
}

/// A socket with a short idle timeout that joins a hub whose sweeper paces
/// itself for a long one (another layer on the same hub) is still pinged
/// halfway through its timeout and closed at it: its opening wakes the
/// sweeper instead of waiting out the sweeper's sleep (1 s here).
#[tokio::test]
async fn a_short_timeout_joining_a_slow_sweeper_is_pinged_on_time() {
    within(WAIT, async {
        let (long, _) = Probe::new();
        let (short, _) = Probe::new();
        let long_layer = WebSocketLayer::new(long).config(idle(60_000, true));
        let short_layer = WebSocketLayer::new(short)
            .config(idle(300, true))
            .with_hub(long_layer.hub());
        let app = Router::new()
            .route("/long", any(accept).layer(long_layer))
            .route("/short", any(accept).layer(short_layer));
        let addr = serve(app).await;
        let _long = RawWs::connect_to(addr, "/long").await;
        // The sweeper has made its first pass and sleeps for the long pace.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let mut raw = RawWs::connect_to(addr, "/short").await;
        let start = Instant::now();
        assert_eq!(raw.frame().await, Frame::Ping("".into()));
        let pinged = start.elapsed();
        assert!(
            pinged < Duration::from_millis(300),
            "pinged after {pinged:?}"
        );
        assert_eq!(raw.close_frame().await.code, 1001);
        let closed = start.elapsed();
        assert!(
            closed < Duration::from_millis(600),
            "closed after {closed:?}"
        );
    })
    .await;
}
