//! cargo run --features redis --example redis_chat [-- [--redis URL | --cluster URL,URL...] PORT...]
//!
//! One chat room shared by several servers through Redis: a server (its own
//! `RedisBridge`, so its own node) on each PORT, 3001 and 3002 unless told
//! otherwise, all on the Redis at URL (`redis://127.0.0.1:6379/` unless
//! told otherwise; port 0 picks a free one), or on the Redis Cluster that
//! the URLs after `--cluster` belong to (sharded pub/sub). Run it once with
//! two ports, or once per port in two terminals to have two processes.
//! Then chat across them:
//!
//! ```text
//! redis-server --port 6379 --save ''
//! cargo run --features redis --example redis_chat -- 3001 &
//! cargo run --features redis --example redis_chat -- 3002 &
//! cargo run --features client --example client -- 'ws://127.0.0.1:3001/?name=ada'
//! cargo run --features client --example client -- 'ws://127.0.0.1:3002/?name=bob'
//! ```

use std::collections::HashMap;

use axum::extract::Query;
use axum::{Router, routing::get};
use wshub::redis::RedisBridge;
use wshub::{Handler, Message, Upgrade, WebSocket, WebSocketLayer};

/// Everyone joins the room on open; each message goes to the whole room.
struct Room;

impl Handler for Room {
    /// The user's name.
    type Data = String;

    async fn open(&self, ws: &WebSocket<String>) {
        ws.subscribe("room");
    }

    async fn message(&self, ws: &WebSocket<String>, msg: Message) {
        let text = msg.as_text().unwrap_or("(binary)");
        let line = Message::text_fmt(format_args!("{}: {text}", ws.data()));
        ws.send(line.clone()); // publish leaves out the sender
        ws.publish("room", line);
    }
}

/// `ws://HOST:PORT/?name=NAME`
async fn join(up: Upgrade<String>, query: Query<HashMap<String, String>>) -> wshub::Response {
    let name = query
        .get("name")
        .cloned()
        .unwrap_or_else(|| "anonymous".into());
    up.accept(name)
}

/// Where the nodes' Redis is.
#[derive(Clone)]
enum Redis {
    Single(String),
    Cluster(Vec<String>),
}

async fn serve_node(
    redis: Redis,
    port: u16,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let bridge = match redis {
        Redis::Single(url) => RedisBridge::connect(&url).await?,
        Redis::Cluster(nodes) => RedisBridge::connect_cluster(nodes).await?,
    };
    let app = Router::new()
        .route("/", get(join))
        .layer(WebSocketLayer::new(Room).with_hub(bridge.hub()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("ws://{addr}/?name=YOU (node {:016x})", bridge.node_id());
    wshub::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let mut redis = Redis::Single("redis://127.0.0.1:6379/".to_owned());
    let mut ports = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), arg.parse::<u16>()) {
            ("--redis", _) => redis = Redis::Single(args.next().unwrap_or_default()),
            ("--cluster", _) => {
                let urls = args.next().unwrap_or_default();
                redis = Redis::Cluster(urls.split(',').map(str::to_owned).collect());
            }
            (_, Ok(port)) => ports.push(port),
            _ => {
                eprintln!("usage: redis_chat [--redis URL | --cluster URL,URL...] [PORT]...");
                std::process::exit(2);
            }
        }
    }
    if ports.is_empty() {
        ports = vec![3001, 3002];
    }
    let nodes: Vec<_> = ports
        .into_iter()
        .map(|port| tokio::spawn(serve_node(redis.clone(), port)))
        .collect();
    for node in nodes {
        match node.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                eprintln!("redis_chat: {err}");
                std::process::exit(1);
            }
            Err(err) => {
                eprintln!("redis_chat: {err}");
                std::process::exit(1);
            }
        }
    }
}
