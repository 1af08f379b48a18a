//! cargo run --example chat [-- ADDR]    then open http://127.0.0.1:3000
//! cargo run --example chat --features tls -- --tls [ADDR]    then https://127.0.0.1:3000
//!
//! A chat room in a browser: log in with a name (kept in a `user` cookie),
//! see who is online, talk. Ordinary axum routes serve the page and the
//! login; `/ws` (a `GET` upgrade, or a `CONNECT` over HTTP/2 with the
//! `http2` feature) turns the cookie into typed per-socket data with
//! [`Upgrade::accept`], and the [`room::Chat`] handler does the rest
//! through the hub's `lobby` topic.
//!
//! Listens on 127.0.0.1:3000, or on ADDR (first argument, else `CHAT_ADDR`);
//! port 0 picks a free port. The first line on stdout is the URL; logs
//! (`RUST_LOG`, default `info` plus tower-http's request traces) go to
//! stderr, in colour only when stderr is a terminal.
//!
//! With the `metrics` feature (`cargo run --example chat --features
//! metrics`), `GET /metrics` serves wshub's counters for Prometheus.
//!
//! With `--tls` the page and its socket are served over `https://` and
//! `wss://`, with a self-signed certificate for `localhost` and `127.0.0.1`
//! made at start: the browser warns about it once (accept it to go on).
//!
//! Ctrl-C stops it gracefully: the listener closes, every socket gets what
//! was queued to it and then a 1001 close, and the leave announcements run.
//!
//! The cookie is a bare name, so anyone can be anyone: a real application
//! would use a signed or private cookie (axum-extra's `SignedCookieJar`)
//! and check the `Origin` of the upgrade request.

mod room;

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;
use wshub::{Config, Hub, Upgrade, WebSocketLayer};

use crate::room::{Chat, User};

/// The page: a login form and a chat view; `{view}` says which one shows.
const INDEX: &str = include_str!("index.html");
/// The cookie that holds the user's name.
const USER_COOKIE: &str = "user";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tls = args.iter().any(|arg| arg == "--tls");
    let addr = args
        .into_iter()
        .find(|arg| arg != "--tls")
        .or_else(|| std::env::var("CHAT_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(
                "cannot listen on {addr}: {error}; choose another address: \
                 `cargo run --example chat -- 127.0.0.1:3001` \
                 (or CHAT_ADDR=127.0.0.1:3001; port 0 picks a free one)"
            );
            std::process::exit(1);
        }
    };
    let scheme = if tls { "https" } else { "http" };
    let (app, hub) = app();
    let app = with_metrics(app)?;
    // TCP_NODELAY, bounded request heads and the peer's address (`ConnectInfo`).
    let server = with_tls(wshub::serve(listener, app), tls)?;
    println!("chat on {scheme}://{}", server.local_addr()?);
    server
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
            hub.shutdown(Duration::from_secs(5)).await;
        })
        .await
}

/// The server, serving TLS with a self-signed certificate if `tls`.
#[cfg(feature = "tls")]
fn with_tls(server: wshub::Serve, tls: bool) -> std::io::Result<wshub::Serve> {
    if !tls {
        return Ok(server);
    }
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let generated = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
    let cert = generated.cert.pem();
    let key = generated.signing_key.serialize_pem();
    let key =
        wshub::tls::parse_pem(cert.as_bytes(), key.as_bytes()).map_err(std::io::Error::other)?;
    Ok(server.tls(wshub::tls::server_config(key)))
}

#[cfg(not(feature = "tls"))]
fn with_tls(server: wshub::Serve, tls: bool) -> std::io::Result<wshub::Serve> {
    if tls {
        eprintln!(
            "--tls needs the `tls` feature: cargo run --example chat --features tls -- --tls"
        );
        std::process::exit(2);
    }
    Ok(server)
}

/// With the `metrics` feature, `GET /metrics`: wshub's counters in
/// Prometheus' text format. The recorder is installed before the server
/// starts, as wshub's metrics need.
#[cfg(feature = "metrics")]
fn with_metrics(app: Router) -> std::io::Result<Router> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(std::io::Error::other)?;
    Ok(app.route("/metrics", get(move || std::future::ready(handle.render()))))
}

#[cfg(not(feature = "metrics"))]
fn with_metrics(app: Router) -> std::io::Result<Router> {
    Ok(app)
}

/// The whole application: pages, login, and the WebSocket route; and the
/// hub of its sockets.
fn app() -> (Router, Hub) {
    // With `publish_to_self`, a message reaches its sender through the room
    // like everyone else's, so every client sees the same order.
    let config = Config::default()
        .publish_to_self(true)
        .max_payload_length(4 << 10);
    let layer = WebSocketLayer::new(Chat::default()).config(config);
    let hub = layer.hub();
    let app = Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/logout", post(logout))
        // `any`, not `get`: over HTTP/2 (the `http2` feature) a WebSocket
        // opens with CONNECT, and other methods get the extractor's clear 405.
        .route("/ws", any(ws))
        .layer(layer)
        .layer(TraceLayer::new_for_http());
    (app, hub)
}

/// The page, with the chat view for a logged-in user and the login form otherwise.
async fn index(jar: CookieJar) -> Html<String> {
    let view = if jar.get(USER_COOKIE).is_some() {
        "chat"
    } else {
        "login"
    };
    Html(INDEX.replacen("{view}", view, 1))
}

/// Logs in with the form field `name`: sets the cookie and goes back to the page.
async fn login(jar: CookieJar, Form(form): Form<HashMap<String, String>>) -> Response {
    let Some(name) = form.get("name").and_then(|name| valid_name(name)) else {
        let reason = "a name is 1 to 32 characters, none of them control characters";
        return (StatusCode::BAD_REQUEST, reason).into_response();
    };
    let cookie = Cookie::build((USER_COOKIE, name.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax);
    (jar.add(cookie), Redirect::to("/")).into_response()
}

/// Forgets the user and goes back to the page.
async fn logout(jar: CookieJar) -> impl IntoResponse {
    (
        jar.remove(Cookie::build(USER_COOKIE).path("/")),
        Redirect::to("/"),
    )
}

/// Opens a socket for a logged-in user, with their name as the socket's data.
async fn ws(upgrade: Upgrade<User>, jar: CookieJar) -> Response {
    // The cookie comes from the client: check it like the login form does.
    match jar.get(USER_COOKIE).and_then(|c| valid_name(c.value())) {
        Some(name) => upgrade.accept(User {
            name: name.to_owned(),
        }),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// The name without surrounding spaces, if it is 1 to 32 characters with no
/// control character among them.
fn valid_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let len = name.chars().count();
    ((1..=32).contains(&len) && !name.chars().any(char::is_control)).then_some(name)
}
