//! `slow`: one subscriber that never reads while the server publishes 1 GiB
//! into its room (issue 6's slow-consumer measurement).
//!
//! The server (`wshub-slow`; `wshub-slow-close` sets
//! `close_on_backpressure_limit`; both keep the default 16 MiB
//! `backpressure_limit`) subscribes every socket but the publisher's to one
//! room and publishes every binary message the publisher sends into it. One
//! client process, pinned to the other core, holds the publisher, K fast
//! readers and, in every second run, a silent socket that completes the
//! handshake and then reads nothing. The publisher stays at most `window`
//! messages ahead of the slowest fast reader, so the fast readers' queues
//! stay far below the limit and only the silent socket crosses it.
//!
//! Per run: what each fast reader received (all of it, or the run fails),
//! its throughput, the server's VmRSS sampled every 50 ms (before the first
//! publish, the peak, after the last message arrived), and the silent
//! socket's fate as the server saw it (publishes that skipped it, its
//! `buffered_amount`, `drain` and `close` callbacks). Last, the silent
//! socket reads what was queued for it: in the default mode that must bring
//! its `drain`.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use bytes::BytesMut;
use serde_json::{Value, json};
use testkit::proc::{cpu_time, minor_faults, vm_rss_kib};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, mpsc};
use wshub::protocol::encode_frame;
use wshub::protocol::frame::OpCode;
use wshub::{Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer};

use crate::args::Args;
use crate::client::median;
use crate::orchestra::Common;
use crate::wire::{FrameCounter, FrameReader, Rng, connect, encode_text};

const ROOM: &str = "room";
const MIB: f64 = 1024.0 * 1024.0;

// ---- the server ----------------------------------------------------------

/// Who a socket is, from `?name=`: `pub` publishes, `silent` never reads,
/// anyone else is a fast reader.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Publisher,
    Silent,
    Reader,
}

/// What the server counts, sent to the publisher when it asks (`stats`).
#[derive(Default)]
struct Counters {
    published: AtomicU64,
    /// Over every publish: subscribers of the room it did not reach.
    skipped: AtomicU64,
    /// The silent socket while it is open; let go in `close`, so that its
    /// queue is freed with the connection.
    silent: Mutex<Option<WebSocket<Role>>>,
    silent_drains: AtomicU64,
    silent_close: Mutex<Option<u16>>,
    reader_drains: AtomicU64,
}

impl Counters {
    fn stats(&self, ws: &WebSocket<Role>) -> Value {
        let silent = self.silent.lock().unwrap_or_else(PoisonError::into_inner);
        json!({
            "published": self.published.load(Ordering::Relaxed),
            "skipped": self.skipped.load(Ordering::Relaxed),
            "subscribers": ws.hub().subscriber_count(ROOM),
            "silent_buffered": silent.as_ref().map(|s| s.buffered_amount()),
            "silent_state": silent.as_ref().map(|s| format!("{:?}", s.ready_state())),
            "silent_drains": self.silent_drains.load(Ordering::Relaxed),
            "silent_close": *self.silent_close.lock().unwrap_or_else(PoisonError::into_inner),
            "reader_drains": self.reader_drains.load(Ordering::Relaxed),
        })
    }
}

struct Relay(Arc<Counters>);

impl Handler for Relay {
    type Data = Role;

    async fn open(&self, ws: &WebSocket<Role>) {
        if *ws.data() != Role::Publisher {
            ws.subscribe(ROOM);
        }
        if *ws.data() == Role::Silent {
            *self.0.silent.lock().unwrap_or_else(PoisonError::into_inner) = Some(ws.clone());
        }
    }

    async fn message(&self, ws: &WebSocket<Role>, msg: Message) {
        if msg.as_text() == Some("stats") {
            ws.send(self.0.stats(ws).to_string());
        } else if msg.is_binary() {
            let subscribers = ws.hub().subscriber_count(ROOM);
            let reached = ws.publish(ROOM, msg);
            self.0.published.fetch_add(1, Ordering::Relaxed);
            let skipped = subscribers.saturating_sub(reached) as u64;
            self.0.skipped.fetch_add(skipped, Ordering::Relaxed);
        }
    }

    async fn drain(&self, ws: &WebSocket<Role>) {
        match ws.data() {
            Role::Silent => &self.0.silent_drains,
            _ => &self.0.reader_drains,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    async fn close(&self, ws: &WebSocket<Role>, code: u16, _reason: &str) {
        if *ws.data() == Role::Silent {
            *self
                .0
                .silent_close
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(code);
            self.0
                .silent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
    }
}

/// The `wshub-slow` server (`wshub-slow-close` with `close_on_limit`).
pub fn app(close_on_limit: bool) -> Router {
    let config = Config::default().close_on_backpressure_limit(close_on_limit);
    Router::new()
        .route(
            "/",
            get(
                |up: Upgrade<Role>, Query(query): Query<HashMap<String, String>>| async move {
                    let role = match query.get("name").map(String::as_str) {
                        Some("pub") => Role::Publisher,
                        Some("silent") => Role::Silent,
                        _ => Role::Reader,
                    };
                    up.accept(role)
                },
            ),
        )
        .layer(WebSocketLayer::new(Relay(Arc::new(Counters::default()))).config(config))
}

// ---- the orchestrator ----------------------------------------------------

/// What one run is asked to do; the orchestrator hands it to the client.
struct Plan {
    readers: usize,
    messages: u64,
    message_bytes: usize,
    window: u64,
    stall: f64,
}

impl Plan {
    /// Takes `--readers --messages --message-bytes --window --stall-timeout`,
    /// with the same defaults for the orchestrator and the client.
    fn parse(args: &mut Args) -> Result<Self, String> {
        Ok(Self {
            readers: args.get("readers", 4)?,
            messages: args.get("messages", 16_384)?,
            message_bytes: args.get("message-bytes", 64 * 1024)?,
            window: args.get("window", 64)?,
            stall: args.get("stall-timeout", 10.0)?,
        })
    }
}

pub fn orchestrate(args: &mut Args) -> Result<(), String> {
    let modes: Vec<String> = args.list("modes", &["drop".to_owned(), "close".to_owned()])?;
    let reps: usize = args.get("reps", 3)?;
    let plan = Plan::parse(args)?;
    // Its servers come from --modes; none of them is Bun.
    let mut common = Common::parse_for(args, &[])?;
    args.finish()?;
    let mut rows = Vec::new();
    for mode in &modes {
        let kind = match mode.as_str() {
            "drop" => "wshub-slow",
            "close" => "wshub-slow-close",
            other => return Err(format!("--modes: {other:?} is not drop or close")),
        };
        let mut runs: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
        // Alternate without and with the silent socket, a fresh server each time.
        for rep in 0..reps {
            for silent in [false, true] {
                let report = run_once(&mut common, kind, &plan, silent)?;
                eprintln!(
                    "{kind} rep {} {}: {}",
                    rep + 1,
                    if silent { "with silent" } else { "no silent" },
                    summary(&report)
                );
                runs[usize::from(silent)].push(report);
            }
        }
        rows.push((mode.clone(), runs));
    }
    print_table(&plan, reps, &rows);
    Ok(())
}

fn run_once(common: &mut Common, kind: &str, plan: &Plan, silent: bool) -> Result<Value, String> {
    let server = common.start(kind)?;
    let mut args = vec![
        "slow-client".to_owned(),
        format!("--addr={}", server.addr),
        format!("--server-pid={}", server.pid),
        format!("--readers={}", plan.readers),
        format!("--messages={}", plan.messages),
        format!("--message-bytes={}", plan.message_bytes),
        format!("--window={}", plan.window),
        format!("--stall-timeout={}", plan.stall),
    ];
    if silent {
        args.push("--silent".to_owned());
    }
    if kind.ends_with("-close") {
        args.push("--expect-close".to_owned());
    }
    let report = common.run_client(&args);
    // Dropping the server kills it.
    drop(server);
    let report = report?;
    let expected = plan.messages;
    let got = report["fast_min_messages"].as_u64().unwrap_or(0);
    if got != expected {
        return Err(format!(
            "{kind}: a fast reader got {got} of {expected} messages: {}",
            summary(&report)
        ));
    }
    Ok(report)
}

fn summary(r: &Value) -> String {
    let mib = |k: &str| r[k].as_f64().unwrap_or(0.0) / 1024.0;
    let mut out = format!(
        "fast readers {}..{} messages, slowest {:.0} MiB/s, server CPU {:.2} s, {} page faults; VmRSS {:.1} → peak {:.1} → end {:.1} MiB",
        r["fast_min_messages"],
        r["fast_max_messages"],
        r["fast_min_mib_s"].as_f64().unwrap_or(0.0),
        r["server_cpu_s"].as_f64().unwrap_or(0.0),
        r["server_page_faults"],
        mib("rss_before_kib"),
        mib("rss_peak_kib"),
        mib("rss_end_kib"),
    );
    if r["silent"].as_bool() == Some(true) {
        let s = &r["stats_end"];
        out += &format!(
            "; silent: skipped {}, queued {:.1} MiB, state {}, drains {}, close {}; it then read {} messages ({:.1} MiB, close frame {}, eof {}); after: drains {}, close {}, VmRSS {:.1} MiB",
            s["skipped"],
            s["silent_buffered"].as_f64().unwrap_or(0.0) / MIB,
            s["silent_state"],
            s["silent_drains"],
            s["silent_close"],
            r["silent_read_messages"],
            r["silent_read_bytes"].as_f64().unwrap_or(0.0) / MIB,
            r["silent_close_frame"],
            r["silent_eof"],
            r["stats_after"]["silent_drains"],
            r["stats_after"]["silent_close"],
            mib("rss_after_kib"),
        );
    }
    out
}

fn print_table(plan: &Plan, reps: usize, rows: &[(String, [Vec<Value>; 2])]) {
    let total = plan.messages as f64 * plan.message_bytes as f64;
    println!();
    println!(
        "Slow consumer: {} messages of {} KiB ({:.2} GiB) published into one room with {} fast readers, \
         without and with one socket that never reads; backpressure_limit 16 MiB; publisher at most \
         {} messages ahead of the slowest fast reader; medians of {reps} runs each, a fresh server per run",
        plan.messages,
        plan.message_bytes / 1024,
        total / (MIB * 1024.0),
        plan.readers,
        plan.window,
    );
    println!();
    println!(
        "| mode | silent socket | fast readers got | slowest fast reader MiB/s | with / without | server CPU (s) | server page faults | \
         VmRSS before (MiB) | peak − before (MiB) | at the end − before (MiB) | \
         publishes that skipped it | queued for it (MiB) | then |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (mode, runs) in rows {
        let mode = match mode.as_str() {
            "close" => "close_on_backpressure_limit",
            _ => "drop (default)",
        };
        let without = med(&runs[0], |r| &r["fast_min_mib_s"]);
        for (silent, reports) in runs.iter().enumerate() {
            // Each run's growth over its own baseline, then the median.
            let over = |k: &str| {
                let growth: Vec<f64> = reports
                    .iter()
                    .map(|r| {
                        let kib = |k: &str| r[k].as_f64().unwrap_or(0.0);
                        (kib(k) - kib("rss_before_kib")) / 1024.0
                    })
                    .collect();
                median(&growth)
            };
            let speed = med(reports, |r| &r["fast_min_mib_s"]);
            let got = reports
                .iter()
                .map(|r| r["fast_min_messages"].as_u64().unwrap_or(0))
                .min()
                .unwrap_or(0);
            let (ratio, skipped, queued, then) = if silent == 1 {
                (
                    format!("{:.2}", speed / without.max(1e-9)),
                    format!("{:.0}", med(reports, |r| &r["stats_end"]["skipped"])),
                    format!(
                        "{:.1}",
                        med(reports, |r| &r["stats_end"]["silent_buffered"]) / MIB
                    ),
                    outcomes(reports),
                )
            } else {
                ("–".into(), "–".into(), "–".into(), "–".into())
            };
            println!(
                "| {mode} | {} | {got} of {} each | {speed:.0} | {ratio} | {:.2} | {:.0}k | {:.1} | {:.1} | {:.1} | {skipped} | {queued} | {then} |",
                if silent == 1 { "yes" } else { "no" },
                plan.messages,
                med(reports, |r| &r["server_cpu_s"]),
                med(reports, |r| &r["server_page_faults"]) / 1000.0,
                med(reports, |r| &r["rss_before_kib"]) / 1024.0,
                over("rss_peak_kib"),
                over("rss_end_kib"),
            );
        }
    }
}

fn med(reports: &[Value], field: impl Fn(&Value) -> &Value) -> f64 {
    let values: Vec<f64> = reports
        .iter()
        .map(|r| field(r).as_f64().unwrap_or(0.0))
        .collect();
    median(&values)
}

/// What became of the silent socket, in words, the distinct outcomes of all runs.
fn outcomes(reports: &[Value]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for r in reports {
        let end = &r["stats_end"];
        let after = &r["stats_after"];
        let read = format!(
            "it read {} messages",
            r["silent_read_messages"].as_u64().unwrap_or(0)
        );
        let outcome = match after["silent_close"].as_u64() {
            Some(code) => format!(
                "closed {code} (server's `close`); {read}, then {}",
                match r["silent_close_frame"].as_u64() {
                    Some(frame) => format!("a close frame {frame}"),
                    None if r["silent_eof"].as_bool() == Some(true) => "EOF, no close frame".into(),
                    None => "nothing".into(),
                }
            ),
            None => format!(
                "stays open, publishes skip it; `drain` {} while unread, {} once {read}",
                end["silent_drains"], after["silent_drains"]
            ),
        };
        if !seen.contains(&outcome) {
            seen.push(outcome);
        }
    }
    seen.join(" / ")
}

// ---- the client ----------------------------------------------------------

/// How far the fast readers are, for the publisher's window.
struct Progress {
    counts: Vec<Cell<u64>>,
    advanced: Notify,
}

impl Progress {
    fn slowest(&self) -> u64 {
        self.counts.iter().map(Cell::get).min().unwrap_or(0)
    }
}

/// `slow-client --addr A --server-pid P --readers K --messages N
/// --message-bytes B --window W --stall-timeout S [--silent] [--expect-close]`.
pub fn client_main(args: &mut Args) -> Result<(), String> {
    let addr: SocketAddr = args.get("addr", SocketAddr::from(([127, 0, 0, 1], 4001)))?;
    let pid: u32 = args.get("server-pid", 0)?;
    let plan = Plan::parse(args)?;
    let silent = args.flag("silent");
    let expect_close = args.flag("expect-close");
    args.finish()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    // Bounded as a whole too: the publish itself takes seconds.
    let limit = Duration::from_secs_f64(120.0 + 4.0 * plan.stall);
    let report = local.block_on(&runtime, async {
        tokio::time::timeout(limit, run(addr, pid, &plan, silent, expect_close))
            .await
            .map_err(|_| format!("no result within {} s", limit.as_secs()))?
    })?;
    println!("RESULT {report}");
    Ok(())
}

async fn run(
    addr: SocketAddr,
    pid: u32,
    plan: &Plan,
    silent: bool,
    expect_close: bool,
) -> Result<Value, String> {
    let stall = Duration::from_secs_f64(plan.stall);
    let rss = || vm_rss_kib(pid).ok_or("cannot read the server's VmRSS");
    let mut publisher = Publisher::connect(addr, stall).await?;
    let progress = Rc::new(Progress {
        counts: (0..plan.readers).map(|_| Cell::new(0)).collect(),
        advanced: Notify::new(),
    });
    let start = Rc::new(Cell::new(None));
    let mut readers = Vec::new();
    for i in 0..plan.readers {
        let (stream, early) = connect(addr, &format!("fast{i}"), &mut Rng::new(i as u64))
            .await
            .map_err(|e| format!("connecting fast reader {i}: {e}"))?;
        readers.push(tokio::task::spawn_local(fast_reader(
            stream,
            early,
            i,
            plan.messages,
            Rc::clone(&progress),
            Rc::clone(&start),
            stall,
        )));
    }
    let mut silent_stream = None;
    if silent {
        let (stream, early) = connect(addr, "silent", &mut Rng::new(u64::MAX))
            .await
            .map_err(|e| format!("connecting the silent socket: {e}"))?;
        silent_stream = Some((stream, early));
    }
    let subscribers = plan.readers as u64 + u64::from(silent);
    publisher
        .wait_for(|s| s["subscribers"].as_u64() == Some(subscribers))
        .await?;

    let before = rss()?;
    let sampler = Sampler::start(pid);
    let cpu_before = cpu_time(pid).ok_or("cannot read the server's CPU time")?;
    let faults_before = minor_faults(pid).ok_or("cannot read the server's page faults")?;
    start.set(Some(Instant::now()));
    publisher.publish(plan, &progress, stall).await?;
    let mut fast = Vec::new();
    for reader in readers {
        fast.push(reader.await.map_err(|e| e.to_string())?);
    }
    let cpu = cpu_time(pid).ok_or("cannot read the server's CPU time")?;
    let faults = minor_faults(pid).ok_or("cannot read the server's page faults")?;
    let end = rss()?;
    let peak = sampler.stop().max(end);
    let stats_end = publisher.stats().await?;
    let mut report = json!({
        "silent": silent,
        "messages": plan.messages,
        "message_bytes": plan.message_bytes,
        "rss_before_kib": before,
        "rss_peak_kib": peak,
        "rss_end_kib": end,
        "server_cpu_s": cpu.user + cpu.system - cpu_before.user - cpu_before.system,
        "server_page_faults": faults - faults_before,
        "stats_end": stats_end,
        "fast_min_messages": fast.iter().map(|f| f.messages).min(),
        "fast_max_messages": fast.iter().map(|f| f.messages).max(),
        "fast_min_mib_s": fast.iter().map(|f| f.mib_s(plan.message_bytes)).reduce(f64::min),
        "fast_max_mib_s": fast.iter().map(|f| f.mib_s(plan.message_bytes)).reduce(f64::max),
    });
    if let Some((stream, early)) = silent_stream {
        let (read, _stream) = read_silent(stream, early, expect_close).await;
        report["silent_read_messages"] = json!(read.messages);
        report["silent_read_bytes"] = json!(read.bytes);
        report["silent_close_frame"] = json!(read.close_code);
        report["silent_eof"] = json!(read.eof);
        // `drain` follows the last write; `close` the close timeout.
        let settled = if expect_close {
            publisher.wait_for(|s| !s["silent_close"].is_null()).await
        } else {
            publisher
                .wait_for(|s| s["silent_drains"].as_u64() > Some(0))
                .await
        };
        report["stats_after"] = match settled {
            Ok(stats) => stats,
            Err(_) => publisher.stats().await?,
        };
        report["rss_after_kib"] = json!(rss()?);
    }
    // The fast readers' streams close here, after the last reading.
    drop(fast);
    Ok(report)
}

/// The publisher's socket: sends the messages, asks for the server's counters.
struct Publisher {
    writer: OwnedWriteHalf,
    replies: mpsc::UnboundedReceiver<String>,
    rng: Rng,
    stall: Duration,
}

impl Publisher {
    async fn connect(addr: SocketAddr, stall: Duration) -> Result<Self, String> {
        let mut rng = Rng::new(7);
        let (stream, early) = connect(addr, "pub", &mut rng)
            .await
            .map_err(|e| format!("connecting the publisher: {e}"))?;
        let (mut read, writer) = stream.into_split();
        let (tx, replies) = mpsc::unbounded_channel();
        tokio::task::spawn_local(async move {
            let mut frames = FrameReader::default();
            let mut text = |bytes: &[u8]| {
                frames.feed(bytes, |first, payload| {
                    if first & 0x0f == 1 {
                        let _ = tx.send(String::from_utf8_lossy(payload).into_owned());
                    }
                });
            };
            text(&early);
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n @ 1..) = read.read(&mut buf).await {
                text(&buf[..n]);
            }
        });
        Ok(Self {
            writer,
            replies,
            rng,
            stall,
        })
    }

    /// The server's counters.
    async fn stats(&mut self) -> Result<Value, String> {
        let request = encode_text("stats", &mut self.rng);
        self.writer
            .write_all(&request)
            .await
            .map_err(|e| format!("asking for stats: {e}"))?;
        let reply = tokio::time::timeout(self.stall, self.replies.recv())
            .await
            .map_err(|_| "no stats reply".to_owned())?
            .ok_or("the publisher's socket closed")?;
        serde_json::from_str(&reply).map_err(|e| format!("stats {reply:?}: {e}"))
    }

    /// Asks for the counters until `done` holds, for at most the stall timeout.
    async fn wait_for(&mut self, done: impl Fn(&Value) -> bool) -> Result<Value, String> {
        let until = Instant::now() + self.stall;
        loop {
            let stats = self.stats().await?;
            if done(&stats) {
                return Ok(stats);
            }
            if Instant::now() > until {
                return Err(format!("server counters never settled: {stats}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `plan.messages` binary messages, each at most `plan.window`
    /// ahead of the slowest fast reader.
    async fn publish(
        &mut self,
        plan: &Plan,
        progress: &Progress,
        stall: Duration,
    ) -> Result<(), String> {
        let mut frame = BytesMut::new();
        let payload: Vec<u8> = (0..plan.message_bytes).map(|i| i as u8).collect();
        encode_frame(&mut frame, OpCode::Binary, &payload, Some(self.rng.mask()));
        for i in 0..plan.messages {
            while progress.slowest() + plan.window <= i {
                tokio::time::timeout(stall, progress.advanced.notified())
                    .await
                    .map_err(|_| {
                        format!(
                            "publisher: the fast readers stopped at {} messages (sent {i})",
                            progress.slowest()
                        )
                    })?;
            }
            tokio::time::timeout(stall, self.writer.write_all(&frame))
                .await
                .map_err(|_| format!("publisher: message {i} not taken within the stall timeout"))?
                .map_err(|e| format!("publisher: {e}"))?;
        }
        Ok(())
    }
}

/// What a fast reader got.
struct Fast {
    messages: u64,
    /// From the first publish to its last message.
    elapsed: Duration,
    /// Kept open until the report is made.
    _stream: TcpStream,
}

impl Fast {
    fn mib_s(&self, message_bytes: usize) -> f64 {
        self.messages as f64 * message_bytes as f64 / MIB / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Counts the room's messages until all `expected` are in, the stream
/// ends, or nothing comes for `stall`.
async fn fast_reader(
    mut stream: TcpStream,
    early: Vec<u8>,
    index: usize,
    expected: u64,
    progress: Rc<Progress>,
    start: Rc<Cell<Option<Instant>>>,
    stall: Duration,
) -> Fast {
    let mut counter = FrameCounter::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut messages = counter.feed(&early);
    while messages < expected {
        match tokio::time::timeout(stall, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                messages += counter.feed(&buf[..n]);
                progress.counts[index].set(messages);
                progress.advanced.notify_one();
            }
            _ => break,
        }
    }
    let elapsed = start.get().map_or(Duration::ZERO, |s| s.elapsed());
    Fast {
        messages,
        elapsed,
        _stream: stream,
    }
}

/// What the silent socket found once it read.
struct SilentRead {
    messages: u64,
    bytes: u64,
    close_code: Option<u16>,
    eof: bool,
}

/// Reads everything queued for the silent socket: until a close frame or
/// EOF, or, unless a close is expected, one second without data. Gives the
/// stream back: closing it now would end the socket before its `drain`.
async fn read_silent(
    mut stream: TcpStream,
    early: Vec<u8>,
    expect_close: bool,
) -> (SilentRead, TcpStream) {
    let quiet = Duration::from_secs(if expect_close { 15 } else { 1 });
    let mut read = SilentRead {
        messages: 0,
        bytes: early.len() as u64,
        close_code: None,
        eof: false,
    };
    let mut frames = FrameReader::default();
    let mut take = |bytes: &[u8], read: &mut SilentRead| {
        frames.feed(bytes, |first, payload| match first & 0x0f {
            0..=2 => read.messages += 1,
            8 => {
                let code = payload
                    .get(..2)
                    .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                read.close_code = Some(code);
            }
            _ => {}
        });
    };
    take(&early, &mut read);
    let mut buf = vec![0u8; 256 * 1024];
    let until = Instant::now() + Duration::from_secs(20);
    while read.close_code.is_none() && Instant::now() < until {
        match tokio::time::timeout(quiet, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                read.eof = true;
                break;
            }
            Ok(Ok(n)) => {
                read.bytes += n as u64;
                take(&buf[..n], &mut read);
            }
            Err(_) => break,
        }
    }
    (read, stream)
}

/// Samples the server's VmRSS every 50 ms on its own thread, so that a busy
/// client does not skip samples.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(vm_rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        Self { stop, thread }
    }

    /// Stops sampling; the highest VmRSS seen, in KiB.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
