//! A node's session with Redis, on a single server or a Redis Cluster: the
//! few things the bridge's task asks of it (subscribe, unsubscribe, publish,
//! ping, the next message), whichever it is. A session that fails is
//! dropped whole and opened again.

mod cluster;
mod inbox;
mod single;

use std::future::Future;
use std::time::Duration;

use ::redis::{Client, ConnectionInfo, RedisError};

pub(crate) use self::inbox::Arrival;

use super::ConnectError;

/// Why a session counts as lost.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Lost {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("a connection to Redis closed")]
    Closed,
}

/// One PUBLISH (SPUBLISH on a cluster): an envelope for a channel.
#[derive(Debug)]
pub(crate) struct Publish {
    pub(crate) channel: String,
    pub(crate) envelope: Vec<u8>,
}

/// Where the bridge's Redis is: what a session is opened to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One Redis server: PUBLISH and SUBSCRIBE.
    Single(Client),
    /// A Redis Cluster, from these seed nodes: sharded pub/sub.
    Cluster(Vec<ConnectionInfo>),
}

impl Target {
    /// The single Redis at `url`; `Url` if it is not a Redis URL.
    pub(crate) fn single(url: &str) -> Result<Self, ConnectError> {
        let client = Client::open(url).map_err(ConnectError::Url)?;
        Ok(Self::Single(single::resp3(&client)?))
    }

    /// The cluster seeded by `nodes` (URLs); `Url` if one is not a Redis
    /// URL.
    pub(crate) fn cluster<S: AsRef<str>>(
        nodes: impl IntoIterator<Item = S>,
    ) -> Result<Self, ConnectError> {
        let nodes = nodes
            .into_iter()
            .map(|url| ::redis::IntoConnectionInfo::into_connection_info(url.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConnectError::Url)?;
        if nodes.is_empty() {
            let none = RedisError::from((
                ::redis::ErrorKind::InvalidClientConfig,
                "no cluster node given",
            ));
            return Err(ConnectError::Url(none));
        }
        Ok(Self::Cluster(nodes))
    }

    /// Opens a session, each connection within `timeout`.
    pub(crate) async fn open(&self, timeout: Duration) -> Result<Link, ConnectError> {
        Ok(match self {
            Self::Single(client) => Link::Single(single::Link::open(client, timeout).await?),
            Self::Cluster(nodes) => Link::Cluster(cluster::Link::open(nodes, timeout).await?),
        })
    }
}

/// A session with Redis; a lost one is dropped whole.
#[derive(Debug)]
pub(crate) enum Link {
    Single(single::Link),
    Cluster(cluster::Link),
}

impl Link {
    /// Listens to `channels` from now on.
    pub(crate) async fn subscribe(&mut self, channels: &[String]) -> Result<(), Lost> {
        match self {
            Self::Single(link) => link.subscribe(channels).await,
            Self::Cluster(link) => link.subscribe(channels).await,
        }
    }

    /// Stops listening to `channels`.
    pub(crate) async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), Lost> {
        match self {
            Self::Single(link) => link.unsubscribe(channels).await,
            Self::Cluster(link) => link.unsubscribe(channels).await,
        }
    }

    /// Checks that the connections that only read are still alive.
    pub(crate) async fn ping(&mut self) -> Result<(), Lost> {
        match self {
            Self::Single(link) => link.ping().await,
            Self::Cluster(link) => link.ping().await,
        }
    }

    /// Sends `publishes` in one round trip (one per shard on a cluster);
    /// those to one channel arrive in order.
    pub(crate) async fn publish(&mut self, publishes: &[Publish]) -> Result<(), Lost> {
        match self {
            Self::Single(link) => link.publish(publishes).await,
            Self::Cluster(link) => link.publish(publishes).await,
        }
    }

    /// The next message on a subscribed channel. Cancel-safe: a message is
    /// never lost to a `select!` that picks another branch.
    pub(crate) async fn next(&mut self) -> Result<Arrival, Lost> {
        match self {
            Self::Single(link) => link.next().await,
            Self::Cluster(link) => link.next().await,
        }
    }

    /// Channel messages this session dropped since the last call because
    /// too many were waiting for the task.
    pub(crate) fn take_missed(&self) -> u64 {
        match self {
            Self::Single(link) => link.take_missed(),
            Self::Cluster(link) => link.take_missed(),
        }
    }
}

/// `fut`, failing with [`Lost::Timeout`] after `timeout`.
async fn within<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, Lost> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Lost::Timeout(timeout)),
    }
}
