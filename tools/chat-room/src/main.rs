//! The chat-room load test: Bun's own WebSocket benchmark scenario
//! (`bench/websocket-server` in Bun's repository) against wshub, axum's
//! `extract::ws` and Bun itself.
//!
//! N clients join one room; each sends a batch of M short messages; the
//! server publishes `"{name}: {message}"` to the whole room, sender included;
//! the next batch starts when every client has received all N×M messages.
//! The result is messages received per second.
//!
//! ```text
//! cargo run --release -p chat-room -- run            # the whole comparison
//! cargo run --release -p chat-room -- run --servers wshub,bun --clients 32 --messages 50 --reps 1 --seconds 5
//! cargo run --release -p chat-room -- rss            # server memory per idle connection
//! cargo run --release -p chat-room -- run --tls --servers wshub,bun   # over wss://
//! cargo run --release -p chat-room -- run --servers wshub,wshub-h2    # HTTP/1.1 vs HTTP/2
//! cargo run --release -p chat-room -- rss --tls --servers wshub,bun
//! cargo run --release -p chat-room -- run --servers wshub-deflate-shared,bun-deflate-shared
//! cargo run --release -p chat-room -- rss --deflate --connections 1000 \
//!     --servers wshub,wshub-deflate-shared,wshub-deflate-dedicated,wshub-deflate-3kb
//! cargo run --release -p chat-room -- latency        # fan-out latency to 1,000 subscribers
//! cargo run --release -p chat-room -- slow           # 1 GiB into a room with a socket that never reads
//! cargo run --release -p chat-room -- server wshub --addr 127.0.0.1:4001
//! cargo run --release -p chat-room -- help
//! ```
//!
//! Many cores (`multicore`): R rooms, each driven by its own client process
//! pinned to its own core, against a server on T tokio worker threads pinned
//! to T cores of its own; the table sums the rooms' messages per second and
//! gives the server's CPU use and CPU time per message:
//!
//! ```text
//! # 2 cores: 1 room, its client on core 1; the server on core 0 (T=1), then on both (T=2)
//! cargo run --release -p chat-room -- multicore --rooms 1 --threads 1,2 \
//!     --server-cores 0-1 --client-cores 1 --clients 16,32 --messages 50 --reps 1 --seconds 5
//! # 16 cores: 8 rooms, clients on cores 8-15; the server on 1, 2, 4 and 8 of cores 0-7
//! cargo run --release -p chat-room -- multicore --rooms 8 --threads 1,2,4,8 \
//!     --server-cores 0-7 --client-cores 8-15
//! ```
//!
//! Across nodes (`nodes`, `nodes-latency`): the same room on wshub servers
//! bridged through a redis-server the tool starts itself:
//!
//! ```text
//! cargo run --release -p chat-room -- nodes --clients 16,32 --messages 50 --reps 3 --seconds 5
//! cargo run --release -p chat-room -- nodes-latency --subscribers 1000 --rate 200
//! ```
//!
//! One binary plays every role: the orchestrators (`run`, `multicore`, `rss`,
//! `latency`, `slow`) start each server pinned to its core(s) and re-run this
//! binary as the load client(s), pinned to others.

mod args;
mod client;
mod h2;
mod latency;
mod multicore;
mod nodes;
mod orchestra;
mod rss;
mod servers;
mod slow;
mod tls;
mod wire;

use std::process::ExitCode;

use args::Args;

const USAGE: &str = "\
chat-room — Bun's chat-room WebSocket benchmark for wshub, axum and Bun

usage: chat-room [COMMAND] [OPTIONS]   (cargo run --release -p chat-room -- ...)

commands:
  run             the throughput table: every server × N × M × repetitions
      --servers wshub,wshub-ct,axum,axum-batched,bun   --clients 16,32
      --messages 50,1600   --reps 3   --seconds 10   --stall-timeout 5
      --deflate   the client offers permessage-deflate to every server (always to
                  the deflate servers); it sends plain frames and counts RSV1 ones
      --verify    the first client inflates and checks every message it receives
      --tls       over wss://: every server presents one self-signed certificate made
                  at start, the clients trust it (wshub servers but wshub-hyper, and Bun)
  multicore       many cores: R rooms on one server with T worker threads, each room
                  driven by its own client process on its own core; the rooms' msgs/s
                  added, server CPU (/proc) and server CPU time per message
      --rooms R   (default: one per client core)
      --threads 1,2,4   worker threads, each T pinned to the first T server cores
                  (default 1, 2, 4 … up to the number of server cores)
      --server-cores LIST   --client-cores LIST   (default: the first and the second
                  half of the cores, e.g. 0-7 and 8-15; on 2 cores 0 and 1)
      --servers wshub   (wshub, wshub-hyper, wshub-deflate-MODE)   --clients 16,32
      --messages 50,1600   --reps 3   --seconds 10   --stall-timeout 5   --deflate
  rss             server memory per idle connection
      --servers (as above)   --connections 10000   --settle 2
      --deflate   offer permessage-deflate to every server (always to the deflate
                  servers), then exchange one binary message each way per connection
                  (compressed when agreed), so lazily made (de)compressors exist
      --message-bytes 1024   the size of that message
      --tls       over wss:// (as for run)
  latency         fan-out latency: subscribers + 1 publisher in one room
      --servers (as above)   --subscribers 1000   --rate 200   --seconds 10
  slow            a socket that never reads while 1 GiB is published into its room:
                  fast readers' messages and throughput without and with it, server VmRSS
                  every 50 ms, what became of the silent socket (wshub-slow servers)
      --modes drop,close   (default backpressure_limit, and close_on_backpressure_limit)
      --reps 3   --readers 4   --messages 16384   --message-bytes 65536
      --window 64   messages the publisher may be ahead of the slowest fast reader
      --stall-timeout 10
  nodes           the chat room across wshub nodes bridged through a redis-server of its
                  own: one node without Redis, one node with it, two nodes with the
                  clients split half/half; msgs/s, ratio to one node, CPU of each server
                  and of redis-server, PUBLISH calls and pipelines per message
      --clients 16,32   --messages 50   --reps 3   --seconds 5   --stall-timeout 5
      --redis-server PATH (default redis-server)   --redis-cores LIST (default:
                  the server cores)   --max-queued N   the bridges' queue (default 262144)
  nodes-latency   `latency` on those three: across nodes, the publisher on node A and
                  every subscriber on node B
      --subscribers 1000   --rate 200   --seconds 10   --reps 1   (--redis-* as above)
  node --addr HOST:PORT --redis URL [--threads T --max-queued N]
                  the wshub chat server on a hub bridged through Redis; GET /stats
                  gives the bridge's counters
  server KIND --addr HOST:PORT [--threads T] [--exit-after S] [--tls DIR]
                  one chat server (wshub, wshub-ct, wshub-hyper, wshub-deflate-MODE, axum,
                  axum-batched), or wshub-slow / wshub-slow-close: every binary message
                  from `?name=pub` published to a room everyone else is in. --threads:
                  the runtime's worker threads (default: one per core it may run on).
                  --tls: serve wss:// with DIR/cert.pem and DIR/key.pem
  client --addr HOST:PORT [--clients N --messages M --seconds S --stall-timeout S --server-pid PID
         --deflate --verify --room ROOM --start-at UNIX_MS --tls DIR --h2]
                  (--tls: connect over wss://, trusting only DIR/cert.pem;
                  --h2: over HTTP/2, h2c)
  rss-client, latency-client, slow-client
                  the clients the orchestrators start
  selftest        checks the client's frame counting on split frames

servers:
  wshub           wshub behind wshub::serve on a multi-thread runtime (one worker per core);
                  a client with `?room=ROOM` is in that room (the wshub servers only)
  wshub-ct        the same on a current-thread runtime
  wshub-hyper     the same app served by hyper's HTTP/1 connection directly instead of
                  wshub::serve (the driver gets the TcpStream back either way)
  wshub-h2        the wshub server, its clients over HTTP/2 (h2c, RFC 8441): each client
                  its own HTTP/2 connection, its socket an extended CONNECT stream
  axum            axum's extract::ws + tokio broadcast, as axum's examples/chat
  axum-batched    the same, forwarding everything queued with feed + one flush
  bun             tools/chat-room/server.bun.js
  wshub-deflate-MODE, bun-deflate-MODE
                  the same with permessage-deflate, every message sent compressed.
                  MODE: one compressor both ways — disabled, shared, dedicated, 3kb, 4kb,
                  8kb, 16kb, 32kb, 64kb, 128kb, 256kb — or COMPRESS-DECOMPRESS
                  (dedicated-shared). bun-deflate-shared is Bun's `perMessageDeflate: true`.
  Variations: KIND[+nodelay][@CAPACITY]. `wshub+nodelay` sets TCP_NODELAY on every
  accepted socket (axum's `ListenerExt::tap_io`); `axum@65536` gives the axum servers'
  broadcast channel that capacity (default 100, as in axum's examples/chat).

common options:
  --bun PATH           Bun executable (default: $BUN, then
                       ~/.cache/wshub-bench/node_modules/bun/bin/bun.exe, then `bun` on PATH)
  --server-cores LIST  cores the server is pinned to, as taskset writes them: 0, 0-3, 0,2
                       (default 0; also --server-core)
  --client-cores LIST  cores the client is pinned to (default 1; also --client-core)
  --port P             first port to use (default 4100)
";

fn main() -> ExitCode {
    let mut args = Args::from_env();
    let command = args.command().unwrap_or_else(|| "help".to_owned());
    let result = match command.as_str() {
        "run" => orchestra::throughput(&mut args),
        "multicore" => multicore::orchestrate(&mut args),
        "rss" => rss::orchestrate(&mut args),
        "latency" => latency::orchestrate(&mut args),
        "slow" => slow::orchestrate(&mut args),
        "nodes" => nodes::orchestrate(&mut args),
        "nodes-latency" => nodes::latency(&mut args),
        "node" => nodes::node_main(&mut args),
        "server" => servers::main(&mut args),
        "client" => client::main(&mut args),
        "rss-client" => rss::client_main(&mut args),
        "latency-client" => latency::client_main(&mut args),
        "slow-client" => slow::client_main(&mut args),
        "selftest" => wire::selftest().map(|()| println!("selftest: ok")),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}` (see `chat-room help`)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat-room {command}: {error}");
            ExitCode::FAILURE
        }
    }
}
