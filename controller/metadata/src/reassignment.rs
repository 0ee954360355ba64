//! Replica reassignment (Kafka's KIP-455; `docs/operations.md`, "Move
//! replicas"): a partition moving from its original replicas to a target
//! first runs on both sets together — the added replicas fetch from the
//! leader and join the ISR once caught up — and, in the same command that
//! puts the last target replica in the ISR, shrinks to the target: the
//! removed replicas leave the replica set and the ISR, and a leader that is
//! being removed hands over to the first in-sync target replica. Nothing
//! acknowledged can be lost: the ISR only ever loses replicas once every
//! target replica is in it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::image::{MetadataImage, PartitionInfo};
use super::outcome::{LeaderChange, MetadataError};

/// A partition's move in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// The replica set the partition ends with, in preference order.
    pub target: Vec<u32>,
    /// Target replicas that were not replicas before (they catch up).
    pub adding: Vec<u32>,
    /// Original replicas not in the target (they go at completion).
    pub removing: Vec<u32>,
    /// The replicas before the move, in their order (a cancel restores them).
    pub original: Vec<u32>,
}

/// One partition's requested change: a new target, or `None` to cancel a
/// move in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentRequest {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// The replicas to move to; `None` cancels.
    pub target: Option<Vec<u32>>,
}

/// What one request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentResult {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// The target asked for (`None`: a cancel).
    #[serde(default)]
    pub target: Option<Vec<u32>>,
    /// Why it was refused; `None` when it took effect (or changed nothing).
    pub error: Option<MetadataError>,
}

impl MetadataImage {
    /// Starts or cancels moves; each request stands alone (a refused one
    /// leaves the others to take effect).
    pub(super) fn alter_reassignments(&mut self, requests: &[ReassignmentRequest]) -> Vec<ReassignmentResult> {
        requests
            .iter()
            .map(|r| ReassignmentResult {
                topic: r.topic.clone(),
                partition: r.partition,
                target: r.target.clone(),
                error: match &r.target {
                    Some(target) => self.start_reassignment(&r.topic, r.partition, target),
                    None => self.cancel_reassignment(&r.topic, r.partition),
                }
                .err(),
            })
            .collect()
    }

    fn partition_mut(&mut self, topic: &str, partition: u32) -> Result<&mut PartitionInfo, MetadataError> {
        find(&mut self.topics, topic, partition)
    }

    fn start_reassignment(&mut self, topic: &str, partition: u32, target: &[u32]) -> Result<(), MetadataError> {
        let invalid =
            |reason: String| MetadataError::InvalidReplicaAssignment { topic: topic.to_string(), partition, reason };
        if target.is_empty() {
            return Err(invalid("the target replica list is empty".into()));
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = target.iter().find(|r| !seen.insert(**r)) {
            return Err(invalid(format!("broker {dup} appears twice")));
        }
        let p = self.partition_mut(topic, partition)?;
        if p.reassignment.is_some() {
            return Err(MetadataError::ReassignmentInProgress { topic: topic.to_string(), partition });
        }
        let adding: Vec<u32> = target.iter().copied().filter(|r| !p.replicas.contains(r)).collect();
        let brokers = &self.brokers;
        if let Some(bad) = adding.iter().find(|r| brokers.get(r).is_none_or(|b| b.fenced || b.decommissioning)) {
            return Err(invalid(format!(
                "broker {bad} cannot take a new replica (not registered, fenced or being decommissioned)"
            )));
        }
        let p = self.partition_mut(topic, partition)?;
        if p.replicas == target {
            return Ok(());
        }
        let removing: Vec<u32> = p.replicas.iter().copied().filter(|r| !target.contains(r)).collect();
        let original = std::mem::replace(&mut p.replicas, target.to_vec());
        p.replicas.extend(&removing);
        p.partition_epoch += 1;
        p.reassignment = Some(Reassignment { target: target.to_vec(), adding, removing, original });
        complete_if_in_sync(&self.brokers, topic, find(&mut self.topics, topic, partition)?);
        Ok(())
    }

    fn cancel_reassignment(&mut self, topic: &str, partition: u32) -> Result<(), MetadataError> {
        let p = find(&mut self.topics, topic, partition)?;
        let Some(r) = p.reassignment.clone() else {
            return Err(MetadataError::NoReassignmentInProgress { topic: topic.to_string(), partition });
        };
        let original = r.original;
        let isr: Vec<u32> = p.isr.iter().copied().filter(|x| original.contains(x)).collect();
        if isr.is_empty() {
            return Err(MetadataError::InvalidReplicaAssignment {
                topic: topic.to_string(),
                partition,
                reason: format!("cancelling would leave no in-sync replica (ISR {:?}, original {original:?})", p.isr),
            });
        }
        let brokers = &self.brokers;
        let leader = match p.leader {
            Some(l) if original.contains(&l) => Some(l),
            _ => original.iter().copied().find(|x| isr.contains(x) && brokers.get(x).is_some_and(|b| !b.fenced)),
        };
        p.replicas = original;
        p.reassignment = None;
        let leader_changed = p.leader != leader;
        set_leader_and_isr(p, leader, isr, leader_changed);
        Ok(())
    }
}

/// The partition `topic`-`partition`, to change.
fn find<'a>(
    topics: &'a mut std::collections::BTreeMap<String, super::image::TopicInfo>,
    topic: &str,
    partition: u32,
) -> Result<&'a mut PartitionInfo, MetadataError> {
    topics
        .get_mut(topic)
        .and_then(|t| t.partitions.get_mut(partition as usize))
        .ok_or_else(|| MetadataError::UnknownPartition { topic: topic.to_string(), partition })
}

/// Finishes `p`'s move when every target replica is in the ISR: the
/// replica set and the ISR shrink to the target, and a leader outside it
/// hands over to the first eligible target replica. Returns the change.
pub(super) fn complete_if_in_sync(
    brokers: &std::collections::BTreeMap<u32, super::image::BrokerInfo>,
    topic: &str,
    p: &mut PartitionInfo,
) -> Option<LeaderChange> {
    let r = p.reassignment.as_ref()?;
    if !r.target.iter().all(|x| p.isr.contains(x)) {
        return None;
    }
    let target = r.target.clone();
    let isr: Vec<u32> = p.isr.iter().copied().filter(|x| target.contains(x)).collect();
    let leader = match p.leader {
        Some(l) if target.contains(&l) => Some(l),
        _ => target.iter().copied().find(|x| brokers.get(x).is_some_and(|b| !b.fenced)),
    };
    p.replicas = target;
    p.reassignment = None;
    let leader_changed = p.leader != leader;
    set_leader_and_isr(p, leader, isr, leader_changed);
    Some(LeaderChange::of(topic, p, leader_changed, false))
}

/// Sets leader and ISR with one partition-epoch bump (the replica set
/// changed too), and a leader-epoch bump when the leader changed.
fn set_leader_and_isr(p: &mut PartitionInfo, leader: Option<u32>, isr: Vec<u32>, leader_changed: bool) {
    if leader_changed {
        p.leader = leader;
        p.leader_epoch += 1;
    }
    p.isr = isr;
    p.partition_epoch += 1;
}
