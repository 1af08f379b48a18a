//! One hub across several server processes, through Redis pub/sub
//! (feature `redis`).
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use wshub::{Handler, Message, Upgrade, WebSocket, WebSocketLayer};
//! use wshub::redis::RedisBridge;
//!
//! struct Room;
//!
//! impl Handler for Room {
//!     type Data = ();
//!
//!     async fn open(&self, ws: &WebSocket) {
//!         ws.subscribe("room");
//!     }
//!
//!     async fn message(&self, ws: &WebSocket, msg: Message) {
//!         // Every other member of the room, on every node.
//!         ws.publish("room", msg);
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bridge = RedisBridge::connect("redis://127.0.0.1:6379/").await?;
//! let app = Router::new()
//!     .route("/ws", get(|up: Upgrade| async move { up.accept(()) }))
//!     .layer(WebSocketLayer::new(Room).with_hub(bridge.hub()));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! wshub::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # What crosses, and how often
//!
//! - **Every publish**, made with `ws.publish`, `hub.publish` or their
//!   `_with(.., compress)` forms, reaches the subscribers of every node,
//!   each once, in the order each publisher made them. `ws.publish` leaves
//!   out the sender only, on its own node: other nodes deliver to all their
//!   subscribers. [`Hub::publish_local`](crate::Hub::publish_local) stays
//!   on its node.
//! - **A node listens only to topics it has subscribers for**: it
//!   SUBSCRIBEs to a topic's channel when the topic gains its first local
//!   subscriber and UNSUBSCRIBEs when it loses the last. The channel of
//!   topic `t` is `wshub:t` (see [`Options::prefix`]). A node hears other
//!   nodes' publishes to a topic from the moment its SUBSCRIBE is in place,
//!   a round trip after the topic's first local subscriber.
//! - **Batched.** The hub only queues (its [`Bridge`] calls
//!   run under its locks); a task of the bridge's own takes everything
//!   queued at once and sends it as one pipeline, one round trip, and
//!   folds subscription changes the same way (a topic opened and closed
//!   between two looks costs Redis nothing). In that pipeline, the
//!   messages to one topic that follow each other share one PUBLISH (up to
//!   1 MiB of them): under load, a node sends about one command per
//!   topic per look, not one per message ([`Stats::publishes`]).
//! - **Framed once per node.** What arrives from Redis is delivered like
//!   [`Hub::publish_local_with`](crate::Hub::publish_local_with), which
//!   frames (and compresses) each message once for all local subscribers;
//!   the messages of one PUBLISH go as one run (one lock of the topic, one
//!   wake-up per subscriber), sharing the buffer they arrived in.
//! - **Local counts.** [`Hub::subscriber_count`](crate::Hub::subscriber_count),
//!   [`Hub::topics`](crate::Hub::topics) and
//!   [`Hub::connections`](crate::Hub::connections) count this node's
//!   sockets only.
//!
//! # On the wire
//!
//! Each PUBLISH carries an envelope: a version byte, a flags byte, the
//! publishing node's id (8 bytes, big-endian), then either one message's
//! payload (version 1; flags: bit 0 binary, bit 1 compress) or several
//! messages in order (version 2; flags 0), each as its flags byte, its
//! length (4 bytes, big-endian) and its payload. A node skips its own
//! messages when Redis echoes them back, and ignores (counting them in
//! [`Stats::malformed`]) messages that are not envelopes; a batch is taken
//! whole or not at all.
//!
//! # When Redis goes away
//!
//! Redis pub/sub delivers at most once: a message published while a node
//! is disconnected never reaches it. The bridge keeps local delivery
//! working and counts what it loses:
//!
//! - Publishing never waits for Redis. Publishes wait in a bounded queue
//!   ([`Options::max_queued`], [`Options::max_queued_bytes`]); beyond it, or
//!   while the bridge has no connection, they still reach this node's
//!   subscribers but not the others', and are counted in
//!   [`Stats::dropped`]. While a connection is up but Redis is slow to
//!   answer (a SUBSCRIBE, a pipeline), they wait, at most about
//!   [`Options::timeout`], and then cross late rather than not at all.
//! - A lost connection (closed, an error, or no answer within
//!   [`Options::timeout`], noticed on a quiet node by a PING every
//!   [`Options::ping_every`]) is reopened with exponential backoff
//!   ([`Options::reconnect_backoff`]), and every topic with local
//!   subscribers is SUBSCRIBEd to again. [`Stats::reconnects`] counts it.
//!   A pipeline that fails on its way counts whole as dropped, though Redis
//!   may have passed some of it on. What other nodes publish while this
//!   one is away is lost to its subscribers, uncounted: nothing tells it.
//! - What arrives from Redis waits for the bridge's task in a bounded
//!   inbox (4,096 channel messages, 32 MiB); a node that falls that far
//!   behind drops the excess and counts it in [`Stats::missed`].
//!
//! Only [`RedisBridge::connect`] (and `connect_cluster`) fail, if Redis
//! cannot be reached at all; a connected bridge never does.
//!
//! # On a Redis Cluster
//!
//! [`RedisBridge::connect_cluster`] bridges through a Redis Cluster's
//! sharded pub/sub (Redis 7): SSUBSCRIBE and SPUBLISH instead of SUBSCRIBE
//! and PUBLISH. A topic's channel is a key like any other: the shard that
//! owns its slot carries all of its traffic, and no other shard sees it,
//! so pub/sub spreads over the cluster's shards (plain PUBLISH on a
//! cluster reaches every node). Everything above holds, with these
//! differences:
//!
//! - Order holds per publisher **per topic**: two topics may live on two
//!   shards, so a subscriber of both may see one publisher's messages to
//!   them interleaved differently than they were published.
//! - A look's PUBLISHes go out as one pipeline per topic, all topics at
//!   once, each to its shard; subscription changes as one SSUBSCRIBE or
//!   SUNSUBSCRIBE per topic (sharded commands take channels of one slot).
//! - One session covers every primary. A shard that goes away (its
//!   connection closes or stops answering) ends the whole session: the
//!   bridge reconnects with backoff and resubscribes every topic, so
//!   while a shard is down, topics on the other shards also stop crossing
//!   until it is back or failed over. Slot moves and failovers are
//!   followed (the cluster's MOVED answers).
//!
//! The bridge speaks RESP3 (Redis 6 or later): one connection per Redis
//! server carries its commands and what arrives on its channels. Not
//! supported: TLS to Redis (`rediss://`), Sentinel.

mod envelope;
mod error;
mod link;
mod options;
mod queue;
mod stats;
mod task;

use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use self::error::ConnectError;
use self::link::Target;
pub use self::options::Options;
use self::queue::{Queue, Shared};
pub use self::stats::Stats;
use self::task::Task;
use crate::{Bridge, Hub};

/// A [`Hub`] joined to the hubs of other processes through Redis.
///
/// Make one per process with [`connect`](Self::connect), then give its
/// [`hub`](Self::hub) to the layers
/// ([`WebSocketLayer::with_hub`](crate::WebSocketLayer::with_hub)). See the
/// [module docs](self) for what it guarantees. Cheap to clone; the bridge
/// runs (on a task of its own) as long as its hub or a handle is alive.
#[derive(Debug, Clone)]
pub struct RedisBridge {
    hub: Hub,
    shared: Arc<Shared>,
    node: u64,
}

impl RedisBridge {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port[/db]`)
    /// with the default [`Options`], and starts the bridge on the current
    /// tokio runtime.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo() -> Result<(), wshub::redis::ConnectError> {
    /// let bridge = wshub::redis::RedisBridge::connect("redis://127.0.0.1/").await?;
    /// bridge.hub().publish("news", "to every node");
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with(url, Options::default()).await
    }

    /// [`connect`](Self::connect) with `options`.
    ///
    /// ```no_run
    /// use wshub::redis::{Options, RedisBridge};
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo() -> Result<(), wshub::redis::ConnectError> {
    /// let bridge = RedisBridge::connect_with(
    ///     "redis://10.0.0.5:6379/",
    ///     Options::default().prefix("chat:"),
    /// )
    /// .await?;
    /// # let _ = bridge;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(url: &str, options: Options) -> Result<Self, ConnectError> {
        Self::start(Target::single(url)?, options).await
    }

    /// Connects to the Redis Cluster that `nodes` (URLs of some of its
    /// nodes) belong to, with the default [`Options`], and starts the
    /// bridge on the current tokio runtime. The bridge uses sharded pub/sub
    /// (SSUBSCRIBE / SPUBLISH, Redis 7): each topic's channel lives on the
    /// shard that owns its slot, so the cluster's pub/sub traffic spreads
    /// over its shards instead of reaching every node. See the
    /// [module docs](self#on-a-redis-cluster).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo() -> Result<(), wshub::redis::ConnectError> {
    /// let bridge = wshub::redis::RedisBridge::connect_cluster([
    ///     "redis://10.0.0.5:7000/",
    ///     "redis://10.0.0.6:7000/",
    /// ])
    /// .await?;
    /// bridge.hub().publish("news", "to every node");
    /// # Ok(()) }
    /// ```
    pub async fn connect_cluster<S: AsRef<str>>(
        nodes: impl IntoIterator<Item = S>,
    ) -> Result<Self, ConnectError> {
        Self::connect_cluster_with(nodes, Options::default()).await
    }

    /// [`connect_cluster`](Self::connect_cluster) with `options`.
    pub async fn connect_cluster_with<S: AsRef<str>>(
        nodes: impl IntoIterator<Item = S>,
        options: Options,
    ) -> Result<Self, ConnectError> {
        Self::start(Target::cluster(nodes)?, options).await
    }

    async fn start(target: Target, options: Options) -> Result<Self, ConnectError> {
        let link = target.open(options.timeout).await?;
        let shared = Arc::new(Shared::new(options.max_queued, options.max_queued_bytes));
        let bridge = Queue {
            shared: Arc::clone(&shared),
        };
        let hub = Hub::bridged(Arc::new(bridge) as Arc<dyn Bridge>);
        let mut node = [0; 8];
        crate::entropy::fill(&mut node);
        let node = u64::from_be_bytes(node);
        let task = Task {
            shared: Arc::clone(&shared),
            hub: Arc::downgrade(hub.inner()),
            target,
            options,
            node,
            wanted: Default::default(),
            batch: Vec::new(),
        };
        shared.counters.connected.store(true, Ordering::Relaxed);
        tokio::spawn(task.run(link));
        Ok(Self { hub, shared, node })
    }

    /// The bridged hub: give it to every layer of this process with
    /// [`WebSocketLayer::with_hub`](crate::WebSocketLayer::with_hub), and
    /// publish through it from anywhere.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }

    /// This node's counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// This node's id in the envelopes it publishes (random per bridge).
    pub fn node_id(&self) -> u64 {
        self.node
    }
}
