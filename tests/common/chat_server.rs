//! The chat example as users run it: its compiled binary, on a free port.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

use super::process::example_binary;

/// A running `chat` example, killed when dropped.
pub struct ChatServer {
    /// Where it listens, as `127.0.0.1:PORT`.
    pub addr: String,
    process: Child,
    // Kept open so the server never writes to a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl ChatServer {
    /// Starts the example on a free loopback port; its first stdout line
    /// names the URL it listens on.
    pub async fn start() -> Self {
        Self::spawn(false).await
    }

    /// [`start`](Self::start) with `--tls`: `https://` and `wss://` with a
    /// self-signed certificate.
    #[cfg(feature = "tls")]
    pub async fn start_tls() -> Self {
        Self::spawn(true).await
    }

    async fn spawn(tls: bool) -> Self {
        let binary = example_binary("chat");
        let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let mut process = Command::new(binary)
            .args(tls.then_some("--tls"))
            .arg("127.0.0.1:0")
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut stdout = BufReader::new(process.stdout.take().expect("piped stdout"));
        // Owned from here on, so a failure below still kills the process.
        let mut server = Self {
            addr: String::new(),
            process,
            _stdout: None,
        };
        let (stdout, line) = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let read = stdout.read_line(&mut line);
            (stdout, read.map(|_| line))
        })
        .await
        .unwrap();
        let line = line.expect("read the example's stdout");
        server.addr = line
            .trim()
            .strip_prefix(if tls {
                "chat on https://"
            } else {
                "chat on http://"
            })
            .unwrap_or_else(|| panic!("unexpected first line from the example: {line:?}"))
            .to_owned();
        server._stdout = Some(stdout);
        server
    }
}

impl ChatServer {
    /// Sends the server SIGINT, as Ctrl-C in its terminal does.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.process.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT failed");
    }

    /// Waits up to `timeout` for the server to exit; its exit status, or
    /// `None` if it is still running.
    pub async fn exited_within(&mut self, timeout: std::time::Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.process.try_wait().expect("wait for the example") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
