//! What the app hears of subscriptions: `Hub::on_subscription` on every
//! join and leave, with the counts before and after; and a socket's topics
//! still readable in `Handler::close`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use common::*;
use tokio::sync::mpsc;
use wshub::{Handler, Hub, Message, SubscriptionChange, Upgrade, WebSocket, WebSocketLayer};

/// Joins the topics of `?topics=a,b` on open and says `ready ID`; takes
/// `sub T` and `unsub T`, answering `ok` or `no`; reports what
/// `subscriptions()` lists in `close`.
struct Rooms(mpsc::UnboundedSender<(u64, Vec<String>)>);

impl Handler for Rooms {
    type Data = Vec<String>;

    async fn open(&self, ws: &WebSocket<Vec<String>>) {
        ws.send(format!("ready {}", ws.id()));
        for topic in ws.data() {
            ws.subscribe(topic);
        }
    }

    async fn message(&self, ws: &WebSocket<Vec<String>>, msg: Message) {
        let text = msg.as_text().unwrap_or_default();
        let done = match text.split_once(' ') {
            Some(("sub", topic)) => ws.subscribe(topic),
            Some(("unsub", topic)) => ws.unsubscribe(topic),
            _ => false,
        };
        ws.send(if done { "ok" } else { "no" });
    }

    async fn close(&self, ws: &WebSocket<Vec<String>>, _code: u16, _reason: &str) {
        let mut topics = ws.subscriptions();
        topics.sort();
        assert!(!ws.unsubscribe("room"), "a closed socket has left already");
        let _ = self.0.send((ws.id(), topics));
    }
}

async fn route(
    up: Upgrade<Vec<String>>,
    Query(q): Query<HashMap<String, String>>,
) -> wshub::Response {
    let topics = q
        .get("topics")
        .map(|t| t.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    up.accept(topics)
}

type Changes = Arc<Mutex<Vec<(String, u64, usize, usize)>>>;

/// A server whose hub records every change, and publishes "first in T"
/// from the hook when T gets its first subscriber.
async fn server() -> (
    std::net::SocketAddr,
    Hub,
    Changes,
    mpsc::UnboundedReceiver<(u64, Vec<String>)>,
) {
    let (closed, closes) = mpsc::unbounded_channel();
    let layer = WebSocketLayer::new(Rooms(closed));
    let hub = layer.hub();
    let changes = Changes::default();
    let (seen, publisher) = (Arc::clone(&changes), hub.clone());
    assert!(hub.on_subscription(move |change: SubscriptionChange<'_>| {
        seen.lock().unwrap().push((
            change.topic.to_owned(),
            change.socket,
            change.before,
            change.after,
        ));
        if (change.before, change.after) == (0, 1) {
            // No lock is held: the hook may publish.
            publisher.publish(change.topic, format!("first in {}", change.topic));
        }
    }));
    assert!(!hub.on_subscription(|_| {}), "one hook per hub");
    let app = Router::new().route("/", get(route)).layer(layer);
    (serve(app).await, hub, changes, closes)
}

async fn join(addr: std::net::SocketAddr, topics: &str) -> (Client, u64) {
    let (mut client, _) = wait(
        "connect",
        tokio_tungstenite::connect_async(format!("ws://{addr}/?topics={topics}")),
    )
    .await
    .unwrap();
    let ready = text(&mut client).await;
    let id = ready.strip_prefix("ready ").unwrap().parse().unwrap();
    (client, id)
}

async fn text(client: &mut Client) -> String {
    match recv(client).await {
        Msg::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn ask(client: &mut Client, command: &str) -> String {
    send(client, Msg::text(command)).await;
    text(client).await
}

fn taken(changes: &Changes) -> Vec<(String, u64, usize, usize)> {
    std::mem::take(&mut *changes.lock().unwrap())
}

fn change(topic: &str, socket: u64, before: usize, after: usize) -> (String, u64, usize, usize) {
    (topic.to_owned(), socket, before, after)
}

#[tokio::test]
async fn every_join_and_leave_reaches_the_hook_with_its_counts() {
    within(WAIT, async {
        let (addr, hub, changes, mut closes) = server().await;

        let (mut a, a_id) = join(addr, "room,lobby").await;
        // Published from the hook on each topic's first subscriber.
        assert_eq!(text(&mut a).await, "first in room");
        assert_eq!(text(&mut a).await, "first in lobby");
        assert_eq!(
            taken(&changes),
            [change("room", a_id, 0, 1), change("lobby", a_id, 0, 1)]
        );

        let (mut b, b_id) = join(addr, "room").await;
        assert_eq!(ask(&mut b, "sub room").await, "no", "already in it");
        assert_eq!(ask(&mut b, "unsub room").await, "ok");
        assert_eq!(ask(&mut b, "unsub room").await, "no");
        assert_eq!(ask(&mut b, "sub room").await, "ok");
        assert_eq!(
            taken(&changes),
            [
                change("room", b_id, 1, 2),
                change("room", b_id, 2, 1),
                change("room", b_id, 1, 2),
            ]
        );

        // Closing leaves every topic, each reported; `close` still lists them.
        a.close(None).await.unwrap();
        let (closed, topics) = wait("close", closes.recv()).await.unwrap();
        assert_eq!(closed, a_id);
        assert_eq!(topics, ["lobby", "room"]);
        assert_eq!(
            taken(&changes),
            [change("room", a_id, 2, 1), change("lobby", a_id, 1, 0)]
        );
        assert_eq!(hub.subscriber_count("room"), 1);
        assert_eq!(hub.subscriber_count("lobby"), 0);

        drop(b);
        let (closed, topics) = wait("close", closes.recv()).await.unwrap();
        assert_eq!((closed, topics), (b_id, vec!["room".to_owned()]));
        assert_eq!(taken(&changes), [change("room", b_id, 1, 0)]);
        assert!(hub.topics().is_empty());
    })
    .await;
}
