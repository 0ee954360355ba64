//! Raft fault tests on the in-memory network, named after the section of the
//! Raft paper (Ongaro & Ousterhout, 2014) or thesis (Ongaro, 2014; §9.6) whose
//! guarantee they check: isolation, partitions, one-way cuts, message loss,
//! delays and restarts, with the whole metadata image compared across voters
//! once the network is healed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;
use tempfile::TempDir;

use super::node::Command;
use super::*;
use crate::metadata::MetadataError;

/// Raft tick; elections time out after 10-20 ticks (100-200 ms).
const TICK: Duration = Duration::from_millis(10);
/// Generous bound for anything that should take a few election timeouts.
const SETTLE: Duration = Duration::from_secs(10);
/// The per-proposal wait configured on every node.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(2);

fn node_config(dir: &Path, id: u64, voters: &[u64]) -> ControllerConfig {
    ControllerConfig {
        node_id: id,
        data_dir: dir.join(format!("node-{id}")),
        voters: voters.to_vec(),
        tick_interval: TICK,
        election_tick: 10,
        heartbeat_tick: 1,
        snapshot_every: 20,
        propose_timeout: PROPOSE_TIMEOUT,
        // No broker heartbeats here: keep the leader from proposing fences.
        session_timeout: Duration::from_secs(600),
        leader_balance_interval: Duration::ZERO,
    }
}

/// Polls `f` until it holds or `timeout` passes.
async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

/// A creation with a fixed topic id, so a retried proposal is recognizable.
fn create(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.to_string(),
        topic_id: topic_id(name),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::new(),
    }
}

fn topic_id(name: &str) -> String {
    format!("id-of-{name}")
}

fn register() -> MetadataCommand {
    MetadataCommand::RegisterBroker { kafka_address: None, node_id: 1, address: "h:1".into(), rack: None }
}

/// Voters 1..=n on one in-memory network, each with its own data directory.
struct Cluster {
    dir: TempDir,
    net: InMemoryNetwork,
    voters: Vec<u64>,
    nodes: BTreeMap<u64, Controller>,
    /// Adjusts every node's configuration (restarts included).
    tweak: fn(&mut ControllerConfig),
}

impl Cluster {
    async fn start(n: u64, net: InMemoryNetwork, tweak: fn(&mut ControllerConfig)) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster { dir, net, voters: (1..=n).collect(), nodes: BTreeMap::new(), tweak };
        for id in 1..=n {
            cluster.start_node(id);
        }
        for c in cluster.nodes.values() {
            c.wait_ready(SETTLE).await.unwrap();
        }
        cluster
    }

    /// Starts (or restarts, from its data directory) voter `id`.
    fn start_node(&mut self, id: u64) {
        let mut cfg = node_config(self.dir.path(), id, &self.voters);
        (self.tweak)(&mut cfg);
        let c = Controller::start_with_transport(cfg, Box::new(self.net.transport(id))).unwrap();
        self.net.register(id, c.raft_inbox());
        self.nodes.insert(id, c);
    }

    fn node(&self, id: u64) -> &Controller {
        &self.nodes[&id]
    }

    fn all(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    fn without(&self, out: &[u64]) -> Vec<u64> {
        self.all().into_iter().filter(|id| !out.contains(id)).collect()
    }

    /// Waits until every node of `group` follows the same leader, a member of
    /// `group`, in the same term, above `min_term`; returns (leader, term).
    async fn stable_leader(&self, group: &[u64], min_term: u64) -> (u64, u64) {
        let mut found = None;
        let ok = eventually(SETTLE, || {
            let st: Vec<_> = group.iter().map(|&id| self.node(id).status()).collect();
            found = st[0].leader_id.filter(|l| group.contains(l)).map(|l| (l, st[0].term));
            found.is_some_and(|(l, t)| t > min_term && st.iter().all(|s| s.leader_id == Some(l) && s.term == t))
        })
        .await;
        let statuses: Vec<_> = group.iter().map(|&id| self.node(id).status()).collect();
        assert!(ok, "no stable leader above term {min_term} among {group:?}: {statuses:#?}");
        found.unwrap_or_default()
    }

    /// Commits `cmd` through whichever member of `group` leads, retrying on
    /// leadership changes and timeouts. `None` when a retry found the topic
    /// already created (an earlier attempt was committed after all).
    async fn commit(&self, group: &[u64], cmd: MetadataCommand) -> Option<CommandOutcome> {
        let deadline = Instant::now() + SETTLE;
        let mut attempts = 0;
        loop {
            assert!(Instant::now() < deadline, "could not commit {cmd:?} through {group:?} in {SETTLE:?}");
            let leader = group.iter().find(|&&id| self.node(id).status().leader_id == Some(id));
            let Some(&leader) = leader else {
                tokio::time::sleep(TICK).await;
                continue;
            };
            attempts += 1;
            match self.node(leader).propose(cmd.clone()).await {
                Ok(outcome) => return Some(outcome),
                Err(ControllerError::Metadata(MetadataError::TopicAlreadyExists { .. })) if attempts > 1 => {
                    return None
                }
                Err(
                    ControllerError::NotLeader { .. }
                    | ControllerError::Timeout
                    | ControllerError::Raft(raft::Error::ProposalDropped),
                ) => tokio::time::sleep(TICK).await,
                Err(e) => panic!("committing {cmd:?} on {leader}: {e}"),
            }
        }
    }

    /// Creates `names` one by one through `group`'s leader.
    async fn create_all(&self, group: &[u64], names: &[String]) {
        for name in names {
            self.commit(group, create(name)).await;
        }
    }

    /// Waits until every node holds the same image; returns it.
    async fn converged(&self) -> Arc<MetadataImage> {
        let ids = self.all();
        let same = eventually(SETTLE, || {
            let first = self.node(ids[0]).metadata();
            ids.iter().all(|&id| *self.node(id).metadata() == *first)
        })
        .await;
        let views: Vec<_> = ids
            .iter()
            .map(|&id| {
                (id, self.node(id).metadata().offset, self.node(id).metadata().topics.len(), self.node(id).status())
            })
            .collect();
        assert!(same, "images differ after healing: {views:#?}");
        let image = self.node(ids[0]).metadata();
        assert!(!image.cluster_id.is_empty());
        image
    }

    async fn shutdown(self) {
        for c in self.nodes.into_values() {
            c.shutdown().await;
        }
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Every topic of `names` is in `image`, with the id its creation proposed.
fn assert_has_all(image: &MetadataImage, names: &[String], context: &str) {
    for name in names {
        let topic = image.topics.get(name);
        assert_eq!(
            topic.map(|t| t.id.as_str()),
            Some(topic_id(name).as_str()),
            "{context}: committed topic {name} missing (image at {}, {} topics)",
            image.offset,
            image.topics.len()
        );
    }
}

/// A proposal that cannot reach a quorum fails within a bound instead of hanging.
async fn assert_fails_fast(c: &Controller, cmd: MetadataCommand) {
    let t0 = Instant::now();
    let r = c.propose(cmd).await;
    assert!(matches!(r, Err(ControllerError::NotLeader { .. } | ControllerError::Timeout)), "{r:?}");
    assert!(t0.elapsed() < PROPOSE_TIMEOUT + Duration::from_secs(1), "took {:?}", t0.elapsed());
}

// ---- the network itself ----

fn inbox() -> (RaftInbox, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel();
    (RaftInbox { tx }, rx)
}

fn msg(to: u64, marker: u64) -> Message {
    Message { to, from: 1, index: marker, ..Default::default() }
}

fn received(rx: &mpsc::Receiver<Command>) -> Vec<u64> {
    rx.try_iter()
        .filter_map(|c| match c {
            Command::Raft(m) => Some(m.index),
            _ => None,
        })
        .collect()
}

/// Which of 1000 messages from 1 to 2 a network with `seed` and 30% loss delivers.
fn survivors(seed: u64) -> Vec<u64> {
    let net = InMemoryNetwork::with_seed(seed);
    let (ib, rx) = inbox();
    net.register(2, ib);
    net.set_drop_probability(0.3);
    let mut t = net.transport(1);
    t.send((0..1000).map(|i| msg(2, i)).collect());
    assert_eq!(net.stats().sent, 1000);
    received(&rx)
}

#[test]
fn network_drops_replay_with_the_seed() {
    let a = survivors(7);
    assert_eq!(a, survivors(7), "same seed, same decisions");
    assert_ne!(a, survivors(8), "another seed, other decisions");
    assert!((600..=800).contains(&a.len()), "{} of 1000 delivered at 30% loss", a.len());
}

#[test]
fn network_cuts_partitions_and_heal_all() {
    let net = InMemoryNetwork::new();
    let rxs: Vec<_> = (1..=3)
        .map(|id| {
            let (ib, rx) = inbox();
            net.register(id, ib);
            rx
        })
        .collect();
    let send = |from: u64, to: u64, marker: u64| net.transport(from).send(vec![msg(to, marker)]);
    net.cut(1, 2);
    send(1, 2, 10);
    send(2, 1, 11);
    send(1, 3, 12);
    assert_eq!((received(&rxs[1]), received(&rxs[0]), received(&rxs[2])), (vec![], vec![11], vec![12]));
    net.restore(1, 2);
    send(1, 2, 13);
    assert_eq!(received(&rxs[1]), vec![13]);

    net.partition(&[1], &[2, 3]);
    send(1, 2, 20);
    send(3, 1, 21);
    send(2, 3, 22);
    assert_eq!((received(&rxs[0]), received(&rxs[1]), received(&rxs[2])), (vec![], vec![], vec![22]));
    net.isolate(3);
    net.heal(3); // heal undoes isolation only: the partition stays
    send(3, 1, 23);
    assert_eq!(received(&rxs[0]), Vec::<u64>::new());
    net.heal_all();
    send(3, 1, 24);
    assert_eq!(received(&rxs[0]), vec![24]);
    let s = net.stats();
    assert_eq!((s.sent, s.cut, s.delivered, s.dropped, s.delayed), (9, 4, 5, 0, 0));
}

#[test]
fn network_delays_within_bounds_and_drops_in_flight_messages_on_a_cut() {
    let net = InMemoryNetwork::with_seed(3);
    let (ib, rx) = inbox();
    net.register(2, ib);
    net.set_delay(Duration::from_millis(30), Duration::from_millis(60));
    let t0 = Instant::now();
    net.transport(1).send((0..50).map(|i| msg(2, i)).collect());
    assert!(rx.try_recv().is_err(), "nothing arrives before the minimum delay");
    let mut got = Vec::new();
    while got.len() < 50 && t0.elapsed() < Duration::from_secs(2) {
        if let Ok(Command::Raft(m)) = rx.recv_timeout(Duration::from_millis(100)) {
            got.push(m.index);
        }
    }
    let took = t0.elapsed();
    assert_eq!(got.len(), 50, "all delayed messages arrive");
    assert!(took >= Duration::from_millis(30) && took < Duration::from_millis(500), "{took:?}");
    assert_ne!(got, (0..50).collect::<Vec<_>>(), "random delays reorder messages");

    // A partition stops messages already in flight.
    net.transport(1).send(vec![msg(2, 99)]);
    net.partition(&[1], &[2]);
    assert!(rx.recv_timeout(Duration::from_millis(150)).is_err());
    assert_eq!(net.stats().delayed, 51);
    assert_eq!(net.stats().cut, 1);
}

// ---- §5.2 leader election ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_5_2_leader_election_after_leader_isolated() {
    let c = Cluster::start(3, InMemoryNetwork::new(), |_| {}).await;
    let (old, t1) = c.stable_leader(&c.all(), 0).await;
    c.commit(&c.all(), register()).await;

    c.net.isolate(old);
    // A leader cut off from its quorum cannot commit; check-quorum makes it
    // step down, failing the proposal (NotLeader) rather than leaving it hanging.
    assert_fails_fast(c.node(old), create("lost")).await;
    assert!(eventually(SETTLE, || c.node(old).status().leader_id != Some(old)).await, "isolated leader kept leading");

    let rest = c.without(&[old]);
    let (new, t2) = c.stable_leader(&rest, t1).await;
    assert_ne!(new, old);
    assert!(t2 > t1);
    c.commit(&rest, create("after-failover")).await;

    c.net.heal(old);
    // The old leader rejoins as a follower of the new one, without an election.
    assert_eq!(c.stable_leader(&c.all(), t1).await, (new, t2));
    let image = c.converged().await;
    assert_has_all(&image, &["after-failover".to_string()], "after heal");
    assert!(!image.topics.contains_key("lost"), "an uncommitted entry of the old leader was applied");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_5_2_no_leader_in_minority_partition() {
    let c = Cluster::start(5, InMemoryNetwork::new(), |_| {}).await;
    let (l, t1) = c.stable_leader(&c.all(), 0).await;
    c.commit(&c.all(), register()).await;
    let other = c.without(&[l])[0];
    let minority = vec![l, other];
    let majority = c.without(&minority);

    c.net.partition(&minority, &majority);
    assert_fails_fast(c.node(l), create("minority-write")).await;
    let (l2, t2) = c.stable_leader(&majority, t1).await;
    c.commit(&majority, create("majority-write")).await;

    // For several election timeouts, nobody in the minority leads or commits.
    let commits: Vec<_> = minority.iter().map(|&id| c.node(id).status().commit_index).collect();
    let window = Instant::now() + Duration::from_millis(600);
    while Instant::now() < window {
        for (&id, &commit) in minority.iter().zip(&commits) {
            let st = c.node(id).status();
            assert_ne!(st.leader_id, Some(id), "minority node {id} leads: {st:?}");
            assert_eq!(st.commit_index, commit, "minority node {id} committed: {st:?}");
            assert_eq!(st.term, t1, "minority node {id} raised its term (pre-vote should prevent it)");
        }
        tokio::time::sleep(TICK).await;
    }
    for &id in &minority {
        assert_fails_fast(c.node(id), create("minority-write-2")).await;
    }

    c.net.heal_all();
    assert_eq!(c.stable_leader(&c.all(), t1).await, (l2, t2), "the healed minority disrupted the leader");
    let image = c.converged().await;
    assert_has_all(&image, &["majority-write".to_string()], "after heal");
    assert!(!image.topics.contains_key("minority-write"), "an entry the minority leader never committed was applied");
    assert!(!image.topics.contains_key("minority-write-2"));
    c.shutdown().await;
}

// ---- §5.3 log replication ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_5_3_log_replication_under_message_drop() {
    for seed in [7, 42, 1234] {
        let net = InMemoryNetwork::with_seed(seed);
        net.set_drop_probability(0.25);
        net.set_delay(Duration::ZERO, Duration::from_millis(20));
        // Snapshots every 20 entries: lost snapshots travel too.
        let c = Cluster::start(3, net, |_| {}).await;
        c.commit(&c.all(), register()).await;
        let topics = names(&format!("s{seed}-"), 25);
        c.create_all(&c.all(), &topics).await;
        let stats = c.net.stats();
        assert!(stats.dropped > 0 && stats.delayed > 0, "seed {seed}: no faults injected: {stats:?}");
        // Committed before the heal: already on a quorum, so on the leader.
        let (l, _) = c.stable_leader(&c.all(), 0).await;
        assert_has_all(&c.node(l).metadata(), &topics, &format!("seed {seed}, leader {l} before heal"));

        c.net.heal_all();
        let image = c.converged().await;
        assert_has_all(&image, &topics, &format!("seed {seed}"));
        assert_eq!(image.topics.len(), topics.len(), "seed {seed}: unexpected topics");
        c.shutdown().await;
    }
}

/// A follower behind the leader's compacted log catches up by snapshot even
/// when the first snapshot message is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_5_3_lost_snapshot_is_resent() {
    let c = Cluster::start(3, InMemoryNetwork::new(), |_| {}).await;
    let (l, _) = c.stable_leader(&c.all(), 0).await;
    c.commit(&c.all(), register()).await;
    let f = c.without(&[l])[0];
    c.net.isolate(f);
    // Past `snapshot_every`: the leader compacts the entries f lacks.
    let topics = names("t", 30);
    c.create_all(&c.all(), &topics).await;
    c.net.drop_next(raft::eraftpb::MessageType::MsgSnapshot, 1);
    c.net.heal(f);
    let image = c.converged().await;
    assert_has_all(&image, &topics, "after a lost snapshot");
    assert_eq!(c.net.stats().dropped, 1);
    c.shutdown().await;
}

// ---- §5.4 safety ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_5_4_committed_entries_survive_leader_change() {
    let c = Cluster::start(3, InMemoryNetwork::new(), |_| {}).await;
    let (l1, t1) = c.stable_leader(&c.all(), 0).await;
    c.commit(&c.all(), register()).await;
    let (a, b, d) = (names("a", 8), names("b", 8), names("d", 8));
    c.create_all(&c.all(), &a).await;

    // First leader change: the new leader holds everything committed before
    // (Leader Completeness, §5.4.1) as soon as it commits in its term.
    c.net.isolate(l1);
    let rest = c.without(&[l1]);
    let (l2, t2) = c.stable_leader(&rest, t1).await;
    c.create_all(&rest, &b).await;
    assert_has_all(&c.node(l2).metadata(), &a, "second leader");
    c.net.heal(l1);
    assert_eq!(c.stable_leader(&c.all(), t1).await, (l2, t2));

    // Second leader change.
    c.net.isolate(l2);
    let rest = c.without(&[l2]);
    let (l3, t3) = c.stable_leader(&rest, t2).await;
    assert!(t3 > t2);
    c.create_all(&rest, &d).await;
    let img = c.node(l3).metadata();
    assert_has_all(&img, &a, "third leader");
    assert_has_all(&img, &b, "third leader");

    c.net.heal_all();
    let image = c.converged().await;
    for (set, label) in [(&a, "a"), (&b, "b"), (&d, "d")] {
        assert_has_all(&image, set, label);
    }
    assert_eq!(image.topics.len(), a.len() + b.len() + d.len());
    c.shutdown().await;
}

// ---- restarts ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_of_a_voter_catches_up() {
    let mut c = Cluster::start(3, InMemoryNetwork::new(), |_| {}).await;
    let (l, t) = c.stable_leader(&c.all(), 0).await;
    c.commit(&c.all(), register()).await;
    let before = names("before", 5);
    c.create_all(&c.all(), &before).await;
    c.converged().await;

    // A follower stops; the others commit past its log (and compact it).
    let f = c.without(&[l])[0];
    let stopped = c.nodes.remove(&f).unwrap();
    stopped.shutdown().await;
    let while_down = names("down", 30);
    c.create_all(&c.all(), &while_down).await;
    c.start_node(f);
    c.node(f).wait_ready(SETTLE).await.unwrap();
    let image = c.converged().await;
    assert_has_all(&image, &before, "after follower restart");
    assert_has_all(&image, &while_down, "after follower restart");
    assert_eq!(c.stable_leader(&c.all(), 0).await, (l, t), "a restarted follower disrupted the leader");

    // The leader stops: the others elect a new one and go on; it rejoins.
    let old = c.nodes.remove(&l).unwrap();
    old.shutdown().await;
    let (l2, t2) = c.stable_leader(&c.all(), t).await;
    let after = names("after", 10);
    c.create_all(&c.all(), &after).await;
    c.start_node(l);
    c.node(l).wait_ready(SETTLE).await.unwrap();
    let image = c.converged().await;
    for set in [&before, &while_down, &after] {
        assert_has_all(&image, set, "after leader restart");
    }
    assert_eq!(image.topics.len(), before.len() + while_down.len() + after.len());
    assert_eq!(c.stable_leader(&c.all(), 0).await, (l2, t2));
    c.shutdown().await;
}

// ---- thesis §9.6: pre-vote and check-quorum keep a stable leader ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_9_6_prevote_rejoining_node_does_not_disrupt_leader() {
    // Longer elections (200-400 ms) so that scheduling hiccups on a busy test
    // machine do not cause a real election during the checks.
    let c = Cluster::start(3, InMemoryNetwork::new(), |cfg| cfg.election_tick = 20).await;
    let (l, t) = c.stable_leader(&c.all(), 0).await;
    c.commit(&c.all(), register()).await;
    let f = c.without(&[l])[0];
    let stable = |phase: &str| {
        for id in c.all() {
            let st = c.node(id).status();
            assert_eq!(st.term, t, "{phase}: node {id} changed term: {st:?}");
            if id != f {
                assert_eq!(st.leader_id, Some(l), "{phase}: node {id} lost the leader: {st:?}");
            }
        }
    };

    // 1. f is isolated for several election timeouts: it keeps trying
    //    (pre-)elections, but never raises its term, so it cannot depose the
    //    leader when it comes back.
    c.net.isolate(f);
    assert!(eventually(SETTLE, || c.node(f).status().leader_id.is_none()).await, "f never noticed the leader gone");
    let window = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < window {
        stable("isolated");
        tokio::time::sleep(TICK).await;
    }
    c.commit(&c.all(), create("while-isolated")).await;
    c.net.heal(f);
    assert_eq!(c.stable_leader(&c.all(), 0).await, (l, t));
    c.converged().await;
    stable("healed");

    // 2. One-way cut leader -> f: f hears nobody but its pre-vote requests
    //    reach everyone; the leader and the other follower ignore them
    //    (leader lease under check-quorum).
    c.net.cut(l, f);
    assert!(eventually(SETTLE, || c.node(f).status().leader_id.is_none()).await, "f still hears the leader");
    let window = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < window {
        stable("one-way cut");
        tokio::time::sleep(TICK).await;
    }
    c.commit(&c.all(), create("while-cut")).await;
    c.net.restore(l, f);
    assert_eq!(c.stable_leader(&c.all(), 0).await, (l, t));
    let image = c.converged().await;
    assert_has_all(&image, &["while-isolated".to_string(), "while-cut".to_string()], "after restore");
    stable("restored");
    c.shutdown().await;
}
