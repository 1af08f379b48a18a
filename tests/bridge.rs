//! The hub's seam to other hubs ([`wshub::Bridge`]), exercised by a test
//! double: an in-process "bus" joining two servers' hubs the way a Redis
//! bridge would, forwarding a publish only to a hub that has the topic open.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::routing::get;
use common::*;
use tokio::sync::mpsc;
use wshub::{Bridge, Handler, Hub, Message, Upgrade, WebSocket, WebSocketLayer};

/// What one hub told its bridge, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Told {
    Opened(String),
    Closed(String),
    Forward(String, String),
}

/// One node's end of the bus: records what its hub says, tracks which
/// topics are open here, and queues forwards for the other node (never
/// calling into a hub from inside the hub's call, as `Bridge` asks).
struct Node {
    told: Mutex<Vec<Told>>,
    open: Mutex<HashSet<String>>,
    peer: OnceLock<Arc<Node>>,
    outgoing: mpsc::UnboundedSender<(String, Message)>,
}

impl Bridge for Node {
    fn topic_opened(&self, topic: &str) {
        self.told.lock().unwrap().push(Told::Opened(topic.into()));
        assert!(
            self.open.lock().unwrap().insert(topic.into()),
            "opened twice"
        );
    }

    fn topic_closed(&self, topic: &str) {
        self.told.lock().unwrap().push(Told::Closed(topic.into()));
        assert!(self.open.lock().unwrap().remove(topic), "closed unopened");
    }

    fn forward(&self, topic: &str, msg: &Message, _compress: bool) {
        let text = msg.as_text().unwrap_or_default().to_owned();
        self.told
            .lock()
            .unwrap()
            .push(Told::Forward(topic.into(), text));
        let peer = self.peer.get().expect("bus wired");
        if peer.open.lock().unwrap().contains(topic) {
            let _ = self.outgoing.send((topic.into(), msg.clone()));
        }
    }
}

impl Node {
    fn told(&self) -> Vec<Told> {
        self.told.lock().unwrap().clone()
    }
}

/// Two bridged hubs; a task per direction delivers with `publish_local`.
fn bus() -> (Hub, Arc<Node>, Hub, Arc<Node>) {
    let (a_out, mut to_b) = mpsc::unbounded_channel::<(String, Message)>();
    let (b_out, mut to_a) = mpsc::unbounded_channel::<(String, Message)>();
    let node = |outgoing| {
        Arc::new(Node {
            told: Mutex::default(),
            open: Mutex::default(),
            peer: OnceLock::new(),
            outgoing,
        })
    };
    let (a, b) = (node(a_out), node(b_out));
    let _ = a.peer.set(Arc::clone(&b));
    let _ = b.peer.set(Arc::clone(&a));
    let hub_a = Hub::bridged(Arc::clone(&a) as Arc<dyn Bridge>);
    let hub_b = Hub::bridged(Arc::clone(&b) as Arc<dyn Bridge>);
    let deliver_b = hub_b.clone();
    tokio::spawn(async move {
        while let Some((topic, msg)) = to_b.recv().await {
            deliver_b.publish_local(&topic, msg);
        }
    });
    let deliver_a = hub_a.clone();
    tokio::spawn(async move {
        while let Some((topic, msg)) = to_a.recv().await {
            deliver_a.publish_local(&topic, msg);
        }
    });
    (hub_a, a, hub_b, b)
}

/// Joins the topics of `?topics=`; `pub TOPIC TEXT` publishes (sender
/// excluded), `leave TOPIC` unsubscribes.
struct Chat;

impl Handler for Chat {
    type Data = Vec<String>;

    async fn open(&self, ws: &WebSocket<Vec<String>>) {
        for topic in ws.data() {
            ws.subscribe(topic);
        }
        ws.send("ready");
    }

    async fn message(&self, ws: &WebSocket<Vec<String>>, msg: Message) {
        let text = msg.as_text().unwrap_or_default();
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("pub"), Some(topic), Some(text)) => {
                ws.publish(topic, text.to_owned());
            }
            (Some("leave"), Some(topic), _) => {
                ws.unsubscribe(topic);
                ws.send("left");
            }
            _ => {}
        }
    }
}

async fn server(hub: Hub) -> std::net::SocketAddr {
    let route = |up: Upgrade<Vec<String>>, q: axum::extract::Query<HashMap<String, String>>| async move {
        let topics = q.get("topics").map_or_else(Vec::new, |t| {
            t.split(',').map(str::to_owned).collect::<Vec<_>>()
        });
        up.accept(topics)
    };
    let layer = WebSocketLayer::new(Chat).with_hub(hub);
    serve(Router::new().route("/", get(route)).layer(layer)).await
}

async fn join(addr: std::net::SocketAddr, topics: &str) -> Client {
    let mut client = connect_with(format!("ws://{addr}/?topics={topics}"))
        .await
        .unwrap()
        .0;
    assert_eq!(recv(&mut client).await, Msg::text("ready"));
    client
}

#[tokio::test]
async fn publishes_cross_the_bridge_once_and_in_order() {
    let (hub_a, node_a, hub_b, node_b) = bus();
    let (addr_a, addr_b) = (server(hub_a.clone()).await, server(hub_b.clone()).await);
    let mut a1 = join(addr_a, "room").await;
    let mut a2 = join(addr_a, "room").await;
    let mut b1 = join(addr_b, "room").await;

    for i in 0..20 {
        send(&mut a1, Msg::text(format!("pub room a1 says {i}"))).await;
    }
    for i in 0..20 {
        let expected = Msg::text(format!("a1 says {i}"));
        assert_eq!(recv(&mut a2).await, expected, "same node, in order");
        assert_eq!(recv(&mut b1).await, expected, "other node, in order");
    }
    // From the other side, through the hub: everyone on both nodes, the
    // publisher's node first; never back again (publish_local).
    assert_eq!(hub_b.publish("room", "from b's hub"), 1);
    for client in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(recv(client).await, Msg::text("from b's hub"));
    }
    // a1 was excluded from its own messages on both nodes: the next thing
    // it reads is the hub's message above, which it just read. Nothing else.
    send(&mut a1, Msg::text("leave room")).await;
    assert_eq!(recv(&mut a1).await, Msg::text("left"));

    let forwards_a = node_a
        .told()
        .into_iter()
        .filter(|t| matches!(t, Told::Forward(..)))
        .count();
    assert_eq!(
        forwards_a, 20,
        "node a forwarded its 20 publishes, once each"
    );
    assert_eq!(
        node_b.told(),
        [
            Told::Opened("room".into()),
            Told::Forward("room".into(), "from b's hub".into()),
        ],
        "publish_local never comes back to the bridge"
    );
    assert_eq!(hub_a.subscriber_count("room"), 1, "counts stay local");
    assert_eq!(hub_b.subscriber_count("room"), 1);
}

#[tokio::test]
async fn the_bridge_hears_first_and_last_subscribers_only() {
    let (hub_a, node_a, _hub_b, _node_b) = bus();
    let addr = server(hub_a.clone()).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(join(addr, "room,lobby").await);
    }
    for client in &mut clients[..4] {
        send(client, Msg::text("leave room")).await;
        assert_eq!(recv(client).await, Msg::text("left"));
    }
    assert_eq!(
        node_a.told(),
        [Told::Opened("room".into()), Told::Opened("lobby".into())],
        "one opening per topic, no closing while a subscriber is left"
    );
    // The last subscriber of both topics disconnects.
    let mut last = clients.pop().unwrap();
    send(&mut last, Msg::text("leave room")).await;
    assert_eq!(recv(&mut last).await, Msg::text("left"));
    drop(clients);
    drop(last);
    wait("lobby to close", async {
        while hub_a.topics() != Vec::<String>::new() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        node_a.told(),
        [
            Told::Opened("room".into()),
            Told::Opened("lobby".into()),
            Told::Closed("room".into()),
            Told::Closed("lobby".into()),
        ]
    );
}
