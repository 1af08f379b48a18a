//! Socket loops: the sockets of wshub's own server run many to a tokio
//! task, as uWebSockets runs them many to a thread, not one task each.
//!
//! Each runtime gets one loop per worker thread, made when its first socket
//! arrives. A loop is one tokio task that owns an epoll instance (a `mio`
//! `Poll`, itself registered with tokio's reactor as one descriptor) and
//! the futures of its sockets. An upgraded TCP stream leaves tokio's
//! reactor for its loop's epoll; the loop turns epoll events into the
//! readiness of each stream ([`LoopStream`]) and polls the sockets whose
//! futures were woken.
//!
//! What it saves an idle socket: tokio's task cell (384 bytes, aligned to
//! 128) and tokio's I/O registration (256, aligned to 128), with the
//! fragments glibc leaves around such aligned blocks. What it costs
//! instead: the socket's future in a box, the loop's node for it, and a
//! 48-byte readiness slot.
//!
//! What it does to threads: sockets are spread over the loops in turn, a
//! loop runs its sockets one after another, and tokio moves whole loops
//! between worker threads, not single sockets. Sockets colocated under one
//! key ([`Upgrade::colocate`](crate::Upgrade::colocate)) go to one loop
//! instead, while any of them is open; a new key goes to the loop with the
//! fewest keys. A publish that reaches subscribers in several loops wakes
//! each loop once, however many of its sockets it reached. A loop wakes
//! another through that loop's epoll (an eventfd), not through tokio's
//! waker: tokio runs a task woken from a worker thread next on that same
//! thread, in a slot other workers cannot steal from, so the woken loop
//! would wait for the waking one to finish and two loops would take turns
//! on one thread. Through epoll, the wake
//! reaches the idle worker that waits on tokio's reactor, and the two
//! loops run at once.
//!
//! Other streams (TLS, HTTP/2, hyper's `Upgraded` behind another server,
//! the client's) keep a task each: they live on tokio's reactor.

mod stream;

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::CatchUnwind;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use futures_util::task::AtomicWaker;
use mio::{Interest, Token};
use tokio::io::unix::AsyncFd;
use tokio::runtime::{self, Handle};

pub(crate) use self::stream::LoopStream;
use self::stream::{IoSlot, READ_CLOSED, READABLE, WRITABLE, WRITE_CLOSED};

/// A socket's whole life, as its loop runs it.
pub(crate) type SocketFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Epoll events taken per look.
const EVENTS: usize = 256;
/// Looks at epoll per poll of the loop before it lets its sockets run.
const LOOKS: usize = 4;

/// The epoll token of a loop's own wake-up (an eventfd).
const SIGNAL: Token = Token(usize::MAX);

thread_local! {
    /// The loop this thread is polling, if any (its `Shared`'s address).
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// The loops of every runtime that has some, by runtime.
static LOOPS: Mutex<Vec<RuntimeLoops>> = Mutex::new(Vec::new());

struct RuntimeLoops {
    runtime: runtime::Id,
    loops: Vec<Arc<Shared>>,
    next: usize,
}

/// A handle to a loop, to start a socket on it.
pub(crate) struct Loop(Arc<Shared>);

impl Loop {
    /// Runs `socket` on this loop. A panic out of it (a bug: handler
    /// panics are caught inside) ends that socket alone.
    pub(crate) fn spawn(&self, socket: SocketFuture) {
        lock(&self.0.joining).push(socket);
        if self.0.closed.load(Ordering::Acquire) {
            // The loop's task is gone (its runtime is shutting down): the
            // socket ends here, as a task spawned then would.
            drop(self.0.take_joining());
            return;
        }
        self.0.waker.wake();
    }
}

/// Moves `tcp` from tokio's reactor to a loop of the current runtime: the
/// loop of the open sockets of `group`, if it has some (see
/// [`Upgrade::colocate`](crate::Upgrade::colocate)). Must be called inside
/// a runtime.
pub(crate) fn adopt(tcp: tokio::net::TcpStream, group: Option<u64>) -> std::io::Result<LoopStream> {
    let home = pick(group)?;
    let std = tcp.into_std()?;
    let mut io = mio::net::TcpStream::from_std(std);
    let slot = Arc::new(IoSlot::new());
    let key = home.insert(Arc::clone(&slot), group);
    let interest = Interest::READABLE | Interest::WRITABLE;
    if let Err(error) = home
        .registry
        .register(&mut io, Token(key as usize), interest)
    {
        home.release(key);
        return Err(error);
    }
    Ok(LoopStream::new(io, slot, key, home))
}

/// A loop of the current runtime for a new socket: the loop of `group`'s
/// open sockets if it has some; else a new loop if the runtime has fewer
/// than one per worker thread; else, for a new group, the loop with the
/// fewest groups (of those, the fewest sockets), and for a socket in no
/// group the next loop in turn.
///
/// Groups before sockets: the first sockets of rooms that open together
/// find socket counts that are still changing, and would pile up on one
/// loop; counted by groups, the rooms spread evenly.
fn pick(group: Option<u64>) -> std::io::Result<Arc<Shared>> {
    let handle = Handle::try_current().map_err(std::io::Error::other)?;
    let runtime = handle.id();
    let mut all = lock(&LOOPS);
    // Loops whose task is gone (their runtime shut down) are forgotten.
    all.retain_mut(|entry| {
        entry
            .loops
            .retain(|shared| !shared.closed.load(Ordering::Acquire));
        !entry.loops.is_empty() || entry.runtime == runtime
    });
    let index = match all.iter().position(|entry| entry.runtime == runtime) {
        Some(index) => index,
        None => {
            all.push(RuntimeLoops {
                runtime,
                loops: Vec::new(),
                next: 0,
            });
            all.len() - 1
        }
    };
    let entry = &mut all[index];
    if let Some(group) = group {
        if let Some(home) = entry.loops.iter().find(|l| l.hosts(group)) {
            return Ok(Arc::clone(home));
        }
    }
    let workers = handle.metrics().num_workers().max(1);
    if entry.loops.len() < workers {
        let shared = start(&handle)?;
        entry.loops.push(Arc::clone(&shared));
        return Ok(shared);
    }
    if group.is_some() {
        if let Some(least) = entry.loops.iter().min_by_key(|l| l.load()) {
            return Ok(Arc::clone(least));
        }
    }
    entry.next = entry.next.wrapping_add(1);
    Ok(Arc::clone(&entry.loops[entry.next % entry.loops.len()]))
}

/// Starts a loop's task on `handle`'s runtime.
fn start(handle: &Handle) -> std::io::Result<Arc<Shared>> {
    let poll = mio::Poll::new()?;
    let registry = poll.registry().try_clone()?;
    let signal = mio::Waker::new(&registry, SIGNAL)?;
    // tokio 1.54 deprecates this safe constructor for the `unsafe`
    // `register_with_interest`, whose contract is that the descriptor stays
    // open and the same while registered: a `mio::Poll` owns its epoll
    // descriptor from creation to drop and never replaces it, so the
    // contract holds and the crate stays free of `unsafe`.
    #[expect(
        deprecated,
        reason = "the safe constructor; its contract holds, see above"
    )]
    let poll = AsyncFd::with_interest(poll, tokio::io::Interest::READABLE)?;
    let shared = Arc::new(Shared {
        registry,
        slots: Mutex::new(Slots::default()),
        joining: Mutex::new(Vec::new()),
        waker: AtomicWaker::new(),
        signal,
        signalled: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    });
    handle.spawn(LoopTask {
        sockets_waker: Waker::from(Arc::clone(&shared)),
        shared: Arc::clone(&shared),
        poll,
        events: mio::Events::with_capacity(EVENTS),
        sockets: FuturesUnordered::new(),
        woken: Vec::new(),
    });
    Ok(shared)
}

/// What a loop shares with the threads that hand it sockets.
///
/// Lock order: `joining` and `slots` are never held together, nor while a
/// waker runs. `pick` takes `slots` while it holds `LOOPS`; nothing takes
/// `LOOPS` while it holds `slots`.
pub(super) struct Shared {
    /// Registers streams with the loop's epoll from any thread.
    registry: mio::Registry,
    /// Readiness slots by key (the epoll token).
    slots: Mutex<Slots>,
    /// Sockets handed over, not yet polled.
    joining: Mutex<Vec<SocketFuture>>,
    /// The loop task's waker.
    waker: AtomicWaker,
    /// Wakes the loop through its epoll, from another loop.
    signal: mio::Waker,
    /// `signal` was used since the loop last looked at its epoll and
    /// before its sockets' next pass (see `LoopTask::poll`).
    signalled: AtomicBool,
    /// The loop's task is gone.
    closed: AtomicBool,
}

impl Shared {
    fn insert(&self, slot: Arc<IoSlot>, group: Option<u64>) -> u32 {
        lock(&self.slots).insert(slot, group)
    }

    /// Whether some open socket of `group` runs on this loop.
    fn hosts(&self, group: u64) -> bool {
        lock(&self.slots).groups.contains_key(&group)
    }

    /// How many open sockets run on this loop.
    #[cfg(test)]
    fn sockets(&self) -> usize {
        lock(&self.slots).open()
    }

    /// How busy a new group would find this loop: its groups, then its
    /// open sockets.
    fn load(&self) -> (usize, usize) {
        let slots = lock(&self.slots);
        (slots.groups.len(), slots.open())
    }

    /// The sockets handed over since the last look, out of the lock (they
    /// are polled or dropped after it is let go).
    fn take_joining(&self) -> Vec<SocketFuture> {
        std::mem::take(&mut *lock(&self.joining))
    }

    /// Forgets a key's slot (its stream is gone).
    fn release(&self, key: u32) {
        lock(&self.slots).remove(key);
    }
}

/// The waker the loop's sockets get: wakes the loop's task through
/// tokio, or through its epoll when another loop wakes it (see the module's
/// docs).
impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let current = CURRENT.get();
        if current == 0 || current == Arc::as_ptr(self) as usize {
            self.waker.wake();
        } else if !self.signalled.swap(true, Ordering::AcqRel) {
            if let Err(error) = self.signal.wake() {
                tracing::debug!(%error, "cannot signal a socket loop; waking it through tokio");
                self.waker.wake();
            }
        }
    }
}

/// Readiness slots, with the keys of removed ones reused, and how many of
/// the loop's sockets each colocation group has.
#[derive(Default)]
struct Slots {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Open sockets per group; a group leaves with its last socket.
    groups: HashMap<u64, usize>,
}

/// One stream's slot, and its socket's group.
struct Entry {
    slot: Arc<IoSlot>,
    group: Option<u64>,
}

impl Slots {
    fn insert(&mut self, slot: Arc<IoSlot>, group: Option<u64>) -> u32 {
        if let Some(group) = group {
            *self.groups.entry(group).or_default() += 1;
        }
        let entry = Some(Entry { slot, group });
        match self.free.pop() {
            Some(key) => {
                self.slots[key as usize] = entry;
                key
            }
            None => {
                self.slots.push(entry);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    fn remove(&mut self, key: u32) {
        let Some(entry) = self.slots.get_mut(key as usize).and_then(Option::take) else {
            return;
        };
        self.free.push(key);
        if let Some(group) = entry.group {
            if let Some(count) = self.groups.get_mut(&group) {
                *count -= 1;
                if *count == 0 {
                    self.groups.remove(&group);
                }
            }
        }
    }

    fn get(&self, key: usize) -> Option<&IoSlot> {
        Some(&self.slots.get(key)?.as_ref()?.slot)
    }

    /// How many slots are taken: the loop's open sockets.
    fn open(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// The loop's task.
struct LoopTask {
    shared: Arc<Shared>,
    /// `shared` as a waker, made once (so `FuturesUnordered` keeps it).
    sockets_waker: Waker,
    poll: AsyncFd<mio::Poll>,
    events: mio::Events,
    sockets: FuturesUnordered<CatchUnwind<AssertUnwindSafe<SocketFuture>>>,
    /// Wakers of streams made ready by one look at epoll, called once the
    /// slots are unlocked.
    woken: Vec<Waker>,
}

impl Future for LoopTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.shared.waker.register(cx.waker());
        for socket in this.shared.take_joining() {
            this.sockets.push(AssertUnwindSafe(socket).catch_unwind());
        }
        this.look(cx);
        // Let other loops signal again only now, after the look and before
        // the sockets run. Cleared before the look, a signal sent between
        // the clearing and the look would be taken by it and leave the flag
        // set, and every later wake-up from another loop would be skipped:
        // the loop would sleep with woken sockets. Cleared here, a wake-up
        // that finds the flag set was queued before this point, and the
        // sockets' pass below sees it; one that finds it clear signals, and
        // the look after this pass finds the signal. A swap, not a store: it
        // reads the wake-up's own swap, so what that wake-up queued is
        // visible to the pass.
        this.shared.signalled.swap(false, Ordering::AcqRel);
        let outer = CURRENT.replace(Arc::as_ptr(&this.shared) as usize);
        let mut sockets_cx = Context::from_waker(&this.sockets_waker);
        // One turn for the whole pass: what its sockets publish is delivered
        // once it ends, and the other loops it reaches are woken then, once.
        crate::driver::turn::run(|| {
            // `FuturesUnordered` yields (and wakes this task) after polling
            // each of its futures once: a busy socket cannot starve the others.
            while let Poll::Ready(Some(result)) = this.sockets.poll_next_unpin(&mut sockets_cx) {
                if let Err(panic) = result {
                    let message = crate::driver::panic_message(&*panic);
                    tracing::error!(panic = %message, "a WebSocket connection's task panicked");
                }
            }
        });
        CURRENT.set(outer);
        // A loop lives as long as its runtime.
        Poll::Pending
    }
}

impl LoopTask {
    /// Takes epoll's events and marks the streams they name ready.
    fn look(&mut self, cx: &mut Context<'_>) {
        for _ in 0..LOOKS {
            let mut guard = match self.poll.poll_read_ready_mut(cx) {
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(error)) => {
                    tracing::error!(%error, "a socket loop cannot wait for its epoll");
                    return;
                }
                Poll::Pending => return,
            };
            match guard
                .get_inner_mut()
                .poll(&mut self.events, Some(Duration::ZERO))
            {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    tracing::error!(%error, "a socket loop cannot read its epoll");
                    return;
                }
            }
            let mut taken = 0;
            {
                let slots = lock(&self.shared.slots);
                for event in &self.events {
                    taken += 1;
                    if event.token() == SIGNAL {
                        // Another loop's wake: this poll runs the sockets.
                        continue;
                    }
                    let mut bits = 0;
                    if event.is_readable() {
                        bits |= READABLE;
                    }
                    if event.is_read_closed() || event.is_error() {
                        bits |= READ_CLOSED;
                    }
                    if event.is_writable() {
                        bits |= WRITABLE;
                    }
                    if event.is_write_closed() || event.is_error() {
                        bits |= WRITE_CLOSED;
                    }
                    if let Some(waker) = slots.get(event.token().0).and_then(|slot| slot.set(bits))
                    {
                        self.woken.push(waker);
                    }
                }
            }
            for waker in self.woken.drain(..) {
                waker.wake();
            }
            if taken < EVENTS {
                // Drained: wait for epoll's next event (tokio keeps one
                // that came after the look).
                guard.clear_ready();
            }
        }
        // Still more: look again once the sockets ran.
        cx.waker().wake_by_ref();
    }
}

impl Drop for LoopTask {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        // The sockets go first (each leaves its hub and its slot) while
        // the loop's epoll still exists.
        self.sockets.clear();
        drop(self.shared.take_joining());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    use tokio::io::{AsyncRead as _, AsyncReadExt as _, AsyncWriteExt as _, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::driver::Transport;

    /// A connected pair: the server's end moved to a loop, the client's
    /// end on tokio.
    async fn pair() -> (LoopStream, TcpStream) {
        pair_in(None).await
    }

    /// A pair whose server end joins `group`.
    async fn pair_in(group: Option<u64>) -> (LoopStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (adopt(server, group).unwrap(), client)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_shares_a_loop_and_groups_spread_over_the_loops() {
        let home = |stream: &LoopStream| stream.home().0;
        let (room_a1, _c1) = pair_in(Some(1)).await;
        let (lone, _c2) = pair().await;
        let (room_b1, _c3) = pair_in(Some(2)).await;
        let (room_a2, _c4) = pair_in(Some(1)).await;
        let (room_a3, _c5) = pair_in(Some(1)).await;
        let (room_b2, _c6) = pair_in(Some(2)).await;
        // Each group on one loop, whatever came between its sockets.
        assert!(Arc::ptr_eq(&home(&room_a1), &home(&room_a2)));
        assert!(Arc::ptr_eq(&home(&room_a1), &home(&room_a3)));
        assert!(Arc::ptr_eq(&home(&room_b1), &home(&room_b2)));
        // Two groups on a runtime of two workers: a loop each.
        assert!(!Arc::ptr_eq(&home(&room_a1), &home(&room_b1)));
        assert_eq!(home(&room_a1).sockets(), 3);
        assert!(home(&room_a1).hosts(1) && !home(&room_a1).hosts(2));
        // The lone socket took the second loop in turn; the second group
        // went to the loop with as few sockets but no group.
        assert!(Arc::ptr_eq(&home(&lone), &home(&room_b1)));
        assert_eq!(home(&room_b1).sockets(), 3);

        // The group leaves its loop with its last socket; it comes back on
        // the loop with the fewest groups: its old one, now empty.
        let a = home(&room_a1);
        drop((room_a1, room_a2));
        assert!(a.hosts(1), "one socket of the group is still open");
        drop(room_a3);
        assert!(!a.hosts(1));
        assert_eq!(a.sockets(), 0);
        let (room_a4, _c7) = pair_in(Some(1)).await;
        assert!(Arc::ptr_eq(&home(&room_a4), &a));
        assert!(a.hosts(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_looped_stream_reads_writes_and_sees_the_peer_close() {
        let (stream, client) = pair().await;
        let home = stream.home();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        home.spawn(Box::pin(async move {
            let mut stream = Transport::Looped(stream);
            let mut buf = vec![0; 1 << 20];
            let mut total = 0;
            // Echo everything until the peer closes; big enough to fill
            // both kernel buffers, so reads and writes wait for epoll.
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                stream.write_all(&buf[..n]).await.unwrap();
                total += n;
            }
            stream.shutdown().await.unwrap();
            let _ = done_tx.send(total);
        }));
        let data: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        let (mut read, mut write) = client.into_split();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            write.write_all(&sent).await.unwrap();
            write.shutdown().await.unwrap();
        });
        let mut echoed = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut echoed))
            .await
            .expect("the echo ends: the socket saw the peer's close")
            .unwrap();
        writer.await.unwrap();
        assert_eq!(done_rx.await.unwrap(), data.len());
        assert!(echoed == data, "the echo differs from what was sent");
    }

    /// The peer's last bytes and its FIN arrive together, and the loop
    /// looks at epoll (taking their one event) before the socket reads.
    /// The read returns the bytes, stopping short of the end; the next
    /// read must still find the end, though no event will come for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_end_is_seen_after_a_read_that_stopped_short_of_it() {
        let (stream, mut client) = pair().await;
        let home = stream.home();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        home.spawn(Box::pin(async move {
            let mut stream = Transport::Looped(stream);
            let mut buf = vec![0; 64];
            // Parked on an empty stream first: the slot's `READABLE` goes.
            let first = std::future::poll_fn(|cx| {
                let mut read = ReadBuf::new(&mut buf);
                Poll::Ready(Pin::new(&mut stream).poll_read(cx, &mut read).is_pending())
            })
            .await;
            assert!(first, "nothing to read yet");
            // Woken by the test, not by the stream: the loop's look before
            // this poll takes the event of the bytes and the FIN.
            go_rx.await.unwrap();
            let mut got = Vec::new();
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let _ = done_tx.send(got);
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write_all(b"last words").await.unwrap();
        client.shutdown().await.unwrap();
        // Loopback delivers both inside the calls; let the loop's epoll
        // have them before the socket runs.
        tokio::time::sleep(Duration::from_millis(50)).await;
        go_tx.send(()).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), done_rx)
            .await
            .expect("the socket read to the end")
            .unwrap();
        assert_eq!(got, b"last words");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_runtime_gets_one_loop_per_worker_and_spreads_sockets_over_them() {
        let mut streams = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..8 {
            let (stream, client) = pair().await;
            streams.push(stream);
            clients.push(client);
        }
        let mut homes: Vec<usize> = streams
            .iter()
            .map(|stream| Arc::as_ptr(&stream.home().0) as usize)
            .collect();
        homes.sort_unstable();
        homes.dedup();
        assert_eq!(homes.len(), 4, "8 sockets on 4 workers: 4 loops");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_out_of_a_socket_ends_that_socket_alone() {
        let (stream, _client) = pair().await;
        let home = stream.home();
        home.spawn(Box::pin(async move {
            let _stream = stream;
            tokio::task::yield_now().await;
            panic!("a bug in a socket's future");
        }));
        let polls = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let counted = Arc::clone(&polls);
        home.spawn(Box::pin(async move {
            for _ in 0..100 {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            let _ = done_tx.send(());
        }));
        tokio::time::timeout(Duration::from_secs(10), done_rx)
            .await
            .expect("the other socket of the loop went on")
            .unwrap();
        assert_eq!(polls.load(Ordering::Relaxed), 100);
        assert!(!home.0.closed.load(Ordering::Acquire), "the loop lives on");
    }

    #[test]
    fn a_dropped_runtime_closes_its_loops_and_the_next_one_gets_new_ones() {
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (home, client) = first.block_on(async {
            let (stream, client) = pair().await;
            let home = stream.home();
            home.spawn(Box::pin(async move {
                let _stream = stream;
                std::future::pending::<()>().await;
            }));
            tokio::task::yield_now().await;
            (home, client)
        });
        drop(first);
        assert!(home.0.closed.load(Ordering::Acquire), "the loop ended");
        // The socket's stream went with it: the peer sees the close.
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        second.block_on(async {
            let mut client = TcpStream::from_std(client.into_std().unwrap()).unwrap();
            let mut buf = [0; 16];
            assert_eq!(client.read(&mut buf).await.unwrap(), 0);
            let (stream, _client) = pair().await;
            assert!(!Arc::ptr_eq(&stream.home().0, &home.0), "a new loop");
        });
    }

    /// Eight loops on two threads hand tokens to one another as fast as
    /// they can: each pass wakes the receiving socket and its loop from the
    /// passing loop's thread (the path of a publish reaching sockets on
    /// other loops), while the receiving loop may be running. A wake-up
    /// lost between loops leaves a token with a socket that never runs
    /// again, and the passing stops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wake_ups_from_other_loops_are_never_lost() {
        const LOOPS: usize = 8;
        const TOKENS: u64 = 8;
        const PASSES: u64 = 300_000;

        /// A socket's tokens, and how to wake it and its loop.
        struct Mailbox {
            tokens: AtomicU64,
            socket: AtomicWaker,
            home: Waker,
        }
        impl Mailbox {
            fn give(&self, tokens: u64) {
                self.tokens.fetch_add(tokens, Ordering::AcqRel);
                self.socket.wake();
                // The loop's own waker, as a socket woken there calls it.
                self.home.wake_by_ref();
            }
        }
        let handle = Handle::current();
        let homes: Vec<Loop> = (0..LOOPS).map(|_| Loop(start(&handle).unwrap())).collect();
        let boxes: Vec<Arc<Mailbox>> = homes
            .iter()
            .map(|home| {
                Arc::new(Mailbox {
                    tokens: AtomicU64::new(0),
                    socket: AtomicWaker::new(),
                    home: Waker::from(Arc::clone(&home.0)),
                })
            })
            .collect();
        let passes = Arc::new(AtomicU64::new(0));
        for (i, home) in homes.iter().enumerate() {
            let me = Arc::clone(&boxes[i]);
            let next = Arc::clone(&boxes[(i + 1) % LOOPS]);
            let other = Arc::clone(&boxes[(i + 3) % LOOPS]);
            let passes = Arc::clone(&passes);
            home.spawn(Box::pin(std::future::poll_fn(move |cx| {
                me.socket.register(cx.waker());
                let tokens = me.tokens.swap(0, Ordering::AcqRel);
                if tokens > 0 {
                    passes.fetch_add(1, Ordering::Relaxed);
                    let half = tokens / 2;
                    if half > 0 {
                        other.give(half);
                    }
                    next.give(tokens - half);
                }
                Poll::<()>::Pending
            })));
        }
        boxes[0].give(TOKENS);
        let mut last = 0;
        let mut still = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = passes.load(Ordering::Relaxed);
            if now >= PASSES {
                break;
            }
            still = if now == last { still + 1 } else { 0 };
            // Five seconds without a pass: a loop sleeps with a woken socket.
            assert!(still < 50, "the tokens stopped after {now} passes");
            last = now;
        }
    }
}
