//! The seam between a hub and other hubs: what a multi-node bridge (Redis,
//! a message bus, a test double) hears from a hub and how it answers.

use crate::Message;

/// Connects a [`Hub`](crate::Hub) to hubs elsewhere (other processes,
/// other machines).
///
/// The hub calls it when a topic gains its first local subscriber
/// ([`topic_opened`](Self::topic_opened)) or loses its last
/// ([`topic_closed`](Self::topic_closed)), so the bridge listens for a topic
/// exactly while someone here wants it; and after every publish made here
/// ([`forward`](Self::forward)), so the bridge can carry it to the others. A
/// bridge delivers what arrives from elsewhere with
/// [`Hub::publish_local`](crate::Hub::publish_local), which never comes back
/// to it.
///
/// Every method runs on the publishing or subscribing task, some of them
/// under the hub's topic map lock: they must return quickly and must not
/// block, await, or call back into the hub. Queue the work (a channel to a
/// task of the bridge's own) and batch it there. Every method has a no-op
/// default.
///
/// Install one with [`Hub::bridged`](crate::Hub::bridged).
pub trait Bridge: Send + Sync + 'static {
    /// `topic` has its first subscriber on this hub. Called in order with
    /// [`topic_closed`](Self::topic_closed) for the same topic.
    fn topic_opened(&self, topic: &str) {
        let _ = topic;
    }

    /// `topic` lost its last subscriber on this hub.
    fn topic_closed(&self, topic: &str) {
        let _ = topic;
    }

    /// `msg` was published to `topic` on this hub (with `compress` as given
    /// to the publish) and has been queued to the local subscribers. Sender
    /// exclusion (`WebSocket::publish`) is local: other hubs deliver to all.
    fn forward(&self, topic: &str, msg: &Message, compress: bool) {
        let _ = (topic, msg, compress);
    }

    /// Several publishes to `topic` made here, in order, each with its
    /// `compress` flag: the burst a socket's handlers published to one topic
    /// during one turn of its task. A bridge that queues can take them under
    /// one lock. The default calls [`forward`](Self::forward) for each.
    fn forward_all(&self, topic: &str, messages: &mut dyn Iterator<Item = (&Message, bool)>) {
        for (msg, compress) in messages {
            self.forward(topic, msg, compress);
        }
    }
}
