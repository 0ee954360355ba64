//! The offsets topic and finding a group's coordinator: the topic is
//! created through the controller on first need (a creation race with
//! another broker is fine), a group maps to one of its partitions, and that
//! partition's leader coordinates the group.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::controller_link::ControllerCallError;
use crate::error::{BrokerError, ErrorKind};
use strata_metadata::MetadataError;

use super::coordinator::ShardHandle;
use super::partitioner::offsets_partition_for;
use super::views::Coordinator;
use super::{validate_group_id, OFFSETS_TOPIC};
use crate::service::BrokerService;

/// How long a request waits for its shard to load before answering
/// `COORDINATOR_LOAD_IN_PROGRESS`.
pub(crate) const LOAD_WAIT: Duration = Duration::from_millis(500);

/// Topic configs of the offsets topic: nothing expires by time or size
/// (the latest record per key is the state; the coordinator compacts it by
/// key), and 100 MiB segments (Kafka's offsets.topic.segment.bytes) so the
/// space compaction frees is returned when segments roll.
fn offsets_topic_configs() -> BTreeMap<String, String> {
    [("retention.ms", "-1"), ("retention.bytes", "-1"), ("segment.bytes", "104857600")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl BrokerService {
    /// The offsets topic's partition count; when it does not exist, creates
    /// it if `create`, else `COORDINATOR_NOT_AVAILABLE`.
    pub(crate) async fn offsets_partitions(&self, create: bool) -> Result<u32, BrokerError> {
        if let Some(t) = self.controller.metadata().topics.get(OFFSETS_TOPIC) {
            return Ok(t.partitions.len() as u32);
        }
        let unavailable = |why: String| BrokerError::new(ErrorKind::CoordinatorNotAvailable, why);
        if !create {
            return Err(unavailable(format!(
                "the offsets topic {OFFSETS_TOPIC} does not exist yet; find the coordinator first"
            )));
        }
        let _one = self.groups.creating.lock().await;
        if let Some(t) = self.controller.metadata().topics.get(OFFSETS_TOPIC) {
            return Ok(t.partitions.len() as u32);
        }
        let live = self.controller.metadata().unfenced_brokers().len() as u32;
        let rf = live.clamp(1, 3);
        let partitions = self.config.offsets_topic_partitions;
        tracing::info!(partitions, replication_factor = rf, "creating the offsets topic {OFFSETS_TOPIC}");
        match self.controller.create_topic(OFFSETS_TOPIC, partitions, rf, offsets_topic_configs()).await {
            Ok(_) | Err(ControllerCallError::Metadata(MetadataError::TopicAlreadyExists { .. })) => {}
            Err(e) => {
                return Err(unavailable(format!(
                    "creating the offsets topic {OFFSETS_TOPIC} failed: {}",
                    strata_record::ErrorChain(&e)
                )))
            }
        }
        self.apply_current_metadata().await;
        self.controller
            .metadata()
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as u32)
            .ok_or_else(|| unavailable(format!("the offsets topic {OFFSETS_TOPIC} is being created; retry")))
    }

    /// The offsets partition holding `group_id`.
    pub(crate) async fn offsets_partition_of(&self, group_id: &str, create: bool) -> Result<u32, BrokerError> {
        validate_group_id(group_id)?;
        Ok(offsets_partition_for(group_id, self.offsets_partitions(create).await?))
    }

    /// The loaded shard holding `group_id`, if this broker coordinates it.
    pub(crate) async fn shard_for(&self, group_id: &str, create: bool) -> Result<ShardHandle, BrokerError> {
        let index = self.offsets_partition_of(group_id, create).await?;
        self.shard_at(index).await
    }

    /// The loaded shard of offsets partition `index`, if led here.
    pub(crate) async fn shard_at(&self, index: u32) -> Result<ShardHandle, BrokerError> {
        self.groups.sweep(&self.replicas);
        let p = self.replicas.lookup(OFFSETS_TOPIC, index).map_err(|e| {
            let code = match e.kind() {
                ErrorKind::NotLeaderOrFollower => ErrorKind::NotCoordinator,
                _ => ErrorKind::CoordinatorNotAvailable,
            };
            BrokerError::new(code, format!("not the coordinator: {}", e.message()))
        })?;
        self.groups.acquire(p, index, LOAD_WAIT).await
    }

    /// The coordinator of a group: the leader of its offsets partition,
    /// from this broker's metadata (creating the offsets topic on first
    /// use).
    pub(crate) async fn find_coordinator(&self, group_id: &str) -> Result<Coordinator, BrokerError> {
        self.coordinator_of(group_id).await.inspect_err(|e| self.metrics.record_error(e.kind()))
    }

    /// Whether this broker leads the offsets partition of `group_id` in the
    /// current metadata (no topic creation, no waiting): state kept for a
    /// group this broker no longer coordinates is stale and must go.
    pub(crate) fn coordinates(&self, group_id: &str) -> bool {
        let image = self.controller.metadata();
        let Some(t) = image.topics.get(OFFSETS_TOPIC) else { return false };
        let Ok(count) = u32::try_from(t.partitions.len()) else { return false };
        if count == 0 {
            return false;
        }
        let index = super::partitioner::offsets_partition_for(group_id, count);
        t.partitions.get(index as usize).and_then(|p| p.leader) == Some(self.config.node_id)
    }

    async fn coordinator_of(&self, group_id: &str) -> Result<Coordinator, BrokerError> {
        let index = self.offsets_partition_of(group_id, true).await?;
        let image = self.controller.metadata();
        let leader = image
            .topics
            .get(OFFSETS_TOPIC)
            .and_then(|t| t.partitions.get(index as usize))
            .and_then(|p| p.leader)
            .ok_or_else(|| {
                BrokerError::new(
                    ErrorKind::CoordinatorNotAvailable,
                    format!("{OFFSETS_TOPIC}-{index} has no leader yet; retry"),
                )
            })?;
        let broker = image.brokers.get(&leader).filter(|b| !b.fenced).ok_or_else(|| {
            BrokerError::new(
                ErrorKind::CoordinatorNotAvailable,
                format!("broker {leader}, the leader of {OFFSETS_TOPIC}-{index}, is not available; retry"),
            )
        })?;
        Ok(Coordinator { node_id: leader, address: broker.address.clone() })
    }
}
