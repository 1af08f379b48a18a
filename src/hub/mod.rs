//! The pub/sub hub: topics, their subscribers, and publish.
//!
//! A publish frames its message once; every subscriber's outbox gets the
//! same bytes (see [`crate::outbox::batch`]), so fan-out costs at most one
//! queue operation per recipient and no copy of the payload.
//!
//! The hub sees a socket only as a [`Subscriber`]: an id, the lane it reads,
//! its outbox, and a look at its idle time. It sees other machines only
//! through a [`Bridge`].

mod bridge;
mod staging;
mod topic;

use foldhash::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

pub use self::bridge::Bridge;
pub(crate) use self::staging::{deliver_staged, stage, staged_bytes};
use self::topic::Joined;
#[cfg(feature = "redis")]
use self::topic::Publish;
pub(crate) use self::topic::Topic;
use crate::outbox::Outbox;
use crate::protocol::close_code;
use crate::protocol::frame::OpCode;
use crate::{Message, SendStatus, clock, telemetry};

/// Which of a topic's frame lanes a subscriber reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Uncompressed frames, shared by every socket without compression.
    Plain,
    /// Frames compressed once by a shared compressor with the full window.
    Deflate,
    /// Frames made for this socket alone (its own compressor or window).
    Own,
}

/// A socket as the hub sees it.
pub(crate) trait Subscriber: Send + Sync {
    /// Unique within the process.
    fn id(&self) -> u64;
    /// Which lane of a topic it reads.
    fn lane(&self) -> Lane;
    /// Where published frames go.
    fn outbox(&self) -> &Outbox;
    /// Queues a published message for a socket on [`Lane::Own`], compressed
    /// by the socket itself.
    fn send_own(&self, opcode: OpCode, payload: &Bytes, compress: bool) -> SendStatus;
    /// The idle sweeper's look at the socket at `now` ([`clock`]
    /// milliseconds); returns how often it wants looking at.
    fn sweep(&self, now: u32) -> Option<Duration>;
}

/// Topics and subscribers shared by the sockets of one layer.
///
/// Cheap to clone; usable from any task, inside or outside a request. Get it
/// from [`WebSocketLayer::hub`](crate::WebSocketLayer::hub) or, in an axum
/// handler, as an extractor.
///
/// ```
/// use wshub::{Handler, WebSocketLayer};
///
/// struct Feed;
/// impl Handler for Feed { type Data = (); }
///
/// let layer = WebSocketLayer::new(Feed);
/// let hub = layer.hub();
/// // From a timer, a queue consumer, another request ...
/// let reached = hub.publish("prices", r#"{"btc": 1}"#);
/// assert_eq!(reached, 0); // nobody is subscribed yet
/// assert_eq!(hub.subscriber_count("prices"), 0);
/// ```
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("connections", &self.connections())
            .field("topics", &self.inner.read().len())
            .finish()
    }
}

/// The shared state behind every [`Hub`] handle and socket of a layer.
pub(crate) struct HubInner {
    /// Where publishes go beyond this hub, and who hears of topics' first
    /// and last local subscribers.
    bridge: Option<Arc<dyn Bridge>>,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    /// Every open socket, for shutdown.
    sockets: Mutex<HashMap<u64, Arc<dyn Subscriber>>>,
    connections: AtomicUsize,
    /// Set by [`Hub::shutdown`]: sockets opening now are closed at once.
    closing: AtomicBool,
    /// The idle sweeper runs (started with the first socket).
    sweeping: AtomicBool,
    /// How long the sweeper sleeps now, in milliseconds (`u64::MAX` before
    /// its first pass): a socket that wants looking at sooner wakes it.
    sweep_pace: AtomicU64,
    /// Wakes the sweeper before its sleep ends.
    resweep: Arc<Notify>,
    /// Woken when the last socket closes.
    empty: Notify,
    /// Hears of every change in a topic's subscribers (set once).
    on_subscription: OnceLock<SubscriptionHook>,
}

/// What [`Hub::publish_counted`] did with a message, subscriber by
/// subscriber (on this hub; a bridge's other nodes are not counted). Bun
/// folds this into the worst status of any subscriber (bun PR #35235), so a
/// publisher that retries on "dropped" sends again to every healthy one:
/// counts tell who missed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Published {
    /// Queued with nothing unsent ahead of it.
    pub sent: usize,
    /// Queued behind data the subscriber has not taken yet, or past its
    /// backpressure limit: it gets the message, later.
    pub backpressure: usize,
    /// Not queued: the subscriber was over its backpressure limit (its
    /// [`Handler::dropped`](crate::Handler::dropped) hears of it) or closing.
    pub dropped: usize,
}

impl Published {
    /// Subscribers that got the message, now or later.
    pub fn reached(&self) -> usize {
        self.sent + self.backpressure
    }

    pub(crate) fn add(&mut self, status: SendStatus) {
        match status {
            SendStatus::Sent(_) => self.sent += 1,
            SendStatus::Backpressure => self.backpressure += 1,
            SendStatus::Dropped => self.dropped += 1,
        }
    }
}

/// A hook for [`Hub::on_subscription`].
type SubscriptionHook = Box<dyn Fn(SubscriptionChange<'_>) + Send + Sync>;

/// A socket joined or left a topic on this hub, as [`Hub::on_subscription`]
/// hears of it: uWebSockets' `subscription` handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionChange<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The socket that joined or left ([`WebSocket::id`](crate::WebSocket::id)).
    pub socket: u64,
    /// The topic's subscribers on this hub before the change.
    pub before: usize,
    /// And after it: 1 after 0 is the first subscriber, 0 the last one gone.
    pub after: usize,
}

impl Default for HubInner {
    fn default() -> Self {
        Self {
            bridge: None,
            topics: RwLock::default(),
            sockets: Mutex::default(),
            connections: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            sweeping: AtomicBool::new(false),
            sweep_pace: AtomicU64::new(u64::MAX),
            resweep: Arc::new(Notify::new()),
            empty: Notify::new(),
            on_subscription: OnceLock::new(),
        }
    }
}

impl Hub {
    /// A hub with no topics, for sharing between layers
    /// ([`WebSocketLayer::with_hub`](crate::WebSocketLayer::with_hub)).
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub whose publishes also go to `bridge`, which hears when a topic
    /// gains its first or loses its last subscriber here: the seam for a
    /// hub spanning several processes. Publish what arrives from elsewhere
    /// with [`publish_local`](Self::publish_local).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use wshub::{Bridge, Hub, Message};
    ///
    /// #[derive(Default)]
    /// struct Log(Mutex<Vec<String>>);
    ///
    /// impl Bridge for Log {
    ///     fn forward(&self, topic: &str, msg: &Message, _compress: bool) {
    ///         let text = msg.as_text().unwrap_or_default();
    ///         self.0.lock().unwrap().push(format!("{topic}: {text}"));
    ///     }
    /// }
    ///
    /// let log = Arc::new(Log::default());
    /// let hub = Hub::bridged(Arc::clone(&log) as Arc<dyn Bridge>);
    /// hub.publish("news", "hello");             // local subscribers, then the bridge
    /// hub.publish_local("news", "from afar");   // local subscribers only
    /// assert_eq!(*log.0.lock().unwrap(), ["news: hello"]);
    /// ```
    pub fn bridged(bridge: Arc<dyn Bridge>) -> Self {
        Self {
            inner: Arc::new(HubInner {
                bridge: Some(bridge),
                ..HubInner::default()
            }),
        }
    }

    pub(crate) fn from_inner(inner: Arc<HubInner>) -> Self {
        Self { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<HubInner> {
        &self.inner
    }

    /// Publishes to every subscriber of `topic`; returns how many it reached
    /// here. A [bridged](Self::bridged) hub forwards it to its bridge too.
    ///
    /// Subscribers that are closing or over their backpressure limit are
    /// skipped and not counted.
    pub fn publish(&self, topic: &str, msg: impl Into<Message>) -> usize {
        self.publish_with(topic, msg, true)
    }

    /// [`publish`](Self::publish), compressed for the subscribers that
    /// negotiated it only if `compress` is true.
    pub fn publish_with(&self, topic: &str, msg: impl Into<Message>, compress: bool) -> usize {
        self.inner.publish(topic, &msg.into(), None, compress)
    }

    /// [`publish`](Self::publish), telling how many subscribers got the
    /// message at once, behind backpressure, or not at all. Costs a look at
    /// every subscriber's queue, which a plain `publish` avoids.
    ///
    /// ```
    /// let hub = wshub::Hub::new();
    /// let published = hub.publish_counted("prices", "EURUSD 1.0831");
    /// assert_eq!(published.reached(), 0, "nobody is subscribed yet");
    /// if published.dropped > 0 {
    ///     // Some subscribers missed it: their `Handler::dropped` runs, and
    ///     // can send them a fresh snapshot once they read again.
    /// }
    /// ```
    pub fn publish_counted(&self, topic: &str, msg: impl Into<Message>) -> Published {
        self.inner.publish_counted(topic, &msg.into(), None, true)
    }

    /// Publishes to this hub's subscribers of `topic` only, never to the
    /// bridge: for a bridge delivering what was published elsewhere.
    pub fn publish_local(&self, topic: &str, msg: impl Into<Message>) -> usize {
        self.publish_local_with(topic, msg, true)
    }

    /// [`publish_local`](Self::publish_local), compressed only if `compress`.
    pub fn publish_local_with(
        &self,
        topic: &str,
        msg: impl Into<Message>,
        compress: bool,
    ) -> usize {
        deliver_staged();
        self.inner.publish_local(topic, &msg.into(), None, compress)
    }

    /// [`publish_local_with`](Self::publish_local_with) for several messages
    /// to `topic` (message, compress), in order, as one run: one lookup, one
    /// lock of the topic and one wake-up per subscriber for all of them. What
    /// a bridge delivers when a batch arrives from another node.
    #[cfg(feature = "redis")]
    pub(crate) fn publish_local_all(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (Message, bool)>,
    ) -> usize {
        deliver_staged();
        let Some(topic) = self.inner.topic(topic) else {
            return 0;
        };
        let run: Vec<Publish> = messages
            .into_iter()
            .map(|(message, compress)| Publish { message, compress })
            .collect();
        topic.publish_run(&run, None)
    }

    /// Calls `hook` each time a socket joins or leaves a topic on this hub
    /// (subscribing, unsubscribing, or closing while subscribed), with the
    /// topic's subscriber count before and after: for a presence list, or
    /// to set something up for a topic's first subscriber and tear it down
    /// after its last. One hook per hub; false, and `hook` dropped, if it
    /// already has one.
    ///
    /// The hook runs on the thread that made the change, right after it,
    /// with no lock of the hub held (it may publish, subscribe or count).
    /// Changes made at the same time on other threads may reach it in
    /// either order; each one's counts are exact.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use wshub::{Hub, SubscriptionChange};
    ///
    /// let hub = Hub::new();
    /// let rooms = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&rooms);
    /// hub.on_subscription(move |change: SubscriptionChange<'_>| {
    ///     match (change.before, change.after) {
    ///         (0, 1) => seen.lock().unwrap().push(format!("+{}", change.topic)),
    ///         (1, 0) => seen.lock().unwrap().push(format!("-{}", change.topic)),
    ///         _ => {}
    ///     }
    /// });
    /// # let _ = rooms;
    /// ```
    pub fn on_subscription(
        &self,
        hook: impl Fn(SubscriptionChange<'_>) + Send + Sync + 'static,
    ) -> bool {
        self.inner.on_subscription.set(Box::new(hook)).is_ok()
    }

    /// How many sockets of this hub are subscribed to `topic` (a bridged
    /// hub counts its own only).
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.topic(topic).map_or(0, |t| t.len())
    }

    /// How many sockets of this hub are open.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::Acquire)
    }

    /// Closes every socket with 1001 ("going away") after what is already
    /// queued to it, and resolves once all have closed (their `close`
    /// handlers have run) or `grace` has passed, after which the rest are
    /// dropped. Sockets that open afterwards are closed at once.
    ///
    /// Pairs with the graceful shutdown of [`wshub::serve`](crate::serve)
    /// (or of `axum::serve`, the same way), which stops accepting but does
    /// not close upgraded connections: run it in the shutdown signal.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(listener: tokio::net::TcpListener, app: axum::Router, hub: wshub::Hub) {
    /// use std::time::Duration;
    ///
    /// wshub::serve(listener, app)
    ///     .with_graceful_shutdown(async move {
    ///         tokio::signal::ctrl_c().await.ok();
    ///         hub.shutdown(Duration::from_secs(5)).await;
    ///     })
    ///     .await
    ///     .ok();
    /// # }
    /// ```
    pub async fn shutdown(&self, grace: Duration) {
        deliver_staged();
        let inner = &self.inner;
        inner.closing.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + grace;
        for socket in inner.open_sockets() {
            socket
                .outbox()
                .begin_close(close_code::AWAY, "server shutting down");
        }
        if tokio::time::timeout_at(deadline, inner.all_closed())
            .await
            .is_ok()
        {
            return;
        }
        for socket in inner.open_sockets() {
            socket.outbox().terminate();
        }
        // Terminated sockets end at their next poll; bounded all the same.
        let _ = tokio::time::timeout(Duration::from_secs(1), inner.all_closed()).await;
    }

    /// The topics with at least one subscriber on this hub.
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .read()
            .keys()
            .map(|name| name.to_string())
            .collect()
    }
}

impl HubInner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read().get(name).cloned()
    }

    /// Publishes `msg` to `topic`, skipping the socket `exclude`, and
    /// forwards it to the bridge.
    pub(crate) fn publish(
        &self,
        topic: &str,
        msg: &Message,
        exclude: Option<u64>,
        compress: bool,
    ) -> usize {
        deliver_staged();
        telemetry::published(1);
        let reached = self.publish_local(topic, msg, exclude, compress);
        if let Some(bridge) = &self.bridge {
            bridge.forward(topic, msg, compress);
        }
        reached
    }

    /// [`publish`](Self::publish), counting each subscriber's fate.
    pub(crate) fn publish_counted(
        &self,
        topic: &str,
        msg: &Message,
        exclude: Option<u64>,
        compress: bool,
    ) -> Published {
        deliver_staged();
        telemetry::published(1);
        let published = self
            .topic(topic)
            .map(|t| t.publish_counted(msg, exclude, compress))
            .unwrap_or_default();
        if let Some(bridge) = &self.bridge {
            bridge.forward(topic, msg, compress);
        }
        published
    }

    /// [`publish`](Self::publish) to a topic the caller holds (a socket
    /// subscribed to it): no lookup in the shared map, whose lock and
    /// reference counts every thread would otherwise touch per message.
    pub(crate) fn publish_to(
        &self,
        topic: &Topic,
        msg: &Message,
        exclude: Option<u64>,
        compress: bool,
    ) -> usize {
        let reached = topic.publish(msg, exclude, compress);
        if let Some(bridge) = &self.bridge {
            bridge.forward(topic.name(), msg, compress);
        }
        reached
    }

    /// Publishes `msg` to this hub's subscribers of `topic` but `exclude`.
    fn publish_local(
        &self,
        topic: &str,
        msg: &Message,
        exclude: Option<u64>,
        compress: bool,
    ) -> usize {
        let Some(topic) = self.topic(topic) else {
            return 0;
        };
        topic.publish(msg, exclude, compress)
    }

    /// Adds `subscriber` to `name`, creating the topic if needed; returns
    /// the topic, and its subscribers now if it joined. The caller tells
    /// the hook ([`changed`](Self::changed)) once it holds no lock.
    pub(crate) fn subscribe(
        &self,
        name: &str,
        subscriber: Arc<dyn Subscriber>,
    ) -> (Arc<Topic>, Option<usize>) {
        loop {
            let topic = match self.topic(name) {
                Some(topic) => topic,
                None => self.open_topic(name),
            };
            // The topic may have emptied and left the map since we found it.
            match topic.add(Arc::clone(&subscriber)) {
                Joined::Gone => {}
                Joined::Already => return (topic, None),
                Joined::Now(after) => return (topic, Some(after)),
            }
        }
    }

    /// The topic `name`, made (and announced to the bridge) if it is new.
    fn open_topic(&self, name: &str) -> Arc<Topic> {
        let mut topics = self.write();
        if let Some(topic) = topics.get(name) {
            return Arc::clone(topic);
        }
        let name: Arc<str> = Arc::from(name);
        let topic = Topic::new(Arc::clone(&name));
        topics.insert(name, Arc::clone(&topic));
        telemetry::topics(1.0);
        // Under the map's lock, so the bridge hears of a topic's opening
        // and closing in the order they happened.
        if let Some(bridge) = &self.bridge {
            bridge.topic_opened(topic.name());
        }
        topic
    }

    /// Tells the subscription hook, if there is one, of a change. Called
    /// with no lock held: the hook may publish or subscribe.
    pub(crate) fn changed(&self, topic: &str, socket: u64, before: usize, after: usize) {
        if let Some(hook) = self.on_subscription.get() {
            hook(SubscriptionChange {
                topic,
                socket,
                before,
                after,
            });
        }
    }

    /// Removes socket `id` from `topic`, and the topic from the map once empty.
    pub(crate) fn unsubscribe(&self, topic: &Arc<Topic>, id: u64) {
        let (was_member, after) = topic.remove(id);
        if was_member {
            self.changed(topic.name(), id, after + 1, after);
        }
        if after > 0 {
            return;
        }
        let mut topics = self.write();
        // Decided under the map's lock, so a concurrent subscribe either joins
        // before (and the topic stays) or finds it removed and starts anew.
        if topic.remove_if_empty() {
            if let Some(current) = topics.get(topic.name()) {
                if Arc::ptr_eq(current, topic) {
                    topics.remove(topic.shared_name());
                    telemetry::topics(-1.0);
                    if let Some(bridge) = &self.bridge {
                        bridge.topic_closed(topic.name());
                    }
                }
            }
        }
    }

    /// Registers an open socket; false if the hub is shutting down.
    pub(crate) fn opened(self: &Arc<Self>, socket: Arc<dyn Subscriber>) -> bool {
        if !self.sweeping.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep(Arc::downgrade(self), Arc::clone(&self.resweep)));
        }
        let id = socket.id();
        // Just opened, so this only tells how often it wants looking at.
        let wanted = socket.sweep(clock::now());
        self.lock_sockets().insert(id, socket);
        self.connections.fetch_add(1, Ordering::AcqRel);
        telemetry::opened();
        // A shorter idle timeout than the sweeper's pace (another layer on
        // the same hub, or the sweeper's first pass racing this open) must
        // not wait out the sweeper's sleep: its ping would come late.
        if wanted.is_some_and(|every| {
            let every = every.max(SWEEP_MIN).as_millis();
            every < u128::from(self.sweep_pace.load(Ordering::Acquire))
        }) {
            self.resweep.notify_one();
        }
        !self.closing.load(Ordering::Acquire)
    }

    /// Unregisters an open socket (once its `close` handler ran), closed
    /// with `code`; idempotent.
    pub(crate) fn closed(&self, id: u64, code: u16) {
        if self.lock_sockets().remove(&id).is_none() {
            return;
        }
        telemetry::closed(code);
        if self.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.empty.notify_waiters();
        }
    }

    fn lock_sockets(&self) -> MutexGuard<'_, HashMap<u64, Arc<dyn Subscriber>>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open_sockets(&self) -> Vec<Arc<dyn Subscriber>> {
        self.lock_sockets().values().cloned().collect()
    }

    /// Looks at every socket's idle time once; returns when to look again.
    fn sweep_once(&self) -> Duration {
        let now = clock::now();
        let mut every = SWEEP_MAX;
        for socket in self.lock_sockets().values() {
            if let Some(wanted) = socket.sweep(now) {
                every = every.min(wanted);
            }
        }
        let every = every.max(SWEEP_MIN);
        let pace = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self.sweep_pace.store(pace, Ordering::Release);
        every
    }

    /// Resolves once no socket is open.
    async fn all_closed(&self) {
        loop {
            let notified = self.empty.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.connections.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Bounds on how often the sweeper looks at idle times: an eighth of the
/// shortest idle timeout, within these.
const SWEEP_MIN: Duration = Duration::from_millis(10);
const SWEEP_MAX: Duration = Duration::from_secs(1);

/// Pings silent sockets and closes those past their idle timeout, for the
/// whole hub at once: an open socket then holds no timer of its own (as
/// uWebSockets sweeps its timeouts). Ends with the hub.
async fn sweep(hub: Weak<HubInner>, resweep: Arc<Notify>) {
    loop {
        let Some(every) = hub.upgrade().map(|hub| hub.sweep_once()) else {
            return;
        };
        // Until the pace is up, or a socket that wants a faster one opens.
        let _ = tokio::time::timeout(every, resweep.notified()).await;
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Hub {
    type Rejection = crate::UpgradeRejection;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Hub>()
            .cloned()
            .ok_or(crate::UpgradeRejection::HubMissingLayer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::task::Waker;

    use bytes::BytesMut;

    use super::*;
    use crate::WebSocket;
    use crate::protocol::{Decoder, Frame, Role};
    use crate::socket::{Core, Settings};

    /// A socket without a connection: its queue is read back by hand.
    fn socket(hub: &Hub) -> WebSocket<()> {
        let settings = Settings {
            backpressure_limit: 64 << 20,
            close_on_backpressure_limit: false,
            publish_to_self: false,
            timers: crate::socket::Timers {
                idle_timeout: None,
                send_pings: false,
                reset_on_send: false,
                max_lifetime: None,
            },
            role: crate::protocol::Role::Server,
        };
        WebSocket::new(
            Core::new(Arc::clone(hub.inner()), settings, None, None, None),
            (),
        )
    }

    /// Takes what is queued to `ws`, as the driver does, onto `wire`.
    fn drain_into(ws: &WebSocket<()>, wire: &mut BytesMut) {
        let mut taken = Vec::new();
        while ws.core().outbox().take(&mut taken, Waker::noop()) {
            for bytes in taken.drain(..) {
                ws.core().outbox().written(bytes.len());
                wire.extend_from_slice(&bytes);
            }
        }
    }

    /// Every text message queued to `ws` so far, in queue order.
    fn received(ws: &WebSocket<()>) -> Vec<String> {
        let mut wire = BytesMut::new();
        drain_into(ws, &mut wire);
        decode_texts(wire)
    }

    fn decode_texts(mut wire: BytesMut) -> Vec<String> {
        let mut decoder = Decoder::new(Role::Client, usize::MAX);
        let mut out = Vec::new();
        while let Ok(Some(Frame::Message(msg))) = decoder.decode(&mut wire) {
            out.push(msg.as_text().unwrap_or_default().to_owned());
        }
        assert!(wire.is_empty(), "only whole frames are queued");
        out
    }

    #[test]
    fn publish_reaches_subscribers_but_not_the_sender() {
        let hub = Hub::new();
        let (a, b, c) = (socket(&hub), socket(&hub), socket(&hub));
        assert!(a.subscribe("room") && b.subscribe("room"));
        assert!(!a.subscribe("room"), "already subscribed");
        assert_eq!(a.publish("room", "from a"), 1);
        assert_eq!(c.publish("room", "from c, not subscribed"), 2);
        assert_eq!(hub.publish("room", "from the hub"), 2);
        assert_eq!(received(&a), ["from c, not subscribed", "from the hub"]);
        assert_eq!(
            received(&b),
            ["from a", "from c, not subscribed", "from the hub"]
        );
        assert!(received(&c).is_empty());
    }

    #[test]
    fn consecutive_publishes_share_one_buffer_per_subscriber() {
        let hub = Hub::new();
        let subs: Vec<_> = (0..3).map(|_| socket(&hub)).collect();
        for s in &subs {
            s.subscribe("t");
        }
        for i in 0..50 {
            hub.publish("t", format!("message {i}"));
        }
        let mut firsts = Vec::new();
        for s in &subs {
            let mut taken = Vec::new();
            assert!(s.core().outbox().take(&mut taken, Waker::noop()));
            assert_eq!(taken.len(), 1, "50 publishes merge into one slice");
            firsts.push(taken.swap_remove(0));
        }
        assert!(
            firsts.windows(2).all(|w| w[0].as_ptr() == w[1].as_ptr()),
            "same bytes for all"
        );
    }

    #[test]
    fn sends_and_publishes_keep_their_order() {
        let hub = Hub::new();
        let (a, b) = (socket(&hub), socket(&hub));
        b.subscribe("t");
        b.send("direct 1");
        a.publish("t", "published 1");
        b.send("direct 2");
        a.publish("t", "published 2");
        hub.publish("t", "x".repeat(5000)); // large: its own buffers
        b.send("direct 3");
        let got = received(&b);
        assert_eq!(
            got[..4],
            ["direct 1", "published 1", "direct 2", "published 2"]
        );
        assert_eq!(got[4].len(), 5000);
        assert_eq!(got[5], "direct 3");
    }

    #[test]
    fn empty_topics_disappear() {
        let hub = Hub::new();
        let (a, b) = (socket(&hub), socket(&hub));
        a.subscribe("x");
        b.subscribe("x");
        a.subscribe("y");
        assert_eq!(hub.subscriber_count("x"), 2);
        let mut topics = hub.topics();
        topics.sort();
        assert_eq!(topics, ["x", "y"]);
        assert_eq!(a.subscriptions().len(), 2);
        assert!(a.unsubscribe("x") && !a.unsubscribe("x"));
        assert_eq!(hub.subscriber_count("x"), 1);
        a.core().end();
        b.core().end();
        assert!(hub.topics().is_empty());
        assert!(!a.subscribe("z"), "a closed socket cannot subscribe");
        assert!(hub.topics().is_empty());
    }

    #[test]
    fn concurrent_publishes_and_churn_lose_nothing_for_steady_subscribers() {
        const PUBLISHERS: usize = 4;
        const MESSAGES: usize = 2000;
        let hub = Hub::new();
        let steady: Vec<_> = (0..3).map(|_| socket(&hub)).collect();
        for s in &steady {
            s.subscribe("t");
        }
        let barrier = Barrier::new(PUBLISHERS + 2);
        std::thread::scope(|scope| {
            for p in 0..PUBLISHERS {
                let (hub, barrier) = (&hub, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    for i in 0..MESSAGES {
                        hub.publish("t", format!("{p}:{i}"));
                    }
                });
            }
            for _ in 0..2 {
                let (hub, barrier) = (&hub, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    for _ in 0..MESSAGES {
                        let churner = socket(hub);
                        churner.subscribe("t");
                        churner.subscribe("other");
                        churner.unsubscribe("t");
                        churner.core().end();
                    }
                });
            }
        });
        for s in &steady {
            let got = received(s);
            assert_eq!(got.len(), PUBLISHERS * MESSAGES);
            let mut next = [0usize; PUBLISHERS];
            for m in got {
                let (p, i) = m.split_once(':').unwrap();
                let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
                assert_eq!(i, next[p], "publisher {p} out of order");
                next[p] += 1;
            }
        }
        assert_eq!(hub.topics(), ["t"]);
        assert_eq!(hub.subscriber_count("t"), 3);
    }

    /// Subscribers whose queues are taken (batches frozen) and who get direct
    /// sends while publishers publish from other threads: every published
    /// message arrives exactly once, in each publisher's order, and each
    /// subscriber's direct sends keep their own order.
    #[test]
    fn racing_flushes_sends_and_publishes_lose_and_duplicate_nothing() {
        const PUBLISHERS: usize = 3;
        const MESSAGES: usize = 3000;
        let hub = Hub::new();
        let subscribers: Vec<_> = (0..3).map(|_| socket(&hub)).collect();
        for s in &subscribers {
            s.subscribe("t");
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        let wires = std::thread::scope(|scope| {
            let publishers: Vec<_> = (0..PUBLISHERS)
                .map(|p| {
                    let (hub, subscribers) = (&hub, &subscribers);
                    scope.spawn(move || {
                        for i in 0..MESSAGES {
                            // Alternately through the hub and through a
                            // subscribed socket (excluded from its own).
                            if i % 2 == 0 {
                                hub.publish("t", format!("{p}:{i}"));
                            } else {
                                subscribers[p % subscribers.len()].publish("t", format!("{p}:{i}"));
                            }
                        }
                    })
                })
                .collect();
            let senders: Vec<_> = subscribers
                .iter()
                .map(|s| {
                    scope.spawn(move || {
                        for i in 0..MESSAGES / 4 {
                            s.send(format!("direct:{i}"));
                        }
                    })
                })
                .collect();
            let flushers: Vec<_> = subscribers
                .iter()
                .map(|s| {
                    let done = &done;
                    scope.spawn(move || {
                        let mut wire = BytesMut::new();
                        while !done.load(std::sync::atomic::Ordering::Acquire) {
                            drain_into(s, &mut wire);
                        }
                        drain_into(s, &mut wire);
                        wire
                    })
                })
                .collect();
            for handle in publishers.into_iter().chain(senders) {
                handle.join().unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
            flushers
                .into_iter()
                .map(|f| f.join().unwrap())
                .collect::<Vec<_>>()
        });
        for (k, wire) in wires.into_iter().enumerate() {
            let mut next = [0usize; PUBLISHERS];
            let mut next_direct = 0;
            for m in decode_texts(wire) {
                let (who, i) = m.split_once(':').unwrap();
                let i: usize = i.parse().unwrap();
                if who == "direct" {
                    assert_eq!(i, next_direct, "subscriber {k}: direct sends out of order");
                    next_direct += 1;
                    continue;
                }
                let p: usize = who.parse().unwrap();
                // Skip what this subscriber published itself (it is excluded).
                while next[p] % 2 == 1 && p % 3 == k {
                    next[p] += 1;
                }
                assert_eq!(
                    i, next[p],
                    "subscriber {k}: publisher {p} lost or repeated a message"
                );
                next[p] += 1;
            }
            assert_eq!(next_direct, MESSAGES / 4);
            for (p, n) in next.iter_mut().enumerate() {
                while *n % 2 == 1 && p % 3 == k && *n < MESSAGES {
                    *n += 1;
                }
            }
            assert_eq!(
                next, [MESSAGES; PUBLISHERS],
                "subscriber {k} missed messages"
            );
        }
    }
}
