//! One topic: its subscribers and the fan-out of a publish.
//!
//! Subscribers read one of three lanes: plain frames shared by every socket
//! without compression, frames compressed once by the shared compressor and
//! shared by every socket using it, or frames made for that socket alone (a
//! dedicated compressor, or a smaller window than the shared one). A publish
//! appends to each shared lane's batch once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use bytes::{Bytes, BytesMut};
use foldhash::HashMap;

use super::{Lane, Subscriber};
use crate::Message;
use crate::deflate::compress_shared;
use crate::hub::Published;
use crate::outbox::{Batch, COPY_LIMIT};
use crate::protocol::frame::OpCode;
use crate::protocol::{encode_header, encode_message_frame};
use crate::telemetry;
use crate::{SendStatus, wake};

/// A named topic and the sockets subscribed to it.
pub(crate) struct Topic {
    name: Arc<str>,
    /// How many members, readable without the lock (written under it).
    count: AtomicUsize,
    state: Mutex<State>,
}

struct Member {
    socket: Arc<dyn Subscriber>,
    lane: Lane,
}

impl Member {
    fn id(&self) -> u64 {
        self.socket.id()
    }
}

/// One lane many subscribers share: where its frames are appended now.
#[derive(Default)]
struct SharedLane {
    batch: Option<Arc<Batch>>,
    members: usize,
}

#[derive(Default)]
struct State {
    members: Vec<Member>,
    /// Socket id → position in `members`, for O(1) removal.
    index: HashMap<u64, usize>,
    plain: SharedLane,
    deflate: SharedLane,
    /// Members that get frames made for them alone.
    own: usize,
    /// Dropped from the hub's map once empty: joining it again means finding
    /// (or making) the topic anew.
    removed: bool,
}

impl State {
    fn shared(&mut self, lane: Lane) -> Option<&mut SharedLane> {
        match lane {
            Lane::Plain => Some(&mut self.plain),
            Lane::Deflate => Some(&mut self.deflate),
            Lane::Own => None,
        }
    }
}

impl Topic {
    pub(crate) fn new(name: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            name,
            count: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a subscriber; false if the topic was removed from the hub meanwhile.
    pub(crate) fn add(&self, socket: Arc<dyn Subscriber>) -> Joined {
        let mut state = self.lock();
        if state.removed {
            return Joined::Gone;
        }
        let id = socket.id();
        if state.index.contains_key(&id) {
            return Joined::Already;
        }
        {
            let lane = socket.lane();
            match state.shared(lane) {
                Some(shared) => shared.members += 1,
                None => state.own += 1,
            }
            let at = state.members.len();
            state.members.push(Member { socket, lane });
            state.index.insert(id, at);
            self.count.store(state.members.len(), Ordering::Release);
        }
        Joined::Now(state.members.len())
    }

    /// Removes a subscriber; returns whether it was one, and how many are
    /// left.
    pub(crate) fn remove(&self, id: u64) -> (bool, usize) {
        let mut state = self.lock();
        let index = state.index.remove(&id);
        let was_member = index.is_some();
        if let Some(at) = index {
            let gone = state.members.swap_remove(at);
            match state.shared(gone.lane) {
                Some(shared) => {
                    shared.members -= 1;
                    // Its cursor must not count for the members that remain;
                    // what it covers so far stays queued and is delivered.
                    if let Some(batch) = &shared.batch {
                        gone.socket.outbox().leave_batch(batch);
                    }
                }
                None => state.own -= 1,
            }
            if let Some(moved) = state.members.get(at) {
                let moved = moved.id();
                state.index.insert(moved, at);
            }
            self.count.store(state.members.len(), Ordering::Release);
        }
        if state.members.is_empty() {
            *state = State::default();
        }
        (was_member, state.members.len())
    }

    /// Marks the topic removed if it is still empty; returns whether it did.
    pub(crate) fn remove_if_empty(&self) -> bool {
        let mut state = self.lock();
        state.removed = state.members.is_empty();
        state.removed
    }

    /// How many sockets are subscribed (without taking the lock).
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Frames `payload` once per lane and queues it to every subscriber but
    /// `exclude`, compressed for those that negotiated it if `compress`;
    /// returns how many it reached.
    pub(crate) fn publish(&self, message: &Message, exclude: Option<u64>, compress: bool) -> usize {
        let message = Publish {
            message: message.clone(),
            compress,
        };
        self.publish_run(std::slice::from_ref(&message), exclude)
    }

    /// Publishes `run` (messages from one sender, in order) under one lock
    /// of the topic: consecutive small frames go into each shared lane's
    /// batch in one append. Returns how many subscribers the last message
    /// reached.
    pub(crate) fn publish_run(&self, run: &[Publish], exclude: Option<u64>) -> usize {
        let mut wake = Vec::new();
        let reached = self.publish_locked(run, exclude, &mut wake, None);
        wake::wake_all(wake);
        reached
    }

    /// [`publish`](Self::publish), telling for each subscriber reached
    /// whether it got the message with nothing unsent ahead of it, behind
    /// backpressure, or not at all (over its limit, or closing).
    pub(crate) fn publish_counted(
        &self,
        message: &Message,
        exclude: Option<u64>,
        compress: bool,
    ) -> Published {
        let message = Publish {
            message: message.clone(),
            compress,
        };
        let mut tally = Published::default();
        let mut wake = Vec::new();
        self.publish_locked(
            std::slice::from_ref(&message),
            exclude,
            &mut wake,
            Some(&mut tally),
        );
        wake::wake_all(wake);
        tally
    }

    /// [`publish_run`](Self::publish_run) under the topic's lock;
    /// subscribers to wake once it is released go to `wake`.
    fn publish_locked(
        &self,
        run: &[Publish],
        exclude: Option<u64>,
        wake: &mut Vec<Waker>,
        mut tally: Option<&mut Published>,
    ) -> usize {
        let mut state = self.lock();
        let state = &mut *state;
        let sender = exclude.and_then(|id| state.index.get(&id)).map(|&at| {
            (
                Arc::clone(&state.members[at].socket),
                state.members[at].lane,
            )
        });
        let mut reached = 0;
        if state.own > 0 {
            for message in run {
                reached = state
                    .members
                    .iter()
                    .filter(|m| m.lane == Lane::Own && Some(m.id()) != exclude)
                    .filter(|m| {
                        let sent = m.socket.send_own(
                            message.opcode(),
                            message.payload(),
                            message.compress,
                        );
                        if let Some(tally) = tally.as_deref_mut() {
                            tally.add(sent);
                        }
                        sent != SendStatus::Dropped
                    })
                    .count();
                telemetry::delivered(reached);
            }
        }
        let plain: Vec<Frame<'_>> = run
            .iter()
            .map(|m| Frame {
                opcode: m.opcode(),
                payload: m.payload(),
                compressed: false,
            })
            .collect();
        let lanes = Lanes {
            members: &state.members,
            sender: sender.as_ref(),
        };
        let mut last = lanes.fan_out_run(
            &mut state.plain,
            Lane::Plain,
            &plain,
            wake,
            tally.as_deref_mut(),
        );
        if state.deflate.members
            > usize::from(sender.as_ref().is_some_and(|s| s.1 == Lane::Deflate))
        {
            let compressed: Vec<Option<Bytes>> = run
                .iter()
                .map(|m| {
                    m.compress
                        .then(|| compress_shared(15, m.payload()))
                        .flatten()
                })
                .collect();
            let frames: Vec<Frame<'_>> = plain
                .iter()
                .zip(&compressed)
                .map(|(plain, compressed)| match compressed {
                    Some(payload) => Frame {
                        opcode: plain.opcode,
                        payload,
                        compressed: true,
                    },
                    None => *plain,
                })
                .collect();
            last += lanes.fan_out_run(&mut state.deflate, Lane::Deflate, &frames, wake, tally);
        }
        reached + last
    }
}

/// What [`Topic::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Joined {
    /// The topic emptied and left the hub: subscribe anew.
    Gone,
    /// The socket already was a subscriber.
    Already,
    /// The socket joined; the topic's subscribers now.
    Now(usize),
}

/// One message of a published run.
#[derive(Debug, Clone)]
pub(crate) struct Publish {
    pub(crate) message: Message,
    pub(crate) compress: bool,
}

impl Publish {
    fn opcode(&self) -> OpCode {
        if self.message.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        }
    }

    fn payload(&self) -> &Bytes {
        self.message.payload()
    }
}

/// The members of a topic and the sender of a run, for fanning out a run
/// through a shared lane.
struct Lanes<'a> {
    members: &'a [Member],
    sender: Option<&'a (Arc<dyn Subscriber>, Lane)>,
}

impl Lanes<'_> {
    /// Queues `frames` in order to the members reading `kind`: runs of
    /// small frames through the lane's batch in one append, each large
    /// frame on its own. Returns how many the last frame reached.
    fn fan_out_run(
        &self,
        lane: &mut SharedLane,
        kind: Lane,
        frames: &[Frame<'_>],
        wake: &mut Vec<Waker>,
        mut tally: Option<&mut Published>,
    ) -> usize {
        let mut reached = 0;
        let mut rest = frames;
        while !rest.is_empty() {
            let small = rest
                .iter()
                .take_while(|f| f.payload.len() <= COPY_LIMIT)
                .count();
            let take = small.max(1);
            let last = take == rest.len();
            let count = if last { tally.as_deref_mut() } else { None };
            reached = fan_out(
                self.members,
                lane,
                kind,
                &rest[..take],
                self.sender,
                wake,
                count,
            );
            telemetry::delivered(reached * take);
            rest = &rest[take..];
        }
        reached
    }
}

/// One frame to publish.
#[derive(Clone, Copy)]
struct Frame<'a> {
    opcode: OpCode,
    payload: &'a Bytes,
    compressed: bool,
}

/// Queues `frames` (one large frame, or small ones) to the members reading
/// `kind` through `lane`'s batch, skipping `sender`; returns how many it
/// reached.
///
/// While every recipient's outbox holds an open cursor into the batch, this
/// appends the frame and touches no subscriber at all (it only wakes those
/// parked at the batch's end); the first publish into a batch opens the
/// cursors (skipping sockets that are closing or over their backpressure
/// limit).
fn fan_out(
    members: &[Member],
    lane: &mut SharedLane,
    kind: Lane,
    frames: &[Frame<'_>],
    sender: Option<&(Arc<dyn Subscriber>, Lane)>,
    wake: &mut Vec<Waker>,
    mut tally: Option<&mut Published>,
) -> usize {
    let sender = sender
        .filter(|(_, lane)| *lane == kind)
        .map(|(socket, _)| socket);
    let exclude = sender.map(|s| s.id());
    let recipients = lane.members - usize::from(sender.is_some());
    if recipients == 0 {
        return 0;
    }
    let readers = || {
        members
            .iter()
            .filter(move |m| m.lane == kind && Some(m.id()) != exclude)
    };
    if frames.len() == 1 && frames[0].payload.len() > COPY_LIMIT {
        let frame = &frames[0];
        // Large payloads are shared as they are, behind one shared header.
        let mut head = BytesMut::new();
        encode_header(
            &mut head,
            frame.opcode,
            frame.compressed,
            frame.payload.len(),
        );
        let head = head.freeze();
        return readers()
            .filter(|m| {
                let sent = m
                    .socket
                    .outbox()
                    .push(head.clone(), Some(frame.payload.clone()));
                if let Some(tally) = tally.as_deref_mut() {
                    tally.add(sent);
                }
                !matches!(sent, SendStatus::Dropped)
            })
            .count();
    }
    // The sender's own message must fall outside its cursor.
    if let (Some(sender), Some(batch)) = (sender, &lane.batch) {
        sender.outbox().leave_batch(batch);
    }
    // A frame's header is at most 10 bytes (a server sends no mask).
    let size = frames.iter().map(|f| f.payload.len() + 10).sum();
    let write = |buf: &mut BytesMut| {
        for frame in frames {
            encode_message_frame(buf, frame.opcode, frame.compressed, frame.payload, None);
        }
    };
    let (batch, appended) = loop {
        if let Some(batch) = &lane.batch {
            if let Some(appended) = batch.append(recipients, size, write) {
                break (Arc::clone(batch), appended);
            }
        }
        lane.batch = Some(Batch::new());
    };
    wake.extend(appended.parked);
    let reached = if appended.all_covered {
        // Every recipient reads the batch through its open cursor.
        if let Some(tally) = tally {
            for m in readers() {
                tally.add(m.socket.outbox().status_of_queued());
            }
        }
        recipients
    } else {
        readers()
            .filter(|m| {
                let joined = m.socket.outbox().join_batch(&batch, &appended.range);
                if let Some(tally) = tally.as_deref_mut() {
                    tally.add(if joined {
                        m.socket.outbox().status_of_queued()
                    } else {
                        SendStatus::Dropped
                    });
                }
                joined
            })
            .count()
    };
    if let Some(sender) = sender {
        sender.outbox().rejoin_batch(&batch, appended.range.end);
    }
    reached
}
