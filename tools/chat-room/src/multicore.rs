//! `multicore`: the chat room on many cores. R rooms on one server, each
//! room driven by its own client process pinned to its own core; the server
//! runs T tokio worker threads on T cores of its own. It reports the messages
//! received per second in all rooms together, the server's CPU use (from
//! `/proc`) and the server's CPU time per message.
//!
//! ```text
//! # 2 cores: one room, its client on core 1; the server on core 0 (T=1),
//! # then on both cores (T=2, sharing core 1 with the client)
//! cargo run --release -p chat-room -- multicore --rooms 1 --threads 1,2 \
//!     --server-cores 0-1 --client-cores 1 --clients 16,32 --messages 50
//! # 16 cores: 8 rooms, one client process on each of cores 8-15; the server
//! # on the first 1, 2, 4 and 8 of cores 0-7
//! cargo run --release -p chat-room -- multicore --rooms 8 --threads 1,2,4,8 \
//!     --server-cores 0-7 --client-cores 8-15
//! ```
//!
//! The server is the `wshub` chat server (or `wshub-hyper`,
//! `wshub-deflate-MODE`) with `--threads T`: a multi-thread runtime as
//! `#[tokio::main]` builds it, pinned with taskset to the first T server
//! cores; its threads may move between those cores. Room r is the topic
//! `room{r}` (`?room=` on every connection), its N clients live in one
//! client process pinned to client core r (round robin when there are more
//! rooms than cores). Each client process connects, checks its room with
//! one message per client, then waits for a start time shared by all rooms,
//! so that every room measures the same seconds; each also reads the
//! server's CPU time over those seconds, and the table gives their mean.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::args::{Args, core_list};
use crate::client::{self, median, si};
use crate::orchestra::{Common, client_result, spawn_client};
use crate::servers::{self, Variant};

/// How long after the clients start the measurement begins: time to
/// connect every room and check it once.
const START_DELAY: Duration = Duration::from_millis(1500);

/// `multicore`: the table over T × N × M, every repetition.
pub fn orchestrate(args: &mut Args) -> Result<(), String> {
    let clients: Vec<usize> = args.list("clients", &[16, 32])?;
    let messages: Vec<usize> = args.list("messages", &[50, 1600])?;
    let reps: usize = args.get("reps", 3)?;
    let seconds: usize = args.get("seconds", 10)?;
    let stall_timeout: f64 = args.get("stall-timeout", 5.0)?;
    let deflate = args.flag("deflate");
    let (server_cores, client_cores) = default_cores();
    let mut common = Common::parse_with(args, &["wshub"], (&server_cores, &client_cores))?;
    let rooms: usize = args.get("rooms", common.client_cores.len())?;
    let threads: Vec<usize> = args.list("threads", &doublings(common.server_cores.len()))?;
    args.finish()?;
    for kind in &common.servers {
        check_kind(kind)?;
    }
    if rooms == 0 || threads.contains(&0) {
        return Err("--rooms and --threads: at least 1".to_owned());
    }
    warn_about_sharing(&common, rooms, &threads);

    let total = reps * threads.len() * clients.len() * messages.len() * common.servers.len();
    let mut cells: BTreeMap<Key, Cell> = BTreeMap::new();
    let mut done = 0;
    // Repetition outermost, as in `run`: the rows see the same machine noise.
    for rep in 1..=reps {
        for &t in &threads {
            for &n in &clients {
                for &m in &messages {
                    for kind in common.servers.clone() {
                        done += 1;
                        let label = format!(
                            "[{done}/{total}] {kind:<12} T={t:<2} R={rooms} N={n:<3} M={m:<5} rep {rep}"
                        );
                        // Address, server, room and start time come per run.
                        let opts = client::Opts {
                            deflate: deflate || servers::deflate_mode(&kind).is_some(),
                            ..client::Opts::cell(n, m, seconds, stall_timeout)
                        };
                        let cell = cells.entry((kind.clone(), t, n, m)).or_default();
                        match measure(&mut common, &kind, t, rooms, &opts) {
                            Ok(run) => {
                                eprintln!("{label}: {}", run.summary());
                                cell.runs.push(run);
                            }
                            Err(error) => {
                                eprintln!("{label}: FAILED: {error}");
                                cell.errors.push(error);
                            }
                        }
                    }
                }
            }
        }
    }
    print_table(&cells, &common, rooms, reps, seconds);
    Ok(())
}

/// Half the cores for the server, the other half for the clients: on two
/// cores, 0 and 1.
fn default_cores() -> (Vec<usize>, Vec<usize>) {
    let n = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    ((0..n / 2).collect(), (n / 2..n).collect())
}

/// 1, 2, 4 … up to `cores`, and `cores` itself.
fn doublings(cores: usize) -> Vec<usize> {
    let mut threads: Vec<usize> = std::iter::successors(Some(1), |t| Some(t * 2))
        .take_while(|&t| t < cores)
        .collect();
    threads.push(cores.max(1));
    threads
}

/// Only the wshub servers keep rooms apart (`?room=`) and take `--threads`.
fn check_kind(kind: &str) -> Result<(), String> {
    let base = Variant::parse(kind)?.base;
    if base == "wshub" || base == "wshub-hyper" || base.starts_with("wshub-deflate-") {
        Ok(())
    } else {
        Err(format!(
            "multicore runs wshub, wshub-hyper and wshub-deflate-MODE, not {kind:?}: \
             rooms are topics and T is the runtime's worker threads"
        ))
    }
}

/// The cores of a server with `threads` workers: the first `threads`
/// server cores (all of them when there are fewer).
fn cores_for(server_cores: &[usize], threads: usize) -> &[usize] {
    &server_cores[..threads.min(server_cores.len())]
}

/// Says where the figures include contention the options asked for.
fn warn_about_sharing(common: &Common, rooms: usize, threads: &[usize]) {
    let most = threads.iter().copied().max().unwrap_or(1);
    let server = cores_for(&common.server_cores, most);
    let shared: Vec<usize> = common
        .client_cores
        .iter()
        .take(rooms)
        .copied()
        .filter(|c| server.contains(c))
        .collect();
    if !shared.is_empty() {
        eprintln!(
            "note: the server and the clients share core(s) {}",
            core_list(&shared)
        );
    }
    if rooms > common.client_cores.len() {
        eprintln!(
            "note: {rooms} rooms on {} client core(s): rooms share cores",
            common.client_cores.len()
        );
    }
    if most > common.server_cores.len() {
        eprintln!(
            "note: up to {most} worker threads on {} server core(s)",
            common.server_cores.len()
        );
    }
}

/// One server with `threads` workers, and a client process per room.
fn measure(
    common: &mut Common,
    kind: &str,
    threads: usize,
    rooms: usize,
    opts: &client::Opts,
) -> Result<Run, String> {
    let cores = cores_for(&common.server_cores, threads).to_vec();
    let mut server = common.start_on(kind, &cores, &[format!("--threads={threads}")])?;
    let start_at = SystemTime::now() + START_DELAY;
    let start_at = start_at
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis() as u64;
    let mut children = Vec::with_capacity(rooms);
    for room in 0..rooms {
        let opts = client::Opts {
            addr: server.addr,
            server_pid: Some(server.pid),
            room: Some(format!("room{room}")),
            start_at: Some(start_at),
            ..opts.clone()
        };
        let core = common.client_cores[room % common.client_cores.len()];
        children.push(spawn_client(&[core], &opts.to_args())?);
    }
    let reports: Vec<Result<Value, String>> = children.into_iter().map(client_result).collect();
    if !server.alive() {
        return Err(format!("{kind} exited: {}", server.output().join(" | ")));
    }
    let reports = reports
        .into_iter()
        .enumerate()
        .map(|(room, report)| report.map_err(|e| format!("room {room}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Run::new(&reports))
}

/// One run: every room's client report, summed up.
struct Run {
    /// The median second of the rooms' rates added second by second.
    total: f64,
    /// Every room's messages over its whole run, per second, added.
    mean: f64,
    /// Each room's median second.
    rooms: Vec<f64>,
    /// The server's CPU use (user, system), the mean of the rooms' readings.
    server_cpu: (f64, f64),
    /// The server's context switches per second, the mean of the rooms'
    /// readings.
    server_switches: f64,
    /// Each client process's CPU use, the mean over the rooms.
    client_cpu: f64,
    stalls: usize,
    closes: usize,
    /// The latest any room started measuring after the shared start time.
    late_ms: u64,
}

impl Run {
    fn new(reports: &[Value]) -> Self {
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        let seconds: Vec<Vec<f64>> = reports
            .iter()
            .map(|r| {
                r["per_second"]
                    .as_array()
                    .map(|a| a.iter().map(f).collect())
                    .unwrap_or_default()
            })
            .collect();
        let shortest = seconds.iter().map(Vec::len).min().unwrap_or(0);
        let summed: Vec<f64> = (0..shortest)
            .map(|i| seconds.iter().map(|s| s[i]).sum())
            .collect();
        let mean_of = |key: &str, part: &str| {
            reports.iter().map(|r| f(&r[key][part])).sum::<f64>() / reports.len().max(1) as f64
        };
        let stalled = |r: &&Value| r["stalled_at"].is_number();
        let closed = |r: &&Value| r["closed"].as_bool() == Some(true);
        Self {
            total: median(&summed),
            mean: reports.iter().map(|r| f(&r["mean"])).sum(),
            rooms: reports.iter().map(|r| f(&r["median"])).collect(),
            server_cpu: (
                mean_of("server_cpu", "user"),
                mean_of("server_cpu", "system"),
            ),
            server_switches: reports
                .iter()
                .map(|r| f(&r["server_switches_per_s"]))
                .sum::<f64>()
                / reports.len().max(1) as f64,
            client_cpu: mean_of("client_cpu", "user") + mean_of("client_cpu", "system"),
            stalls: reports
                .iter()
                .filter(stalled)
                .filter(|r| !closed(r))
                .count(),
            closes: reports.iter().filter(stalled).filter(closed).count(),
            late_ms: reports
                .iter()
                .filter_map(|r| r["late_ms"].as_u64())
                .max()
                .unwrap_or(0),
        }
    }

    /// The server's CPU time per message received, in nanoseconds.
    fn cpu_per_message(&self) -> f64 {
        let (user, system) = self.server_cpu;
        (user + system) / 100.0 * 1e9 / self.mean.max(1.0)
    }

    /// The server's context switches per 1,000 messages received.
    fn switches_per_kilo_message(&self) -> f64 {
        self.server_switches * 1e3 / self.mean.max(1.0)
    }

    fn summary(&self) -> String {
        let rooms: Vec<String> = self.rooms.iter().map(|&r| si(r)).collect();
        let (user, system) = self.server_cpu;
        let mut out = format!(
            "{}/s (mean {}/s; rooms {}), server cpu {:.0}% ({:.0}u+{:.0}s), {:.0} ns/msg, {:.2} switches/1k msgs, client cpu {:.0}% each",
            si(self.total),
            si(self.mean),
            rooms.join(" "),
            user + system,
            user,
            system,
            self.cpu_per_message(),
            self.switches_per_kilo_message(),
            self.client_cpu,
        );
        if self.stalls + self.closes > 0 {
            out += &format!(", {} stalled, {} closed", self.stalls, self.closes);
        }
        if self.late_ms > 0 {
            out += &format!(", a room started {} ms late", self.late_ms);
        }
        out
    }
}

/// Server kind, threads, clients per room, batch.
type Key = (String, usize, usize, usize);

/// Every repetition of one server × T × N × M.
#[derive(Default)]
struct Cell {
    runs: Vec<Run>,
    errors: Vec<String>,
}

impl Cell {
    fn median_of(&self, value: impl Fn(&Run) -> f64) -> f64 {
        median(&self.runs.iter().map(value).collect::<Vec<_>>())
    }
}

fn print_table(
    cells: &BTreeMap<Key, Cell>,
    common: &Common,
    rooms: usize,
    reps: usize,
    seconds: usize,
) {
    println!();
    println!(
        "Chat rooms on many cores: messages received per second in {rooms} room(s) together, the \
         median second of each {seconds} s run, median of {reps} runs. Server on T worker threads \
         pinned to the first T of core(s) {}; each room's client process on one of core(s) {} \
         (round robin).",
        core_list(&common.server_cores),
        core_list(&common.client_cores),
    );
    println!();
    println!(
        "| server | T | server cores | N per room | M | msgs/s | runs (min–max) | per room (min–max) | \
         server CPU (user+sys) | server CPU per msg | server switches per 1k msgs | client CPU (each) | \
         stalled/closed |"
    );
    println!("|---|---:|---|---:|---:|---:|---|---|---|---:|---:|---:|---|");
    for ((kind, t, n, m), cell) in cells {
        let cores = core_list(cores_for(&common.server_cores, *t));
        if cell.runs.is_empty() {
            println!(
                "| {kind} | {t} | {cores} | {n} | {m} | failed | {} | | | | | | |",
                cell.errors.join("; ")
            );
            continue;
        }
        let range = |values: &mut dyn Iterator<Item = f64>| {
            let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
            format!("{}–{}", si(lo), si(hi))
        };
        let user = cell.median_of(|r| r.server_cpu.0);
        let system = cell.median_of(|r| r.server_cpu.1);
        let stalls: usize = cell.runs.iter().map(|r| r.stalls).sum();
        let closes: usize = cell.runs.iter().map(|r| r.closes).sum();
        let mut failures = format!("{stalls}/{closes}");
        if !cell.errors.is_empty() {
            failures += &format!(", {} failed", cell.errors.len());
        }
        println!(
            "| {kind} | {t} | {cores} | {n} | {m} | {} | {} | {} | {:.0}% ({:.0}+{:.0}) | {:.0} ns | {:.2} | {:.0}% | {failures} |",
            si(cell.median_of(|r| r.total)),
            range(&mut cell.runs.iter().map(|r| r.total)),
            range(&mut cell.runs.iter().flat_map(|r| r.rooms.iter().copied())),
            user + system,
            user,
            system,
            cell.median_of(Run::cpu_per_message),
            cell.median_of(Run::switches_per_kilo_message),
            cell.median_of(|r| r.client_cpu),
        );
    }
    println!();
    println!(
        "msgs/s: the rooms' rates added second by second (their seconds are the same: every room \
         starts measuring at one shared time). server CPU: % of one core over the run, from \
         /proc/<pid>/stat, the mean of the rooms' readings; per msg: that CPU time divided by the \
         messages all rooms received (mean rate). server switches: the context switches of all \
         the server's threads (/proc/<pid>/task/*/status, voluntary and involuntary: a thread that \
         parks and is woken by another counts one) per 1,000 messages received, the mean of the \
         rooms' readings. client CPU: % of its core, the mean over rooms."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_double_up_to_the_server_cores() {
        assert_eq!(doublings(1), [1]);
        assert_eq!(doublings(2), [1, 2]);
        assert_eq!(doublings(6), [1, 2, 4, 6]);
        assert_eq!(doublings(8), [1, 2, 4, 8]);
        assert_eq!(cores_for(&[0, 1, 2, 3], 2), [0, 1]);
        assert_eq!(cores_for(&[4], 2), [4]);
    }

    #[test]
    fn only_wshub_servers_have_rooms() {
        for kind in [
            "wshub",
            "wshub-hyper",
            "wshub+nodelay",
            "wshub+colocate",
            "wshub+colocate+nodelay",
            "wshub-deflate-shared",
        ] {
            assert_eq!(check_kind(kind), Ok(()), "{kind}");
        }
        for kind in [
            "wshub-ct",
            "axum",
            "bun",
            "wshub-slow",
            "axum+colocate",
            "wshub+sideways",
        ] {
            assert!(check_kind(kind).is_err(), "{kind}");
        }
    }
}
