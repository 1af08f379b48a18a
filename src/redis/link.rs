//! A node's two connections to Redis: one for PUBLISH pipelines, one in
//! subscriber mode for SUBSCRIBE / UNSUBSCRIBE and what arrives on them.

use std::future::Future;
use std::time::Duration;

use ::redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use ::redis::{AsyncConnectionConfig, Client, RedisError};

use super::ConnectError;

/// Channels per SUBSCRIBE or UNSUBSCRIBE command.
const CHANNELS_PER_COMMAND: usize = 512;

/// Why a connection counts as lost.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Lost {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the subscriber connection closed")]
    Closed,
}

/// The connections of one session with Redis; a lost one is dropped whole.
pub(crate) struct Link {
    pub(crate) publisher: MultiplexedConnection,
    sink: PubSubSink,
    pub(crate) messages: PubSubStream,
    timeout: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link {
    /// Opens both connections, each within `timeout`.
    pub(crate) async fn open(client: &Client, timeout: Duration) -> Result<Self, ConnectError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let connecting = |lost| match lost {
            Lost::Redis(err) => ConnectError::Redis(err),
            Lost::Timeout(_) | Lost::Closed => ConnectError::Timeout(timeout),
        };
        let publisher = within(
            timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(connecting)?;
        let pubsub = within(timeout, client.get_async_pubsub())
            .await
            .map_err(connecting)?;
        let (sink, messages) = pubsub.split();
        Ok(Self {
            publisher,
            sink,
            messages,
            timeout,
        })
    }

    /// SUBSCRIBEs to `channels`, a few hundred per command.
    pub(crate) async fn subscribe(&mut self, channels: &[String]) -> Result<(), Lost> {
        for chunk in channels.chunks(CHANNELS_PER_COMMAND) {
            within(self.timeout, self.sink.subscribe(chunk)).await?;
        }
        Ok(())
    }

    /// UNSUBSCRIBEs from `channels`, a few hundred per command.
    pub(crate) async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), Lost> {
        for chunk in channels.chunks(CHANNELS_PER_COMMAND) {
            within(self.timeout, self.sink.unsubscribe(chunk)).await?;
        }
        Ok(())
    }

    /// PINGs on the subscriber connection, which otherwise only reads.
    pub(crate) async fn ping(&mut self) -> Result<(), Lost> {
        within(self.timeout, self.sink.ping::<::redis::Value>()).await?;
        Ok(())
    }

    /// Sends `pipeline` and waits for its replies.
    pub(crate) async fn publish(&mut self, pipeline: &::redis::Pipeline) -> Result<(), Lost> {
        within(self.timeout, pipeline.exec_async(&mut self.publisher)).await
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
