//! `WebSocketLayer` and `WebSocketService`: the tower middleware that marks
//! requests for [`Upgrade`](crate::Upgrade) and starts accepted connections.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::upgrade::{Accepted, LayerMark};
use crate::{Config, Handler, Hub, driver};

/// Serves WebSockets with one [`Handler`] for every socket that passes it.
///
/// Add it to an axum `Router` (whole router or one route) or any tower
/// stack; other layers may sit before and after it. Routes then answer the
/// handshake with the [`Upgrade`](crate::Upgrade) extractor.
///
/// ```
/// use axum::{Router, routing::get};
/// use wshub::{Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer};
///
/// struct Echo;
/// impl Handler for Echo {
///     type Data = ();
///     async fn message(&self, ws: &WebSocket, msg: Message) {
///         ws.send(msg);
///     }
/// }
///
/// let _app: Router = Router::new()
///     .route("/echo", get(|up: Upgrade| async move { up.accept(()) }))
///     .layer(WebSocketLayer::new(Echo).config(Config::default().max_payload_length(1 << 20)));
/// ```
pub struct WebSocketLayer<H> {
    id: u64,
    handler: Arc<H>,
    config: Arc<Config>,
    hub: Hub,
}

impl<H> Clone for WebSocketLayer<H> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            handler: Arc::clone(&self.handler),
            config: Arc::clone(&self.config),
            hub: self.hub.clone(),
        }
    }
}

impl<H> std::fmt::Debug for WebSocketLayer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketLayer")
            .field("handler", &std::any::type_name::<H>())
            .field("config", &self.config)
            .field("hub", &self.hub)
            .finish()
    }
}

impl<H: Handler> WebSocketLayer<H> {
    /// A layer whose sockets all use `handler`, with the default [`Config`].
    pub fn new(handler: H) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            handler: Arc::new(handler),
            config: Arc::new(Config::default()),
            hub: Hub::new(),
        }
    }

    /// The hub of this layer's sockets: publish to them from anywhere.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }

    /// Uses `hub` instead of a hub of its own, so that several layers (say,
    /// two routes with different handlers) share topics.
    pub fn with_hub(mut self, hub: Hub) -> Self {
        self.hub = hub;
        self
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Arc::new(config);
        self
    }

    fn mark(&self) -> LayerMark {
        LayerMark {
            layer: self.id,
            data_type: TypeId::of::<H::Data>(),
            data_type_name: std::any::type_name::<H::Data>(),
            compression: self.config.compression,
        }
    }
}

impl<S, H> Layer<S> for WebSocketLayer<H> {
    type Service = WebSocketService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        WebSocketService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`WebSocketLayer`] wraps around the application.
pub struct WebSocketService<S, H> {
    inner: S,
    layer: WebSocketLayer<H>,
}

impl<S: Clone, H> Clone for WebSocketService<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, H> std::fmt::Debug for WebSocketService<S, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, H, ReqBody, ResBody> Service<Request<ReqBody>> for WebSocketService<S, H>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    H: Handler,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let extensions = req.extensions_mut();
        extensions.insert(self.layer.mark());
        extensions.insert(self.layer.hub.clone());
        ResponseFuture {
            inner: self.inner.call(req),
            layer: Some(self.layer.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`WebSocketService`]: the application's answer,
    /// and the connection started if it accepted the upgrade.
    pub struct ResponseFuture<F, H> {
        #[pin]
        inner: F,
        layer: Option<WebSocketLayer<H>>,
    }
}

impl<F, H> std::fmt::Debug for ResponseFuture<F, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, H, ResBody, E> Future for ResponseFuture<F, H>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    H: Handler,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            other => return other,
        };
        let accepted = response.extensions().get::<Accepted>().cloned();
        if let (Some(accepted), Some(layer)) = (accepted, this.layer.take()) {
            if let Some(conn) = accepted.claim(layer.id) {
                response.extensions_mut().remove::<Accepted>();
                driver::spawn(layer.handler, layer.config, &layer.hub, conn);
            }
        }
        Poll::Ready(Ok(response))
    }
}
