//! The opening handshake: bad requests get a clear 4xx and never open a
//! socket, server mistakes get a 500 that says what to fix, and an accepted
//! upgrade carries extra headers, typed data, the subprotocol and the peer's
//! address to the handler.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use common::*;
use tokio::sync::mpsc;
use tungstenite::client::IntoClientRequest;
use wshub::{Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer};

/// Sends `request` to an accepting server; checks the status and that no socket opened.
async fn rejected(request: HttpRequest, status: u16) -> HttpResponse {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let response = request.send(addr).await;
        assert_eq!(response.status, status, "{response:?}");
        events.assert_silent(Duration::from_millis(100)).await;
        response
    })
    .await
}

#[tokio::test]
async fn valid_raw_handshake_gets_101_with_the_accept_key() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let response = HttpRequest::upgrade("/").send(addr).await;
        assert_eq!(response.status, 101);
        assert_eq!(response.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT));
        assert_eq!(
            response
                .header("upgrade")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("websocket")
        );
        assert_eq!(response.header("sec-websocket-protocol"), None);
        events.open().await;
    })
    .await;
}

#[tokio::test]
async fn header_tokens_are_matched_in_lists_and_any_case() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let request = HttpRequest::upgrade("/")
            .set("upgrade", "WebSocket")
            .set("connection", "keep-alive, Upgrade");
        assert_eq!(request.send(addr).await.status, 101);
        events.open().await;
    })
    .await;
}

#[tokio::test]
async fn offered_extensions_are_not_accepted() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let request =
            HttpRequest::upgrade("/").header("sec-websocket-extensions", "permessage-deflate");
        let response = request.send(addr).await;
        assert_eq!(response.status, 101);
        assert_eq!(response.header("sec-websocket-extensions"), None);
        events.open().await;
    })
    .await;
}

#[tokio::test]
async fn post_gets_405_allowing_get() {
    let response = rejected(HttpRequest::upgrade("/").method("POST"), 405).await;
    assert_eq!(response.header("allow"), Some("GET"));
}

#[tokio::test]
async fn http_1_0_gets_400() {
    rejected(HttpRequest::upgrade("/").version("HTTP/1.0"), 400).await;
}

#[tokio::test]
async fn missing_upgrade_header_gets_426() {
    let response = rejected(HttpRequest::upgrade("/").without("upgrade"), 426).await;
    assert_eq!(response.header("upgrade"), Some("websocket"));
}

#[tokio::test]
async fn plain_get_gets_426() {
    rejected(HttpRequest::new("GET", "/"), 426).await;
}

#[tokio::test]
async fn connection_header_without_upgrade_gets_400() {
    rejected(
        HttpRequest::upgrade("/").set("connection", "keep-alive"),
        400,
    )
    .await;
}

#[tokio::test]
async fn websocket_version_8_gets_426_naming_version_13() {
    let response = rejected(
        HttpRequest::upgrade("/").set("sec-websocket-version", "8"),
        426,
    )
    .await;
    assert_eq!(response.header("sec-websocket-version"), Some("13"));
}

#[tokio::test]
async fn missing_websocket_version_gets_426() {
    rejected(
        HttpRequest::upgrade("/").without("sec-websocket-version"),
        426,
    )
    .await;
}

#[tokio::test]
async fn missing_key_gets_400() {
    rejected(HttpRequest::upgrade("/").without("sec-websocket-key"), 400).await;
}

#[tokio::test]
async fn malformed_keys_get_400() {
    for key in [
        "c2hvcnQ=",
        "not base64 at all!!!!!!!",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        rejected(HttpRequest::upgrade("/").set("sec-websocket-key", key), 400).await;
    }
}

#[tokio::test]
async fn duplicate_key_gets_400() {
    rejected(
        HttpRequest::upgrade("/").header("sec-websocket-key", SAMPLE_KEY),
        400,
    )
    .await;
}

#[tokio::test]
async fn route_without_the_layer_gets_500_naming_websocket_layer() {
    within(WAIT, async {
        let app = Router::new().route("/", get(accept));
        let response = HttpRequest::upgrade("/").send(serve(app).await).await;
        assert_eq!(response.status, 500);
        assert!(
            response.body.contains("WebSocketLayer"),
            "{}",
            response.body
        );
    })
    .await;
}

#[tokio::test]
async fn extractor_data_type_other_than_the_handlers_gets_500_naming_both() {
    within(WAIT, async {
        let (named, mut opened) = Named::new();
        let app = Router::new()
            .route(
                "/",
                get(|up: Upgrade<String>| async move { up.accept("ana".to_owned()) }),
            )
            .layer(WebSocketLayer::new(named));
        let response = HttpRequest::upgrade("/").send(serve(app).await).await;
        assert_eq!(response.status, 500);
        assert!(response.body.contains("String"), "{}", response.body);
        assert!(response.body.contains("User"), "{}", response.body);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), opened.recv())
                .await
                .is_err()
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_extra_header_gets_500_and_no_socket() {
    within(WAIT, async {
        let (probe, mut events) = Probe::new();
        let app = Router::new()
            .route(
                "/",
                get(|up: Upgrade| async move { up.header("x-bad", "line\nbreak").accept(()) }),
            )
            .layer(WebSocketLayer::new(probe));
        let response = HttpRequest::upgrade("/").send(serve(app).await).await;
        assert_eq!(response.status, 500);
        events.assert_silent(Duration::from_millis(100)).await;
    })
    .await;
}

// --- Accepted upgrades: typed data, extra headers, subprotocols ---

struct User {
    name: String,
}

/// What `Named` saw of a socket in `open`.
#[derive(Debug, PartialEq)]
struct Opened {
    name: String,
    remote_addr: Option<SocketAddr>,
    protocol: Option<String>,
}

/// Greets by name in `open`, prefixes every echo with the name.
struct Named {
    opened: mpsc::UnboundedSender<Opened>,
}

impl Named {
    fn new() -> (Self, mpsc::UnboundedReceiver<Opened>) {
        let (opened, rx) = mpsc::unbounded_channel();
        (Self { opened }, rx)
    }
}

impl Handler for Named {
    type Data = User;

    async fn open(&self, ws: &WebSocket<User>) {
        let _ = self.opened.send(Opened {
            name: ws.data().name.clone(),
            remote_addr: ws.remote_addr(),
            protocol: ws.protocol().map(str::to_owned),
        });
        ws.send(format!("hello {}", ws.data().name));
    }

    async fn message(&self, ws: &WebSocket<User>, msg: Message) {
        ws.send(format!(
            "{}: {}",
            ws.data().name,
            msg.as_text().unwrap_or("?")
        ));
    }
}

/// Accepts with the name from `?name=` or the `x-user` header, else 401.
async fn named_route(
    up: Upgrade<User>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let name = query.get("name").cloned().or_else(|| {
        headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    match name {
        Some(name) => up
            .header("set-cookie", "seen=1")
            .protocols(["chat", "b"])
            .accept(User { name }),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn named_server() -> (SocketAddr, mpsc::UnboundedReceiver<Opened>) {
    let (named, opened) = Named::new();
    let app = Router::new()
        .route("/chat", any(named_route))
        .layer(WebSocketLayer::new(named));
    (serve(app).await, opened)
}

#[tokio::test]
async fn typed_data_and_extra_headers_reach_handler_and_client() {
    within(WAIT, async {
        let (addr, mut opened) = named_server().await;
        let mut request = format!("ws://{addr}/chat").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("x-user", "ana".parse().unwrap());
        let (mut client, response) = connect_with(request).await.unwrap();

        assert_eq!(response.headers()["set-cookie"], "seen=1");
        assert_eq!(recv(&mut client).await, Msg::text("hello ana"));
        send(&mut client, Msg::text("hi")).await;
        assert_eq!(recv(&mut client).await, Msg::text("ana: hi"));
        let seen = wait("open", opened.recv()).await.unwrap();
        assert_eq!(seen.name, "ana");
        assert_eq!(seen.remote_addr, Some(local_addr(&client)));
    })
    .await;
}

#[tokio::test]
async fn data_can_come_from_the_query_string() {
    within(WAIT, async {
        let (addr, mut opened) = named_server().await;
        let (mut client, _) = connect_with(format!("ws://{addr}/chat?name=bo"))
            .await
            .unwrap();
        assert_eq!(recv(&mut client).await, Msg::text("hello bo"));
        assert_eq!(wait("open", opened.recv()).await.unwrap().name, "bo");
    })
    .await;
}

#[tokio::test]
async fn route_answering_401_instead_of_accepting_opens_nothing() {
    within(WAIT, async {
        let (addr, mut opened) = named_server().await;
        match connect_with(format!("ws://{addr}/chat")).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected a 401, got {other:?}"),
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(100), opened.recv())
                .await
                .is_err()
        );
    })
    .await;
}

#[tokio::test]
async fn the_one_offered_and_supported_subprotocol_is_selected() {
    within(WAIT, async {
        let (addr, mut opened) = named_server().await;
        let mut request = format!("ws://{addr}/chat?name=cy")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "a, chat".parse().unwrap());
        let (_client, response) = connect_with(request).await.unwrap();

        assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
        let seen = wait("open", opened.recv()).await.unwrap();
        assert_eq!(seen.protocol.as_deref(), Some("chat"));
    })
    .await;
}

/// `Upgrade::protocols` picks by the server's order of preference: the
/// route supports `chat` then `b`, the client prefers `b` then `chat`.
#[tokio::test]
async fn of_several_offered_and_supported_the_servers_first_is_selected() {
    within(WAIT, async {
        let (addr, mut opened) = named_server().await;
        let mut request = format!("ws://{addr}/chat?name=cy")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "b, chat".parse().unwrap());
        let (_client, response) = connect_with(request).await.unwrap();

        let protocols: Vec<_> = response
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .collect();
        assert_eq!(protocols, ["chat"]);
        let seen = wait("open", opened.recv()).await.unwrap();
        assert_eq!(seen.protocol.as_deref(), Some("chat"));
    })
    .await;
}

#[tokio::test]
async fn no_subprotocol_header_when_the_client_offers_none() {
    within(WAIT, async {
        let (addr, mut opened) = named_server().await;
        let (_client, response) = connect_with(format!("ws://{addr}/chat?name=di"))
            .await
            .unwrap();

        assert!(!response.headers().contains_key("sec-websocket-protocol"));
        assert_eq!(wait("open", opened.recv()).await.unwrap().protocol, None);
    })
    .await;
}

#[tokio::test]
async fn no_subprotocol_header_when_none_offered_is_supported() {
    within(WAIT, async {
        let (addr, mut opened) = named_server().await;
        let request =
            HttpRequest::upgrade("/chat?name=ed").header("sec-websocket-protocol", "x, y");
        let response = request.send(addr).await;

        assert_eq!(response.status, 101);
        assert_eq!(response.header("sec-websocket-protocol"), None);
        assert_eq!(wait("open", opened.recv()).await.unwrap().protocol, None);
    })
    .await;
}
