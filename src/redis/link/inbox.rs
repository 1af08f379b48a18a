//! What arrives on a session's subscribed channels, on its way from the
//! redis crate's connections (which read eagerly and hand over each push at
//! once) to the bridge's task: a bounded queue, and a flag for a connection
//! that closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use ::redis::aio::{AsyncPushSender, SendError};
use ::redis::{PushInfo, PushKind, Value};
use tokio::sync::{Notify, mpsc};

use super::Lost;

/// Channel messages that may wait for the task, at most; beyond that (or
/// [`MAX_WAITING_BYTES`]) one is dropped and counted. Since the redis crate
/// reads every connection eagerly, Redis's own limit on a slow
/// subscriber's output buffer never applies: this one does.
const MAX_WAITING: usize = 4096;
/// Payload bytes of the channel messages waiting, at most: Redis's default
/// hard limit for a pub/sub client's output buffer.
const MAX_WAITING_BYTES: usize = 32 << 20;

/// A message that arrived on a subscribed channel: its bytes as the redis
/// crate read them, owned, so the payload is not copied again.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) channel: Vec<u8>,
    pub(crate) payload: Vec<u8>,
}

impl Arrival {
    /// The channel and payload of a `message` or `smessage` push.
    fn from_push(info: PushInfo) -> Option<Self> {
        let mut data = info.data.into_iter();
        match (data.next(), data.next()) {
            (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) => {
                Some(Self { channel, payload })
            }
            _ => None,
        }
    }
}

/// A session's inbox and the push sender that fills it.
pub(super) fn new() -> (Pushes, Inbox) {
    let shared = Arc::new(Shared::default());
    let (queue, messages) = mpsc::channel(MAX_WAITING);
    let pushes = Pushes {
        queue,
        shared: Arc::clone(&shared),
    };
    (pushes, Inbox { messages, shared })
}

/// What the two ends share.
#[derive(Debug, Default)]
struct Shared {
    waiting_bytes: AtomicUsize,
    /// Channel messages dropped because too much was waiting.
    missed: AtomicU64,
    /// A connection of the session closed.
    closed: AtomicBool,
    closing: Notify,
}

/// The push sender given to the redis crate: channel messages into the
/// bounded queue, a closed connection into a flag; subscription
/// confirmations are dropped.
#[derive(Debug, Clone)]
pub(super) struct Pushes {
    queue: mpsc::Sender<Arrival>,
    shared: Arc<Shared>,
}

impl AsyncPushSender for Pushes {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Message | PushKind::SMessage => {
                if let Some(arrival) = Arrival::from_push(info) {
                    self.offer(arrival);
                }
            }
            PushKind::Disconnection => {
                self.shared.closed.store(true, Ordering::Release);
                self.shared.closing.notify_one();
            }
            _ => {}
        }
        Ok(())
    }
}

impl Pushes {
    /// Queues `msg` for the task, or counts it missed if too much waits.
    fn offer(&self, msg: Arrival) {
        let shared = &self.shared;
        let bytes = msg.payload.len();
        let reserved = shared
            .waiting_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                waiting
                    .checked_add(bytes)
                    .filter(|&total| total <= MAX_WAITING_BYTES)
            })
            .is_ok();
        if !reserved {
            shared.missed.fetch_add(1, Ordering::Relaxed);
        } else if self.queue.try_send(msg).is_err() {
            shared.waiting_bytes.fetch_sub(bytes, Ordering::AcqRel);
            shared.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The task's end.
#[derive(Debug)]
pub(super) struct Inbox {
    messages: mpsc::Receiver<Arrival>,
    shared: Arc<Shared>,
}

impl Inbox {
    /// The next channel message; [`Lost::Closed`] once a connection of the
    /// session closed and nothing waits. Cancel-safe.
    pub(super) async fn next(&mut self) -> Result<Arrival, Lost> {
        let msg = tokio::select! {
            biased;
            msg = self.messages.recv() => msg,
            () = self.shared.closing.notified() => None,
        };
        let msg = msg.ok_or(Lost::Closed)?;
        let bytes = msg.payload.len();
        self.shared.waiting_bytes.fetch_sub(bytes, Ordering::AcqRel);
        Ok(msg)
    }

    /// Channel messages dropped since the last call because too much was
    /// waiting.
    pub(super) fn take_missed(&self) -> u64 {
        self.shared.missed.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use ::redis::Value;

    use super::*;

    /// Hands `info` to `pushes`, which never refuses one.
    fn give(pushes: &Pushes, info: PushInfo) {
        assert!(pushes.send(info).is_ok());
    }

    fn push(kind: PushKind, payload: &[u8]) -> PushInfo {
        PushInfo {
            kind,
            data: vec![
                Value::BulkString(b"wshub:t".to_vec()),
                Value::BulkString(payload.to_vec()),
            ],
        }
    }

    #[tokio::test]
    async fn messages_wait_in_order_and_beyond_the_bound_are_counted() {
        let (pushes, mut inbox) = new();
        for i in 0..MAX_WAITING + 3 {
            let kind = if i % 2 == 0 {
                PushKind::Message
            } else {
                PushKind::SMessage
            };
            give(&pushes, push(kind, format!("{i}").as_bytes()));
        }
        give(&pushes, push(PushKind::SSubscribe, b""));
        assert_eq!(inbox.take_missed(), 3);
        for i in 0..MAX_WAITING {
            let msg = inbox.next().await.unwrap();
            assert_eq!(msg.payload, format!("{i}").as_bytes());
            assert_eq!(msg.channel, b"wshub:t");
        }
        assert_eq!(inbox.shared.waiting_bytes.load(Ordering::Relaxed), 0);
        give(&pushes, push(PushKind::Message, b"again"));
        assert_eq!(inbox.next().await.unwrap().payload, b"again");
        assert_eq!(inbox.take_missed(), 0);
    }

    #[tokio::test]
    async fn the_waiting_bytes_are_bounded_too() {
        let (pushes, mut inbox) = new();
        let big = vec![7u8; MAX_WAITING_BYTES / 2];
        for _ in 0..3 {
            give(&pushes, push(PushKind::Message, &big));
        }
        assert_eq!(inbox.take_missed(), 1);
        inbox.next().await.unwrap();
        give(&pushes, push(PushKind::Message, &big));
        assert_eq!(inbox.take_missed(), 0, "room again once one was taken");
    }

    #[tokio::test]
    async fn a_closed_connection_ends_the_inbox_after_what_waits() {
        let (pushes, mut inbox) = new();
        give(&pushes, push(PushKind::Message, b"before"));
        give(
            &pushes,
            PushInfo {
                kind: PushKind::Disconnection,
                data: Vec::new(),
            },
        );
        assert_eq!(inbox.next().await.unwrap().payload, b"before");
        assert!(matches!(inbox.next().await, Err(Lost::Closed)));
    }
}
