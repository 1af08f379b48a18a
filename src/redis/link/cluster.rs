//! A node's session with a Redis Cluster, through sharded pub/sub (Redis 7):
//! SSUBSCRIBE / SUNSUBSCRIBE and SPUBLISH, each sent to the shard that owns
//! the channel's slot, over one RESP3 connection per shard that carries
//! both the commands and the channel messages.

use std::time::Duration;

use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use ::redis::{ConnectionInfo, ProtocolVersion};
use foldhash::HashMap;
use futures_util::{StreamExt as _, TryStreamExt as _, future};

use super::inbox::{self, Arrival, Inbox};
use super::{Lost, Publish, within};
use crate::redis::ConnectError;

/// SSUBSCRIBE or SUNSUBSCRIBE commands in flight at once. Each names one
/// channel: a sharded command's channels must share a slot.
const IN_FLIGHT: usize = 64;
/// How often the cluster client retries a command (after a MOVED, a lost
/// connection) before the session counts as lost; few, so a shard that is
/// down shows quickly and the bridge's own backoff takes over.
const RETRIES: u32 = 2;

/// A session with the cluster's primaries.
pub(crate) struct Link {
    conn: ClusterConnection,
    inbox: Inbox,
    timeout: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("inbox", &self.inbox)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Learns the cluster's shards from `nodes` and connects to each
    /// primary, within `timeout`.
    pub(crate) async fn open(
        nodes: &[ConnectionInfo],
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let (pushes, inbox) = inbox::new();
        let client = ClusterClientBuilder::new(nodes.iter().cloned())
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(pushes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(RETRIES)
            .build()
            .map_err(ConnectError::Redis)?;
        let conn = match tokio::time::timeout(timeout, client.get_async_connection()).await {
            Ok(conn) => conn.map_err(ConnectError::Redis)?,
            Err(_) => return Err(ConnectError::Timeout(timeout)),
        };
        Ok(Self {
            conn,
            inbox,
            timeout,
        })
    }

    /// SSUBSCRIBEs to `channels`, one command each, several at once.
    pub(crate) async fn subscribe(&mut self, channels: &[String]) -> Result<(), Lost> {
        self.each_channel("SSUBSCRIBE", channels).await
    }

    /// SUNSUBSCRIBEs from `channels`, one command each, several at once.
    pub(crate) async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), Lost> {
        self.each_channel("SUNSUBSCRIBE", channels).await
    }

    /// `command CHANNEL` for each of `channels`, [`IN_FLIGHT`] at a time
    /// (each goes to the shard that owns its channel; the cluster client
    /// tracks the subscriptions it makes).
    async fn each_channel(&self, command: &str, channels: &[String]) -> Result<(), Lost> {
        let each = |channel: &String| {
            let mut conn = self.conn.clone();
            let mut cmd = ::redis::cmd(command);
            cmd.arg(channel);
            async move { cmd.exec_async(&mut conn).await }
        };
        let all = futures_util::stream::iter(channels)
            .map(each)
            .buffer_unordered(IN_FLIGHT)
            .try_for_each(|()| future::ready(Ok(())));
        within(self.timeout, all).await
    }

    /// PINGs every primary.
    pub(crate) async fn ping(&mut self) -> Result<(), Lost> {
        let every = RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllMasters,
            Some(ResponsePolicy::AllSucceeded),
        ));
        let ping = self.conn.route_command(::redis::cmd("PING"), every);
        within(self.timeout, ping).await.map(drop)
    }

    /// Sends `publishes` as SPUBLISH commands: one pipeline per channel
    /// (so a channel's messages keep their order), all channels at once.
    pub(crate) async fn publish(&mut self, publishes: &[Publish]) -> Result<(), Lost> {
        let mut pipelines: Vec<::redis::Pipeline> = Vec::new();
        let mut by_channel: HashMap<&str, usize> = HashMap::default();
        for publish in publishes {
            let at = *by_channel.entry(&publish.channel).or_insert_with(|| {
                pipelines.push(::redis::pipe());
                pipelines.len() - 1
            });
            pipelines[at]
                .cmd("SPUBLISH")
                .arg(&publish.channel)
                .arg(&publish.envelope);
        }
        let sends = pipelines.iter().map(|pipeline| {
            let mut conn = self.conn.clone();
            async move { pipeline.exec_async(&mut conn).await }
        });
        within(self.timeout, future::try_join_all(sends))
            .await
            .map(drop)
    }

    /// The next channel message.
    pub(crate) async fn next(&mut self) -> Result<Arrival, Lost> {
        self.inbox.next().await
    }

    /// See [`Inbox::take_missed`].
    pub(crate) fn take_missed(&self) -> u64 {
        self.inbox.take_missed()
    }
}
