//! Slow consumers: a subscriber that stops reading is held to its
//! backpressure limit (its sends and publishes are dropped, or it is closed),
//! gets `drain` once it catches up, and never slows the other subscribers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use wshub::{Config, Handler, Hub, SendStatus, Upgrade, WebSocket, WebSocketLayer};

const LIMIT: usize = 1 << 20;
const CHUNK: usize = 16 * 1024;

#[derive(Default)]
struct Seen {
    drains: AtomicUsize,
    dropped: AtomicUsize,
    closes: std::sync::Mutex<Vec<u16>>,
    sockets: std::sync::Mutex<Vec<WebSocket>>,
}

struct Room(Arc<Seen>);

impl Handler for Room {
    type Data = ();

    async fn open(&self, ws: &WebSocket) {
        ws.send("ready");
        ws.subscribe("room");
        self.0.sockets.lock().unwrap().push(ws.clone());
    }

    async fn drain(&self, _ws: &WebSocket) {
        self.0.drains.fetch_add(1, Ordering::SeqCst);
    }

    async fn dropped(&self, _ws: &WebSocket, messages: u32) {
        assert!(messages > 0);
        self.0
            .dropped
            .fetch_add(messages as usize, Ordering::SeqCst);
    }

    async fn close(&self, _ws: &WebSocket, code: u16, _reason: &str) {
        self.0.closes.lock().unwrap().push(code);
    }
}

async fn room(config: Config) -> (std::net::SocketAddr, Hub, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let layer = WebSocketLayer::new(Room(Arc::clone(&seen))).config(config);
    let hub = layer.hub();
    let app = Router::new()
        .route("/", get(|up: Upgrade| async move { up.accept(()) }))
        .layer(layer);
    (serve(app).await, hub, seen)
}

/// The room's message of round `round`: its number, over and over. (Made
/// and compared by the standard library's optimized code: a reader that
/// checks byte by byte in this debug build falls behind, past its limit.)
fn chunk(round: usize) -> Vec<u8> {
    (round as u64).to_be_bytes().repeat(CHUNK / 8)
}

/// A client that reads everything up to "end", checking that the room's
/// messages are every round's, in order; gives the count and the client back.
fn reader(mut client: Client) -> tokio::task::JoinHandle<(usize, Client)> {
    tokio::spawn(async move {
        let mut got = 0;
        loop {
            match recv(&mut client).await {
                Msg::Binary(b) => {
                    assert!(
                        b[..] == chunk(got)[..],
                        "expected round {got}, got {} bytes starting {:?}",
                        b.len(),
                        &b[..b.len().min(8)]
                    );
                    got += 1;
                }
                Msg::Text(t) if t.as_str() == "end" => return (got, client),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
}

/// Publishes `rounds` chunks, pausing when a reader could fall behind so
/// that only the socket that never reads goes over its limit.
async fn publish_rounds(hub: &Hub, rounds: usize) -> Vec<usize> {
    let mut reached = Vec::new();
    for i in 0..rounds {
        reached.push(hub.publish("room", chunk(i)));
        if i % 16 == 15 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    reached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_held_to_its_limit_and_others_get_everything() {
    within(Duration::from_secs(60), async {
        let (addr, hub, seen) = room(Config::default().backpressure_limit(LIMIT)).await;
        let mut fast = Vec::new();
        for _ in 0..2 {
            let mut client = connect(addr).await;
            assert!(matches!(recv(&mut client).await, Msg::Text(t) if t.as_str() == "ready"));
            fast.push(client);
        }
        // The slow one completes the handshake and then reads nothing.
        let mut slow = RawWs::connect(addr).await;
        assert_eq!(slow.message().await.as_text(), Some("ready"));
        let readers: Vec<_> = fast.into_iter().map(reader).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let slow_ws = seen.sockets.lock().unwrap()[2].clone();

        // 48 MiB into the room: far past the slow socket's limit and the
        // kernel's socket buffers.
        let rounds = 3072;
        let reached = publish_rounds(&hub, rounds).await;
        assert_eq!(
            hub.publish_with("room", "end", false),
            reached.last().copied().unwrap_or(0)
        );
        let mut counts = Vec::new();
        let mut clients = Vec::new();
        for r in readers {
            let (count, client) = r.await.unwrap();
            counts.push(count);
            clients.push(client);
        }
        assert_eq!(counts, [rounds, rounds], "the readers got every message");
        // The slow socket was skipped once over its limit, and its queue
        // stayed bounded (the limit, plus at most one shared batch).
        assert_eq!(reached[0], 3);
        assert_eq!(*reached.last().unwrap(), 2, "the slow socket is skipped");
        assert!(
            slow_ws.buffered_amount() <= LIMIT + 128 * 1024,
            "{}",
            slow_ws.buffered_amount()
        );
        assert_eq!(slow_ws.send(vec![0u8; 10]), SendStatus::Dropped);

        // Reading again drains its queue, and `drain` runs once it is empty.
        assert_eq!(seen.drains.load(Ordering::SeqCst), 0);
        let mut drained = 0usize;
        while seen.drains.load(Ordering::SeqCst) == 0 {
            let frame = tokio::time::timeout(Duration::from_millis(500), slow.frame()).await;
            match frame {
                Ok(_) => drained += 1,
                Err(_) => break,
            }
        }
        eventually_true(|| seen.drains.load(Ordering::SeqCst) == 1).await;
        assert!(drained > 0);
        assert!(matches!(slow_ws.send(vec![0u8; 10]), SendStatus::Sent(_)));
    })
    .await;
}

/// Drops are never silent: every send and every publish dropped for the
/// limit is counted to `Handler::dropped`, while the peer still reads
/// nothing.
#[tokio::test]
async fn every_dropped_send_and_publish_reaches_the_handler() {
    within(WAIT, async {
        let (addr, hub, seen) = room(Config::default().backpressure_limit(64 * 1024)).await;
        let mut slow = RawWs::connect(addr).await;
        assert_eq!(slow.message().await.as_text(), Some("ready"));
        eventually_true(|| seen.sockets.lock().unwrap().len() == 1).await;
        let ws = seen.sockets.lock().unwrap()[0].clone();
        // Past the kernel's buffers and the limit: ten sends dropped.
        let (mut sent, mut dropped) = (0, 0);
        while dropped < 10 {
            match ws.send(chunk(sent)) {
                SendStatus::Dropped => dropped += 1,
                _ => sent += 1,
            }
            if sent % 16 == 15 {
                tokio::task::yield_now().await;
            }
            assert!(sent < 100_000, "never over the limit");
        }
        // Publishes to its room are dropped for it too (it is the only
        // subscriber: they reach no one).
        for i in 0..5 {
            assert_eq!(hub.publish("room", chunk(i)), 0);
        }
        eventually_true(|| seen.dropped.load(Ordering::SeqCst) == 15).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            seen.dropped.load(Ordering::SeqCst),
            15,
            "no more than dropped"
        );
    })
    .await;
}

/// `publish_counted` tells each subscriber's fate: a reader gets it at
/// once, a socket whose stream is full gets it behind backpressure, one
/// over its limit not at all; for small messages (the shared batch) and
/// large ones alike.
#[tokio::test]
async fn a_counted_publish_tells_sent_behind_backpressure_and_dropped_apart() {
    within(WAIT, async {
        let (addr, hub, seen) = room(Config::default().backpressure_limit(LIMIT)).await;
        let mut reader = connect(addr).await;
        assert!(matches!(recv(&mut reader).await, Msg::Text(t) if t.as_str() == "ready"));
        let mut full = RawWs::connect(addr).await;
        assert_eq!(full.message().await.as_text(), Some("ready"));
        let mut over = RawWs::connect(addr).await;
        assert_eq!(over.message().await.as_text(), Some("ready"));
        eventually_true(|| seen.sockets.lock().unwrap().len() == 3).await;
        let (full_ws, over_ws) = {
            let sockets = seen.sockets.lock().unwrap();
            (sockets[1].clone(), sockets[2].clone())
        };
        // Neither reads. `full` is sent to until its stream takes no more,
        // with its queue still under the limit; `over` past the limit.
        let fill = |ws: &WebSocket, until: SendStatus| {
            let ws = ws.clone();
            async move {
                for i in 0..100_000 {
                    if ws.send(chunk(i)) == until {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
                panic!("never {until:?}");
            }
        };
        fill(&full_ws, SendStatus::Backpressure).await;
        assert!(full_ws.buffered_amount() < LIMIT);
        fill(&over_ws, SendStatus::Dropped).await;

        let small = hub.publish_counted("room", "small");
        let large = hub.publish_counted("room", vec![7u8; 64 * 1024]);
        for published in [small, large] {
            assert_eq!(
                (published.sent, published.backpressure, published.dropped),
                (1, 1, 1),
                "{published:?}"
            );
            assert_eq!(published.reached(), 2);
        }
        // What the reader got, in order.
        assert_eq!(recv(&mut reader).await, Msg::text("small"));
        assert_eq!(recv(&mut reader).await, Msg::binary(vec![7u8; 64 * 1024]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_on_backpressure_limit_closes_the_slow_reader_with_1008() {
    within(Duration::from_secs(60), async {
        let config = Config::default()
            .backpressure_limit(LIMIT)
            .close_on_backpressure_limit(true);
        let (addr, hub, seen) = room(config).await;
        let mut fast = connect(addr).await;
        assert!(matches!(recv(&mut fast).await, Msg::Text(t) if t.as_str() == "ready"));
        let mut slow = RawWs::connect(addr).await;
        assert_eq!(slow.message().await.as_text(), Some("ready"));
        let reader = reader(fast);
        let rounds = 3072;
        publish_rounds(&hub, rounds).await;
        hub.publish_with("room", "end", false);
        let (count, _client) = reader.await.unwrap();
        assert_eq!(count, rounds, "the reader got every message");
        // The slow socket's queue ends with a close frame: read up to it.
        let code = loop {
            match tokio::time::timeout(Duration::from_secs(10), slow.frame()).await {
                Ok(wshub::protocol::Frame::Close(body)) => break body.code,
                Ok(_) => continue,
                Err(_) => panic!("no close frame"),
            }
        };
        assert_eq!(code, 1008);
        eventually_true(|| seen.closes.lock().unwrap().contains(&1008)).await;
        assert_eq!(hub.subscriber_count("room"), 1);
    })
    .await;
}

async fn eventually_true(mut check: impl FnMut() -> bool) {
    wait("the condition", async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
