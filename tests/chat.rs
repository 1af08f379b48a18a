//! The chat example over the wire: log in over HTTP, chat with
//! tokio-tungstenite clients carrying the login cookie.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::chat_server::ChatServer;
use crate::common::within;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any one test may take before it fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn alice_and_bob_chat() {
    within(TEST_TIMEOUT, async {
        let server = ChatServer::start().await;
        alice_and_bob(&server).await;
    })
    .await;
}

/// The scripted chat: Alice and Bob log in and join, Alice says "hi bob"
/// (both get it through the room), Alice leaves and Bob hears it. Returns
/// Bob, still online.
async fn alice_and_bob(server: &ChatServer) -> Client {
    let mut alice = connect(server, &login(server, "alice").await).await;
    assert_eq!(next_event(&mut alice).await, presence("alice", &["alice"]));
    assert_eq!(next_event(&mut alice).await, join("alice"));

    let mut bob = connect(server, &login(server, "bob").await).await;
    assert_eq!(
        next_event(&mut bob).await,
        presence("bob", &["alice", "bob"])
    );
    assert_eq!(next_event(&mut bob).await, join("bob"));
    assert_eq!(next_event(&mut alice).await, join("bob"));

    // Everyone, the sender included, gets the message through the room.
    alice.send(Message::text("hi bob")).await.unwrap();
    let hi = message("alice", "hi bob");
    assert_eq!(next_event(&mut bob).await, hi);
    assert_eq!(next_event(&mut alice).await, hi);

    alice.close(None).await.unwrap();
    assert_eq!(next_event(&mut bob).await, leave("alice"));
    bob
}

#[tokio::test]
async fn upgrade_without_a_valid_cookie_is_unauthorized() {
    within(TEST_TIMEOUT, async {
        let server = ChatServer::start().await;
        // No cookie, an empty name, a name with a control character.
        for cookie in [None, Some("user="), Some("user=a%07b")] {
            let mut request = format!("ws://{}/ws", server.addr)
                .into_client_request()
                .unwrap();
            if let Some(cookie) = cookie {
                request
                    .headers_mut()
                    .insert("cookie", cookie.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Err(WsError::Http(response)) => {
                    assert_eq!(response.status(), 401, "cookie {cookie:?}");
                }
                other => panic!("cookie {cookie:?}: expected a 401, got {other:?}"),
            }
        }
    })
    .await;
}

/// What is not a WebSocket handshake at `/ws` gets the extractor's answer,
/// with a body that says what is wrong: the route takes any method.
#[tokio::test]
async fn other_requests_at_the_socket_route_get_a_clear_answer() {
    within(TEST_TIMEOUT, async {
        let server = ChatServer::start().await;
        let post = request(&server, "POST", "/ws", None, Some("x=1")).await;
        assert_eq!(post.status, 405);
        assert!(post.body.contains("GET method"), "{}", post.body);
        let get = request(&server, "GET", "/ws", None, None).await;
        assert_eq!(get.status, 426);
        assert!(get.body.contains("Upgrade: websocket"), "{}", get.body);
    })
    .await;
}

/// A taken address: the example names it, says how to choose another, and
/// exits with 1. The message is a log line (stderr, a pipe here): no colour
/// codes in it, as in any log not written to a terminal.
#[tokio::test]
async fn a_busy_address_is_named_with_the_way_to_pick_another() {
    within(Duration::from_secs(60), async {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let binary = common::process::example_binary("chat");
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(binary)
                .arg(addr.to_string())
                .env("RUST_LOG", "info")
                .stdin(std::process::Stdio::null())
                .output()
        })
        .await
        .unwrap()
        .expect("run the chat example");
        drop(taken);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("cannot listen on {addr}")),
            "{stderr}"
        );
        assert!(stderr.contains("CHAT_ADDR"), "{stderr}");
        assert!(
            !stderr.contains('\x1b'),
            "colour codes in a piped log: {stderr:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn login_checks_the_name() {
    within(TEST_TIMEOUT, async {
        let server = ChatServer::start().await;
        let too_long = "a".repeat(33);
        for name in ["", "   ", &too_long, "a\u{7}b", "a\nb"] {
            let response = post_form(&server, "/login", None, &form_field("name", name)).await;
            assert_eq!(response.status, 400, "name {name:?}");
            assert_eq!(response.header("set-cookie"), None);
        }
        let response = post_form(&server, "/login", None, "nom=alice").await;
        assert_eq!(response.status, 400);

        // 32 characters (more bytes), spaces trimmed: the name survives the
        // cookie's percent-encoding and reaches the socket's data.
        let name = "Zoë 🦀".repeat(6) + "ab";
        assert_eq!(name.chars().count(), 32);
        let cookie = login(&server, &format!("  {name} ")).await;
        let mut zoe = connect(&server, &cookie).await;
        assert_eq!(next_event(&mut zoe).await, presence(&name, &[&name]));
    })
    .await;
}

#[tokio::test]
async fn page_shows_login_or_chat_and_logout_clears_the_cookie() {
    within(TEST_TIMEOUT, async {
        let server = ChatServer::start().await;
        let page = request(&server, "GET", "/", None, None).await;
        assert_eq!(page.status, 200);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(page.body.contains(r#"<body data-view="login">"#));
        assert!(page.body.contains(r#"id="login-name""#));

        let cookie = login(&server, "alice").await;
        let page = request(&server, "GET", "/", Some(&cookie), None).await;
        assert!(page.body.contains(r#"<body data-view="chat">"#));

        let response = post_form(&server, "/logout", Some(&cookie), "").await;
        assert_eq!(response.status, 303);
        assert_eq!(response.header("location"), Some("/"));
        let removal = response.header("set-cookie").expect("a removal cookie");
        assert!(removal.starts_with("user=;"), "{removal}");
        assert!(removal.contains("Max-Age=0"), "{removal}");
    })
    .await;
}

#[tokio::test]
async fn a_user_in_two_tabs_is_online_once() {
    within(TEST_TIMEOUT, async {
        let server = ChatServer::start().await;
        let alice_cookie = login(&server, "alice").await;
        let mut tab1 = connect(&server, &alice_cookie).await;
        assert_eq!(next_event(&mut tab1).await, presence("alice", &["alice"]));
        assert_eq!(next_event(&mut tab1).await, join("alice"));
        let mut tab2 = connect(&server, &alice_cookie).await;
        assert_eq!(next_event(&mut tab2).await, presence("alice", &["alice"]));

        // No second join for alice: bob's is the next thing tab 2 hears.
        let mut bob = connect(&server, &login(&server, "bob").await).await;
        assert_eq!(
            next_event(&mut bob).await,
            presence("bob", &["alice", "bob"])
        );
        assert_eq!(next_event(&mut bob).await, join("bob"));
        assert_eq!(next_event(&mut tab2).await, join("bob"));

        // Closing one tab is no leave; closing the last one is.
        tab1.close(None).await.unwrap();
        while tab1.next().await.is_some() {}
        tab2.send(Message::text("still here")).await.unwrap();
        assert_eq!(next_event(&mut bob).await, message("alice", "still here"));
        tab2.close(None).await.unwrap();
        assert_eq!(next_event(&mut bob).await, leave("alice"));
    })
    .await;
}

fn presence(you: &str, names: &[&str]) -> Value {
    json!({"type": "presence", "you": you, "names": names})
}

fn join(name: &str) -> Value {
    json!({"type": "join", "name": name})
}

fn leave(name: &str) -> Value {
    json!({"type": "leave", "name": name})
}

fn message(name: &str, text: &str) -> Value {
    json!({"type": "message", "name": name, "text": text})
}

/// Logs in as `name` through the form route; returns the cookie (`user=...`).
async fn login(server: &ChatServer, name: &str) -> String {
    let response = post_form(server, "/login", None, &form_field("name", name)).await;
    assert_eq!(response.status, 303, "login as {name:?}: {}", response.body);
    assert_eq!(response.header("location"), Some("/"));
    let set_cookie = response.header("set-cookie").expect("set-cookie");
    let cookie = set_cookie.split(';').next().unwrap_or_default();
    assert!(cookie.starts_with("user="), "{set_cookie}");
    cookie.to_owned()
}

#[tokio::test]
async fn ctrl_c_closes_every_socket_with_1001_and_exits() {
    within(TEST_TIMEOUT, async {
        let mut server = ChatServer::start().await;
        let mut alice = connect(&server, &login(&server, "alice").await).await;
        // Alice's `open` ran (her socket's task may start after the 101
        // reached her, and after Bob's connect on a busy machine).
        assert_eq!(next_event(&mut alice).await, presence("alice", &["alice"]));
        let mut bob = connect(&server, &login(&server, "bob").await).await;
        // Both are in the room before the server stops.
        assert_eq!(
            next_event(&mut bob).await,
            presence("bob", &["alice", "bob"])
        );

        server.interrupt();
        for client in [&mut alice, &mut bob] {
            let close = loop {
                match client.next().await {
                    Some(Ok(Message::Close(frame))) => break frame,
                    Some(Ok(_)) => {}
                    other => panic!("expected a close frame, got {other:?}"),
                }
            };
            let frame = close.expect("a close frame with a code");
            assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
            // tungstenite sends its answering close as the stream runs on.
            assert!(
                client.next().await.is_none(),
                "the stream ends after the close"
            );
        }
        // The clients answered the close, so the server need not wait out
        // its grace period.
        let status = server.exited_within(Duration::from_secs(2)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "the example exits cleanly after Ctrl-C: {status:?}"
        );
    })
    .await;
}

/// Opens the chat socket with the login cookie.
async fn connect(server: &ChatServer, cookie: &str) -> Client {
    let mut request = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    client
}

/// The next event the server sent, as JSON.
async fn next_event(client: &mut Client) -> Value {
    loop {
        match client.next().await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// `name=value`, form-urlencoded.
fn form_field(name: &str, value: &str) -> String {
    let mut encoded = format!("{name}=");
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() {
            encoded.push(byte as char);
        } else {
            write!(encoded, "%{byte:02X}").unwrap();
        }
    }
    encoded
}

/// An HTTP/1.1 response, read to the end.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    head: String,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }
}

async fn post_form(
    server: &ChatServer,
    path: &str,
    cookie: Option<&str>,
    form: &str,
) -> HttpResponse {
    request(server, "POST", path, cookie, Some(form)).await
}

/// One request on its own connection, written by hand: what a browser sends,
/// without a client library in between.
async fn request(
    server: &ChatServer,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> HttpResponse {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
        server.addr
    );
    if let Some(cookie) = cookie {
        write!(request, "cookie: {cookie}\r\n").unwrap();
    }
    if let Some(form) = form {
        request += "content-type: application/x-www-form-urlencoded\r\n";
        write!(request, "content-length: {}\r\n\r\n{form}", form.len()).unwrap();
    } else {
        request += "\r\n";
    }
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    HttpResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// With the `metrics` feature, `/metrics` counts what happened, in
/// Prometheus' format: two sockets opened and one closed, the message in,
/// the publishes and their deliveries, a refused upgrade, the room.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn metrics_count_what_happened() {
    within(TEST_TIMEOUT, async {
        let server = ChatServer::start().await;
        let _bob = alice_and_bob(&server).await;
        // A GET without the upgrade headers: the extractor answers 426.
        let refused = request(&server, "GET", "/ws", None, None).await;
        assert_eq!(refused.status, 426);

        let scraped = request(&server, "GET", "/metrics", None, None).await;
        assert_eq!(scraped.status, 200);
        let value = |name: &str| -> f64 {
            scraped
                .body
                .lines()
                .filter(|line| !line.starts_with('#'))
                .filter(|line| line.split([' ', '{']).next() == Some(name))
                .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
                .sum()
        };
        assert_eq!(
            value("wshub_connections_opened_total"),
            2.0,
            "{}",
            scraped.body
        );
        assert_eq!(value("wshub_connections_closed_total"), 1.0);
        assert_eq!(value("wshub_connections_open"), 1.0);
        assert_eq!(value("wshub_messages_received_total"), 1.0);
        assert_eq!(value("wshub_bytes_received_total"), 6.0);
        // The joins, the message and alice's leave, each to the room; the
        // presence lists were sent, not published.
        assert_eq!(value("wshub_publishes_total"), 4.0);
        // join alice → 1, join bob → 2, the message → 2, leave → 1.
        assert_eq!(value("wshub_deliveries_total"), 6.0);
        assert_eq!(value("wshub_messages_sent_total"), 2.0);
        assert!(value("wshub_bytes_written_total") > 0.0);
        assert_eq!(value("wshub_handshake_rejections_total"), 1.0);
        assert!(
            scraped
                .body
                .contains("wshub_handshake_rejections_total{status=\"426\"} 1"),
            "{}",
            scraped.body
        );
        assert_eq!(value("wshub_topics"), 1.0);
        assert_eq!(value("wshub_dropped_total"), 0.0);
    })
    .await;
}
