//! The WebSocket client: connect to `ws://` and `wss://` servers and drive
//! the socket with the server's own machinery.
//!
//! A client socket is a [`WebSocket`] like the server's: the same frames
//! codec, close handshake, ping/pong and idle pings, payload limit, UTF-8
//! checks, `permessage-deflate`, backpressure and [`SendStatus`](crate::SendStatus) answers,
//! run by the same connection task. Only the masking of outgoing frames and
//! the opening handshake are the client's own.
//!
//! Two ways to use it:
//!
//! - **As a stream**: [`Client::connect`] gives a [`ClientSocket`], a
//!   [`Stream`](futures_util::Stream) of [`Message`](crate::Message)s with `send` and `close`.
//! - **With a [`Handler`]**: [`Client::connect_with`] runs the socket with
//!   `open` / `message` / `close` / `drain`, so one handler type can serve
//!   both sides.
//!
//! ```no_run
//! use futures_util::StreamExt as _;
//!
//! # #[tokio::main] async fn main() -> Result<(), wshub::client::ConnectError> {
//! let mut socket = wshub::Client::new("ws://127.0.0.1:3000/ws?name=ada")
//!     .header("authorization", "Bearer secret")
//!     .connect()
//!     .await?;
//! socket.send("hello");
//! while let Some(msg) = socket.next().await {
//!     println!("{msg:?}");
//! }
//! println!("closed: {:?}", socket.closed());
//! # Ok(()) }
//! ```

mod connect;
mod error;
mod handshake;
mod inbox;
mod socket;
mod target;
#[cfg(feature = "tls")]
mod tls;

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::AsyncWriteExt as _;

pub use self::error::ConnectError;
pub(crate) use self::inbox::Handoff;
pub use self::inbox::{Closed, Inbox};
pub use self::socket::ClientSocket;
use self::target::Target;
use crate::deflate::client_offer;
use crate::driver::{self, Open};
use crate::protocol::Role;
use crate::{Compression, Config, Handler, Hub, WebSocket};

/// Bytes of received messages a [`ClientSocket`] holds unread before it
/// stops reading from the network.
const RECEIVE_BUFFER: usize = 1 << 20;

/// Connects to `url` with the default settings; see [`Client`].
pub async fn connect(url: impl Into<String>) -> Result<ClientSocket, ConnectError> {
    Client::new(url).connect().await
}

/// How to connect: the URL, headers, subprotocols, compression, limits.
///
/// Settings are those of the server's [`Config`] (message size limit, idle
/// timeout and pings, backpressure, close timeout), plus the handshake's.
///
/// ```no_run
/// use std::time::Duration;
/// use wshub::{Client, Compression, Config};
///
/// # #[allow(dead_code)]
/// # async fn demo() -> Result<(), wshub::client::ConnectError> {
/// let socket = Client::new("wss://example.com/feed")
///     .protocols(["v2.feed", "v1.feed"])
///     .compression(Compression::SHARED)
///     .config(Config::default().max_payload_length(1 << 20))
///     .connect_timeout(Duration::from_secs(5))
///     .connect()
///     .await?;
/// println!("speaking {:?}", socket.protocol());
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a client does nothing until it connects"]
pub struct Client {
    url: String,
    headers: HeaderMap,
    /// The first custom header that was not valid HTTP.
    bad_header: Option<String>,
    protocols: Vec<String>,
    config: Config,
    connect_timeout: Duration,
    hub: Option<Hub>,
    receive_buffer: usize,
    tls: connect::TlsSettings,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("protocols", &self.protocols)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `url` (`ws://`, `wss://`; `http://` and `https://` are
    /// taken to mean the same), with the default [`Config`], no
    /// compression, and a 10 s connect timeout. `wss://` needs the `tls`
    /// feature; without it, connecting fails with
    /// [`ConnectError::TlsUnavailable`].
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: HeaderMap::new(),
            bad_header: None,
            protocols: Vec::new(),
            config: Config::default(),
            connect_timeout: Duration::from_secs(10),
            hub: None,
            receive_buffer: RECEIVE_BUFFER,
            tls: connect::TlsSettings::default(),
        }
    }

    /// Adds a header to the upgrade request (Bun's `new WebSocket(url,
    /// { headers })`). A `Host` header replaces the URL's; the WebSocket
    /// headers themselves are refused at connect, as are invalid names or
    /// values.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            (Ok(name), Err(_)) => {
                self.bad_header.get_or_insert_with(|| name.to_string());
            }
            (Err(_), _) => {
                self.bad_header
                    .get_or_insert_with(|| "(invalid name)".to_owned());
            }
        }
        self
    }

    /// The subprotocols to offer, in order of preference.
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The socket's settings (limits, timeouts, pings, compression).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Offers `permessage-deflate` with these compressors: `compress` for
    /// what this client sends, `decompress` for what it receives, with the
    /// server's choices ([`Compression::SHARED`] is Bun's
    /// `perMessageDeflate: true`).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// The longest DNS, TCP, TLS and the upgrade may take together.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The hub the socket's topics live in (a client socket can subscribe
    /// like a server's: a publish then reaches it, masked as a client's
    /// frames must be). By default each connection has a hub of its own;
    /// share one among many connections to save its sweeper task.
    pub fn hub(mut self, hub: &Hub) -> Self {
        self.hub = Some(hub.clone());
        self
    }

    /// The TLS configuration for `wss://` URLs (feature `tls`), in place of
    /// the default: rustls with the ring provider, the Mozilla roots of
    /// `webpki-roots`, ALPN `http/1.1`. Build it from
    /// [`wshub::tls::rustls`](crate::tls::rustls) so the versions match, and
    /// keep ALPN to `http/1.1` (or empty): a WebSocket upgrade is HTTP/1.1.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<crate::tls::rustls::ClientConfig>) -> Self {
        self.tls.config = Some(config);
        self
    }

    /// Trusts the certificates of `roots` for `wss://` URLs (feature `tls`)
    /// instead of the Mozilla roots: a private CA, a test certificate.
    ///
    /// ```no_run
    /// use wshub::tls::rustls::RootCertStore;
    /// use wshub::tls::rustls::pki_types::CertificateDer;
    /// use wshub::tls::rustls::pki_types::pem::PemObject as _;
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut roots = RootCertStore::empty();
    /// for cert in CertificateDer::pem_file_iter("ca.pem")? {
    ///     roots.add(cert?)?;
    /// }
    /// let socket = wshub::Client::new("wss://internal.example:8443/feed")
    ///     .tls_roots(roots)
    ///     .connect()
    ///     .await?;
    /// # drop(socket); Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_roots(self, roots: crate::tls::rustls::RootCertStore) -> Self {
        self.tls_config(tls::config_with_roots(roots))
    }

    /// How many bytes of received messages a [`ClientSocket`] holds unread
    /// before it stops reading from the server (1 MiB by default; at least
    /// one message is always taken). Each message counts its payload and
    /// its place in the queue, so a flood of empty messages is bounded too.
    pub fn receive_buffer(mut self, bytes: usize) -> Self {
        self.receive_buffer = bytes;
        self
    }

    /// Connects, and returns the socket as a stream of messages.
    pub async fn connect(self) -> Result<ClientSocket, ConnectError> {
        let inbox = Inbox::new(self.receive_buffer);
        let ws = self.connect_shared(Arc::new(inbox::Forward), inbox).await?;
        Ok(ClientSocket::new(ws))
    }

    /// Connects, and runs the socket with `handler` and `data`, as the
    /// server runs its sockets: `open` first, then `message`, `drain`,
    /// `ping`, `pong`, and `close` once at the end. Returns the socket's
    /// handle.
    ///
    /// ```no_run
    /// use wshub::{Client, Handler, Message, WebSocket};
    ///
    /// # #[allow(dead_code)]
    /// struct Echo;
    /// impl Handler for Echo {
    ///     type Data = ();
    ///     async fn message(&self, ws: &WebSocket, msg: Message) {
    ///         ws.send(msg);
    ///     }
    /// }
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo() -> Result<(), wshub::client::ConnectError> {
    /// let ws = Client::new("ws://127.0.0.1:9001/").connect_with(Echo, ()).await?;
    /// ws.send("hi");
    /// # Ok(()) }
    /// ```
    pub async fn connect_with<H: Handler>(
        self,
        handler: H,
        data: H::Data,
    ) -> Result<WebSocket<H::Data>, ConnectError> {
        self.connect_shared(Arc::new(handler), data).await
    }

    /// [`connect_with`](Self::connect_with) for a handler shared with other
    /// connections.
    pub async fn connect_shared<H: Handler>(
        self,
        handler: Arc<H>,
        data: H::Data,
    ) -> Result<WebSocket<H::Data>, ConnectError> {
        let timeout = self.connect_timeout;
        let open = tokio::time::timeout(timeout, self.handshake())
            .await
            .map_err(|_| ConnectError::Timeout(timeout))??;
        let hub = self.hub.unwrap_or_default();
        let config = Arc::new(self.config);
        Ok(driver::start(
            handler,
            config,
            Arc::clone(hub.inner()),
            data,
            open,
        ))
    }

    /// Connects and runs the opening handshake.
    async fn handshake(&self) -> Result<Open, ConnectError> {
        if let Some(name) = &self.bad_header {
            return Err(ConnectError::InvalidHeader(name.clone()));
        }
        if let Some(name) = handshake::RESERVED
            .iter()
            .find(|name| self.headers.contains_key(*name))
        {
            return Err(ConnectError::ReservedHeader(name.clone()));
        }
        let target = Target::parse(&self.url)?;
        let (mut transport, peer) = connect::open(&target, &self.tls).await?;
        let key = handshake::new_key();
        let compression = self.config.compression;
        let offer = client_offer(compression);
        let request = handshake::request(
            &target,
            &key,
            &self.protocols,
            offer.as_ref(),
            &self.headers,
        );
        transport.write_all(&request).await?;
        transport.flush().await?;
        let mut response = handshake::read_response(&mut transport).await?;
        if response.status != StatusCode::SWITCHING_PROTOCOLS {
            let body = handshake::read_body(&mut transport, &mut response).await;
            return Err(ConnectError::Rejected {
                status: response.status,
                headers: Box::new(response.headers),
                body,
            });
        }
        let agreed = handshake::check(&response, &key, &self.protocols, compression)?;
        Ok(Open {
            transport,
            prefix: response.rest.freeze(),
            role: Role::Client,
            remote_addr: Some(peer),
            protocol: agreed.protocol,
            deflate: agreed.deflate,
            path: target.path.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    #[tokio::test]
    async fn bad_headers_fail_before_connecting() {
        let bad_value = Client::new("ws://127.0.0.1:9/").header("x-token", "line\nbreak");
        assert!(matches!(
            bad_value.connect().await,
            Err(ConnectError::InvalidHeader(name)) if name == "x-token"
        ));
        let reserved = Client::new("ws://127.0.0.1:9/").header(header::SEC_WEBSOCKET_KEY, "x");
        assert!(matches!(
            reserved.connect().await,
            Err(ConnectError::ReservedHeader(name)) if name == header::SEC_WEBSOCKET_KEY
        ));
    }
}
