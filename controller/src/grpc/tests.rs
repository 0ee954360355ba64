//! The quorum over real gRPC on 127.0.0.1, and the service's input checks.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use strata_protocol::v1::controller_raft_server::ControllerRaft;
use strata_protocol::v1::{HeartbeatRequest, ProposeRequest, RaftMessages};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Code, Request};

use super::forward::{decode_response, encode_result};
use super::*;
use crate::{CommandOutcome, Controller, ControllerConfig, ControllerError, MetadataCommand, MetadataError};

/// A controller voter with its gRPC server.
pub(crate) struct TestNode {
    pub(crate) controller: Controller,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl TestNode {
    pub(crate) async fn start(id: u64, dir: &Path, listener: TcpListener, voters: &HashMap<u64, String>) -> TestNode {
        Self::start_with(id, dir, listener, voters, |_| {}).await
    }

    /// Like `start`, with `tweak` applied to the test configuration.
    pub(crate) async fn start_with(
        id: u64,
        dir: &Path,
        listener: TcpListener,
        voters: &HashMap<u64, String>,
        tweak: impl FnOnce(&mut ControllerConfig),
    ) -> TestNode {
        let mut config = ControllerConfig::single_node(id, dir);
        config.tick_interval = Duration::from_millis(50);
        config.propose_timeout = Duration::from_secs(5);
        // Long enough that no broker is fenced for silence during the test.
        config.session_timeout = Duration::from_secs(60);
        tweak(&mut config);
        let controller =
            Controller::start_with_grpc(config, voters.clone(), tokio::runtime::Handle::current()).unwrap();
        let (shutdown, rx) = oneshot::channel::<()>();
        let service = RaftService::new(controller.clone()).into_server();
        let server = tokio::spawn(async move {
            let incoming = TcpIncoming::from(listener);
            let _ = Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
        });
        TestNode { controller, shutdown, server }
    }

    /// Stops the controller, then its server (aborted if it does not drain soon).
    pub(crate) async fn stop(self) {
        self.controller.shutdown().await;
        let _ = self.shutdown.send(());
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(1), &mut server).await.is_err() {
            server.abort();
            let _ = server.await;
        }
    }
}

/// Polls `f` until it holds or `timeout` passes.
pub(crate) async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// The leader all running `nodes` agree on, once they do.
pub(crate) async fn agreed_leader(nodes: &HashMap<u64, TestNode>, timeout: Duration) -> u64 {
    let mut leader = None;
    let agreed = eventually(timeout, || {
        let seen: Vec<_> = nodes.values().map(|n| n.controller.status().leader_id).collect();
        leader = seen[0].filter(|l| nodes.contains_key(l) && seen.iter().all(|s| *s == seen[0]));
        leader.is_some()
    })
    .await;
    assert!(agreed, "no agreed leader among {:?}", nodes.keys().collect::<Vec<_>>());
    leader.unwrap()
}

/// Three voters on loopback ports, each in its own directory under `root`:
/// the nodes, the voter address map, and the data directories.
pub(crate) async fn start_three_voters(
    root: &Path,
) -> (HashMap<u64, TestNode>, HashMap<u64, String>, HashMap<u64, PathBuf>) {
    let dirs: HashMap<u64, PathBuf> = (1..=3).map(|id| (id, root.join(format!("c{id}")))).collect();
    let mut listeners = HashMap::new();
    for id in 1..=3 {
        listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let voters: HashMap<u64, String> =
        listeners.iter().map(|(id, l)| (*id, l.local_addr().unwrap().to_string())).collect();
    let mut nodes = HashMap::new();
    for id in 1..=3 {
        nodes.insert(id, TestNode::start(id, &dirs[&id], listeners.remove(&id).unwrap(), &voters).await);
    }
    (nodes, voters, dirs)
}

fn topic_ids(c: &Controller) -> BTreeMap<String, String> {
    c.metadata().topics.values().map(|t| (t.name.clone(), t.id.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_voters_elect_forward_fail_over_and_rejoin() {
    let t0 = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, voters, dirs) = start_three_voters(root.path()).await;

    // A leader is elected and the cluster id is applied everywhere.
    let leader = agreed_leader(&nodes, Duration::from_secs(10)).await;
    for n in nodes.values() {
        n.controller.wait_ready(Duration::from_secs(5)).await.unwrap();
    }
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let (f1, f2) = (&nodes[&followers[0]].controller, &nodes[&followers[1]].controller);

    // Proposals from followers are forwarded to the leader.
    assert!(f1.register_broker(1, "127.0.0.1:9700", None).await.unwrap());
    // Heartbeats from followers are forwarded too: one from a fenced broker unfences it.
    let fence = MetadataCommand::FenceBroker { node_id: 1 };
    assert!(matches!(f1.propose_anywhere(fence).await.unwrap(), CommandOutcome::BrokerFenced { .. }));
    f2.heartbeat(1).await.unwrap();
    let unfenced = eventually(Duration::from_secs(5), || {
        nodes.values().all(|n| n.controller.metadata().brokers.get(&1).is_some_and(|b| !b.fenced))
    })
    .await;
    assert!(unfenced, "a forwarded heartbeat did not unfence broker 1");
    let e = f1.heartbeat(42).await.unwrap_err();
    assert!(matches!(e, ControllerError::Metadata(MetadataError::UnknownBroker { node_id: 42 })), "{e:?}");
    let orders = f1.create_topic("orders", 3, 1, BTreeMap::new()).await.unwrap();
    assert_eq!(orders.partitions.len(), 3);
    let converged = eventually(Duration::from_secs(5), || {
        nodes.values().all(|n| n.controller.metadata().topics.get("orders").map(|t| &t.id) == Some(&orders.id))
    })
    .await;
    assert!(converged, "images did not converge on 'orders'");
    let e = f2.create_topic("orders", 1, 1, BTreeMap::new()).await.unwrap_err();
    assert!(
        matches!(&e, ControllerError::Metadata(MetadataError::TopicAlreadyExists { name }) if name == "orders"),
        "{e:?}"
    );

    // The leader goes away; the other two elect a new one and accept proposals.
    let old_leader = leader;
    nodes.remove(&old_leader).unwrap().stop().await;
    let stopped_at = Instant::now();
    let leader = agreed_leader(&nodes, Duration::from_secs(8)).await;
    assert_ne!(leader, old_leader);
    assert!(stopped_at.elapsed() < Duration::from_secs(8));
    let follower = followers.iter().copied().find(|&id| id != leader).unwrap();
    nodes[&follower].controller.create_topic("audit", 1, 1, BTreeMap::new()).await.unwrap();
    nodes[&leader].controller.create_topic("events", 2, 1, BTreeMap::new()).await.unwrap();
    let expected = topic_ids(&nodes[&leader].controller);
    assert_eq!(expected.keys().collect::<Vec<_>>(), vec!["audit", "events", "orders"]);

    // The old leader restarts on its data dir and port, rejoins and catches up.
    let addr: SocketAddr = voters[&old_leader].parse().unwrap();
    let listener = TcpListener::bind(addr).await.unwrap();
    let node = TestNode::start(old_leader, &dirs[&old_leader], listener, &voters).await;
    nodes.insert(old_leader, node);
    let caught_up =
        eventually(Duration::from_secs(8), || nodes.values().all(|n| topic_ids(&n.controller) == expected)).await;
    assert!(caught_up, "the restarted voter did not catch up: {:?}", topic_ids(&nodes[&old_leader].controller));
    assert_eq!(agreed_leader(&nodes, Duration::from_secs(5)).await, leader);
    // And it can propose again, through the leader.
    nodes[&old_leader].controller.delete_topic("audit").await.unwrap();

    for (_, n) in nodes.drain() {
        n.stop().await;
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "took {:?}", t0.elapsed());
}

fn raft_message(from: u64, to: u64) -> bytes::Bytes {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.write_to_bytes().unwrap().into()
}

#[tokio::test]
async fn service_rejects_bad_input_and_proposes_locally() {
    let dir = tempfile::tempdir().unwrap();
    let c = Controller::start(ControllerConfig::single_node(1, dir.path())).unwrap();
    c.wait_ready(Duration::from_secs(5)).await.unwrap();
    let svc = RaftService::with_voters(c.clone(), [1, 2, 3].into_iter().collect());
    let step = |messages: Vec<bytes::Bytes>| {
        let svc = svc.clone();
        async move { svc.step(Request::new(RaftMessages { messages })).await }
    };

    let garbage = bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    assert_eq!(step(vec![garbage]).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(step(vec![raft_message(2, 5)]).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(step(vec![raft_message(9, 1)]).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(step(vec![raft_message(1, 1)]).await.unwrap_err().code(), Code::PermissionDenied);
    // A well-formed message from a voter is accepted (raft ignores a stale one).
    step(vec![raft_message(2, 1)]).await.unwrap();

    let bad = svc.propose(Request::new(ProposeRequest { command: b"{not json".to_vec().into() })).await;
    assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);

    let cmd = MetadataCommand::RegisterBroker { kafka_address: None, node_id: 7, address: "h:1".into(), rack: None };
    let ok = svc.propose(Request::new(ProposeRequest { command: cmd.encode().into() })).await.unwrap().into_inner();
    assert_eq!(ok.leader_hint, 1);
    assert!(ok.error_kind.is_empty(), "{ok:?}");
    match decode_response(ok) {
        Forwarded::Done(Ok(CommandOutcome::BrokerRegistered { node_id: 7, new: true })) => {}
        other => panic!("{other:?}"),
    }
    svc.heartbeat(Request::new(HeartbeatRequest { node_id: 7 })).await.unwrap();
    let unknown = svc.heartbeat(Request::new(HeartbeatRequest { node_id: 99 })).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let cmd = MetadataCommand::DeleteTopic { name: "nope".into() };
    let err = svc.propose(Request::new(ProposeRequest { command: cmd.encode().into() })).await.unwrap().into_inner();
    assert_eq!(err.error_kind, "Metadata");
    match decode_response(err) {
        Forwarded::Done(Err(ControllerError::Metadata(MetadataError::UnknownTopic { name }))) => {
            assert_eq!(name, "nope")
        }
        other => panic!("{other:?}"),
    }
    c.shutdown().await;
    let stopped = svc.step(Request::new(RaftMessages { messages: vec![raft_message(2, 1)] })).await;
    assert_eq!(stopped.unwrap_err().code(), Code::Unavailable);
}

#[test]
fn propose_responses_round_trip_errors() {
    let not_leader = encode_result(&Err(ControllerError::NotLeader { leader: Some(3) }), 3);
    assert!(matches!(decode_response(not_leader), Forwarded::Retry { leader_hint: Some(3) }));
    let stopped = encode_result(&Err(ControllerError::Stopped), 0);
    assert!(matches!(decode_response(stopped), Forwarded::Retry { leader_hint: None }));
    let timeout = encode_result(&Err(ControllerError::Timeout), 2);
    assert!(matches!(decode_response(timeout), Forwarded::Done(Err(ControllerError::Timeout))));
    let raft = encode_result(&Err(ControllerError::Raft(raft::Error::ProposalDropped)), 2);
    match decode_response(raft) {
        Forwarded::Done(Err(ControllerError::Remote { kind, message })) => {
            assert_eq!(kind, "Raft");
            assert!(message.contains("dropped"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
