//! What a publish costs with `permessage-deflate`: the shared compressor
//! compresses a message once for all its subscribers, dedicated compressors
//! once per subscriber.
//!
//! - `compress_16KiB`: one 16 KiB message through zlib-rs as wshub's shared
//!   compressor does it (level 6, raw deflate, window 2^15, memory level 8,
//!   sync flush, reset after), and as a dedicated compressor does it (same
//!   settings, context kept from the previous messages);
//! - `publish_16KiB/{plain,shared,dedicated}/N`: [`Hub::publish`] of one such
//!   message to N = 1, 100, 1,000 subscribers that negotiated nothing, the
//!   shared compressor, or a dedicated one (the 256 KB preset). Only the
//!   `publish` call is timed: it compresses (once, or once per dedicated
//!   subscriber) and queues the frame to every subscriber.
//!
//! The subscribers are real connections: a wshub server on 127.0.0.1 and N
//! raw clients that offered `permessage-deflate` and never send. Server and
//! clients share one current-thread runtime. A publish is timed inside that
//! runtime, as a handler's publish runs (waking a subscriber's task queues
//! it locally, without a syscall), and returns before any woken task runs;
//! then, untimed, the runtime drains every queue to the clients' sockets, so
//! each publish starts from empty queues and nothing else runs while it is
//! timed.
//!
//! Run with `cargo bench --bench publish` (a filter such as
//! `cargo bench --bench publish -- shared` runs part of it).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use futures_util::future::join_all;
use testkit::bench::{Bench, Throughput};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use wshub::{
    Compression, Compressor, Config, Handler, Hub, Message, Upgrade, WebSocket, WebSocketLayer,
};
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Strategy};

/// The size of every published message.
const MESSAGE_BYTES: usize = 16 * 1024;

/// Distinct messages published in turn, so dedicated compressors, which
/// keep context, do not compress the same text again and again.
const DISTINCT: usize = 16;

/// Subscriber counts.
const SUBSCRIBERS: [usize; 3] = [1, 100, 1000];

const TOPIC: &str = "room";

/// Who subscribes, and how: what the server compresses with, and whether
/// the clients offer `permessage-deflate`.
#[derive(Clone, Copy)]
enum Mode {
    /// No compression negotiated: the plain frame is shared by everyone.
    Plain,
    /// `per_message_deflate(true)`: compressed once per publish.
    Shared,
    /// A compressor per socket keeping context: compressed per subscriber.
    Dedicated,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Shared => "shared",
            Self::Dedicated => "dedicated",
        }
    }

    fn compression(self) -> Compression {
        match self {
            Self::Plain => Compression::DISABLED,
            Self::Shared => Compression::SHARED,
            Self::Dedicated => Compression {
                compress: Compressor::Dedicated,
                decompress: Compressor::Shared,
            },
        }
    }
}

/// `MESSAGE_BYTES` of JSON lines, like a feed of chat events: compressible,
/// but not a repetition of one line. `seed` varies the numbers.
fn message(seed: u64) -> Message {
    const WORDS: [&str; 8] = [
        "Hello World!",
        "What is the meaning of life?",
        "where is the bathroom?",
        "kangaroo",
        "erlang",
        "typescript",
        "bun",
        "mochi",
    ];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::with_capacity(MESSAGE_BYTES + 128);
    let mut seq = seed * 1000;
    while text.len() < MESSAGE_BYTES {
        let r = next();
        text.push_str(&format!(
            "{{\"seq\":{seq},\"user\":\"user{}\",\"price\":{}.{:02},\"text\":\"{}\"}}\n",
            r % 97,
            r % 10_000,
            (r >> 20) % 100,
            WORDS[(r >> 32) as usize % WORDS.len()],
        ));
        seq += 1;
    }
    text.truncate(MESSAGE_BYTES);
    Message::text(text)
}

/// wshub's compressor settings: zlib's default level, raw deflate with a
/// 2^15 window, memory level 8.
fn deflate() -> Deflate {
    Deflate::new_with_config(DeflateConfig {
        level: -1,
        method: Method::Deflated,
        window_bits: -15,
        mem_level: 8,
        strategy: Strategy::Default,
    })
}

/// Compresses `input` with a sync flush into `out`; returns the size.
fn compress(deflate: &mut Deflate, input: &[u8], out: &mut [u8]) -> usize {
    let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
    deflate
        .compress(input, out, DeflateFlush::SyncFlush)
        .expect("zlib-rs compresses any input");
    let (read, written) = (
        deflate.total_in() - in_before,
        deflate.total_out() - out_before,
    );
    assert!(
        read as usize == input.len() && (written as usize) < out.len(),
        "output too small"
    );
    written as usize
}

fn bench_compress(bench: &Bench) {
    if !bench.wants("compress_16KiB") {
        return;
    }
    let messages: Vec<Message> = (0..DISTINCT as u64).map(message).collect();
    let mut out = vec![0u8; 2 * MESSAGE_BYTES];
    let bytes = Throughput::Bytes(MESSAGE_BYTES as u64);
    let mut shared = deflate();
    let sizes: Vec<usize> = messages
        .iter()
        .map(|m| {
            let size = compress(&mut shared, m.as_bytes(), &mut out);
            shared.reset();
            size
        })
        .collect();
    eprintln!(
        "compress_16KiB: {MESSAGE_BYTES} bytes compress to {}–{} bytes without context",
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0)
    );
    let mut i = 0;
    bench.iter("compress_16KiB/shared_once", bytes, || {
        i = (i + 1) % DISTINCT;
        let size = compress(&mut shared, black_box(messages[i].as_bytes()), &mut out);
        shared.reset();
        size
    });
    let mut dedicated = deflate();
    bench.iter("compress_16KiB/dedicated_with_context", bytes, || {
        i = (i + 1) % DISTINCT;
        compress(&mut dedicated, black_box(messages[i].as_bytes()), &mut out)
    });
}

/// Every socket joins the topic.
struct Subscribe;

impl Handler for Subscribe {
    type Data = ();

    async fn open(&self, ws: &WebSocket<()>) {
        ws.subscribe(TOPIC);
    }
}

/// A wshub server and its subscribers, on one current-thread runtime that
/// runs only inside [`Room::drain`] (and while setting up).
struct Room {
    runtime: Runtime,
    hub: Hub,
    clients: Vec<Client>,
}

impl Room {
    fn new(mode: Mode, subscribers: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (hub, clients) = runtime.block_on(async {
            let config = Config::default()
                .compression(mode.compression())
                // The clients never answer pings; nothing may time out.
                .idle_timeout(Duration::ZERO)
                .send_pings(false);
            let layer = WebSocketLayer::new(Subscribe).config(config);
            let hub = layer.hub();
            let app = Router::new()
                .route("/", get(|up: Upgrade| async move { up.accept(()) }))
                .layer(layer);
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local address");
            tokio::spawn(async move { wshub::serve(listener, app).await });
            let offer = !matches!(mode, Mode::Plain);
            let mut clients = Vec::with_capacity(subscribers);
            for i in 0..subscribers {
                clients.push(Client::connect(addr, i, offer).await);
            }
            while hub.subscriber_count(TOPIC) < subscribers {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (hub, clients)
        });
        let mut room = Self {
            runtime,
            hub,
            clients,
        };
        // Every subscriber gets the first publish, compressed as negotiated.
        room.timed_publish(&message(u64::MAX));
        room.drain();
        let expected = match mode {
            Mode::Plain => 0,
            Mode::Shared | Mode::Dedicated => subscribers,
        };
        let compressed = room.clients.iter().filter(|c| c.compressed == 1).count();
        assert_eq!(compressed, expected, "{} subscribers got RSV1", mode.name());
        room
    }

    /// Publishes `msg` to the topic from inside the runtime; returns how long
    /// the publish took. Every subscriber must be reached.
    fn timed_publish(&self, msg: &Message) -> Duration {
        let msg = msg.clone();
        let (reached, took) = self.runtime.block_on(async {
            // Ready at once: block_on returns before running any woken task.
            let start = Instant::now();
            let reached = self.hub.publish(TOPIC, msg);
            (reached, start.elapsed())
        });
        assert_eq!(reached, self.clients.len(), "publish reached");
        took
    }

    /// Runs the server until every client has received every message
    /// published so far.
    fn drain(&mut self) {
        let Self {
            runtime, clients, ..
        } = self;
        runtime.block_on(join_all(clients.iter_mut().map(Client::catch_up)));
        for client in clients.iter_mut() {
            client.expected += 1;
        }
    }
}

/// A raw WebSocket client that only counts the frames it receives.
struct Client {
    stream: TcpStream,
    buf: Box<[u8]>,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// A header split across reads.
    head: Vec<u8>,
    /// Data frames received, and those with RSV1 set.
    frames: u64,
    compressed: u64,
    /// Data frames to receive before the next publish is timed.
    expected: u64,
}

impl Client {
    async fn connect(addr: SocketAddr, i: usize, offer: bool) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let extension = if offer {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        let request = format!(
            "GET /?client={i} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{extension}\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        // Byte by byte, so no frame is read past the head (setup only).
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.expect("response");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "upgrade refused: {head}");
        assert_eq!(
            head.contains("sec-websocket-extensions: permessage-deflate"),
            offer,
            "deflate negotiated as offered: {head}"
        );
        Self {
            stream,
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
            skip: 0,
            head: Vec::with_capacity(14),
            frames: 0,
            compressed: 0,
            expected: 1,
        }
    }

    /// Reads until `expected` data frames have arrived.
    async fn catch_up(&mut self) {
        while self.frames < self.expected {
            let n = self.stream.read(&mut self.buf).await.expect("read");
            assert!(n > 0, "the server closed a subscriber");
            self.count(n);
        }
    }

    /// Counts the frames in the first `n` bytes of `buf`, reading headers only.
    fn count(&mut self, n: usize) {
        let mut at = 0;
        while at < n {
            if self.skip > 0 {
                let take = self.skip.min((n - at) as u64);
                self.skip -= take;
                at += take as usize;
                continue;
            }
            self.head.push(self.buf[at]);
            at += 1;
            let Some(len) = payload_len(&self.head) else {
                continue;
            };
            let first = self.head[0];
            if first & 0x0f < 0x8 {
                self.frames += 1;
                self.compressed += u64::from(first & 0x40 != 0);
            }
            self.skip = len;
            self.head.clear();
        }
    }
}

/// The payload length of an unmasked frame once `head` holds its whole header.
fn payload_len(head: &[u8]) -> Option<u64> {
    let second = *head.get(1)?;
    match second & 0x7f {
        126 if head.len() == 4 => Some(u64::from(u16::from_be_bytes([head[2], head[3]]))),
        127 if head.len() == 10 => Some(u64::from_be_bytes(head[2..10].try_into().ok()?)),
        126 | 127 => None,
        short => Some(u64::from(short)),
    }
}

fn bench_publish(bench: &Bench) {
    let bench = bench
        .clone()
        .with_times(Duration::from_millis(300), Duration::from_secs(1), 10);
    let messages: Vec<Message> = (0..DISTINCT as u64).map(message).collect();
    for mode in [Mode::Plain, Mode::Shared, Mode::Dedicated] {
        for subscribers in SUBSCRIBERS {
            let name = format!("publish_16KiB/{}/{subscribers}", mode.name());
            if !bench.wants(&name) {
                continue;
            }
            let mut room = Room::new(mode, subscribers);
            let mut i = 0;
            // Deliveries per second.
            bench.custom(&name, Throughput::Elements(subscribers as u64), |iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    i = (i + 1) % DISTINCT;
                    timed += room.timed_publish(&messages[i]);
                    room.drain();
                }
                timed
            });
        }
    }
}

fn main() {
    let bench = Bench::from_args();
    bench_compress(&bench);
    bench_publish(&bench);
}
