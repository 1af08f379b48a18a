//! cargo run --release --example echo [-- ADDR]
//!
//! An echo server: every text or binary message comes back as it was sent.
//! Listens on ws://127.0.0.1:9001 unless ADDR says otherwise; the Autobahn
//! conformance run (`scripts/autobahn.sh`) tests it.

use axum::{Router, routing::get};
use wshub::{Handler, Message, Upgrade, WebSocket, WebSocketLayer};

struct Echo;

impl Handler for Echo {
    type Data = ();

    async fn message(&self, ws: &WebSocket, msg: Message) {
        ws.send(msg);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let app = Router::new()
        .route("/", get(|up: Upgrade| async move { up.accept(()) }))
        .layer(WebSocketLayer::new(Echo));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("echo server on ws://{}", listener.local_addr()?);
    wshub::serve(listener, app).await
}
