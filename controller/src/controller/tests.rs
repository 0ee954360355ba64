use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::*;
use crate::metadata::MetadataError;
use crate::raft_storage::{RaftStorage, LOG_FILE};

const READY: Duration = Duration::from_secs(5);

fn config(dir: &Path) -> ControllerConfig {
    ControllerConfig::single_node(1, dir)
}

async fn started(dir: &Path) -> Controller {
    let c = Controller::start(config(dir)).unwrap();
    c.wait_ready(READY).await.unwrap();
    c
}

/// Polls `f` until it holds or `timeout` passes.
async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

#[tokio::test]
async fn single_voter_leads_quickly_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let c = started(dir.path()).await;
    assert!(t0.elapsed() < Duration::from_secs(1), "took {:?} to become ready", t0.elapsed());
    let status = c.status();
    assert_eq!((status.node_id, status.leader_id, status.voters.clone()), (1, Some(1), vec![1]));

    assert!(c.register_broker(1, "127.0.0.1:9700", None).await.unwrap());
    assert!(!c.register_broker(1, "127.0.0.1:9700", Some("r1".into())).await.unwrap());
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_string(), "60000".to_string());
    let orders = c.create_topic("orders", 3, 1, configs.clone()).await.unwrap();
    let audit = c.create_topic("audit", 1, 1, BTreeMap::new()).await.unwrap();
    assert_eq!(orders.partitions.len(), 3);
    assert!(orders.partitions.iter().all(|p| p.leader == Some(1) && p.replicas == vec![1]));
    assert_ne!(orders.id, audit.id);
    let before = c.metadata();
    assert_eq!(before.topics["orders"], orders);
    assert_eq!(before.brokers[&1].rack.as_deref(), Some("r1"));
    assert!(!before.cluster_id.is_empty());
    let st = c.status();
    assert_eq!(st.applied_index, before.offset);
    assert!(st.commit_index >= st.applied_index && st.term >= 1);
    c.shutdown().await;

    let c = started(dir.path()).await;
    let after = c.metadata();
    assert_eq!(after.cluster_id, before.cluster_id);
    assert_eq!(after.topics, before.topics);
    assert_eq!(after.brokers, before.brokers);
    assert_eq!(after.topics["orders"].configs, configs);
    // Still writable after the restart.
    c.delete_topic("audit").await.unwrap();
    assert!(!c.metadata().topics.contains_key("audit"));
    c.shutdown().await;

    let c = started(dir.path()).await;
    assert_eq!(c.metadata().cluster_id, before.cluster_id);
    assert_eq!(c.metadata().topics.keys().collect::<Vec<_>>(), vec!["orders"]);
    c.shutdown().await;
}

#[tokio::test]
async fn rejected_commands_return_the_state_machine_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path()).await;
    let e = c.create_topic("t", 1, 1, BTreeMap::new()).await.unwrap_err();
    assert!(
        matches!(e, ControllerError::Metadata(MetadataError::InvalidReplicationFactor { requested: 1, available: 0 })),
        "{e}"
    );
    c.register_broker(1, "h:1", None).await.unwrap();
    c.create_topic("t", 1, 1, BTreeMap::new()).await.unwrap();
    let before = c.metadata();
    let e = c.create_topic("t", 2, 1, BTreeMap::new()).await.unwrap_err();
    assert!(matches!(&e, ControllerError::Metadata(MetadataError::TopicAlreadyExists { name }) if name == "t"), "{e}");
    let e = c.delete_topic("nope").await.unwrap_err();
    assert!(matches!(e, ControllerError::Metadata(MetadataError::UnknownTopic { .. })), "{e}");
    let after = c.metadata();
    assert_eq!(after.topics, before.topics);
    assert!(after.offset > before.offset, "rejected commands still advance the applied index");
    c.shutdown().await;
}

#[tokio::test]
async fn subscribers_follow_changes() {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path()).await;
    let mut rx = c.subscribe();
    rx.borrow_and_update();
    c.register_broker(7, "h:7", None).await.unwrap();
    tokio::time::timeout(READY, rx.changed()).await.unwrap().unwrap();
    assert!(rx.borrow().brokers.contains_key(&7));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_proposals_compact_the_log_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.snapshot_every = 500;
    cfg.propose_timeout = Duration::from_secs(20);
    let c = Controller::start(cfg.clone()).unwrap();
    c.wait_ready(READY).await.unwrap();
    c.register_broker(1, "h:1", None).await.unwrap();
    const N: usize = 3000;
    for chunk in 0..N / 100 {
        let mut set = JoinSet::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            let c = c.clone();
            set.spawn(async move { c.create_topic(format!("topic-{i}"), 1, 1, BTreeMap::new()).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
    }
    let before = c.metadata();
    assert_eq!(before.topics.len(), N);
    c.shutdown().await;

    // The log was compacted: a snapshot exists and fewer than `snapshot_every` entries remain.
    {
        let storage = RaftStorage::open(dir.path()).unwrap();
        assert!(storage.snapshot_index() >= 2500, "snapshot at {}", storage.snapshot_index());
        assert!(storage.entry_count() < 500, "{} entries left", storage.entry_count());
        let log_len = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        assert!(log_len < 500 * 400, "log is {log_len} bytes");
    }

    let c = Controller::start(cfg).unwrap();
    c.wait_ready(READY).await.unwrap();
    let after = c.metadata();
    assert_eq!(after.topics, before.topics);
    assert_eq!(after.cluster_id, before.cluster_id);
    assert!(after.offset >= before.offset);
    c.shutdown().await;
}

#[tokio::test]
async fn stopped_controller_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path()).await;
    let other = c.clone();
    c.shutdown().await;
    assert!(other.is_stopped());
    let t0 = Instant::now();
    let e = other.register_broker(1, "h:1", None).await.unwrap_err();
    assert!(matches!(e, ControllerError::Stopped), "{e}");
    assert!(matches!(other.wait_ready(READY).await, Err(ControllerError::Stopped)));
    assert!(t0.elapsed() < Duration::from_secs(1));
    // The last handle's drop does not hang either.
    drop(other);
}

#[tokio::test]
async fn drop_stops_the_thread_and_releases_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path()).await;
    c.register_broker(1, "h:1", None).await.unwrap();
    let t0 = Instant::now();
    drop(c);
    assert!(t0.elapsed() < Duration::from_secs(2));
    let c = started(dir.path()).await;
    assert!(c.metadata().brokers.contains_key(&1));
    // A second controller on the same directory is refused.
    assert!(matches!(Controller::start(config(dir.path())), Err(ControllerError::Storage { .. })));
    c.shutdown().await;
}

#[tokio::test]
async fn invalid_configs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.voters = vec![1, 2];
    assert!(matches!(Controller::start(cfg), Err(ControllerError::Raft(_))));
    let mut cfg = config(dir.path());
    cfg.election_tick = 1; // must exceed heartbeat_tick
    assert!(matches!(Controller::start(cfg), Err(ControllerError::Raft(_))));
    let cfg = ControllerConfig::single_node(0, dir.path());
    assert!(Controller::start(cfg).is_err());
}

#[tokio::test]
async fn corrupt_data_dir_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path()).await;
    c.shutdown().await;
    std::fs::write(dir.path().join(crate::raft_storage::HARD_STATE_FILE), b"garbage").unwrap();
    assert!(matches!(Controller::start(config(dir.path())), Err(ControllerError::Corrupt { .. })));
}

// ---- several voters over the in-memory transport ----

fn quorum_config(dir: &Path, id: u64) -> ControllerConfig {
    ControllerConfig {
        node_id: id,
        data_dir: dir.join(format!("node-{id}")),
        voters: vec![1, 2, 3],
        tick_interval: Duration::from_millis(10),
        election_tick: 10,
        heartbeat_tick: 1,
        snapshot_every: 20,
        propose_timeout: Duration::from_secs(5),
        session_timeout: Duration::from_secs(60),
        leader_balance_interval: Duration::ZERO,
    }
}

fn start_quorum(dir: &Path, net: &InMemoryNetwork) -> Vec<Controller> {
    (1..=3)
        .map(|id| {
            let c = Controller::start_with_transport(quorum_config(dir, id), Box::new(net.transport(id))).unwrap();
            net.register(id, c.raft_inbox());
            c
        })
        .collect()
}

async fn leader_of(nodes: &[Controller]) -> usize {
    let mut idx = None;
    let found = eventually(Duration::from_secs(10), || {
        idx = nodes.iter().position(|c| c.status().leader_id == Some(c.status().node_id));
        idx.is_some()
    })
    .await;
    assert!(found, "no leader elected");
    idx.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_replicate_and_catch_up_by_snapshot() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let net = InMemoryNetwork::new();
    let nodes = start_quorum(dir.path(), &net);
    for c in &nodes {
        c.wait_ready(Duration::from_secs(10)).await.unwrap();
    }
    let l = leader_of(&nodes).await;
    let leader = &nodes[l];
    let follower = &nodes[(l + 1) % 3];
    let e = follower.register_broker(1, "h:1", None).await.unwrap_err();
    assert!(matches!(e, ControllerError::NotLeader { leader: Some(id) } if id == leader.status().node_id), "{e}");

    leader.register_broker(1, "h:1", None).await.unwrap();
    leader.create_topic("a", 2, 1, BTreeMap::new()).await.unwrap();
    let want = leader.metadata();
    assert!(eventually(READY, || nodes.iter().all(|c| c.metadata().topics == want.topics)).await);
    let cluster_ids: Vec<_> = nodes.iter().map(|c| c.metadata().cluster_id.clone()).collect();
    assert!(cluster_ids.iter().all(|id| *id == cluster_ids[0] && !id.is_empty()));

    // A follower cut off while the leader compacts its log past it catches up
    // from a snapshot once it is back.
    let lagging = &nodes[(l + 2) % 3];
    net.isolate(lagging.status().node_id);
    for i in 0..60 {
        leader.create_topic(format!("t{i}"), 1, 1, BTreeMap::new()).await.unwrap();
    }
    let want = leader.metadata();
    net.heal(lagging.status().node_id);
    assert!(
        eventually(Duration::from_secs(10), || lagging.metadata().topics == want.topics).await,
        "lagging follower did not catch up: {:?} vs {:?}",
        (lagging.metadata().offset, lagging.metadata().topics.len(), lagging.status()),
        (want.offset, want.topics.len())
    );
    for c in nodes {
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposal_without_quorum_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let net = InMemoryNetwork::new();
    let nodes: Vec<_> = (1..=3)
        .map(|id| {
            let mut cfg = quorum_config(dir.path(), id);
            cfg.tick_interval = Duration::from_millis(50);
            cfg.propose_timeout = Duration::from_millis(200);
            let c = Controller::start_with_transport(cfg, Box::new(net.transport(id))).unwrap();
            net.register(id, c.raft_inbox());
            c
        })
        .collect();
    for c in &nodes {
        c.wait_ready(Duration::from_secs(10)).await.unwrap();
    }
    let l = leader_of(&nodes).await;
    for (i, c) in nodes.iter().enumerate() {
        if i != l {
            net.isolate(c.status().node_id);
        }
    }
    let t0 = Instant::now();
    let e = nodes[l].register_broker(1, "h:1", None).await.unwrap_err();
    assert!(matches!(e, ControllerError::Timeout | ControllerError::NotLeader { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    for c in nodes {
        c.shutdown().await;
    }
}

#[test]
fn handle_and_errors_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Controller>();
    assert_send_sync::<ControllerError>();
    assert_send_sync::<RaftInbox>();
}

// ---- broker liveness ----

#[tokio::test]
async fn silent_broker_is_fenced_and_a_heartbeat_unfences_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tick_interval = Duration::from_millis(20);
    cfg.session_timeout = Duration::from_millis(600);
    let c = Controller::start(cfg).unwrap();
    c.wait_ready(READY).await.unwrap();
    assert!(c.register_broker(1, "127.0.0.1:9701", None).await.unwrap());
    assert!(c.register_broker(2, "127.0.0.1:9702", None).await.unwrap());
    // RF 2 over brokers [1, 2]: partition 0 is led by 1, partition 1 by 2.
    let topic = c.create_topic("t", 2, 2, BTreeMap::new()).await.unwrap();
    assert_eq!(topic.partitions[1].leader, Some(2));
    assert!(topic.partitions.iter().all(|p| p.replicas.len() == 2));
    let e = c.heartbeat(9).await.unwrap_err();
    assert!(matches!(e, ControllerError::Metadata(MetadataError::UnknownBroker { node_id: 9 })), "{e:?}");

    // Only broker 1 heartbeats.
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(3);
    let mut fenced = false;
    while !fenced && Instant::now() < deadline {
        c.heartbeat(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        fenced = c.metadata().brokers[&2].fenced;
    }
    assert!(fenced, "broker 2 was not fenced");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(500), "fenced too early: {took:?}");
    assert!(took < Duration::from_millis(600 + 1000), "fenced too late: {took:?}");
    let img = c.metadata();
    assert!(!img.brokers[&1].fenced, "the heartbeating broker stays unfenced");
    let p1 = &img.topics["t"].partitions[1];
    assert_eq!((p1.leader, p1.leader_epoch, p1.partition_epoch), (Some(1), 1, 1));
    assert_eq!(p1.isr, vec![1], "the fenced broker leaves the ISR");
    let p0 = &img.topics["t"].partitions[0];
    assert_eq!((p0.leader, p0.leader_epoch), (Some(1), 0));

    // Broker 2 comes back: one heartbeat unfences it.
    c.heartbeat(2).await.unwrap();
    assert!(eventually(Duration::from_secs(2), || !c.metadata().brokers[&2].fenced).await, "not unfenced");
    // Leadership stays with 1 (no preferred-leader election here).
    assert_eq!(c.metadata().topics["t"].partitions[1].leader, Some(1));
    c.shutdown().await;
}

#[tokio::test]
async fn a_new_leader_restarts_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tick_interval = Duration::from_millis(20);
    cfg.session_timeout = Duration::from_millis(800);
    let c = Controller::start(cfg.clone()).unwrap();
    c.wait_ready(READY).await.unwrap();
    c.register_broker(1, "127.0.0.1:9701", None).await.unwrap();
    c.shutdown().await;
    // Silent for longer than the session, then a restart (a new term and leadership).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let c = Controller::start(cfg).unwrap();
    c.wait_ready(READY).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!c.metadata().brokers[&1].fenced, "fenced right after the election");
    assert!(eventually(Duration::from_secs(3), || c.metadata().brokers[&1].fenced).await);
    c.shutdown().await;
}

// ---- automatic preferred-leader balancing ----

/// Heartbeats `brokers` every 20 ms for `period`.
async fn heartbeats(c: &Controller, brokers: &[u32], period: Duration) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        for &b in brokers {
            c.heartbeat(b).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn leadership_returns_to_the_preferred_replica_once_it_is_back_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tick_interval = Duration::from_millis(20);
    cfg.session_timeout = Duration::from_millis(600);
    cfg.leader_balance_interval = Duration::from_millis(150);
    let c = Controller::start(cfg).unwrap();
    c.wait_ready(READY).await.unwrap();
    c.register_broker(1, "127.0.0.1:9701", None).await.unwrap();
    c.register_broker(2, "127.0.0.1:9702", None).await.unwrap();
    // RF 2 over brokers [1, 2]: partition 1 prefers 2.
    let topic = c.create_topic("t", 2, 2, BTreeMap::new()).await.unwrap();
    assert_eq!((topic.partitions[1].replicas.clone(), topic.partitions[1].leader), (vec![2, 1], Some(2)));

    // Broker 2 goes silent and is fenced: 1 leads partition 1, alone in its ISR.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !c.metadata().brokers[&2].fenced && Instant::now() < deadline {
        heartbeats(&c, &[1], Duration::from_millis(20)).await;
    }
    let p1 = c.metadata().topics["t"].partitions[1].clone();
    assert_eq!((p1.leader, p1.isr.clone()), (Some(1), vec![1]));

    // Back, but not in sync yet: several balance intervals move nothing.
    heartbeats(&c, &[1, 2], Duration::from_millis(500)).await;
    let img = c.metadata();
    assert!(!img.brokers[&2].fenced);
    assert_eq!(img.topics["t"].partitions[1], p1, "the preferred replica is not in the ISR yet");

    // Its leader adds it back to the ISR: the next check hands leadership back.
    let out = c
        .propose(MetadataCommand::AlterPartition {
            topic_id: topic.id.clone(),
            partition: 1,
            leader_id: 1,
            leader_epoch: p1.leader_epoch,
            partition_epoch: p1.partition_epoch,
            new_isr: vec![1, 2],
        })
        .await
        .unwrap();
    assert!(matches!(out, CommandOutcome::PartitionAltered { .. }), "{out:?}");
    let t0 = Instant::now();
    let mut back = false;
    while !back && t0.elapsed() < Duration::from_secs(3) {
        heartbeats(&c, &[1, 2], Duration::from_millis(20)).await;
        back = c.metadata().topics["t"].partitions[1].leader == Some(2);
    }
    assert!(back, "leadership did not return to the preferred replica: {:?}", c.metadata().topics["t"]);
    let p1 = &c.metadata().topics["t"].partitions[1];
    assert_eq!((p1.leader_epoch, p1.isr.clone()), (2, vec![1, 2]));
    // Partition 0 was never moved.
    assert_eq!(c.metadata().topics["t"].partitions[0].leader_epoch, 0);
    c.shutdown().await;
}

#[tokio::test]
async fn a_zero_balance_interval_disables_balancing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tick_interval = Duration::from_millis(20);
    cfg.leader_balance_interval = Duration::ZERO;
    let c = Controller::start(cfg).unwrap();
    c.wait_ready(READY).await.unwrap();
    c.register_broker(1, "127.0.0.1:9701", None).await.unwrap();
    c.register_broker(2, "127.0.0.1:9702", None).await.unwrap();
    let topic = c.create_topic("t", 2, 2, BTreeMap::new()).await.unwrap();
    // A controlled shutdown of 2 moves partition 1 to 1; a re-registration
    // unfences 2, and its leader puts it back in the ISR.
    c.propose(MetadataCommand::ControlledShutdown { node_id: 2 }).await.unwrap();
    c.register_broker(2, "127.0.0.1:9702", None).await.unwrap();
    let p1 = c.metadata().topics["t"].partitions[1].clone();
    assert_eq!(p1.leader, Some(1));
    c.propose(MetadataCommand::AlterPartition {
        topic_id: topic.id.clone(),
        partition: 1,
        leader_id: 1,
        leader_epoch: p1.leader_epoch,
        partition_epoch: p1.partition_epoch,
        new_isr: vec![1, 2],
    })
    .await
    .unwrap();
    heartbeats(&c, &[1, 2], Duration::from_millis(400)).await;
    assert_eq!(c.metadata().topics["t"].partitions[1].leader, Some(1), "balanced although disabled");
    c.shutdown().await;
}
