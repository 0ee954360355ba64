//! `ElectLeaders` (Kafka's preferred-replica and unclean leader election,
//! `kafka-leader-election.sh`): the request becomes one
//! [`MetadataCommand::ElectLeaders`] proposal; the controller decides, and
//! every partition gets a result: its new leader, or why it kept its leader.

use std::collections::BTreeSet;

use strata_metadata::{CommandOutcome, MetadataCommand, MetadataImage};
use strata_metadata::{ElectionSkip, ElectionSkipReason, ElectionType};

use strata_record::TopicPartition;

use crate::error::{BrokerError, ErrorKind};

use crate::admin::controller_error;
use crate::service::BrokerService;

/// What an election did for one partition.
#[derive(Debug)]
pub struct ElectionResult {
    /// The partition.
    pub tp: TopicPartition,
    /// Its leader after the election (the new one, or the one it kept).
    pub leader: Option<u32>,
    /// Why it kept its leader, if it did.
    pub error: Option<BrokerError>,
}

impl BrokerService {
    /// Runs one election of `election` type over `partitions` (topic, and
    /// its partitions; none listed means all of the topic's; an empty list
    /// means every partition) as one controller proposal. Fails as a whole
    /// only when the controller cannot take it.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Vec<(String, Vec<u32>)>,
    ) -> Result<Vec<ElectionResult>, BrokerError> {
        let result = self.run_election(election, partitions).await;
        if let Err(e) = &result {
            self.metrics.record_error(e.kind());
        }
        result
    }

    async fn run_election(
        &self,
        election: ElectionType,
        partitions: Vec<(String, Vec<u32>)>,
    ) -> Result<Vec<ElectionResult>, BrokerError> {
        let image = self.controller.metadata();
        let (targets, mut results) = resolve_targets(&image, partitions);
        if targets.as_ref().is_some_and(Vec::is_empty) {
            // Only unknown topics were named: nothing to propose.
            return Ok(results);
        }
        let outcome = self
            .controller
            .propose(MetadataCommand::ElectLeaders { partitions: targets, election })
            .await
            .map_err(|e| controller_error(&e))?;
        let CommandOutcome::LeadersElected { partitions_moved, skipped, .. } = outcome else {
            return Err(controller_error(&crate::controller_link::unexpected(outcome)));
        };
        if !partitions_moved.is_empty() {
            self.apply_current_metadata().await;
        }
        for m in partitions_moved {
            results.push(ElectionResult {
                tp: TopicPartition::of(m.topic, m.partition),
                leader: m.leader,
                error: None,
            });
        }
        for s in &skipped {
            results.push(ElectionResult {
                tp: TopicPartition::of(s.topic.clone(), s.partition),
                leader: current_leader(&image, &s.topic, s.partition),
                error: Some(skip_error(&image, election, s)),
            });
        }
        results.sort_by(|a, b| a.tp.cmp(&b.tp));
        Ok(results)
    }
}

/// The proposal's partition list (`None` = every partition) and the results
/// already known: topics this node's metadata does not have. A topic given
/// without partitions means all of its partitions in `image`.
fn resolve_targets(
    image: &MetadataImage,
    requested: Vec<(String, Vec<u32>)>,
) -> (Option<Vec<(String, u32)>>, Vec<ElectionResult>) {
    if requested.is_empty() {
        return (None, Vec::new());
    }
    let mut targets = Vec::new();
    let mut unknown = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, listed) in requested {
        let topic = image.topics.get(&name);
        let partitions: Vec<u32> = match (topic, listed.is_empty()) {
            (Some(t), true) => t.partitions.iter().map(|p| p.partition).collect(),
            (_, false) => listed,
            (None, true) => {
                if seen.insert((name.clone(), u32::MAX)) {
                    let e = BrokerError::new(ErrorKind::UnknownTopicOrPartition, format!("unknown topic '{name}'"));
                    unknown.push(ElectionResult { tp: TopicPartition::of(name, 0), leader: None, error: Some(e) });
                }
                continue;
            }
        };
        for p in partitions {
            if seen.insert((name.clone(), p)) {
                targets.push((name.clone(), p));
            }
        }
    }
    (Some(targets), unknown)
}

fn current_leader(image: &MetadataImage, topic: &str, partition: u32) -> Option<u32> {
    image.topics.get(topic).and_then(|t| t.partitions.get(partition as usize)).and_then(|p| p.leader)
}

/// The per-partition error for a partition the election left alone, naming
/// the cause with what `image` says about it.
fn skip_error(image: &MetadataImage, election: ElectionType, s: &ElectionSkip) -> BrokerError {
    let tp = format!("{}-{}", s.topic, s.partition);
    let p = image.topics.get(&s.topic).and_then(|t| t.partitions.get(s.partition as usize));
    let preferred = p.and_then(|p| p.replicas.first().copied());
    let fenced = |id: u32| image.brokers.get(&id).is_none_or(|b| b.fenced);
    match s.reason {
        ElectionSkipReason::UnknownTopicOrPartition => {
            let message = if image.topics.contains_key(&s.topic) {
                format!("unknown partition {tp}")
            } else {
                format!("unknown topic '{}'", s.topic)
            };
            BrokerError::new(ErrorKind::UnknownTopicOrPartition, message)
        }
        ElectionSkipReason::ElectionNotNeeded => {
            let message = match (election, p.and_then(|p| p.leader)) {
                (ElectionType::Preferred, Some(l)) => format!("{tp} is already led by its preferred replica {l}"),
                (ElectionType::Preferred, None) => format!("{tp} already has the leader a preferred election gives it"),
                (ElectionType::Unclean, Some(l)) => format!("{tp} already has a leader ({l})"),
                (ElectionType::Unclean, None) => format!("{tp} needs no election"),
            };
            BrokerError::new(ErrorKind::ElectionNotNeeded, message)
        }
        ElectionSkipReason::PreferredLeaderNotAvailable => {
            let message = match (preferred, p) {
                (Some(r), _) if fenced(r) => format!("preferred replica {r} of {tp} is fenced (not alive)"),
                (Some(r), Some(p)) if !p.isr.contains(&r) => {
                    format!("preferred replica {r} of {tp} is not in the ISR {:?}", p.isr)
                }
                _ => format!("the preferred replica of {tp} cannot lead"),
            };
            BrokerError::new(ErrorKind::PreferredLeaderNotAvailable, message)
        }
        ElectionSkipReason::UncleanElectionDisabled => BrokerError::new(
            ErrorKind::EligibleLeadersNotAvailable,
            format!(
                "no ISR member of {tp} is alive, and topic '{}' does not allow unclean election \
                 (unclean.leader.election.enable=true)",
                s.topic
            ),
        ),
        ElectionSkipReason::EligibleLeadersNotAvailable => {
            let replicas = p.map(|p| p.replicas.clone()).unwrap_or_default();
            BrokerError::new(
                ErrorKind::EligibleLeadersNotAvailable,
                format!("no replica of {tp} can lead: every replica {replicas:?} is fenced"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_metadata::{BrokerInfo, PartitionInfo, TopicInfo};

    fn image() -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in [1, 2] {
            img.brokers.insert(
                id,
                BrokerInfo {
                    node_id: id,
                    address: format!("h:{id}"),
                    rack: None,
                    fenced: id == 2,
                    kafka_address: None,
                    decommissioning: false,
                },
            );
        }
        let partitions = (0..2)
            .map(|p| PartitionInfo {
                partition: p,
                replicas: vec![2, 1],
                isr: vec![1],
                leader: Some(1),
                leader_epoch: 1,
                partition_epoch: 1,
                reassignment: None,
            })
            .collect();
        img.topics.insert(
            "t".into(),
            TopicInfo { id: "id".into(), name: "t".into(), configs: Default::default(), partitions },
        );
        img
    }

    #[test]
    fn targets_resolve_topics_against_the_image() {
        let img = image();
        let (targets, unknown) = resolve_targets(&img, vec![]);
        assert_eq!((targets, unknown.len()), (None, 0));
        let tp = |topic: &str, partitions: &[u32]| (topic.to_string(), partitions.to_vec());
        let (targets, unknown) =
            resolve_targets(&img, vec![tp("t", &[]), tp("t", &[1, 5]), tp("x", &[]), tp("y", &[3])]);
        let want: Vec<(String, u32)> = vec![("t".into(), 0), ("t".into(), 1), ("t".into(), 5), ("y".into(), 3)];
        assert_eq!(targets, Some(want));
        assert_eq!(unknown.len(), 1);
        assert_eq!(
            (unknown[0].tp.topic.as_str(), unknown[0].error.as_ref().map(BrokerError::kind)),
            ("x", Some(ErrorKind::UnknownTopicOrPartition))
        );
        let (targets, unknown) = resolve_targets(&img, vec![tp("x", &[])]);
        assert_eq!((targets, unknown.len()), (Some(vec![]), 1));
    }

    #[test]
    fn skip_messages_name_the_cause() {
        let img = image();
        let skip = |reason| ElectionSkip { topic: "t".into(), partition: 0, reason };
        let e = skip_error(&img, ElectionType::Preferred, &skip(ElectionSkipReason::PreferredLeaderNotAvailable));
        assert_eq!(e.kind(), ErrorKind::PreferredLeaderNotAvailable);
        assert!(e.message().contains("replica 2") && e.message().contains("fenced"), "{}", e.message());
        let e = skip_error(&img, ElectionType::Unclean, &skip(ElectionSkipReason::UncleanElectionDisabled));
        assert_eq!(e.kind(), ErrorKind::EligibleLeadersNotAvailable);
        assert!(e.message().contains("unclean.leader.election.enable"), "{}", e.message());
        let e = skip_error(&img, ElectionType::Preferred, &skip(ElectionSkipReason::ElectionNotNeeded));
        assert_eq!(e.kind(), ErrorKind::ElectionNotNeeded);
        let e = skip_error(&img, ElectionType::Unclean, &skip(ElectionSkipReason::EligibleLeadersNotAvailable));
        assert_eq!(e.kind(), ErrorKind::EligibleLeadersNotAvailable);
        let e = skip_error(&img, ElectionType::Preferred, &skip(ElectionSkipReason::UnknownTopicOrPartition));
        assert_eq!(e.kind(), ErrorKind::UnknownTopicOrPartition);
        assert_eq!(current_leader(&img, "t", 1), Some(1));
        assert_eq!(current_leader(&img, "t", 9), None);
    }
}
