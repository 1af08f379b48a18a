//! A hot room on a runtime with more worker threads than cores: eight
//! socket loops wake one another for every round of publishes, while their
//! own sockets' reads wake them too. A wake-up lost between loops leaves a
//! loop asleep with subscribers to write to, and the round never ends.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{BINARY, FIN, RawWs, masked};
use wshub::{Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer};

const WORKERS: usize = 8;
const CLIENTS: usize = 32;
const BURST: usize = 50;
const PAYLOAD: &[u8; 16] = b"a hot room here!";
/// A server frame: 2 header bytes and the payload.
const SERVER_FRAME: usize = 2 + PAYLOAD.len();
/// How long the rounds go on. A round takes milliseconds: one that gets no
/// byte for `common::WAIT` (10 s) has stalled, and the read fails.
const RUN: Duration = Duration::from_secs(4);

struct Room;

impl Handler for Room {
    type Data = ();

    async fn open(&self, ws: &WebSocket<()>) {
        ws.subscribe("room");
        ws.send_binary(&b"ready"[..]);
    }

    async fn message(&self, ws: &WebSocket<()>, msg: Message) {
        ws.publish("room", msg);
    }
}

#[test]
fn a_hot_room_on_eight_loops_never_stalls() {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    let layer = WebSocketLayer::new(Room).config(Config::default().publish_to_self(true));
    let app = Router::new()
        .route("/", get(|up: Upgrade<()>| async move { up.accept(()) }))
        .layer(layer);
    // wshub's own server: its plain TCP sockets run on socket loops.
    let addr = server.block_on(common::serve_wshub(app));
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rounds = clients.block_on(rounds(addr));
    drop(server);
    assert!(rounds > 0);
}

/// Runs lockstep rounds for `RUN`: every client sends a burst, then every
/// client reads the whole round (each burst from each client).
async fn rounds(addr: SocketAddr) -> u64 {
    let mut sockets = Vec::new();
    for _ in 0..CLIENTS {
        let mut ws = RawWs::connect(addr).await;
        // Subscribed once its "ready" arrives.
        assert_eq!(ws.message().await, Message::binary(&b"ready"[..]));
        sockets.push(ws);
    }
    let burst = masked(FIN | BINARY, PAYLOAD).repeat(BURST);
    let per_round = CLIENTS * BURST * SERVER_FRAME;
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < RUN {
        for ws in &mut sockets {
            ws.write(&burst).await;
        }
        for (index, ws) in sockets.iter_mut().enumerate() {
            // Fails on a stall (no byte for 10 s) or a closed connection.
            ws.bytes(per_round).await;
            // Nothing past the round: the next one starts with our next burst.
            assert_eq!(
                ws.buffered(),
                0,
                "client {index} got more than round {rounds}"
            );
        }
        rounds += 1;
    }
    rounds
}
