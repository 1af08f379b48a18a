//! The chat example in a real browser: two headless Chromium pages with
//! separate cookies log in through the page's form and talk to each other,
//! over `ws://` and (with the `tls` feature) over `wss://`.
//!
//! Needs Chromium (`chromium` on PATH, or `CHROMIUM=/path`); `scripts/test.sh`
//! installs it. Without it this test fails, saying so.

#[path = "common/cdp.rs"]
mod cdp;
mod common;

use std::time::Duration;

use crate::cdp::{Browser, Page};
use crate::common::chat_server::ChatServer;
use crate::common::within;

/// How long one step (a page load, a message arriving) may take.
const STEP: Duration = Duration::from_secs(10);

#[tokio::test]
async fn two_browsers_chat() {
    within(Duration::from_secs(60), async {
        let server = ChatServer::start().await;
        let browser = Browser::launch().await;
        chat(&browser, &format!("http://{}/", server.addr)).await;
        browser.close().await;
    })
    .await;
}

/// The chat example with `--tls`: the page over `https://`, its socket over
/// `wss://`. The certificate is self-signed, so Chromium is told to accept
/// any (`--ignore-certificate-errors`); TLS itself still runs.
///
/// With the `http2` feature the server offers `h2` by ALPN, so Chromium
/// loads the page over HTTP/2 and opens its sockets as HTTP/2 streams
/// (RFC 8441): the page's protocol says the first, the server's count of
/// handshakes by HTTP version (with `metrics`) the second.
#[cfg(feature = "tls")]
#[tokio::test]
async fn two_browsers_chat_over_wss() {
    within(Duration::from_secs(60), async {
        let server = ChatServer::start_tls().await;
        let browser = Browser::launch_with(&["--ignore-certificate-errors"]).await;
        let url = format!("https://{}/", server.addr);
        chat(&browser, &url).await;
        #[cfg(feature = "http2")]
        {
            let page = browser.isolated_page().await;
            page.navigate(&url).await;
            let protocol = page
                .evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
                .await
                .unwrap();
            assert_eq!(protocol, "h2", "the page did not come over HTTP/2");
            #[cfg(feature = "metrics")]
            {
                let metrics = page
                    .evaluate("fetch('/metrics').then((r) => r.text())")
                    .await
                    .unwrap();
                let metrics = metrics.as_str().unwrap_or_default();
                assert!(
                    metrics
                        .lines()
                        .any(|line| line == "wshub_upgrades_total{http=\"2\"} 2"),
                    "both sockets should have opened over HTTP/2:\n{metrics}"
                );
                assert!(
                    !metrics.contains("wshub_upgrades_total{http=\"1.1\"}"),
                    "{metrics}"
                );
            }
        }
        browser.close().await;
    })
    .await;
}

/// Alice and Bob log in at `url` in separate contexts and talk.
async fn chat(browser: &Browser, url: &str) {
    // Separate browser contexts: each page has its own `user` cookie.
    let alice = browser.isolated_page().await;
    let bob = browser.isolated_page().await;
    log_in(&alice, url, "alice").await;
    log_in(&bob, url, "bob").await;
    // The page (and so its socket: `wss://` under `https:`) is where we asked.
    let protocol = alice.evaluate("location.protocol").await.unwrap();
    assert_eq!(
        Some(protocol.as_str().unwrap_or_default()),
        url.split("//").next()
    );

    // Both are in the room before anyone speaks.
    alice.wait_for(&is_online("bob"), STEP).await;
    bob.wait_for(&is_online("alice"), STEP).await;

    say(&alice, "hello from alice").await;
    say(&bob, "hi alice, bob here").await;
    bob.wait_for(&has_line("alice: hello from alice"), STEP)
        .await;
    alice
        .wait_for(&has_line("bob: hi alice, bob here"), STEP)
        .await;
}

/// Logs in through the page's form, then waits for the chat view to show
/// the user online (the socket is open and the server sent the room's list).
async fn log_in(page: &Page<'_>, url: &str, name: &str) {
    page.navigate(url).await;
    // `data-view` is on `<body>`, which the parser has before the form in
    // it (over TLS the page may arrive in pieces): wait for the whole page.
    page.wait_for(
        "document.readyState !== 'loading' && document.body?.dataset.view === 'login'",
        STEP,
    )
    .await;
    let submit = format!(
        "document.getElementById('login-name').value = {};
         document.getElementById('login-submit').click();",
        js(name)
    );
    page.evaluate(&submit).await.unwrap();
    page.wait_for("document.body?.dataset.view === 'chat'", STEP)
        .await;
    page.wait_for(&is_online(name), STEP).await;
}

/// Types `text` into the message box and clicks Send.
async fn say(page: &Page<'_>, text: &str) {
    let send = format!(
        "document.getElementById('input').value = {};
         document.getElementById('send').click();",
        js(text)
    );
    page.evaluate(&send).await.unwrap();
}

/// Whether `#online` lists `name`.
fn is_online(name: &str) -> String {
    format!(
        "[...document.querySelectorAll('#online li')].some((li) => li.textContent === {})",
        js(name)
    )
}

/// Whether `#messages` has the line `line`.
fn has_line(line: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages li')].some((li) => li.textContent === {})",
        js(line)
    )
}

/// `text` as a JavaScript string literal.
fn js(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}
