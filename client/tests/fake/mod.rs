//! An in-process fake Strata cluster for the client's tests: N tonic
//! servers on 127.0.0.1:0 sharing one in-memory store. Each partition has a
//! leader broker; the others answer NOT_LEADER_OR_FOLLOWER. Offsets are
//! assigned densely, fetches return whole stored batches from the one
//! holding the fetch offset, and faults can be injected per partition.
//! Consumer groups: an in-memory committed-offsets store per group; each
//! group has a coordinator broker (the others answer NOT_COORDINATOR),
//! members can be planted to make a group active, and coordinator errors
//! can be injected. Group membership (`ConsumerGroupHeartbeat`) is a small
//! coordinator in `membership.rs`.
#![allow(dead_code)]

mod membership;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strata_protocol::v1::strata_server::{Strata, StrataServer};
use strata_protocol::v1::*;
use strata_record::batch::{set_base_offset, split_batches, BatchError, Record, RecordBatch};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// A fault answered instead of appending.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub topic: String,
    pub partition: u32,
    pub code: ErrorCode,
    /// Answers left with this fault.
    pub times: u32,
}

/// One produce request a broker received.
#[derive(Debug, Clone)]
pub(crate) struct ProduceLog {
    pub broker: u32,
    /// (topic, partition, batches in the entry).
    pub entries: Vec<(String, u32, usize)>,
}

#[derive(Debug, Default)]
pub(crate) struct Log {
    /// Stored batches with their base offsets set.
    pub batches: Vec<RecordBatch>,
    pub start: u64,
    pub end: u64,
}

#[derive(Debug)]
pub(crate) struct Topic {
    pub id: String,
    pub partitions: Vec<Log>,
    pub replication_factor: u32,
    pub configs: HashMap<String, String>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub brokers: Vec<(u32, String)>,
    pub topics: BTreeMap<String, Topic>,
    /// Leader per partition; absent means broker 1... by partition number.
    pub leaders: HashMap<(String, u32), u32>,
    pub produce_faults: VecDeque<Fault>,
    pub produce_log: Vec<ProduceLog>,
    pub fetch_requests: usize,
    pub describe_topics_calls: usize,
    /// Batches above this many bytes are RECORD_TOO_LARGE.
    pub max_batch_bytes: Option<usize>,
    /// Delay before answering a produce request.
    pub produce_delay: Duration,
    /// Committed offsets: group → (topic, partition) → commit.
    pub offsets: BTreeMap<String, BTreeMap<(String, u32), Commit>>,
    /// Members planted per group (the fake has no membership protocol).
    pub members: HashMap<String, Vec<GroupMemberDescription>>,
    /// Coordinator per group; absent means broker 1.
    pub coordinators: HashMap<String, u32>,
    /// Errors the coordinator answers group requests with, in order.
    pub group_faults: VecDeque<(String, ErrorCode, u32)>,
    pub find_coordinator_calls: usize,
    pub commit_requests: Vec<CommitOffsetsRequest>,
    /// Group membership per group.
    pub membership: HashMap<String, membership::FakeGroup>,
    /// Every heartbeat received.
    pub heartbeats: Vec<ConsumerGroupHeartbeatRequest>,
    /// The heartbeat interval members are told.
    pub heartbeat_interval_ms: u32,
}

/// One committed offset in the fake's store.
#[derive(Debug, Clone)]
pub(crate) struct Commit {
    pub offset: u64,
    pub metadata: String,
    pub timestamp: i64,
}

impl State {
    pub(crate) fn leader(&self, topic: &str, partition: u32) -> u32 {
        self.leaders
            .get(&(topic.to_owned(), partition))
            .copied()
            .unwrap_or_else(|| self.brokers[partition as usize % self.brokers.len()].0)
    }

    /// Records of a partition in log order.
    pub(crate) fn records(&self, topic: &str, partition: u32) -> Vec<Record> {
        self.topics[topic].partitions[partition as usize]
            .batches
            .iter()
            .flat_map(|b| b.records().map(Result::unwrap).collect::<Vec<_>>())
            .collect()
    }

    pub(crate) fn coordinator(&self, group: &str) -> u32 {
        self.coordinators.get(group).copied().unwrap_or(1)
    }

    /// The committed offset of a partition, if any.
    pub(crate) fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        self.offsets.get(group)?.get(&(topic.to_owned(), partition)).map(|c| c.offset)
    }

    fn group_state(&self, group: &str) -> &'static str {
        if self.members.get(group).is_some_and(|m| !m.is_empty()) {
            "stable"
        } else {
            "empty"
        }
    }

    fn group_exists(&self, group: &str) -> bool {
        self.offsets.contains_key(group) || self.members.contains_key(group)
    }

    /// The error a group request to broker `id` gets before it is served:
    /// a bad group id, NOT_COORDINATOR, or an injected fault.
    fn group_check(&mut self, id: u32, group: &str) -> Option<Error> {
        if group.is_empty() {
            return err(ErrorCode::InvalidGroupId, "the group id must not be empty");
        }
        if self.coordinator(group) != id {
            return err(ErrorCode::NotCoordinator, format!("broker {id} is not the coordinator of group '{group}'"));
        }
        let f = self.group_faults.iter_mut().find(|(g, _, times)| g == group && *times > 0)?;
        f.2 -= 1;
        err(f.1, format!("injected {}", f.1.as_str_name()))
    }

    fn take_fault(&mut self, topic: &str, partition: u32) -> Option<ErrorCode> {
        let f = self.produce_faults.iter_mut().find(|f| f.topic == topic && f.partition == partition && f.times > 0)?;
        f.times -= 1;
        Some(f.code)
    }
}

/// A running fake cluster.
pub(crate) struct FakeCluster {
    pub addrs: Vec<String>,
    pub state: Arc<Mutex<State>>,
    stops: Vec<Option<oneshot::Sender<()>>>,
}

impl FakeCluster {
    /// Starts `n` brokers (ids 1..=n).
    pub(crate) async fn start(n: u32) -> FakeCluster {
        let mut listeners = Vec::new();
        let mut brokers = Vec::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr: SocketAddr = l.local_addr().unwrap();
            brokers.push((id, addr.to_string()));
            listeners.push(l);
        }
        let state =
            Arc::new(Mutex::new(State { brokers: brokers.clone(), heartbeat_interval_ms: 200, ..Default::default() }));
        let mut stops = Vec::new();
        for ((id, _), listener) in brokers.iter().zip(listeners) {
            let svc = StrataServer::new(FakeBroker { id: *id, state: state.clone() })
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20);
            let (tx, rx) = oneshot::channel::<()>();
            stops.push(Some(tx));
            tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        }
        FakeCluster { addrs: brokers.into_iter().map(|(_, a)| a).collect(), state, stops }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Creates a topic directly in the store.
    pub(crate) fn create_topic(&self, name: &str, partitions: u32) {
        let mut s = self.state();
        let topic = Topic {
            id: format!("id-{name}"),
            partitions: (0..partitions).map(|_| Log::default()).collect(),
            replication_factor: 1,
            configs: HashMap::new(),
        };
        s.topics.insert(name.to_owned(), topic);
    }

    pub(crate) fn set_leader(&self, topic: &str, partition: u32, broker: u32) {
        self.state().leaders.insert((topic.to_owned(), partition), broker);
    }

    pub(crate) fn inject(&self, topic: &str, partition: u32, code: ErrorCode, times: u32) {
        self.state().produce_faults.push_back(Fault { topic: topic.into(), partition, code, times });
    }

    /// Makes broker `id` the coordinator of `group`.
    pub(crate) fn set_coordinator(&self, group: &str, id: u32) {
        self.state().coordinators.insert(group.to_owned(), id);
    }

    /// Plants a member owning `partitions` of `topic` in `group`.
    pub(crate) fn add_member(&self, group: &str, member_id: &str, topic: &str, partitions: Vec<u32>) {
        let member = GroupMemberDescription {
            member_id: member_id.to_owned(),
            client_id: "test-client".into(),
            client_host: "127.0.0.1".into(),
            member_epoch: 1,
            assignment: vec![TopicPartitions { topic: topic.to_owned(), partitions }],
            ..Default::default()
        };
        self.state().members.entry(group.to_owned()).or_default().push(member);
    }

    /// Makes the coordinator of `group` answer its next `times` requests
    /// with `code`.
    pub(crate) fn inject_group(&self, group: &str, code: ErrorCode, times: u32) {
        self.state().group_faults.push_back((group.to_owned(), code, times));
    }

    pub(crate) fn produce_requests(&self) -> usize {
        self.state().produce_log.len()
    }

    /// Stops broker `id`'s server.
    pub(crate) fn stop(&mut self, id: u32) {
        if let Some(tx) = self.stops[id as usize - 1].take() {
            let _ = tx.send(());
        }
    }
}

struct FakeBroker {
    id: u32,
    state: Arc<Mutex<State>>,
}

fn err(code: ErrorCode, message: impl Into<String>) -> Option<Error> {
    Some(Error::new(code, message))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl FakeBroker {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn produce_one(&self, s: &mut State, p: PartitionRecords) -> PartitionProduceResult {
        let mut result =
            PartitionProduceResult { topic: p.topic.clone(), partition: p.partition, ..Default::default() };
        let exists = s.topics.get(&p.topic).is_some_and(|t| (p.partition as usize) < t.partitions.len());
        if !exists {
            result.error =
                err(ErrorCode::UnknownTopicOrPartition, format!("unknown partition {}-{}", p.topic, p.partition));
            return result;
        }
        if s.leader(&p.topic, p.partition) != self.id {
            result.error = err(ErrorCode::NotLeaderOrFollower, format!("broker {} is not the leader", self.id));
            return result;
        }
        if let Some(code) = s.take_fault(&p.topic, p.partition) {
            result.error = err(code, format!("injected {}", code.as_str_name()));
            return result;
        }
        let max = s.max_batch_bytes.unwrap_or(usize::MAX);
        let mut batches = Vec::new();
        for b in split_batches(p.records.clone(), usize::MAX) {
            match b {
                Ok(b) if b.bytes().len() > max => {
                    let msg = format!("batch of {} bytes exceeds max.message.bytes {max}", b.bytes().len());
                    result.error = err(ErrorCode::RecordTooLarge, msg);
                    return result;
                }
                Ok(b) => batches.push(b),
                Err(e @ BatchError::TooLarge { .. }) => {
                    result.error = err(ErrorCode::RecordTooLarge, e.to_string());
                    return result;
                }
                Err(e) => {
                    result.error = err(ErrorCode::CorruptBatch, e.to_string());
                    return result;
                }
            }
        }
        if batches.is_empty() {
            result.error = err(ErrorCode::CorruptBatch, "no batch in the request");
            return result;
        }
        let log = &mut s.topics.get_mut(&p.topic).unwrap().partitions[p.partition as usize];
        result.base_offset = log.end;
        for b in batches {
            let mut bytes = BytesMut::from(&b.bytes()[..]);
            set_base_offset(&mut bytes, log.end).unwrap();
            let stored = RecordBatch::new(bytes.freeze(), usize::MAX).unwrap();
            log.end = stored.header().next_offset();
            log.batches.push(stored);
        }
        result.log_start_offset = log.start;
        result
    }

    fn fetch_one(&self, s: &State, p: &FetchPartition, budget: &mut usize) -> FetchedPartition {
        let mut out = FetchedPartition { topic: p.topic.clone(), partition: p.partition, ..Default::default() };
        let Some(log) = s.topics.get(&p.topic).and_then(|t| t.partitions.get(p.partition as usize)) else {
            out.error =
                err(ErrorCode::UnknownTopicOrPartition, format!("unknown partition {}-{}", p.topic, p.partition));
            return out;
        };
        if s.leader(&p.topic, p.partition) != self.id {
            out.error = err(ErrorCode::NotLeaderOrFollower, format!("broker {} is not the leader", self.id));
            return out;
        }
        out.high_watermark = log.end;
        out.log_start_offset = log.start;
        out.log_end_offset = log.end;
        if p.fetch_offset < log.start || p.fetch_offset > log.end {
            out.error = err(
                ErrorCode::OffsetOutOfRange,
                format!("offset {} not in [{}, {}]", p.fetch_offset, log.start, log.end),
            );
            return out;
        }
        let limit = if p.partition_max_bytes == 0 { usize::MAX } else { p.partition_max_bytes as usize };
        let mut buf = BytesMut::new();
        for b in log.batches.iter().filter(|b| b.header().next_offset() > p.fetch_offset) {
            let n = b.bytes().len();
            if !buf.is_empty() && (buf.len() + n > limit || n > *budget) {
                break;
            }
            buf.extend_from_slice(b.bytes());
            *budget = budget.saturating_sub(n);
        }
        out.records = buf.freeze();
        out
    }
}

#[tonic::async_trait]
impl Strata for FakeBroker {
    async fn create_topics(&self, r: Request<CreateTopicsRequest>) -> Result<Response<CreateTopicsResponse>, Status> {
        let mut s = self.state();
        let mut results = Vec::new();
        for spec in r.into_inner().topics {
            let error = if !valid_name(&spec.name) {
                err(ErrorCode::InvalidTopicName, format!("invalid topic name '{}'", spec.name))
            } else if s.topics.contains_key(&spec.name) {
                err(ErrorCode::TopicAlreadyExists, format!("topic '{}' already exists", spec.name))
            } else {
                let n = spec.partitions.max(1);
                let topic = Topic {
                    id: format!("id-{}", spec.name),
                    partitions: (0..n).map(|_| Log::default()).collect(),
                    replication_factor: spec.replication_factor.max(1),
                    configs: spec.configs,
                };
                s.topics.insert(spec.name.clone(), topic);
                None
            };
            results.push(TopicResult { name: spec.name, error });
        }
        Ok(Response::new(CreateTopicsResponse { results }))
    }

    async fn delete_topics(&self, r: Request<DeleteTopicsRequest>) -> Result<Response<DeleteTopicsResponse>, Status> {
        let mut s = self.state();
        let results = r
            .into_inner()
            .names
            .into_iter()
            .map(|name| {
                let error = match s.topics.remove(&name) {
                    Some(_) => None,
                    None => err(ErrorCode::UnknownTopicOrPartition, format!("unknown topic '{name}'")),
                };
                TopicResult { name, error }
            })
            .collect();
        Ok(Response::new(DeleteTopicsResponse { results }))
    }

    async fn list_topics(&self, _: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        let s = self.state();
        let topics = s
            .topics
            .iter()
            .map(|(name, t)| TopicSummary {
                name: name.clone(),
                topic_id: t.id.clone(),
                partitions: t.partitions.len() as u32,
                replication_factor: t.replication_factor,
            })
            .collect();
        Ok(Response::new(ListTopicsResponse { topics }))
    }

    async fn describe_topics(
        &self,
        r: Request<DescribeTopicsRequest>,
    ) -> Result<Response<DescribeTopicsResponse>, Status> {
        let mut s = self.state();
        s.describe_topics_calls += 1;
        let mut names = r.into_inner().names;
        if names.is_empty() {
            names = s.topics.keys().cloned().collect();
        }
        let topics = names
            .into_iter()
            .map(|name| match s.topics.get(&name) {
                None => TopicDescription {
                    error: err(ErrorCode::UnknownTopicOrPartition, format!("unknown topic '{name}'")),
                    name,
                    ..Default::default()
                },
                Some(t) => TopicDescription {
                    topic_id: t.id.clone(),
                    error: None,
                    partitions: t
                        .partitions
                        .iter()
                        .enumerate()
                        .map(|(i, log)| {
                            let leader = s.leader(&name, i as u32);
                            PartitionDescription {
                                partition: i as u32,
                                leader: leader as i32,
                                leader_epoch: 0,
                                replicas: vec![leader],
                                isr: vec![leader],
                                log_start_offset: log.start,
                                log_end_offset: log.end,
                                high_watermark: log.end,
                            }
                        })
                        .collect(),
                    configs: t.configs.clone(),
                    name,
                },
            })
            .collect();
        Ok(Response::new(DescribeTopicsResponse { topics }))
    }

    async fn produce(&self, r: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        let request = r.into_inner();
        let delay = self.state().produce_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut s = self.state();
        let entries = request
            .partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition, split_batches(p.records.clone(), usize::MAX).count()))
            .collect();
        s.produce_log.push(ProduceLog { broker: self.id, entries });
        let partitions = request.partitions.into_iter().map(|p| self.produce_one(&mut s, p)).collect();
        Ok(Response::new(ProduceResponse { partitions }))
    }

    async fn fetch(&self, r: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        let request = r.into_inner();
        self.state().fetch_requests += 1;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(request.max_wait_ms));
        loop {
            let response = {
                let s = self.state();
                let mut budget = if request.max_bytes == 0 { usize::MAX } else { request.max_bytes as usize };
                let partitions: Vec<FetchedPartition> =
                    request.partitions.iter().map(|p| self.fetch_one(&s, p, &mut budget)).collect();
                FetchResponse { partitions }
            };
            let bytes: usize = response.partitions.iter().map(|p| p.records.len()).sum();
            let errors = response.partitions.iter().any(|p| p.error.is_some());
            if errors || bytes >= (request.min_bytes as usize).max(1) || tokio::time::Instant::now() >= deadline {
                return Ok(Response::new(response));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn list_offsets(&self, r: Request<ListOffsetsRequest>) -> Result<Response<ListOffsetsResponse>, Status> {
        let s = self.state();
        let partitions = r
            .into_inner()
            .partitions
            .into_iter()
            .map(|p| {
                let mut out = ListedOffset { topic: p.topic.clone(), partition: p.partition, ..Default::default() };
                let Some(log) = s.topics.get(&p.topic).and_then(|t| t.partitions.get(p.partition as usize)) else {
                    out.error = err(ErrorCode::UnknownTopicOrPartition, "unknown partition");
                    return out;
                };
                if s.leader(&p.topic, p.partition) != self.id {
                    out.error = err(ErrorCode::NotLeaderOrFollower, "not the leader");
                    return out;
                }
                (out.offset, out.timestamp) = match p.timestamp {
                    -2 => (log.start as i64, -1),
                    -1 => (log.end as i64, -1),
                    ts => log
                        .batches
                        .iter()
                        .flat_map(|b| b.records().map(Result::unwrap).collect::<Vec<_>>())
                        .find(|r| r.timestamp >= ts)
                        .map_or((-1, -1), |r| (r.offset as i64, r.timestamp)),
                };
                out
            })
            .collect();
        Ok(Response::new(ListOffsetsResponse { partitions }))
    }

    async fn describe_cluster(
        &self,
        _: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        let s = self.state();
        Ok(Response::new(DescribeClusterResponse {
            cluster_id: "fake-cluster".into(),
            controller_id: 1,
            brokers: s
                .brokers
                .iter()
                .map(|(id, addr)| BrokerDescription {
                    node_id: *id,
                    address: addr.clone(),
                    rack: if *id == 1 { "rack-a".into() } else { String::new() },
                    state: "unfenced".into(),
                })
                .collect(),
            voters: vec![VoterDescription { node_id: 1, address: "127.0.0.1:9701".into(), is_leader: true, lag: 0 }],
            metadata_offset: 7,
        }))
    }

    /// Preferred election: the preferred leader is the default one (by
    /// partition number); a leader moved with `State::leaders` moves back.
    /// Every partition always has a leader, so unclean elections move nothing.
    async fn elect_leaders(&self, r: Request<ElectLeadersRequest>) -> Result<Response<ElectLeadersResponse>, Status> {
        let request = r.into_inner();
        let preferred = match request.election.as_str() {
            "" | "preferred" => true,
            "unclean" => false,
            other => {
                let error = err(ErrorCode::InvalidRequest, format!("unknown election type '{other}'"));
                return Ok(Response::new(ElectLeadersResponse { error, results: vec![] }));
            }
        };
        let mut s = self.state();
        let all = request.partitions.is_empty();
        let targets: Vec<(String, u32)> = if all {
            s.topics.iter().flat_map(|(n, t)| (0..t.partitions.len() as u32).map(move |p| (n.clone(), p))).collect()
        } else {
            request
                .partitions
                .iter()
                .flat_map(|tp| {
                    let parts = match (&tp.partitions[..], s.topics.get(&tp.topic)) {
                        ([], Some(t)) => (0..t.partitions.len() as u32).collect(),
                        ([], None) => vec![0],
                        (ps, _) => ps.to_vec(),
                    };
                    parts.into_iter().map(|p| (tp.topic.clone(), p))
                })
                .collect()
        };
        let mut results = Vec::new();
        for (topic, partition) in targets {
            let known = s.topics.get(&topic).is_some_and(|t| (partition as usize) < t.partitions.len());
            let mut r = ElectionResult { topic: topic.clone(), partition, error: None, leader: -1 };
            if !known {
                r.error = err(ErrorCode::UnknownTopicOrPartition, format!("unknown partition {topic}-{partition}"));
            } else if preferred && s.leaders.remove(&(topic.clone(), partition)).is_some() {
                r.leader = s.leader(&topic, partition) as i32;
            } else if all {
                continue;
            } else {
                r.leader = s.leader(&topic, partition) as i32;
                r.error = err(ErrorCode::ElectionNotNeeded, format!("{topic}-{partition} needs no election"));
            }
            results.push(r);
        }
        Ok(Response::new(ElectLeadersResponse { error: None, results }))
    }

    async fn replica_fetch(&self, _: Request<ReplicaFetchRequest>) -> Result<Response<ReplicaFetchResponse>, Status> {
        Err(Status::unimplemented("the fake cluster has no replication"))
    }

    async fn find_coordinator(
        &self,
        r: Request<FindCoordinatorRequest>,
    ) -> Result<Response<FindCoordinatorResponse>, Status> {
        let group = r.into_inner().group_id;
        let mut s = self.state();
        s.find_coordinator_calls += 1;
        if group.is_empty() {
            let error = err(ErrorCode::InvalidGroupId, "the group id must not be empty");
            return Ok(Response::new(FindCoordinatorResponse { error, ..Default::default() }));
        }
        let id = s.coordinator(&group);
        let address = s.brokers.iter().find(|(b, _)| *b == id).map(|(_, a)| a.clone()).unwrap_or_default();
        Ok(Response::new(FindCoordinatorResponse { error: None, node_id: id, address }))
    }

    async fn commit_offsets(
        &self,
        r: Request<CommitOffsetsRequest>,
    ) -> Result<Response<CommitOffsetsResponse>, Status> {
        let request = r.into_inner();
        let mut s = self.state();
        s.commit_requests.push(request.clone());
        if let Some(error) = s.group_check(self.id, &request.group_id) {
            return Ok(Response::new(CommitOffsetsResponse { error: Some(error), partitions: vec![] }));
        }
        let member_error =
            s.membership.get(&request.group_id).and_then(|g| g.check_commit(&request.member_id, request.member_epoch));
        if let Some(error) = member_error {
            return Ok(Response::new(CommitOffsetsResponse { error: Some(error), partitions: vec![] }));
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let mut partitions = Vec::new();
        for p in request.partitions {
            let exists = s.topics.get(&p.topic).is_some_and(|t| (p.partition as usize) < t.partitions.len());
            let error = if exists {
                let commit = Commit { offset: p.offset, metadata: p.metadata, timestamp: now };
                s.offsets.entry(request.group_id.clone()).or_default().insert((p.topic.clone(), p.partition), commit);
                None
            } else {
                err(ErrorCode::UnknownTopicOrPartition, format!("unknown partition {}-{}", p.topic, p.partition))
            };
            partitions.push(OffsetCommitResult { topic: p.topic, partition: p.partition, error });
        }
        Ok(Response::new(CommitOffsetsResponse { error: None, partitions }))
    }

    async fn fetch_offsets(&self, r: Request<FetchOffsetsRequest>) -> Result<Response<FetchOffsetsResponse>, Status> {
        let request = r.into_inner();
        let mut s = self.state();
        if let Some(error) = s.group_check(self.id, &request.group_id) {
            return Ok(Response::new(FetchOffsetsResponse { error: Some(error), partitions: vec![] }));
        }
        let empty = BTreeMap::new();
        let stored = s.offsets.get(&request.group_id).unwrap_or(&empty);
        let entry = |topic: &str, partition: u32| match stored.get(&(topic.to_owned(), partition)) {
            Some(c) => CommittedOffset {
                topic: topic.to_owned(),
                partition,
                offset: c.offset as i64,
                metadata: c.metadata.clone(),
                commit_timestamp: c.timestamp,
                error: None,
            },
            None => CommittedOffset {
                topic: topic.to_owned(),
                partition,
                offset: -1,
                commit_timestamp: -1,
                ..Default::default()
            },
        };
        let partitions = if request.partitions.is_empty() {
            stored.keys().map(|(t, p)| entry(t, *p)).collect()
        } else {
            request
                .partitions
                .iter()
                .flat_map(|tp| {
                    let ps: Vec<u32> = if tp.partitions.is_empty() {
                        stored.keys().filter(|(t, _)| *t == tp.topic).map(|(_, p)| *p).collect()
                    } else {
                        tp.partitions.clone()
                    };
                    ps.into_iter().map(|p| entry(&tp.topic, p)).collect::<Vec<_>>()
                })
                .collect()
        };
        Ok(Response::new(FetchOffsetsResponse { error: None, partitions }))
    }

    async fn list_groups(&self, _: Request<ListGroupsRequest>) -> Result<Response<ListGroupsResponse>, Status> {
        let s = self.state();
        let mut names: Vec<&String> = s.offsets.keys().chain(s.members.keys()).collect();
        names.sort();
        names.dedup();
        let groups = names
            .into_iter()
            .filter(|g| s.coordinator(g) == self.id)
            .map(|g| GroupListing { group_id: g.clone(), state: s.group_state(g).into(), coordinator: self.id })
            .collect();
        Ok(Response::new(ListGroupsResponse { error: None, groups }))
    }

    async fn describe_groups(
        &self,
        r: Request<DescribeGroupsRequest>,
    ) -> Result<Response<DescribeGroupsResponse>, Status> {
        let mut s = self.state();
        let mut groups = Vec::new();
        for group in r.into_inner().group_ids {
            let mut d = GroupDescription { group_id: group.clone(), coordinator: self.id, ..Default::default() };
            if let Some(error) = s.group_check(self.id, &group) {
                d.error = Some(error);
            } else if !s.group_exists(&group) {
                d.error = err(ErrorCode::GroupIdNotFound, format!("group '{group}' not found"));
            } else {
                d.state = s.group_state(&group).into();
                d.members = s.members.get(&group).cloned().unwrap_or_default();
                if !d.members.is_empty() {
                    d.assignor = "uniform".into();
                    d.group_epoch = 1;
                }
                d.offsets = s
                    .offsets
                    .get(&group)
                    .map(|o| {
                        o.iter()
                            .map(|((t, p), c)| CommittedOffset {
                                topic: t.clone(),
                                partition: *p,
                                offset: c.offset as i64,
                                metadata: c.metadata.clone(),
                                commit_timestamp: c.timestamp,
                                error: None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            }
            groups.push(d);
        }
        Ok(Response::new(DescribeGroupsResponse { groups }))
    }

    async fn consumer_group_heartbeat(
        &self,
        r: Request<ConsumerGroupHeartbeatRequest>,
    ) -> Result<Response<ConsumerGroupHeartbeatResponse>, Status> {
        let mut s = self.state();
        Ok(Response::new(membership::heartbeat(&mut s, self.id, r.into_inner())))
    }

    async fn delete_groups(&self, r: Request<DeleteGroupsRequest>) -> Result<Response<DeleteGroupsResponse>, Status> {
        let mut s = self.state();
        let mut results = Vec::new();
        for group in r.into_inner().group_ids {
            let error = if let Some(error) = s.group_check(self.id, &group) {
                Some(error)
            } else if !s.group_exists(&group) {
                err(ErrorCode::GroupIdNotFound, format!("group '{group}' not found"))
            } else if s.members.get(&group).is_some_and(|m| !m.is_empty()) {
                err(ErrorCode::NonEmptyGroup, format!("group '{group}' still has members"))
            } else {
                s.offsets.remove(&group);
                s.members.remove(&group);
                None
            };
            results.push(GroupResult { group_id: group, error });
        }
        Ok(Response::new(DeleteGroupsResponse { results }))
    }
}

/// Runs a test body with a deadline so a bug hangs no test run.
pub(crate) async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("test timed out")
}

/// Bytes of a `&str`.
pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}
