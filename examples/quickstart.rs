use axum::{Router, routing::any};
use wshub::{Config, Handler, Message, Upgrade, WebSocket, WebSocketLayer};

struct User {
    name: String,
}

struct Chat;

impl Handler for Chat {
    type Data = User;

    async fn open(&self, ws: &WebSocket<User>) {
        ws.subscribe("room");
    }

    async fn message(&self, ws: &WebSocket<User>, msg: Message) {
        let text = msg.as_text().unwrap_or_default();
        // `text_fmt`: formatted without a `String` per message.
        let line = Message::text_fmt(format_args!("{}: {text}", ws.data().name));
        ws.publish("room", line);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // `publish_to_self`: the sender gets its own messages too, so one client sees the room work.
    let layer = WebSocketLayer::new(Chat).config(Config::default().publish_to_self(true));
    let _hub = layer.hub(); // publish from any task: _hub.publish("room", "hello")
    let app = Router::new()
        .route(
            "/ws",
            any(|up: Upgrade<User>| async move { up.accept(User { name: "ada".into() }) }),
        )
        .layer(layer);
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/ws", listener.local_addr()?);
    wshub::serve(listener, app).await
}
