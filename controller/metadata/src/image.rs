//! The cluster-metadata image: everything the controller quorum agrees on.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The replicated cluster metadata as of one applied Raft index.
///
/// It is also the snapshot format: a snapshot's data is this struct as JSON.
/// Maps are `BTreeMap`s so that serialization is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// The last Raft log index applied to this image (0 before anything).
    pub offset: u64,
    /// The cluster id, set once by the first leader; empty until then.
    pub cluster_id: String,
    /// Registered brokers by node id.
    pub brokers: BTreeMap<u32, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicInfo>,
    /// The first idempotent-producer id not yet handed out (ids go to
    /// brokers in blocks; absent from images written before producer ids).
    #[serde(default)]
    pub next_producer_id: i64,
    /// SCRAM credentials by user, then mechanism name (absent from images
    /// written before users existed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, BTreeMap<String, crate::ScramEntry>>,
    /// Access-control lists (absent from images written before them).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub acls: BTreeSet<crate::AclBinding>,
    /// Cluster-wide dynamic broker configs (Kafka's default-broker
    /// resource): set at run time, in force on every broker at once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broker_configs: BTreeMap<String, String>,
    /// Controller addresses of the voters and learners added at run time
    /// (`strata cluster add-voter`); the first voters' come from each
    /// node's `--controller-voters`. Kept by the Raft layer when it applies
    /// a configuration change, so a restarted voter can reach them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub controller_addresses: BTreeMap<u64, String>,
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// The broker's node id.
    pub node_id: u32,
    /// The address clients and replicas reach it at (`host:port`).
    pub address: String,
    /// Its rack, for rack-aware placement (later).
    pub rack: Option<String>,
    /// A fenced broker gets no new replicas and leads nothing.
    pub fenced: bool,
    /// The address Kafka clients reach it at, if it runs a Kafka listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_address: Option<String>,
    /// Being emptied for removal (`strata broker decommission`): it gets
    /// no new replicas, and its replicas are moving elsewhere.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decommissioning: bool,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// The topic's id (a UUID chosen by whoever proposed its creation).
    pub id: String,
    /// The topic's name.
    pub name: String,
    /// Topic-level configuration overrides.
    pub configs: BTreeMap<String, String>,
    /// Its partitions, indexed by partition number.
    pub partitions: Vec<PartitionInfo>,
}

/// The controller's view of one partition (see `docs/replication.md`, "State").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// The partition number.
    pub partition: u32,
    /// Assigned replicas, in preference order (the first is the preferred leader).
    pub replicas: Vec<u32>,
    /// The in-sync replica set.
    pub isr: Vec<u32>,
    /// The current leader, if any.
    pub leader: Option<u32>,
    /// Bumped on every leader change.
    pub leader_epoch: u32,
    /// Bumped on every change of leader, ISR or replicas.
    pub partition_epoch: u32,
    /// A replica move in progress (Kafka's KIP-455), if any; `replicas`
    /// then holds the target and the original replicas together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassignment: Option<crate::Reassignment>,
}

impl MetadataImage {
    /// Node ids of the registered brokers that are not fenced, in ascending order.
    pub fn unfenced_brokers(&self) -> Vec<u32> {
        self.brokers.values().filter(|b| !b.fenced).map(|b| b.node_id).collect()
    }

    /// The brokers new replicas may go to: unfenced and not being
    /// decommissioned, ascending.
    pub fn placeable_brokers(&self) -> Vec<u32> {
        self.brokers.values().filter(|b| !b.fenced && !b.decommissioning).map(|b| b.node_id).collect()
    }

    /// The topic with this id, if any.
    pub fn topic_by_id(&self, id: &str) -> Option<&TopicInfo> {
        self.topics.values().find(|t| t.id == id)
    }
}
