//! A node's session with a single Redis: one RESP3 connection that carries
//! the PUBLISH pipelines, the SUBSCRIBE / UNSUBSCRIBE commands and the
//! channel messages they bring.

use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, ProtocolVersion};

use super::inbox::{self, Arrival, Inbox};
use super::{Lost, Publish, within};
use crate::redis::ConnectError;

/// Channels per SUBSCRIBE or UNSUBSCRIBE command.
const CHANNELS_PER_COMMAND: usize = 512;

/// The connection of one session with Redis; a lost one is dropped whole.
pub(crate) struct Link {
    conn: MultiplexedConnection,
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

/// `client`, speaking RESP3: commands and channel messages on one
/// connection.
pub(super) fn resp3(client: &Client) -> Result<Client, ConnectError> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Client::open(info.set_redis_settings(settings)).map_err(ConnectError::Url)
}

impl Link {
    /// Connects within `timeout`; `client` speaks RESP3 (see [`resp3`]).
    pub(crate) async fn open(client: &Client, timeout: Duration) -> Result<Self, ConnectError> {
        let (pushes, inbox) = inbox::new();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(pushes);
        let connecting = |lost| match lost {
            Lost::Redis(err) => ConnectError::Redis(err),
            Lost::Timeout(_) | Lost::Closed => ConnectError::Timeout(timeout),
        };
        let conn = within(
            timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(connecting)?;
        Ok(Self {
            conn,
            inbox,
            timeout,
        })
    }

    /// SUBSCRIBEs to `channels`, a few hundred per command.
    pub(crate) async fn subscribe(&mut self, channels: &[String]) -> Result<(), Lost> {
        for chunk in channels.chunks(CHANNELS_PER_COMMAND) {
            within(self.timeout, self.conn.subscribe(chunk)).await?;
        }
        Ok(())
    }

    /// UNSUBSCRIBEs from `channels`, a few hundred per command.
    pub(crate) async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), Lost> {
        for chunk in channels.chunks(CHANNELS_PER_COMMAND) {
            within(self.timeout, self.conn.unsubscribe(chunk)).await?;
        }
        Ok(())
    }

    /// PINGs, to notice a connection that died without closing while it
    /// had nothing to send.
    pub(crate) async fn ping(&mut self) -> Result<(), Lost> {
        let ping = ::redis::cmd("PING");
        within(
            self.timeout,
            ping.query_async::<::redis::Value>(&mut self.conn),
        )
        .await
        .map(drop)
    }

    /// Sends `publishes` as one pipeline of PUBLISH commands, in order, and
    /// waits for its replies.
    pub(crate) async fn publish(&mut self, publishes: &[Publish]) -> Result<(), Lost> {
        let mut pipeline = ::redis::pipe();
        for publish in publishes {
            pipeline
                .cmd("PUBLISH")
                .arg(&publish.channel)
                .arg(&publish.envelope);
        }
        within(self.timeout, pipeline.exec_async(&mut self.conn)).await
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
