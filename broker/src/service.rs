//! The broker core's state: what every operation (produce, fetch, admin,
//! groups) shares. Each edge (`api::grpc`) holds one and calls its methods.

use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::controller_link::SharedControllerLink;
use crate::group::GroupCoordinator;
use crate::metrics::Metrics;
use crate::replica_manager::ReplicaManager;

/// State shared by every request.
#[derive(Debug, Clone)]
pub struct BrokerService {
    pub(crate) config: Arc<BrokerConfig>,
    pub(crate) replicas: Arc<ReplicaManager>,
    pub(crate) controller: SharedControllerLink,
    pub(crate) metrics: Arc<Metrics>,
    /// The consumer groups this broker coordinates.
    pub(crate) groups: Arc<GroupCoordinator>,
    /// Classic-protocol groups (Kafka's JoinGroup/SyncGroup) coordinated
    /// here.
    pub(crate) classic_groups: crate::group::classic::SharedClassicGroups,
    /// Cancelled when the server shuts down: parked long polls return.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// A drain (leadership handed away before a stop) asked for and done.
    pub drain: Arc<Drain>,
    /// Partition count per topic as of a metadata offset (group upkeep).
    pub(crate) topic_counts: Arc<std::sync::Mutex<Option<TopicCounts>>>,
    /// This broker's block of idempotent-producer ids.
    pub(crate) producer_ids: Arc<crate::producer_ids::ProducerIdManager>,
    /// Passwords checked already (gRPC sends one with every call).
    pub(crate) verified_passwords: Arc<strata_auth::VerifiedPasswords>,
}

/// Partition count per topic, as of a metadata offset.
pub(crate) type TopicCounts = (u64, Arc<std::collections::BTreeMap<String, u32>>);

/// The drain handshake between the HTTP endpoint and the server loop:
/// `requested` turns true when `POST /drain` arrives, `done` once the
/// controlled shutdown step ran (at a drain or at the stop signal).
#[derive(Debug)]
pub struct Drain {
    /// Set by the endpoint.
    pub requested: tokio::sync::watch::Sender<bool>,
    /// Set by the server loop.
    pub done: tokio::sync::watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain { requested: tokio::sync::watch::channel(false).0, done: tokio::sync::watch::channel(false).0 }
    }
}

impl BrokerService {
    /// A service over the given parts.
    pub fn new(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        controller: SharedControllerLink,
        metrics: Arc<Metrics>,
        stopping: tokio_util::sync::CancellationToken,
    ) -> Self {
        BrokerService {
            config,
            replicas,
            controller,
            metrics,
            groups: Arc::new(GroupCoordinator::new()),
            classic_groups: Arc::default(),
            stopping,
            drain: Arc::new(Drain::default()),
            topic_counts: Arc::default(),
            producer_ids: Arc::default(),
            verified_passwords: Arc::default(),
        }
    }
}
