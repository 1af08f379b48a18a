//! The echo example as its own process, so its memory can be read from
//! `/proc/<pid>/status` while a test attacks it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use super::process::example_binary;

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
        Self::spawn(compression, None, false).await
    }

    /// [`start_with_workers`](Self::start_with_workers) serving `wss://`
    /// (`--tls`, a self-signed certificate).
    #[cfg(feature = "tls")]
    pub async fn start_tls_with_workers(compression: &str, workers: usize) -> Self {
        let server = Self::spawn(compression, Some(workers), true).await;
        server.check_threads(workers);
        server
    }

    /// [`start`](Self::start) with `workers` runtime worker threads instead
    /// of one per core (its `#[tokio::main]` reads `TOKIO_WORKER_THREADS`),
    /// for figures that must not depend on the machine.
    pub async fn start_with_workers(compression: &str, workers: usize) -> Self {
        let server = Self::spawn(compression, Some(workers), false).await;
        server.check_threads(workers);
        server
    }

    /// The main thread and the workers: no more workers than asked for.
    fn check_threads(&self, workers: usize) {
        let threads = self.status_field("Threads");
        assert!(
            threads <= workers as u64 + 1,
            "the echo example runs {threads} threads with TOKIO_WORKER_THREADS={workers}"
        );
    }

    async fn spawn(compression: &str, workers: Option<usize>, tls: bool) -> Self {
        let binary = example_binary("echo");
        let mut command = Command::new(binary);
        if let Some(workers) = workers {
            command.env("TOKIO_WORKER_THREADS", workers.to_string());
        }
        let mut process = command
            .args(tls.then_some("--tls"))
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
        // "echo server on ws://127.0.0.1:PORT (MODE)", or wss://
        let prefix = if tls {
            "echo server on wss://"
        } else {
            "echo server on ws://"
        };
        server.addr = line
            .trim()
            .strip_prefix(prefix)
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

    /// A number from `/proc/<pid>/status` (memory fields are in KiB, and
    /// `Threads` is a count).
    fn status_field(&self, field: &str) -> u64 {
        testkit::proc::status_kib(self.pid(), field)
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }
}
