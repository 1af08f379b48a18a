//! The layer among others: tower-http trace and auth in front of it, ordinary
//! routes beside it, route-level use, nesting, and plain hyper + tower.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::*;
use tower_http::trace::TraceLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;
use tungstenite::client::IntoClientRequest;
use wshub::{Hub, WebSocketLayer};

/// Lets through only `Authorization: Bearer secret`.
#[expect(
    clippy::result_large_err,
    reason = "the signature tower-http's `ValidateRequest` takes"
)]
fn bearer_secret(req: &mut Request<Body>) -> Result<(), Response> {
    match req.headers().get(AUTHORIZATION) {
        Some(value) if value == "Bearer secret" => Ok(()),
        _ => Err(StatusCode::UNAUTHORIZED.into_response()),
    }
}

/// Checks that an echo socket works on `url` and its handler opened.
async fn assert_echoes(url: String, events: &mut Events) {
    let (mut client, _) = connect_with(url).await.unwrap();
    events.open().await;
    send(&mut client, Msg::text("through")).await;
    assert_eq!(recv(&mut client).await, Msg::text("through"));
}

#[tokio::test]
async fn auth_and_trace_in_front_turn_away_clients_without_the_token() {
    within(WAIT, async {
        let (probe, mut events) = Probe::new();
        let app = Router::new()
            .route("/ws", get(accept))
            .layer(WebSocketLayer::new(probe))
            .layer(ValidateRequestHeaderLayer::custom(bearer_secret))
            .layer(TraceLayer::new_for_http());
        let addr = serve(app).await;

        match connect_with(format!("ws://{addr}/ws")).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected a 401, got {other:?}"),
        }
        events.assert_silent(Duration::from_millis(100)).await;

        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        request
            .headers_mut()
            .insert(AUTHORIZATION, "Bearer secret".parse().unwrap());
        let (mut client, response) = connect_with(request).await.unwrap();
        assert_eq!(response.status(), 101);
        events.open().await;
        send(&mut client, Msg::text("authorized")).await;
        assert_eq!(recv(&mut client).await, Msg::text("authorized"));
    })
    .await;
}

#[tokio::test]
async fn ordinary_routes_keep_working_beside_websockets() {
    within(WAIT, async {
        let (probe, mut events) = Probe::new();
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/echo", post(|body: String| async move { body }))
            .route("/ws", get(accept))
            .layer(WebSocketLayer::new(probe));
        let addr = serve(app).await;

        let health = HttpRequest::new("GET", "/health").send(addr).await;
        assert_eq!((health.status, health.body.as_str()), (200, "ok"));
        let echo = HttpRequest::new("POST", "/echo")
            .body("posted")
            .send(addr)
            .await;
        assert_eq!((echo.status, echo.body.as_str()), (200, "posted"));
        let missing = HttpRequest::new("GET", "/nowhere").send(addr).await;
        assert_eq!(missing.status, 404);
        let not_upgrade = HttpRequest::new("GET", "/ws").send(addr).await;
        assert_eq!(not_upgrade.status, 426);

        assert_echoes(format!("ws://{addr}/ws"), &mut events).await;
    })
    .await;
}

#[tokio::test]
async fn layer_on_one_method_router() {
    within(WAIT, async {
        let (probe, mut events) = Probe::new();
        let app = Router::new()
            .route("/ws", get(accept).layer(WebSocketLayer::new(probe)))
            .route("/health", get(|| async { "ok" }));
        let addr = serve(app).await;

        assert_echoes(format!("ws://{addr}/ws"), &mut events).await;
        assert_eq!(
            HttpRequest::new("GET", "/health").send(addr).await.body,
            "ok"
        );
    })
    .await;
}

#[tokio::test]
async fn route_layer_covers_only_the_routes_before_it() {
    within(WAIT, async {
        let (probe, mut events) = Probe::new();
        let app = Router::new()
            .route("/ws", get(accept))
            .route_layer(WebSocketLayer::new(probe))
            .route("/late", get(accept));
        let addr = serve(app).await;

        assert_echoes(format!("ws://{addr}/ws"), &mut events).await;
        let late = HttpRequest::upgrade("/late").send(addr).await;
        assert_eq!(late.status, 500);
        assert!(late.body.contains("WebSocketLayer"), "{}", late.body);
    })
    .await;
}

#[tokio::test]
async fn hub_extractor_without_the_layer_is_a_500_naming_hub_and_the_layer() {
    within(WAIT, async {
        let (probe, _events) = Probe::new();
        let app = Router::new()
            .route(
                "/with",
                get(|hub: Hub| async move { hub.connections().to_string() }),
            )
            .layer(WebSocketLayer::new(probe))
            .route("/without", get(|_: Hub| async { "unreachable" }));
        let addr = serve(app).await;

        let with = HttpRequest::new("GET", "/with").send(addr).await;
        assert_eq!((with.status, with.body.as_str()), (200, "0"));
        let without = HttpRequest::new("GET", "/without").send(addr).await;
        assert_eq!(without.status, 500);
        let body = without.body;
        assert!(body.contains("`Hub`"), "{body}");
        assert!(body.contains("WebSocketLayer"), "{body}");
        assert!(!body.contains("Upgrade"), "{body}");
    })
    .await;
}

async fn require_token(req: Request, next: Next) -> Response {
    match req.headers().get("x-token") {
        Some(token) if token == "t" => next.run(req).await,
        _ => StatusCode::FORBIDDEN.into_response(),
    }
}

#[tokio::test]
async fn middleware_from_fn_on_the_route_guards_the_upgrade() {
    within(WAIT, async {
        let (probe, mut events) = Probe::new();
        let app = Router::new()
            .route("/ws", get(accept))
            .layer(WebSocketLayer::new(probe))
            .route_layer(middleware::from_fn(require_token));
        let addr = serve(app).await;

        let refused = HttpRequest::upgrade("/ws").send(addr).await;
        assert_eq!(refused.status, 403);
        events.assert_silent(Duration::from_millis(100)).await;
        let allowed = HttpRequest::upgrade("/ws")
            .header("x-token", "t")
            .send(addr)
            .await;
        assert_eq!(allowed.status, 101);
        events.open().await;
    })
    .await;
}

#[tokio::test]
async fn innermost_of_two_nested_layers_serves_the_socket() {
    within(WAIT, async {
        let (outer, mut outer_events) = Probe::new();
        let (inner, mut inner_events) = Probe::new();
        let app = Router::new()
            .route("/ws", get(accept).layer(WebSocketLayer::new(inner)))
            .layer(WebSocketLayer::new(outer));
        let addr = serve(app).await;

        assert_echoes(format!("ws://{addr}/ws"), &mut inner_events).await;
        outer_events.assert_silent(Duration::from_millis(100)).await;
    })
    .await;
}

#[tokio::test]
async fn plain_hyper_and_tower_without_axum() {
    within(WAIT, async {
        let (probe, mut events) = Probe::new();
        let addr = serve_hyper(probe).await;

        let mut client = connect(addr).await;
        let ws = events.open().await;
        assert_eq!(ws.remote_addr(), Some(local_addr(&client)));
        send(&mut client, Msg::binary(vec![1, 2, 3])).await;
        assert_eq!(recv(&mut client).await, Msg::binary(vec![1, 2, 3]));
        assert_eq!(
            events.message().await,
            wshub::Message::binary(vec![1, 2, 3])
        );

        let response = HttpRequest::upgrade("/")
            .set("sec-websocket-version", "8")
            .send(addr)
            .await;
        assert_eq!(response.status, 426);
        assert_eq!(response.header("sec-websocket-version"), Some("13"));
        events.assert_silent(Duration::from_millis(100)).await;
    })
    .await;
}
