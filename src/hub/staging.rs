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

use std::cell::RefCell;
use std::sync::Arc;

use super::topic::{Publish, Topic};
use super::{HubInner, opcode};
use crate::{Message, wake};

thread_local! {
    static STAGED: RefCell<Vec<Run>> = const { RefCell::new(Vec::new()) };
}

/// Consecutive publishes by one socket to one topic.
struct Run {
    hub: Arc<HubInner>,
    topic: Arc<Topic>,
    exclude: Option<u64>,
    messages: Vec<(Message, bool)>,
}

/// Holds `msg` for `topic` until the turn running on this thread ends;
/// false (nothing held) when no turn runs here.
pub(crate) fn stage(
    hub: &Arc<HubInner>,
    topic: &Arc<Topic>,
    exclude: Option<u64>,
    msg: &Message,
    compress: bool,
) -> bool {
    if !wake::holding() {
        return false;
    }
    STAGED.with(|staged| {
        let Ok(mut staged) = staged.try_borrow_mut() else {
            return false;
        };
        match staged.last_mut() {
            Some(run)
                if Arc::ptr_eq(&run.topic, topic)
                    && Arc::ptr_eq(&run.hub, hub)
                    && run.exclude == exclude =>
            {
                run.messages.push((msg.clone(), compress));
            }
            _ => staged.push(Run {
                hub: Arc::clone(hub),
                topic: Arc::clone(topic),
                exclude,
                messages: vec![(msg.clone(), compress)],
            }),
        }
        true
    })
}

/// Delivers every publish held on this thread, in order.
pub(crate) fn deliver_staged() {
    let runs = STAGED.with(|staged| {
        staged
            .try_borrow_mut()
            .map(|mut staged| std::mem::take(&mut *staged))
            .unwrap_or_default()
    });
    for run in runs {
        let publishes: Vec<Publish> = run
            .messages
            .iter()
            .map(|(msg, compress)| Publish {
                opcode: opcode(msg),
                payload: msg.payload().clone(),
                compress: *compress,
            })
            .collect();
        run.topic.publish_run(&publishes, run.exclude);
        if let Some(bridge) = &run.hub.bridge {
            for (msg, compress) in &run.messages {
                bridge.forward(run.topic.name(), msg, *compress);
            }
        }
    }
}
