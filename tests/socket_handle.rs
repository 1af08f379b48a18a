//! The `WebSocket` handle used from outside the handler: sends from other
//! tasks, what `send` reports, backpressure, and the ready state through
//! the close.

mod common;

use std::time::Duration;

use common::*;
use wshub::{Config, ReadyState, SendStatus};

#[tokio::test]
async fn send_from_another_task_arrives_and_reports_the_frame_size() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;

        let status = tokio::spawn(async move { ws.send("x") }).await.unwrap();
        assert_eq!(status, SendStatus::Sent(3), "2-byte header + 1 byte");
        assert_eq!(recv(&mut client).await, Msg::text("x"));
    })
    .await;
}

#[tokio::test]
async fn sent_size_counts_each_length_encoding() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;

        assert_eq!(ws.send_binary(Vec::new()), SendStatus::Sent(2));
        assert_eq!(recv(&mut client).await, Msg::binary(Vec::new()));
        let text = "é".repeat(100);
        assert_eq!(ws.send_text(text.clone()), SendStatus::Sent(2 + 2 + 200));
        assert_eq!(recv(&mut client).await, Msg::text(text));
        let bytes = bytes_of_len(70_000);
        assert_eq!(
            ws.send_binary(bytes.clone()),
            SendStatus::Sent(2 + 8 + 70_000)
        );
        assert_eq!(recv(&mut client).await, Msg::binary(bytes));
    })
    .await;
}

#[tokio::test]
async fn sends_from_many_tasks_arrive_whole_and_in_order_per_task() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;
        const TASKS: usize = 4;
        const EACH: usize = 50;

        let senders: Vec<_> = (0..TASKS)
            .map(|task| {
                let ws = ws.clone();
                tokio::spawn(async move {
                    for i in 0..EACH {
                        assert_ne!(ws.send(format!("{task}:{i}")), SendStatus::Dropped);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }

        let mut next = [0; TASKS];
        for _ in 0..TASKS * EACH {
            let msg = recv(&mut client).await;
            let (task, i) = msg.to_text().unwrap().split_once(':').unwrap();
            let task: usize = task.parse().unwrap();
            assert_eq!(
                i.parse::<usize>().unwrap(),
                next[task],
                "task {task} out of order"
            );
            next[task] += 1;
        }
        assert_eq!(next, [EACH; TASKS]);
    })
    .await;
}

#[tokio::test]
async fn buffered_amount_returns_to_zero_once_written() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;

        ws.send_binary(bytes_of_len(1 << 20));
        assert_eq!(recv(&mut client).await.len(), 1 << 20);
        wait("the queue to empty", async {
            while ws.buffered_amount() != 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn ready_state_goes_open_closing_closed_and_later_sends_are_dropped() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;
        assert_eq!(ws.ready_state(), ReadyState::Open);

        ws.close(1000, "bye");
        assert_eq!(ws.ready_state(), ReadyState::Closing);
        assert_eq!(ws.send("after close"), SendStatus::Dropped);

        assert!(matches!(recv(&mut client).await, Msg::Close(Some(_))));
        expect_end(&mut client).await;
        events.close().await;
        assert_eq!(ws.ready_state(), ReadyState::Closed);
        assert_eq!(ws.send("after closed"), SendStatus::Dropped);
        assert_eq!(ws.ping("ping"), SendStatus::Dropped);
    })
    .await;
}

#[tokio::test]
async fn send_after_the_client_closed_is_dropped() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;

        wait("the close to be sent", client.close(None))
            .await
            .unwrap();
        events.close().await;
        assert_eq!(ws.ready_state(), ReadyState::Closed);
        assert_eq!(ws.send("too late"), SendStatus::Dropped);
    })
    .await;
}

#[tokio::test]
async fn send_after_an_abrupt_disconnect_is_dropped() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default()).await;
        let raw = RawWs::connect(addr).await;
        let ws = events.open().await;
        drop(raw);

        assert_eq!(events.close().await.0, 1006);
        assert_eq!(ws.ready_state(), ReadyState::Closed);
        // Nothing will ever write these: they must not pile up.
        assert_eq!(ws.send("nobody listens"), SendStatus::Dropped);
        assert_eq!(ws.buffered_amount(), 0);
    })
    .await;
}

#[tokio::test]
async fn sends_past_the_backpressure_limit_are_dropped_and_the_socket_stays_open() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default().backpressure_limit(1024)).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;

        // Sent back to back, before the connection's task can write anything.
        assert_eq!(ws.send_binary(bytes_of_len(2048)), SendStatus::Backpressure);
        assert_eq!(ws.send("dropped"), SendStatus::Dropped);
        assert_eq!(recv(&mut client).await.len(), 2048);
        // Still open: a later send goes through.
        send(&mut client, Msg::text("ping me")).await;
        assert_eq!(recv(&mut client).await, Msg::text("ping me"));
        assert_eq!(ws.ready_state(), ReadyState::Open);
    })
    .await;
}

#[tokio::test]
async fn drain_runs_once_the_backpressured_queue_is_written() {
    within(WAIT, async {
        let (addr, mut events) = probe_server(Config::default().backpressure_limit(1024)).await;
        let mut client = connect(addr).await;
        let ws = events.open().await;

        assert_eq!(ws.send_binary(bytes_of_len(2048)), SendStatus::Backpressure);
        assert_eq!(recv(&mut client).await.len(), 2048);
        // The client stays silent: the written queue alone must bring `drain`.
        if tokio::time::timeout(Duration::from_secs(2), events.drain())
            .await
            .is_err()
        {
            panic!("`drain` did not run within 2 s of the queue being written");
        }
        assert_eq!(ws.buffered_amount(), 0);
    })
    .await;
}

#[tokio::test]
async fn close_on_backpressure_limit_closes_with_1008() {
    within(WAIT, async {
        let config = Config::default()
            .backpressure_limit(1024)
            .close_on_backpressure_limit(true);
        let (addr, mut events) = probe_server(config).await;
        let mut raw = RawWs::connect(addr).await;
        let ws = events.open().await;

        assert_eq!(ws.send_binary(bytes_of_len(2048)), SendStatus::Backpressure);
        assert_eq!(ws.send("one too many"), SendStatus::Dropped);
        assert_eq!(raw.message().await.len(), 2048);
        assert_eq!(raw.close_frame().await.code, 1008);
        assert_eq!(ws.ready_state(), ReadyState::Closing);
    })
    .await;
}
