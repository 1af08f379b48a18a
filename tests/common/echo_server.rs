//! The echo example as its own process, so its memory can be read from
//! `/proc/<pid>/status` while a test attacks it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

/// A running `echo` example, killed when dropped.
pub struct EchoServer {
    /// Where it listens, as `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    process: Child,
    // Kept open so the server never writes to a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl EchoServer {
    /// Starts the example with `compression` (`off`, `shared` or
    /// `dedicated`) on a free loopback port.
    pub async fn start(compression: &str) -> Self {
        let binary = example_binary("echo");
        let mut process = Command::new(binary)
            .args(["127.0.0.1:0", compression])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let stdout = BufReader::new(process.stdout.take().expect("piped stdout"));
        // Owned from here on, so a failure below still kills the process.
        let mut server = Self {
            addr: ([127, 0, 0, 1], 0).into(),
            process,
            _stdout: None,
        };
        let read = tokio::task::spawn_blocking(move || {
            let mut stdout = stdout;
            let mut line = String::new();
            let read = stdout.read_line(&mut line);
            (stdout, read.map(|_| line))
        });
        let (stdout, line) = super::wait("the echo example to start", read)
            .await
            .unwrap();
        let line = line.expect("read the example's stdout");
        // "echo server on ws://127.0.0.1:PORT (MODE)"
        server.addr = line
            .trim()
            .strip_prefix("echo server on ws://")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the example: {line:?}"));
        server._stdout = Some(stdout);
        server
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The process's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_field("VmHWM")
    }

    /// The process's resident memory now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS")
    }

    /// A number from `/proc/<pid>/status` (memory fields are in KiB).
    fn status_field(&self, field: &str) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {path}"))
    }
}

/// An example's binary, built (once per test process and example) with the
/// profile of this test, so a test never runs a stale example.
///
/// `cargo test` builds examples too, but `cargo test --test NAME` does not.
pub fn example_binary(name: &'static str) -> &'static PathBuf {
    static BINARIES: OnceLock<std::sync::Mutex<Vec<(&'static str, &'static PathBuf)>>> =
        OnceLock::new();
    let mut built = BINARIES.get_or_init(Default::default).lock().unwrap();
    if let Some((_, binary)) = built.iter().find(|(n, _)| *n == name) {
        return binary;
    }
    // This test is target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary in target/<profile>/deps");
    let profile = match profile_dir.file_name().and_then(|dir| dir.to_str()) {
        Some("debug") | None => "dev",
        Some(profile) => profile,
    };
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", name, "--profile", profile])
        .args(["--manifest-path", manifest])
        .status()
        .expect("run cargo");
    assert!(status.success(), "`cargo build --example {name}` failed");
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing after `cargo build --example {name}`",
        binary.display()
    );
    let binary: &'static PathBuf = Box::leak(Box::new(binary));
    built.push((name, binary));
    binary
}
