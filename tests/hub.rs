//! The pub/sub hub end to end: topics over real sockets, the `Hub`
//! extractor, ordering, concurrency and cleanup.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::routing::{get, post};
use common::*;
use futures_util::StreamExt as _;
use tokio::sync::{Barrier, watch};
use wshub::{Config, Handler, Hub, Message, Upgrade, WebSocket, WebSocketLayer};

/// Subscribes to the topics named in `?topics=a,b`; messages are commands:
/// `pub TOPIC TEXT`, `sub TOPIC`, `unsub TOPIC`, `send-then-pub TOPIC N`.
struct Room;

struct Topics(Vec<String>);

impl Handler for Room {
    type Data = Topics;

    async fn open(&self, ws: &WebSocket<Topics>) {
        // Sent first, yet it leaves only after `open` returns: a client that
        // sees it is subscribed, and sees nothing published before it.
        ws.send("ready");
        for topic in &ws.data().0 {
            ws.subscribe(topic);
        }
    }

    async fn message(&self, ws: &WebSocket<Topics>, msg: Message) {
        let text = msg.as_text().unwrap_or_default();
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("pub"), Some(topic), Some(text)) => {
                let reached = ws.publish(topic, text.to_owned());
                ws.send(format!("reached {reached}"));
            }
            (Some("sub"), Some(topic), _) => {
                ws.subscribe(topic);
                ws.send(format!("subscribed {topic}"));
            }
            (Some("unsub"), Some(topic), _) => {
                ws.unsubscribe(topic);
                ws.send(format!("unsubscribed {topic}"));
            }
            (Some("send-then-pub"), Some(topic), Some(n)) => {
                for i in 0..n.parse().unwrap_or(0) {
                    ws.send(format!("direct {i}"));
                    ws.publish(topic, format!("published {i}"));
                }
            }
            _ => {}
        }
    }
}

async fn ws_route(
    up: Upgrade<Topics>,
    Query(q): Query<HashMap<String, String>>,
) -> wshub::Response {
    let topics = q
        .get("topics")
        .map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    up.accept(Topics(topics))
}

/// `POST /publish?topic=T` publishes its body through the `Hub` extractor.
async fn publish_route(hub: Hub, Query(q): Query<HashMap<String, String>>, body: String) -> String {
    let reached = hub.publish(q.get("topic").map_or("", String::as_str), body);
    reached.to_string()
}

async fn room_server(config: Config) -> (std::net::SocketAddr, Hub) {
    let layer = WebSocketLayer::new(Room).config(config);
    let hub = layer.hub();
    let app = Router::new()
        .route("/", get(ws_route))
        .route("/publish", post(publish_route))
        .layer(layer);
    (serve(app).await, hub)
}

async fn join(addr: std::net::SocketAddr, topics: &str) -> Client {
    let (mut client, _) = wait(
        "connect",
        tokio_tungstenite::connect_async(format!("ws://{addr}/?topics={topics}")),
    )
    .await
    .unwrap();
    assert_eq!(text(&mut client).await, "ready");
    client
}

async fn text(client: &mut Client) -> String {
    match recv(client).await {
        Msg::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn say(client: &mut Client, text: &str) {
    send(client, Msg::text(text)).await;
}

/// Polls `check` until it holds or the wait runs out.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    wait(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_publish_reaches_every_other_subscriber_not_the_sender() {
    within(WAIT, async {
        let (addr, hub) = room_server(Config::default()).await;
        let mut a = join(addr, "room").await;
        let mut b = join(addr, "room").await;
        let mut outsider = join(addr, "").await;
        assert_eq!(hub.subscriber_count("room"), 2);

        say(&mut a, "pub room hello").await;
        assert_eq!(text(&mut a).await, "reached 1");
        assert_eq!(text(&mut b).await, "hello");

        // A socket that is not subscribed may publish too.
        say(&mut outsider, "pub room from outside").await;
        assert_eq!(text(&mut outsider).await, "reached 2");
        assert_eq!(text(&mut a).await, "from outside");
        assert_eq!(text(&mut b).await, "from outside");
    })
    .await;
}

#[tokio::test]
async fn publish_to_self_includes_the_sender() {
    within(WAIT, async {
        let (addr, _hub) = room_server(Config::default().publish_to_self(true)).await;
        let mut a = join(addr, "room").await;
        let mut b = join(addr, "room").await;
        say(&mut a, "pub room both").await;
        assert_eq!(text(&mut a).await, "both");
        assert_eq!(text(&mut a).await, "reached 2");
        assert_eq!(text(&mut b).await, "both");
    })
    .await;
}

#[tokio::test]
async fn the_hub_extractor_and_handle_publish_from_outside_any_socket() {
    within(WAIT, async {
        let (addr, hub) = room_server(Config::default()).await;
        let mut a = join(addr, "news,room").await;
        let mut b = join(addr, "news").await;

        let response = HttpRequest::new("POST", "/publish?topic=news")
            .body("extra! extra!")
            .send(addr)
            .await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "2");
        assert_eq!(text(&mut a).await, "extra! extra!");
        assert_eq!(text(&mut b).await, "extra! extra!");

        assert_eq!(hub.publish("room", "from a timer"), 1);
        assert_eq!(text(&mut a).await, "from a timer");
        assert_eq!(hub.publish("nobody-here", "lost"), 0);
        let mut topics = hub.topics();
        topics.sort();
        assert_eq!(topics, ["news", "room"]);
        assert_eq!(hub.connections(), 2);
    })
    .await;
}

#[tokio::test]
async fn sends_and_publishes_from_one_handler_keep_their_order() {
    within(WAIT, async {
        let (addr, _hub) = room_server(Config::default().publish_to_self(true)).await;
        let mut a = join(addr, "t").await;
        let mut b = join(addr, "t").await;
        say(&mut a, "send-then-pub t 500").await;
        for i in 0..500 {
            assert_eq!(text(&mut a).await, format!("direct {i}"));
            assert_eq!(text(&mut a).await, format!("published {i}"));
            assert_eq!(text(&mut b).await, format!("published {i}"));
        }
    })
    .await;
}

#[tokio::test]
async fn unsubscribing_stops_delivery() {
    within(WAIT, async {
        let (addr, hub) = room_server(Config::default()).await;
        let mut a = join(addr, "t").await;
        let mut b = join(addr, "t").await;
        say(&mut b, "unsub t").await;
        assert_eq!(text(&mut b).await, "unsubscribed t");
        assert_eq!(hub.publish("t", "only a"), 1);
        say(&mut b, "sub u").await;
        assert_eq!(text(&mut b).await, "subscribed u");
        assert_eq!(text(&mut a).await, "only a");
        assert_eq!(hub.subscriber_count("t"), 1);
    })
    .await;
}

/// 10,000 sockets connect, subscribe, and leave (half with a close frame,
/// half by dropping TCP): the hub ends with no topic and no subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connect_subscribe_disconnect_cycles_leave_no_trace() {
    within(Duration::from_secs(240), async {
        let (addr, hub) = room_server(Config::default()).await;
        const CYCLES: usize = 10_000;
        const PARALLEL: usize = 50;
        let mut workers = Vec::new();
        for w in 0..PARALLEL {
            workers.push(tokio::spawn(async move {
                for i in (w..CYCLES).step_by(PARALLEL) {
                    let mut client = join(addr, &format!("all,room-{}", i % 37)).await;
                    if i % 2 == 0 {
                        client.close(None).await.unwrap();
                        while client.next().await.is_some() {}
                    }
                }
            }));
        }
        for worker in workers {
            worker.await.unwrap();
        }
        eventually("every socket to close", || hub.connections() == 0).await;
        assert_eq!(hub.topics(), Vec::<String>::new());
        assert_eq!(hub.subscriber_count("all"), 0);
        assert_eq!(hub.publish("all", "anyone?"), 0);
    })
    .await;
}

/// Publishers on several tasks of the multi-thread runtime, while other
/// sockets subscribe and unsubscribe: sockets subscribed throughout get
/// every message, once, in each publisher's order.
///
/// Publishing is fast and a churn cycle is a handshake and two round trips:
/// left alone, the publishers would be done before the first churner is in.
/// So they start together (a barrier) and move in lockstep with the churn:
/// the churn announces each step on a watch channel right after it sends a
/// subscribe or unsubscribe, every publisher then sends its share of the
/// messages and reports the step done, and only then does the churn read
/// the server's reply and go on. Every step of the churn has publishes racing
/// it, whatever the scheduler does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_with_racing_subscriptions_lose_nothing() {
    const PUBLISHERS: usize = 4;
    const MESSAGES: usize = 500;
    const CYCLES: usize = 40;
    /// Per cycle: joined (subscribed), `unsub` sent, `sub` sent, closed.
    const STEPS: usize = 4 * CYCLES;
    within(Duration::from_secs(60), async {
        let (addr, hub) = room_server(Config::default()).await;
        let mut steady = Vec::new();
        for _ in 0..4 {
            steady.push(join(addr, "t").await);
        }
        let start = Arc::new(Barrier::new(PUBLISHERS + 1));
        let (step_tx, step) = watch::channel(0);
        // How many steps each publisher has done its share of.
        let (done_tx, done) = watch::channel([0; PUBLISHERS]);
        let churn = tokio::spawn({
            let start = Arc::clone(&start);
            let mut done = done.clone();
            async move {
                start.wait().await;
                // Step 0's messages go out before the first churner joins.
                done.wait_for(|d| d.iter().all(|&p| p >= 1)).await.unwrap();
                // Announces step `s` and waits for every publisher's share of it.
                let mut advance = async |s: usize| {
                    step_tx.send_replace(s);
                    done.wait_for(|d| d.iter().all(|&p| p > s)).await.unwrap();
                };
                for cycle in 0..CYCLES {
                    let mut next = [0; PUBLISHERS];
                    let mut c = join(addr, "t").await;
                    advance(4 * cycle + 1).await;
                    say(&mut c, "unsub t").await;
                    advance(4 * cycle + 2).await;
                    reply(&mut c, "unsubscribed t", &mut next).await;
                    say(&mut c, "sub t").await;
                    advance(4 * cycle + 3).await;
                    reply(&mut c, "subscribed t", &mut next).await;
                    c.close(None).await.unwrap();
                    advance(4 * cycle + 4).await;
                }
            }
        });
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let (hub, start, mut step) = (hub.clone(), Arc::clone(&start), step.clone());
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    start.wait().await;
                    // The churn steps this publisher's messages went out in.
                    let mut steps = BTreeSet::new();
                    let mut i = 0;
                    for s in 0..=STEPS {
                        let now = *step.wait_for(|now| *now >= s).await.unwrap();
                        while i < MESSAGES && i * STEPS / MESSAGES == s {
                            hub.publish("t", format!("{p} {i}"));
                            steps.insert(now);
                            i += 1;
                            tokio::task::yield_now().await;
                        }
                        done_tx.send_modify(|d| d[p] = s + 1);
                    }
                    assert_eq!(i, MESSAGES, "publisher {p} sent all its messages");
                    steps
                })
            })
            .collect();
        for publisher in publishers {
            let steps = publisher.await.unwrap();
            assert_eq!(
                steps,
                (0..STEPS).collect::<BTreeSet<_>>(),
                "a publisher's messages went out in every step of the churn, and only then"
            );
        }
        churn.await.unwrap();
        eventually("churners to leave", || hub.subscriber_count("t") == 4).await;

        // Read to the end: every message once, in order, then "end".
        assert_eq!(hub.publish("t", "end"), 4);
        for client in &mut steady {
            let mut next = [0; PUBLISHERS];
            loop {
                let message = text(client).await;
                if message == "end" {
                    break;
                }
                let (p, i) = published(&message);
                assert_eq!(i, next[p], "publisher {p} out of order");
                next[p] += 1;
            }
            assert_eq!(next, [MESSAGES; PUBLISHERS], "messages per publisher");
        }
    })
    .await;
}

/// `"P I"`: message `I` of publisher `P`.
fn published(message: &str) -> (usize, usize) {
    message
        .split_once(' ')
        .and_then(|(p, i)| Some((p.parse().ok()?, i.parse().ok()?)))
        .unwrap_or_else(|| panic!("expected a published message, got {message:?}"))
}

/// Reads up to the reply `want`; what was published before it must follow
/// each publisher's order (with gaps while unsubscribed), from `next` on.
async fn reply(client: &mut Client, want: &str, next: &mut [usize]) {
    loop {
        let message = text(client).await;
        if message == want {
            return;
        }
        let (p, i) = published(&message);
        assert!(i >= next[p], "publisher {p}: {i} after {}", next[p] - 1);
        next[p] = i + 1;
    }
}

#[tokio::test]
async fn cork_delivers_everything_sent_inside_it() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;
        let value = ws.cork(|ws| {
            for i in 0..100 {
                ws.send(format!("corked {i}"));
            }
            "done"
        });
        assert_eq!(value, "done");
        for i in 0..100 {
            match recv(&mut client).await {
                Msg::Text(t) => assert_eq!(t.as_str(), format!("corked {i}")),
                other => panic!("unexpected {other:?}"),
            }
        }
        client.close(None).await.unwrap();
    })
    .await;
}
