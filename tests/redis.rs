//! The hub across server processes through a real `redis-server`
//! (`wshub::redis`, feature `redis`): two wshub servers in one process, each
//! with its own bridge, and tokio-tungstenite clients on both.

#[path = "common/redis_server.rs"]
mod redis_server;

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::deflate::{ClientInflater, DeflateWs};
use common::*;
use futures_util::StreamExt as _;
use redis_server::{RedisCluster, RedisServer};
use wshub::redis::{Options, RedisBridge, Stats};
use wshub::{Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer};

/// Joins the topics of `?topics=`, then obeys text commands:
/// `pub TOPIC TEXT` (sender excluded; `pub-plain` uncompressed),
/// `burst TOPIC N` (N publishes in one handler call), `sub TOPIC` /
/// `leave TOPIC` (answered), `s TOPIC` / `u TOPIC` (silent), `ping`
/// (answers `pong`).
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
            (Some("pub-plain"), Some(topic), Some(text)) => {
                ws.publish_with(topic, text.to_owned(), false);
            }
            (Some("burst"), Some(topic), Some(n)) => {
                for i in 0..n.parse().unwrap_or(0) {
                    ws.publish(topic, format!("burst {i}"));
                }
            }
            (Some("mix"), Some(topics), Some(n)) => {
                let topics: Vec<&str> = topics.split(',').collect();
                for i in 0..n.parse().unwrap_or(0) {
                    let pad = if i % 50 == 49 { 100 * 1024 } else { 0 };
                    let text = format!("mix {i} {}", "x".repeat(pad));
                    ws.publish(topics[(i / 3) % topics.len()], text);
                }
            }
            (Some("sub"), Some(topic), _) => {
                ws.subscribe(topic);
                ws.send("subscribed");
            }
            (Some("leave"), Some(topic), _) => {
                ws.unsubscribe(topic);
                ws.send("left");
            }
            (Some("s"), Some(topic), _) => {
                ws.subscribe(topic);
            }
            (Some("u"), Some(topic), _) => {
                ws.unsubscribe(topic);
            }
            (Some("ping"), _, _) => {
                ws.send("pong");
            }
            _ => {}
        }
    }
}

/// One node: a bridge to `redis` and a wshub server on its hub.
struct Node {
    bridge: RedisBridge,
    addr: SocketAddr,
}

impl Node {
    async fn start(redis: &RedisServer) -> Self {
        Self::start_with(redis, Config::default()).await
    }

    /// Short timeouts and backoffs, so outages show quickly.
    fn options() -> Options {
        Options::default()
            .timeout(Duration::from_secs(2))
            .ping_every(Duration::from_millis(50))
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
    }

    async fn start_with(redis: &RedisServer, config: Config) -> Self {
        Self::start_with_options(redis, config, Self::options()).await
    }

    async fn start_with_options(redis: &RedisServer, config: Config, options: Options) -> Self {
        let bridge = RedisBridge::connect_with(&redis.url(), options)
            .await
            .expect("a bridge to the test's redis-server");
        Self::listen(bridge, config).await
    }

    /// A node on `cluster`, through sharded pub/sub.
    async fn on_cluster(cluster: &RedisCluster) -> Self {
        let bridge = RedisBridge::connect_cluster_with(cluster.urls(), Self::options())
            .await
            .expect("a bridge to the test's Redis Cluster");
        Self::listen(bridge, Config::default()).await
    }

    /// Serves the test's chat on a free port, on `bridge`'s hub.
    async fn listen(bridge: RedisBridge, config: Config) -> Self {
        let route = |up: Upgrade<Vec<String>>, q: axum::extract::Query<HashMap<String, String>>| async move {
            let topics = q.get("topics").map_or_else(Vec::new, |t| {
                t.split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            });
            up.accept(topics)
        };
        let layer = WebSocketLayer::new(Chat)
            .config(config)
            .with_hub(bridge.hub());
        let addr = serve(Router::new().route("/", get(route)).layer(layer)).await;
        Self { bridge, addr }
    }

    async fn join(&self, topics: &str) -> Client {
        let mut client = connect_with(format!("ws://{}/?topics={topics}", self.addr))
            .await
            .unwrap()
            .0;
        assert_eq!(recv(&mut client).await, Msg::text("ready"));
        client
    }

    fn stats(&self) -> Stats {
        self.bridge.stats()
    }
}

/// Waits (at most [`WAIT`]) until `ready` holds, polling.
async fn until(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    wait(what, async {
        while !ready().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Waits until `redis` has `channel` with `subscribers` nodes on it.
async fn until_subscribed(redis: &RedisServer, channel: &str, subscribers: usize) {
    until(
        &format!("{subscribers} subscribers on {channel}"),
        async || {
            let Ok(mut conn) = redis.connection().await else {
                return false;
            };
            let numsub: Vec<(String, usize)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            numsub.first().is_some_and(|(_, n)| *n == subscribers)
        },
    )
    .await;
}

/// Reads `n` text messages.
async fn texts(client: &mut Client, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        match recv(client).await {
            Msg::Text(text) => got.push(text.as_str().to_owned()),
            other => panic!("expected text, got {other:?}"),
        }
    }
    got
}

/// Checks that `got` holds `count` messages `"{who} {i}"` from each
/// publisher `who`, each once and in order, and nothing else.
fn assert_each_once_in_order(got: &[String], publishers: &[&str], count: usize) {
    let mut next: HashMap<&str, usize> = publishers.iter().map(|p| (*p, 0)).collect();
    for msg in got {
        let (who, i) = msg.rsplit_once(' ').expect("`who i`");
        let expected = next
            .get_mut(who)
            .unwrap_or_else(|| panic!("unexpected {msg:?}"));
        assert_eq!(
            i.parse::<usize>().unwrap(),
            *expected,
            "{who}: out of order or repeated"
        );
        *expected += 1;
    }
    for (who, n) in next {
        assert_eq!(n, count, "{who}: messages missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_reach_every_node_once_in_order_without_the_sender() {
    const N: usize = 200;
    let redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut a1, mut a2) = (a.join("room").await, a.join("room").await);
    let (mut b1, mut b2) = (b.join("room").await, b.join("room").await);
    until_subscribed(&redis, "wshub:room", 2).await;

    // Two publishers, one per node, at the same time.
    for i in 0..N {
        send(&mut a1, Msg::text(format!("pub room a1 {i}"))).await;
        send(&mut b1, Msg::text(format!("pub room b1 {i}"))).await;
    }
    let got_a1 = texts(&mut a1, N).await;
    let got_b1 = texts(&mut b1, N).await;
    let got_a2 = texts(&mut a2, 2 * N).await;
    let got_b2 = texts(&mut b2, 2 * N).await;
    assert_each_once_in_order(&got_a1, &["b1"], N); // not its own
    assert_each_once_in_order(&got_b1, &["a1"], N);
    assert_each_once_in_order(&got_a2, &["a1", "b1"], N);
    assert_each_once_in_order(&got_b2, &["a1", "b1"], N);

    // From a hub (no sender to leave out), uncompressed, binary: everyone.
    let reached = b.bridge.hub().publish_with("room", vec![1u8, 2, 3], false);
    assert_eq!(reached, 2, "reached counts this node's subscribers");
    for client in [&mut a1, &mut a2, &mut b1, &mut b2] {
        assert_eq!(recv(client).await, Msg::binary(vec![1u8, 2, 3]));
    }
    // Local only: never crosses.
    a.bridge.hub().publish_local("room", "a only");
    a.bridge.hub().publish("room", "end");
    for client in [&mut a1, &mut a2] {
        assert_eq!(recv(client).await, Msg::text("a only"));
    }
    // "end" came after everything above on every client: nothing was
    // delivered twice (an echo, say) or late.
    for client in [&mut a1, &mut a2, &mut b1, &mut b2] {
        assert_eq!(recv(client).await, Msg::text("end"));
    }

    // Each node published its client's messages and one of its hub's, and
    // received the other's (a counter may trail the delivery a moment: a
    // pipeline counts once Redis answers).
    let n = N as u64 + 1;
    until("the counters to settle", async || {
        let (sa, sb) = (a.stats(), b.stats());
        (sa.published, sa.received, sb.published, sb.received) == (n, n, n, n)
    })
    .await;
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.dropped, sa.malformed, sa.reconnects), (0, 0, 0));
    assert_eq!((sb.dropped, sb.malformed, sb.reconnects), (0, 0, 0));
    assert!(sa.connected && sb.connected);
    assert_eq!(
        a.bridge.hub().subscriber_count("room"),
        2,
        "counts stay local"
    );
    // Messages next to each other in a pipeline share a PUBLISH.
    assert_eq!(
        redis.publish_calls().await,
        sa.publishes + sb.publishes,
        "every PUBLISH counted"
    );
    assert!(sa.publishes <= n && sb.publishes <= n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_publishes_travels_in_few_pipelines() {
    const N: usize = 2000;
    let redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let mut publisher = a.join("").await;
    let mut listener = b.join("room").await;
    until_subscribed(&redis, "wshub:room", 1).await;

    let started = std::time::Instant::now();
    send(&mut publisher, Msg::text(format!("burst room {N}"))).await;
    let got = texts(&mut listener, N).await;
    let elapsed = started.elapsed();
    let expected: Vec<String> = (0..N).map(|i| format!("burst {i}")).collect();
    assert_eq!(got, expected);
    until("the last pipeline's answer", async || {
        a.stats().published == N as u64
    })
    .await;
    let stats = a.stats();
    assert_eq!(
        (redis.publish_calls().await, stats.publishes),
        (stats.pipelines, stats.pipelines),
        "one topic: one PUBLISH per pipeline"
    );
    println!(
        "{N} publishes in one handler call: {} pipelines, all on the other node in {elapsed:?}",
        stats.pipelines
    );
    assert!(
        stats.pipelines * 20 <= N as u64,
        "{N} publishes took {} round trips",
        stats.pipelines
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_two_topics_shares_publishes_and_keeps_its_order() {
    const N: usize = 600;
    let redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let mut publisher = a.join("").await;
    let mut listener = b.join("x,y").await;
    until_subscribed(&redis, "wshub:x", 1).await;
    until_subscribed(&redis, "wshub:y", 1).await;

    send(&mut publisher, Msg::text(format!("mix x,y {N}"))).await;
    let got = texts(&mut listener, N).await;
    for (i, text) in got.iter().enumerate() {
        let pad = if i % 50 == 49 { 100 * 1024 } else { 0 };
        assert_eq!(text.len(), format!("mix {i} ").len() + pad);
        assert!(
            text.starts_with(&format!("mix {i} ")),
            "message {i} out of order"
        );
    }
    until("the last pipeline's answer", async || {
        a.stats().published == N as u64
    })
    .await;
    let stats = a.stats();
    assert_eq!(redis.publish_calls().await, stats.publishes);
    // At least one PUBLISH per run of three to one topic, and never a
    // batch over 256 KiB: a padded message starts a new one.
    assert!(stats.publishes >= (N / 3) as u64, "{stats:?}");
    assert!(stats.publishes < N as u64, "{stats:?}");
    assert_eq!(b.stats().received, N as u64);
    assert_eq!(b.stats().malformed, 0);
}

/// Four clients on `node` subscribe and unsubscribe, `cycles` times in
/// all, over 64 topics they share, while the bridge's task keeps up; then
/// each has its answer to a ping, so the node has seen every change.
async fn churn(node: &Node, cycles: usize) {
    const CHURNERS: usize = 4;
    let mut churners = Vec::new();
    for _ in 0..CHURNERS {
        churners.push(node.join("").await);
    }
    let churn = churners
        .iter_mut()
        .enumerate()
        .map(|(c, client)| async move {
            for i in 0..cycles / CHURNERS {
                let topic = format!("t{}", (i * CHURNERS + c) % 64);
                send(client, Msg::text(format!("s {topic}"))).await;
                send(client, Msg::text(format!("u {topic}"))).await;
            }
            send(client, Msg::text("ping")).await;
            assert_eq!(recv(client).await, Msg::text("pong"));
        });
    futures_util::future::join_all(churn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_churn_leaves_no_channel_behind() {
    const CYCLES: usize = 10_000;
    let redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let mut steady = a.join("keep").await;
    until_subscribed(&redis, "wshub:keep", 1).await;
    churn(&a, CYCLES).await;
    let (subscribes, unsubscribes) = (
        redis.calls("subscribe").await,
        redis.calls("unsubscribe").await,
    );
    println!("{CYCLES} cycles: {subscribes} SUBSCRIBE and {unsubscribes} UNSUBSCRIBE commands");
    assert_eq!(a.bridge.hub().topics(), ["keep"]);
    until("only wshub:keep on Redis", async || {
        redis.channels().await == ["wshub:keep"]
    })
    .await;

    // The steady topic still crosses.
    b.bridge.hub().publish("keep", "still here");
    assert_eq!(recv(&mut steady).await, Msg::text("still here"));
    drop(steady);
    until("no channel on Redis", async || {
        redis.channels().await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_is_reconnected_and_resubscribed_and_the_loss_counted() {
    let mut redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let (mut a1, mut a2) = (a.join("room").await, a.join("room").await);
    let mut b1 = b.join("room").await;
    until_subscribed(&redis, "wshub:room", 2).await;
    send(&mut a1, Msg::text("pub room before")).await;
    assert_eq!(recv(&mut a2).await, Msg::text("before"));
    assert_eq!(recv(&mut b1).await, Msg::text("before"));

    redis.kill().await;
    until("both bridges to notice", async || {
        !a.stats().connected && !b.stats().connected
    })
    .await;
    // Local delivery goes on; what crossed nowhere is counted.
    for i in 0..5 {
        send(&mut a1, Msg::text(format!("pub room during {i}"))).await;
    }
    for i in 0..5 {
        assert_eq!(recv(&mut a2).await, Msg::text(format!("during {i}")));
    }
    until("the loss to be counted", async || a.stats().dropped == 5).await;

    redis.restart().await;
    until("both bridges to reconnect", async || {
        a.stats().connected && b.stats().connected
    })
    .await;
    until_subscribed(&redis, "wshub:room", 2).await;
    send(&mut a1, Msg::text("pub room after")).await;
    send(&mut b1, Msg::text("pub room from b")).await;
    // The next thing b1 reads is "after": the outage's messages are gone,
    // not late.
    assert_eq!(recv(&mut b1).await, Msg::text("after"));
    assert_eq!(recv(&mut a2).await, Msg::text("after"));
    let mut rest = texts(&mut a1, 1).await;
    rest.extend(texts(&mut a2, 1).await);
    assert_eq!(rest, ["from b", "from b"]);

    until("a's counters to settle", async || a.stats().published == 2).await;
    let (sa, sb) = (a.stats(), b.stats());
    assert!(sa.reconnects >= 1 && sb.reconnects >= 1, "{sa:?} {sb:?}");
    assert_eq!(sa.dropped, 5, "{sa:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compress_flag_crosses_with_the_message() {
    let redis = RedisServer::start().await;
    let a = Node::start(&redis).await;
    let b = Node::start_with(&redis, Config::default().per_message_deflate(true)).await;
    let mut client = DeflateWs::connect(b.addr, "/?topics=room", Some("permessage-deflate")).await;
    assert!(client.extensions.is_some(), "deflate negotiated");
    let mut inflater = ClientInflater::new(true);
    let ready = client.message().await;
    assert_eq!(inflater.inflate(&ready.payload).unwrap(), b"ready");
    until_subscribed(&redis, "wshub:room", 1).await;

    let text = "compressible ".repeat(200);
    a.bridge.hub().publish_with("room", text.as_str(), true);
    a.bridge.hub().publish_with("room", text.as_str(), false);
    let compressed = client.message().await;
    assert!(
        compressed.rsv1,
        "published with compress: compressed on node b"
    );
    assert!(compressed.payload.len() < text.len() / 4);
    assert_eq!(
        inflater.inflate(&compressed.payload).unwrap(),
        text.as_bytes()
    );
    let plain = client.message().await;
    assert!(!plain.rsv1, "published without compress: plain on node b");
    assert_eq!(plain.payload, text.as_bytes());

    // The same from a socket on node a.
    let mut publisher = a.join("").await;
    send(&mut publisher, Msg::text(format!("pub room {text}"))).await;
    send(&mut publisher, Msg::text(format!("pub-plain room {text}"))).await;
    let compressed = client.message().await;
    assert!(compressed.rsv1, "ws.publish: compressed on node b");
    assert_eq!(
        inflater.inflate(&compressed.payload).unwrap(),
        text.as_bytes()
    );
    let plain = client.message().await;
    assert!(!plain.rsv1, "ws.publish_with(.., false): plain on node b");
    assert_eq!(plain.payload, text.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_lives_as_long_as_its_hub_and_then_lets_go_of_redis() {
    async fn clients(redis: &RedisServer) -> usize {
        let mut conn = redis.connection().await.unwrap();
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut conn)
            .await
            .unwrap();
        let count = info
            .lines()
            .find_map(|line| line.strip_prefix("connected_clients:"))
            .expect("connected_clients");
        count.trim().parse().unwrap()
    }
    let redis = RedisServer::start().await;
    let a = Node::start(&redis).await;
    let mut listener = a.join("room").await;
    let bridge = RedisBridge::connect(&redis.url()).await.unwrap();
    let hub = bridge.hub();
    until_subscribed(&redis, "wshub:room", 1).await;
    // One connection per bridge (commands and channel messages share it,
    // RESP3), and the one asking (earlier ones may take a moment to go).
    until("one connection per bridge", async || {
        clients(&redis).await == 3
    })
    .await;

    drop(bridge);
    hub.publish("room", "the hub alone is enough");
    assert_eq!(
        recv(&mut listener).await,
        Msg::text("the hub alone is enough")
    );
    drop(hub);
    until("the bridge's connection to close", async || {
        clients(&redis).await == 2
    })
    .await;
    assert_eq!(a.stats().received, 1);
}

#[tokio::test]
async fn connect_fails_clearly_without_redis() {
    let err = RedisBridge::connect("http://127.0.0.1/").await.unwrap_err();
    assert!(matches!(err, wshub::redis::ConnectError::Url(_)), "{err:?}");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = RedisBridge::connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, wshub::redis::ConnectError::Redis(_)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "could not connect to Redis");
}

/// `examples/redis_chat`, one process per node: its address.
struct ChatProcess {
    addr: SocketAddr,
    _child: tokio::process::Child,
}

impl ChatProcess {
    async fn start(redis: &RedisServer) -> Self {
        Self::start_with(&["--redis", &redis.url(), "0"]).await
    }

    async fn start_with(args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt as _;
        let binary = common::process::example_binary_with("redis_chat", &["redis"]);
        let mut child = tokio::process::Command::new(binary)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start examples/redis_chat");
        let stdout = child.stdout.take().expect("its stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = wait("redis_chat to listen", lines.next_line())
            .await
            .unwrap()
            .expect("a line saying where it listens");
        // ws://127.0.0.1:PORT/?name=YOU (node ...)
        let addr = line
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self {
            addr,
            _child: child,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_a_room_for_1000_clients() {
    const CLIENTS: usize = 1000;
    testkit::raise_nofile(4 * CLIENTS as u64).unwrap();
    let redis = RedisServer::start().await;
    let nodes = [
        ChatProcess::start(&redis).await,
        ChatProcess::start(&redis).await,
    ];
    let started = std::time::Instant::now();
    // Half on each process, every client in the room; each says hello and
    // reads its own line back, so its subscription is in place.
    // 100 handshakes at a time: a listen backlog is not 1,000 deep everywhere.
    let clients: Vec<Client> = futures_util::stream::iter((0..CLIENTS).map(|i| {
        let addr = nodes[i % 2].addr;
        async move {
            let url = format!("ws://{addr}/?name=c{i}");
            let mut client = connect_with(url).await.unwrap().0;
            send(&mut client, Msg::text("hi")).await;
            let own = Msg::text(format!("c{i}: hi"));
            while recv(&mut client).await != own {}
            client
        }
    }))
    .buffered(100)
    .collect()
    .await;
    until_subscribed(&redis, "wshub:room", 2).await;
    let joined = started.elapsed();

    // One message from a client on each process: every client reads both,
    // once each.
    let mut clients = clients;
    send(&mut clients[0], Msg::text("from node 0")).await;
    send(&mut clients[1], Msg::text("from node 1")).await;
    let started = std::time::Instant::now();
    futures_util::future::join_all(clients.iter_mut().map(|client| async move {
        let mut seen = [0; 2];
        while seen != [1, 1] {
            match recv(client).await {
                Msg::Text(t) if t.as_str() == "c0: from node 0" => seen[0] += 1,
                Msg::Text(t) if t.as_str() == "c1: from node 1" => seen[1] += 1,
                Msg::Text(t) if t.as_str().ends_with(": hi") => {}
                other => panic!("unexpected {other:?}"),
            }
            assert!(seen[0] <= 1 && seen[1] <= 1, "a message arrived twice");
        }
    }))
    .await;
    // Every message crossed (above), at most one PUBLISH each: hellos
    // queued together share one.
    let calls = redis.publish_calls().await;
    println!(
        "{CLIENTS} clients on 2 processes: joined (and their {CLIENTS} hellos sent) in {joined:?}, \
         both messages to all in {:?}; {calls} PUBLISHes for {} messages",
        started.elapsed(),
        CLIENTS + 2
    );
    assert!(
        (2..=CLIENTS as u64 + 2).contains(&calls),
        "{calls} PUBLISHes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_is_noticed_by_the_timeouts() {
    let redis = RedisServer::start().await;
    let options = Options::default()
        .timeout(Duration::from_millis(300))
        .ping_every(Duration::from_millis(50))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100));
    let a = Node::start_with_options(&redis, Config::default(), options.clone()).await;
    let b = Node::start_with_options(&redis, Config::default(), options).await;
    let (mut a1, mut a2) = (a.join("room").await, a.join("room").await);
    let mut b1 = b.join("room").await;
    until_subscribed(&redis, "wshub:room", 2).await;

    // Stopped, not killed: the connections stay open and silent.
    redis.signal("STOP").await;
    for i in 0..3 {
        send(&mut a1, Msg::text(format!("pub room during {i}"))).await;
    }
    for i in 0..3 {
        assert_eq!(recv(&mut a2).await, Msg::text(format!("during {i}")));
    }
    until("both bridges to give up on Redis", async || {
        !a.stats().connected && !b.stats().connected
    })
    .await;
    until("the loss to be counted", async || a.stats().dropped == 3).await;

    redis.signal("CONT").await;
    until("both bridges to reconnect", async || {
        a.stats().connected && b.stats().connected
    })
    .await;
    until_subscribed(&redis, "wshub:room", 2).await;
    send(&mut a1, Msg::text("pub room after")).await;
    assert_eq!(recv(&mut a2).await, Msg::text("after"));
    // At most once: what was written before the stall may or may not have
    // gone out once Redis resumed, never twice or after "after".
    let mut seen = Vec::new();
    loop {
        match recv(&mut b1).await {
            Msg::Text(t) if t.as_str() == "after" => break,
            Msg::Text(t) if t.as_str().starts_with("during ") => seen.push(t.as_str().to_owned()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(seen, unique);
    assert!(a.stats().reconnects >= 1 && b.stats().reconnects >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_subscribes_with_the_first_local_subscriber_and_leaves_with_the_last() {
    const ROUNDS: u64 = 50;
    let redis = RedisServer::start().await;
    let a = Node::start(&redis).await;
    let (mut first, mut second) = (a.join("").await, a.join("").await);
    let (subscribes, unsubscribes) = (
        redis.calls("subscribe").await,
        redis.calls("unsubscribe").await,
    );
    for _ in 0..ROUNDS {
        for client in [&mut first, &mut second] {
            send(client, Msg::text("sub room")).await;
            assert_eq!(recv(client).await, Msg::text("subscribed"));
        }
        until_subscribed(&redis, "wshub:room", 1).await;
        send(&mut first, Msg::text("leave room")).await;
        assert_eq!(recv(&mut first).await, Msg::text("left"));
        // Someone is left here: the node stays on the channel.
        assert_eq!(redis.channels().await, ["wshub:room"]);
        send(&mut second, Msg::text("leave room")).await;
        assert_eq!(recv(&mut second).await, Msg::text("left"));
        until("the node to leave the channel", async || {
            redis.channels().await.is_empty()
        })
        .await;
    }
    // One SUBSCRIBE and one UNSUBSCRIBE per round, whoever came and went.
    assert_eq!(redis.calls("subscribe").await - subscribes, ROUNDS);
    assert_eq!(redis.calls("unsubscribe").await - unsubscribes, ROUNDS);
}

// Redis Cluster: sharded pub/sub (SSUBSCRIBE / SPUBLISH).

/// Waits until `channel` has `subscribers` nodes on it, on whichever shard
/// owns it.
async fn until_shard_subscribed(cluster: &RedisCluster, channel: &str, subscribers: usize) {
    until(
        &format!("{subscribers} shard subscribers on {channel}"),
        async || {
            let mut total = 0;
            for node in &cluster.nodes {
                let Ok(mut conn) = node.connection().await else {
                    return false;
                };
                let numsub: Vec<(String, usize)> = redis::cmd("PUBSUB")
                    .arg("SHARDNUMSUB")
                    .arg(channel)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                total += numsub.first().map_or(0, |(_, n)| *n);
            }
            total == subscribers
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_carries_every_topic_through_the_shard_that_owns_it() {
    const TOPICS: usize = 12;
    const N: usize = 50;
    let cluster = RedisCluster::start(3).await;
    let (a, b) = (
        Node::on_cluster(&cluster).await,
        Node::on_cluster(&cluster).await,
    );
    let topics: Vec<String> = (0..TOPICS).map(|t| format!("room{t}")).collect();
    let all = topics.join(",");
    let (mut a1, mut a2) = (a.join(&all).await, a.join(&all).await);
    let mut b1 = b.join(&all).await;
    for topic in &topics {
        until_shard_subscribed(&cluster, &format!("wshub:{topic}"), 2).await;
    }
    // The topics' channels spread over the shards, each on one of them.
    let shards = cluster.shard_channels().await;
    assert!(
        shards.iter().filter(|on| !on.is_empty()).count() >= 2,
        "{shards:?}"
    );
    assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), TOPICS);

    // a1 and b1 publish to every topic at once, in turns.
    for i in 0..N {
        for topic in &topics {
            send(&mut a1, Msg::text(format!("pub {topic} a1-{topic} {i}"))).await;
            send(&mut b1, Msg::text(format!("pub {topic} b1-{topic} {i}"))).await;
        }
    }
    let from = |who: &str| -> Vec<String> { topics.iter().map(|t| format!("{who}-{t}")).collect() };
    let (from_a1, from_b1) = (from("a1"), from("b1"));
    fn as_str(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let got_a1 = texts(&mut a1, N * TOPICS).await;
    assert_each_once_in_order(&got_a1, &as_str(&from_b1), N); // not its own
    let got_b1 = texts(&mut b1, N * TOPICS).await;
    assert_each_once_in_order(&got_b1, &as_str(&from_a1), N);
    let got_a2 = texts(&mut a2, 2 * N * TOPICS).await;
    let both: Vec<String> = from_a1.iter().chain(&from_b1).cloned().collect();
    assert_each_once_in_order(&got_a2, &as_str(&both), N);

    // From a hub: everyone, nothing late or twice.
    b.bridge.hub().publish("room0", "end");
    for client in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(recv(client).await, Msg::text("end"));
    }
    let n = (N * TOPICS + 1) as u64;
    until("the counters to settle", async || {
        (a.stats().received, b.stats().published) == (n, n)
    })
    .await;
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        (sa.dropped, sa.malformed, sa.missed, sa.reconnects),
        (0, 0, 0, 0),
        "{sa:?}"
    );
    assert_eq!(
        (sb.dropped, sb.malformed, sb.missed, sb.reconnects),
        (0, 0, 0, 0),
        "{sb:?}"
    );
    // Sharded pub/sub only, every SPUBLISH counted, and runs of a topic's
    // messages share one.
    let spublish = cluster.calls("spublish").await;
    assert_eq!(spublish, sa.publishes + sb.publishes);
    assert!(
        spublish <= 2 * n,
        "{spublish} SPUBLISH for {} messages",
        2 * n
    );
    assert_eq!(cluster.calls("publish").await, 0);
    assert_eq!(cluster.calls("subscribe").await, 0);
    for node in &cluster.nodes {
        assert!(node.channels().await.is_empty(), "no unsharded channel");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_churn_leaves_no_shard_channel_behind() {
    const CYCLES: usize = 10_000;
    let cluster = RedisCluster::start(3).await;
    let (a, b) = (
        Node::on_cluster(&cluster).await,
        Node::on_cluster(&cluster).await,
    );
    let mut steady = a.join("keep").await;
    until_shard_subscribed(&cluster, "wshub:keep", 1).await;
    churn(&a, CYCLES).await;
    let (subscribes, unsubscribes) = (
        cluster.calls("ssubscribe").await,
        cluster.calls("sunsubscribe").await,
    );
    println!("{CYCLES} cycles: {subscribes} SSUBSCRIBE and {unsubscribes} SUNSUBSCRIBE commands");
    assert_eq!(a.bridge.hub().topics(), ["keep"]);
    until("only wshub:keep on the cluster", async || {
        cluster.shard_channels().await.concat() == ["wshub:keep"]
    })
    .await;

    b.bridge.hub().publish("keep", "still here");
    assert_eq!(recv(&mut steady).await, Msg::text("still here"));
    drop(steady);
    until("no shard channel on the cluster", async || {
        cluster.shard_channels().await.concat().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_shard_is_reconnected_and_resubscribed() {
    let mut cluster = RedisCluster::start(3).await;
    let (a, b) = (
        Node::on_cluster(&cluster).await,
        Node::on_cluster(&cluster).await,
    );
    let (mut a1, mut a2) = (a.join("room").await, a.join("room").await);
    let mut b1 = b.join("room").await;
    until_shard_subscribed(&cluster, "wshub:room", 2).await;
    send(&mut a1, Msg::text("pub room before")).await;
    assert_eq!(recv(&mut a2).await, Msg::text("before"));
    assert_eq!(recv(&mut b1).await, Msg::text("before"));

    // The shard that owns the room goes away.
    let owner = cluster
        .owner("wshub:room")
        .await
        .expect("a shard owns the room");
    cluster.nodes[owner].kill().await;
    until("both bridges to notice", async || {
        a.stats().reconnects + u64::from(!a.stats().connected) > 0
            && b.stats().reconnects + u64::from(!b.stats().connected) > 0
    })
    .await;
    // Local delivery goes on.
    for i in 0..5 {
        send(&mut a1, Msg::text(format!("pub room during {i}"))).await;
    }
    for i in 0..5 {
        assert_eq!(recv(&mut a2).await, Msg::text(format!("during {i}")));
    }

    cluster.nodes[owner].restart().await;
    cluster.until_ok().await;
    until_shard_subscribed(&cluster, "wshub:room", 2).await;
    until("both bridges to be connected", async || {
        a.stats().connected && b.stats().connected
    })
    .await;
    send(&mut a1, Msg::text("pub room after")).await;
    send(&mut b1, Msg::text("pub room from b")).await;
    // What a published while the shard was away either never crosses or
    // crosses once, in order, ahead of what came after: it waited in a's
    // queue while the bridge (re)subscribed, at most a timeout.
    let mut crossed = Vec::new();
    loop {
        match recv(&mut b1).await {
            Msg::Text(t) if t.as_str() == "after" => break,
            Msg::Text(t) => crossed.push(t.as_str().to_owned()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let outage: Vec<String> = (0..5).map(|i| format!("during {i}")).collect();
    assert!(
        crossed.iter().all(|m| outage.contains(m)) && crossed.windows(2).all(|w| w[0] < w[1]),
        "each at most once, in order: {crossed:?}"
    );
    assert_eq!(recv(&mut a2).await, Msg::text("after"));
    let mut rest = texts(&mut a1, 1).await;
    rest.extend(texts(&mut a2, 1).await);
    assert_eq!(rest, ["from b", "from b"]);
    // Each of a's seven publishes is accounted for: dropped if it found the
    // shard gone, published if it reached Redis (where, with no subscriber
    // there yet, Redis passed it to no one: at most once).
    until("a's counters to settle", async || {
        let sa = a.stats();
        sa.published + sa.dropped == 7 && sa.published >= 2
    })
    .await;
    let (sa, sb) = (a.stats(), b.stats());
    assert!(sa.reconnects >= 1 && sb.reconnects >= 1, "{sa:?} {sb:?}");
    println!("a shard restarted: {sa:?}");
}

#[tokio::test]
async fn connect_cluster_fails_clearly() {
    let none: [&str; 0] = [];
    let err = RedisBridge::connect_cluster(none).await.unwrap_err();
    assert!(matches!(err, wshub::redis::ConnectError::Url(_)), "{err:?}");
    let err = RedisBridge::connect_cluster(["http://127.0.0.1/"])
        .await
        .unwrap_err();
    assert!(matches!(err, wshub::redis::ConnectError::Url(_)), "{err:?}");
    // A single Redis that is not a cluster.
    let redis = RedisServer::start().await;
    let err = RedisBridge::connect_cluster([redis.url()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, wshub::redis::ConnectError::Redis(_)),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_a_room_through_a_cluster() {
    let cluster = RedisCluster::start(3).await;
    let urls = cluster.urls().join(",");
    let nodes = [
        ChatProcess::start_with(&["--cluster", &urls, "0"]).await,
        ChatProcess::start_with(&["--cluster", &urls, "0"]).await,
    ];
    let join = |node: usize, name: &str| {
        let url = format!("ws://{}/?name={name}", nodes[node].addr);
        async move { connect_with(url).await.unwrap().0 }
    };
    let (mut ada, mut bob) = (join(0, "ada").await, join(1, "bob").await);
    until_shard_subscribed(&cluster, "wshub:room", 2).await;
    send(&mut ada, Msg::text("hello")).await;
    assert_eq!(recv(&mut ada).await, Msg::text("ada: hello"));
    assert_eq!(recv(&mut bob).await, Msg::text("ada: hello"));
    send(&mut bob, Msg::text("hi ada")).await;
    assert_eq!(recv(&mut bob).await, Msg::text("bob: hi ada"));
    assert_eq!(recv(&mut ada).await, Msg::text("bob: hi ada"));
    assert!(cluster.calls("spublish").await >= 2);
    assert_eq!(cluster.calls("publish").await, 0);
}
