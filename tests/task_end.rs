//! What happens to a socket when its task ends in an unusual way: the
//! runtime is dropped under it, or it leaves its last topic with published
//! messages still queued.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use wshub::{Handler, Message, Upgrade, WebSocket, WebSocketLayer};

/// Joins "room" on open and says so; `leave` publishes a last message to the
/// room through the hub (reaching this socket too) and unsubscribes from it
/// in the same pass.
struct Room;

impl Handler for Room {
    type Data = ();

    async fn open(&self, ws: &WebSocket) {
        ws.subscribe("room");
        ws.send("ready");
    }

    async fn message(&self, ws: &WebSocket, msg: Message) {
        if msg.as_text() == Some("leave") {
            for i in 0..3 {
                ws.hub().publish("room", format!("last words {i}"));
            }
            ws.unsubscribe("room");
            ws.send("left");
        }
    }
}

fn app(layer: WebSocketLayer<Room>) -> Router {
    Router::new()
        .route("/", get(|up: Upgrade| async move { up.accept(()) }))
        .layer(layer)
}

/// Dropping the runtime drops every socket's task mid-way, with no close
/// handshake and no `close` handler: the sockets must still leave the hub,
/// their topics and the connection count, so a `Hub::shutdown` on another
/// runtime does not wait out its grace for sockets that are gone.
#[test]
fn a_dropped_runtime_leaves_no_socket_behind() {
    let layer = WebSocketLayer::new(Room);
    let hub = layer.hub();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = server.block_on(serve(app(layer)));
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let held = clients.block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut client = connect(addr).await;
            assert_eq!(recv(&mut client).await, Msg::text("ready"));
            held.push(client);
        }
        held
    });
    assert_eq!(hub.connections(), 3);
    assert_eq!(hub.subscriber_count("room"), 3);

    drop(server);

    assert_eq!(hub.connections(), 0, "every socket unregistered");
    assert!(hub.topics().is_empty(), "no topic keeps a dropped socket");
    clients.block_on(async {
        within(
            Duration::from_secs(1),
            hub.shutdown(Duration::from_secs(30)),
        )
        .await;
    });
    drop(held);
}

/// Messages published to a socket and still queued when it leaves its last
/// topic in the same pass are delivered (Bun lost them: oven-sh/bun#32852).
#[tokio::test]
async fn leaving_the_last_topic_keeps_what_was_published_before() {
    let layer = WebSocketLayer::new(Room);
    let hub = layer.hub();
    let addr = serve(app(layer)).await;
    let mut other = connect(addr).await;
    assert_eq!(recv(&mut other).await, Msg::text("ready"));
    let mut leaver = connect(addr).await;
    assert_eq!(recv(&mut leaver).await, Msg::text("ready"));

    send(&mut leaver, Msg::text("leave")).await;

    for i in 0..3 {
        let expected = Msg::text(format!("last words {i}"));
        assert_eq!(recv(&mut leaver).await, expected, "the leaver's copy");
        assert_eq!(recv(&mut other).await, expected, "the other's copy");
    }
    assert_eq!(recv(&mut leaver).await, Msg::text("left"));
    assert_eq!(hub.subscriber_count("room"), 1);
}
