//! `latency`: how long a published message takes to reach every subscriber.
//!
//! One client process holds all sockets (subscribers and the publisher), so
//! one monotonic clock stamps both ends: the publisher sends the nanoseconds
//! since the run started as its message text, the server publishes it to the
//! room as `"pub: <nanos>"`, and each subscriber records its arrival time
//! minus that stamp. The stamp of arrival is taken when the read returns, so
//! the figures include the client's own time to get to each socket.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::json;
use testkit::proc::CpuMeter;
use testkit::raise_nofile;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::args::Args;
use crate::client::si;
use crate::orchestra::Common;
use crate::wire::{FrameReader, Rng, connect, encode_text, name};

pub fn orchestrate(args: &mut Args) -> Result<(), String> {
    let subscribers: usize = args.get("subscribers", 1000)?;
    let rate: u32 = args.get("rate", 200)?;
    let seconds: u32 = args.get("seconds", 10)?;
    let mut common = Common::parse(args)?;
    args.finish()?;
    raise_nofile(subscribers as u64 + 1024)?;
    let mut rows = Vec::new();
    for kind in common.servers.clone() {
        let result = common.start(&kind).and_then(|server| {
            common.run_client(&[
                "latency-client".to_owned(),
                format!("--addr={}", server.addr),
                format!("--server-pid={}", server.pid),
                format!("--subscribers={subscribers}"),
                format!("--rate={rate}"),
                format!("--seconds={seconds}"),
            ])
        });
        match result {
            Ok(r) => {
                let ms = |k: &str| format!("{:.2}", r[k].as_f64().unwrap_or(0.0) / 1e6);
                let row = format!(
                    "| {kind} | {} | {} | {} | {} | {} | {} | {} | {:.0}% | {:.0}% |",
                    r["deliveries"],
                    r["missing"],
                    ms("p50_ns"),
                    ms("p90_ns"),
                    ms("p99_ns"),
                    ms("p999_ns"),
                    ms("max_ns"),
                    r["server_cpu"].as_f64().unwrap_or(0.0),
                    r["client_cpu"].as_f64().unwrap_or(0.0),
                );
                eprintln!("{kind}: {row}");
                rows.push(row);
            }
            Err(error) => {
                eprintln!("{kind}: FAILED: {error}");
                rows.push(format!("| {kind} | failed: {error} | | | | | | | | |"));
            }
        }
    }
    println!();
    println!(
        "Fan-out latency: {subscribers} subscribers + 1 publisher in one room, {rate} messages/s for {seconds} s \
         ({} deliveries/s){}",
        si(f64::from(rate) * (subscribers + 1) as f64),
        common
            .bun_version()
            .map(|v| format!("; bun {v}"))
            .unwrap_or_default()
    );
    println!();
    println!(
        "| server | deliveries | missing | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | server CPU | client CPU |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// What every subscriber's reader adds to.
struct Probe {
    start: Instant,
    /// Arrival minus send, in nanoseconds, of every timestamped delivery.
    samples: RefCell<Vec<u64>>,
    /// Subscribers that got the warm-up message.
    warm: Cell<usize>,
    closed: Cell<usize>,
}

/// `latency-client --addr A --server-pid P --subscribers N --rate R --seconds S`.
pub fn client_main(args: &mut Args) -> Result<(), String> {
    let addr: SocketAddr = args.get("addr", SocketAddr::from(([127, 0, 0, 1], 4001)))?;
    let pid: Option<u32> = args.value("server-pid").and_then(|p| p.parse().ok());
    let subscribers: usize = args.get("subscribers", 1000)?;
    let rate: u32 = args.get("rate", 200)?;
    let seconds: u32 = args.get("seconds", 10)?;
    // `nodes-latency`: the publisher on another node than the subscribers.
    let publisher_addr: SocketAddr = args.get("publisher-addr", addr)?;
    args.finish()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let probe = Rc::new(Probe {
            start: Instant::now(),
            samples: RefCell::new(Vec::with_capacity(subscribers * (rate * seconds) as usize)),
            warm: Cell::new(0),
            closed: Cell::new(0),
        });
        let streams: Vec<_> = futures_util::stream::iter(0..subscribers)
            .map(|i| async move { connect(addr, &name(i), &mut Rng::new(i as u64)).await })
            .buffer_unordered(200)
            .collect()
            .await;
        for stream in streams {
            let (stream, early) = stream.map_err(|e| format!("connecting a subscriber: {e}"))?;
            tokio::task::spawn_local(subscriber(stream, early, Rc::clone(&probe)));
        }
        let mut rng = Rng::new(u64::MAX);
        let (publisher, _) = connect(publisher_addr, "pub", &mut rng)
            .await
            .map_err(|e| format!("connecting the publisher: {e}"))?;
        let (mut own_reader, mut writer) = publisher.into_split();
        // The publisher is in the room too: drain what comes back to it.
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = own_reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        });
        // Everyone joins on open; check that a first message reaches all.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let warm_until = Instant::now() + Duration::from_secs(10);
        while probe.warm.get() < subscribers && Instant::now() < warm_until {
            let hello = encode_text("hello", &mut rng);
            writer.write_all(&hello).await.map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if probe.warm.get() < subscribers {
            return Err(format!(
                "only {} of {subscribers} subscribers got the warm-up message",
                probe.warm.get()
            ));
        }

        let server_cpu = pid.and_then(CpuMeter::start);
        let client_cpu = CpuMeter::start(std::process::id());
        let count = rate * seconds;
        let mut interval = tokio::time::interval(Duration::from_secs(1) / rate);
        for _ in 0..count {
            interval.tick().await;
            let sent = probe.start.elapsed().as_nanos() as u64;
            let frame = encode_text(&sent.to_string(), &mut rng);
            writer.write_all(&frame).await.map_err(|e| e.to_string())?;
        }
        let expected = count as usize * subscribers;
        let drain_until = Instant::now() + Duration::from_secs(10);
        while probe.samples.borrow().len() < expected
            && probe.closed.get() == 0
            && Instant::now() < drain_until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let server_cpu = server_cpu.and_then(|c| c.read()).map_or(0.0, |c| c.total());
        let client_cpu = client_cpu.and_then(|c| c.read()).map_or(0.0, |c| c.total());
        let mut samples = probe.samples.take();
        samples.sort_unstable();
        let at = |q: f64| {
            samples
                .get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        println!(
            "RESULT {}",
            json!({
                "deliveries": samples.len(),
                "missing": expected.saturating_sub(samples.len()),
                "closed": probe.closed.get(),
                "p50_ns": at(0.50),
                "p90_ns": at(0.90),
                "p99_ns": at(0.99),
                "p999_ns": at(0.999),
                "max_ns": samples.last().copied().unwrap_or(0),
                "server_cpu": server_cpu,
                "client_cpu": client_cpu,
            })
        );
        Ok(())
    })
}

/// Reads one subscriber's messages and records the latency of each.
async fn subscriber(mut stream: TcpStream, early: Vec<u8>, probe: Rc<Probe>) {
    let mut reader = FrameReader::default();
    let mut warm = false;
    let mut buf = vec![0u8; 4096];
    let mut handle = |bytes: &[u8], reader: &mut FrameReader| {
        let now = probe.start.elapsed().as_nanos() as u64;
        let mut samples = probe.samples.borrow_mut();
        reader.feed(bytes, |first, payload| {
            if first & 0x0f != 1 {
                return;
            }
            if !warm {
                warm = true;
                probe.warm.set(probe.warm.get() + 1);
            }
            // "pub: <nanos>"; the warm-up "pub: hello" has no stamp.
            let stamp = payload.rsplit(|&b| b == b' ').next().unwrap_or_default();
            if let Some(sent) = std::str::from_utf8(stamp)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            {
                samples.push(now.saturating_sub(sent));
            }
        });
    };
    handle(&early, &mut reader);
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => handle(&buf[..n], &mut reader),
        }
    }
    probe.closed.set(probe.closed.get() + 1);
}
