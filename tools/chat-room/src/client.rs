//! The load client: Bun's `chat-client.mjs` in Rust, on one thread, cheap
//! enough that the server, not the client, sets the pace (its own CPU use is
//! part of the report).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use testkit::proc::{CpuMeter, CpuUse, context_switches};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use crate::args::Args;
use crate::tls::{self, ReadHalf, WriteHalf};
use crate::wire::{
    Agreed, DEFLATE_OFFER, FrameCounter, FrameReader, Inflater, MESSAGES, RSV1, Rng, connect_with,
    encode_batch, name,
};

/// What one client run is asked to do.
#[derive(Clone)]
pub struct Opts {
    pub addr: SocketAddr,
    /// A second server in the same room (another node of a Redis-bridged
    /// hub, `nodes`): every odd-numbered client connects there instead.
    pub peer: Option<SocketAddr>,
    pub clients: usize,
    pub messages: usize,
    pub seconds: usize,
    pub stall_timeout: Duration,
    pub server_pid: Option<u32>,
    /// Offer `permessage-deflate` (the client still sends plain frames).
    pub deflate: bool,
    /// Check messages: the first client reads whole frames, inflates the
    /// compressed ones and checks every message is `"{name}: {message}"`.
    pub verify: bool,
    /// The room (topic) to join instead of the server's default one
    /// (`multicore`: one room per client process).
    pub room: Option<String>,
    /// When to start measuring, in milliseconds since the Unix epoch, so
    /// that client processes in several rooms measure the same seconds.
    /// Without it, right after the warm-up.
    pub start_at: Option<u64>,
    /// `wss://`: the directory of the certificate to trust (see [`tls`]).
    pub tls: Option<PathBuf>,
    /// Each client over its own HTTP/2 connection (h2c, RFC 8441; see
    /// [`crate::h2`]) instead of HTTP/1.1.
    pub h2: bool,
}

impl Opts {
    /// One cell of a table: `clients` clients sending batches of
    /// `messages` for `seconds`, with no deflate, checking, room, start
    /// time or TLS; the caller sets the address (and the rest it needs)
    /// per run.
    pub fn cell(clients: usize, messages: usize, seconds: usize, stall_timeout: f64) -> Self {
        Self {
            addr: ([127, 0, 0, 1], 0).into(),
            peer: None,
            clients,
            messages,
            seconds,
            stall_timeout: Duration::from_secs_f64(stall_timeout),
            server_pid: None,
            deflate: false,
            verify: false,
            room: None,
            start_at: None,
            tls: None,
            h2: false,
        }
    }

    pub fn parse(args: &mut Args) -> Result<Self, String> {
        Ok(Self {
            addr: args.get("addr", SocketAddr::from(([127, 0, 0, 1], 4001)))?,
            peer: args
                .value("peer")
                .map(|p| p.parse())
                .transpose()
                .map_err(|e| format!("--peer: {e}"))?,
            clients: args.get("clients", 32)?,
            messages: args.get("messages", 50)?,
            seconds: args.get("seconds", 10)?,
            stall_timeout: Duration::from_secs_f64(args.get("stall-timeout", 5.0)?),
            server_pid: args
                .value("server-pid")
                .map(|p| p.parse())
                .transpose()
                .map_err(|e| format!("--server-pid: {e}"))?,
            deflate: args.flag("deflate"),
            verify: args.flag("verify"),
            room: args.value("room"),
            start_at: args
                .value("start-at")
                .map(|t| t.parse())
                .transpose()
                .map_err(|e| format!("--start-at: {e}"))?,
            tls: args.value("tls").map(PathBuf::from),
            h2: args.flag("h2"),
        })
    }

    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "client".to_owned(),
            format!("--addr={}", self.addr),
            format!("--clients={}", self.clients),
            format!("--messages={}", self.messages),
            format!("--seconds={}", self.seconds),
            format!("--stall-timeout={}", self.stall_timeout.as_secs_f64()),
        ];
        if let Some(pid) = self.server_pid {
            args.push(format!("--server-pid={pid}"));
        }
        if self.deflate {
            args.push("--deflate".to_owned());
        }
        if self.verify {
            args.push("--verify".to_owned());
        }
        if let Some(room) = &self.room {
            args.push(format!("--room={room}"));
        }
        if let Some(at) = self.start_at {
            args.push(format!("--start-at={at}"));
        }
        if let Some(dir) = &self.tls {
            args.push(format!("--tls={}", dir.display()));
        }
        if let Some(peer) = self.peer {
            args.push(format!("--peer={peer}"));
        }
        if self.h2 {
            args.push("--h2".to_owned());
        }
        args
    }
}

/// `client`: one run; prints a summary to stderr and `RESULT {json}` to stdout.
pub fn main(args: &mut Args) -> Result<(), String> {
    let opts = Opts::parse(args)?;
    args.finish()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = tokio::task::LocalSet::new().block_on(&runtime, run(&opts))?;
    eprintln!("{}", summary(&report));
    println!("RESULT {report}");
    Ok(())
}

/// The counters the readers and the driver of the batches share (one thread).
#[derive(Default)]
struct Shared {
    /// Data frames received by all clients since they connected.
    received: Cell<u64>,
    /// The value of `received` at which the current batch is complete.
    target: Cell<u64>,
    /// Woken when `received` reaches `target`, or a connection ends.
    done: Notify,
    /// Connections the server ended.
    closed: Cell<usize>,
    /// Control frames received (pings): not messages.
    control: Cell<u64>,
    /// Data frames received with RSV1 set: compressed messages.
    compressed: Cell<u64>,
    /// What `--verify` found on the first connection.
    verified: Cell<u64>,
    verify_failures: Cell<u64>,
    first_failure: RefCell<Option<String>>,
}

/// How a batch failed to complete.
enum Incomplete {
    Stalled { got: u64, expected: u64 },
    Closed { got: u64, expected: u64 },
    Io(std::io::Error),
}

async fn run(opts: &Opts) -> Result<Value, String> {
    let (n, m) = (opts.clients, opts.messages);
    let mut rng = Rng::new(n as u64 * 7919 + m as u64);
    let shared = Rc::new(Shared::default());
    let mut writers = Vec::with_capacity(n);
    let offer = opts.deflate.then_some(DEFLATE_OFFER);
    let connector = opts.tls.as_deref().map(tls::connector).transpose()?;
    let mut agreed = Vec::new();
    let mut tls_agreed = None;
    for i in 0..n {
        let query = match &opts.room {
            Some(room) => format!("name={}&room={room}", name(i)),
            None => format!("name={}", name(i)),
        };
        let addr = match opts.peer {
            Some(peer) if i % 2 == 1 => peer,
            _ => opts.addr,
        };
        let connected = if opts.h2 {
            crate::h2::connect(addr, &query, offer).await
        } else {
            connect_with(addr, &query, &mut rng, offer, connector.as_ref()).await
        }
        .map_err(|e| format!("connecting client {i}: {e}"))?;
        agreed.push(connected.deflate);
        tls_agreed = tls_agreed.or_else(|| connected.stream.describe_tls());
        let verifier = (opts.verify && i == 0).then(|| Verifier::new(n, connected.deflate));
        let (reader, writer) = connected.stream.into_split();
        writers.push(writer);
        tokio::task::spawn_local(read_loop(
            reader,
            connected.early,
            Rc::clone(&shared),
            verifier,
        ));
    }
    let negotiated = agreed.iter().filter(|a| a.is_some()).count();
    let deflate = agreed.iter().flatten().next().map(Agreed::describe);
    let batches: Vec<Vec<u8>> = (0..n).map(|_| encode_batch(m, &mut rng)).collect();
    let hello: Vec<Vec<u8>> = (0..n).map(|_| encode_batch(1, &mut rng)).collect();
    // Let every server run its `open` (subscribe) before anyone publishes,
    // then check with one message each that everyone is in the room.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let per_hello = (n * n) as u64;
    if let Err(failure) = round(&shared, &mut writers, &hello, per_hello, opts.stall_timeout).await
    {
        return Err(format!(
            "warm-up round (1 message each): {}",
            describe(&failure)
        ));
    }

    let late = match opts.start_at {
        Some(at) => wait_until(at).await,
        None => Duration::ZERO,
    };
    let client_cpu = CpuMeter::start(std::process::id());
    let server_cpu = opts.server_pid.and_then(CpuMeter::start);
    let server_switches = opts.server_pid.and_then(context_switches);
    let start = Instant::now();
    let samples = Rc::new(RefCell::new(Vec::new()));
    let ticker = tokio::task::spawn_local(tick(Rc::clone(&shared), Rc::clone(&samples), start));
    let per_batch = (n * m * n) as u64;
    let mut batches_done = 0u64;
    // When the last batch completed, and what had arrived by then: a run
    // that stalls is measured up to there.
    let (mut ok_at, mut ok_received) = (0.0, shared.received.get());
    let mut failure = None;
    while samples.borrow().len() < opts.seconds {
        match round(
            &shared,
            &mut writers,
            &batches,
            per_batch,
            opts.stall_timeout,
        )
        .await
        {
            Ok(()) => {
                batches_done += 1;
                ok_at = start.elapsed().as_secs_f64();
                ok_received = shared.received.get();
            }
            Err(f) => {
                failure = Some(f);
                break;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    ticker.abort();
    let client_cpu = client_cpu.and_then(|c| c.read()).unwrap_or_default();
    let server_cpu = server_cpu.and_then(|c| c.read()).unwrap_or_default();
    // Per second of the run: how often the server's threads blocked or were
    // preempted (each cross-thread wake-up of an idle one is a switch).
    let server_switches = opts.server_pid.and_then(|pid| {
        Some((context_switches(pid)? - server_switches?) as f64 / elapsed.max(1e-9))
    });
    let received = shared.received.get() - per_hello;
    let (stalled, closed, lost) = match &failure {
        None => (None, false, 0),
        Some(Incomplete::Stalled { got, expected }) => (Some(elapsed), false, expected - got),
        Some(Incomplete::Closed { got, expected }) => (Some(elapsed), true, expected - got),
        Some(Incomplete::Io(e)) => return Err(format!("sending: {e}")),
    };
    let samples = samples.borrow();
    let per_second: Vec<f64> = samples.iter().map(|&(_, rate)| rate).collect();
    let good: Vec<f64> = match failure {
        None => per_second.clone(),
        Some(_) => samples
            .iter()
            .filter(|&&(at, _)| at <= ok_at)
            .map(|&(_, r)| r)
            .collect(),
    };
    let median = if !good.is_empty() {
        median(&good)
    } else if ok_at > 0.0 {
        // Stalled within the first second: the rate of the batches that completed.
        (ok_received - per_hello) as f64 / ok_at
    } else {
        0.0
    };
    Ok(json!({
        "clients": n,
        "messages": m,
        "per_second": per_second,
        "median": median,
        "mean": received as f64 / elapsed,
        "received": received,
        "batches": batches_done,
        "stalled_at": stalled,
        "closed": closed,
        "lost": lost,
        "control_frames": shared.control.get(),
        "deflate_offered": opts.deflate,
        "deflate_negotiated": negotiated,
        "deflate": deflate,
        "compressed_frames": shared.compressed.get(),
        "data_frames": shared.received.get(),
        "verified": opts.verify.then(|| shared.verified.get()),
        "verify_failures": opts.verify.then(|| shared.verify_failures.get()),
        "first_verify_failure": shared.first_failure.borrow().clone(),
        "client_cpu": cpu_json(client_cpu),
        "server_cpu": cpu_json(server_cpu),
        "server_switches_per_s": server_switches,
        "late_ms": late.as_millis() as u64,
        "tls": tls_agreed,
    }))
}

/// Sleeps until `at` (milliseconds since the Unix epoch); how late it was
/// already when called (zero if it was not).
async fn wait_until(at: u64) -> Duration {
    let at = UNIX_EPOCH + Duration::from_millis(at);
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) => {
            tokio::time::sleep(ahead).await;
            Duration::ZERO
        }
        Err(late) => late.duration(),
    }
}

fn cpu_json(cpu: CpuUse) -> Value {
    json!({ "user": cpu.user, "system": cpu.system })
}

/// Sends one batch from every client, then waits until every client has
/// received every message of it (`expected` frames in all).
async fn round(
    shared: &Shared,
    writers: &mut [WriteHalf],
    batches: &[Vec<u8>],
    expected: u64,
    stall_timeout: Duration,
) -> Result<(), Incomplete> {
    let base = shared.target.get();
    let target = base + expected;
    shared.target.set(target);
    for (writer, batch) in writers.iter_mut().zip(batches) {
        writer.write_all(batch).await.map_err(Incomplete::Io)?;
        // TLS may hold back what the socket did not take at once.
        writer.flush().await.map_err(Incomplete::Io)?;
    }
    let deadline = tokio::time::Instant::now() + stall_timeout;
    loop {
        let got = shared.received.get() - base;
        if got >= expected {
            return Ok(());
        }
        if shared.closed.get() > 0 {
            return Err(Incomplete::Closed { got, expected });
        }
        if tokio::time::timeout_at(deadline, shared.done.notified())
            .await
            .is_err()
        {
            return Err(Incomplete::Stalled { got, expected });
        }
    }
}

fn describe(failure: &Incomplete) -> String {
    match failure {
        Incomplete::Stalled { got, expected } => {
            format!("stalled: {got} of {expected} messages arrived")
        }
        Incomplete::Closed { got, expected } => {
            format!("the server closed a connection: {got} of {expected} messages arrived")
        }
        Incomplete::Io(e) => format!("sending: {e}"),
    }
}

/// Counts the frames arriving on one connection (and checks them, with a
/// verifier).
async fn read_loop(
    mut reader: ReadHalf,
    early: Vec<u8>,
    shared: Rc<Shared>,
    mut verifier: Option<Verifier>,
) {
    let mut counter = FrameCounter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut count = |counter: &mut FrameCounter, bytes: &[u8]| {
        if let Some(verifier) = verifier.as_mut() {
            verifier.feed(bytes, &shared);
        }
        let frames = counter.feed(bytes);
        shared
            .control
            .set(shared.control.get() + std::mem::take(&mut counter.control));
        shared
            .compressed
            .set(shared.compressed.get() + std::mem::take(&mut counter.compressed));
        if frames > 0 {
            let received = shared.received.get() + frames;
            shared.received.set(received);
            if received >= shared.target.get() {
                shared.done.notify_one();
            }
        }
    };
    count(&mut counter, &early);
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => count(&mut counter, &buf[..n]),
        }
    }
    shared.closed.set(shared.closed.get() + 1);
    shared.done.notify_one();
}

/// `--verify`: reads whole frames on one connection, inflates the compressed
/// ones, and checks each message is `"{name}: {message}"` from the chat.
struct Verifier {
    reader: FrameReader,
    inflater: Option<Inflater>,
    /// Every message the chat can send: each client's name with each of
    /// [`MESSAGES`]. One lookup per message, so that checking does not slow
    /// the verifying connection (whose batches every client waits for) more
    /// than reading does.
    expected: HashSet<String>,
}

impl Verifier {
    fn new(clients: usize, agreed: Option<Agreed>) -> Self {
        let expected = (0..clients)
            .map(name)
            .flat_map(|who| MESSAGES.iter().map(move |what| format!("{who}: {what}")))
            .collect();
        Self {
            reader: FrameReader::default(),
            inflater: agreed.as_ref().map(Inflater::new),
            expected,
        }
    }

    fn feed(&mut self, bytes: &[u8], shared: &Shared) {
        let Self {
            reader,
            inflater,
            expected,
        } = self;
        reader.feed(bytes, |first, payload| {
            let opcode = first & 0x0f;
            if opcode >= 0x8 {
                return;
            }
            let checked = check_message(first, payload, inflater.as_mut(), expected);
            match checked {
                Ok(()) => shared.verified.set(shared.verified.get() + 1),
                Err(why) => {
                    shared.verify_failures.set(shared.verify_failures.get() + 1);
                    shared.first_failure.borrow_mut().get_or_insert(why);
                }
            }
        });
    }
}

/// Checks one whole frame from the chat server.
fn check_message(
    first: u8,
    payload: &[u8],
    inflater: Option<&mut Inflater>,
    expected: &HashSet<String>,
) -> Result<(), String> {
    if first & 0x80 == 0 || first & 0x0f != 1 {
        return Err(format!("not a whole text frame: first byte {first:#04x}"));
    }
    let inflated;
    let payload = if first & RSV1 != 0 {
        let inflater = inflater.ok_or("RSV1 set without permessage-deflate")?;
        inflated = inflater.inflate(payload)?;
        &inflated[..]
    } else {
        payload
    };
    let text = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8: {e}"))?;
    if expected.contains(text) {
        Ok(())
    } else {
        Err(format!("unexpected message {text:?}"))
    }
}

/// Records the messages received in each second of the run, as a rate, with
/// the time (since `start`) the second ended.
async fn tick(shared: Rc<Shared>, samples: Rc<RefCell<Vec<(f64, f64)>>>, start: Instant) {
    let mut interval = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let (mut last_count, mut last_time) = (shared.received.get(), start);
    loop {
        interval.tick().await;
        let (count, now) = (shared.received.get(), Instant::now());
        let rate = (count - last_count) as f64 / (now - last_time).as_secs_f64();
        samples
            .borrow_mut()
            .push(((now - start).as_secs_f64(), rate));
        (last_count, last_time) = (count, now);
    }
}

pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// A human summary of one client run's JSON report.
pub fn summary(report: &Value) -> String {
    let f = |k: &str| report[k].as_f64().unwrap_or(0.0);
    let seconds: Vec<String> = report["per_second"]
        .as_array()
        .map(|a| a.iter().map(|v| si(v.as_f64().unwrap_or(0.0))).collect())
        .unwrap_or_default();
    let cpu = |k: &str| {
        let (u, s) = (
            report[k]["user"].as_f64().unwrap_or(0.0),
            report[k]["system"].as_f64().unwrap_or(0.0),
        );
        format!("{:.0}% ({:.0}u+{:.0}s)", u + s, u, s)
    };
    let mut out = format!(
        "median {}/s, mean {}/s, per second [{}], {} batches, server cpu {}, client cpu {}",
        si(f("median")),
        si(f("mean")),
        seconds.join(" "),
        report["batches"],
        cpu("server_cpu"),
        cpu("client_cpu"),
    );
    if report["deflate_offered"].as_bool() == Some(true) {
        let frames = report["data_frames"].as_f64().unwrap_or(0.0).max(1.0);
        let compressed = report["compressed_frames"].as_f64().unwrap_or(0.0);
        out += &format!(
            ", deflate {}/{} connections ({}), {:.1}% of frames RSV1",
            report["deflate_negotiated"],
            report["clients"],
            report["deflate"].as_str().unwrap_or("declined"),
            100.0 * compressed / frames
        );
    }
    if let Some(verified) = report["verified"].as_u64() {
        out += &format!(
            ", verified {verified} messages, {} failures",
            report["verify_failures"]
        );
        if let Some(why) = report["first_verify_failure"].as_str() {
            out += &format!(" (first: {why})");
        }
    }
    if let Some(at) = report["stalled_at"].as_f64() {
        let what = if report["closed"].as_bool() == Some(true) {
            "CLOSED"
        } else {
            "STALLED"
        };
        out += &format!(
            ", {what} at {at:.1}s with {} messages missing",
            report["lost"]
        );
    }
    out
}

/// `4.51M`, `870k`.
pub fn si(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole text frame's first byte (FIN, opcode 1).
    const TEXT: u8 = 0x81;

    #[test]
    fn the_verifier_takes_every_chat_message_and_nothing_else() {
        let verifier = Verifier::new(3, None);
        let check =
            |first: u8, text: &str| check_message(first, text.as_bytes(), None, &verifier.expected);
        for i in 0..3 {
            for what in MESSAGES {
                assert_eq!(check(TEXT, &format!("{}: {what}", name(i))), Ok(()));
            }
        }
        // A fourth client's name, a message not in the chat, no separator,
        // a name alone, and a right message in the wrong frame.
        for bad in [
            format!("{}: {}", name(3), MESSAGES[0]),
            format!("{}: Hello World! 50", name(0)),
            format!("{}{}", name(0), MESSAGES[0]),
            format!("{}: ", name(1)),
        ] {
            assert!(check(TEXT, &bad).is_err(), "{bad:?} passed");
        }
        let good = format!("{}: {}", name(2), MESSAGES[7]);
        assert!(check(0x01, &good).is_err(), "a frame without FIN passed");
        assert!(check(0x82, &good).is_err(), "a binary frame passed");
        assert!(
            check(TEXT | RSV1, &good).is_err(),
            "RSV1 without deflate passed"
        );
    }
}
