//! The room: who is online, and what every socket does in it.
//!
//! The browser sends plain text; the server sends JSON events:
//! `{"type":"presence","you":..,"names":[..]}` to a newcomer,
//! `{"type":"join","name":..}`, `{"type":"message","name":..,"text":..}`
//! and `{"type":"leave","name":..}` to the room.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::json;
use wshub::{Handler, Message, WebSocket};

/// The one topic every socket joins.
const LOBBY: &str = "lobby";

/// What a socket knows about its user, attached when the upgrade is accepted.
pub struct User {
    pub name: String,
}

/// The handler set, one value shared by every socket.
#[derive(Default)]
pub struct Chat {
    /// Open sockets per name. A user with several tabs open is online once:
    /// joins on the first socket and leaves with the last.
    online: Mutex<BTreeMap<String, usize>>,
}

impl Chat {
    fn online(&self) -> MutexGuard<'_, BTreeMap<String, usize>> {
        self.online.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Handler for Chat {
    type Data = User;

    async fn open(&self, ws: &WebSocket<User>) {
        let name = &ws.data().name;
        tracing::info!(user = %name, remote = ?ws.remote_addr(), "open");
        ws.subscribe(LOBBY);
        // Under the lock, so that any other socket's join comes either
        // before this one's list (and is in it) or after it, never lost.
        let mut online = self.online();
        let sockets = online.entry(name.clone()).or_default();
        *sockets += 1;
        let first = *sockets == 1;
        let names: Vec<&String> = online.keys().collect();
        ws.send(json!({"type": "presence", "you": name, "names": names}).to_string());
        if first {
            ws.publish(LOBBY, json!({"type": "join", "name": name}).to_string());
        }
    }

    async fn message(&self, ws: &WebSocket<User>, msg: Message) {
        let Some(text) = msg.as_text().map(str::trim).filter(|t| !t.is_empty()) else {
            return;
        };
        let name = &ws.data().name;
        let event = json!({"type": "message", "name": name, "text": text});
        ws.publish(LOBBY, event.to_string());
    }

    async fn close(&self, ws: &WebSocket<User>, code: u16, _reason: &str) {
        let name = &ws.data().name;
        tracing::info!(user = %name, code, "close");
        let mut online = self.online();
        let Some(sockets) = online.get_mut(name) else {
            return;
        };
        *sockets -= 1;
        if *sockets == 0 {
            online.remove(name);
            // The socket has left the topic by now; the others still hear it.
            ws.publish(LOBBY, json!({"type": "leave", "name": name}).to_string());
        }
    }
}
