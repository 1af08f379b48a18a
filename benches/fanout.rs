//! Fan-out across threads, in one process: what one hot topic costs the
//! server per delivered message when its sockets are served by 1 thread and
//! by 2 (or more).
//!
//! N clients join one room (or each of R rooms has N clients); each sends a
//! burst of M messages, the server publishes every message to the whole
//! room (sender included); a client sends its next burst once it has
//! received all N×M messages of the round.
//! The server runs on a multi-thread tokio runtime with T workers (the
//! default `#[tokio::main]` shape), pinned to cores 0..T; the clients run on
//! one thread of their own, pinned to the last core (so on 2 cores, T=2
//! shares a core with the clients, as the issue's 2-core check does).
//! Reported per T: deliveries per second and the server threads' CPU time
//! per delivery (from `/proc/self/task`), medians over the runs. A design
//! whose threads fight over the topic or wake each other per message shows
//! a higher CPU per delivery at T=2 than at T=1.
//!
//! ```text
//! cargo bench --bench fanout                                 # T = 1, 2
//! cargo bench --bench fanout -- --threads 1,2,4 --clients 32 --messages 50 --seconds 3 --reps 3
//! cargo bench --bench fanout -- --rooms 4 --clients 8         # independent rooms
//! cargo bench --bench fanout -- --no-pin                     # let the kernel place threads
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use base64::Engine as _;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use wshub::protocol::encode_frame;
use wshub::protocol::frame::OpCode;
use wshub::{Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer};

/// Every message has this payload: fixed size, so received frames are
/// counted from received bytes.
const PAYLOAD: &[u8; 16] = b"fan-out message!";
/// A server frame: 2 header bytes and the payload.
const SERVER_FRAME: usize = 2 + PAYLOAD.len();
const SERVER_THREAD: &str = "fanout-server";

/// Every socket joins the room its path names and publishes what it gets
/// there.
struct Rooms;

impl Handler for Rooms {
    type Data = String;

    async fn open(&self, ws: &WebSocket<String>) {
        ws.subscribe(ws.data());
        ws.send_binary(&b"ready"[..]);
    }

    async fn message(&self, ws: &WebSocket<String>, msg: Message) {
        ws.publish(ws.data(), msg);
    }
}

struct Options {
    threads: Vec<usize>,
    rooms: usize,
    clients: usize,
    messages: usize,
    seconds: f64,
    reps: usize,
    pin: bool,
}

fn options() -> Options {
    let mut options = Options {
        threads: vec![1, 2],
        rooms: 1,
        clients: 32,
        messages: 50,
        seconds: 3.0,
        reps: 3,
        pin: true,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().map(String::as_str).unwrap_or_default();
        match arg.as_str() {
            "--threads" => {
                options.threads = value().split(',').filter_map(|t| t.parse().ok()).collect();
            }
            "--rooms" => options.rooms = value().parse().unwrap_or(options.rooms),
            "--clients" => options.clients = value().parse().unwrap_or(options.clients),
            "--messages" => options.messages = value().parse().unwrap_or(options.messages),
            "--seconds" => options.seconds = value().parse().unwrap_or(options.seconds),
            "--reps" => options.reps = value().parse().unwrap_or(options.reps),
            "--no-pin" => options.pin = false,
            // `cargo bench` passes `--bench`; other flags are not ours.
            _ => {}
        }
    }
    options
}

fn main() {
    let options = options();
    println!(
        "fan-out: {} room(s) of {} clients, {}-message bursts, {} s × {} runs per T",
        options.rooms, options.clients, options.messages, options.seconds, options.reps
    );
    println!(
        "{:>3} {:>14} {:>18} {:>10}",
        "T", "deliveries/s", "server CPU/deliv.", "server CPU"
    );
    let mut base = None;
    for &threads in &options.threads {
        let mut runs: Vec<Run> = (0..options.reps).map(|_| run(threads, &options)).collect();
        runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
        let rate = runs[runs.len() / 2].per_second;
        runs.sort_by(|a, b| a.cpu_per_delivery.total_cmp(&b.cpu_per_delivery));
        let cpu = runs[runs.len() / 2].cpu_per_delivery;
        let load = runs[runs.len() / 2].server_load;
        let (rate0, cpu0) = *base.get_or_insert((rate, cpu));
        println!(
            "{threads:>3} {:>13.2}M {:>15.1} ns {:>9.0}%   ({:.2}× the rate, {:.2}× the CPU per delivery of T={})",
            rate / 1e6,
            cpu * 1e9,
            load * 100.0,
            rate / rate0,
            cpu / cpu0,
            options.threads[0],
        );
    }
}

struct Run {
    per_second: f64,
    cpu_per_delivery: f64,
    server_load: f64,
}

fn run(threads: usize, options: &Options) -> Run {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = options.pin && cores > 1;
    let server_cores: Vec<usize> = (0..threads.min(cores)).collect();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(SERVER_THREAD)
        .on_thread_start(move || {
            if pin {
                pin_to(&server_cores);
            }
        })
        .enable_all()
        .build()
        .expect("server runtime");
    let addr = server.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let layer = WebSocketLayer::new(Rooms).config(Config::default().publish_to_self(true));
        let app = Router::new()
            .route(
                "/{room}",
                get(|up: Upgrade<String>, Path(room): Path<String>| async move { up.accept(room) }),
            )
            .layer(layer);
        tokio::spawn(async move { wshub::serve(listener, app).await });
        addr
    });
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let run = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            if pin {
                pin_to(&[cores - 1]);
            }
            clients.block_on(drive(addr, options))
        });
        client.join().expect("the client thread")
    });
    drop(server);
    run
}

/// Pins the calling thread to `cores` (with util-linux's `taskset`, so
/// the bench needs no `unsafe`).
fn pin_to(cores: &[usize]) {
    let Ok(me) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = me.file_name().and_then(|tid| tid.to_str()) else {
        return;
    };
    let list: Vec<String> = cores.iter().map(usize::to_string).collect();
    let pinned = std::process::Command::new("taskset")
        .args(["-pc", &list.join(","), tid])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !pinned {
        eprintln!("fanout: could not pin thread {tid} (is util-linux's taskset installed?)");
    }
}

async fn drive(addr: SocketAddr, options: &Options) -> Run {
    let mut sockets = Vec::new();
    for room in 0..options.rooms {
        for _ in 0..options.clients {
            sockets.push(connect(addr, room).await);
        }
    }
    let mut burst = BytesMut::new();
    for _ in 0..options.messages {
        encode_frame(&mut burst, OpCode::Binary, PAYLOAD, Some([1, 2, 3, 4]));
    }
    let burst = burst.freeze();
    let per_round = options.clients * options.messages * SERVER_FRAME;
    let deadline = Duration::from_secs_f64(options.seconds);
    let cpu0 = server_cpu();
    let start = Instant::now();
    let mut rounds = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    while start.elapsed() < deadline {
        for socket in &mut sockets {
            socket.write_all(&burst).await.expect("send a burst");
        }
        for socket in &mut sockets {
            let mut got = 0;
            let mut last = 0;
            while got < per_round {
                let n = socket.read(&mut buf).await.expect("read");
                if n == 0 {
                    panic!(
                        "the server closed the connection after {got} of {per_round} bytes \
                         of round {rounds}; its last bytes: {}",
                        close_of(&buf[..last])
                    );
                }
                last = n;
                got += n;
            }
            assert_eq!(got, per_round, "every client receives the whole round");
        }
        rounds += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server_cpu() - cpu0;
    // Every message reaches the N clients of its room, in each of R rooms.
    let per_room = options.clients * options.clients * options.messages;
    let deliveries = (rounds as usize * options.rooms * per_room) as f64;
    Run {
        per_second: deliveries / elapsed,
        cpu_per_delivery: cpu / deliveries,
        server_load: cpu / elapsed,
    }
}

/// Describes the close frame that ends `tail` (the last bytes a client
/// read before the server closed), if one does.
fn close_of(tail: &[u8]) -> String {
    for len in 0..=125usize {
        let Some(start) = tail.len().checked_sub(len + 2) else {
            break;
        };
        if tail[start] == 0x88 && usize::from(tail[start + 1]) == len {
            let body = &tail[start + 2..];
            return match body {
                [high, low, reason @ ..] => format!(
                    "a close frame, code {}, reason {:?}",
                    u16::from_be_bytes([*high, *low]),
                    String::from_utf8_lossy(reason)
                ),
                _ => "a close frame without a code".to_owned(),
            };
        }
    }
    format!("no close frame ({} bytes read last)", tail.len())
}

/// Opens a WebSocket by hand and waits for the server's "ready".
async fn connect(addr: SocketAddr, room: usize) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    let request = format!(
        "GET /{room} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("handshake");
    // The 101 response, then the 7-byte "ready" frame.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.expect("101 response");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgrade refused");
    let mut ready = [0u8; 7];
    tcp.read_exact(&mut ready).await.expect("ready");
    tcp
}

/// User and system CPU seconds of this process's server threads.
fn server_cpu() -> f64 {
    let cpu = testkit::proc::threads_cpu_time(SERVER_THREAD);
    cpu.user + cpu.system
}
