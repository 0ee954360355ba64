//! Several in-process nodes forming one cluster: node 1 is the controller
//! quorum's only voter and a broker, the others are brokers reaching it
//! over gRPC. Every node's client gRPC service is behind the cluster's
//! [`Wiretap`], so tests can see what the brokers were asked and inject
//! faults in front of them.

use std::time::Duration;

use crate::config::{DevArgs, Roles, ServerConfig, Voter};
use strata_protocol::v1::{DescribeClusterRequest, DescribeTopicsRequest, FetchPartition, FetchRequest};
use strata_record::batch::{split_batches, Record, RecordBatch};

use super::{eventually, free_addr, TestNode, Wiretap};

/// How long a cluster may take until every broker is registered.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Partitions of `__consumer_offsets` in a test cluster: a few, so it is
/// created quickly yet spread over the brokers.
const OFFSETS_PARTITIONS: u32 = 4;

/// A running in-process cluster, its data in a temporary directory.
#[derive(Debug)]
pub struct TestCluster {
    /// What the nodes received; faults to inject in front of them.
    pub wiretap: Wiretap,
    /// The nodes by id - 1; `None` once stopped.
    nodes: Vec<Option<TestNode>>,
    /// The client addresses by id - 1 (kept when a node stops).
    addrs: Vec<String>,
    /// What each node was started with, by id - 1, to restart it.
    configs: Vec<(ServerConfig, DevArgs)>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `n` nodes (ids 1..=n) with the default settings.
    pub async fn start(n: u32) -> TestCluster {
        Self::start_with(n, |_, _| {}).await
    }

    /// Starts `n` nodes, `tweak` adjusting each node's settings (by id)
    /// before it starts, e.g. a rack or the retention check interval.
    pub async fn start_with(n: u32, tweak: impl Fn(u32, &mut ServerConfig)) -> TestCluster {
        assert!(n >= 1, "a cluster needs a node");
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("creating the cluster's data directory: {e}"),
        };
        let wiretap = Wiretap::default();
        let controller = free_addr();
        let mut nodes = Vec::new();
        let mut configs = Vec::new();
        for id in 1..=n {
            let args = DevArgs {
                data_dir: dir.path().join(format!("node-{id}")),
                listen: free_addr(),
                controller_listen: if id == 1 { controller } else { free_addr() },
                http_listen: free_addr(),
                kafka_listen: free_addr(),
                config: None,
            };
            let mut config = match ServerConfig::dev(&args) {
                Ok(c) => c,
                Err(e) => panic!("test cluster node {id} config: {e}"),
            };
            config.node_id = u64::from(id);
            config.roles = Roles { broker: true, controller: id == 1 };
            config.voters = vec![Voter { node_id: 1, address: controller.to_string() }];
            config.offsets_topic_partitions = OFFSETS_PARTITIONS;
            tweak(id, &mut config);
            configs.push((config.clone(), args.clone()));
            nodes.push(Some(TestNode::start_tapped(config, args, wiretap.layer(id)).await));
        }
        let addrs = nodes.iter().flatten().map(|n| n.args.listen.to_string()).collect();
        let cluster = TestCluster { wiretap, nodes, addrs, configs, _dir: dir };
        let client = cluster.node(1).client.clone();
        eventually("every broker registered", READY_TIMEOUT, || {
            let mut client = client.clone();
            async move {
                client.describe_cluster(DescribeClusterRequest {}).await.is_ok_and(|r| {
                    let brokers = &r.get_ref().brokers;
                    brokers.len() == n as usize && brokers.iter().all(|b| b.state == "unfenced")
                })
            }
        })
        .await;
        cluster
    }

    /// The client addresses of the nodes, by id - 1 (a bootstrap list).
    pub fn addrs(&self) -> Vec<String> {
        self.addrs.clone()
    }

    /// The client address of node `id`.
    pub fn addr(&self, id: u32) -> String {
        self.addrs[id as usize - 1].clone()
    }

    /// Node `id`, which must be running.
    pub fn node(&self, id: u32) -> &TestNode {
        match self.nodes.get(id as usize - 1) {
            Some(Some(node)) => node,
            _ => panic!("node {id} of the test cluster is not running"),
        }
    }

    /// Stops node `id` cleanly.
    pub async fn stop_node(&mut self, id: u32) {
        match self.nodes.get_mut(id as usize - 1).and_then(Option::take) {
            Some(node) => {
                node.stop().await;
            }
            None => panic!("node {id} of the test cluster is not running"),
        }
    }

    /// Starts stopped node `id` again, on its ports and data, and waits
    /// until the controller sees it unfenced.
    pub async fn restart_node(&mut self, id: u32) {
        let index = id as usize - 1;
        assert!(self.nodes.get(index).is_some_and(Option::is_none), "node {id} of the test cluster is not stopped");
        let (config, args) = self.configs[index].clone();
        self.nodes[index] = Some(TestNode::start_tapped(config, args, self.wiretap.layer(id)).await);
        let client = self.node(id).client.clone();
        eventually("the restarted broker is unfenced", READY_TIMEOUT, || {
            let mut client = client.clone();
            async move {
                client
                    .describe_cluster(DescribeClusterRequest {})
                    .await
                    .is_ok_and(|r| r.get_ref().brokers.iter().any(|b| b.node_id == id && b.state == "unfenced"))
            }
        })
        .await;
    }

    /// Stops every running node, brokers before the controller.
    pub async fn stop(mut self) {
        while let Some(slot) = self.nodes.pop() {
            if let Some(node) = slot {
                node.stop().await;
            }
        }
    }

    /// The leader of `topic`-`partition` as the first running node sees it.
    pub async fn leader(&self, topic: &str, partition: u32) -> Option<u32> {
        let mut client = self.any().client.clone();
        let request = DescribeTopicsRequest { names: vec![topic.to_owned()] };
        let described = match client.describe_topics(request).await {
            Ok(r) => r.into_inner(),
            Err(e) => panic!("describing {topic}: {e}"),
        };
        let p = described.topics.first()?.partitions.iter().find(|p| p.partition == partition)?;
        u32::try_from(p.leader).ok()
    }

    /// The batches of `topic`-`partition` as its leader stores them, from
    /// the log start to the high watermark.
    pub async fn batches(&self, topic: &str, partition: u32) -> Vec<RecordBatch> {
        let Some(leader) = self.leader(topic, partition).await else {
            panic!("{topic}-{partition} has no leader");
        };
        let mut client = self.node(leader).client.clone();
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let request = FetchRequest {
                partitions: vec![FetchPartition {
                    topic: topic.to_owned(),
                    partition,
                    fetch_offset: offset,
                    ..Default::default()
                }],
                max_wait_ms: 0,
                ..Default::default()
            };
            let fetched = match client.fetch(request).await {
                Ok(r) => r.into_inner(),
                Err(e) => panic!("fetching {topic}-{partition}: {e}"),
            };
            let Some(p) = fetched.partitions.into_iter().next() else { panic!("no answer for {topic}-{partition}") };
            if let Some(e) = p.error {
                if e.code == strata_protocol::v1::ErrorCode::OffsetOutOfRange as i32 && offset < p.log_start_offset {
                    offset = p.log_start_offset;
                    continue;
                }
                panic!("fetching {topic}-{partition} at {offset}: {}", e.message);
            }
            if p.records.is_empty() {
                return out;
            }
            for batch in split_batches(p.records, usize::MAX) {
                match batch {
                    Ok(b) => {
                        offset = b.header().next_offset();
                        out.push(b);
                    }
                    Err(e) => panic!("a batch of {topic}-{partition} does not decode: {e}"),
                }
            }
            if offset >= p.high_watermark {
                return out;
            }
        }
    }

    /// The records of `topic`-`partition` in log order.
    pub async fn records(&self, topic: &str, partition: u32) -> Vec<Record> {
        let mut out = Vec::new();
        for batch in self.batches(topic, partition).await {
            for r in batch.records() {
                match r {
                    Ok(r) => out.push(r),
                    Err(e) => panic!("a record of {topic}-{partition} does not decode: {e}"),
                }
            }
        }
        out
    }

    fn any(&self) -> &TestNode {
        match self.nodes.iter().flatten().next() {
            Some(n) => n,
            None => panic!("every node of the test cluster is stopped"),
        }
    }
}
