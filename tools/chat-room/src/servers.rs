//! The chat servers: Bun's `chat-server.bun.js` written with wshub and, as the
//! baseline a Rust user has today, with axum's `extract::ws` and a broadcast
//! channel the way axum's `examples/chat` does it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{self, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::routing::{any, get};
use axum::serve::ListenerExt as _;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::broadcast;
use wshub::{
    Compression, Compressor, Config, Handler, Hub, Message, Upgrade, WebSocket, WebSocketLayer,
};

use crate::args::Args;
use crate::slow;

/// The Rust servers `server KIND` can run, besides `wshub-deflate-MODE`.
pub const KINDS: [&str; 6] = [
    "wshub",
    "wshub-ct",
    "wshub-hyper",
    "wshub-h2",
    "axum",
    "axum-batched",
];

/// How `wshub-deflate-MODE` and `bun-deflate-MODE` name a compressor,
/// lowercase, in Bun's order.
pub const COMPRESSORS: [&str; 11] = [
    "disabled",
    "shared",
    "dedicated",
    "3kb",
    "4kb",
    "8kb",
    "16kb",
    "32kb",
    "64kb",
    "128kb",
    "256kb",
];

/// Which `permessage-deflate` a server kind runs with: `MODE` of
/// `wshub-deflate-MODE` or `bun-deflate-MODE`, where `MODE` is one
/// compressor for both directions (`shared`, `dedicated`, `3kb` …) or
/// `COMPRESS-DECOMPRESS` (`dedicated-shared`). `None` for the other kinds.
pub fn deflate_mode(kind: &str) -> Option<&str> {
    let base = kind.split(['+', '@']).next().unwrap_or(kind);
    base.strip_prefix("wshub-deflate-")
        .or_else(|| base.strip_prefix("bun-deflate-"))
}

/// A deflate `MODE` as (compress, decompress) names of [`COMPRESSORS`].
pub fn deflate_pair(mode: &str) -> Result<(&'static str, &'static str), String> {
    let known = |name: &str| {
        COMPRESSORS
            .iter()
            .copied()
            .find(|c| c.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("deflate mode {mode:?}: {name:?} is not one of {COMPRESSORS:?}"))
    };
    match mode.split_once('-') {
        Some((compress, decompress)) => Ok((known(compress)?, known(decompress)?)),
        None => known(mode).map(|both| (both, both)),
    }
}

/// Whether `kind` names a server `run`, `rss` and `latency` can start.
pub fn check_kind(kind: &str) -> Result<(), String> {
    if let Some(mode) = deflate_mode(kind) {
        return deflate_pair(mode).map(|_| ());
    }
    if kind == "bun" {
        return Ok(());
    }
    let base = Variant::parse(kind)?.base;
    if KINDS.contains(&base.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "unknown server {kind:?}; choose from {KINDS:?}, wshub-deflate-MODE, bun and \
             bun-deflate-MODE (see help)"
        ))
    }
}

/// Whether server `kind` can serve `wss://` (`--tls`): Bun, and the wshub
/// chat servers that `wshub::serve` runs.
pub fn serves_tls(kind: &str) -> bool {
    if crate::orchestra::is_bun(kind) {
        return true;
    }
    let base = kind.split(['+', '@']).next().unwrap_or(kind);
    base.starts_with("wshub")
        && !matches!(
            base,
            "wshub-hyper" | "wshub-h2" | "wshub-slow" | "wshub-slow-close"
        )
}

/// Whether the load clients of server `kind` open their sockets over HTTP/2
/// (h2c): `wshub-h2`, the wshub server of `wshub`.
pub fn speaks_h2(kind: &str) -> bool {
    kind.split(['+', '@']).next() == Some("wshub-h2")
}

/// wshub's [`Compression`] for a deflate `MODE`.
fn compression(mode: &str) -> Result<Compression, String> {
    let compressor = |name: &str| match name {
        "disabled" => Compressor::Disabled,
        "shared" => Compressor::Shared,
        "dedicated" => Compressor::Dedicated,
        "3kb" => Compressor::Dedicated3KB,
        "4kb" => Compressor::Dedicated4KB,
        "8kb" => Compressor::Dedicated8KB,
        "16kb" => Compressor::Dedicated16KB,
        "32kb" => Compressor::Dedicated32KB,
        "64kb" => Compressor::Dedicated64KB,
        "128kb" => Compressor::Dedicated128KB,
        _ => Compressor::Dedicated256KB,
    };
    let (compress, decompress) = deflate_pair(mode)?;
    Ok(Compression {
        compress: compressor(compress),
        decompress: compressor(decompress),
    })
}

/// A server kind with its variations: `KIND[+nodelay][+colocate][@CAPACITY]`,
/// e.g. `wshub+nodelay` (TCP_NODELAY set on every accepted socket, with
/// axum's `ListenerExt::tap_io`), `wshub+colocate` (each room's sockets on
/// one socket loop: `Upgrade::colocate` with the room's name) or
/// `axum@65536` (a larger broadcast channel).
pub struct Variant {
    pub base: String,
    pub nodelay: bool,
    pub colocate: bool,
    pub capacity: Option<usize>,
}

impl Variant {
    pub fn parse(kind: &str) -> Result<Self, String> {
        let (rest, capacity) = match kind.split_once('@') {
            Some((rest, cap)) => {
                let cap = cap
                    .parse()
                    .map_err(|e| format!("{kind:?}: capacity: {e}"))?;
                (rest, Some(cap))
            }
            None => (kind, None),
        };
        let mut parts = rest.split('+');
        let base = parts.next().unwrap_or_default();
        let (mut nodelay, mut colocate) = (false, false);
        for flag in parts {
            match flag {
                "nodelay" => nodelay = true,
                "colocate" => colocate = true,
                other => return Err(format!("{kind:?}: unknown variation +{other}")),
            }
        }
        if capacity.is_some() && !base.starts_with("axum") {
            return Err(format!(
                "{kind:?}: only the axum servers have a channel capacity"
            ));
        }
        if colocate && !base.starts_with("wshub") {
            return Err(format!("{kind:?}: only the wshub servers colocate rooms"));
        }
        Ok(Self {
            base: base.to_owned(),
            nodelay,
            colocate,
            capacity,
        })
    }
}

/// `server KIND --addr HOST:PORT [--threads T]`: serves until killed.
pub fn main(args: &mut Args) -> Result<(), String> {
    let kind = args.command().ok_or("server: which kind?")?;
    let addr: SocketAddr = args.get("addr", SocketAddr::from(([127, 0, 0, 1], 4001)))?;
    // As `#[tokio::main]`: one worker per core this process may run on.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: usize = args.get("threads", workers)?;
    let exit_after: Option<f64> = args
        .value("exit-after")
        .map(|s| s.parse())
        .transpose()
        .map_err(|e| format!("--exit-after: {e}"))?;
    let tls = args.value("tls").map(PathBuf::from);
    args.finish()?;
    if tls.is_some() && !serves_tls(&kind) {
        return Err(format!("--tls: {kind} does not serve wss://"));
    }
    let tls = tls.as_deref().map(crate::tls::server_config).transpose()?;
    if let Some(seconds) = exit_after {
        // A clean exit after a while, for tools that report at exit (valgrind).
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            std::process::exit(0);
        });
    }
    let Variant {
        base,
        nodelay,
        colocate,
        capacity,
    } = Variant::parse(&kind)?;
    let capacity = capacity.unwrap_or(CHANNEL_CAPACITY);
    if threads == 0 {
        return Err("--threads: at least 1".to_owned());
    }
    let threads = if base == "wshub-ct" { 1 } else { threads };
    let runtime = match base.as_str() {
        "wshub-ct" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build(),
    }
    .map_err(|e| e.to_string())?;
    // Built with `--features metrics`: wshub's counters go to Prometheus'
    // recorder, as in an app that exports them.
    #[cfg(feature = "metrics")]
    let _metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        let app = match base.as_str() {
            "wshub" | "wshub-ct" | "wshub-hyper" | "wshub-h2" => {
                wshub_app(Compression::DISABLED, colocate)
            }
            "axum" => axum_app(Forward::EachMessage, capacity),
            "axum-batched" => axum_app(Forward::Batched, capacity),
            "wshub-slow" => slow::app(false),
            "wshub-slow-close" => slow::app(true),
            other => match other.strip_prefix("wshub-deflate-") {
                Some(mode) => wshub_app(compression(mode)?, colocate),
                None => {
                    return Err(format!(
                        "unknown server kind {other:?}; one of {KINDS:?} or wshub-deflate-MODE"
                    ));
                }
            },
        };
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        println!("{kind} listening on {scheme}://{addr} ({threads} runtime thread(s))");
        if base.starts_with("axum") {
            tokio::spawn(report_lag());
        }
        let served = if base == "wshub-hyper" {
            serve_http1(listener, app).await
        } else if let Some(config) = tls {
            wshub::serve(listener, app).tls(config).await
        } else if base.starts_with("wshub") {
            // What a user writes: TCP_NODELAY and connect info included.
            wshub::serve(listener, app).await
        } else if nodelay {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).await
        } else {
            axum::serve(listener, app).await
        };
        served.map_err(|e| e.to_string())
    })
}

/// Per-socket data: the name from `?name=`, and the room from `?room=`
/// (`multicore` gives each client process its own room).
struct User {
    name: Box<str>,
    /// `None` for the default room: nothing more to allocate per socket.
    room: Option<Box<str>>,
}

/// The room of the sockets that name none.
const ROOM: &str = "room";

impl User {
    fn room(&self) -> &str {
        self.room.as_deref().unwrap_or(ROOM)
    }
}

/// Bun's chat server: everyone joins "room" on open; every text message is
/// published to the room (sender included) as `"{name}: {message}"`. A
/// socket that came with `?room=` is in that room instead.
///
/// A binary message (the chat clients send none) is echoed to its sender
/// alone: the `rss` client sends one per connection so that a compressing
/// connection has inflated and compressed a message (creating its
/// dedicated inflater and compressor) without a publish to everyone.
struct Chat;

impl Handler for Chat {
    type Data = User;

    async fn open(&self, ws: &WebSocket<User>) {
        ws.subscribe(ws.data().room());
    }

    async fn message(&self, ws: &WebSocket<User>, msg: Message) {
        match msg.as_text() {
            Some(text) => {
                let user = ws.data();
                ws.publish(
                    user.room(),
                    Message::text_fmt(format_args!("{}: {text}", user.name)),
                );
            }
            None => {
                ws.send(msg);
            }
        }
    }
}

/// The wshub chat app; with `colocate`, each room's sockets share a socket
/// loop (`Upgrade::colocate` with the room's name).
pub fn wshub_app(compression: Compression, colocate: bool) -> Router {
    wshub_app_on(Hub::new(), compression, colocate)
}

/// The wshub chat app with its sockets on `hub` (for `nodes`: a hub bridged
/// to other processes through Redis).
pub fn wshub_app_on(hub: Hub, compression: Compression, colocate: bool) -> Router {
    Router::new()
        // `any`: a WebSocket over HTTP/2 (`wshub-h2`) opens with CONNECT.
        .route(
            "/",
            any(
                move |up: Upgrade<User>, Query(query): Query<HashMap<String, String>>| async move {
                    let field = |key| query.get(key).map(|v| Box::from(v.as_str()));
                    let user = User {
                        name: field("name").unwrap_or_default(),
                        room: field("room"),
                    };
                    let up = if colocate {
                        up.colocate(user.room())
                    } else {
                        up
                    };
                    up.accept(user)
                },
            ),
        )
        .layer(
            WebSocketLayer::new(Chat)
                .config(
                    Config::default()
                        .publish_to_self(true)
                        .compression(compression),
                )
                .with_hub(hub),
        )
}

/// Serves `app` with hyper's HTTP/1 connection directly, without the
/// protocol sniffing of `axum::serve` (whose private `Rewind` wrapper hides
/// the socket): an upgraded connection is then hyper's `TokioIo<TcpStream>`,
/// and wshub's driver takes its own-socket path (TCP_NODELAY, direct reads).
async fn serve_http1(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .with_upgrades();
            let _ = connection.await;
        });
    }
}

/// How the axum server's per-socket task forwards the room's messages.
#[derive(Clone, Copy)]
enum Forward {
    /// As axum's `examples/chat`: `sender.send(msg).await` for each message,
    /// one write (and one flush) each.
    EachMessage,
    /// Everything queued in the channel fed to the sink, then one flush.
    Batched,
}

/// Messages the broadcast channel skipped for lagging receivers: lost.
static LAGGED: AtomicU64 = AtomicU64::new(0);

/// Prints the lag count when it changes, for the orchestrator to collect.
async fn report_lag() {
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = LAGGED.load(Ordering::Relaxed);
        if now != last {
            println!("lagged {now}");
            last = now;
        }
    }
}

/// The capacity of axum's example (`broadcast::channel(100)`).
const CHANNEL_CAPACITY: usize = 100;

struct Room {
    tx: broadcast::Sender<String>,
    forward: Forward,
}

fn axum_app(forward: Forward, capacity: usize) -> Router {
    let (tx, _rx) = broadcast::channel(capacity);
    let room = Arc::new(Room { tx, forward });
    Router::new()
        .route(
            "/",
            get(
                |up: WebSocketUpgrade,
                 Query(query): Query<HashMap<String, String>>,
                 State(room): State<Arc<Room>>| async move {
                    let name = query.get("name").cloned().unwrap_or_default();
                    up.on_upgrade(move |socket| axum_socket(socket, room, name))
                },
            ),
        )
        .with_state(room)
}

/// One connection, as in axum's `examples/chat`: a task forwarding the room
/// to the socket, a task publishing what the socket sends; when either ends,
/// the other is aborted. Unlike the example, a lagging receiver goes on
/// (counting what it lost) instead of dropping the connection.
async fn axum_socket(socket: ws::WebSocket, room: Arc<Room>, name: String) {
    let (mut sender, mut receiver) = socket.split();
    let mut rx = room.tx.subscribe();
    let forward = room.forward;
    let mut send_task = tokio::spawn(async move {
        loop {
            let first = match rx.recv().await {
                Ok(msg) => msg,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    LAGGED.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let sent = match forward {
                Forward::EachMessage => sender.send(ws::Message::Text(first.into())).await,
                Forward::Batched => feed_all(&mut sender, &mut rx, first).await,
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let tx = room.tx.clone();
    let mut recv_task = tokio::spawn(async move {
        while let Some(Ok(msg)) = receiver.next().await {
            if let ws::Message::Text(text) = msg {
                let _ = tx.send(format!("{name}: {}", text.as_str()));
            }
        }
    });
    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    }
}

type Sink = futures_util::stream::SplitSink<ws::WebSocket, ws::Message>;

/// Feeds `first` and everything else already in the channel, then flushes once.
async fn feed_all(
    sender: &mut Sink,
    rx: &mut broadcast::Receiver<String>,
    first: String,
) -> Result<(), axum::Error> {
    sender.feed(ws::Message::Text(first.into())).await?;
    loop {
        match rx.try_recv() {
            Ok(msg) => sender.feed(ws::Message::Text(msg.into())).await?,
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                LAGGED.fetch_add(n, Ordering::Relaxed);
            }
            Err(_) => break,
        }
    }
    sender.flush().await
}
