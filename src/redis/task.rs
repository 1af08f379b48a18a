//! The bridge's own task: it owns the connections to Redis, sends what the
//! hub queued as PUBLISH pipelines, keeps the node's SUBSCRIBEs in step with
//! its local topics, delivers what other nodes publish, and reconnects.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use tokio::time::{Instant, MissedTickBehavior};

use super::envelope;
use super::link::{Arrival, Link, Lost, Publish, Target};
use super::options::Options;
use super::queue::{Run, Shared};
use super::stats::Counters;
use crate::Hub;
use crate::hub::HubInner;

/// The state of the bridge's task.
pub(crate) struct Task {
    pub(crate) shared: Arc<Shared>,
    /// Weak: the hub owns the bridge, so a strong handle here would keep
    /// both alive forever. The task ends when the hub's end of the queue
    /// (its bridge) is dropped.
    pub(crate) hub: Weak<HubInner>,
    pub(crate) target: Target,
    pub(crate) options: Options,
    pub(crate) node: u64,
    /// The topics with local subscribers, as far as the task has heard:
    /// what a new connection SUBSCRIBEs to.
    pub(crate) wanted: HashSet<Box<str>>,
    /// What the last look took; reused between looks.
    pub(crate) batch: Vec<Run>,
}

/// What a look at the subscription changes asks of Redis.
#[derive(Debug, Default)]
struct Changes {
    subscribe: Vec<String>,
    unsubscribe: Vec<String>,
}

impl Task {
    /// Serves `link` until the hub is gone, reconnecting whenever Redis is
    /// lost.
    pub(crate) async fn run(mut self, mut link: Link) {
        loop {
            let served = self.serve(&mut link).await;
            self.count_missed(&link);
            let lost = match served {
                Ok(()) => return,
                Err(lost) => lost,
            };
            self.shared.counters.connected.store(false, Relaxed);
            tracing::warn!(error = %lost, "lost Redis; reconnecting");
            drop(link);
            link = match self.reconnect().await {
                Some(link) => link,
                None => return,
            };
            Counters::add(&self.shared.counters.reconnects, 1);
            self.shared.counters.connected.store(true, Relaxed);
            tracing::info!("reconnected to Redis");
        }
    }

    /// Serves one connection; `Ok` once the hub is gone.
    async fn serve(&mut self, link: &mut Link) -> Result<(), Lost> {
        // A new connection subscribes to every topic wanted now.
        self.take_changes();
        let all: Vec<String> = self.wanted.iter().map(|t| self.channel(t)).collect();
        link.subscribe(&all).await?;
        let mut ping = tokio::time::interval_at(
            Instant::now() + self.options.ping_every,
            self.options.ping_every,
        );
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let changes = self.take_changes();
            link.unsubscribe(&changes.unsubscribe).await?;
            link.subscribe(&changes.subscribe).await?;
            tokio::select! {
                () = self.shared.ready.notified() => {
                    if !self.shared.take(&mut self.batch) {
                        return Ok(());
                    }
                    if !self.batch.is_empty() {
                        self.publish(link).await?;
                    }
                }
                msg = link.next() => {
                    self.deliver(msg?);
                    self.count_missed(link);
                }
                () = self.shared.changed.notified() => {}
                _ = ping.tick() => link.ping().await?,
            }
        }
    }

    /// Sends the batch (everything queued) in one round trip: one PUBLISH
    /// for each run of messages to the same topic, in order (see
    /// [`envelope`]).
    async fn publish(&mut self, link: &mut Link) -> Result<(), Lost> {
        let mut runs = std::mem::take(&mut self.batch);
        let count = runs.iter().map(|run| run.batch.len()).sum();
        let publishes: Vec<Publish> = runs
            .drain(..)
            .map(|run| Publish {
                channel: self.channel(&run.topic),
                envelope: run.batch.finish(self.node),
            })
            .collect();
        self.batch = runs;
        let commands = publishes.len();
        let counters = &self.shared.counters;
        match link.publish(&publishes).await {
            Ok(()) => {
                Counters::add(&counters.published, count);
                Counters::add(&counters.publishes, commands);
                Counters::add(&counters.pipelines, 1);
                Ok(())
            }
            Err(lost) => {
                Counters::add(&counters.dropped, count);
                Err(lost)
            }
        }
    }

    /// Delivers a message from Redis to this node's subscribers, unless
    /// this node sent it.
    fn deliver(&self, msg: Arrival) {
        let counters = &self.shared.counters;
        if envelope::sender(&msg.payload) == Some(self.node) {
            return;
        }
        let channel = std::str::from_utf8(&msg.channel).ok();
        let topic = channel.and_then(|c| c.strip_prefix(self.options.prefix.as_str()));
        let envelopes = envelope::decode_owned(msg.payload.into());
        let (Some(topic), Ok(envelopes)) = (topic, envelopes) else {
            Counters::add(&counters.malformed, 1);
            return;
        };
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let hub = Hub::from_inner(hub);
        let count = envelopes.len();
        hub.publish_local_all(
            topic,
            envelopes.into_iter().map(|e| (e.message, e.compress)),
        );
        Counters::add(&counters.received, count);
    }

    /// Waits out the backoff and connects again; `None` once the hub is
    /// gone. Publishes queued meanwhile are dropped (and counted): Redis
    /// pub/sub would not have kept them for the other nodes either.
    async fn reconnect(&mut self) -> Option<Link> {
        let mut backoff = self.options.backoff_min;
        loop {
            self.while_away(tokio::time::sleep(backoff)).await?;
            let target = self.target.clone();
            let timeout = self.options.timeout;
            match self
                .while_away(async move { target.open(timeout).await })
                .await?
            {
                Ok(link) => return Some(link),
                Err(err) => tracing::debug!(error = %err, ?backoff, "Redis still unreachable"),
            }
            backoff = (backoff * 2).min(self.options.backoff_max);
        }
    }

    /// Runs `fut` while no session is up: what is published meanwhile is
    /// dropped (and counted), not delivered late once Redis is back, and
    /// subscription changes are folded into `wanted`. `None` once the hub
    /// is gone.
    async fn while_away<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Some(out),
                () = self.shared.ready.notified() => {
                    let open = self.shared.take(&mut self.batch);
                    self.drop_batch();
                    if !open {
                        return None;
                    }
                }
                () = self.shared.changed.notified() => {
                    self.take_changes();
                }
            }
        }
    }

    /// Counts the channel messages `link` had to drop.
    fn count_missed(&self, link: &Link) {
        let missed = link.take_missed();
        if missed > 0 {
            let missed = usize::try_from(missed).unwrap_or(usize::MAX);
            Counters::add(&self.shared.counters.missed, missed);
        }
    }

    fn drop_batch(&mut self) {
        let count = self.batch.iter().map(|run| run.batch.len()).sum();
        Counters::add(&self.shared.counters.dropped, count);
        self.batch.clear();
    }

    /// Folds the changes since the last look into `wanted`; returns the
    /// channels to subscribe to and unsubscribe from.
    fn take_changes(&mut self) -> Changes {
        let mut changes = Changes::default();
        for (topic, open) in self.shared.take_changes() {
            if open && !self.wanted.contains(&topic) {
                changes.subscribe.push(self.channel(&topic));
                self.wanted.insert(topic);
            } else if !open && self.wanted.remove(&topic) {
                changes.unsubscribe.push(self.channel(&topic));
            }
        }
        changes
    }

    fn channel(&self, topic: &str) -> String {
        self.options.prefix.clone() + topic
    }
}
