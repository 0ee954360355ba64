//! ISR maintenance on partition leaders: every tick, each led partition
//! whose followers fell behind for `replica.lag.time.max` (or caught up
//! again) proposes an `AlterPartition` to the controller; the new ISR takes
//! effect when the committed change comes back in the metadata.

use std::sync::Arc;
use std::time::Duration;

use strata_metadata::MetadataError;

use crate::controller_link::{ControllerCallError, SharedControllerLink};
use crate::replica_manager::ReplicaManager;

/// Runs until `stop`: checks every `lag_max / 4` (at least every 100 ms, at
/// most every second).
pub async fn maintain_isr(
    replicas: Arc<ReplicaManager>,
    controller: SharedControllerLink,
    lag_max: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let period = (lag_max / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        for p in replicas.partitions() {
            let Some(cmd) = p.isr_proposal(lag_max) else { continue };
            let controller = controller.clone();
            let tp = p.tp.clone();
            tokio::spawn(async move {
                tracing::info!(partition = %tp, command = ?cmd, "proposing an ISR change");
                match controller.propose(cmd).await {
                    Ok(_) => {}
                    // Another change won (the epochs moved): the next
                    // metadata brings it, and the next tick re-evaluates.
                    Err(ControllerCallError::Metadata(
                        e @ (MetadataError::InvalidPartitionEpoch { .. }
                        | MetadataError::FencedLeaderEpoch { .. }
                        | MetadataError::NotLeader { .. }),
                    )) => tracing::info!(partition = %tp, reason = %e, "ISR change rejected as stale"),
                    Err(e) => {
                        tracing::warn!(partition = %tp, error = %strata_record::ErrorChain(&e), "ISR change failed; will retry")
                    }
                }
            });
        }
    }
}
