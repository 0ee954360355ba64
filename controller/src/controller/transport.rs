//! How Raft messages leave a controller node. The Ready loop hands every
//! outgoing message to a [`Transport`]; incoming messages enter through a
//! [`RaftInbox`]. A gRPC transport (multi-voter quorum) implements the same
//! trait and feeds decoded peer messages to the inbox.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use raft::eraftpb::{Message, MessageType};

use super::node::Command;

/// Sends Raft messages to peer controllers. Delivery is best effort: Raft
/// retries whatever gets lost.
pub trait Transport: Send + 'static {
    /// Sends `msgs` (each names its recipient in `to`). Must not block for long:
    /// it runs on the Raft thread.
    fn send(&mut self, msgs: Vec<Message>);

    /// A voter or learner at `address` joined (or moved): send it messages
    /// from now on. Transports without addresses ignore it.
    fn set_peer(&mut self, _id: u64, _address: &str) {}

    /// A member left: stop sending to it.
    fn remove_peer(&mut self, _id: u64) {}
}

/// A transport that drops everything: a single voter has no peers.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopTransport;

impl Transport for NoopTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            tracing::trace!(count = msgs.len(), "no transport: dropping raft messages");
        }
    }
}

/// Where Raft messages from peers are delivered to a running controller.
#[derive(Debug, Clone)]
pub struct RaftInbox {
    pub(crate) tx: mpsc::Sender<Command>,
}

impl RaftInbox {
    /// Hands a message from a peer to the Raft thread; false if it has stopped.
    pub fn deliver(&self, msg: Message) -> bool {
        self.tx.send(Command::Raft(Box::new(msg))).is_ok()
    }
}

/// The longest the delay thread sleeps before checking whether the network
/// is still alive (bounds how long it outlives the last handle).
const DELAY_THREAD_IDLE: Duration = Duration::from_millis(20);

/// An in-process network between controllers, for tests: every message is
/// delivered straight to the recipient's inbox unless a fault is configured.
///
/// Faults, for Raft fault tests: whole-node isolation ([`isolate`](Self::isolate)),
/// one-way link cuts ([`cut`](Self::cut)), partitions
/// ([`partition`](Self::partition)), a per-message drop probability and a
/// random delivery delay. Drop and delay decisions come from a seeded RNG
/// ([`with_seed`](Self::with_seed)), so a seed replays the same sequence of
/// decisions (which message meets which decision still depends on thread
/// scheduling). Link faults are checked both when a message is sent and when
/// a delayed message is due, so a partition also stops messages in flight.
#[derive(Debug, Clone, Default)]
pub struct InMemoryNetwork {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<NetworkState>,
    /// Wakes the delay thread when an earlier message is queued.
    wake: Condvar,
}

#[derive(Debug, Default)]
struct NetworkState {
    inboxes: HashMap<u64, RaftInbox>,
    isolated: HashSet<u64>,
    /// One-way cuts: `(from, to)` links that deliver nothing.
    cuts: HashSet<(u64, u64)>,
    drop_probability: f64,
    /// Messages of these types still to be dropped, for [`InMemoryNetwork::drop_next`].
    drop_next: HashMap<MessageType, usize>,
    delay_min: Duration,
    delay_max: Duration,
    rng: SplitMix64,
    delayed: BinaryHeap<Reverse<Delayed>>,
    /// Orders delayed messages due at the same instant by send order.
    next_seq: u64,
    delay_thread: bool,
    stats: NetworkStats,
}

impl NetworkState {
    fn link_open(&self, from: u64, to: u64) -> bool {
        !self.isolated.contains(&from) && !self.isolated.contains(&to) && !self.cuts.contains(&(from, to))
    }

    fn deliver_now(&mut self, msg: Message) {
        if let Some(inbox) = self.inboxes.get(&msg.to) {
            if inbox.deliver(msg) {
                self.stats.delivered += 1;
            }
        }
    }

    /// Delivers every delayed message that is due; returns when the next is.
    fn deliver_due(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse(next)) = self.delayed.peek() {
            if next.at > now {
                return Some(next.at);
            }
            let Some(Reverse(d)) = self.delayed.pop() else { break };
            if self.link_open(d.from, d.msg.to) {
                self.deliver_now(d.msg);
            } else {
                self.stats.cut += 1;
            }
        }
        None
    }
}

/// Counters of what an [`InMemoryNetwork`] did with the messages it was
/// given, so fault tests can check that faults were really injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages lost to the random drop probability.
    pub dropped: u64,
    /// Messages lost to isolation, a cut link or a partition.
    pub cut: u64,
    /// Messages held back by the random delay.
    pub delayed: u64,
    /// Messages handed to a registered, running recipient.
    pub delivered: u64,
}

/// A message held back by the random delay, ordered by due time.
#[derive(Debug)]
struct Delayed {
    at: Instant,
    seq: u64,
    from: u64,
    msg: Message,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Delayed {}

impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A tiny seeded RNG (SplitMix64): reproducible fault decisions without a
/// dependency.
#[derive(Debug, Default, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl InMemoryNetwork {
    /// An empty network without faults (RNG seed 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty network whose random drops and delays follow `seed`, so a
    /// failing fault test can be replayed with the same decisions.
    pub fn with_seed(seed: u64) -> Self {
        let net = Self::default();
        net.state().rng = SplitMix64(seed);
        net
    }

    /// A transport for node `from` over this network.
    pub fn transport(&self, from: u64) -> InMemoryTransport {
        InMemoryTransport { from, network: self.clone() }
    }

    /// Makes node `id` reachable at `inbox` (replacing any earlier registration).
    pub fn register(&self, id: u64, inbox: RaftInbox) {
        self.state().inboxes.insert(id, inbox);
    }

    /// Cuts node `id` off: nothing it sends or should receive is delivered.
    pub fn isolate(&self, id: u64) {
        self.state().isolated.insert(id);
    }

    /// Reconnects an isolated node (one-way cuts involving it stay).
    pub fn heal(&self, id: u64) {
        self.state().isolated.remove(&id);
    }

    /// Cuts the one-way link `from -> to`, for asymmetric faults (a node that
    /// can send but not hear, the case pre-vote and check-quorum guard).
    pub fn cut(&self, from: u64, to: u64) {
        self.state().cuts.insert((from, to));
    }

    /// Restores a link cut by [`cut`](Self::cut) or [`partition`](Self::partition).
    pub fn restore(&self, from: u64, to: u64) {
        self.state().cuts.remove(&(from, to));
    }

    /// Splits the network: no message crosses between a node of `a` and a
    /// node of `b`, either way. Links inside each side (and of nodes in
    /// neither) are untouched.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        let mut state = self.state();
        for &x in a {
            for &y in b {
                state.cuts.insert((x, y));
                state.cuts.insert((y, x));
            }
        }
    }

    /// Makes the network perfect again: no isolation, cuts, drops or delays.
    /// Messages already delayed are still delivered when due.
    pub fn heal_all(&self) {
        let mut state = self.state();
        state.isolated.clear();
        state.cuts.clear();
        state.drop_probability = 0.0;
        state.drop_next.clear();
        state.delay_min = Duration::ZERO;
        state.delay_max = Duration::ZERO;
    }

    /// Loses each message that passes the link checks with probability `p`
    /// (clamped to `[0, 1]`; NaN counts as 0), to test Raft's retries.
    pub fn set_drop_probability(&self, p: f64) {
        self.state().drop_probability = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
    }

    /// Drops the next `n` messages of type `msg_type` that would otherwise be
    /// delivered: a deterministic loss of one specific message (a snapshot, a
    /// vote) where a random drop would be hit and miss.
    pub fn drop_next(&self, msg_type: MessageType, n: usize) {
        self.state().drop_next.insert(msg_type, n);
    }

    /// Delays each delivered message by a uniform random duration in
    /// `[min, max]` (bounds swapped if reversed; zero disables), which also
    /// reorders messages. Delayed messages are delivered by one background
    /// thread that ends soon after the last handle on the network is dropped.
    pub fn set_delay(&self, min: Duration, max: Duration) {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        let mut state = self.state();
        state.delay_min = min;
        state.delay_max = max;
        if max > Duration::ZERO && !state.delay_thread {
            let weak = Arc::downgrade(&self.inner);
            let spawned =
                std::thread::Builder::new().name("strata-test-net-delay".into()).spawn(move || delay_loop(&weak));
            match spawned {
                Ok(_) => state.delay_thread = true,
                Err(e) => {
                    tracing::warn!(error = %strata_record::ErrorChain(&e), "no delay thread: messages are delivered at once")
                }
            }
        }
    }

    /// What the network has done so far.
    pub fn stats(&self) -> NetworkStats {
        self.state().stats
    }

    fn state(&self) -> MutexGuard<'_, NetworkState> {
        lock(&self.inner.state)
    }
}

fn lock(state: &Mutex<NetworkState>) -> MutexGuard<'_, NetworkState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Delivers delayed messages when due; ends once the network is gone. Holds
/// the network only while it works, so it never keeps it alive.
fn delay_loop(weak: &Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let mut state = lock(&shared.state);
        let now = Instant::now();
        let wait = state.deliver_due(now).map_or(DELAY_THREAD_IDLE, |at| (at - now).min(DELAY_THREAD_IDLE));
        let (state, _) = shared.wake.wait_timeout(state, wait).unwrap_or_else(|p| p.into_inner());
        drop(state);
    }
}

/// One node's end of an [`InMemoryNetwork`].
#[derive(Debug, Clone)]
pub struct InMemoryTransport {
    from: u64,
    network: InMemoryNetwork,
}

impl Transport for InMemoryTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        let mut state = self.network.state();
        let mut woke = false;
        for msg in msgs {
            state.stats.sent += 1;
            if !state.link_open(self.from, msg.to) {
                state.stats.cut += 1;
                continue;
            }
            if let Some(left) = state.drop_next.get_mut(&msg.msg_type).filter(|n| **n > 0) {
                *left -= 1;
                state.stats.dropped += 1;
                continue;
            }
            let p = state.drop_probability;
            if p > 0.0 && state.rng.next_f64() < p {
                state.stats.dropped += 1;
                continue;
            }
            let (min, max) = (state.delay_min, state.delay_max);
            if max.is_zero() || !state.delay_thread {
                state.deliver_now(msg);
                continue;
            }
            let span = u64::try_from((max - min).as_micros()).unwrap_or(u64::MAX);
            let delay = min + Duration::from_micros(state.rng.next_u64() % span.saturating_add(1));
            let seq = state.next_seq;
            state.next_seq += 1;
            state.stats.delayed += 1;
            state.delayed.push(Reverse(Delayed { at: Instant::now() + delay, seq, from: self.from, msg }));
            woke = true;
        }
        drop(state);
        if woke {
            self.network.inner.wake.notify_one();
        }
    }
}
