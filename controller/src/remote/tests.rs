//! A broker-only node's view of the quorum over real gRPC on 127.0.0.1:
//! proposals and heartbeats find the leader, the quorum status comes from
//! the leader, and a [`MetadataFollower`] reaches exactly the voters' image
//! through deltas and snapshots, across a leader failover.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;

use super::*;
use crate::grpc::tests::{agreed_leader, eventually, start_three_voters, TestNode};
use crate::metadata::{MetadataError, MetadataImage};

async fn three_voters(root: &std::path::Path) -> (HashMap<u64, TestNode>, HashMap<u64, String>, HashMap<u64, PathBuf>) {
    let (nodes, voters, dirs) = start_three_voters(root).await;
    agreed_leader(&nodes, Duration::from_secs(10)).await;
    for n in nodes.values() {
        n.controller.wait_ready(Duration::from_secs(5)).await.unwrap();
    }
    (nodes, voters, dirs)
}

fn create(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        topic_id: format!("id-{name}"),
        partitions: 2,
        replication_factor: 1,
        configs: BTreeMap::new(),
    }
}

/// Polls the follower until its image equals `expected` (or `timeout`).
async fn follow_until(follower: &mut MetadataFollower, expected: &MetadataImage, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if *follower.image() == *expected {
            return true;
        }
        let _ = follower.poll_once(Duration::from_millis(200)).await;
    }
    *follower.image() == *expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_only_client_proposes_follows_deltas_and_survives_failover() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, voters, _) = three_voters(root.path()).await;
    let client = ControllerClient::new(voters.clone(), Duration::from_secs(5)).unwrap();

    // Proposals and heartbeats reach the leader from outside the quorum.
    let outcome = client
        .propose(MetadataCommand::RegisterBroker {
            kafka_address: None,
            node_id: 7,
            address: "127.0.0.1:9770".into(),
            rack: None,
        })
        .await
        .unwrap();
    assert!(matches!(outcome, CommandOutcome::BrokerRegistered { node_id: 7, new: true }), "{outcome:?}");
    client.heartbeat(7).await.unwrap();
    let e = client.heartbeat(99).await.unwrap_err();
    assert!(matches!(e, ControllerError::Metadata(MetadataError::UnknownBroker { node_id: 99 })), "{e:?}");
    let leader = client.known_leader().unwrap();
    assert_eq!(nodes[&leader].controller.status().leader_id, Some(leader));

    // The quorum status comes from the leader, whichever voter is asked first.
    let q = client.describe_quorum().await.unwrap();
    assert_eq!(q.leader_id, leader);
    assert_eq!(q.voter_match_index.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    for n in nodes.values() {
        let q = n.controller.describe_quorum().await.unwrap();
        assert_eq!(q.leader_id, leader, "voter {} reports another leader", n.controller.node_id());
    }

    // A follower starting from nothing reaches the voters' image.
    let mut follower = MetadataFollower::new(client.clone());
    let updates = follower.subscribe();
    for t in ["a", "b", "c"] {
        client.propose(create(t)).await.unwrap();
    }
    // A rejected command travels in the deltas too and changes nothing.
    assert!(client.propose(create("a")).await.is_err());
    let expected = nodes[&leader].controller.metadata();
    assert!(follow_until(&mut follower, &expected, Duration::from_secs(5)).await);
    assert!(updates.has_changed().unwrap(), "the follower did not publish its image");

    // Deltas keep coming, one long poll at a time.
    client.propose(MetadataCommand::DeleteTopic { name: "b".into() }).await.unwrap();
    let expected = nodes[&leader].controller.metadata();
    assert!(follow_until(&mut follower, &expected, Duration::from_secs(5)).await);
    assert!(!follower.image().topics.contains_key("b"));

    // The leader dies: the client finds the new one; the follower keeps up.
    nodes.remove(&leader).unwrap().stop().await;
    let new_leader = agreed_leader(&nodes, Duration::from_secs(10)).await;
    client.propose(create("d")).await.unwrap();
    assert_eq!(client.known_leader(), Some(new_leader));
    let expected = nodes[&new_leader].controller.metadata();
    assert!(follow_until(&mut follower, &expected, Duration::from_secs(10)).await, "{:?}", follower.image());
    for (_, n) in nodes.drain() {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_a_restarted_voter_gets_a_snapshot_then_deltas() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("c1");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let voters: HashMap<u64, String> = [(1, addr.to_string())].into();
    // Snapshots every 2 entries: the restarted voter loads one.
    let node = TestNode::start_with(1, &dir, listener, &voters, |c| c.snapshot_every = 2).await;
    node.controller.wait_ready(Duration::from_secs(5)).await.unwrap();
    node.controller.register_broker(1, "127.0.0.1:9700", None).await.unwrap();
    for t in ["a", "b"] {
        node.controller.propose(create(t)).await.unwrap();
    }
    node.stop().await;
    // After a restart the voter no longer knows the commands compacted into
    // its snapshot: a follower at 0 must get the whole image.
    let listener = TcpListener::bind(addr).await.unwrap();
    let node = TestNode::start_with(1, &dir, listener, &voters, |c| c.snapshot_every = 2).await;
    node.controller.wait_ready(Duration::from_secs(5)).await.unwrap();
    // The entries after the snapshot are re-applied once it leads again.
    assert!(eventually(Duration::from_secs(5), || node.controller.metadata().topics.contains_key("b")).await);
    let loaded = node.controller.metadata().offset;
    match node.controller.fetch_metadata(0, Duration::ZERO).await.unwrap() {
        MetadataDelta::Snapshot(image) => {
            assert!(image.offset >= loaded && image.topics.contains_key("b"), "{image:?} loaded at {loaded}")
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    let client = ControllerClient::new(voters, Duration::from_secs(5)).unwrap();
    let mut follower = MetadataFollower::new(client.clone());
    assert!(follower.poll_once(Duration::ZERO).await.unwrap());
    client.propose(create("c")).await.unwrap();
    let at = follower.image().offset;
    match node.controller.fetch_metadata(at, Duration::ZERO).await.unwrap() {
        MetadataDelta::Entries { entries, .. } => assert_eq!(entries.len(), 1, "one command since {at}"),
        other => panic!("expected deltas, got {other:?}"),
    }
    let expected = node.controller.metadata();
    assert!(follow_until(&mut follower, &expected, Duration::from_secs(5)).await);

    // A long poll with nothing new returns after its wait, unchanged.
    let t0 = std::time::Instant::now();
    assert!(!follower.poll_once(Duration::from_millis(300)).await.unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(250), "returned after {:?}", t0.elapsed());
    node.stop().await;
}

#[tokio::test]
async fn unreachable_voters_fail_with_a_timeout_not_a_hang() {
    // A port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let client = ControllerClient::new([(1, addr.to_string())].into(), Duration::from_millis(700)).unwrap();
    let t0 = std::time::Instant::now();
    let e = client.heartbeat(1).await.unwrap_err();
    assert!(matches!(e, ControllerError::Timeout), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
    assert!(ControllerClient::new(HashMap::new(), Duration::from_secs(1)).is_err());
    let mut follower = MetadataFollower::new(client);
    assert!(follower.poll_once(Duration::from_millis(100)).await.is_err());
}

#[test]
fn hostile_deltas_are_errors_not_panics() {
    let client = ControllerClient::new([(1, "127.0.0.1:1".into())].into(), Duration::from_secs(1)).unwrap();
    let mut follower = MetadataFollower::new(client);
    let bad = MetadataDelta::Entries { entries: vec![(1, bytes::Bytes::from_static(b"{not json"))], offset: 1 };
    assert!(follower.apply(bad).is_err());
    assert_eq!(follower.image().offset, 0, "a bad delta must not move the image");
}
