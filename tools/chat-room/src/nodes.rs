//! `nodes` and `nodes-latency`: the chat room across wshub nodes bridged
//! through Redis (`wshub::redis`), against the same room on one node, in the
//! same run.
//!
//! Both start their own `redis-server` on a free loopback port (a temporary
//! directory, no persistence) and run each node as this binary's `node`
//! command: the chat server of `server wshub` on a hub bridged to that
//! Redis, with a `/stats` route giving the bridge's counters as JSON.
//!
//! - `nodes`: Bun's chat room (see `client`) three ways: one plain wshub
//!   server with all N clients; one bridged node with all N; two bridged
//!   nodes with the clients split half/half (every client still receives
//!   all N×M messages of a round, half of them across Redis). Besides
//!   msgs/s, the CPU of each server process and of redis-server (/proc,
//!   over the measured seconds), Redis's PUBLISH calls (`INFO
//!   commandstats`) and the bridges' pipelines.
//! - `nodes-latency`: `latency`'s fan-out (1 publisher, S subscribers, R
//!   messages/s) on one plain node, on one bridged node, and with the
//!   publisher on node A and every subscriber on node B.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};
use testkit::proc::{CpuMeter, CpuUse};
use testkit::raise_nofile;
use wshub::Compression;
use wshub::redis::{Options, RedisBridge};

use crate::args::{Args, core_list};
use crate::client::{self, median, si};
use crate::orchestra::{Common, Server, client_result, spawn_client};
use crate::servers;

/// How a room is served in one measurement.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Setup {
    /// `server wshub`: one process, no Redis.
    Single,
    /// One `node`: every publish also goes through Redis (and comes back,
    /// skipped as its own).
    OneNode,
    /// Two `node`s, the clients split between them.
    TwoNodes,
}

impl Setup {
    const ALL: [Setup; 3] = [Setup::Single, Setup::OneNode, Setup::TwoNodes];

    fn label(self) -> &'static str {
        match self {
            Setup::Single => "1 node, no Redis",
            Setup::OneNode => "1 node + Redis",
            Setup::TwoNodes => "2 nodes + Redis",
        }
    }
}

/// `node --addr HOST:PORT --redis URL [--threads T]`: the chat server of
/// `server wshub` on a hub bridged through the Redis at URL; `GET /stats`
/// gives the bridge's counters.
pub fn node_main(args: &mut Args) -> Result<(), String> {
    let addr: SocketAddr = args.get("addr", SocketAddr::from(([127, 0, 0, 1], 4001)))?;
    let url = args.value("redis").ok_or("node: --redis URL")?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: usize = args.get("threads", workers)?;
    let mut options = Options::default();
    if let Some(max) = args.value("max-queued") {
        options = options.max_queued(max.parse().map_err(|e| format!("--max-queued: {e}"))?);
    }
    args.finish()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let bridge = RedisBridge::connect_with(&url, options)
            .await
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        let stats = bridge.clone();
        let app = servers::wshub_app_on(bridge.hub(), Compression::DISABLED, false).route(
            "/stats",
            get(move || {
                let s = stats.stats();
                async move {
                    Json(json!({
                        "published": s.published,
                        "publishes": s.publishes,
                        "pipelines": s.pipelines,
                        "received": s.received,
                        "dropped": s.dropped,
                        "malformed": s.malformed,
                        "reconnects": s.reconnects,
                    }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        println!(
            "node {:016x} listening on {addr} ({threads} runtime thread(s)), Redis {url}",
            bridge.node_id()
        );
        wshub::serve(listener, app).await.map_err(|e| e.to_string())
    })
}

/// A `redis-server` of our own on a loopback port, in a temporary
/// directory; stopped and removed when dropped.
struct Redis {
    addr: SocketAddr,
    child: Child,
    dir: PathBuf,
    version: String,
}

impl Redis {
    fn start(binary: &str, addr: SocketAddr, cores: &[usize]) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "chat-room-redis-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new("taskset")
            .args(["-c", &core_list(cores), binary])
            .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {binary}: {e}"))?;
        let mut redis = Self {
            addr,
            child,
            dir,
            version: String::new(),
        };
        let start = Instant::now();
        loop {
            match redis.command(&["INFO", "server"]) {
                Ok(info) => {
                    redis.version = field(&info, "redis_version").unwrap_or_default().to_owned();
                    return Ok(redis);
                }
                Err(_) if start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(format!("redis-server on {addr} did not answer: {e}")),
            }
        }
    }

    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// PUBLISH calls so far (`cmdstat_publish:calls=` of `INFO commandstats`).
    fn publish_calls(&self) -> Result<u64, String> {
        Ok(publish_calls(&self.command(&["INFO", "commandstats"])?))
    }

    /// Sends one command and reads its bulk-string reply.
    fn command(&self, words: &[&str]) -> Result<String, String> {
        let io = |e: std::io::Error| format!("redis {}: {e}", self.addr);
        let mut tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).map_err(io)?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io)?;
        let mut request = format!("*{}\r\n", words.len());
        for word in words {
            request += &format!("${}\r\n{word}\r\n", word.len());
        }
        tcp.write_all(request.as_bytes()).map_err(io)?;
        let mut reader = BufReader::new(tcp);
        let mut head = String::new();
        reader.read_line(&mut head).map_err(io)?;
        let len: usize = head
            .trim_end()
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("redis {}: unexpected reply {head:?}", self.addr))?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body).map_err(io)?;
        String::from_utf8(body).map_err(|e| e.to_string())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of `name:value` in an `INFO` reply.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// `cmdstat_publish:calls=N,...` of `INFO commandstats`: N (0 before the
/// first PUBLISH, when the line is missing).
fn publish_calls(info: &str) -> u64 {
    field(info, "cmdstat_publish")
        .and_then(|v| v.strip_prefix("calls="))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What both orchestrators take.
struct Cluster {
    common: Common,
    redis: Redis,
    /// `--max-queued` for the nodes' bridges (`Options::max_queued`).
    max_queued: Option<usize>,
}

impl Cluster {
    fn parse(args: &mut Args) -> Result<Self, String> {
        let binary = args
            .value("redis-server")
            .unwrap_or_else(|| "redis-server".to_owned());
        let mut common = Common::parse_for(args, &["wshub"])?;
        let redis_cores = args.cores("redis-cores", &common.server_cores)?;
        let max_queued = args
            .value("max-queued")
            .map(|n| n.parse())
            .transpose()
            .map_err(|e| format!("--max-queued: {e}"))?;
        if common.servers != ["wshub"] {
            return Err("nodes: only the wshub server can be bridged (no --servers)".to_owned());
        }
        let addr = common.free_addr()?;
        let redis = Redis::start(&binary, addr, &redis_cores)?;
        eprintln!(
            "redis-server {} on {addr} (pid {}, cores {})",
            redis.version,
            redis.pid(),
            core_list(&redis_cores)
        );
        Ok(Self {
            common,
            redis,
            max_queued,
        })
    }

    /// The server processes of `setup`, pinned to the server cores.
    fn start(&mut self, setup: Setup) -> Result<Vec<Server>, String> {
        let count = match setup {
            Setup::Single => return Ok(vec![self.common.start("wshub")?]),
            Setup::OneNode => 1,
            Setup::TwoNodes => 2,
        };
        (0..count).map(|_| self.start_node()).collect()
    }

    fn start_node(&mut self) -> Result<Server, String> {
        let addr = self.common.free_addr()?;
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let mut command = Command::new("taskset");
        command
            .args(["-c", &core_list(&self.common.server_cores)])
            .arg(exe)
            .args(["node", &format!("--addr={addr}")])
            .arg(format!("--redis={}", self.redis.url()));
        if let Some(max) = self.max_queued {
            command.arg(format!("--max-queued={max}"));
        }
        Server::spawn("node", addr, command)
    }
}

/// The bridge's counters of a `node` (`GET /stats`).
fn node_stats(addr: SocketAddr) -> Result<Value, String> {
    let io = |e: std::io::Error| format!("GET http://{addr}/stats: {e}");
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(io)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    tcp.write_all(b"GET /stats HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        .map_err(io)?;
    let mut response = String::new();
    tcp.read_to_string(&mut response).map_err(io)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or_else(|| format!("GET http://{addr}/stats: {response:?}"))?;
    serde_json::from_str(body).map_err(|e| format!("GET http://{addr}/stats: {e}: {body:?}"))
}

/// The sum of counter `name` over the nodes' stats.
fn total(stats: &[Value], name: &str) -> u64 {
    stats.iter().filter_map(|s| s[name].as_u64()).sum()
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The measurements of one cell: clients, messages per batch, setup.
type Cells = Vec<((usize, usize, Setup), Vec<Sample>)>;

/// One measurement of the chat room.
struct Sample {
    msgs_per_s: f64,
    /// Messages delivered to the clients in the measured seconds.
    delivered: u64,
    /// CPU of each server process, then of redis-server.
    servers_cpu: Vec<f64>,
    redis_cpu: f64,
    client_cpu: f64,
    /// Wall seconds the CPU was measured over.
    wall: f64,
    /// PUBLISH calls Redis served, and the bridges' pipelines and
    /// publishes, in the measured seconds.
    publish_calls: u64,
    pipelines: u64,
    published: u64,
    dropped: u64,
    failure: Option<String>,
}

/// How long before measuring the client is started: connecting and the
/// warm-up round fit in it.
const LEAD: Duration = Duration::from_millis(1500);

fn measure(cluster: &mut Cluster, setup: Setup, opts: &client::Opts) -> Result<Sample, String> {
    let mut servers = cluster.start(setup)?;
    let start_at = now_ms() + LEAD.as_millis() as u64;
    let opts = client::Opts {
        addr: servers[0].addr,
        peer: servers.get(1).map(|s| s.addr),
        server_pid: None,
        start_at: Some(start_at),
        ..opts.clone()
    };
    let child = spawn_client(&cluster.common.client_cores, &opts.to_args())?;
    std::thread::sleep(Duration::from_millis(start_at.saturating_sub(now_ms())));
    let bridged = setup != Setup::Single;
    let stats = |servers: &[Server]| -> Result<Vec<Value>, String> {
        match bridged {
            true => servers.iter().map(|s| node_stats(s.addr)).collect(),
            false => Ok(Vec::new()),
        }
    };
    let window = Instant::now();
    let meters: Vec<_> = servers.iter().map(|s| CpuMeter::start(s.pid)).collect();
    let redis_meter = CpuMeter::start(cluster.redis.pid());
    let calls_before = cluster.redis.publish_calls()?;
    let stats_before = stats(&servers)?;
    let report = client_result(child)?;
    let wall = window.elapsed().as_secs_f64();
    let cpu = |m: Option<CpuMeter>| m.and_then(|m| m.read()).map_or(0.0, |c: CpuUse| c.total());
    let servers_cpu = meters.into_iter().map(cpu).collect();
    let redis_cpu = cpu(redis_meter);
    let publish_calls = cluster.redis.publish_calls()? - calls_before;
    let stats_after = stats(&servers)?;
    for server in &mut servers {
        if !server.alive() {
            let output = server.output().join(" | ");
            return Err(format!("{} exited: {output}", setup.label()));
        }
    }
    let delta = |name| total(&stats_after, name) - total(&stats_before, name);
    if let Some(late) = report["late_ms"].as_u64().filter(|&l| l > 0) {
        eprintln!("  (the client started measuring {late} ms late)");
    }
    Ok(Sample {
        msgs_per_s: report["median"].as_f64().unwrap_or(0.0),
        delivered: report["received"].as_u64().unwrap_or(0),
        servers_cpu,
        redis_cpu,
        wall,
        client_cpu: ["user", "system"]
            .iter()
            .filter_map(|k| report["client_cpu"][k].as_f64())
            .sum(),
        publish_calls,
        pipelines: delta("pipelines"),
        published: delta("published"),
        dropped: delta("dropped"),
        failure: stall(&report),
    })
}

/// How a client's run stalled, if it did.
fn stall(report: &Value) -> Option<String> {
    report["stalled_at"].is_number().then(|| {
        let closed = if report["closed"] == true {
            ", closed"
        } else {
            ""
        };
        format!("stalled ({} lost{closed})", report["lost"])
    })
}

/// `nodes`: the throughput table.
pub fn orchestrate(args: &mut Args) -> Result<(), String> {
    let clients: Vec<usize> = args.list("clients", &[16, 32])?;
    let messages: Vec<usize> = args.list("messages", &[50])?;
    let reps: usize = args.get("reps", 3)?;
    let seconds: usize = args.get("seconds", 5)?;
    let stall_timeout: f64 = args.get("stall-timeout", 5.0)?;
    let mut cluster = Cluster::parse(args)?;
    args.finish()?;
    let mut cells = Cells::new();
    let total = reps * clients.len() * messages.len() * Setup::ALL.len();
    let mut done = 0;
    for rep in 1..=reps {
        for &n in &clients {
            for &m in &messages {
                let opts = client::Opts::cell(n, m, seconds, stall_timeout);
                for setup in Setup::ALL {
                    done += 1;
                    let label = format!(
                        "[{done}/{total}] {:<16} N={n:<3} M={m:<5} rep {rep}",
                        setup.label()
                    );
                    let sample = measure(&mut cluster, setup, &opts);
                    match &sample {
                        Ok(s) => eprintln!("{label}: {}", describe(s)),
                        Err(e) => eprintln!("{label}: FAILED: {e}"),
                    }
                    let key = (n, m, setup);
                    match cells.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, samples)) => samples.extend(sample.ok()),
                        None => cells.push((key, sample.into_iter().collect())),
                    }
                }
            }
        }
    }
    print_table(&cluster, &cells, reps, seconds);
    Ok(())
}

fn describe(s: &Sample) -> String {
    let cpus: Vec<String> = s.servers_cpu.iter().map(|c| format!("{c:.0}%")).collect();
    format!(
        "{} msgs/s, server CPU {}, redis {:.0}%, PUBLISH {} / pipelines {} / delivered {}{}",
        si(s.msgs_per_s),
        cpus.join("+"),
        s.redis_cpu,
        s.publish_calls,
        s.pipelines,
        s.delivered,
        s.failure
            .as_ref()
            .map(|f| format!(", {f}"))
            .unwrap_or_default()
    )
}

impl Sample {
    /// Messages delivered per CPU second of the servers and redis-server
    /// together: what a setup costs when the cores are shared.
    fn per_cpu_second(&self) -> f64 {
        let cpu: f64 = self.servers_cpu.iter().sum::<f64>() + self.redis_cpu;
        self.delivered as f64 / (cpu / 100.0 * self.wall).max(1e-9)
    }
}

/// The median of `f` over `samples`.
fn med(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    median(&samples.iter().map(f).collect::<Vec<_>>())
}

fn print_table(cluster: &Cluster, cells: &Cells, reps: usize, seconds: usize) {
    let common = &cluster.common;
    println!();
    println!(
        "Chat room across nodes, messages received per second: median second of each {seconds} s run, \
         median of {reps} runs (servers and redis-server {} pinned to core(s) {}, client to {}; \
         bridge queue: {})",
        cluster.redis.version,
        core_list(&common.server_cores),
        core_list(&common.client_cores),
        cluster
            .max_queued
            .map_or("the default".to_owned(), |n| format!("{n} messages")),
    );
    println!();
    println!(
        "| N | M | setup | msgs/s | runs (min–max) | vs 1 node: median (per run) | server CPU | redis CPU | \
         msgs per CPU-s | client CPU | PUBLISH / delivered | PUBLISH / message | messages / pipeline | \
         PUBLISH / pipeline | stalled runs, dropped |"
    );
    println!("|---:|---:|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for ((n, m, setup), samples) in cells {
        let single = cells
            .iter()
            .find(|(k, _)| *k == (*n, *m, Setup::Single))
            .map(|(_, s)| s.as_slice())
            .unwrap_or_default();
        println!("{}", row((*n, *m, *setup), samples, single));
    }
    println!();
    println!(
        "CPU: % of one core over the measured seconds, median of the runs, each server process \
         (+ for two nodes), and redis-server; msgs per CPU-s: messages delivered per second of CPU of \
         the servers and redis-server together (a fairer cost when other work shares the cores). \
         PUBLISH: calls in Redis's INFO commandstats; a message is one chat line, delivered to all N clients; messages / pipeline: the bridges' publishes \
         per pipeline (one round trip to Redis, one look at the bridge's queue), all runs together; \
         dropped: publishes the bridges' queues had no room for (`--max-queued`), lost to the other \
         node, which stalls its clients' batch."
    );
}

/// The table's row of one cell; `single`: the same N × M on one plain node.
fn row((n, m, setup): (usize, usize, Setup), samples: &[Sample], single: &[Sample]) -> String {
    if samples.is_empty() {
        return format!(
            "| {n} | {m} | {} | failed |{}",
            setup.label(),
            " |".repeat(11)
        );
    }
    let rates: Vec<f64> = samples.iter().map(|s| s.msgs_per_s).collect();
    let (lo, hi) = rates
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let cpu: Vec<String> = (0..samples[0].servers_cpu.len())
        .map(|i| format!("{:.0}%", med(samples, |s| s.servers_cpu[i])))
        .collect();
    let per = |num: &dyn Fn(&Sample) -> u64, den: &dyn Fn(&Sample) -> u64| {
        let (num, den): (u64, u64) = samples
            .iter()
            .fold((0, 0), |(a, b), s| (a + num(s), b + den(s)));
        match (setup, den) {
            (Setup::Single, _) | (_, 0) => "–".to_owned(),
            _ => format!("{:.3}", num as f64 / den as f64),
        }
    };
    // Every message published reaches all N clients.
    let messages = |s: &Sample| s.delivered / n as u64;
    let stalled = samples.iter().filter(|s| s.failure.is_some()).count();
    let dropped: u64 = samples.iter().map(|s| s.dropped).sum();
    format!(
        "| {n} | {m} | {} | {} | {}–{} | {} | {} | {:.0}% | {} | {:.0}% | {} | {} | {} | {} | {} |",
        setup.label(),
        si(median(&rates)),
        si(lo),
        si(hi),
        versus(setup, samples, single),
        cpu.join(" + "),
        med(samples, |s| s.redis_cpu),
        si(med(samples, Sample::per_cpu_second)),
        med(samples, |s| s.client_cpu),
        per(&|s| s.publish_calls, &|s| s.delivered),
        per(&|s| s.publish_calls, &messages),
        per(&|s| s.published, &|s| s.pipelines),
        per(&|s| s.publish_calls, &|s| s.pipelines),
        match (stalled, dropped) {
            (0, 0) => "0".to_owned(),
            (stalled, dropped) => format!("{stalled} stalled, {dropped} dropped"),
        },
    )
}

/// `vs 1 node`: the median of the per-run ratios, and each. Run i of a
/// setup is against run i of the single node: measured seconds apart, so
/// they see the same machine.
fn versus(setup: Setup, samples: &[Sample], single: &[Sample]) -> String {
    let ratios: Vec<f64> = samples
        .iter()
        .zip(single)
        .filter(|(_, one)| one.msgs_per_s > 0.0)
        .map(|(s, one)| s.msgs_per_s / one.msgs_per_s)
        .collect();
    if setup == Setup::Single || ratios.is_empty() {
        return "–".to_owned();
    }
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    format!("{:.2}× ({})", median(&ratios), each.join(", "))
}

/// `nodes-latency`: `latency` on one plain node, one bridged node, and
/// across two nodes (the publisher on A, the subscribers on B).
pub fn latency(args: &mut Args) -> Result<(), String> {
    let subscribers: usize = args.get("subscribers", 1000)?;
    let rate: u32 = args.get("rate", 200)?;
    let seconds: u32 = args.get("seconds", 10)?;
    let reps: usize = args.get("reps", 1)?;
    let mut cluster = Cluster::parse(args)?;
    args.finish()?;
    raise_nofile(subscribers as u64 + 1024)?;
    let client_args = [
        format!("--subscribers={subscribers}"),
        format!("--rate={rate}"),
        format!("--seconds={seconds}"),
    ];
    let mut rows = Vec::new();
    // (setup, p50, p99) of each run, in ms.
    let mut quantiles: Vec<(Setup, f64, f64)> = Vec::new();
    for rep in 1..=reps {
        for setup in Setup::ALL {
            let result = cluster.start(setup).and_then(|servers| {
                let subscribers_at = servers.last().ok_or("no server")?;
                let mut args = vec![
                    "latency-client".to_owned(),
                    format!("--addr={}", subscribers_at.addr),
                    format!("--publisher-addr={}", servers[0].addr),
                    format!("--server-pid={}", subscribers_at.pid),
                ];
                args.extend(client_args.iter().cloned());
                cluster.common.run_client(&args)
            });
            let row = match result {
                Ok(r) => {
                    let q = |k: &str| r[k].as_f64().unwrap_or(0.0) / 1e6;
                    quantiles.push((setup, q("p50_ns"), q("p99_ns")));
                    latency_row(setup, rep, &r)
                }
                Err(error) => format!(
                    "| {} | {rep} | failed: {error} | | | | | | |",
                    setup.label()
                ),
            };
            eprintln!("{row}");
            rows.push(row);
        }
    }
    println!();
    println!(
        "Fan-out latency across nodes: {subscribers} subscribers + 1 publisher in one room, {rate} messages/s \
         for {seconds} s; two nodes: the publisher on node A, the subscribers on node B (redis-server {}, \
         servers on core(s) {}, client on {})",
        cluster.redis.version,
        core_list(&cluster.common.server_cores),
        core_list(&cluster.common.client_cores),
    );
    println!();
    println!(
        "| setup | rep | deliveries | missing | p50 ms | p90 ms | p99 ms | max ms | subscribers' server CPU |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    print_latency_medians(&quantiles);
    Ok(())
}

/// One run of `latency-client`, as a row of the table.
fn latency_row(setup: Setup, rep: usize, r: &Value) -> String {
    let ms = |k: &str| format!("{:.2}", r[k].as_f64().unwrap_or(0.0) / 1e6);
    format!(
        "| {} | {rep} | {} | {} | {} | {} | {} | {} | {:.0}% |",
        setup.label(),
        r["deliveries"],
        r["missing"],
        ms("p50_ns"),
        ms("p90_ns"),
        ms("p99_ns"),
        ms("max_ns"),
        r["server_cpu"].as_f64().unwrap_or(0.0),
    )
}

/// The median p50 and p99 of each setup's runs.
fn print_latency_medians(quantiles: &[(Setup, f64, f64)]) {
    println!();
    println!("| setup | p50 ms, median | p99 ms, median |");
    println!("|---|---:|---:|");
    for setup in Setup::ALL {
        let runs: Vec<_> = quantiles.iter().filter(|q| q.0 == setup).collect();
        if !runs.is_empty() {
            let p50 = median(&runs.iter().map(|q| q.1).collect::<Vec<_>>());
            let p99 = median(&runs.iter().map(|q| q.2).collect::<Vec<_>>());
            println!("| {} | {p50:.2} | {p99:.2} |", setup.label());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_calls_are_read_from_commandstats() {
        let info = "# Commandstats\r\ncmdstat_ping:calls=3,usec=1\r\n\
                    cmdstat_publish:calls=1234,usec=5678,usec_per_call=4.60\r\n";
        assert_eq!(publish_calls(info), 1234);
        assert_eq!(
            publish_calls("# Commandstats\r\ncmdstat_ping:calls=3\r\n"),
            0
        );
        assert_eq!(
            field("redis_version:7.0.15\r\n", "redis_version"),
            Some("7.0.15")
        );
        assert_eq!(field("redis_version_x:1\r\n", "redis_version"), None);
    }
}
