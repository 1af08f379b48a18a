//! The chat example as users run it: its compiled binary, on a free port.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::OnceLock;

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
        let binary = example_binary();
        let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let mut process = Command::new(binary)
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
            .strip_prefix("chat on http://")
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

/// The `chat` example's binary, built (once per test process) with the
/// profile of this test, so a test never runs a stale example.
///
/// `cargo test` builds examples too, but `cargo test --test chat` does not.
fn example_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test is target/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test binary in target/<profile>/deps");
        let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => "dev",
            Some(profile) => profile,
        };
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--example",
                "chat",
                "--profile",
                profile,
            ])
            .args(["--manifest-path", manifest])
            .status()
            .expect("run cargo");
        assert!(status.success(), "`cargo build --example chat` failed");
        let binary = profile_dir.join("examples/chat");
        assert!(
            binary.exists(),
            "{} is missing after `cargo build --example chat`",
            binary.display()
        );
        binary
    })
}
