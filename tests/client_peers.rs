//! The client against servers nobody on wshub wrote: Python's `websockets`
//! and Node's `ws`, with and without `permessage-deflate`, each way.
//!
//! The peers are `tests/peers/echo_server.py` and
//! `tests/peers/ws_echo_server.js`; `scripts/test.sh` installs what they
//! need (`pip install websockets`, `npm install ws` under
//! `~/.cache/wshub/node`). A missing peer fails the test with what to run.

use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use wshub::{Client, Compression, Compressor, Message, close_code};

const WAIT: Duration = Duration::from_secs(30);

const DEDICATED: Compression = Compression {
    compress: Compressor::Dedicated,
    decompress: Compressor::Dedicated,
};

/// A peer server process: its port, and the JSON lines it reports.
struct Peer {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    port: u16,
}

impl Peer {
    async fn start(mut command: Command, what: &str) -> Self {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{what} cannot start: {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what} did not start listening"))
            .unwrap()
            .unwrap_or_else(|| {
                panic!("{what} exited at once: see its error above (scripts/test.sh installs it)")
            });
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap();
        Self {
            _child: child,
            lines,
            port,
        }
    }

    async fn python(mode: &str) -> Self {
        let mut command = Command::new("python3");
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/echo_server.py"
            ))
            .arg(mode);
        Self::start(command, "the Python `websockets` server").await
    }

    async fn node(mode: &str) -> Self {
        let home = std::env::var("HOME").unwrap_or_default();
        let modules = std::env::var("WSHUB_NODE_MODULES")
            .unwrap_or_else(|_| format!("{home}/.cache/wshub/node/node_modules"));
        let mut command = Command::new("node");
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/ws_echo_server.js"
            ))
            .arg(mode)
            .env("NODE_PATH", modules);
        Self::start(command, "the Node `ws` server").await
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// The report of the next connection to end.
    async fn report(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("a connection report")
            .unwrap()
            .expect("the peer exited");
        serde_json::from_str(&line).unwrap()
    }
}

/// Text and binary, compressible and not, from empty to 200 KiB.
fn messages() -> Vec<Message> {
    let mut out = Vec::new();
    for size in [0usize, 1, 100, 10 * 1024, 200 * 1024] {
        let phrase = "the quick brown fox jumps over the lazy dog, ";
        out.push(Message::text(
            phrase.repeat(size / phrase.len() + 1)[..size].to_owned(),
        ));
        let noise: String = (0..size)
            .map(|i| char::from(b'!' + ((i.wrapping_mul(2_654_435_761) >> 7) % 90) as u8))
            .collect();
        out.push(Message::text(noise));
        out.push(Message::binary(
            (0..size).map(|i| (i % 7) as u8).collect::<Vec<u8>>(),
        ));
        out.push(Message::binary(
            (0..size)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
                .collect::<Vec<u8>>(),
        ));
    }
    out
}

/// Sends every message twice, checks every echo, closes with 1000; returns
/// the peer's report of the connection.
async fn exchange(peer: &mut Peer, compression: Compression) -> Value {
    let mut socket = Client::new(peer.url())
        .compression(compression)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect with {compression:?}: {e}"));
    let messages = messages();
    for _ in 0..2 {
        for msg in &messages {
            socket.send(msg.clone());
        }
        for (i, msg) in messages.iter().enumerate() {
            let echo = tokio::time::timeout(WAIT, socket.next())
                .await
                .expect("an echo");
            assert_eq!(echo.as_ref(), Some(msg), "echo {i} with {compression:?}");
        }
    }
    socket.close(close_code::NORMAL, "done");
    assert_eq!(
        tokio::time::timeout(WAIT, socket.next()).await.unwrap(),
        None
    );
    let closed = socket.closed().unwrap();
    assert_eq!(
        (closed.code, closed.error.is_none()),
        (1000, true),
        "{closed:?}"
    );
    let report = peer.report().await;
    assert_eq!(report["echoed"], 2 * messages.len(), "{report}");
    assert_eq!(report["close_code"], 1000, "{report}");
    report
}

fn extensions(report: &Value) -> &str {
    report["extensions"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn python_websockets_server_without_compression() {
    let mut peer = Peer::python("none").await;
    for compression in [Compression::DISABLED, Compression::SHARED, DEDICATED] {
        let report = exchange(&mut peer, compression).await;
        assert_eq!(extensions(&report), "", "{report}");
        assert_eq!(report["received_compressed"], 0);
    }
}

#[tokio::test]
async fn python_websockets_server_with_compression_both_ways() {
    for mode in [
        "default",
        "client_max_window_bits=9",
        "server_max_window_bits=10",
        "no_context_takeover",
    ] {
        let mut peer = Peer::python(mode).await;
        for compression in [Compression::SHARED, DEDICATED] {
            let report = exchange(&mut peer, compression).await;
            let context = format!("{mode} / {compression:?}: {report}");
            assert!(
                extensions(&report).starts_with("permessage-deflate"),
                "{context}"
            );
            // Our frames arrived compressed, and theirs were inflated here
            // (every echo matched).
            assert!(
                report["received_compressed"].as_u64() > Some(10),
                "{context}"
            );
            assert!(report["sent_compressed"].as_u64() > Some(10), "{context}");
        }
        // Offering nothing: nothing compressed either way.
        let report = exchange(&mut peer, Compression::DISABLED).await;
        assert_eq!(extensions(&report), "", "{report}");
    }
}

#[tokio::test]
async fn node_ws_server_with_and_without_compression() {
    let mut plain = Peer::node("none").await;
    let report = exchange(&mut plain, Compression::SHARED).await;
    assert_eq!(extensions(&report), "", "{report}");
    let mut deflate = Peer::node("deflate").await;
    for compression in [Compression::SHARED, DEDICATED] {
        let report = exchange(&mut deflate, compression).await;
        assert!(
            extensions(&report).starts_with("permessage-deflate"),
            "{compression:?}: {report}"
        );
    }
    let report = exchange(&mut deflate, Compression::DISABLED).await;
    assert_eq!(extensions(&report), "", "{report}");
}
