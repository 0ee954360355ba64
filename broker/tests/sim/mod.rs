//! A deterministic, seeded, single-threaded simulation of a Strata cluster
//! (`docs/replication.md`): three brokers running the real replication code
//! (`ReplicaManager::apply_metadata`, `Partition`, `LeaderState`, the
//! leader's `serve_partition`, the follower's `apply_fetch_result`, the
//! acks=all `commit_status`, real logs on a tempdir) and the real metadata
//! state machine as controller, connected by a simulated network with
//! seeded delays, loss, one-way and symmetric partitions, and crashes.
//!
//! Everything is driven by one discrete-event queue in simulated time and
//! one seeded RNG, so a seed replays exactly.

mod client;
mod cluster;
mod oracle;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_broker::sim::{FollowerFetch, FollowerFetched};
use strata_broker::sim::{Partition, ReplicaManager};
use strata_metadata::{MetadataCommand, MetadataImage};
use strata_storage::TopicPartition;

/// The controller's node id on the simulated network.
pub(crate) const CONTROLLER: u32 = 0;
/// The client's (producer's and consumer's) node id.
pub(crate) const CLIENT: u32 = 9;
/// Broker ids.
pub(crate) const BROKERS: [u32; 3] = [1, 2, 3];
/// The simulated topic.
pub(crate) const TOPIC: &str = "sim";

/// A broker missing heartbeats this long is fenced.
const SESSION_TIMEOUT: u64 = 3_000;
/// Broker heartbeat period (also how a broker learns newer metadata).
const HEARTBEAT: u64 = 500;
/// `replica.lag.time.max`.
const LAG_MAX: Duration = Duration::from_millis(2_000);
/// How long a leader holds a follower's fetch (REPLICA_FETCH_WAIT).
const FETCH_WAIT: u64 = 500;
/// The follower gives up on a fetch after this (REPLICA_FETCH_WAIT + 5 s).
const FETCH_TIMEOUT: u64 = 5_500;
/// acks=all request timeout.
const PRODUCE_TIMEOUT: u64 = 5_000;

/// What a seed runs.
#[derive(Debug, Clone)]
pub(crate) struct SimConfig {
    /// The seed.
    pub seed: u64,
    /// Simulated milliseconds of load and faults before everything heals.
    pub active_ms: u64,
    /// Longest the healed cluster may take to become quiescent.
    pub settle_ms: u64,
}

impl SimConfig {
    /// The default run for `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SimConfig { seed, active_ms: 20_000, settle_ms: 120_000 }
    }
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    /// Hash of the event trace (equal for two runs of one seed).
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end.
    pub sim_ms: u64,
    /// acks=all records acknowledged.
    pub acked_all: usize,
    /// acks=1 records acknowledged.
    pub acked_one: usize,
    /// Produce requests that failed.
    pub produce_errors: usize,
    /// Records seen by sampling consumers.
    pub consumed: usize,
    /// Crashes injected.
    pub crashes: u32,
    /// Link cuts injected.
    pub cuts: u32,
    /// Leader epochs reached (max over partitions).
    pub max_leader_epoch: u32,
    /// Follower truncations observed.
    pub truncations: u32,
    /// Times a leader restarted within its session resumed its epoch with
    /// a lower (checkpointed) high watermark.
    pub hw_restart_regressions: u32,
    /// Safety violations (empty when the run passed).
    pub violations: Vec<String>,
    /// The last trace lines, for a failure report.
    pub tail: Vec<String>,
}

/// A small, fast, seedable PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded.
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_F00D)
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.next_u64() % 1000 < per_mille
    }

    /// One element of a non-empty slice.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// A message on the simulated network.
#[derive(Debug, Clone)]
enum Msg {
    Heartbeat { b: u32, applied: u64 },
    Register { b: u32 },
    Propose(MetadataCommand),
    Metadata(Arc<MetadataImage>),
    Fetch { f: u32, f_inc: u64, gen: u64, req_id: u64, parts: Vec<FollowerFetch> },
    FetchResp { leader: u32, gen: u64, req_id: u64, parts: Vec<FollowerFetched> },
    Produce { id: u64, partition: u32, acks: i32, records: Bytes },
    ProduceResp { id: u64, result: Result<u64, String> },
}

/// A scheduled event.
#[derive(Debug, Clone)]
enum Ev {
    ControllerTick,
    Heartbeat { b: u32, inc: u64 },
    IsrTick { b: u32, inc: u64 },
    ProduceTick,
    ConsumeTick,
    FaultTick,
    Restart { b: u32 },
    Unblock { from: u32, to: u32 },
    SlowEnd { b: u32 },
    HealAll,
    QuiesceCheck,
    Deliver { from: u32, to: u32, to_inc: u64, msg: Msg },
    FetchSend { f: u32, inc: u64, leader: u32, gen: u64 },
    FetchTimeout { f: u32, inc: u64, leader: u32, gen: u64, req_id: u64 },
    PollExpire { b: u32, inc: u64, req_id: u64 },
}

/// One follower fetcher (per leader), as in the real fetcher: one request
/// in flight; `gen` changes whenever the assignment is re-sent, which
/// cancels the request in flight.
#[derive(Debug, Clone)]
struct Fetcher {
    gen: u64,
    in_flight: Option<u64>,
}

/// A follower fetch the leader holds (long poll).
struct Parked {
    req_id: u64,
    f: u32,
    f_inc: u64,
    gen: u64,
    parts: Vec<FollowerFetch>,
}

/// An acks=all produce waiting for the high watermark.
struct Waiter {
    id: u64,
    p: Arc<Partition>,
    epoch: u32,
    end: u64,
    first: u64,
    deadline: u64,
}

/// One simulated broker process.
struct Broker {
    dir: PathBuf,
    rm: Option<ReplicaManager>,
    inc: u64,
    fetchers: BTreeMap<u32, Fetcher>,
    backoff: BTreeMap<TopicPartition, u64>,
    parked: Vec<Parked>,
    waiters: Vec<Waiter>,
    slow: u64,
    /// Metadata before this offset is ignored: a (re)started broker acts on
    /// metadata only once its registration is in it, as the real server
    /// applies metadata only after registering.
    registered_at: u64,
}

/// A produce request the client is waiting on.
struct Pending {
    partition: u32,
    acks: i32,
    values: Vec<String>,
}

/// The whole simulated cluster.
pub(crate) struct World {
    cfg: SimConfig,
    rng: Rng,
    now: Arc<AtomicU64>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: BTreeMap<usize, Ev>,
    seq: u64,
    next_id: u64,
    trace_hash: u64,
    tail: std::collections::VecDeque<String>,
    print_trace: bool,
    report: Report,
    // Controller.
    image: MetadataImage,
    last_heard: BTreeMap<u32, u64>,
    md_next_at: BTreeMap<u32, u64>,
    // Brokers and network.
    brokers: BTreeMap<u32, Broker>,
    blocked: BTreeSet<(u32, u32)>,
    loss_per_mille: u64,
    partitions: u32,
    healed: bool,
    // Client and oracle state.
    view: Arc<MetadataImage>,
    pending: BTreeMap<u64, Pending>,
    seq_no: u64,
    acked_all: Vec<(u32, u64, String)>,
    seen: BTreeMap<(u32, u64), String>,
    hw_seen: BTreeMap<(u32, u32, u32), (u64, u64)>,
    _tmp: tempfile::TempDir,
}

impl World {
    /// A fresh cluster for `cfg` (logs in a new tempdir).
    pub(crate) fn new(cfg: SimConfig) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut rng = Rng::new(cfg.seed);
        let partitions = rng.range(1, 3) as u32;
        let loss_per_mille = rng.pick(&[0, 0, 10, 30, 60]);
        let brokers = BROKERS
            .iter()
            .map(|&b| {
                let dir = tmp.path().join(format!("broker-{b}"));
                let broker = Broker {
                    dir,
                    rm: None,
                    inc: 0,
                    fetchers: BTreeMap::new(),
                    backoff: BTreeMap::new(),
                    parked: Vec::new(),
                    waiters: Vec::new(),
                    slow: 0,
                    registered_at: 0,
                };
                (b, broker)
            })
            .collect();
        World {
            cfg,
            rng,
            now: Arc::new(AtomicU64::new(0)),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            next_id: 1,
            trace_hash: 0xCBF2_9CE4_8422_2325,
            tail: std::collections::VecDeque::new(),
            print_trace: std::env::var_os("STRATA_SIM_TRACE").is_some(),
            report: Report::default(),
            image: MetadataImage::default(),
            last_heard: BTreeMap::new(),
            md_next_at: BTreeMap::new(),
            brokers,
            blocked: BTreeSet::new(),
            loss_per_mille,
            partitions,
            healed: false,
            view: Arc::new(MetadataImage::default()),
            pending: BTreeMap::new(),
            seq_no: 0,
            acked_all: Vec::new(),
            seen: BTreeMap::new(),
            hw_seen: BTreeMap::new(),
            _tmp: tmp,
        }
    }

    /// Simulated milliseconds since the start.
    fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Schedules `ev` at `at` (ties run in scheduling order).
    fn at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        let key = self.seq as usize;
        self.events.insert(key, ev);
        self.queue.push(Reverse((at, self.seq, key)));
    }

    /// Schedules `ev` after `delay`.
    fn after(&mut self, delay: u64, ev: Ev) {
        let t = self.now() + delay;
        self.at(t, ev);
    }

    /// Adds a line to the trace (hashed; the last lines are kept).
    fn trace(&mut self, line: String) {
        let line = format!("{:>7} {line}", self.now());
        for b in line.as_bytes() {
            self.trace_hash ^= u64::from(*b);
            self.trace_hash = self.trace_hash.wrapping_mul(0x0100_0000_01B3);
        }
        if self.print_trace {
            eprintln!("{line}");
        }
        if self.tail.len() == 400 {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// Records a safety violation.
    fn violation(&mut self, what: String) {
        let line = format!("t={} {what}", self.now());
        self.trace(format!("VIOLATION {what}"));
        if self.report.violations.len() < 20 {
            self.report.violations.push(line);
        }
    }

    /// The clock brokers' partitions read: a fixed base plus simulated time.
    fn clock(&self) -> strata_broker::sim::Clock {
        let base = Instant::now();
        let now = self.now.clone();
        Arc::new(move || base + Duration::from_millis(now.load(Ordering::Relaxed)))
    }

    /// Sends `msg` over the link `from → to`: lost if the link is cut (now
    /// or on arrival) or by random loss, else delayed. Metadata to one
    /// broker arrives in order.
    fn send(&mut self, from: u32, to: u32, msg: Msg) {
        if self.blocked.contains(&(from, to)) || (!self.healed && self.rng.chance(self.loss_per_mille)) {
            self.trace(format!("lost {from}->{to} {}", msg_name(&msg)));
            return;
        }
        let mut delay = self.rng.range(1, 15);
        if !self.healed && self.rng.chance(50) {
            delay += self.rng.range(50, 400);
        }
        for n in [from, to] {
            if let Some(b) = self.brokers.get(&n) {
                delay += b.slow;
            }
        }
        let to_inc = self.brokers.get(&to).map_or(0, |b| b.inc);
        let mut t = self.now() + delay;
        if matches!(msg, Msg::Metadata(_)) {
            let next = self.md_next_at.entry(to).or_insert(0);
            t = t.max(*next);
            *next = t;
        }
        self.at(t, Ev::Deliver { from, to, to_inc, msg });
    }

    /// Runs the seed to the end; the report lists any violation.
    pub(crate) fn run(mut self) -> Report {
        self.start();
        let active = self.cfg.active_ms;
        let limit = active + self.cfg.settle_ms;
        self.at(active, Ev::HealAll);
        let mut quiescent = false;
        while let Some(Reverse((t, _, key))) = self.queue.pop() {
            if t > limit {
                break;
            }
            self.now.store(t, Ordering::Relaxed);
            let ev = self.events.remove(&key).expect("event");
            self.report.events += 1;
            if let Ev::QuiesceCheck = ev {
                if self.is_quiescent() {
                    quiescent = true;
                    break;
                }
                self.after(250, Ev::QuiesceCheck);
                continue;
            }
            self.handle(ev);
            self.after_event();
        }
        if quiescent {
            self.trace("quiescent".into());
            self.final_oracle();
        } else {
            let state = self.describe_state();
            self.violation(format!(
                "the healed cluster did not become quiescent within {} ms: {state}",
                self.cfg.settle_ms
            ));
        }
        self.report.sim_ms = self.now();
        self.report.trace_hash = self.trace_hash;
        self.report.tail = self.tail.iter().cloned().collect();
        self.shutdown();
        self.report
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::ControllerTick => self.controller_tick(),
            Ev::Heartbeat { b, inc } => self.heartbeat(b, inc),
            Ev::IsrTick { b, inc } => self.isr_tick(b, inc),
            Ev::ProduceTick => self.produce_tick(),
            Ev::ConsumeTick => self.consume_tick(),
            Ev::FaultTick => self.fault_tick(),
            Ev::Restart { b } => self.restart(b),
            Ev::Unblock { from, to } => {
                if self.blocked.remove(&(from, to)) {
                    self.trace(format!("heal {from}->{to}"));
                }
            }
            Ev::SlowEnd { b } => {
                if let Some(br) = self.brokers.get_mut(&b) {
                    br.slow = 0;
                }
            }
            Ev::HealAll => self.heal_all(),
            Ev::QuiesceCheck => {}
            Ev::Deliver { from, to, to_inc, msg } => {
                if self.blocked.contains(&(from, to)) {
                    self.trace(format!("cut {from}->{to} {}", msg_name(&msg)));
                    return;
                }
                if let Some(b) = self.brokers.get(&to) {
                    if b.rm.is_none() || b.inc != to_inc {
                        self.trace(format!("dead {from}->{to} {}", msg_name(&msg)));
                        return;
                    }
                }
                self.deliver(from, to, msg);
            }
            Ev::FetchSend { f, inc, leader, gen } => self.fetch_send(f, inc, leader, gen),
            Ev::FetchTimeout { f, inc, leader, gen, req_id } => self.fetch_timeout(f, inc, leader, gen, req_id),
            Ev::PollExpire { b, inc, req_id } => self.poll_expire(b, inc, req_id),
        }
    }

    fn deliver(&mut self, from: u32, to: u32, msg: Msg) {
        match msg {
            Msg::Heartbeat { b, applied } => self.controller_heartbeat(b, applied),
            Msg::Register { b } => self.controller_register(b),
            Msg::Propose(cmd) => {
                self.trace(format!("isr proposal from {from}"));
                self.commit(cmd);
            }
            Msg::Metadata(img) => self.apply_image(to, img),
            Msg::Fetch { f, f_inc, gen, req_id, parts } => self.serve_fetch(to, f, f_inc, gen, req_id, parts),
            Msg::FetchResp { leader, gen, req_id, parts } => self.fetch_response(to, leader, gen, req_id, parts),
            Msg::Produce { id, partition, acks, records } => self.produce_arrive(to, id, partition, acks, records),
            Msg::ProduceResp { id, result } => self.produce_reply(id, result),
        }
    }

    /// After every event: complete or fail acks=all waiters (eagerly, as
    /// the real waiters are woken by every high-watermark or role change)
    /// and check that no leader's high watermark went down in its epoch.
    fn after_event(&mut self) {
        for b in BROKERS {
            self.eval_waiters(b);
            self.check_hw(b);
        }
    }

    fn shutdown(&mut self) {
        for b in self.brokers.values_mut() {
            b.parked.clear();
            b.waiters.clear();
            if let Some(rm) = b.rm.take() {
                let _ = rm.close();
            }
        }
    }
}

fn msg_name(m: &Msg) -> String {
    match m {
        Msg::Heartbeat { b, .. } => format!("heartbeat({b})"),
        Msg::Register { b } => format!("register({b})"),
        Msg::Propose(_) => "propose".into(),
        Msg::Metadata(i) => format!("metadata(v{})", i.offset),
        Msg::Fetch { req_id, .. } => format!("fetch(#{req_id})"),
        Msg::FetchResp { req_id, .. } => format!("fetch-resp(#{req_id})"),
        Msg::Produce { id, .. } => format!("produce(#{id})"),
        Msg::ProduceResp { id, .. } => format!("produce-resp(#{id})"),
    }
}
