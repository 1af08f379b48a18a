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
//!   256 KiB of them): under load, a node sends about one command per
//!   topic per look, not one per message ([`Stats::publishes`]).
//! - **Framed once per node.** A message from Redis is delivered with one
//!   [`Hub::publish_local_with`](crate::Hub::publish_local_with), which
//!   frames (and compresses) it once for all local subscribers.
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
//!   while Redis is unreachable, they still reach this node's subscribers
//!   but not the others', and are counted in [`Stats::dropped`].
//! - A lost connection (closed, an error, or no answer within
//!   [`Options::timeout`], noticed on a quiet node by a PING every
//!   [`Options::ping_every`]) is reopened with exponential backoff
//!   ([`Options::reconnect_backoff`]), and every topic with local
//!   subscribers is SUBSCRIBEd to again. [`Stats::reconnects`] counts it.
//!   A pipeline that fails on its way counts whole as dropped, though Redis
//!   may have passed some of it on. What other nodes publish while this
//!   one is away is lost to its subscribers, uncounted: nothing tells it.
//! - A node that falls far behind reading is cut off by Redis (its
//!   `client-output-buffer-limit` for pub/sub) and reconnects like above.
//!
//! Only [`RedisBridge::connect`] fails, if Redis cannot be reached at all;
//! a connected bridge never does.
//!
//! Not supported: Redis Cluster's sharded pub/sub (SSUBSCRIBE / SPUBLISH),
//! TLS to Redis (`rediss://`), Sentinel.

mod envelope;
mod error;
mod link;
mod options;
mod queue;
mod stats;
mod task;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

pub use self::error::ConnectError;
use self::link::Link;
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
        let client = ::redis::Client::open(url).map_err(ConnectError::Url)?;
        let link = Link::open(&client, options.timeout).await?;
        let shared = Arc::new(Shared::new(options.max_queued_bytes));
        let (outgoing, queue) = mpsc::channel(options.max_queued);
        let bridge = Queue {
            shared: Arc::clone(&shared),
            outgoing,
        };
        let hub = Hub::bridged(Arc::new(bridge) as Arc<dyn Bridge>);
        let mut node = [0; 8];
        crate::entropy::fill(&mut node);
        let node = u64::from_be_bytes(node);
        let task = Task {
            shared: Arc::clone(&shared),
            queue,
            hub: Arc::downgrade(hub.inner()),
            client,
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
