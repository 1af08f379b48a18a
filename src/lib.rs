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
//!
//! # Features
//!
//! - **`axum`** (default): the axum extractor impls and [`serve`].
//! - **`tls`**: `wss://` with rustls — `Serve::tls` and the `tls` module
//!   (certificates from PEM, reloaded without a restart); with `client`,
//!   `wss://` URLs for the client too.
//! - **`http2`**: WebSockets over HTTP/2 (RFC 8441): `serve` speaks h2c and,
//!   with `tls`, `h2` by ALPN; [`Upgrade`] accepts an extended CONNECT (route
//!   sockets with `any`). HTTP/1.1 stays the faster path.
//! - **`client`**: the WebSocket client, `wshub::Client` and `wshub::connect`.
//! - **`redis`**: one hub across server processes through Redis pub/sub
//!   (`wshub::redis`).
//! - **`metrics`**: counters and gauges through the
//!   [`metrics`](https://docs.rs/metrics) facade (see "Metrics" below).
//! - **`full`**: all of the above.
//!
//! # Metrics
//!
//! With the `metrics` feature, the crate reports to whatever recorder the
//! app installs (`metrics-exporter-prometheus`, StatsD, …; none is forced
//! on users). Install it before the server starts: each thread takes its
//! handles once. Per-message counts are added up per thread and handed to
//! the recorder once per poll of a socket's task, not once per message.
//! `examples/chat` serves them at `/metrics` in Prometheus' format.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `wshub_connections_opened_total` | counter | sockets opened |
//! | `wshub_connections_closed_total{code}` | counter | sockets closed, by the close code `Handler::close` hears |
//! | `wshub_connections_open` | gauge | sockets open now |
//! | `wshub_upgrades_total{http}` | counter | server handshakes completed, by HTTP version: `1.1`, or `2` over HTTP/2 (RFC 8441) |
//! | `wshub_messages_received_total`, `wshub_bytes_received_total` | counters | whole messages from peers, and their payload bytes |
//! | `wshub_messages_sent_total` | counter | messages queued by `send` (not dropped) |
//! | `wshub_bytes_written_total` | counter | bytes written to peers (frames, sends and publishes) |
//! | `wshub_publishes_total` | counter | messages published (`publish`, from a socket or the hub) |
//! | `wshub_deliveries_total` | counter | published messages queued to a subscriber |
//! | `wshub_dropped_total` | counter | sends and deliveries dropped for a socket's backpressure limit |
//! | `wshub_backpressure_total` | counter | times a socket went over its limit or its stream filled (each followed by `drain`) |
//! | `wshub_timeouts_total{kind}` | counter | sockets closed by the idle timeout (`idle`) or `max_lifetime` (`lifetime`) |
//! | `wshub_handshake_rejections_total{status}` | counter | upgrade requests refused, by HTTP status |
//! | `wshub_topics` | gauge | topics with at least one subscriber |
//!
//! # How it works: tasks, threads, ownership
//!
//! wshub runs on whatever tokio runtime serves the app (`#[tokio::main]`
//! with any number of worker threads, or a current-thread runtime); it
//! starts no threads of its own.
//!
//! - **One future per socket** owns the connection: it reads, runs the
//!   handler, and writes. Nothing else touches the stream. The sockets of
//!   wshub's own server over plain TCP (on Unix) run many to a task, on
//!   **socket loops**: one per worker thread of the runtime, each a tokio
//!   task with its own epoll instance (uWebSockets runs one loop per
//!   thread the same way). The upgraded stream leaves tokio's reactor for
//!   its loop's epoll, and an idle socket costs neither a task nor a
//!   registration (about 0.95 KiB of memory, against 1.37 KiB with both).
//!   Sockets are dealt to the loops in turn, or kept together by a key
//!   ([`Upgrade::colocate`], say a room's name: its publishes then stay on
//!   one thread); tokio moves whole loops between threads. A handler that
//!   blocks its thread (a long computation, a blocking call) holds up the
//!   other sockets of its loop, as it would the other tasks of its thread:
//!   give such work to `tokio::task::spawn_blocking`. A handler that awaits holds up nothing.
//!   Other sockets (TLS, HTTP/2, behind another server,
//!   and the client's) have a task each. A client socket is the same
//!   future in the client role: its frames are masked (so it reads topics
//!   through a lane of its own) and it leaves closing TCP to the server.
//! - **The outbox** (one per socket, one lock) is the only state other tasks
//!   touch: sends queue encoded frames into it, publishes open a *cursor* in
//!   it into a topic's shared batch, and `close`/`terminate`/the idle sweeper
//!   move its lifecycle. The socket's task takes everything queued at once
//!   and writes it with one vectored write.
//! - **A topic** (one lock) holds its subscribers per *lane* (plain,
//!   shared-deflate, per-socket) and each lane's open batch. A publish frames
//!   the message once and appends it to the batch. While every subscriber's
//!   cursor is open in the batch — the steady state of a busy room, since a
//!   cursor stays open while its socket writes — a publish touches no
//!   subscriber at all: it appends, and wakes only the sockets parked at the
//!   batch's end. A new batch (every 64 KiB) visits each subscriber once.
//! - **Turns.** One poll of a socket's future is a turn; on a socket loop,
//!   one pass over the loop's woken sockets is one turn for all of them
//!   (delivered early once 16 KiB of publishes are held). The publishes its
//!   handlers make to a topic the socket is in are held until the turn ends,
//!   then delivered as one run per topic: one lock of the topic and one
//!   append per lane for a whole burst (uWebSockets drains its topic tree
//!   once per loop iteration the same way). Anything else that queues
//!   frames or changes membership on that thread delivers what is held
//!   first, so every subscriber sees a thread's sends and publishes in the
//!   order they were made. The wake-ups a turn causes are made when it ends,
//!   together. A publisher's whole read — 50 messages, say — thus reaches
//!   each subscriber as one wake-up and one write, on one thread or on
//!   many: cross-thread work is per batch, not per subscriber per message.
//!   A loop wakes another loop through that loop's epoll, so the woken loop
//!   runs on an idle thread at once instead of queueing behind the waker.
//!   (tokio queues a woken task on the waking thread and lets idle threads
//!   steal it; woken per message, subscribers on other threads would chase
//!   the publisher one message at a time, and publishers on several threads
//!   would fight over the topic's lock once per message.)
//! - **The hub** owns the topic map and the registry of open sockets (for
//!   `shutdown` and the idle sweep, one task per hub). It sees a socket only
//!   through a narrow interface (id, lane, outbox), and other machines only
//!   through a [`Bridge`].
//!
//! Locks, where they nest, are taken in one order, outer first: a socket's
//! subscription list → the hub's topic map → a topic → a socket's dedicated
//! compressor → a socket's outbox → a batch. A socket loop's own locks (its
//! readiness slots, its queue of arriving sockets) nest with none. No lock
//! is held across an `.await` or while a waker runs.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "client")]
pub mod client;
mod clock;
mod config;
mod deflate;
mod driver;
mod entropy;
mod error;
#[cfg(unix)]
mod event_loop;
#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod handler;
mod hub;
mod layer;
mod outbox;
pub mod protocol;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "axum")]
mod serve;
mod socket;
mod telemetry;
#[cfg(feature = "tls")]
pub mod tls;
mod upgrade;
mod wake;

#[cfg(feature = "client")]
pub use client::{Client, ClientSocket, connect};
pub use config::Config;
#[cfg(feature = "client")]
pub use deflate::ExtensionError;
pub use deflate::{Compression, Compressor};
pub use error::Error;
pub use handler::Handler;
pub use hub::{Bridge, Hub, Published, SubscriptionChange};
pub use layer::{ResponseFuture, WebSocketLayer, WebSocketService};
pub use protocol::handshake::HandshakeError;
pub use protocol::{Message, ProtocolError, close_code};
#[cfg(feature = "axum")]
pub use serve::{Serve, WithGracefulShutdown, serve};
pub use socket::{ReadyState, SendStatus, WebSocket};
pub use upgrade::{Upgrade, UpgradeRejection};

// The README's Rust blocks, compiled as doc tests (they are `no_run`:
// servers that run until stopped; `tests/readme.rs` runs the first one).
#[cfg(all(doctest, feature = "client", feature = "redis"))]
#[doc = include_str!("../README.md")]
mod readme {}

/// The body of the responses wshub builds (axum's body type).
pub type Body = axum_core::body::Body;
/// The responses wshub builds: [`Upgrade::accept`]'s 101 and the rejections.
pub type Response = http::Response<Body>;
