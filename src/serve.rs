//! [`serve`]: `axum::serve` set up the way WebSockets need it.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::middleware::AddExtension;
use axum::serve::{ListenerExt as _, Serve, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// What [`serve`] returns: axum's `Serve`, to `.await` or to give
/// `.with_graceful_shutdown(..)`.
pub type Server = Serve<
    TapIo<TcpListener, fn(&mut TcpStream)>,
    IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    AddExtension<Router, ConnectInfo<SocketAddr>>,
>;

/// Serves `app` like `axum::serve`, with two settings WebSocket servers want:
///
/// - **`TCP_NODELAY`** on every connection. wshub batches its writes itself;
///   with Nagle's algorithm on, a small frame written while an earlier one is
///   unacknowledged waits for the peer's delayed ACK (up to 40 ms on Linux),
///   which caps a chat room at a few hundred batches per second.
/// - **The peer's address** for [`WebSocket::remote_addr`](crate::WebSocket::remote_addr)
///   (axum's `ConnectInfo<SocketAddr>`, also usable by the routes).
///
/// With `axum::serve` itself, get the same with
/// `axum::serve(listener.tap_io(|tcp| { let _ = tcp.set_nodelay(true); }), app.into_make_service_with_connect_info::<SocketAddr>())`.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use wshub::{Handler, Upgrade, WebSocketLayer};
///
/// struct Feed;
/// impl Handler for Feed { type Data = (); }
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let app = Router::new()
///     .route("/ws", get(|up: Upgrade| async move { up.accept(()) }))
///     .layer(WebSocketLayer::new(Feed));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// wshub::serve(listener, app).await
/// # }
/// ```
pub fn serve(listener: TcpListener, app: Router) -> Server {
    let listener = listener.tap_io(set_nodelay as fn(&mut TcpStream));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
}

fn set_nodelay(tcp: &mut TcpStream) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
}
