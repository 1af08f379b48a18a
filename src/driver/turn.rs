//! A socket task's *turn*: one poll of its future. What the turn's
//! handlers published is delivered when the turn ends, a run of messages
//! per topic under one lock of the topic (see [`crate::hub`]'s staging),
//! and the wake-ups it caused are made then, together (see [`crate::wake`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{hub, telemetry, wake};

pin_project_lite::pin_project! {
    /// Runs each poll of `fut` as a turn.
    pub(crate) struct Turn<F> {
        #[pin]
        fut: F,
    }
}

impl<F> Turn<F> {
    pub(crate) fn new(fut: F) -> Self {
        Self { fut }
    }
}

impl<F: Future> Future for Turn<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let outer = wake::hold();
        // Ends the turn even if the poll panics (a handler's panic is caught
        // inside, but a bug must not leave this thread holding anything).
        let _end = EndTurn { outer };
        self.project().fut.poll(cx)
    }
}

/// Runs `f` as one turn: a socket loop's pass over its sockets, so what
/// all of them publish in the pass is delivered together when it ends.
/// The sockets' own turns inside it end nothing.
pub(crate) fn run<R>(f: impl FnOnce() -> R) -> R {
    let outer = wake::hold();
    let _end = EndTurn { outer };
    f()
}

struct EndTurn {
    /// A turn was already running (a nested poll): it ends the turn.
    outer: bool,
}

/// Held publishes past which a socket's turn inside a loop's pass
/// delivers them, without waiting for the pass to end: subscribers start
/// writing a large burst while the pass goes on reading.
const PASS_HOLD: usize = 16 * 1024;

impl Drop for EndTurn {
    fn drop(&mut self) {
        if !self.outer {
            hub::deliver_staged();
            wake::release();
            telemetry::flush();
        } else if hub::staged_bytes() >= PASS_HOLD {
            hub::deliver_staged();
            wake::release_held();
        }
    }
}
