//! Publishes made by a socket's handlers during one turn of its task, held
//! until the turn ends and then delivered a run at a time.
//!
//! A chat server's socket typically reads a burst of messages and publishes
//! each to its room. Delivered one by one, each publish takes the topic's
//! lock and appends to its batch; with publishers on several threads, that
//! lock and that batch bounce between cores once per message. Held to the
//! end of the turn (as uWebSockets drains its topic tree once per loop
//! iteration), consecutive publishes to one topic travel as one run: one
//! lock of the topic and one append per lane for the whole burst.
//!
//! Only a subscribed socket's `publish` is held: the socket holds the topic,
//! so the publish needs no lookup and its count is the topic's membership.
//! Order is kept: anything else that queues frames or changes membership on
//! this thread ([`deliver_staged`] at every such entry point) delivers what
//! was held first, so every subscriber sees this thread's publishes and sends
//! in the order they were made.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::HubInner;
use super::topic::{Publish, Topic};
use crate::{Message, wake};

thread_local! {
    static STAGED: RefCell<Vec<Run>> = const { RefCell::new(Vec::new()) };
    /// The payload bytes held in `STAGED`.
    static STAGED_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// The payload bytes held on this thread, not yet delivered.
pub(crate) fn staged_bytes() -> usize {
    STAGED_BYTES.get()
}

/// Consecutive publishes by one socket to one topic.
struct Run {
    hub: Arc<HubInner>,
    topic: Arc<Topic>,
    exclude: Option<u64>,
    publishes: Vec<Publish>,
}

/// Holds `msg` for `topic` until the turn running on this thread ends;
/// gives it back when no turn runs here.
pub(crate) fn stage(
    hub: &Arc<HubInner>,
    topic: &Arc<Topic>,
    exclude: Option<u64>,
    msg: Message,
    compress: bool,
) -> Result<(), Message> {
    if !wake::holding() {
        return Err(msg);
    }
    STAGED.with(|staged| {
        let Ok(mut staged) = staged.try_borrow_mut() else {
            return Err(msg);
        };
        let same = staged.last().is_some_and(|run| {
            Arc::ptr_eq(&run.topic, topic) && Arc::ptr_eq(&run.hub, hub) && run.exclude == exclude
        });
        if !same {
            staged.push(Run {
                hub: Arc::clone(hub),
                topic: Arc::clone(topic),
                exclude,
                publishes: Vec::with_capacity(16),
            });
        }
        let Some(run) = staged.last_mut() else {
            return Err(msg);
        };
        STAGED_BYTES.set(STAGED_BYTES.get() + msg.payload().len());
        run.publishes.push(Publish {
            message: msg,
            compress,
        });
        Ok(())
    })
}

/// Delivers every publish held on this thread, in order.
pub(crate) fn deliver_staged() {
    let mut runs = STAGED.with(|staged| {
        staged
            .try_borrow_mut()
            .map(|mut staged| std::mem::take(&mut *staged))
            .unwrap_or_default()
    });
    if runs.is_empty() {
        return;
    }
    STAGED_BYTES.set(0);
    for run in runs.drain(..) {
        run.topic.publish_run(&run.publishes, run.exclude);
        if let Some(bridge) = &run.hub.bridge {
            let mut messages = run.publishes.iter().map(|p| (&p.message, p.compress));
            bridge.forward_all(run.topic.name(), &mut messages);
        }
    }
    // Keep the list's allocation for this thread's next turn.
    STAGED.with(|staged| {
        if let Ok(mut staged) = staged.try_borrow_mut() {
            if staged.is_empty() {
                *staged = runs;
            }
        }
    });
}
