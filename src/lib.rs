//! wshub
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod driver;
mod error;
mod handler;
mod layer;
pub mod protocol;
mod socket;
mod upgrade;

pub use config::Config;
pub use error::Error;
pub use handler::Handler;
pub use layer::{ResponseFuture, WebSocketLayer, WebSocketService};
pub use protocol::handshake::HandshakeError;
pub use protocol::{Message, ProtocolError, close_code};
pub use socket::{ReadyState, SendStatus, WebSocket};
pub use upgrade::{Upgrade, UpgradeRejection};

/// The body of the responses wshub builds (axum's body type).
pub type Body = axum_core::body::Body;
/// The responses wshub builds: [`Upgrade::accept`]'s 101 and the rejections.
pub type Response = http::Response<Body>;
