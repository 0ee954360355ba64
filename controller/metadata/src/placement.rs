//! Replica placement for new partitions.

/// Chooses the replicas of partition `partition` among `brokers` (unfenced
/// broker ids, ascending), round-robin from an offset derived from the
/// partition number, so consecutive partitions get different first replicas
/// (preferred leaders) and leadership spreads over the brokers.
///
/// Returns fewer than `replication_factor` ids only if there are fewer brokers;
/// callers check that first. Pass the brokers in [`rack_alternating`] order
/// to spread each partition's replicas over racks.
pub fn place_replicas(brokers: &[u32], partition: u32, replication_factor: u32) -> Vec<u32> {
    let n = brokers.len();
    if n == 0 {
        return Vec::new();
    }
    let start = partition as usize % n;
    let count = (replication_factor as usize).min(n);
    (0..count).map(|i| brokers[(start + i) % n]).collect()
}

/// Orders brokers so that consecutive entries are on different racks where
/// possible (as Kafka's rack-aware assignment does): racks sorted by name,
/// brokers within a rack ascending, then one broker from each rack in turn.
/// Round-robin placement over this order puts a partition's replicas on as
/// many racks as there are. Brokers without a rack form one group of their
/// own; with no racks at all the order is simply ascending ids.
pub fn rack_alternating(brokers: &[(u32, Option<&str>)]) -> Vec<u32> {
    let mut racks: std::collections::BTreeMap<Option<&str>, Vec<u32>> = std::collections::BTreeMap::new();
    for &(id, rack) in brokers {
        racks.entry(rack).or_default().push(id);
    }
    for ids in racks.values_mut() {
        ids.sort_unstable();
    }
    let longest = racks.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(brokers.len());
    for i in 0..longest {
        for ids in racks.values() {
            if let Some(&id) = ids.get(i) {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod rack_tests {
    use super::*;

    #[test]
    fn replicas_span_racks() {
        let brokers = [(1, Some("a")), (2, Some("a")), (3, Some("b")), (4, Some("b")), (5, Some("c")), (6, Some("c"))];
        let rack = |id: u32| brokers.iter().find(|b| b.0 == id).and_then(|b| b.1);
        let order = rack_alternating(&brokers);
        assert_eq!(order, vec![1, 3, 5, 2, 4, 6]);
        for p in 0..12 {
            let replicas = place_replicas(&order, p, 3);
            let mut racks: Vec<_> = replicas.iter().map(|&id| rack(id)).collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3, "partition {p}: {replicas:?}");
        }
        // Leaders (first replicas) still spread over every broker.
        let leaders: std::collections::BTreeSet<u32> = (0..6).map(|p| place_replicas(&order, p, 3)[0]).collect();
        assert_eq!(leaders.len(), 6);
    }

    #[test]
    fn created_topics_place_replicas_across_racks() {
        use crate::{MetadataCommand, MetadataImage};
        let mut img = MetadataImage::default();
        for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b")] {
            let cmd = MetadataCommand::RegisterBroker {
                kafka_address: None,
                node_id: id,
                address: format!("h:{id}"),
                rack: Some(rack.into()),
            };
            img.apply(&cmd).unwrap();
        }
        let cmd = MetadataCommand::CreateTopic {
            name: "t".into(),
            topic_id: "id-t".into(),
            partitions: 8,
            replication_factor: 2,
            configs: Default::default(),
        };
        img.apply(&cmd).unwrap();
        let rack = |id: u32| if id <= 2 { "a" } else { "b" };
        for p in &img.topics["t"].partitions {
            assert_ne!(
                rack(p.replicas[0]),
                rack(p.replicas[1]),
                "partition {} on one rack: {:?}",
                p.partition,
                p.replicas
            );
        }
    }

    #[test]
    fn without_racks_the_order_is_ascending() {
        assert_eq!(rack_alternating(&[(3, None), (1, None), (2, None)]), vec![1, 2, 3]);
        assert_eq!(rack_alternating(&[(3, Some("x")), (1, None), (2, Some("x"))]), vec![1, 2, 3]);
    }
}
