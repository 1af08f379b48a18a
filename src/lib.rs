//! WebSockets for tower and axum, the way Bun and uWebSockets serve them.
//!
//! - **One handler set per server.** Implement [`Handler`] once; every socket
//!   shares it. Per-socket state is typed data ([`Handler::Data`]) attached
//!   when the upgrade is accepted.
//! - **An upgrade layer for any tower stack.** [`WebSocketLayer`] drops into an
//!   axum `Router` (or any tower service) next to tracing, auth and cookies;
//!   routes decide with the [`Upgrade`] extractor, like Bun's `fetch`:
//!   [`accept`](Upgrade::accept) with data and extra 101 headers, or answer
//!   with any other response.
//! - **Fast and bounded.** Its own RFC 6455 codec with streaming UTF-8
//!   validation, batched vectored writes, no read buffer held by an idle
//!   socket, and limits that close bad peers with the right code instead of
//!   growing memory.
//!
//! ```
//! use axum::{Router, routing::get};
//! use wshub::{Handler, Message, Upgrade, WebSocket, WebSocketLayer};
//!
//! struct User { name: String }
//! struct Greeter;
//!
//! impl Handler for Greeter {
//!     type Data = User;
//!
//!     async fn message(&self, ws: &WebSocket<User>, msg: Message) {
//!         let text = msg.as_text().unwrap_or_default();
//!         ws.send(format!("{} says {text}", ws.data().name));
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new()
//!     .route("/ws", get(|up: Upgrade<User>| async move { up.accept(User { name: "ada".into() }) }))
//!     .layer(WebSocketLayer::new(Greeter));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move { wshub::serve(listener, app).await });
//! # use futures_util::{SinkExt, StreamExt};
//! # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
//! # client.send("hi".into()).await?;
//! # let reply = client.next().await.ok_or("no reply")??;
//! # assert_eq!(reply.into_text()?.as_str(), "ada says hi");
//! # Ok(()) }
//! ```
//!
//! The [`protocol`] module is the codec alone, pure code with no I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

mod clock;
mod config;
mod deflate;
mod driver;
mod error;
#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod handler;
mod hub;
mod layer;
pub mod protocol;
#[cfg(feature = "axum")]
mod serve;
mod socket;
mod upgrade;

pub use config::Config;
pub use deflate::{Compression, Compressor};
pub use error::Error;
pub use handler::Handler;
pub use hub::Hub;
pub use layer::{ResponseFuture, WebSocketLayer, WebSocketService};
pub use protocol::handshake::HandshakeError;
pub use protocol::{Message, ProtocolError, close_code};
#[cfg(feature = "axum")]
pub use serve::{Serve, WithGracefulShutdown, serve};
pub use socket::{ReadyState, SendStatus, WebSocket};
pub use upgrade::{Upgrade, UpgradeRejection};

/// The body of the responses wshub builds (axum's body type).
pub type Body = axum_core::body::Body;
/// The responses wshub builds: [`Upgrade::accept`]'s 101 and the rejections.
pub type Response = http::Response<Body>;
