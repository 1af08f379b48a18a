//! A hot room on a runtime with more worker threads than cores: eight
//! socket loops wake one another for every round of publishes, while their
//! own sockets' reads wake them too. A wake-up lost between loops leaves a
//! loop asleep with subscribers to write to, and the round never ends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use wshub::protocol::encode_frame;
use wshub::protocol::frame::OpCode;
use wshub::{Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer};

const WORKERS: usize = 8;
const CLIENTS: usize = 32;
const BURST: usize = 50;
const PAYLOAD: &[u8; 16] = b"a hot room here!";
/// A server frame: 2 header bytes and the payload.
const SERVER_FRAME: usize = 2 + PAYLOAD.len();
/// How long the rounds go on.
const RUN: Duration = Duration::from_secs(4);
/// A round takes milliseconds; one this long has stalled.
const STALLED: Duration = Duration::from_secs(10);

struct Room;

impl Handler for Room {
    type Data = ();

    async fn open(&self, ws: &WebSocket<()>) {
        ws.subscribe("room");
        ws.send_binary(&b"ready"[..]);
    }

    async fn message(&self, ws: &WebSocket<()>, msg: Message) {
        ws.publish("room", msg);
    }
}

#[test]
fn a_hot_room_on_eight_loops_never_stalls() {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    let addr = server.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let layer = WebSocketLayer::new(Room).config(Config::default().publish_to_self(true));
        let app = Router::new()
            .route("/", get(|up: Upgrade<()>| async move { up.accept(()) }))
            .layer(layer);
        tokio::spawn(async move { wshub::serve(listener, app).await });
        addr
    });
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rounds = clients.block_on(rounds(addr));
    drop(server);
    assert!(rounds > 0);
}

/// Runs lockstep rounds for `RUN`: every client sends a burst, then every
/// client reads the whole round (each burst from each client).
async fn rounds(addr: SocketAddr) -> u64 {
    let mut sockets = Vec::new();
    for _ in 0..CLIENTS {
        sockets.push(connect(addr).await);
    }
    let mut burst = BytesMut::new();
    for _ in 0..BURST {
        encode_frame(&mut burst, OpCode::Binary, PAYLOAD, Some([1, 2, 3, 4]));
    }
    let per_round = CLIENTS * BURST * SERVER_FRAME;
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < RUN {
        for socket in &mut sockets {
            socket.write_all(&burst).await.unwrap();
        }
        for (index, socket) in sockets.iter_mut().enumerate() {
            let mut got = 0;
            while got < per_round {
                let read = tokio::time::timeout(STALLED, socket.read(&mut buf)).await;
                let Ok(read) = read else {
                    panic!(
                        "round {rounds} stalled: client {index} got {got} of {per_round} bytes \
                         in {} s",
                        STALLED.as_secs()
                    );
                };
                let n = read.unwrap();
                assert!(n > 0, "the server closed client {index} in round {rounds}");
                got += n;
            }
            assert_eq!(got, per_round, "client {index} got more than the round");
        }
        rounds += 1;
    }
    rounds
}

/// Opens a WebSocket by hand and waits for the server's "ready".
async fn connect(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgrade refused");
    let mut ready = [0u8; 7];
    tcp.read_exact(&mut ready).await.unwrap();
    tcp
}
