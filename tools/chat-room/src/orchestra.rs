//! The orchestrator of the throughput table, and what every orchestrator
//! shares: finding Bun, starting a server pinned to its cores, starting this
//! binary again as a client pinned to others.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::args::{Args, core_list};
use crate::client::{self, median, si};
use crate::servers;
use crate::tls::{self, CertDir};

/// The servers measured by default, Bun last (ratios are against it).
pub const ALL: [&str; 5] = ["wshub", "wshub-ct", "axum", "axum-batched", "bun"];

/// Options every orchestrator takes.
pub struct Common {
    pub servers: Vec<String>,
    bun: Option<(PathBuf, String)>,
    pub server_cores: Vec<usize>,
    pub client_cores: Vec<usize>,
    port: u16,
    /// `--tls`: the certificate every server presents and clients trust.
    tls: Option<CertDir>,
}

impl Common {
    pub fn parse(args: &mut Args) -> Result<Self, String> {
        Self::parse_for(args, &ALL)
    }

    /// As [`Common::parse`], with `default` as the servers when `--servers`
    /// is not given.
    pub fn parse_for(args: &mut Args, default: &[&str]) -> Result<Self, String> {
        Self::parse_with(args, default, (&[0], &[1]))
    }

    /// As [`Common::parse_for`], with `cores` as the server's and the
    /// client's cores when `--server-cores` and `--client-cores` are not
    /// given (`--server-core` and `--client-core` are the same options).
    pub fn parse_with(
        args: &mut Args,
        default: &[&str],
        cores: (&[usize], &[usize]),
    ) -> Result<Self, String> {
        let default: Vec<String> = default.iter().map(|s| s.to_string()).collect();
        let servers: Vec<String> = args.list("servers", &default)?;
        for kind in &servers {
            servers::check_kind(kind)?;
        }
        let bun_arg = args.value("bun");
        let mut common = Self {
            bun: None,
            server_cores: cores_arg(args, "server-cores", "server-core", cores.0)?,
            client_cores: cores_arg(args, "client-cores", "client-core", cores.1)?,
            port: args.get("port", 4100)?,
            servers,
            tls: None,
        };
        if common.servers.iter().any(|s| is_bun(s)) {
            match find_bun(bun_arg) {
                Ok(found) => {
                    eprintln!("bun {} at {}", found.1, found.0.display());
                    common.bun = Some(found);
                }
                Err(why) => {
                    eprintln!("skipping bun: {why}");
                    common.servers.retain(|s| !is_bun(s));
                }
            }
        }
        Ok(common)
    }

    /// Serves and connects over TLS from now on, with a certificate made
    /// now; fails if a server kind cannot serve `wss://`.
    pub fn enable_tls(&mut self) -> Result<(), String> {
        if let Some(kind) = self.servers.iter().find(|k| !servers::serves_tls(k)) {
            return Err(format!(
                "--tls: {kind} does not serve wss:// (the wshub servers but wshub-hyper, and Bun do)"
            ));
        }
        self.tls = Some(CertDir::generate()?);
        Ok(())
    }

    /// The certificate directory with `--tls`.
    pub fn tls_dir(&self) -> Option<&Path> {
        self.tls.as_ref().map(CertDir::path)
    }

    pub fn bun_version(&self) -> Option<&str> {
        self.bun.as_ref().map(|(_, v)| v.as_str())
    }

    /// Starts server `kind` on the next free port, pinned to the server
    /// cores, and waits until it accepts connections.
    pub fn start(&mut self, kind: &str) -> Result<Server, String> {
        let cores = self.server_cores.clone();
        self.start_on(kind, &cores, &[])
    }

    /// [`Common::start`] on `cores`, with `extra` arguments for a Rust
    /// server (`--threads=T`).
    pub fn start_on(
        &mut self,
        kind: &str,
        cores: &[usize],
        extra: &[String],
    ) -> Result<Server, String> {
        let addr = self.free_addr()?;
        let mut command = Command::new("taskset");
        command.args(["-c", &core_list(cores)]);
        if is_bun(kind) {
            let (bun, _) = self.bun.as_ref().ok_or("bun is not available")?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("server.bun.js");
            command
                .arg(bun)
                .arg(script)
                .env("PORT", addr.port().to_string())
                .env("PER_MESSAGE_DEFLATE", bun_deflate(kind)?);
            if let Some(dir) = self.tls_dir() {
                command
                    .env("TLS_CERT", tls::cert_path(dir))
                    .env("TLS_KEY", tls::key_path(dir));
            }
        } else {
            command
                .arg(own_exe()?)
                .args(["server", kind, &format!("--addr={addr}")])
                .args(extra);
            if let Some(dir) = self.tls_dir() {
                command.arg(format!("--tls={}", dir.display()));
            }
        }
        Server::spawn(kind, addr, command)
    }

    /// Runs this binary with `args`, pinned to the client cores; returns the
    /// JSON of its `RESULT` line.
    pub fn run_client(&self, args: &[String]) -> Result<Value, String> {
        client_result(spawn_client(&self.client_cores, args)?)
    }

    pub fn free_addr(&mut self) -> Result<SocketAddr, String> {
        for _ in 0..1000 {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            self.port = if self.port >= 60000 {
                4100
            } else {
                self.port + 1
            };
            if std::net::TcpListener::bind(addr).is_ok() {
                return Ok(addr);
            }
        }
        Err("no free port".to_owned())
    }
}

/// `--name` (or its one-core spelling `--single`) as a CPU list.
fn cores_arg(
    args: &mut Args,
    name: &str,
    single: &str,
    default: &[usize],
) -> Result<Vec<usize>, String> {
    let cores = args.cores(single, default)?;
    args.cores(name, &cores)
}

/// Starts this binary with `args`, pinned to `cores`, its output piped.
pub fn spawn_client(cores: &[usize], args: &[String]) -> Result<Child, String> {
    Command::new("taskset")
        .args(["-c", &core_list(cores)])
        .arg(own_exe()?)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the client: {e}"))
}

/// Waits for a client started by [`spawn_client`]; the JSON of its
/// `RESULT` line.
pub fn client_result(child: Child) -> Result<Value, String> {
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the client: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = stdout.lines().find_map(|l| l.strip_prefix("RESULT "));
    match result {
        Some(json) if output.status.success() => {
            serde_json::from_str(json).map_err(|e| format!("client result {json:?}: {e}"))
        }
        _ => Err(format!(
            "client failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// Whether `kind` is Bun: `bun` or `bun-deflate-MODE`.
pub fn is_bun(kind: &str) -> bool {
    kind == "bun" || kind.starts_with("bun-deflate-")
}

/// `PER_MESSAGE_DEFLATE` for server.bun.js: `false`, `true` (Bun's
/// `perMessageDeflate: true`, shared both ways) or `COMPRESS/DECOMPRESS` in
/// Bun's names (`disable`, `shared`, `dedicated`, `3KB` … `256KB`).
fn bun_deflate(kind: &str) -> Result<String, String> {
    let Some(mode) = servers::deflate_mode(kind) else {
        return Ok("false".to_owned());
    };
    let bun_name = |name: &str| match name {
        "disabled" => "disable".to_owned(),
        "shared" | "dedicated" => name.to_owned(),
        size => size.to_ascii_uppercase(),
    };
    Ok(match servers::deflate_pair(mode)? {
        ("shared", "shared") => "true".to_owned(),
        (compress, decompress) => format!("{}/{}", bun_name(compress), bun_name(decompress)),
    })
}

fn own_exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("own executable: {e}"))
}

/// Bun: `--bun`, `$BUN`, the npm install of `scripts/bench-chat.sh`, `bun` on PATH.
fn find_bun(arg: Option<String>) -> Result<(PathBuf, String), String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = arg.or_else(|| std::env::var("BUN").ok()) {
        candidates.push(path.into());
    } else {
        if let Some(home) = std::env::var_os("HOME") {
            let modules = Path::new(&home).join(".cache/wshub-bench/node_modules");
            candidates.push(modules.join("bun/bin/bun.exe"));
            for platform in [
                "bun-linux-x64",
                "bun-linux-x64-baseline",
                "bun-linux-aarch64",
            ] {
                candidates.push(modules.join("@oven").join(platform).join("bin/bun"));
            }
        }
        candidates.push("bun".into());
    }
    let mut tried = Vec::new();
    for path in candidates {
        match Command::new(&path)
            .arg("--version")
            .stderr(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                return Ok((path, version));
            }
            _ => tried.push(path.display().to_string()),
        }
    }
    Err(format!(
        "no working bun (tried {}); `scripts/bench-chat.sh` installs it with npm",
        tried.join(", ")
    ))
}

/// A running server process, killed when dropped.
pub struct Server {
    pub kind: String,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn spawn(kind: &str, addr: SocketAddr, mut command: Command) -> Result<Self, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {kind}: {e}"))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut lines = output.lock().unwrap_or_else(|e| e.into_inner());
                    if lines.len() < 10_000 {
                        lines.push(line);
                    }
                }
            });
        }
        let server = Self {
            kind: kind.to_owned(),
            addr,
            pid: child.id(),
            child,
            output,
        };
        server.wait_until_accepting()?;
        Ok(server)
    }

    fn wait_until_accepting(&self) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{} did not accept on {} within 20 s: {}",
            self.kind,
            self.addr,
            self.output().join(" | ")
        ))
    }

    pub fn output(&self) -> Vec<String> {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Messages the axum servers' broadcast channel skipped (they print it).
    pub fn lagged(&self) -> u64 {
        self.output()
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("lagged ")?.parse().ok())
            .unwrap_or(0)
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One cell of the table: every repetition of one server × N × M.
#[derive(Default)]
struct Cell {
    medians: Vec<f64>,
    stalls: usize,
    closes: usize,
    missing: u64,
    lagged: u64,
    server_cpu: Vec<(f64, f64)>,
    client_cpu: Vec<f64>,
    errors: Vec<String>,
    /// Data frames received, and those with RSV1 set (compressed).
    data_frames: u64,
    compressed_frames: u64,
    /// Runs whose client offered `permessage-deflate`.
    deflate_offered: bool,
    /// What TLS agreed (`--tls`), as the client reports it.
    tls: Option<String>,
    verified: u64,
    verify_failures: u64,
}

/// `run`: the throughput table.
pub fn throughput(args: &mut Args) -> Result<(), String> {
    let clients: Vec<usize> = args.list("clients", &[16, 32])?;
    let messages: Vec<usize> = args.list("messages", &[50, 1600])?;
    let reps: usize = args.get("reps", 3)?;
    let seconds: usize = args.get("seconds", 10)?;
    let stall_timeout: f64 = args.get("stall-timeout", 5.0)?;
    let deflate = args.flag("deflate");
    let verify = args.flag("verify");
    let tls = args.flag("tls");
    let mut common = Common::parse(args)?;
    args.finish()?;
    if tls {
        common.enable_tls()?;
    }
    let total = reps * clients.len() * messages.len() * common.servers.len();
    let mut cells: BTreeMap<(usize, usize, String), Cell> = BTreeMap::new();
    let mut done = 0;
    // Repetition outermost: every server of a row is measured close in time,
    // so the ratios see the same machine noise.
    for rep in 1..=reps {
        for &n in &clients {
            for &m in &messages {
                for kind in common.servers.clone() {
                    done += 1;
                    let cell = cells.entry((n, m, kind.clone())).or_default();
                    let label = format!("[{done}/{total}] {kind:<12} N={n:<3} M={m:<5} rep {rep}");
                    let opts = client::Opts {
                        // Deflate servers are always offered it.
                        deflate: deflate || servers::deflate_mode(&kind).is_some(),
                        verify,
                        tls: common.tls_dir().map(Path::to_owned),
                        h2: servers::speaks_h2(&kind),
                        ..client::Opts::cell(n, m, seconds, stall_timeout)
                    };
                    match measure(&mut common, &kind, opts) {
                        Ok((report, lagged)) => {
                            eprintln!("{label}: {}{}", client::summary(&report), lag_note(lagged));
                            cell.add(&report, lagged);
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
    print_table(&cells, &common, &clients, &messages, reps, seconds);
    Ok(())
}

fn lag_note(lagged: u64) -> String {
    if lagged > 0 {
        format!(", server broadcast lag: {lagged} deliveries skipped")
    } else {
        String::new()
    }
}

fn measure(
    common: &mut Common,
    kind: &str,
    mut opts: client::Opts,
) -> Result<(Value, u64), String> {
    let mut server = common.start(kind)?;
    opts.addr = server.addr;
    opts.server_pid = Some(server.pid);
    let report = common.run_client(&opts.to_args());
    // Let the lag report (printed every 100 ms) catch up.
    std::thread::sleep(Duration::from_millis(250));
    if !server.alive() {
        return Err(format!("{kind} exited: {}", server.output().join(" | ")));
    }
    Ok((report?, server.lagged()))
}

impl Cell {
    fn add(&mut self, report: &Value, lagged: u64) {
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        self.medians.push(f(&report["median"]));
        if report["stalled_at"].is_number() {
            if report["closed"].as_bool() == Some(true) {
                self.closes += 1;
            } else {
                self.stalls += 1;
            }
        }
        self.missing += report["lost"].as_u64().unwrap_or(0);
        self.lagged += lagged;
        let cpu = &report["server_cpu"];
        self.server_cpu.push((f(&cpu["user"]), f(&cpu["system"])));
        let cpu = &report["client_cpu"];
        self.client_cpu.push(f(&cpu["user"]) + f(&cpu["system"]));
        self.data_frames += report["data_frames"].as_u64().unwrap_or(0);
        self.compressed_frames += report["compressed_frames"].as_u64().unwrap_or(0);
        self.deflate_offered |= report["deflate_offered"].as_bool() == Some(true);
        if let Some(agreed) = report["tls"].as_str() {
            self.tls.get_or_insert_with(|| agreed.to_owned());
        }
        self.verified += report["verified"].as_u64().unwrap_or(0);
        self.verify_failures += report["verify_failures"].as_u64().unwrap_or(0);
    }

    /// `RSV1 frames` of the table: the share of data frames that came compressed.
    fn compressed(&self) -> String {
        if !self.deflate_offered {
            return "–".to_owned();
        }
        let share = 100.0 * self.compressed_frames as f64 / self.data_frames.max(1) as f64;
        let mut out = format!("{share:.1}%");
        if self.verified + self.verify_failures > 0 {
            out += &format!(
                ", {} verified / {} bad",
                self.verified, self.verify_failures
            );
        }
        out
    }

    fn median(&self) -> Option<f64> {
        (!self.medians.is_empty()).then(|| median(&self.medians))
    }
}

fn print_table(
    cells: &BTreeMap<(usize, usize, String), Cell>,
    common: &Common,
    clients: &[usize],
    messages: &[usize],
    reps: usize,
    seconds: usize,
) {
    println!();
    println!(
        "Chat room{}, messages received per second: median second of each {seconds} s run, median of {reps} runs \
         (server pinned to core(s) {}, client to {}){}",
        if common.tls.is_some() {
            " over wss://"
        } else {
            ""
        },
        core_list(&common.server_cores),
        core_list(&common.client_cores),
        common
            .bun_version()
            .map(|v| format!("; bun {v}"))
            .unwrap_or_default()
    );
    // The share of compressed frames is shown when any client offered deflate.
    let deflate = cells.values().any(|c| c.deflate_offered);
    let (rsv1_head, rsv1_rule) = if deflate {
        (" RSV1 frames |", "---|")
    } else {
        ("", "")
    };
    println!();
    println!(
        "| N | M | server | msgs/s | runs (min–max) | vs Bun | stalled/closed runs | missing / lagged | server CPU (user+sys) | client CPU |{rsv1_head}"
    );
    println!("|---:|---:|---|---:|---|---:|---|---|---|---:|{rsv1_rule}");
    for &n in clients {
        for &m in messages {
            for kind in &common.servers {
                let Some(cell) = cells.get(&(n, m, kind.clone())) else {
                    continue;
                };
                let Some(value) = cell.median() else {
                    println!(
                        "| {n} | {m} | {kind} | failed | {} | | | | | |{}",
                        cell.errors.join("; "),
                        if deflate { " |" } else { "" }
                    );
                    continue;
                };
                let bun = cells
                    .get(&(n, m, baseline(kind, &common.servers)))
                    .and_then(Cell::median);
                let (lo, hi) = cell
                    .medians
                    .iter()
                    .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                let ratio = bun
                    .filter(|b| *b > 0.0)
                    .map_or("–".to_owned(), |b| format!("{:.2}×", value / b));
                let user = median(&cell.server_cpu.iter().map(|c| c.0).collect::<Vec<_>>());
                let system = median(&cell.server_cpu.iter().map(|c| c.1).collect::<Vec<_>>());
                let failures = if cell.stalls + cell.closes + cell.errors.len() == 0 {
                    "0".to_owned()
                } else {
                    let mut parts = vec![format!("{}/{}", cell.stalls, cell.closes)];
                    if !cell.errors.is_empty() {
                        parts.push(format!("{} failed", cell.errors.len()));
                    }
                    parts.join(", ")
                };
                let rsv1 = if deflate {
                    format!(" {} |", cell.compressed())
                } else {
                    String::new()
                };
                println!(
                    "| {n} | {m} | {kind} | {} | {}–{} | {ratio} | {failures} | {} / {} | {:.0}% ({:.0}+{:.0}) | {:.0}% |{rsv1}",
                    si(value),
                    si(lo),
                    si(hi),
                    cell.missing,
                    cell.lagged,
                    user + system,
                    user,
                    system,
                    median(&cell.client_cpu),
                );
            }
        }
    }
    println!();
    println!(
        "msgs/s of a run that stalled counts the seconds before its last complete batch. missing: messages \
         that never arrived in stalled batches (client count); lagged: deliveries the axum servers' \
         broadcast channel skipped (server count). CPU: % of one core over the run."
    );
    if deflate {
        println!(
            "vs Bun: a deflate server against Bun with the same deflate mode when that ran, else plain Bun. \
             RSV1 frames: the share of data frames received compressed (permessage-deflate); \
             verified: messages the first client inflated and checked (`--verify`)."
        );
    }
    if common.tls.is_some() {
        for kind in &common.servers {
            let agreed = cells
                .iter()
                .filter(|((_, _, k), _)| k == kind)
                .find_map(|(_, cell)| cell.tls.as_deref());
            println!("TLS agreed with {kind}: {}", agreed.unwrap_or("–"));
        }
    }
}

/// The Bun row a server's ratio is against: Bun with the same deflate mode
/// when it runs, else plain Bun.
fn baseline(kind: &str, servers: &[String]) -> String {
    let same_mode = servers::deflate_mode(kind).map(|mode| format!("bun-deflate-{mode}"));
    match same_mode {
        Some(bun) if servers.contains(&bun) => bun,
        _ => "bun".to_owned(),
    }
}
