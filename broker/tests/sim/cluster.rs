//! The controller model, broker processes (start, crash, restart, metadata),
//! follower fetchers and the leader's fetch serving, and fault injection.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_broker::sim::{
    apply_fetch_results, fetch_request_for, serve_partition, FollowerFetch, FollowerFetched, Partition, ReplicaManager,
    Role,
};
use strata_metadata::ElectionType;
use strata_metadata::{MetadataCommand, MetadataImage};
use strata_storage::{FlushPolicy, LogConfig, LogManager, ManualClock};

use super::{
    Broker, Ev, Fetcher, Msg, Parked, World, BROKERS, CLIENT, CONTROLLER, FETCH_TIMEOUT, FETCH_WAIT, HEARTBEAT,
    LAG_MAX, SESSION_TIMEOUT, TOPIC,
};

/// Largest fetch response (REPLICA_FETCH_MAX_BYTES).
const FETCH_MAX_BYTES: usize = 16 << 20;

/// Cheap logs: small segments (rolls and multi-segment truncation happen),
/// no fsync per append (no background flusher runs either: a crash loses
/// nothing, as a process crash with data in the page cache).
pub(super) fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 << 10,
        preallocate_bytes: 8 << 10,
        flush: FlushPolicy::Interval { interval_ms: 60_000 },
        ..LogConfig::default()
    }
}

impl Broker {
    /// This broker's partitions, sorted by partition (deterministic order).
    pub(super) fn sorted_partitions(&self) -> Vec<Arc<Partition>> {
        let Some(rm) = &self.rm else { return Vec::new() };
        let mut ps = rm.partitions();
        ps.sort_by(|a, b| a.tp.cmp(&b.tp));
        ps
    }
}

impl World {
    /// Boots the cluster: brokers start, register, and the topic is created.
    pub(super) fn start(&mut self) {
        self.trace(format!("seed {} partitions {} loss {}‰", self.cfg.seed, self.partitions, self.loss_per_mille));
        for b in BROKERS {
            self.boot(b);
        }
        self.commit(MetadataCommand::InitCluster { cluster_id: "sim-cluster".into() });
        for b in BROKERS {
            self.commit(MetadataCommand::RegisterBroker {
                kafka_address: None,
                node_id: b,
                address: format!("broker-{b}:9092"),
                rack: None,
            });
        }
        for b in BROKERS {
            self.brokers.get_mut(&b).expect("broker").registered_at = 0;
        }
        let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
        self.commit(MetadataCommand::CreateTopic {
            name: TOPIC.into(),
            topic_id: "sim-topic-id".into(),
            partitions: self.partitions,
            replication_factor: 3,
            configs,
        });
        self.at(250, Ev::ControllerTick);
        self.at(300, Ev::ProduceTick);
        self.at(400, Ev::ConsumeTick);
        let first_fault = self.rng.range(1_000, 3_000);
        self.at(first_fault, Ev::FaultTick);
    }

    /// Opens broker `b`'s data directory (its logs as the last process left
    /// them) under a new incarnation; its timers start.
    fn boot(&mut self, b: u32) {
        let clock = self.clock();
        let now = self.now();
        let jitter_hb = self.rng.range(0, HEARTBEAT);
        let jitter_isr = self.rng.range(0, 500);
        let broker = self.brokers.get_mut(&b).expect("broker");
        let storage_clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let logs = LogManager::open_with_clock(&broker.dir, log_config(), storage_clock).expect("open logs");
        broker.rm = Some(ReplicaManager::with_clock(b, logs, log_config(), clock));
        broker.inc += 1;
        broker.registered_at = u64::MAX;
        let inc = broker.inc;
        self.last_heard.insert(b, now);
        self.at(now + jitter_hb, Ev::Heartbeat { b, inc });
        self.at(now + jitter_isr, Ev::IsrTick { b, inc });
        self.trace(format!("boot {b} inc {inc}"));
    }

    /// kill -9: the process vanishes; nothing is closed or flushed.
    pub(super) fn crash(&mut self, b: u32) {
        let broker = self.brokers.get_mut(&b).expect("broker");
        broker.parked.clear();
        broker.waiters.clear();
        broker.fetchers.clear();
        broker.backoff.clear();
        if let Some(rm) = broker.rm.take() {
            drop(rm);
            self.report.crashes += 1;
            self.trace(format!("crash {b}"));
        }
    }

    pub(super) fn restart(&mut self, b: u32) {
        if self.brokers[&b].rm.is_some() {
            return;
        }
        self.boot(b);
        self.send(b, CONTROLLER, Msg::Register { b });
    }

    /// The controller commits `cmd` (as after Raft commit) and publishes
    /// the new image to every broker.
    pub(super) fn commit(&mut self, cmd: MetadataCommand) {
        match self.image.apply(&cmd) {
            Ok(_) => {
                self.image.offset += 1;
                let v = self.image.offset;
                self.trace(format!("commit v{v} {cmd:?}"));
                for p in self.image.topics.get(TOPIC).map(|t| t.partitions.clone()).unwrap_or_default() {
                    self.report.max_leader_epoch = self.report.max_leader_epoch.max(p.leader_epoch);
                }
                let img = Arc::new(self.image.clone());
                for b in BROKERS {
                    self.send(CONTROLLER, b, Msg::Metadata(img.clone()));
                }
            }
            Err(e) => self.trace(format!("rejected {cmd:?}: {e}")),
        }
    }

    pub(super) fn controller_tick(&mut self) {
        let now = self.now();
        for b in BROKERS {
            let fenced = self.image.brokers.get(&b).is_none_or(|i| i.fenced);
            if !fenced && now.saturating_sub(self.last_heard.get(&b).copied().unwrap_or(0)) > SESSION_TIMEOUT {
                self.commit(MetadataCommand::FenceBroker { node_id: b });
            }
        }
        self.after(250, Ev::ControllerTick);
    }

    pub(super) fn controller_heartbeat(&mut self, b: u32, applied: u64) {
        self.last_heard.insert(b, self.now());
        if self.image.brokers.get(&b).is_some_and(|i| i.fenced) {
            self.commit(MetadataCommand::UnfenceBroker { node_id: b });
        } else if applied < self.image.offset {
            let img = Arc::new(self.image.clone());
            self.send(CONTROLLER, b, Msg::Metadata(img));
        }
    }

    pub(super) fn controller_register(&mut self, b: u32) {
        self.last_heard.insert(b, self.now());
        // As the real broker does at startup: fence the earlier process of
        // this broker first, so it never resumes an epoch it led before.
        if self.image.brokers.get(&b).is_some_and(|i| !i.fenced) {
            self.commit(MetadataCommand::FenceBroker { node_id: b });
        }
        self.commit(MetadataCommand::RegisterBroker {
            kafka_address: None,
            node_id: b,
            address: format!("broker-{b}:9092"),
            rack: None,
        });
        // The registration's answer tells the broker where its metadata starts.
        self.brokers.get_mut(&b).expect("broker").registered_at = self.image.offset;
        let img = Arc::new(self.image.clone());
        self.send(CONTROLLER, b, Msg::Metadata(img));
    }

    pub(super) fn heartbeat(&mut self, b: u32, inc: u64) {
        let broker = &self.brokers[&b];
        let Some(rm) = broker.rm.as_ref().filter(|_| broker.inc == inc) else { return };
        let applied = rm.image().offset;
        if broker.registered_at == u64::MAX {
            // Not registered yet (the request may have been lost): retry,
            // as the real server does until it is registered.
            self.send(b, CONTROLLER, Msg::Register { b });
        } else {
            self.send(b, CONTROLLER, Msg::Heartbeat { b, applied });
        }
        self.after(HEARTBEAT, Ev::Heartbeat { b, inc });
    }

    /// Broker `b` applies an image (in order), then re-sends every fetcher
    /// its assignment, which cancels requests in flight (as the real
    /// `ReplicaFetcherManager::assign` does).
    pub(super) fn apply_image(&mut self, b: u32, img: Arc<MetadataImage>) {
        let broker = self.brokers.get_mut(&b).expect("broker");
        let rm = broker.rm.as_ref().expect("live");
        if img.offset <= rm.image().offset || img.offset < broker.registered_at {
            return;
        }
        rm.apply_metadata(img.clone());
        let followed: BTreeSet<u32> = broker
            .sorted_partitions()
            .iter()
            .filter_map(|p| match p.state().role {
                Role::Follower { leader: Some(l) } if img.brokers.contains_key(&l) => Some(l),
                _ => None,
            })
            .collect();
        let inc = broker.inc;
        broker.fetchers.retain(|l, _| followed.contains(l));
        let mut line = format!("{b} applied v{}:", img.offset);
        for p in broker.sorted_partitions() {
            let st = p.state();
            let role = match st.role {
                Role::Leader(_) => "L".to_string(),
                Role::Follower { leader } => format!("F{}", leader.unwrap_or(0)),
            };
            line.push_str(&format!(" {}:{role}e{}isr{:?}", p.tp.partition, st.leader_epoch, st.isr));
        }
        self.trace(line);
        for l in followed {
            let gen = self.id();
            self.brokers.get_mut(&b).expect("broker").fetchers.insert(l, Fetcher { gen, in_flight: None });
            self.after(0, Ev::FetchSend { f: b, inc, leader: l, gen });
        }
    }

    pub(super) fn isr_tick(&mut self, b: u32, inc: u64) {
        let broker = &self.brokers[&b];
        if broker.rm.is_none() || broker.inc != inc {
            return;
        }
        for p in broker.sorted_partitions() {
            if let Some(cmd) = p.isr_proposal(LAG_MAX) {
                self.trace(format!("{b} proposes {cmd:?}"));
                self.send(b, CONTROLLER, Msg::Propose(cmd));
            }
        }
        self.after(500, Ev::IsrTick { b, inc });
    }

    fn fetcher_live(&self, f: u32, inc: u64, leader: u32, gen: u64) -> bool {
        let broker = &self.brokers[&f];
        broker.rm.is_some() && broker.inc == inc && broker.fetchers.get(&leader).is_some_and(|x| x.gen == gen)
    }

    /// One fetch round of follower `f`'s fetcher for `leader`.
    pub(super) fn fetch_send(&mut self, f: u32, inc: u64, leader: u32, gen: u64) {
        if !self.fetcher_live(f, inc, leader, gen) || self.brokers[&f].fetchers[&leader].in_flight.is_some() {
            return;
        }
        let now = self.now();
        let broker = self.brokers.get_mut(&f).expect("broker");
        broker.backoff.retain(|_, until| *until > now);
        let mut parts: Vec<FollowerFetch> = Vec::new();
        for p in broker.sorted_partitions() {
            if broker.backoff.contains_key(&p.tp) {
                continue;
            }
            parts.extend(fetch_request_for(&p, leader));
        }
        if parts.is_empty() {
            let wait = broker.backoff.values().min().map_or(100, |u| u.saturating_sub(now)).max(10);
            self.after(wait, Ev::FetchSend { f, inc, leader, gen });
            return;
        }
        let req_id = self.id();
        self.brokers.get_mut(&f).expect("broker").fetchers.get_mut(&leader).expect("fetcher").in_flight = Some(req_id);
        let desc: Vec<String> =
            parts.iter().map(|p| format!("{}@{}e{}", p.tp.partition, p.fetch_offset, p.last_fetched_epoch)).collect();
        self.trace(format!("{f} fetch #{req_id} from {leader} {desc:?}"));
        self.send(f, leader, Msg::Fetch { f, f_inc: inc, gen, req_id, parts });
        self.after(FETCH_TIMEOUT, Ev::FetchTimeout { f, inc, leader, gen, req_id });
    }

    pub(super) fn fetch_timeout(&mut self, f: u32, inc: u64, leader: u32, gen: u64, req_id: u64) {
        if !self.fetcher_live(f, inc, leader, gen) {
            return;
        }
        let fetcher = self.brokers.get_mut(&f).expect("broker").fetchers.get_mut(&leader).expect("fetcher");
        if fetcher.in_flight == Some(req_id) {
            fetcher.in_flight = None;
            self.trace(format!("{f} fetch #{req_id} timed out"));
            self.after(200, Ev::FetchSend { f, inc, leader, gen });
        }
    }

    /// One pass of the leader's `replica_fetch_once`: the response, its
    /// record bytes, whether it must be answered at once, and whether any
    /// partition is led here (something to wait on).
    fn serve_once(
        &self,
        l: u32,
        f: u32,
        parts: &[FollowerFetch],
        record_progress: bool,
    ) -> (Vec<FollowerFetched>, usize, bool, bool) {
        let rm = self.brokers[&l].rm.as_ref().expect("live");
        let (mut out, mut used, mut done, mut waitable) = (Vec::new(), 0usize, false, false);
        for fp in parts {
            let mut r = FollowerFetched::new(fp.tp.clone());
            match rm.lookup(&fp.tp.topic, fp.tp.partition) {
                Err(e) => r.error = Some(e),
                Ok(p) => {
                    waitable = true;
                    let budget = FETCH_MAX_BYTES.saturating_sub(used);
                    if let Err(e) = serve_partition(&p, f, fp, record_progress, budget, &mut r) {
                        r.error = Some(e);
                    }
                    used += r.records.len();
                }
            }
            done |= r.error.is_some() || r.diverging_epoch.is_some();
            out.push(r);
        }
        (out, used, done, waitable)
    }

    pub(super) fn serve_fetch(&mut self, l: u32, f: u32, f_inc: u64, gen: u64, req_id: u64, parts: Vec<FollowerFetch>) {
        let (resp, used, done, waitable) = self.serve_once(l, f, &parts, true);
        if used > 0 || done || !waitable {
            self.respond(l, f, gen, req_id, resp);
            return;
        }
        let inc = self.brokers[&l].inc;
        self.brokers.get_mut(&l).expect("broker").parked.push(Parked { req_id, f, f_inc, gen, parts });
        self.after(FETCH_WAIT, Ev::PollExpire { b: l, inc, req_id });
    }

    fn respond(&mut self, l: u32, f: u32, gen: u64, req_id: u64, parts: Vec<FollowerFetched>) {
        let desc: Vec<String> = parts
            .iter()
            .map(|r| match (&r.error, &r.diverging_epoch) {
                (Some(e), _) => format!("{}:{:?}", r.tp.partition, e.kind()),
                (None, Some(d)) => format!("{}:diverge(e{},{})", r.tp.partition, d.epoch, d.end_offset),
                (None, None) => format!("{}:{}B,hw{}", r.tp.partition, r.records.len(), r.high_watermark),
            })
            .collect();
        self.trace(format!("{l} answers #{req_id} {desc:?}"));
        self.send(l, f, Msg::FetchResp { leader: l, gen, req_id, parts });
    }

    pub(super) fn poll_expire(&mut self, b: u32, inc: u64, req_id: u64) {
        let broker = &self.brokers[&b];
        if broker.rm.is_none() || broker.inc != inc {
            return;
        }
        let Some(i) = broker.parked.iter().position(|x| x.req_id == req_id) else { return };
        let parked = self.brokers.get_mut(&b).expect("broker").parked.remove(i);
        let (resp, ..) = self.serve_once(b, parked.f, &parked.parts, false);
        self.respond(b, parked.f, parked.gen, parked.req_id, resp);
    }

    /// The leader's log end moved for `partition`: held fetches wake.
    pub(super) fn wake_parked(&mut self, l: u32, partition: u32) {
        let mut i = 0;
        while i < self.brokers[&l].parked.len() {
            let x = &self.brokers[&l].parked[i];
            if !x.parts.iter().any(|p| p.tp.partition == partition) {
                i += 1;
                continue;
            }
            let (resp, used, done, _) = self.serve_once(l, x.f, &x.parts, false);
            if used > 0 || done {
                let x = self.brokers.get_mut(&l).expect("broker").parked.remove(i);
                let _ = x.f_inc;
                self.respond(l, x.f, x.gen, x.req_id, resp);
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn fetch_response(&mut self, f: u32, leader: u32, gen: u64, req_id: u64, parts: Vec<FollowerFetched>) {
        let inc = self.brokers[&f].inc;
        let current =
            self.brokers[&f].fetchers.get(&leader).is_some_and(|x| x.gen == gen && x.in_flight == Some(req_id));
        if !current {
            self.trace(format!("{f} drops stale answer #{req_id}"));
            return;
        }
        let now = self.now();
        self.brokers.get_mut(&f).expect("broker").fetchers.get_mut(&leader).expect("fetcher").in_flight = None;
        // One fetch's partitions are applied together, as the real fetcher
        // does (appends first, then their syncs).
        let mut fetched = Vec::new();
        let mut before = std::collections::HashMap::new();
        for r in parts {
            let Some(p) = self.brokers[&f].rm.as_ref().expect("live").replica(&r.tp) else { continue };
            before.insert(r.tp.clone(), p.log.log_end_offset());
            fetched.push((p, r));
        }
        for (p, outcome) in apply_fetch_results(fetched) {
            let tp = p.tp.clone();
            match outcome {
                Err(e) => {
                    self.trace(format!("{f} partition {} backs off: {e}", tp.partition));
                    self.brokers.get_mut(&f).expect("broker").backoff.insert(tp, now + 100);
                }
                Ok(()) => {
                    let before = before[&tp];
                    let after = p.log.log_end_offset();
                    if after < before {
                        self.report.truncations += 1;
                    }
                    if after != before {
                        self.trace(format!(
                            "{f} partition {} leo {before}->{after} hw {}",
                            tp.partition,
                            p.high_watermark()
                        ));
                    }
                }
            }
        }
        self.after(0, Ev::FetchSend { f, inc, leader, gen });
    }

    fn live_brokers(&self) -> Vec<u32> {
        BROKERS.iter().copied().filter(|b| self.brokers[b].rm.is_some()).collect()
    }

    /// Injects one random fault.
    pub(super) fn fault_tick(&mut self) {
        if self.healed {
            return;
        }
        let next = self.rng.range(500, 3_000);
        self.after(next, Ev::FaultTick);
        let nodes = [CONTROLLER, 1, 2, 3, CLIENT];
        match self.rng.range(0, 9) {
            0 | 1 => {
                let live = self.live_brokers();
                if live.len() >= 3 || (live.len() == 2 && self.rng.chance(300)) {
                    let b = self.rng.pick(&live);
                    self.crash(b);
                    let back = self.rng.range(300, 8_000);
                    self.after(back, Ev::Restart { b });
                }
            }
            2 | 3 => {
                let a = self.rng.pick(&nodes);
                let b = self.rng.pick(&nodes);
                if a != b {
                    let dur = self.rng.range(300, 6_000);
                    self.cut(a, b, dur);
                    self.cut(b, a, dur);
                }
            }
            4 | 5 => {
                let a = self.rng.pick(&nodes);
                let b = self.rng.pick(&nodes);
                if a != b {
                    let dur = self.rng.range(300, 6_000);
                    self.cut(a, b, dur);
                }
            }
            6 => {
                let b = self.rng.pick(&BROKERS);
                let dur = self.rng.range(1_000, 8_000);
                for n in nodes.iter().copied().filter(|&n| n != b) {
                    self.cut(b, n, dur);
                    self.cut(n, b, dur);
                }
            }
            7 => {
                let b = self.rng.pick(&BROKERS);
                let slow = self.rng.range(100, 1_500);
                self.brokers.get_mut(&b).expect("broker").slow = slow;
                self.trace(format!("slow {b} +{slow}ms"));
                let dur = self.rng.range(1_000, 6_000);
                self.after(dur, Ev::SlowEnd { b });
            }
            8 => self.commit(MetadataCommand::ElectLeaders { partitions: None, election: ElectionType::Preferred }),
            _ => {
                // Controlled shutdown, then the process exits and comes back.
                let live = self.live_brokers();
                if live.len() == 3 {
                    let b = self.rng.pick(&live);
                    // The process exits (modelled as a crash: the logs are
                    // not closed either way) and comes back later.
                    self.commit(MetadataCommand::ControlledShutdown { node_id: b });
                    self.crash(b);
                    let back = self.rng.range(500, 5_000);
                    self.after(back, Ev::Restart { b });
                }
            }
        }
    }

    fn cut(&mut self, from: u32, to: u32, dur: u64) {
        if self.blocked.insert((from, to)) {
            self.report.cuts += 1;
            self.trace(format!("cut {from}->{to} for {dur}ms"));
        }
        self.after(dur, Ev::Unblock { from, to });
    }

    /// Ends the fault phase: links heal, loss and slowness stop, crashed
    /// brokers restart, load stops.
    pub(super) fn heal_all(&mut self) {
        self.healed = true;
        self.blocked.clear();
        for b in BROKERS {
            self.brokers.get_mut(&b).expect("broker").slow = 0;
            self.restart(b);
        }
        self.trace("heal all".into());
        self.after(1_000, Ev::QuiesceCheck);
    }
}
