//! Leader and ISR changes (`docs/replication.md`, "ISR changes" and "Leader election"):
//! fencing, unfencing, controlled shutdown, a leader's `AlterPartition` and
//! admin-requested elections.
//!
//! Every change goes through [`set_state`], which keeps the epoch rules in one
//! place: `partition_epoch` is bumped by one on every change of leader or ISR,
//! `leader_epoch` by one on every change of leader, and nothing is bumped when
//! nothing changes.

use std::collections::{BTreeMap, BTreeSet};

use super::image::{BrokerInfo, MetadataImage, PartitionInfo};
use super::outcome::{CommandOutcome, ElectionSkip, ElectionSkipReason, ElectionType, LeaderChange, MetadataError};

/// The topic config that allows [`ElectionType::Unclean`] elections for a topic.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// True when `id` is a registered, unfenced broker: the only kind that may
/// lead or join an ISR.
fn eligible(brokers: &BTreeMap<u32, BrokerInfo>, id: u32) -> bool {
    brokers.get(&id).is_some_and(|b| !b.fenced)
}

/// The first replica (in preference order) that is in the ISR and eligible.
fn first_eligible_in_isr(brokers: &BTreeMap<u32, BrokerInfo>, p: &PartitionInfo) -> Option<u32> {
    p.replicas.iter().copied().find(|r| p.isr.contains(r) && eligible(brokers, *r))
}

/// Sets a partition's leader and ISR, bumping the epochs for what changed.
/// Returns the change, or `None` when both were already in force.
fn set_state(
    topic: &str,
    p: &mut PartitionInfo,
    leader: Option<u32>,
    isr: Vec<u32>,
    unclean: bool,
) -> Option<LeaderChange> {
    if p.leader == leader && p.isr == isr {
        return None;
    }
    let leader_changed = p.leader != leader;
    if leader_changed {
        p.leader = leader;
        p.leader_epoch += 1;
    }
    p.isr = isr;
    p.partition_epoch += 1;
    Some(LeaderChange::of(topic, p, leader_changed, unclean))
}

impl MetadataImage {
    pub(super) fn fence_broker(&mut self, node_id: u32) -> Result<CommandOutcome, MetadataError> {
        let (already_fenced, partitions_moved) = self.fence_and_evict(node_id)?;
        Ok(CommandOutcome::BrokerFenced { node_id, already_fenced, partitions_moved })
    }

    pub(super) fn controlled_shutdown(&mut self, node_id: u32) -> Result<CommandOutcome, MetadataError> {
        let (already_fenced, partitions_moved) = self.fence_and_evict(node_id)?;
        Ok(CommandOutcome::BrokerShutDown { node_id, already_fenced, partitions_moved })
    }

    /// Fences `node_id`, then moves leadership away from it and drops it from
    /// every ISR it is not the last member of. A broker that was already
    /// fenced is left as it is (it was evicted when it was fenced).
    fn fence_and_evict(&mut self, node_id: u32) -> Result<(bool, Vec<LeaderChange>), MetadataError> {
        let broker = self.brokers.get_mut(&node_id).ok_or(MetadataError::UnknownBroker { node_id })?;
        if broker.fenced {
            return Ok((true, Vec::new()));
        }
        broker.fenced = true;
        let brokers = &self.brokers;
        let mut moved = Vec::new();
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                let mut isr = p.isr.clone();
                if isr.len() > 1 {
                    isr.retain(|r| *r != node_id);
                }
                let leader = if p.leader == Some(node_id) {
                    p.replicas.iter().copied().find(|r| isr.contains(r) && eligible(brokers, *r))
                } else {
                    p.leader
                };
                moved.extend(set_state(&topic.name, p, leader, isr, false));
            }
        }
        Ok((false, moved))
    }

    pub(super) fn unfence_broker(&mut self, node_id: u32) -> Result<CommandOutcome, MetadataError> {
        let broker = self.brokers.get_mut(&node_id).ok_or(MetadataError::UnknownBroker { node_id })?;
        if !broker.fenced {
            return Ok(CommandOutcome::BrokerUnfenced {
                node_id,
                already_unfenced: true,
                partitions_moved: Vec::new(),
            });
        }
        broker.fenced = false;
        let moved = self.lead_leaderless(node_id);
        Ok(CommandOutcome::BrokerUnfenced { node_id, already_unfenced: false, partitions_moved: moved })
    }

    /// Makes (unfenced) `node_id` the leader of every leaderless partition
    /// whose ISR contains it. The ISR is unchanged.
    pub(super) fn lead_leaderless(&mut self, node_id: u32) -> Vec<LeaderChange> {
        let mut moved = Vec::new();
        for topic in self.topics.values_mut() {
            for p in topic.partitions.iter_mut().filter(|p| p.leader.is_none() && p.isr.contains(&node_id)) {
                let isr = p.isr.clone();
                moved.extend(set_state(&topic.name, p, Some(node_id), isr, false));
            }
        }
        moved
    }

    pub(super) fn alter_partition(
        &mut self,
        topic_id: &str,
        partition: u32,
        leader_id: u32,
        leader_epoch: u32,
        partition_epoch: u32,
        new_isr: &[u32],
    ) -> Result<CommandOutcome, MetadataError> {
        let brokers = &self.brokers;
        let unknown = || MetadataError::UnknownTopicOrPartition { topic_id: topic_id.to_string(), partition };
        let topic = self.topics.values_mut().find(|t| t.id == topic_id).ok_or_else(unknown)?;
        let name = topic.name.clone();
        let p = topic.partitions.get_mut(partition as usize).ok_or_else(unknown)?;
        if leader_epoch != p.leader_epoch {
            return Err(MetadataError::FencedLeaderEpoch {
                topic: name,
                partition,
                requested: leader_epoch,
                current: p.leader_epoch,
            });
        }
        if p.leader != Some(leader_id) {
            return Err(MetadataError::NotLeader { topic: name, partition, proposer: leader_id, leader: p.leader });
        }
        if partition_epoch != p.partition_epoch {
            return Err(MetadataError::InvalidPartitionEpoch {
                topic: name,
                partition,
                requested: partition_epoch,
                current: p.partition_epoch,
            });
        }
        let invalid = |reason: String| MetadataError::InvalidIsr {
            topic: name.clone(),
            partition,
            isr: new_isr.to_vec(),
            reason,
        };
        if new_isr.is_empty() {
            return Err(invalid("empty".into()));
        }
        let mut seen = BTreeSet::new();
        for &r in new_isr {
            if !seen.insert(r) {
                return Err(invalid(format!("broker {r} appears twice")));
            }
            if !p.replicas.contains(&r) {
                return Err(invalid(format!("broker {r} is not a replica (replicas: {:?})", p.replicas)));
            }
        }
        if !new_isr.contains(&leader_id) {
            return Err(invalid(format!("it leaves out the leader {leader_id}")));
        }
        if let Some(&broker) = new_isr.iter().find(|r| !eligible(brokers, **r)) {
            return Err(MetadataError::IneligibleReplica { topic: name, partition, broker });
        }
        set_state(&name, p, Some(leader_id), new_isr.to_vec(), false);
        // The ISR this change formed may complete a replica move.
        crate::reassignment::complete_if_in_sync(brokers, &name, p);
        Ok(CommandOutcome::PartitionAltered { topic: name, topic_id: topic_id.to_string(), partition: p.clone() })
    }

    pub(super) fn elect_leaders(
        &mut self,
        partitions: Option<&[(String, u32)]>,
        election: ElectionType,
    ) -> Result<CommandOutcome, MetadataError> {
        let explicit = partitions.is_some();
        let targets: Vec<(String, u32)> = match partitions {
            Some(list) => {
                // Each partition once, in request order.
                let mut seen = BTreeSet::new();
                list.iter().filter(|tp| seen.insert((tp.0.as_str(), tp.1))).cloned().collect()
            }
            None => {
                self.topics.values().flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition))).collect()
            }
        };
        let brokers = &self.brokers;
        let mut moved = Vec::new();
        let mut skipped = Vec::new();
        for (topic, partition) in targets {
            let Some(t) = self.topics.get_mut(&topic) else {
                let reason = ElectionSkipReason::UnknownTopicOrPartition;
                skipped.push(ElectionSkip { topic, partition, reason });
                continue;
            };
            let unclean_allowed =
                t.configs.get(UNCLEAN_LEADER_ELECTION_ENABLE).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            let Some(p) = t.partitions.get_mut(partition as usize) else {
                let reason = ElectionSkipReason::UnknownTopicOrPartition;
                skipped.push(ElectionSkip { topic, partition, reason });
                continue;
            };
            let result = match election {
                ElectionType::Preferred => elect_preferred(brokers, &topic, p),
                ElectionType::Unclean => elect_unclean(brokers, &topic, p, unclean_allowed),
            };
            match result {
                Ok(change) => moved.push(change),
                // With no list, only the partitions that needed an election are reported.
                Err(ElectionSkipReason::ElectionNotNeeded) if !explicit => {}
                Err(reason) => skipped.push(ElectionSkip { topic, partition, reason }),
            }
        }
        Ok(CommandOutcome::LeadersElected { election, partitions_moved: moved, skipped })
    }
}

/// Makes the preferred replica the leader if it is not, and is in the ISR and unfenced.
fn elect_preferred(
    brokers: &BTreeMap<u32, BrokerInfo>,
    topic: &str,
    p: &mut PartitionInfo,
) -> Result<LeaderChange, ElectionSkipReason> {
    let preferred = p.replicas.first().copied();
    if p.leader == preferred {
        return Err(ElectionSkipReason::ElectionNotNeeded);
    }
    match preferred {
        Some(r) if p.isr.contains(&r) && eligible(brokers, r) => {
            let isr = p.isr.clone();
            set_state(topic, p, Some(r), isr, false).ok_or(ElectionSkipReason::ElectionNotNeeded)
        }
        _ => Err(ElectionSkipReason::PreferredLeaderNotAvailable),
    }
}

/// Gives a leaderless partition a leader: an eligible ISR member if there is
/// one (a clean election, always allowed), else, if the topic allows it, the
/// first unfenced replica, which becomes the sole ISR member.
fn elect_unclean(
    brokers: &BTreeMap<u32, BrokerInfo>,
    topic: &str,
    p: &mut PartitionInfo,
    allowed: bool,
) -> Result<LeaderChange, ElectionSkipReason> {
    if p.leader.is_some() {
        return Err(ElectionSkipReason::ElectionNotNeeded);
    }
    if let Some(leader) = first_eligible_in_isr(brokers, p) {
        let isr = p.isr.clone();
        return set_state(topic, p, Some(leader), isr, false).ok_or(ElectionSkipReason::ElectionNotNeeded);
    }
    if !allowed {
        return Err(ElectionSkipReason::UncleanElectionDisabled);
    }
    let leader = p.replicas.iter().copied().find(|r| eligible(brokers, *r));
    let leader = leader.ok_or(ElectionSkipReason::EligibleLeadersNotAvailable)?;
    set_state(topic, p, Some(leader), vec![leader], true).ok_or(ElectionSkipReason::ElectionNotNeeded)
}
