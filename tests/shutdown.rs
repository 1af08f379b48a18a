//! Graceful shutdown: `Hub::shutdown` closes every socket with 1001 after
//! what was queued to it, runs every `close` handler, and ends within its
//! grace period even when peers never answer; `wshub::serve` stops with it.

mod common;

use std::future::IntoFuture as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::*;
use tokio::net::TcpListener;
use wshub::{Handler, Message, Upgrade, WebSocket, WebSocketLayer};

/// Counts `close` calls and remembers their codes.
#[derive(Default)]
struct Counting {
    closed: AtomicUsize,
    codes: std::sync::Mutex<Vec<u16>>,
}

struct Room(Arc<Counting>);

impl Handler for Room {
    type Data = ();

    async fn open(&self, ws: &WebSocket) {
        ws.subscribe("room");
        ws.send("ready");
    }

    async fn message(&self, ws: &WebSocket, msg: Message) {
        ws.send(msg);
    }

    async fn close(&self, _ws: &WebSocket, code: u16, _reason: &str) {
        // A slow close handler: shutdown must wait for it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.0.codes.lock().unwrap().push(code);
        self.0.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn router(layer: WebSocketLayer<Room>) -> Router {
    Router::new()
        .route("/", get(|up: Upgrade| async move { up.accept(()) }))
        .layer(layer)
}

#[tokio::test]
async fn shutdown_delivers_what_was_queued_then_closes_every_socket_with_1001() {
    within(WAIT, async {
        let counting = Arc::new(Counting::default());
        let layer = WebSocketLayer::new(Room(Arc::clone(&counting)));
        let hub = layer.hub();
        let addr = serve(router(layer)).await;
        let mut clients = Vec::new();
        for _ in 0..20 {
            let mut client = connect(addr).await;
            assert!(matches!(recv(&mut client).await, Msg::Text(t) if t.as_str() == "ready"));
            clients.push(client);
        }
        for i in 0..100 {
            hub.publish("room", format!("queued {i}"));
        }
        let started = Instant::now();
        let shutdown = tokio::spawn({
            let hub = hub.clone();
            async move { hub.shutdown(Duration::from_secs(5)).await }
        });
        for client in &mut clients {
            for i in 0..100 {
                match recv(client).await {
                    Msg::Text(t) => assert_eq!(t.as_str(), format!("queued {i}")),
                    other => panic!("expected queued message {i}, got {other:?}"),
                }
            }
            match recv(client).await {
                Msg::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
                other => panic!("expected close 1001, got {other:?}"),
            }
        }
        drop(clients);
        shutdown.await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            counting.closed.load(Ordering::SeqCst),
            20,
            "every close handler ran"
        );
        assert!(counting.codes.lock().unwrap().iter().all(|&c| c == 1001));
        assert_eq!(hub.connections(), 0);
        assert!(hub.topics().is_empty());
    })
    .await;
}

/// 1,000 sockets whose peers answer the close: shutdown ends as soon as
/// the last close handler has run, long before its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_of_a_thousand_answering_sockets_does_not_wait_out_the_grace() {
    const SOCKETS: usize = 1000;
    const GRACE: Duration = Duration::from_secs(10);
    testkit::raise_nofile(4 * SOCKETS as u64).unwrap();
    within(Duration::from_secs(60), async {
        let counting = Arc::new(Counting::default());
        let layer = WebSocketLayer::new(Room(Arc::clone(&counting)));
        let hub = layer.hub();
        let addr = serve(router(layer)).await;
        let mut readers = Vec::new();
        for _ in 0..SOCKETS {
            let mut client = connect(addr).await;
            assert!(matches!(recv(&mut client).await, Msg::Text(t) if t.as_str() == "ready"));
            // Reads to the end; tungstenite answers the close on its own.
            readers.push(tokio::spawn(async move {
                let mut code = None;
                while let Some(Ok(msg)) = futures_util::StreamExt::next(&mut client).await {
                    if let Msg::Close(frame) = msg {
                        code = frame.map(|f| u16::from(f.code));
                    }
                }
                code
            }));
        }
        assert_eq!(hub.connections(), SOCKETS);
        let started = Instant::now();
        hub.shutdown(GRACE).await;
        let took = started.elapsed();
        eprintln!("shutdown of {SOCKETS} answering sockets took {took:?}");
        assert!(took < GRACE / 2, "shutdown waited for its grace: {took:?}");
        assert_eq!(counting.closed.load(Ordering::SeqCst), SOCKETS);
        assert_eq!(hub.connections(), 0);
        for reader in readers {
            assert_eq!(reader.await.unwrap(), Some(1001));
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_within_its_grace_period_when_peers_never_answer() {
    within(WAIT, async {
        let counting = Arc::new(Counting::default());
        let layer = WebSocketLayer::new(Room(Arc::clone(&counting)));
        let hub = layer.hub();
        let addr = serve(router(layer)).await;
        // Raw clients that read nothing and never answer the close.
        let mut silent = Vec::new();
        for _ in 0..10 {
            silent.push(RawWs::connect(addr).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(hub.connections(), 10);
        let started = Instant::now();
        hub.shutdown(Duration::from_millis(500)).await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(2500), "shutdown took {took:?}");
        assert_eq!(hub.connections(), 0);
        assert_eq!(
            counting.closed.load(Ordering::SeqCst),
            10,
            "every close handler ran"
        );
        drop(silent);
    })
    .await;
}

#[tokio::test]
async fn sockets_opening_after_shutdown_are_closed_at_once() {
    within(WAIT, async {
        let counting = Arc::new(Counting::default());
        let layer = WebSocketLayer::new(Room(Arc::clone(&counting)));
        let hub = layer.hub();
        let addr = serve(router(layer)).await;
        hub.shutdown(Duration::from_millis(100)).await;
        let mut late = connect(addr).await;
        loop {
            match recv(&mut late).await {
                Msg::Text(_) => continue,
                Msg::Close(Some(frame)) => {
                    assert_eq!(u16::from(frame.code), 1001);
                    break;
                }
                other => panic!("expected close 1001, got {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn serve_with_graceful_shutdown_stops_http_and_websockets() {
    within(WAIT, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let counting = Arc::new(Counting::default());
        let layer = WebSocketLayer::new(Room(Arc::clone(&counting)));
        let hub = layer.hub();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn({
            let hub = hub.clone();
            wshub::serve(listener, router(layer))
                .with_graceful_shutdown(async move {
                    stop_rx.await.ok();
                    hub.shutdown(Duration::from_secs(2)).await;
                })
                .into_future()
        });
        let mut client = connect(addr).await;
        assert!(matches!(recv(&mut client).await, Msg::Text(t) if t.as_str() == "ready"));
        assert_eq!(local_addr(&client).ip(), addr.ip());
        stop_tx.send(()).unwrap();
        match recv(&mut client).await {
            Msg::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
        drop(client);
        server.await.unwrap().unwrap();
        assert_eq!(counting.closed.load(Ordering::SeqCst), 1);
        // The listener is gone.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
}
