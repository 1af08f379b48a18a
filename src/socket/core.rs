//! The untyped part of a socket, shared by its handles, its driver and the
//! topics it subscribes to: who it is, how it compresses, its outbox (which
//! holds its lifecycle), its liveness and its subscriptions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

pub(crate) use super::liveness::Timers;
use super::liveness::{Liveness, Verdict};
use super::topics::Topics;
use crate::deflate::{Outgoing, compress_shared};
use crate::hub::{self, HubInner, Lane, Subscriber, Topic, deliver_staged};
use crate::outbox::{COPY_LIMIT, Expiry, Outbox, Phase};
use crate::protocol::frame::{MAX_CONTROL_PAYLOAD, OpCode};
use crate::protocol::{Role, encode_frame, encode_header, encode_message_frame};
use crate::{Message, SendStatus, telemetry};

/// Everything about a socket that is not its typed data.
pub(crate) struct Core {
    /// How outgoing messages are compressed; `None` when they are not.
    deflate: Option<Box<Outgoing>>,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) protocol: Option<Box<str>>,
    pub(crate) hub: Arc<HubInner>,
    pub(crate) publish_to_self: bool,
    outbox: Outbox,
    liveness: Liveness,
    /// The topics this socket is subscribed to.
    topics: Mutex<Topics>,
}

/// Settings a socket takes from its layer.
pub(crate) struct Settings {
    pub(crate) backpressure_limit: usize,
    pub(crate) close_on_backpressure_limit: bool,
    pub(crate) publish_to_self: bool,
    pub(crate) timers: Timers,
    /// Which end of the connection this socket is: a client masks its frames.
    pub(crate) role: Role,
}

impl Core {
    pub(crate) fn new(
        hub: Arc<HubInner>,
        settings: Settings,
        remote_addr: Option<SocketAddr>,
        protocol: Option<Box<str>>,
        deflate: Option<Outgoing>,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Self {
            deflate: deflate.map(Box::new),
            remote_addr,
            protocol,
            hub,
            publish_to_self: settings.publish_to_self,
            outbox: Outbox::new(
                id,
                settings.backpressure_limit,
                settings.close_on_backpressure_limit,
                settings.role == Role::Client,
            ),
            liveness: Liveness::new(&settings.timers),
            topics: Mutex::new(Topics::None),
        }
    }

    /// A number unique to this socket within the process (kept by its
    /// outbox, which names the socket to the batches it reads).
    pub(crate) fn id(&self) -> u64 {
        self.outbox.id()
    }

    /// What waits to be written, and the socket's lifecycle.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The driver read something: the peer is alive.
    pub(crate) fn touch(&self) {
        self.liveness.touch();
    }

    fn subscriptions(&self) -> MutexGuard<'_, Topics> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Which of a topic's lanes this socket reads: the frames all plain
    /// sockets share, those all shared-compressor sockets share, or its own
    /// (a dedicated compressor's, or a client's, which masks every frame).
    pub(crate) fn lane(&self) -> Lane {
        if self.outbox.masks() {
            return Lane::Own;
        }
        match self.deflate.as_deref() {
            None => Lane::Plain,
            Some(Outgoing::Shared { window: 15 }) => Lane::Deflate,
            Some(_) => Lane::Own,
        }
    }

    /// Queues a data message sent to this socket alone, compressed if asked
    /// and negotiated.
    pub(crate) fn send_data(&self, opcode: OpCode, payload: Bytes, compress: bool) -> SendStatus {
        deliver_staged();
        match (compress, self.deflate.as_deref()) {
            (true, Some(Outgoing::Dedicated(deflater))) => {
                // Held until queued: frames leave in the order the context saw them.
                let mut deflater = deflater.lock();
                match deflater.compress(&payload) {
                    Some(compressed) => self.push_frame(opcode, compressed, true),
                    None => self.push_frame(opcode, payload, false),
                }
            }
            (true, Some(Outgoing::Shared { window })) => match compress_shared(*window, &payload) {
                Some(compressed) => self.push_frame(opcode, compressed, true),
                None => self.push_frame(opcode, payload, false),
            },
            _ => self.push_frame(opcode, payload, false),
        }
    }

    /// Queues one frame of `payload` (already compressed when `compressed`).
    fn push_frame(&self, opcode: OpCode, payload: Bytes, compressed: bool) -> SendStatus {
        let mut head = BytesMut::new();
        if let Some(mask) = self.outbox.frame_mask() {
            // A client's frame: masked, so always a copy of the payload.
            encode_message_frame(&mut head, opcode, compressed, &payload, Some(mask));
            self.outbox.push(head.freeze(), None)
        } else if payload.len() <= COPY_LIMIT {
            encode_message_frame(&mut head, opcode, compressed, &payload, None);
            self.outbox.push(head.freeze(), None)
        } else {
            encode_header(&mut head, opcode, compressed, payload.len());
            self.outbox.push(head.freeze(), Some(payload))
        }
    }

    /// Queues a ping or pong, unless the socket is closing or over its
    /// backpressure limit: a peer that sends pings and never reads must not
    /// grow a queue of pongs without bound.
    pub(crate) fn send_control(&self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        deliver_staged();
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        let mut frame = BytesMut::new();
        encode_frame(&mut frame, opcode, payload, self.outbox.frame_mask());
        self.outbox.push(frame.freeze(), None)
    }

    /// The driver wrote to the peer.
    pub(crate) fn sent(&self) {
        self.liveness.sent();
    }

    /// The sweeper's look at this socket at `now`; returns how often it
    /// wants looking at.
    pub(crate) fn sweep(&self, now: u32) -> Option<Duration> {
        match self.liveness.check(now) {
            Verdict::Fine => {}
            Verdict::Ping => {
                self.send_control(OpCode::Ping, b"");
            }
            Verdict::Expired => self.outbox.expire(Expiry::Idle),
            Verdict::LifetimeOver => self.outbox.expire(Expiry::Lifetime),
        }
        self.liveness.check_every()
    }

    /// Subscribes to `name` through `me` (this socket as a subscriber);
    /// false if already subscribed or closed.
    pub(crate) fn subscribe(&self, name: &str, me: impl FnOnce() -> Arc<dyn Subscriber>) -> bool {
        deliver_staged();
        let mut topics = self.subscriptions();
        // Checked under the subscriptions lock, which `leave_hub` takes
        // after the outbox was shut: a subscribe either lands before and is
        // undone there, or sees the socket closed.
        if self.outbox.phase() == Phase::Closed || topics.iter().any(|t| t.name() == name) {
            return false;
        }
        let (topic, joined) = self.hub.subscribe(name, me());
        topics.push(topic);
        drop(topics);
        if let Some(after) = joined {
            self.hub.changed(name, self.id(), after - 1, after);
        }
        true
    }

    /// Publishes to `name` from this socket (which it excludes unless it
    /// publishes to itself).
    pub(crate) fn publish(&self, name: &str, msg: Message, compress: bool) -> usize {
        let exclude = (!self.publish_to_self).then_some(self.id());
        let topics = self.subscriptions();
        // Once closed, the topics still listed were left: publish through
        // the hub, which has the topic's current members.
        let open = self.outbox.phase() != Phase::Closed;
        if let Some(topic) = topics.iter().find(|t| open && t.name() == name) {
            // In the topic ourselves: held to the end of this turn when one
            // runs here (reaching its members, the sender aside), else
            // published now through our own handle on the topic, which
            // stays in the hub at least while we hold this lock. (Counted
            // here; `HubInner::publish` counts the others.)
            telemetry::published(1);
            let msg = match hub::stage(&self.hub, topic, exclude, msg, compress) {
                Ok(()) => return topic.len() - usize::from(exclude.is_some()),
                Err(msg) => msg,
            };
            deliver_staged();
            return self.hub.publish_to(topic, &msg, exclude, compress);
        }
        drop(topics);
        self.hub.publish(name, &msg, exclude, compress)
    }

    /// Leaves `name`; false if not subscribed.
    pub(crate) fn unsubscribe(&self, name: &str) -> bool {
        deliver_staged();
        let mut topics = self.subscriptions();
        // Closed: every topic was left already; the list stays as it was.
        if self.outbox.phase() == Phase::Closed {
            return false;
        }
        let Some(topic) = topics.remove(name) else {
            return false;
        };
        drop(topics);
        self.hub.unsubscribe(&topic, self.id());
        true
    }

    pub(crate) fn is_subscribed(&self, name: &str) -> bool {
        self.subscriptions().iter().any(|t| t.name() == name)
    }

    pub(crate) fn subscription_names(&self) -> Vec<String> {
        self.subscriptions()
            .iter()
            .map(|t| t.name().to_owned())
            .collect()
    }

    /// The connection is gone: shuts the outbox and leaves every topic for
    /// good. The list of topics stays, so `Handler::close` can still read
    /// what the socket was in. Idempotent.
    pub(crate) fn end(&self) {
        deliver_staged();
        self.outbox.shut();
        // A copy: the hub's hook may run while leaving, and read this list.
        let topics: Vec<Arc<Topic>> = self.subscriptions().iter().cloned().collect();
        for topic in &topics {
            self.hub.unsubscribe(topic, self.id());
        }
    }

    /// Queues a published message for a socket that compresses on its own.
    pub(crate) fn send_own(&self, opcode: OpCode, payload: &Bytes, compress: bool) -> SendStatus {
        self.send_data(opcode, payload.clone(), compress)
    }
}
