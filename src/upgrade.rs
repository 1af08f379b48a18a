//! The `Upgrade<T>` extractor: a checked handshake the application accepts
//! with typed data, or answers with any other response.

use std::any::{Any, TypeId};
use std::hash::{Hash, Hasher as _};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http::header::{self, HeaderName, HeaderValue};
use http::{Extensions, HeaderMap, Method, Request, StatusCode, Version};
use hyper::upgrade::OnUpgrade;

use crate::Response;
use crate::deflate::{Compression, Negotiated, negotiate};
use crate::protocol::handshake::{self, HandshakeError};

/// Put into every request by the layer: which layer, and the data type its handler takes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerMark {
    pub(crate) layer: u64,
    pub(crate) data_type: TypeId,
    pub(crate) data_type_name: &'static str,
    pub(crate) compression: Compression,
}

/// Put into the 101 response by [`Upgrade::accept`], taken back by the layer.
#[derive(Clone)]
pub(crate) struct Accepted(Arc<Mutex<Option<AcceptedConn>>>);

/// What the layer needs to start the connection.
pub(crate) struct AcceptedConn {
    pub(crate) layer: u64,
    pub(crate) on_upgrade: OnUpgrade,
    pub(crate) data: Box<dyn Any + Send + Sync>,
    pub(crate) protocol: Option<Box<str>>,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) deflate: Option<Negotiated>,
    /// The request path, for the connection's tracing span.
    pub(crate) path: Box<str>,
    /// Over an HTTP/2 stream (RFC 8441) rather than an upgraded HTTP/1.1
    /// connection.
    pub(crate) http2: bool,
    /// The socket's colocation group (see [`Upgrade::colocate`]), hashed.
    pub(crate) colocate: Option<u64>,
}

impl Accepted {
    /// Takes the connection if `layer` is the one that accepted it.
    pub(crate) fn claim(&self, layer: u64) -> Option<AcceptedConn> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(conn) if conn.layer == layer => slot.take(),
            _ => None,
        }
    }
}

/// A valid WebSocket handshake waiting for the application's answer.
///
/// Get it as an axum extractor, or with [`Upgrade::from_request`] in a plain
/// tower service; both need [`WebSocketLayer`](crate::WebSocketLayer) in front.
/// Answer with [`accept`](Self::accept), which attaches the socket's typed
/// data, or with any other response (a 401, a page): the socket then never opens.
///
/// `T` must be the layer's [`Handler::Data`](crate::Handler::Data).
///
/// Route it with `any(..)`: then every request at the route reaches the
/// extractor, and one that is not a handshake gets its answer with a message
/// (a `POST` gets 405 and `Allow: GET`). A `get(..)` route works for
/// HTTP/1.1 too, but axum answers other methods itself, with an empty 405.
///
/// Over HTTP/2 (the `http2` feature, RFC 8441) the handshake is a `CONNECT`
/// request, which a `get` route alone refuses before the extractor runs. The
/// socket is then one stream of the HTTP/2 connection, with the same
/// handler, hub, limits and backpressure; [`accept`](Self::accept) answers
/// `200` instead of `101`.
///
/// As an extractor it runs before the route's code: a request that is not a
/// valid handshake gets its 4xx (a plain `GET` gets 426) before the route
/// could answer, say, 401. Take `Result<Upgrade<T>, UpgradeRejection>` to
/// decide in the route which answer comes first.
///
/// ```
/// use axum::{Router, http::StatusCode, response::{IntoResponse, Response}, routing::get};
/// use wshub::{Handler, Upgrade, WebSocketLayer};
///
/// struct User { name: String }
/// struct Chat;
/// impl Handler for Chat {
///     type Data = User;
///     async fn open(&self, ws: &wshub::WebSocket<User>) {
///         ws.send(format!("welcome, {}", ws.data().name));
///     }
/// }
///
/// async fn ws(up: Upgrade<User>, headers: axum::http::HeaderMap) -> Response {
///     match headers.get("x-user").and_then(|v| v.to_str().ok()) {
///         Some(name) => up
///             .header("x-welcome", name)
///             .accept(User { name: name.to_owned() }),
///         None => StatusCode::UNAUTHORIZED.into_response(),
///     }
/// }
///
/// let _app: Router = Router::new()
///     .route("/ws", get(ws))
///     .layer(WebSocketLayer::new(Chat));
/// ```
pub struct Upgrade<T = ()> {
    layer: u64,
    on_upgrade: OnUpgrade,
    /// `Sec-WebSocket-Key` over HTTP/1.1; none over HTTP/2, which has no key.
    key: Option<HeaderValue>,
    offered: Vec<Box<str>>,
    protocol: Option<Box<str>>,
    headers: HeaderMap,
    bad_header: bool,
    remote_addr: Option<SocketAddr>,
    deflate: Option<(Negotiated, HeaderValue)>,
    path: Box<str>,
    colocate: Option<u64>,
    _data: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for Upgrade<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade")
            .field("offered", &self.offered)
            .field("protocol", &self.protocol)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Upgrade<T> {
    /// Checks the handshake of a request that went through the layer.
    pub fn from_request<B>(req: &mut Request<B>) -> Result<Self, UpgradeRejection> {
        let mut extensions = std::mem::take(req.extensions_mut());
        let (method, version) = (req.method(), req.version());
        let result = Self::extract(
            method,
            version,
            req.uri().path(),
            req.headers(),
            &mut extensions,
        );
        *req.extensions_mut() = extensions;
        result
    }

    /// Checks the handshake from request parts that went through the layer.
    pub fn from_parts(parts: &mut http::request::Parts) -> Result<Self, UpgradeRejection> {
        Self::extract(
            &parts.method,
            parts.version,
            parts.uri.path(),
            &parts.headers,
            &mut parts.extensions,
        )
    }

    fn extract(
        method: &Method,
        version: Version,
        path: &str,
        headers: &HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Self, UpgradeRejection> {
        let mark = *extensions
            .get::<LayerMark>()
            .ok_or(UpgradeRejection::MissingLayer)?;
        if mark.data_type != TypeId::of::<T>() {
            return Err(UpgradeRejection::DataTypeMismatch {
                layer: mark.data_type_name,
                extractor: std::any::type_name::<T>(),
            });
        }
        let key = match version {
            #[cfg(feature = "http2")]
            Version::HTTP_2 => {
                let protocol = extensions
                    .get::<hyper::ext::Protocol>()
                    .map(hyper::ext::Protocol::as_str);
                handshake::validate_extended_connect(method, protocol, headers)?;
                None
            }
            _ => Some(handshake::validate_request(method, version, headers)?.clone()),
        };
        let on_upgrade = extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeRejection::NotUpgradable)?;
        let offered = handshake::list_tokens(headers, &header::SEC_WEBSOCKET_PROTOCOL)
            .map(Box::from)
            .collect();
        Ok(Self {
            layer: mark.layer,
            on_upgrade,
            key,
            offered,
            protocol: None,
            headers: HeaderMap::new(),
            bad_header: false,
            remote_addr: connect_info(extensions),
            deflate: negotiate(
                headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS),
                mark.compression,
            ),
            path: path.into(),
            colocate: None,
            _data: PhantomData,
        })
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.offered.iter().map(|p| &**p)
    }

    /// Selects `protocol` if the client offered it; otherwise the response
    /// names no protocol (RFC 6455 allows only one the client offered).
    pub fn protocol(mut self, protocol: &str) -> Self {
        if let Some(offered) = self.offered.iter().find(|p| ***p == *protocol) {
            self.protocol = Some(offered.clone());
        }
        self
    }

    /// Selects the first of `supported` (the server's order of preference)
    /// that the client offered, if any.
    pub fn protocols<I, S>(mut self, supported: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for protocol in supported {
            if self.offered.iter().any(|p| **p == *protocol.as_ref()) {
                self.protocol = Some(protocol.as_ref().into());
                break;
            }
        }
        self
    }

    /// Adds a header to the 101 response, such as `set-cookie`.
    ///
    /// An invalid name or value makes [`accept`](Self::accept) answer 500
    /// instead of opening a socket.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => self.bad_header = true,
        }
        self
    }

    /// Runs the socket beside the other open sockets colocated under an
    /// equal `key`, such as a chat room's name: on the same socket loop,
    /// and so on one thread at a time.
    ///
    /// [`serve`](crate::serve) runs its sockets many to a socket loop, one
    /// loop per worker thread of the runtime, and spreads them over the
    /// loops in turn. A publish that reaches sockets on several loops hands
    /// each of those loops a batch and wakes it: threads hand work to one
    /// another for every burst. Sockets that mostly publish to one another
    /// (a room) save that when they share a loop: their publishes are
    /// delivered on the thread that made them. Sockets of different keys
    /// still spread over the loops, so many rooms still use every thread.
    ///
    /// The first socket of a key goes to the loop with the fewest keys (of
    /// those, the fewest sockets); the next ones follow it as long as one
    /// of them is open. Each socket's place is chosen once, when it opens:
    /// a socket that later joins other topics stays where it is (its
    /// publishes reach them as any publish does). What it costs: all of a
    /// key's sockets share one thread, so one very large, very busy room is
    /// written by one thread instead of several; leave such a room spread.
    ///
    /// Sockets that run a task each (behind `axum::serve`, over TLS or
    /// HTTP/2) have no loop: there the key changes nothing.
    ///
    /// ```
    /// use axum::{Router, http::Uri, response::Response, routing::any};
    /// use wshub::{Handler, Upgrade, WebSocket, WebSocketLayer};
    ///
    /// struct Chat;
    /// impl Handler for Chat {
    ///     type Data = String; // the room
    ///     async fn open(&self, ws: &WebSocket<String>) {
    ///         ws.subscribe(ws.data());
    ///     }
    /// }
    ///
    /// // `/ws?room=NAME`: each room's sockets on one socket loop.
    /// async fn join(up: Upgrade<String>, uri: Uri) -> Response {
    ///     let room = uri.query().and_then(|q| q.strip_prefix("room="));
    ///     let room = room.unwrap_or("lobby").to_owned();
    ///     up.colocate(&room).accept(room)
    /// }
    ///
    /// let _app: Router = Router::new()
    ///     .route("/ws", any(join))
    ///     .layer(WebSocketLayer::new(Chat));
    /// ```
    pub fn colocate<K: Hash + ?Sized>(mut self, key: &K) -> Self {
        // A fixed hasher: equal keys give equal groups in every thread. Two
        // keys that collide share a loop, nothing more.
        let mut hasher = std::hash::DefaultHasher::new();
        key.hash(&mut hasher);
        self.colocate = Some(hasher.finish());
        self
    }

    /// Accepts the upgrade: the response that opens the socket with `data`,
    /// `101 Switching Protocols` over HTTP/1.1, `200` over HTTP/2.
    pub fn accept(self, data: T) -> Response {
        if self.bad_header {
            return plain_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "invalid header name or value given to `Upgrade::header`",
            );
        }
        let mut response = Response::new(crate::Body::empty());
        // Over HTTP/2 a `200` opens the stream as it is (RFC 8441 §5): no
        // key to answer, and no connection-level headers.
        if let Some(key) = &self.key {
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            let accept = handshake::accept_key(key.as_bytes());
            if let Ok(accept) = HeaderValue::try_from(accept) {
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
        }
        let headers = response.headers_mut();
        if let Some(protocol) = self
            .protocol
            .as_deref()
            .and_then(|p| HeaderValue::try_from(p).ok())
        {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        let deflate = self.deflate.map(|(negotiated, answer)| {
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, answer);
            negotiated
        });
        headers.extend(self.headers);
        let conn = AcceptedConn {
            layer: self.layer,
            on_upgrade: self.on_upgrade,
            data: Box::new(data),
            protocol: self.protocol,
            remote_addr: self.remote_addr,
            deflate,
            path: self.path,
            http2: self.key.is_none(),
            colocate: self.colocate,
        };
        response
            .extensions_mut()
            .insert(Accepted(Arc::new(Mutex::new(Some(conn)))));
        response
    }
}

#[cfg(feature = "axum")]
fn connect_info(extensions: &Extensions) -> Option<SocketAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

#[cfg(not(feature = "axum"))]
fn connect_info(_: &Extensions) -> Option<SocketAddr> {
    None
}

#[cfg(feature = "axum")]
impl<S, T> axum::extract::FromRequestParts<S> for Upgrade<T>
where
    S: Send + Sync,
    T: Send + Sync + 'static,
{
    type Rejection = UpgradeRejection;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::from_parts(parts)
    }
}

/// Why a request could not become a WebSocket, with the response it gets;
/// also the rejection of the [`Hub`](crate::Hub) extractor.
///
/// A malformed handshake is the client's fault (4xx); a missing layer or a
/// mismatched data type is the server's (500), with a message that says what
/// to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeRejection {
    /// The request is not a valid opening handshake.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The route uses `Upgrade` but the request did not pass a `WebSocketLayer`.
    #[error(
        "`Upgrade` needs `WebSocketLayer`: add `.layer(WebSocketLayer::new(handler))` to the router or route"
    )]
    MissingLayer,
    /// The route extracts [`Hub`](crate::Hub) but the request did not pass a
    /// `WebSocketLayer`.
    #[error(
        "`Hub` needs `WebSocketLayer`: add `.layer(WebSocketLayer::new(handler))` to the router or route"
    )]
    HubMissingLayer,
    /// The extractor's data type is not the layer's `Handler::Data`.
    #[error("`Upgrade<{extractor}>` does not match the layer's `Handler::Data = {layer}`")]
    DataTypeMismatch {
        /// The layer's `Handler::Data`.
        layer: &'static str,
        /// The type the route asked for.
        extractor: &'static str,
    },
    /// The server connection cannot be upgraded (hyper without `with_upgrades`).
    #[error("this connection cannot be upgraded: serve it with hyper's `with_upgrades()`")]
    NotUpgradable,
}

impl UpgradeRejection {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Handshake(HandshakeError::NotUpgrade | HandshakeError::WebSocketVersion) => {
                StatusCode::UPGRADE_REQUIRED
            }
            Self::Handshake(HandshakeError::MethodNotGet | HandshakeError::MethodNotConnect) => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            Self::Handshake(_) => StatusCode::BAD_REQUEST,
            Self::MissingLayer
            | Self::HubMissingLayer
            | Self::DataTypeMismatch { .. }
            | Self::NotUpgradable => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<UpgradeRejection> for Response {
    fn from(rejection: UpgradeRejection) -> Self {
        crate::telemetry::rejected(rejection.status().as_u16());
        let mut response = plain_response(rejection.status(), &rejection.to_string());
        let headers = response.headers_mut();
        match rejection {
            UpgradeRejection::Handshake(HandshakeError::NotUpgrade) => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
            UpgradeRejection::Handshake(HandshakeError::WebSocketVersion) => {
                headers.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            UpgradeRejection::Handshake(HandshakeError::MethodNotGet) => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
            }
            UpgradeRejection::Handshake(HandshakeError::MethodNotConnect) => {
                headers.insert(header::ALLOW, HeaderValue::from_static("CONNECT"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        self.into()
    }
}

fn plain_response(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(crate::Body::from(message.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
