//! Consumer-group offsets on a real in-process node (`strata_server::run`)
//! over loopback: the offsets topic created on first use, commits and
//! fetches, overwrites, per-partition and request errors, group deletion,
//! listing and description, and offsets surviving a restart (replayed from
//! the offsets log).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ::strata_server::config::DevArgs;
use strata_protocol::v1::*;

const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The in-process node of the test kit, with helpers for the group RPCs.
struct Node(::strata_server::testkit::TestNode);

impl std::ops::Deref for Node {
    type Target = ::strata_server::testkit::TestNode;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Node {
    /// A node whose offsets topic has 4 partitions (set in its TOML file).
    async fn start(dir: &std::path::Path) -> Node {
        Self::start_toml(dir, "").await
    }

    /// [`Node::start`] with more TOML settings.
    async fn start_toml(dir: &std::path::Path, extra: &str) -> Node {
        let toml = format!("offsets_topic_partitions = 4\n{extra}");
        Node(::strata_server::testkit::TestNode::start_with_toml(dir, &toml).await)
    }

    async fn start_with(args: DevArgs) -> Node {
        Node(::strata_server::testkit::TestNode::start_with(args).await)
    }

    async fn stop(self) -> DevArgs {
        self.0.stop().await
    }

    async fn create_topic(&mut self, name: &str, partitions: u32) {
        let r = self
            .client
            .create_topics(CreateTopicsRequest {
                topics: vec![TopicSpec { name: name.into(), partitions, ..Default::default() }],
                validate_only: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(&r.results[0].error), ErrorCode::None, "{:?}", r.results[0].error);
    }

    async fn find(&mut self, group: &str) -> FindCoordinatorResponse {
        self.client.find_coordinator(FindCoordinatorRequest { group_id: group.into() }).await.unwrap().into_inner()
    }

    /// Commits, retrying request-level retriable errors (a coordinator
    /// still loading, leadership settling after a restart).
    async fn commit(&mut self, group: &str, offsets: &[(&str, u32, u64, &str)]) -> CommitOffsetsResponse {
        let req = CommitOffsetsRequest {
            group_id: group.into(),
            member_id: String::new(),
            member_epoch: -1,
            partitions: offsets
                .iter()
                .map(|(t, p, o, m)| OffsetCommitPartition {
                    topic: t.to_string(),
                    partition: *p,
                    offset: *o,
                    metadata: m.to_string(),
                })
                .collect(),
        };
        retry(|| {
            let mut c = self.client.clone();
            let req = req.clone();
            async move {
                let r = c.commit_offsets(req).await.unwrap().into_inner();
                (code(&r.error), r)
            }
        })
        .await
    }

    async fn fetch(&mut self, group: &str, partitions: Vec<TopicPartitions>) -> FetchOffsetsResponse {
        let req = FetchOffsetsRequest { group_id: group.into(), partitions };
        retry(|| {
            let mut c = self.client.clone();
            let req = req.clone();
            async move {
                let r = c.fetch_offsets(req).await.unwrap().into_inner();
                (code(&r.error), r)
            }
        })
        .await
    }

    async fn describe(&mut self, groups: &[&str]) -> DescribeGroupsResponse {
        let req = DescribeGroupsRequest { group_ids: groups.iter().map(|g| g.to_string()).collect() };
        retry(|| {
            let mut c = self.client.clone();
            let req = req.clone();
            async move {
                let r = c.describe_groups(req).await.unwrap().into_inner();
                let retriable = r.groups.iter().map(|g| code(&g.error)).find(|c| c.is_retriable());
                (retriable.unwrap_or(ErrorCode::None), r)
            }
        })
        .await
    }

    async fn delete(&mut self, groups: &[&str]) -> DeleteGroupsResponse {
        let req = DeleteGroupsRequest { group_ids: groups.iter().map(|g| g.to_string()).collect() };
        self.client.delete_groups(req).await.unwrap().into_inner()
    }

    async fn list(&mut self) -> ListGroupsResponse {
        retry(|| {
            let mut c = self.client.clone();
            async move {
                let r = c.list_groups(ListGroupsRequest {}).await.unwrap().into_inner();
                (code(&r.error), r)
            }
        })
        .await
    }
}

/// Runs `f` until its code is not retriable (bounded).
async fn retry<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (ErrorCode, T)>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (c, r) = f().await;
        if !c.is_retriable() || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET `path` from the node's HTTP port (a bare HTTP/1.0 request).
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

fn code(e: &Option<Error>) -> ErrorCode {
    strata_protocol::errors::code_of(e)
}

fn tp(topic: &str, partitions: &[u32]) -> TopicPartitions {
    TopicPartitions { topic: topic.into(), partitions: partitions.to_vec() }
}

/// (topic, partition, offset, metadata) of each fetched offset.
fn offsets(r: &FetchOffsetsResponse) -> Vec<(String, u32, i64, String)> {
    assert_eq!(code(&r.error), ErrorCode::None, "{:?}", r.error);
    r.partitions.iter().map(|p| (p.topic.clone(), p.partition, p.offset, p.metadata.clone())).collect()
}

fn row(t: &str, p: u32, o: i64, m: &str) -> (String, u32, i64, String) {
    (t.to_string(), p, o, m.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn find_coordinator_creates_the_offsets_topic() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path()).await;
    let topics = node.client.list_topics(ListTopicsRequest {}).await.unwrap().into_inner().topics;
    assert!(topics.iter().all(|t| t.name != OFFSETS_TOPIC), "not created before it is needed");
    let r = node.find("g1").await;
    assert_eq!(code(&r.error), ErrorCode::None, "{:?}", r.error);
    assert_eq!(r.node_id, 1);
    assert_eq!(r.address, node.args.listen.to_string());
    let topics = node.client.list_topics(ListTopicsRequest {}).await.unwrap().into_inner().topics;
    let t = topics.iter().find(|t| t.name == OFFSETS_TOPIC).expect("offsets topic created");
    assert_eq!((t.partitions, t.replication_factor), (4, 1));
    // A second lookup (another group) reuses it.
    assert_eq!(code(&node.find("g2").await.error), ErrorCode::None);
    for bad in [String::new(), "x".repeat(256)] {
        assert_eq!(code(&node.find(&bad).await.error), ErrorCode::InvalidGroupId);
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_then_fetch_and_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path()).await;
    node.create_topic("orders", 3).await;
    // Committing creates the offsets topic too (no FindCoordinator first).
    let r = node.commit("billing", &[("orders", 0, 5, "m0"), ("orders", 1, 7, "")]).await;
    assert_eq!(code(&r.error), ErrorCode::None, "{:?}", r.error);
    assert!(r.partitions.iter().all(|p| p.error.is_none()), "{r:?}");
    let all = node.fetch("billing", vec![]).await;
    assert_eq!(offsets(&all), [row("orders", 0, 5, "m0"), row("orders", 1, 7, "")]);
    assert!(all.partitions.iter().all(|p| p.commit_timestamp > 0));
    let listed = node.fetch("billing", vec![tp("orders", &[0, 2])]).await;
    assert_eq!(offsets(&listed), [row("orders", 0, 5, "m0"), row("orders", 2, -1, "")]);
    let whole_topic = node.fetch("billing", vec![tp("orders", &[])]).await;
    assert_eq!(offsets(&whole_topic).len(), 3);
    // Overwrite.
    node.commit("billing", &[("orders", 0, 9, "m1")]).await;
    let again = node.fetch("billing", vec![tp("orders", &[0])]).await;
    assert_eq!(offsets(&again), [row("orders", 0, 9, "m1")]);
    // Another group is independent; an unknown group has nothing.
    let other = node.fetch("nobody", vec![tp("orders", &[0])]).await;
    assert_eq!(offsets(&other), [row("orders", 0, -1, "")]);
    assert!(offsets(&node.fetch("nobody", vec![]).await).is_empty());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_errors_are_per_partition_or_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path()).await;
    node.create_topic("orders", 2).await;
    let r = node.commit("g", &[("orders", 0, 3, ""), ("orders", 5, 1, ""), ("nope", 0, 1, "")]).await;
    assert_eq!(code(&r.error), ErrorCode::None);
    let codes: Vec<ErrorCode> = r.partitions.iter().map(|p| code(&p.error)).collect();
    assert_eq!(codes, [ErrorCode::None, ErrorCode::UnknownTopicOrPartition, ErrorCode::UnknownTopicOrPartition]);
    assert!(r.partitions[2].error.as_ref().unwrap().message.contains("nope"));
    // The valid partition was committed, the others not.
    let f = node.fetch("g", vec![]).await;
    assert_eq!(offsets(&f), [row("orders", 0, 3, "")]);
    // Offsets that do not fit an int64, oversized metadata.
    let big = "m".repeat(5000);
    let r = node.commit("g", &[("orders", 1, u64::MAX, ""), ("orders", 1, 1, &big)]).await;
    assert!(r.partitions.iter().all(|p| code(&p.error) == ErrorCode::InvalidRequest), "{r:?}");
    // Invalid group ids: request-level, nothing written.
    for bad in [String::new(), "x".repeat(256)] {
        let r = node.commit(&bad, &[("orders", 0, 1, "")]).await;
        assert_eq!(code(&r.error), ErrorCode::InvalidGroupId);
        assert!(r.partitions.is_empty());
    }
    let f = node.client.fetch_offsets(FetchOffsetsRequest { group_id: String::new(), partitions: vec![] }).await;
    assert_eq!(code(&f.unwrap().into_inner().error), ErrorCode::InvalidGroupId);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_describe_and_delete_groups() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path()).await;
    // Before the offsets topic exists: no groups, nothing to describe.
    assert!(node.list().await.groups.is_empty());
    let d = node.describe(&["a"]).await;
    assert_eq!(code(&d.groups[0].error), ErrorCode::GroupIdNotFound);
    node.create_topic("t", 2).await;
    node.commit("a", &[("t", 0, 1, "x"), ("t", 1, 2, "")]).await;
    node.commit("b", &[("t", 0, 4, "")]).await;
    let l = node.list().await;
    let listed: Vec<(String, String, u32)> =
        l.groups.iter().map(|g| (g.group_id.clone(), g.state.clone(), g.coordinator)).collect();
    assert_eq!(listed, [("a".into(), "empty".into(), 1), ("b".into(), "empty".into(), 1)]);
    let metrics = http_get(node.args.http_listen, "/metrics").await;
    assert!(metrics.lines().any(|l| l == "strata_groups 2"), "{metrics}");
    // Per group-partition committed offsets, and lag against the local high
    // watermark (nothing produced: committed beyond it counts as no lag).
    let committed = r#"strata_group_committed_offset{group="a",topic="t",partition="1"} 2"#;
    assert!(metrics.lines().any(|l| l == committed), "{metrics}");
    let lag = r#"strata_group_lag{group="b",topic="t",partition="0"} 0"#;
    assert!(metrics.lines().any(|l| l == lag), "{metrics}");
    let d = node.describe(&["a", "missing"]).await;
    let a = &d.groups[0];
    assert_eq!((code(&a.error), a.state.as_str(), a.coordinator), (ErrorCode::None, "empty", 1));
    assert!(a.members.is_empty());
    let a_offsets: Vec<(u32, i64)> = a.offsets.iter().map(|o| (o.partition, o.offset)).collect();
    assert_eq!(a_offsets, [(0, 1), (1, 2)]);
    assert_eq!((code(&d.groups[1].error), d.groups[1].state.as_str()), (ErrorCode::GroupIdNotFound, "dead"));
    // Delete: tombstones, then the group is gone everywhere.
    let r = node.delete(&["a", "missing", ""]).await;
    let codes: Vec<ErrorCode> = r.results.iter().map(|g| code(&g.error)).collect();
    assert_eq!(codes, [ErrorCode::None, ErrorCode::GroupIdNotFound, ErrorCode::InvalidGroupId]);
    let f = node.fetch("a", vec![tp("t", &[0, 1])]).await;
    assert_eq!(offsets(&f), [row("t", 0, -1, ""), row("t", 1, -1, "")]);
    assert_eq!(code(&node.describe(&["a"]).await.groups[0].error), ErrorCode::GroupIdNotFound);
    let names: Vec<String> = node.list().await.groups.into_iter().map(|g| g.group_id).collect();
    assert_eq!(names, ["b"]);
    // A deleted group can commit again.
    node.commit("a", &[("t", 1, 8, "")]).await;
    assert_eq!(offsets(&node.fetch("a", vec![]).await), [row("t", 1, 8, "")]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path()).await;
    node.create_topic("t", 3).await;
    node.commit("keep", &[("t", 0, 10, "a"), ("t", 1, 11, "")]).await;
    node.commit("keep", &[("t", 0, 12, "b")]).await;
    node.commit("gone", &[("t", 2, 1, "")]).await;
    assert_eq!(code(&node.delete(&["gone"]).await.results[0].error), ErrorCode::None);
    let before = offsets(&node.fetch("keep", vec![]).await);
    let args = node.stop().await;

    let mut node = Node::start_with(args).await;
    let after = offsets(&node.fetch("keep", vec![]).await);
    assert_eq!(after, before);
    assert_eq!(after, [row("t", 0, 12, "b"), row("t", 1, 11, "")]);
    assert!(offsets(&node.fetch("gone", vec![]).await).is_empty(), "the tombstones were replayed");
    let names: Vec<String> = node.list().await.groups.into_iter().map(|g| g.group_id).collect();
    assert_eq!(names, ["keep"]);
    // And it keeps accepting commits after the reload.
    node.commit("keep", &[("t", 2, 3, "")]).await;
    assert_eq!(offsets(&node.fetch("keep", vec![tp("t", &[2])]).await), [row("t", 2, 3, "")]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_cannot_create_delete_or_write_internal_topics() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path()).await;
    let r = node
        .client
        .create_topics(CreateTopicsRequest {
            topics: vec![TopicSpec { name: "__mine".into(), ..Default::default() }],
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.results[0].error), ErrorCode::InvalidTopicName);
    assert!(r.results[0].error.as_ref().unwrap().message.contains("reserved"));
    assert_eq!(code(&node.find("g").await.error), ErrorCode::None);
    let r = node
        .client
        .delete_topics(DeleteTopicsRequest { names: vec![OFFSETS_TOPIC.into()] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.results[0].error), ErrorCode::InvalidTopicName);
    let mut b = strata_record::batch::BatchBuilder::new();
    b.append(1, Some(b"k"), Some(b"v"), &[]).unwrap();
    let r = node
        .client
        .produce(ProduceRequest {
            acks: -1,
            timeout_ms: 0,
            partitions: vec![PartitionRecords {
                topic: OFFSETS_TOPIC.into(),
                partition: 0,
                records: b.build().unwrap(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.partitions[0].error), ErrorCode::InvalidTopicName);
    node.stop().await;
}

/// A heartbeat of member `id` at `epoch` owning `owned`, subscribed to `t`.
fn beat(group: &str, id: &str, epoch: i32, owned: Vec<TopicPartitions>) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        group_id: group.into(),
        member_id: id.into(),
        member_epoch: epoch,
        client_id: "test".into(),
        session_timeout_ms: 2000,
        subscribed_topic_names: vec!["t".into()],
        owned_partitions: owned,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_join_share_partitions_commit_with_their_epoch_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path()).await;
    node.create_topic("t", 4).await;
    let mut c = node.client.clone();
    let join = |req: ConsumerGroupHeartbeatRequest| {
        let c = c.clone();
        async move {
            retry(|| {
                let mut c = c.clone();
                let req = req.clone();
                async move {
                    let r = c.consumer_group_heartbeat(req).await.unwrap().into_inner();
                    (code(&r.error), r)
                }
            })
            .await
        }
    };
    let a = join(beat("g", "", 0, vec![])).await;
    assert_eq!(code(&a.error), ErrorCode::None, "{:?}", a.error);
    assert!(!a.member_id.is_empty() && a.member_epoch > 0 && a.heartbeat_interval_ms > 0);
    assert_eq!(a.assignment, [tp("t", &[0, 1, 2, 3])]);
    // B joins; it gets partitions only after A gave them up.
    let b = join(beat("g", "", 0, vec![])).await;
    assert!(b.assignment.is_empty() && b.reconciling, "B waits for its partitions: {b:?}");
    let a2 = join(beat("g", &a.member_id, a.member_epoch, a.assignment.clone())).await;
    assert_eq!(a2.assignment.iter().map(|t| t.partitions.len()).sum::<usize>(), 2);
    let a3 = join(beat("g", &a.member_id, a2.member_epoch, a2.assignment.clone())).await;
    let b2 = join(beat("g", &b.member_id, b.member_epoch, vec![])).await;
    assert_eq!(b2.assignment.iter().map(|t| t.partitions.len()).sum::<usize>(), 2);
    assert!(!b2.reconciling && !a3.reconciling, "both hold their targets");
    // Describe: both members, their partitions, reconciled.
    let d = node.describe(&["g"]).await;
    let g = &d.groups[0];
    assert_eq!((g.state.as_str(), g.assignor.as_str(), g.members.len()), ("stable", "uniform", 2), "{g:?}");
    assert!(g.members.iter().all(|m| m.client_id == "test" && m.client_host == "127.0.0.1"));
    let metrics = http_get(node.args.http_listen, "/metrics").await;
    assert!(metrics.lines().any(|l| l == r#"strata_group_members{group="g"} 2"#), "{metrics}");
    // Commits: a member at its epoch; stale epochs, strangers and admins
    // are refused while the group has members; so are delete and reset.
    let commit = |member: &str, epoch: i32| CommitOffsetsRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        partitions: vec![OffsetCommitPartition { topic: "t".into(), partition: 0, offset: 5, metadata: String::new() }],
    };
    let r = c.commit_offsets(commit(&a.member_id, a3.member_epoch)).await.unwrap().into_inner();
    assert_eq!(code(&r.error), ErrorCode::None, "{:?}", r.error);
    let r = c.commit_offsets(commit(&a.member_id, a.member_epoch - 1)).await.unwrap().into_inner();
    assert_eq!(code(&r.error), ErrorCode::StaleMemberEpoch);
    let r = c.commit_offsets(commit("stranger", 1)).await.unwrap().into_inner();
    assert_eq!(code(&r.error), ErrorCode::CoordinatorLoadInProgress, "a fresh coordinator may still adopt it");
    let r = c.commit_offsets(commit("", -1)).await.unwrap().into_inner();
    assert_eq!(code(&r.error), ErrorCode::NonEmptyGroup);
    let r = node.delete(&["g"]).await;
    assert_eq!(code(&r.results[0].error), ErrorCode::NonEmptyGroup);
    // A wrong epoch is fenced; a bad pattern is named.
    let r = c.consumer_group_heartbeat(beat("g", &b.member_id, 99, vec![])).await.unwrap().into_inner();
    assert_eq!(code(&r.error), ErrorCode::FencedMemberEpoch);
    let bad = ConsumerGroupHeartbeatRequest {
        subscribed_topic_names: vec![],
        subscribed_topic_regex: "t(".into(),
        ..beat("g", "", 0, vec![])
    };
    let r = c.consumer_group_heartbeat(bad).await.unwrap().into_inner();
    assert_eq!(code(&r.error), ErrorCode::InvalidRegularExpression, "{:?}", r.error);
    // A leaves; B (silent) is evicted after its session: the group empties
    // without anyone heartbeating, and can be deleted.
    let r = c.consumer_group_heartbeat(beat("g", &a.member_id, -1, vec![])).await.unwrap().into_inner();
    assert_eq!(code(&r.error), ErrorCode::None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = node.describe(&["g"]).await;
        if d.groups[0].members.is_empty() {
            assert_eq!(d.groups[0].state, "empty");
            break;
        }
        assert!(Instant::now() < deadline, "B was never evicted: {d:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = node.delete(&["g"]).await;
    assert_eq!(code(&r.results[0].error), ErrorCode::None);
    node.stop().await;
}

/// The log start offset of `__consumer_offsets`-`partition`, per the node.
async fn offsets_log_start(node: &mut Node, partition: u32) -> u64 {
    let r = node
        .client
        .describe_topics(DescribeTopicsRequest { names: vec![OFFSETS_TOPIC.into()] })
        .await
        .unwrap()
        .into_inner();
    r.topics[0].partitions.iter().find(|p| p.partition == partition).map_or(0, |p| p.log_start_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_offsets_topic_is_compacted_by_key_and_reloads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start_toml(dir.path(), "offsets_compaction_min_records = 50\n").await;
    node.create_topic("t", 3).await;
    // A deleted group in the same offsets partition as the kept one.
    let index = strata_broker::offsets_partition_for("keep", 4);
    let gone =
        (0..).map(|i| format!("gone-{i}")).find(|g| strata_broker::offsets_partition_for(g, 4) == index).unwrap();
    node.commit(&gone, &[("t", 0, 7, "")]).await;
    assert_eq!(code(&node.delete(&[gone.as_str()]).await.results[0].error), ErrorCode::None);
    for i in 0..120u64 {
        node.commit("keep", &[("t", (i % 2) as u32, i, "m")]).await;
    }
    node.commit("keep", &[("t", 2, 5, "last")]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while offsets_log_start(&mut node, index).await == 0 {
        assert!(Instant::now() < deadline, "the offsets partition was never compacted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = offsets_log_start(&mut node, index).await;
    assert!(start >= 100, "log start {start}");
    let expected = [row("t", 0, 118, "m"), row("t", 1, 119, "m"), row("t", 2, 5, "last")];
    assert_eq!(offsets(&node.fetch("keep", vec![]).await), expected);
    // Commits keep working, and a restart replays the compacted log (the
    // copies and what came after) into the same state.
    node.commit("keep", &[("t", 1, 200, "after")]).await;
    let args = node.stop().await;
    let mut node = Node::start_with(args).await;
    assert!(offsets_log_start(&mut node, index).await >= start);
    let expected = [row("t", 0, 118, "m"), row("t", 1, 200, "after"), row("t", 2, 5, "last")];
    assert_eq!(offsets(&node.fetch("keep", vec![]).await), expected);
    assert!(offsets(&node.fetch(&gone, vec![]).await).is_empty(), "the deleted group stays deleted");
    node.stop().await;
}
