//! The broker's long-running background tasks, each a future that ends when
//! its cancellation token is cancelled. The server supervises them by name
//! (`strata-server`'s supervisor); they live here because they drive the
//! broker core's own state.

use std::sync::Arc;
use std::time::Duration;

use strata_metadata::MetadataImage;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::controller_link::{ControllerCallError, ControllerLink};
use crate::replica_manager::ReplicaManager;
use crate::service::BrokerService;

/// How often the loaded offsets partitions are checked for compaction.
const OFFSETS_COMPACTION_CHECK: Duration = Duration::from_secs(1);
/// How often group members' sessions are checked.
const GROUP_EXPIRY_INTERVAL: Duration = Duration::from_millis(250);
/// How often the broker tells the active controller it is alive (the
/// controller fences it after `session_timeout`, 3 s, of silence).
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);

/// Registers this broker with the controller, retrying while a leader is
/// being elected, for at most `timeout`.
pub async fn register(
    controller: &dyn ControllerLink,
    node_id: u32,
    address: String,
    rack: Option<String>,
    kafka_address: Option<String>,
    timeout: Duration,
) -> Result<(), ControllerCallError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match controller.register_broker(node_id, address.clone(), rack.clone(), kafka_address.clone()).await {
            Ok(()) => return Ok(()),
            Err(e @ (ControllerCallError::NotLeader { .. } | ControllerCallError::Timeout)) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Compacts the offsets partitions this broker coordinates when due
/// (`group::compaction`), until cancelled.
pub async fn compact_group_offsets(service: Arc<BrokerService>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(OFFSETS_COMPACTION_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        for index in service.groups.loaded() {
            let Ok(h) = service.shard_at(index).await else { continue };
            match service.compact_offsets(&h, service.config.offsets_compaction_min_records).await {
                Ok(Some(done)) => tracing::info!(partition = index, ?done, "compacted consumer-group offsets"),
                Ok(None) => {}
                Err(e) => tracing::warn!(partition = index, error = %e, "compacting consumer-group offsets failed"),
            }
        }
    }
}

/// Evicts consumer-group members whose session ran out, until cancelled (a
/// group whose members all died must become empty without a heartbeat).
pub async fn expire_group_members(service: Arc<BrokerService>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(GROUP_EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                service.groups.expire_members(&service.topic_partition_counts());
                service.classic_groups.retain_coordinated(|group| service.coordinates(group));
                service.classic_groups.sweep(tokio::time::Instant::now());
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// Applies every metadata change to the hosted partitions until cancelled.
pub async fn follow_metadata(
    mut updates: watch::Receiver<Arc<MetadataImage>>,
    replicas: Arc<ReplicaManager>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    return;
                }
                let image = updates.borrow_and_update().clone();
                let replicas = replicas.clone();
                let _ = tokio::task::spawn_blocking(move || replicas.apply_metadata(image)).await;
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// Heartbeats to the active controller until cancelled.
pub async fn heartbeat(controller: Arc<dyn ControllerLink>, node_id: u32, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = controller.heartbeat(node_id).await {
                    tracing::warn!(node_id, error = %strata_record::ErrorChain(&e), "heartbeat to the controller failed");
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}
