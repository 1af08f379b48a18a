//! The client's receive rate against tokio-tungstenite's, in the same run.
//!
//! A server (its own runtime and thread, on core 0) answers `go N SIZE` by
//! writing N binary frames of SIZE bytes from a buffer of pre-encoded frames,
//! as fast as the connection takes them: it costs little, so the client's
//! reading is what is measured. Each client (one thread of its own, on
//! core 1) asks for the messages and counts them until all have arrived; the time from asking to the last message gives messages and
//! bytes per second. Clients: tokio-tungstenite's `WebSocketStream`,
//! wshub's `ClientSocket` (a stream) and wshub's client run by a `Handler`
//! (no stream between the socket and the code); and, as the ceiling, no
//! client at all: plain reads of the same bytes. Medians over the runs, and
//! each client's ratio to tokio-tungstenite measured in the same run, for
//! the rate and for the client thread's CPU time per message
//! (`/proc/thread-self/schedstat`). With 64 KiB messages the server's
//! sending bounds the rate on a small machine (the kernel's send path costs
//! about twice its receive path), and every client's CPU is mostly the
//! kernel's copy: the CPU column shows what each client adds to it.
//!
//! ```text
//! cargo bench --features client --bench client
//! cargo bench --features client --bench client -- --reps 7 --small 2000000 --large 20000
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite;
use wshub::protocol::frame::OpCode;
use wshub::protocol::handshake::accept_key;
use wshub::protocol::{Decoder, Frame, Role, encode_frame};
use wshub::{Client, Config, Handler, Message, WebSocket};

/// Bytes of pre-encoded frames written per `write` call.
const CHUNK: usize = 256 * 1024;

/// Serves one connection: the handshake by hand, then `go N SIZE` answered
/// with N binary frames of SIZE bytes, written from one buffer of
/// pre-encoded frames, so the server costs a `write` per 256 KiB and the
/// client's parsing is what is measured.
async fn blast(mut tcp: TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(4096);
    let key = loop {
        tcp.read_buf(&mut buf).await?;
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let _ = buf.split_to(end + 4);
            let key = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("sec-websocket-key")
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default();
            break key;
        }
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.as_bytes())
    );
    tcp.write_all(response.as_bytes()).await?;
    let mut decoder = Decoder::new(Role::Server, 1 << 20);
    loop {
        let frame = loop {
            if let Some(frame) = decoder.decode(&mut buf).map_err(std::io::Error::other)? {
                break frame;
            }
            if tcp.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let Frame::Message(msg) = frame else {
            return Ok(());
        };
        let text = msg.as_text().unwrap_or_default().to_owned();
        let mut words = text
            .split(' ')
            .skip(1)
            .map(|w| w.parse::<usize>().unwrap_or(0));
        let (count, size) = (words.next().unwrap_or(0), words.next().unwrap_or(0));
        let mut one = BytesMut::new();
        encode_frame(&mut one, OpCode::Binary, &vec![0x5a; size], None);
        let per_chunk = (CHUNK / one.len()).max(1);
        let mut chunk = BytesMut::with_capacity(per_chunk * one.len());
        for _ in 0..per_chunk {
            chunk.extend_from_slice(&one);
        }
        let mut left = count;
        while left > 0 {
            let n = left.min(per_chunk);
            tcp.write_all(&chunk[..n * one.len()]).await?;
            left -= n;
        }
    }
}

fn pin_to(core: usize) {
    // Best effort: `taskset` semantics through sched_setaffinity.
    let _ = std::process::Command::new("taskset")
        .args(["-pc", &core.to_string(), &gettid().to_string()])
        .output();
}

fn gettid() -> i64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

fn start_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        pin_to(0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(blast(tcp));
            }
        });
    });
    rx.recv().unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Tungstenite,
    WshubStream,
    WshubHandler,
    /// No WebSocket client at all: a handshake written by hand, then plain
    /// reads of the stream into a 256 KiB buffer, counting bytes. The
    /// ceiling any client can reach on this machine (the kernel's copy).
    RawRead,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Tungstenite => "tokio-tungstenite",
            Self::WshubStream => "wshub ClientSocket",
            Self::WshubHandler => "wshub Handler",
            Self::RawRead => "raw read (ceiling)",
        }
    }
}

/// Counts arrivals for the handler-driven client.
struct Counter;

struct Count {
    want: usize,
    seen: std::sync::atomic::AtomicUsize,
    done: Notify,
}

impl Handler for Counter {
    type Data = Arc<Count>;

    async fn message(&self, ws: &WebSocket<Self::Data>, _msg: Message) {
        let count = ws.data();
        // Only this socket's task writes the count, so a load and a store
        // do (no locked read-modify-write): the same work as the other
        // clients' `seen += 1`.
        let seen = count.seen.load(std::sync::atomic::Ordering::Relaxed) + 1;
        count.seen.store(seen, std::sync::atomic::Ordering::Relaxed);
        if seen == count.want {
            count.done.notify_one();
        }
    }
}

/// What one run measured.
#[derive(Clone, Copy)]
struct Measured {
    /// From asking to the last message.
    secs: f64,
    /// CPU time of the client's thread (user and kernel) over that span.
    cpu_ns: f64,
}

/// One run: connects, asks for `count` messages of `size` bytes, and
/// measures the time and the client thread's CPU until the last arrived.
/// Where the server's sending is what bounds the rate (large messages:
/// the kernel's send path costs more than its receive path), the CPU per
/// message still tells how much each client spends.
async fn run(kind: Kind, addr: SocketAddr, count: usize, size: usize) -> Measured {
    let cpu = || testkit::proc::thread_cpu_ns().unwrap_or(0) as f64;
    let before = cpu();
    let secs = receive(kind, addr, count, size).await;
    // Connecting and closing are in the CPU time too: a few tens of
    // microseconds, against runs of a tenth of a second and more.
    Measured {
        secs,
        cpu_ns: cpu() - before,
    }
}

/// Connects, asks for `count` messages of `size` bytes, returns the seconds
/// until the last arrived.
async fn receive(kind: Kind, addr: SocketAddr, count: usize, size: usize) -> f64 {
    let url = format!("ws://{addr}/");
    let order = format!("go {count} {size}");
    let config = Config::default()
        .max_payload_length(64 << 20)
        .idle_timeout(Duration::ZERO);
    match kind {
        Kind::RawRead => {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            tcp.write_all(request.as_bytes()).await.unwrap();
            // The 101 and nothing after it: the server waits for the order.
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(tcp.read_u8().await.unwrap());
            }
            // The order, masked as a client must (the server checks).
            let mut frame = BytesMut::new();
            encode_frame(
                &mut frame,
                OpCode::Text,
                order.as_bytes(),
                Some([1, 2, 3, 4]),
            );
            let header = if size < 126 {
                2
            } else if size < 65_536 {
                4
            } else {
                10
            };
            let want = count * (header + size);
            let mut buf = vec![0u8; 256 * 1024];
            let start = Instant::now();
            tcp.write_all(&frame).await.unwrap();
            let mut seen = 0;
            while seen < want {
                let n = tcp.read(&mut buf).await.unwrap();
                assert!(n > 0, "the server hung up");
                seen += n;
            }
            start.elapsed().as_secs_f64()
        }
        Kind::Tungstenite => {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            let start = Instant::now();
            ws.send(tungstenite::Message::text(order)).await.unwrap();
            let mut seen = 0;
            while seen < count {
                match ws.next().await {
                    Some(Ok(tungstenite::Message::Binary(b))) => {
                        assert_eq!(b.len(), size);
                        seen += 1;
                    }
                    Some(Ok(_)) => {}
                    other => panic!("tungstenite: {other:?}"),
                }
            }
            let secs = start.elapsed().as_secs_f64();
            let _ = ws.close(None).await;
            secs
        }
        Kind::WshubStream => {
            let mut socket = Client::new(url).config(config).connect().await.unwrap();
            let start = Instant::now();
            socket.send(order);
            let mut seen = 0;
            while seen < count {
                let msg = socket.next().await.expect("a message");
                assert_eq!(msg.len(), size);
                seen += 1;
            }
            start.elapsed().as_secs_f64()
        }
        Kind::WshubHandler => {
            let counter = Arc::new(Count {
                want: count,
                seen: Default::default(),
                done: Notify::new(),
            });
            let ws = Client::new(url)
                .config(config)
                .connect_with(Counter, Arc::clone(&counter))
                .await
                .unwrap();
            let start = Instant::now();
            ws.send(order);
            counter.done.notified().await;
            let secs = start.elapsed().as_secs_f64();
            ws.close(1000, "");
            secs
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps = arg(&args, "--reps", 5);
    let small = arg(&args, "--small", 1_000_000);
    let large = arg(&args, "--large", 10_000);
    let addr = start_server();
    pin_to(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut kinds = vec![
        Kind::Tungstenite,
        Kind::WshubStream,
        Kind::WshubHandler,
        Kind::RawRead,
    ];
    // `--only stream` (or `handler`): that client alone, for profiling.
    if let Some(i) = args.iter().position(|a| a == "--only") {
        let only = args.get(i + 1).map(String::as_str);
        kinds.retain(|k| match only {
            Some("stream") => *k == Kind::WshubStream,
            Some("handler") => *k == Kind::WshubHandler,
            Some("raw") => *k == Kind::RawRead,
            _ => *k == Kind::Tungstenite,
        });
    }
    for (label, count, size) in [("16 B", small, 16), ("64 KiB", large, 64 * 1024)] {
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
        let mut cpu_ratios: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
        for _ in 0..reps {
            let mut this = Vec::new();
            for (i, kind) in kinds.iter().enumerate() {
                let m = runtime.block_on(run(*kind, addr, count, size));
                secs[i].push(m.secs);
                cpu[i].push(m.cpu_ns / count as f64);
                this.push(m);
            }
            for i in 0..kinds.len() {
                // The first client (tokio-tungstenite unless `--only`) is 1.0.
                ratios[i].push(this[0].secs / this[i].secs);
                cpu_ratios[i].push(this[0].cpu_ns / this[i].cpu_ns);
            }
        }
        println!(
            "{count} messages of {label}, median of {reps} runs (ratios: same run, vs tokio-tungstenite; \
             CPU: the client thread's, per message):"
        );
        for (i, kind) in kinds.iter().enumerate() {
            let s = median(secs[i].clone());
            println!(
                "  {:<20} {:>12.0} msg/s {:>9.1} MB/s   {:.2}x   CPU {:>9.1} ns/msg   {:.2}x less",
                kind.name(),
                count as f64 / s,
                (count * size) as f64 / s / 1e6,
                median(ratios[i].clone()),
                median(cpu[i].clone()),
                median(cpu_ratios[i].clone()),
            );
        }
    }
}
