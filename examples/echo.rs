//! cargo run --release --example echo [-- ADDR [COMPRESSION]]
//! cargo run --release --example echo --features tls -- --tls [ADDR [COMPRESSION]]
//!
//! An echo server: every text or binary message comes back as it was sent.
//! Listens on ws://127.0.0.1:9001 unless ADDR says otherwise. COMPRESSION
//! picks `permessage-deflate`: `off`, `shared` (the default) or
//! `dedicated`. The Autobahn conformance run (`scripts/autobahn.sh`) tests it.
//!
//! With `--tls` it serves `wss://` with a self-signed certificate for
//! `localhost` and `127.0.0.1`, made at start (clients must trust it, or
//! skip verification: `websocat -k`, `--ignore-certificate-errors`).
//! The first line on stdout is the URL.

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tls = args.iter().any(|arg| arg == "--tls");
    let mut args = args.into_iter().filter(|arg| arg != "--tls");
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
    let addr = listener.local_addr()?;
    if tls {
        return serve_tls(listener, app, &mode).await;
    }
    println!("echo server on ws://{addr} ({mode})");
    wshub::serve(listener, app).await
}

#[cfg(feature = "tls")]
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    mode: &str,
) -> std::io::Result<()> {
    let config = self_signed().map_err(std::io::Error::other)?;
    println!("echo server on wss://{} ({mode})", listener.local_addr()?);
    wshub::serve(listener, app).tls(config).await
}

#[cfg(not(feature = "tls"))]
async fn serve_tls(_: tokio::net::TcpListener, _: Router, _: &str) -> std::io::Result<()> {
    eprintln!("--tls needs the `tls` feature: cargo run --example echo --features tls -- --tls");
    std::process::exit(2);
}

/// A TLS configuration with a certificate for `localhost` and `127.0.0.1`,
/// signed by itself, made now.
#[cfg(feature = "tls")]
fn self_signed() -> Result<
    std::sync::Arc<wshub::tls::rustls::ServerConfig>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let generated = rcgen::generate_simple_self_signed(names)?;
    let cert = generated.cert.pem();
    let key = generated.signing_key.serialize_pem();
    let key = wshub::tls::parse_pem(cert.as_bytes(), key.as_bytes())?;
    Ok(wshub::tls::server_config(key))
}
