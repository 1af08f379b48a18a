//! A socket's lifetime (`Config::max_lifetime`, uWebSockets' `maxLifetime`)
//! and the idle timeout restarted by what the server sends
//! (`Config::reset_idle_timeout_on_send`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use wshub::Config;
use wshub::protocol::Frame;

/// A busy socket is closed with 1001 "max lifetime" once its lifetime is
/// over, and `Handler::close` hears the same.
#[tokio::test]
async fn a_busy_socket_is_closed_when_its_lifetime_ends() {
    within(WAIT, async {
        let config = Config::default().max_lifetime(Duration::from_millis(400));
        let (addr, mut events) = probe_server(config).await;
        let mut client = connect(addr).await;
        let start = Instant::now();
        events.open().await;
        // Talk every 50 ms: the idle timeout never comes near.
        let mut echoed = 0;
        let close = loop {
            send(&mut client, Msg::text(format!("{echoed}"))).await;
            match recv(&mut client).await {
                Msg::Text(text) => {
                    assert_eq!(text.as_str(), echoed.to_string());
                    echoed += 1;
                }
                Msg::Close(frame) => break frame,
                other => panic!("unexpected {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let closed = start.elapsed();
        let frame = close.expect("a close frame");
        assert_eq!(u16::from(frame.code), 1001);
        assert_eq!(frame.reason.as_str(), "max lifetime");
        // Closed at the end of its lifetime, an eighth of it late at most
        // (the sweeper's pace), plus scheduling.
        assert!(
            closed >= Duration::from_millis(390) && closed < Duration::from_millis(800),
            "closed after {closed:?}"
        );
        assert!(echoed >= 5, "only {echoed} echoes before the close");
        // The echoed messages, each one, then the close.
        for i in 0..echoed {
            assert_eq!(
                events.message().await.as_text(),
                Some(i.to_string().as_str())
            );
        }
        let (code, reason) = events.close().await;
        assert_eq!((code, reason.as_str()), (1001, "max lifetime"));
    })
    .await;
}

/// Without a lifetime, the same busy socket stays open.
#[tokio::test]
async fn without_a_lifetime_a_busy_socket_stays_open() {
    within(WAIT, async {
        let (addr, _events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        for i in 0..16 {
            send(&mut client, Msg::text(format!("{i}"))).await;
            assert_eq!(recv(&mut client).await, Msg::text(format!("{i}")));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// A peer that only listens: with `reset_idle_timeout_on_send`, what the
/// server writes keeps it open past several idle timeouts; without it, the
/// same peer is closed at the timeout.
#[tokio::test]
async fn sends_restart_the_idle_timeout_only_when_asked() {
    within(WAIT, async {
        let idle = |reset| {
            Config::default()
                .idle_timeout(Duration::from_millis(300))
                .send_pings(false)
                .reset_idle_timeout_on_send(reset)
        };
        for reset in [true, false] {
            let (addr, mut events) = probe_server(idle(reset)).await;
            let mut raw = RawWs::connect(addr).await;
            let ws = events.open().await;
            let start = Instant::now();
            let mut heard = 0;
            // The server sends every 100 ms for 1.2 s; the client never writes.
            let outcome = loop {
                if start.elapsed() >= Duration::from_millis(1200) {
                    break None;
                }
                ws.send_text(format!("tick {heard}"));
                match raw.frame().await {
                    Frame::Message(msg) => {
                        assert_eq!(msg.as_text(), Some(format!("tick {heard}").as_str()));
                        heard += 1;
                    }
                    Frame::Close(body) => break Some((body, start.elapsed())),
                    other => panic!("unexpected {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if reset {
                assert!(outcome.is_none(), "closed although sent to: {outcome:?}");
                assert!(heard >= 10, "heard {heard}");
            } else {
                let (body, after) = outcome.expect("closed at the idle timeout");
                assert_eq!(body.code, 1001);
                assert!(
                    after >= Duration::from_millis(250) && after < Duration::from_millis(800),
                    "closed after {after:?}"
                );
            }
        }
    })
    .await;
}
