//! Tracing: a span per connection (id, remote address, path), events for
//! open, close (code, reason, duration) and protocol errors at debug, and
//! nothing at info for a connection that exchanges messages.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tracing::Level;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;
use wshub::Config;

/// Everything the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// Captures what wshub logs up to `level` on this thread: the tests run on
/// a current-thread runtime, so the server's tasks log here too.
fn capture(level: Level) -> (Captured, DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(captured.clone())
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_connection_logs_its_span_open_and_close_with_code_and_duration() {
    let (log, _guard) = capture(Level::DEBUG);
    let local = within(Duration::from_secs(10), async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut ws = RawWs::connect(addr).await;
        let local = ws.tcp().local_addr().unwrap();
        events.open().await;
        ws.write(&masked(0x81, b"hello")).await;
        assert_eq!(ws.message().await.as_text(), Some("hello"));
        assert_eq!(events.message().await.as_text(), Some("hello"));
        // An unmasked client frame is a protocol error: 1002.
        ws.write(&unmasked(0x81, b"bad")).await;
        assert_eq!(ws.close_frame().await.code, 1002);
        events.error().await;
        assert_eq!(events.close().await.0, 1002);
        local
    })
    .await;

    let log = log.text();
    let lines: Vec<&str> = log.lines().collect();
    let span = "websocket{id=";
    let open = lines
        .iter()
        .find(|l| l.contains(span) && l.ends_with(" open"))
        .unwrap_or_else(|| panic!("an open event in the connection's span:\n{log}"));
    assert!(
        open.contains(&format!("remote={local} ")),
        "remote address: {open}"
    );
    assert!(open.contains("path=/"), "path: {open}");
    assert!(open.contains("DEBUG"), "open is a debug event: {open}");

    let close = lines
        .iter()
        .find(|l| l.contains(span) && l.contains(" close "))
        .unwrap_or_else(|| panic!("a close event in the connection's span:\n{log}"));
    assert!(close.contains("code=1002"), "close code: {close}");
    assert!(close.contains("reason="), "close reason: {close}");
    assert!(close.contains("duration_ms="), "duration: {close}");

    let error = lines
        .iter()
        .find(|l| l.contains(span) && l.contains("connection failed"))
        .unwrap_or_else(|| panic!("the protocol error is logged:\n{log}"));
    assert!(error.contains("mask"), "names the error: {error}");
    // The payloads never reach the log.
    assert!(
        !log.contains("hello"),
        "no message content in the log:\n{log}"
    );
}

#[tokio::test]
async fn nothing_is_logged_at_info_for_a_chatty_connection() {
    let (log, _guard) = capture(Level::INFO);
    within(Duration::from_secs(10), async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        events.open().await;
        for i in 0..100 {
            send(&mut client, Msg::text(format!("message {i}"))).await;
            assert!(matches!(recv(&mut client).await, Msg::Text(_)));
        }
        client.close(None).await.unwrap();
        // The server's answering close, then the end.
        assert!(matches!(recv(&mut client).await, Msg::Close(_)));
        for i in 0..100 {
            let seen = events.message().await;
            assert_eq!(seen.as_text(), Some(format!("message {i}").as_str()));
        }
        events.close().await;
    })
    .await;
    assert_eq!(
        log.text(),
        "",
        "info shows nothing per message or connection"
    );
}
