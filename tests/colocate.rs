//! `Upgrade::colocate`: the sockets of one key share a socket loop. Where
//! they run is for the event loop's unit tests to check; here, through the
//! public API and on a runtime of several threads, colocated rooms deliver
//! every message to their own members and none to the others', each
//! sender's in its order, and a room that empties and fills again works as
//! before. The same runs behind `axum::serve`, whose sockets have no loop
//! (the key changes nothing there).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::http::Uri;
use axum::routing::any;
use common::{Client, recv, send};
use tokio_tungstenite::tungstenite::Message as Msg;
use wshub::{Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer};

const ROOMS: [&str; 3] = ["north", "south", "east"];
const MEMBERS: usize = 5;
const SENDS: usize = 20;

/// Everyone joins the room of their URL (`/?room=NAME`) and publishes every
/// message to it, themselves included.
struct Rooms;

impl Handler for Rooms {
    type Data = String;

    async fn open(&self, ws: &WebSocket<String>) {
        ws.subscribe(ws.data());
        ws.send("ready");
    }

    async fn message(&self, ws: &WebSocket<String>, msg: Message) {
        ws.publish(ws.data(), msg);
    }
}

fn app() -> Router {
    Router::new()
        .route(
            "/",
            any(|up: Upgrade<String>, uri: Uri| async move {
                let room = uri
                    .query()
                    .and_then(|q| q.strip_prefix("room="))
                    .unwrap_or_default()
                    .to_owned();
                up.colocate(&room).accept(room)
            }),
        )
        .layer(WebSocketLayer::new(Rooms).config(Config::default().publish_to_self(true)))
}

/// Every room's members send `SENDS` messages each (`room/member/n`), then
/// each member reads what its room published: all of it, in each sender's
/// order, nothing from another room. Then everyone leaves.
async fn rooms_talk(addr: SocketAddr) {
    let mut members: Vec<(&str, usize, Client)> = Vec::new();
    for member in 0..MEMBERS {
        for room in ROOMS {
            let (mut client, _) = common::connect_with(format!("ws://{addr}/?room={room}"))
                .await
                .unwrap();
            assert_eq!(recv(&mut client).await, Msg::text("ready"));
            members.push((room, member, client));
        }
    }
    for n in 0..SENDS {
        for (room, member, client) in &mut members {
            send(client, Msg::text(format!("{room}/{member}/{n}"))).await;
        }
    }
    for (room, member, client) in &mut members {
        // The next message expected from each member of the room.
        let mut next: HashMap<usize, usize> = (0..MEMBERS).map(|m| (m, 0)).collect();
        for _ in 0..MEMBERS * SENDS {
            let text = match recv(client).await {
                Msg::Text(text) => text.to_string(),
                other => panic!("{room}/{member}: got {other:?}"),
            };
            let mut parts = text.split('/');
            let (from_room, from, n) = (
                parts.next().unwrap(),
                parts.next().unwrap().parse::<usize>().unwrap(),
                parts.next().unwrap().parse::<usize>().unwrap(),
            );
            assert_eq!(
                from_room, *room,
                "{room}/{member} got {text:?} from another room"
            );
            let expected = next.get_mut(&from).unwrap();
            assert_eq!(
                n, *expected,
                "{room}/{member}: {from}'s messages out of order"
            );
            *expected += 1;
        }
        assert!(
            next.values().all(|&n| n == SENDS),
            "{room}/{member}: {next:?}"
        );
    }
    for (_, _, client) in &mut members {
        client.close(None).await.unwrap();
        assert!(
            matches!(recv(client).await, Msg::Close(_)),
            "the close answered"
        );
        common::expect_end(client).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn colocated_rooms_on_socket_loops_keep_to_themselves() {
    let addr = common::serve_wshub(app()).await;
    rooms_talk(addr).await;
    // The rooms left their loops with their last members: they form again.
    rooms_talk(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn colocating_changes_nothing_behind_axum_serve() {
    let addr = common::serve(app()).await;
    rooms_talk(addr).await;
}
