//! Just enough of the Chrome DevTools Protocol to drive headless Chromium:
//! launch it with a fresh profile, open pages in isolated contexts,
//! navigate, and evaluate JavaScript.
//!
//! One task reads the browser's messages and routes each response to its
//! caller by `id`; events are ignored.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, Value>>>>>;

/// How long Chromium may take to start.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Headless Chromium, killed and its profile removed when dropped.
pub struct Browser {
    sink: tokio::sync::Mutex<SplitSink<Socket, Message>>,
    pending: Pending,
    next_id: AtomicU64,
    // Dropped last, after the connection.
    process: Process,
}

/// The browser process and its profile directory.
struct Process {
    child: Child,
    profile: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The browser's helper processes may still be finishing writes.
        for _ in 0..20 {
            if fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Browser {
    /// Starts `chromium` (or `$CHROMIUM`) headless with a fresh profile and
    /// connects to it. Panics, saying how to install it, if it is missing.
    pub async fn launch() -> Self {
        Self::launch_with(&[]).await
    }

    /// [`launch`](Self::launch) with extra command-line flags.
    pub async fn launch_with(flags: &[&str]) -> Self {
        let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = std::env::temp_dir().join(format!(
            "wshub-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        fs::create_dir_all(&profile).expect("create the browser profile directory");
        let log = File::create(profile.join("chromium.log")).expect("create the browser log");
        let child = Command::new(&program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                "--remote-debugging-port=0",
            ])
            .args(flags)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                let _ = fs::remove_dir_all(&profile);
                panic!(
                    "cannot start `{program}` ({error}): the browser test needs Chromium. \
                     Run scripts/test.sh, which installs it (apt-get install -y chromium), \
                     or set CHROMIUM to a Chromium or Chrome binary."
                );
            }
        };
        let mut process = Process { child, profile };
        let url = devtools_url(&mut process).await;
        let (socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to the browser at {url}: {e}"));
        let (sink, stream) = socket.split();
        let pending = Pending::default();
        tokio::spawn(route_responses(stream, Arc::clone(&pending)));
        Self {
            sink: tokio::sync::Mutex::new(sink),
            pending,
            next_id: AtomicU64::new(1),
            process,
        }
    }

    /// Asks the browser to quit, which also ends its helper processes,
    /// and waits a little for it to exit. Dropping a browser kills it.
    pub async fn close(mut self) {
        let _ = self.call(None, "Browser.close", json!({})).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.process.child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Calls `method` on the browser, or on the page of `session`.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let mut request = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            request["sessionId"] = session.into();
        }
        let sent = self
            .sink
            .lock()
            .await
            .send(Message::text(request.to_string()))
            .await;
        if let Err(error) = sent {
            lock(&self.pending).remove(&id);
            return Err(format!("{method}: {error}"));
        }
        match rx.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(format!("{method}: {error}")),
            Err(_) => Err(format!("{method}: the browser closed the connection")),
        }
    }

    /// A new page in a browser context of its own: its own cookies and
    /// storage, like a separate browser profile.
    pub async fn isolated_page(&self) -> Page<'_> {
        let context = self
            .call(None, "Target.createBrowserContext", json!({}))
            .await
            .unwrap();
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context["browserContextId"]}),
            )
            .await
            .unwrap();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await
            .unwrap();
        let session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        Page {
            browser: self,
            session,
        }
    }
}

/// One tab, attached through its own DevTools session.
pub struct Page<'a> {
    browser: &'a Browser,
    session: String,
}

impl Page<'_> {
    /// Starts loading `url`.
    pub async fn navigate(&self, url: &str) {
        let result = self
            .call("Page.navigate", json!({"url": url}))
            .await
            .unwrap();
        if let Some(error) = result.get("errorText") {
            panic!("navigate to {url}: {error}");
        }
    }

    /// Evaluates `expression` in the page, awaiting it if it is a promise;
    /// returns its value as JSON, or the exception it threw.
    pub async fn evaluate(&self, expression: &str) -> Result<Value, String> {
        let params = json!({"expression": expression, "awaitPromise": true, "returnByValue": true});
        let result = self.call("Runtime.evaluate", params).await?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(format!("`{expression}` threw {exception}"));
        }
        Ok(result["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Evaluates `expression` until it is `true`, or panics after `timeout`.
    /// Errors count as not yet: they happen while a page is loading.
    pub async fn wait_for(&self, expression: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.evaluate(expression).await;
            if last == Ok(Value::Bool(true)) {
                return;
            }
            if Instant::now() >= deadline {
                panic!("still not true after {timeout:?}: `{expression}` (last: {last:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.browser.call(Some(&self.session), method, params).await
    }
}

/// Waits for Chromium to write `DevToolsActivePort` (the port, then the
/// browser's WebSocket path) into its profile, and returns the URL.
async fn devtools_url(process: &mut Process) -> String {
    let file = process.profile.join("DevToolsActivePort");
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    loop {
        if let Ok(contents) = fs::read_to_string(&file) {
            if let Some((port, path)) = contents.trim().split_once('\n') {
                return format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
            }
        }
        let log = || fs::read_to_string(process.profile.join("chromium.log")).unwrap_or_default();
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("Chromium exited at start ({status}):\n{}", log());
        }
        if Instant::now() >= deadline {
            panic!(
                "Chromium did not open DevTools within {LAUNCH_TIMEOUT:?}:\n{}",
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Hands each response to the caller waiting for its `id`. When the
/// connection ends, dropping the waiting senders fails their calls.
async fn route_responses(mut stream: SplitStream<Socket>, pending: Pending) {
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(mut response) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some(id) = response.get("id").and_then(Value::as_u64) else {
            continue; // an event
        };
        if let Some(caller) = lock(&pending).remove(&id) {
            let result = match response.get_mut("error") {
                Some(error) => Err(error.take()),
                None => Ok(response["result"].take()),
            };
            let _ = caller.send(result);
        }
    }
    lock(&pending).clear();
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
