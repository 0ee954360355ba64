//! Automatic preferred-leader balancing (Kafka's
//! `auto.leader.rebalance.enable`): after a broker failure its partitions are
//! led elsewhere; once it is back and in sync, the controller leader moves
//! leadership back to the preferred replicas so load spreads as placed.

use crate::metadata::MetadataImage;

/// The partitions a preferred election would move now: those whose preferred
/// replica (the first of `replicas`) is an unfenced broker, in the ISR and
/// not the leader. In topic-name then partition order.
pub(crate) fn imbalanced_partitions(image: &MetadataImage) -> Vec<(String, u32)> {
    let unfenced = |id: u32| image.brokers.get(&id).is_some_and(|b| !b.fenced);
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .filter(|(_, p)| p.replicas.first().is_some_and(|&r| p.leader != Some(r) && p.isr.contains(&r) && unfenced(r)))
        .map(|(t, p)| (t.name.clone(), p.partition))
        .collect()
}

/// Leaderless partitions of topics that allow unclean leader election
/// (`unclean.leader.election.enable=true`) with an unfenced replica that
/// could take over: the controller elects one at once, accepting data loss
/// because the topic asked for availability first.
pub(crate) fn unclean_candidates(image: &MetadataImage) -> Vec<(String, u32)> {
    let unfenced = |id: &u32| image.brokers.get(id).is_some_and(|b| !b.fenced);
    image
        .topics
        .values()
        .filter(|t| {
            t.configs
                .get(crate::metadata::UNCLEAN_LEADER_ELECTION_ENABLE)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        })
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .filter(|(_, p)| p.leader.is_none() && p.replicas.iter().any(unfenced))
        .map(|(t, p)| (t.name.clone(), p.partition))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerInfo, PartitionInfo, TopicInfo};

    fn partition(partition: u32, replicas: &[u32], isr: &[u32], leader: Option<u32>) -> PartitionInfo {
        PartitionInfo {
            partition,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            reassignment: None,
        }
    }

    fn image(fenced: &[u32], topics: Vec<(&str, Vec<PartitionInfo>)>) -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 1..=3 {
            let b = BrokerInfo {
                node_id: id,
                address: format!("h:{id}"),
                rack: None,
                fenced: fenced.contains(&id),
                kafka_address: None,
                decommissioning: false,
            };
            img.brokers.insert(id, b);
        }
        for (name, partitions) in topics {
            let t = TopicInfo { id: format!("{name}-id"), name: name.into(), configs: Default::default(), partitions };
            img.topics.insert(name.into(), t);
        }
        img
    }

    #[test]
    fn unclean_candidates_are_leaderless_partitions_of_topics_that_allow_it() {
        let mut img = image(
            &[1],
            vec![
                ("strict", vec![partition(0, &[1, 2], &[1], None)]),
                ("loose", vec![partition(0, &[1, 2], &[1], None), partition(1, &[1], &[1], None)]),
            ],
        );
        assert!(unclean_candidates(&img).is_empty(), "no topic allows it yet");
        let loose = img.topics.get_mut("loose").unwrap();
        loose.configs.insert(crate::metadata::UNCLEAN_LEADER_ELECTION_ENABLE.into(), "true".into());
        // Partition 1's only replica is fenced: nobody can take over.
        assert_eq!(unclean_candidates(&img), vec![("loose".to_string(), 0)]);
    }

    #[test]
    fn only_partitions_whose_preferred_replica_can_lead_are_listed() {
        let img = image(
            &[3],
            vec![
                (
                    "a",
                    vec![
                        partition(0, &[1, 2], &[1, 2], Some(1)), // balanced
                        partition(1, &[1, 2], &[1, 2], Some(2)), // preferred in ISR, not leading
                        partition(2, &[1, 2], &[2], Some(2)),    // preferred out of the ISR
                        partition(3, &[3, 1], &[3, 1], Some(1)), // preferred fenced
                        partition(4, &[2, 1], &[1, 2], None),    // leaderless, preferred eligible
                    ],
                ),
                ("b", vec![partition(0, &[9, 1], &[9, 1], Some(1))]), // preferred not registered
                ("c", vec![partition(0, &[], &[], None)]),            // no replicas at all
            ],
        );
        assert_eq!(imbalanced_partitions(&img), vec![("a".to_string(), 1), ("a".to_string(), 4)]);
    }

    #[test]
    fn a_balanced_or_empty_image_needs_nothing() {
        assert!(imbalanced_partitions(&MetadataImage::default()).is_empty());
        let img = image(&[], vec![("a", vec![partition(0, &[2, 1], &[2, 1], Some(2))])]);
        assert!(imbalanced_partitions(&img).is_empty());
    }
}
