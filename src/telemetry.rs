//! What the crate counts through the [`metrics`](https://docs.rs/metrics)
//! facade, with the `metrics` feature: any recorder the app installs
//! (Prometheus, StatsD, …) exports them; none is forced on users. Without
//! the feature every function here is empty.
//!
//! The names are listed in the crate docs ("Metrics").
//!
//! The per-message counters cost no shared write per message: each thread
//! adds them up and hands them to the recorder when the socket task's turn
//! ends (see `driver::turn`), or at once outside a turn. Handles are taken
//! once per thread: install the recorder before the server starts.

#[cfg(feature = "metrics")]
pub(crate) use self::on::*;

#[cfg(not(feature = "metrics"))]
pub(crate) use self::off::*;

#[cfg(feature = "metrics")]
mod on {
    use std::cell::Cell;

    use metrics::{Counter, Unit, counter, describe_counter, describe_gauge, gauge};

    /// Per-message counts of this thread, not yet handed to the recorder.
    struct Tally {
        received: Cell<u64>,
        received_bytes: Cell<u64>,
        sent: Cell<u64>,
        written: Cell<u64>,
        published: Cell<u64>,
        delivered: Cell<u64>,
        dropped: Cell<u64>,
        /// Anything above is not zero.
        dirty: Cell<bool>,
    }

    /// This thread's handles on the recorder's counters.
    struct Handles {
        received: Counter,
        received_bytes: Counter,
        sent: Counter,
        written: Counter,
        published: Counter,
        delivered: Counter,
        dropped: Counter,
    }

    thread_local! {
        static TALLY: Tally = const {
            Tally {
                received: Cell::new(0),
                received_bytes: Cell::new(0),
                sent: Cell::new(0),
                written: Cell::new(0),
                published: Cell::new(0),
                delivered: Cell::new(0),
                dropped: Cell::new(0),
                dirty: Cell::new(false),
            }
        };
        static HANDLES: Handles = Handles::new();
    }

    impl Handles {
        fn new() -> Self {
            describe();
            Self {
                received: counter!("wshub_messages_received_total"),
                received_bytes: counter!("wshub_bytes_received_total"),
                sent: counter!("wshub_messages_sent_total"),
                written: counter!("wshub_bytes_written_total"),
                published: counter!("wshub_publishes_total"),
                delivered: counter!("wshub_deliveries_total"),
                dropped: counter!("wshub_dropped_total"),
            }
        }
    }

    /// Describes every metric to the recorder, once per process.
    fn describe() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            describe_counter!(
                "wshub_connections_opened_total",
                "WebSocket connections opened"
            );
            describe_counter!(
                "wshub_connections_closed_total",
                "WebSocket connections closed, by close code"
            );
            describe_gauge!("wshub_connections_open", "WebSocket connections open now");
            describe_counter!(
                "wshub_upgrades_total",
                "Server handshakes completed, by HTTP version (1.1, or 2 for RFC 8441)"
            );
            describe_counter!(
                "wshub_messages_received_total",
                "Whole messages received from peers"
            );
            describe_counter!(
                "wshub_bytes_received_total",
                Unit::Bytes,
                "Payload bytes of the messages received"
            );
            describe_counter!("wshub_messages_sent_total", "Messages queued by send");
            describe_counter!(
                "wshub_bytes_written_total",
                Unit::Bytes,
                "Bytes written to peers"
            );
            describe_counter!("wshub_publishes_total", "Messages published to topics");
            describe_counter!(
                "wshub_deliveries_total",
                "Published messages queued to a subscriber"
            );
            describe_counter!(
                "wshub_dropped_total",
                "Sends and deliveries dropped for a socket's backpressure limit"
            );
            describe_counter!(
                "wshub_backpressure_total",
                "Times a socket's queue went over its limit or its stream filled"
            );
            describe_counter!(
                "wshub_timeouts_total",
                "Sockets closed by the idle timeout or their lifetime"
            );
            describe_counter!(
                "wshub_handshake_rejections_total",
                "Upgrade requests refused, by HTTP status"
            );
            describe_gauge!("wshub_topics", "Topics with at least one subscriber");
        });
    }

    fn add(field: impl Fn(&Tally) -> &Cell<u64>, n: u64) {
        TALLY.with(|tally| {
            let cell = field(tally);
            cell.set(cell.get() + n);
            tally.dirty.set(true);
        });
        if !crate::wake::holding() {
            flush();
        }
    }

    /// Hands this thread's counts to the recorder (at the end of a turn).
    pub(crate) fn flush() {
        TALLY.with(|tally| {
            if !tally.dirty.replace(false) {
                return;
            }
            HANDLES.with(|h| {
                let pairs = [
                    (&tally.received, &h.received),
                    (&tally.received_bytes, &h.received_bytes),
                    (&tally.sent, &h.sent),
                    (&tally.written, &h.written),
                    (&tally.published, &h.published),
                    (&tally.delivered, &h.delivered),
                    (&tally.dropped, &h.dropped),
                ];
                for (cell, counter) in pairs {
                    let n = cell.replace(0);
                    if n > 0 {
                        counter.increment(n);
                    }
                }
            });
        });
    }

    /// A whole message of `bytes` arrived.
    pub(crate) fn received(bytes: usize) {
        TALLY.with(|tally| {
            tally.received.set(tally.received.get() + 1);
            tally
                .received_bytes
                .set(tally.received_bytes.get() + bytes as u64);
            tally.dirty.set(true);
        });
    }

    /// `bytes` were written to a peer.
    pub(crate) fn written(bytes: usize) {
        add(|t| &t.written, bytes as u64);
    }

    /// A send was queued.
    pub(crate) fn sent() {
        add(|t| &t.sent, 1);
    }

    /// `n` messages were published.
    pub(crate) fn published(n: usize) {
        add(|t| &t.published, n as u64);
    }

    /// `n` copies of published messages were queued to subscribers.
    pub(crate) fn delivered(n: usize) {
        if n > 0 {
            add(|t| &t.delivered, n as u64);
        }
    }

    /// A send or a delivery was dropped for backpressure.
    pub(crate) fn dropped() {
        add(|t| &t.dropped, 1);
    }

    /// A socket went over its limit or its stream filled.
    pub(crate) fn backpressure() {
        counter!("wshub_backpressure_total").increment(1);
    }

    /// A server-side handshake completed, over HTTP/2 or HTTP/1.1.
    pub(crate) fn upgraded(http2: bool) {
        describe();
        let http = if http2 { "2" } else { "1.1" };
        counter!("wshub_upgrades_total", "http" => http).increment(1);
    }

    /// A socket opened.
    pub(crate) fn opened() {
        describe();
        counter!("wshub_connections_opened_total").increment(1);
        gauge!("wshub_connections_open").increment(1.0);
    }

    /// A socket closed with `code`.
    pub(crate) fn closed(code: u16) {
        counter!("wshub_connections_closed_total", "code" => code.to_string()).increment(1);
        gauge!("wshub_connections_open").decrement(1.0);
    }

    /// A socket was closed by a timer: `"idle"` or `"lifetime"`.
    pub(crate) fn timed_out(kind: &'static str) {
        counter!("wshub_timeouts_total", "kind" => kind).increment(1);
    }

    /// An upgrade request was refused with `status`.
    pub(crate) fn rejected(status: u16) {
        counter!("wshub_handshake_rejections_total", "status" => status.to_string()).increment(1);
    }

    /// A topic got its first subscriber (`+1`) or lost its last (`-1`).
    pub(crate) fn topics(change: f64) {
        gauge!("wshub_topics").increment(change);
    }
}

#[cfg(not(feature = "metrics"))]
mod off {
    #[inline(always)]
    pub(crate) fn flush() {}
    #[inline(always)]
    pub(crate) fn received(_: usize) {}
    #[inline(always)]
    pub(crate) fn written(_: usize) {}
    #[inline(always)]
    pub(crate) fn sent() {}
    #[inline(always)]
    pub(crate) fn published(_: usize) {}
    #[inline(always)]
    pub(crate) fn delivered(_: usize) {}
    #[inline(always)]
    pub(crate) fn dropped() {}
    #[inline(always)]
    pub(crate) fn backpressure() {}
    #[inline(always)]
    pub(crate) fn upgraded(_: bool) {}
    #[inline(always)]
    pub(crate) fn opened() {}
    #[inline(always)]
    pub(crate) fn closed(_: u16) {}
    #[inline(always)]
    pub(crate) fn timed_out(_: &'static str) {}
    #[inline(always)]
    pub(crate) fn rejected(_: u16) {}
    #[inline(always)]
    pub(crate) fn topics(_: f64) {}
}
