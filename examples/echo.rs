//! cargo run --release --example echo [-- ADDR [COMPRESSION]]
//!
//! An echo server: every text or binary message comes back as it was sent.
//! Listens on ws://127.0.0.1:9001 unless ADDR says otherwise. COMPRESSION
//! picks `permessage-deflate`: `off`, `shared` (the default) or
//! `dedicated`. The Autobahn conformance run (`scripts/autobahn.sh`) tests it.

use axum::{Router, routing::get};
use wshub::{
    Compression, Compressor, Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer,
};

struct Echo;

impl Handler for Echo {
    type Data = ();

    async fn message(&self, ws: &WebSocket, msg: Message) {
        ws.send(msg);
    }
}

fn compression(name: &str) -> Option<Compression> {
    Some(match name {
        "off" => Compression::DISABLED,
        "shared" => Compression::SHARED,
        "dedicated" => Compression {
            compress: Compressor::Dedicated,
            decompress: Compressor::Dedicated,
        },
        _ => return None,
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let mode = args.next().unwrap_or_else(|| "shared".to_owned());
    let Some(compression) = compression(&mode) else {
        eprintln!("unknown compression {mode:?}: off, shared or dedicated");
        std::process::exit(2);
    };
    let config = Config::default().compression(compression);
    let app = Router::new()
        .route("/", get(|up: Upgrade| async move { up.accept(()) }))
        .layer(WebSocketLayer::new(Echo).config(config));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("echo server on ws://{} ({mode})", listener.local_addr()?);
    wshub::serve(listener, app).await
}
