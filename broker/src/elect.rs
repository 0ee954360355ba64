//! `ElectLeaders` (Kafka's preferred-replica and unclean leader election,
//! `kafka-leader-election.sh`): the request becomes one
//! [`MetadataCommand::ElectLeaders`] proposal; the controller decides, and
//! every partition gets a result: its new leader, or why it kept its leader.

use std::collections::BTreeSet;

use strata_metadata::{CommandOutcome, MetadataCommand, MetadataImage};
use strata_metadata::{ElectionSkip, ElectionSkipReason, ElectionType};

use strata_protocol::v1::*;

use crate::error::{BrokerError, ErrorKind};

use crate::admin::controller_error;
use crate::service::BrokerService;

impl BrokerService {
    pub(crate) async fn elect_leaders(&self, req: ElectLeadersRequest) -> ElectLeadersResponse {
        match self.run_election(req).await {
            Ok(results) => ElectLeadersResponse { error: None, results },
            Err(error) => {
                self.metrics.record_error(error.kind());
                ElectLeadersResponse { error: Some(error.into()), results: Vec::new() }
            }
        }
    }

    async fn run_election(&self, req: ElectLeadersRequest) -> Result<Vec<ElectionResult>, BrokerError> {
        let election = parse_election(&req.election)?;
        let image = self.controller.metadata();
        let (targets, mut results) = resolve_targets(&image, req.partitions);
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
        let image = self.controller.metadata();
        if !partitions_moved.is_empty() {
            self.replicas.apply_metadata(image.clone());
        }
        for m in partitions_moved {
            results.push(ElectionResult {
                topic: m.topic,
                partition: m.partition,
                error: None,
                leader: m.leader.map_or(-1, |l| l as i32),
            });
        }
        for s in &skipped {
            results.push(ElectionResult {
                topic: s.topic.clone(),
                partition: s.partition,
                error: Some((skip_error(&image, election, s)).into()),
                leader: current_leader(&image, &s.topic, s.partition),
            });
        }
        results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(results)
    }
}

/// `""` or `"preferred"` (the default) and `"unclean"`, in any case.
fn parse_election(s: &str) -> Result<ElectionType, BrokerError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "preferred" => Ok(ElectionType::Preferred),
        "unclean" => Ok(ElectionType::Unclean),
        other => Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!("unknown election type '{other}': use 'preferred' or 'unclean'"),
        )),
    }
}

/// The proposal's partition list (`None` = every partition) and the results
/// already known: topics this node's metadata does not have. A topic given
/// without partitions means all of its partitions in `image`.
fn resolve_targets(
    image: &MetadataImage,
    requested: Vec<TopicPartitions>,
) -> (Option<Vec<(String, u32)>>, Vec<ElectionResult>) {
    if requested.is_empty() {
        return (None, Vec::new());
    }
    let mut targets = Vec::new();
    let mut unknown = Vec::new();
    let mut seen = BTreeSet::new();
    for tp in requested {
        let topic = image.topics.get(&tp.topic);
        let partitions: Vec<u32> = match (topic, tp.partitions.is_empty()) {
            (Some(t), true) => t.partitions.iter().map(|p| p.partition).collect(),
            (_, false) => tp.partitions,
            (None, true) => {
                if seen.insert((tp.topic.clone(), u32::MAX)) {
                    unknown.push(ElectionResult {
                        error: Some(
                            (BrokerError::new(
                                ErrorKind::UnknownTopicOrPartition,
                                format!("unknown topic '{}'", tp.topic),
                            ))
                            .into(),
                        ),
                        topic: tp.topic,
                        partition: 0,
                        leader: -1,
                    });
                }
                continue;
            }
        };
        for p in partitions {
            if seen.insert((tp.topic.clone(), p)) {
                targets.push((tp.topic.clone(), p));
            }
        }
    }
    (Some(targets), unknown)
}

fn current_leader(image: &MetadataImage, topic: &str, partition: u32) -> i32 {
    image
        .topics
        .get(topic)
        .and_then(|t| t.partitions.get(partition as usize))
        .and_then(|p| p.leader)
        .map_or(-1, |l| l as i32)
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
    use strata_protocol::errors::code_of;

    fn image() -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in [1, 2] {
            img.brokers.insert(id, BrokerInfo { node_id: id, address: format!("h:{id}"), rack: None, fenced: id == 2 });
        }
        let partitions = (0..2)
            .map(|p| PartitionInfo {
                partition: p,
                replicas: vec![2, 1],
                isr: vec![1],
                leader: Some(1),
                leader_epoch: 1,
                partition_epoch: 1,
            })
            .collect();
        img.topics.insert(
            "t".into(),
            TopicInfo { id: "id".into(), name: "t".into(), configs: Default::default(), partitions },
        );
        img
    }

    #[test]
    fn election_types() {
        assert_eq!(parse_election("").unwrap(), ElectionType::Preferred);
        assert_eq!(parse_election("Preferred").unwrap(), ElectionType::Preferred);
        assert_eq!(parse_election("unclean").unwrap(), ElectionType::Unclean);
        assert_eq!(parse_election("random").unwrap_err().kind(), ErrorKind::InvalidRequest);
    }

    #[test]
    fn targets_resolve_topics_against_the_image() {
        let img = image();
        assert_eq!(resolve_targets(&img, vec![]), (None, vec![]));
        let tp =
            |topic: &str, partitions: &[u32]| TopicPartitions { topic: topic.into(), partitions: partitions.to_vec() };
        let (targets, unknown) =
            resolve_targets(&img, vec![tp("t", &[]), tp("t", &[1, 5]), tp("x", &[]), tp("y", &[3])]);
        let want: Vec<(String, u32)> = vec![("t".into(), 0), ("t".into(), 1), ("t".into(), 5), ("y".into(), 3)];
        assert_eq!(targets, Some(want));
        assert_eq!(unknown.len(), 1);
        assert_eq!((unknown[0].topic.as_str(), code_of(&unknown[0].error)), ("x", ErrorCode::UnknownTopicOrPartition));
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
        assert_eq!(current_leader(&img, "t", 1), 1);
        assert_eq!(current_leader(&img, "t", 9), -1);
    }
}
