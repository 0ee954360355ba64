//! Replica moves, rebalance and decommission plans (`docs/operations.md`,
//! "Move replicas"): the states a partition passes through, the refusals,
//! and that plans even out load and empty a decommissioned broker.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::tests::{create, fence, image_with_brokers, register};
use super::*;

fn reassign(list: &[(&str, u32, Option<&[u32]>)]) -> MetadataCommand {
    MetadataCommand::AlterPartitionReassignments {
        reassignments: list
            .iter()
            .map(|(t, p, target)| ReassignmentRequest {
                topic: t.to_string(),
                partition: *p,
                target: target.map(<[u32]>::to_vec),
            })
            .collect(),
    }
}

fn results(out: &CommandOutcome) -> Vec<Option<MetadataError>> {
    match out {
        CommandOutcome::ReassignmentsAltered { results } | CommandOutcome::BrokerDecommissioning { results, .. } => {
            results.iter().map(|r| r.error.clone()).collect()
        }
        other => panic!("{other:?}"),
    }
}

/// The leader's ISR change, at the partition's current epochs.
fn isr(img: &mut MetadataImage, topic: &str, partition: u32, isr: &[u32]) -> Result<CommandOutcome, MetadataError> {
    let t = &img.topics[topic];
    let p = &t.partitions[partition as usize];
    let cmd = MetadataCommand::AlterPartition {
        topic_id: t.id.clone(),
        partition,
        leader_id: p.leader.unwrap(),
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: isr.to_vec(),
    };
    img.apply(&cmd)
}

fn part(img: &MetadataImage, topic: &str, partition: usize) -> PartitionInfo {
    img.topics[topic].partitions[partition].clone()
}

/// Four brokers, topic `t` with one partition on 1, 2, 3 led by 1.
fn four_brokers_one_partition() -> MetadataImage {
    let mut img = image_with_brokers(3);
    img.apply(&create("t", "id-t", 1, 3)).unwrap();
    img.apply(&register(4)).unwrap();
    assert_eq!(part(&img, "t", 0).replicas, vec![1, 2, 3]);
    img
}

#[test]
fn a_move_runs_on_both_sets_until_every_target_replica_is_in_sync() {
    let mut img = four_brokers_one_partition();
    let out = img.apply(&reassign(&[("t", 0, Some(&[2, 3, 4]))])).unwrap();
    assert_eq!(results(&out), vec![None]);
    let p = part(&img, "t", 0);
    assert_eq!(p.replicas, vec![2, 3, 4, 1], "target first, then the replicas leaving");
    assert_eq!(p.isr, vec![1, 2, 3], "the new replica joins only once caught up");
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (Some(1), 0, 1));
    let r = p.reassignment.unwrap();
    assert_eq!((r.target, r.adding, r.removing), (vec![2, 3, 4], vec![4], vec![1]));

    // Broker 4 caught up: the leader adds it, and that completes the move.
    isr(&mut img, "t", 0, &[1, 2, 3, 4]).unwrap();
    let p = part(&img, "t", 0);
    assert_eq!(p.replicas, vec![2, 3, 4]);
    assert_eq!(p.isr, vec![2, 3, 4]);
    assert_eq!(p.leader, Some(2), "the leaving leader hands over to the first target replica");
    assert_eq!(p.leader_epoch, 1);
    assert!(p.reassignment.is_none());
}

#[test]
fn the_move_waits_for_the_last_target_replica() {
    let mut img = image_with_brokers(5);
    img.apply(&create("t", "id-t", 1, 3)).unwrap();
    img.apply(&reassign(&[("t", 0, Some(&[1, 4, 5]))])).unwrap();
    isr(&mut img, "t", 0, &[1, 2, 3, 4]).unwrap();
    let p = part(&img, "t", 0);
    assert!(p.reassignment.is_some(), "broker 5 is not in sync yet");
    assert_eq!(p.replicas, vec![1, 4, 5, 2, 3]);
    // An ISR shrink of a leaving replica does not complete it either.
    isr(&mut img, "t", 0, &[1, 3, 4]).unwrap();
    assert!(part(&img, "t", 0).reassignment.is_some());
    isr(&mut img, "t", 0, &[1, 3, 4, 5]).unwrap();
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas, p.isr, p.leader), (vec![1, 4, 5], vec![1, 4, 5], Some(1)));
}

#[test]
fn cancelling_goes_back_to_the_original_replicas() {
    let mut img = four_brokers_one_partition();
    img.apply(&reassign(&[("t", 0, Some(&[4, 2, 3]))])).unwrap();
    // Cancelled before broker 4 caught up.
    let before = part(&img, "t", 0);
    assert!(before.reassignment.is_some());
    let out = img.apply(&reassign(&[("t", 0, None)])).unwrap();
    assert_eq!(results(&out), vec![None]);
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas, p.isr, p.leader), (vec![1, 2, 3], vec![1, 2, 3], Some(1)));
    assert!(p.reassignment.is_none());
    assert!(p.partition_epoch > before.partition_epoch, "followers must see the change");
    let err = img.apply(&reassign(&[("t", 0, None)])).unwrap();
    assert!(matches!(results(&err)[0], Some(MetadataError::NoReassignmentInProgress { .. })));
}

#[test]
fn cancelling_after_an_added_replica_joined_the_isr_drops_it_from_the_isr() {
    let mut img = image_with_brokers(5);
    img.apply(&create("t", "id-t", 1, 2)).unwrap();
    img.apply(&reassign(&[("t", 0, Some(&[3, 4]))])).unwrap();
    isr(&mut img, "t", 0, &[1, 2, 3]).unwrap();
    img.apply(&reassign(&[("t", 0, None)])).unwrap();
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas, p.isr), (vec![1, 2], vec![1, 2]));
}

#[test]
fn reordering_replicas_completes_at_once() {
    let mut img = four_brokers_one_partition();
    img.apply(&reassign(&[("t", 0, Some(&[3, 1, 2]))])).unwrap();
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas, p.leader), (vec![3, 1, 2], Some(1)), "the preferred-leader election moves leadership");
    assert!(p.reassignment.is_none());
    // The same set in the same order changes nothing.
    let epoch = p.partition_epoch;
    img.apply(&reassign(&[("t", 0, Some(&[3, 1, 2]))])).unwrap();
    assert_eq!(part(&img, "t", 0).partition_epoch, epoch);
}

#[test]
fn bad_targets_are_refused_one_by_one() {
    let mut img = four_brokers_one_partition();
    img.apply(&create("u", "id-u", 1, 1)).unwrap();
    img.apply(&fence(4)).unwrap();
    let out = img
        .apply(&reassign(&[
            ("t", 0, Some(&[])),
            ("t", 0, Some(&[1, 1, 2])),
            ("t", 0, Some(&[1, 2, 9])),
            ("t", 0, Some(&[1, 2, 4])),
            ("t", 5, Some(&[1])),
            ("nope", 0, Some(&[1])),
            ("u", 0, Some(&[2])),
            ("u", 0, Some(&[3])),
        ]))
        .unwrap();
    let errors = results(&out);
    let invalid = |e: &Option<MetadataError>| matches!(e, Some(MetadataError::InvalidReplicaAssignment { .. }));
    assert!(errors[..4].iter().all(invalid), "{errors:?}");
    assert!(matches!(errors[4], Some(MetadataError::UnknownPartition { .. })));
    assert!(matches!(errors[5], Some(MetadataError::UnknownPartition { .. })));
    assert_eq!(errors[6], None, "the good one in the same request went ahead");
    assert!(matches!(errors[7], Some(MetadataError::ReassignmentInProgress { .. })));
    assert_eq!(part(&img, "t", 0).replicas, vec![1, 2, 3]);
    assert!(part(&img, "u", 0).reassignment.is_some());
}

#[test]
fn a_leaving_leader_hands_over_to_the_first_target_replica() {
    let mut img = four_brokers_one_partition();
    img.apply(&reassign(&[("t", 0, Some(&[4, 2, 3]))])).unwrap();
    isr(&mut img, "t", 0, &[1, 2, 3, 4]).unwrap();
    let p = part(&img, "t", 0);
    assert_eq!(p.leader, Some(4), "the first target replica leads");
    assert_eq!(p.replicas, vec![4, 2, 3]);
}

#[test]
fn added_partitions_take_the_replication_factor_of_the_target() {
    let mut img = image_with_brokers(4);
    img.apply(&create("t", "id-t", 1, 2)).unwrap();
    img.apply(&reassign(&[("t", 0, Some(&[3, 4]))])).unwrap();
    img.apply(&MetadataCommand::CreatePartitions { name: "t".into(), count: 2 }).unwrap();
    assert_eq!(part(&img, "t", 1).replicas.len(), 2);
}

/// Replica counts of the placeable brokers once every move completed.
fn loads(img: &MetadataImage) -> BTreeMap<u32, (usize, usize)> {
    let mut out: BTreeMap<u32, (usize, usize)> = img.placeable_brokers().into_iter().map(|b| (b, (0, 0))).collect();
    for p in img.topics.values().flat_map(|t| &t.partitions) {
        let set = p.reassignment.as_ref().map_or(&p.replicas, |r| &r.target);
        for (i, b) in set.iter().enumerate() {
            if let Some(c) = out.get_mut(b) {
                c.0 += 1;
                if i == 0 {
                    c.1 += 1;
                }
            }
        }
    }
    out
}

#[test]
fn a_rebalance_spreads_replicas_and_leaders_onto_a_new_broker() {
    let mut img = image_with_brokers(3);
    img.apply(&create("a", "id-a", 6, 3)).unwrap();
    img.apply(&create("b", "id-b", 4, 2)).unwrap();
    img.apply(&register(4)).unwrap();
    assert_eq!(loads(&img)[&4], (0, 0));
    let out = img.apply(&MetadataCommand::RebalanceReplicas {}).unwrap();
    let started = results(&out);
    assert!(!started.is_empty() && started.iter().all(Option::is_none), "{started:?}");
    let l = loads(&img);
    let (min, max) = (l.values().map(|c| c.0).min().unwrap(), l.values().map(|c| c.0).max().unwrap());
    assert!(max - min <= 1, "replicas {l:?}");
    let (min, max) = (l.values().map(|c| c.1).min().unwrap(), l.values().map(|c| c.1).max().unwrap());
    assert!(max - min <= 1, "leaders {l:?}");
    // A second rebalance while they run plans nothing new.
    let again = img.apply(&MetadataCommand::RebalanceReplicas {}).unwrap();
    assert_eq!(results(&again), Vec::<Option<MetadataError>>::new());
}

#[test]
fn decommissioning_moves_every_replica_off_and_places_nothing_new_there() {
    let mut img = image_with_brokers(4);
    img.apply(&create("a", "id-a", 8, 3)).unwrap();
    let out = img.apply(&MetadataCommand::DecommissionBroker { node_id: 2 }).unwrap();
    assert!(results(&out).iter().all(Option::is_none));
    assert!(img.brokers[&2].decommissioning);
    for p in &img.topics["a"].partitions {
        let target = p.reassignment.as_ref().map_or(&p.replicas, |r| &r.target);
        assert!(!target.contains(&2), "partition {} still heads for 2: {target:?}", p.partition);
        assert_eq!(target.len(), 3);
    }
    img.apply(&create("b", "id-b", 8, 3)).unwrap();
    assert!(img.topics["b"].partitions.iter().all(|p| !p.replicas.contains(&2)));
    // A restart (re-registration) keeps it leaving.
    img.apply(&register(2)).unwrap();
    assert!(img.brokers[&2].decommissioning);
}

#[test]
fn decommissioning_refuses_when_the_replicas_have_nowhere_to_go() {
    let mut img = image_with_brokers(3);
    img.apply(&create("a", "id-a", 2, 3)).unwrap();
    let before = img.clone();
    let err = img.apply(&MetadataCommand::DecommissionBroker { node_id: 3 }).unwrap_err();
    assert!(matches!(err, MetadataError::CannotDecommission { node_id: 3, .. }), "{err}");
    assert!(err.to_string().contains("no other broker"), "{err}");
    assert_eq!(img, before, "nothing changed");
}

#[test]
fn image_and_commands_round_trip_through_json() {
    let mut img = four_brokers_one_partition();
    img.apply(&reassign(&[("t", 0, Some(&[2, 3, 4]))])).unwrap();
    let back: MetadataImage = serde_json::from_slice(&serde_json::to_vec(&img).unwrap()).unwrap();
    assert_eq!(back, img);
    let cmd = reassign(&[("t", 0, None)]);
    assert_eq!(MetadataCommand::decode(&cmd.encode()).unwrap(), cmd);
}

/// Rebalances a cluster of `brokers` (+ `added` new ones) holding
/// `topics` (partitions, replication factor), completes every move, and
/// checks the result.
fn check_rebalance(brokers: u32, added: u32, topics: &[(u32, u32)], racks: bool) -> Result<(), TestCaseError> {
    let mut img = MetadataImage::default();
    let register = |img: &mut MetadataImage, id: u32| {
        let rack = racks.then(|| format!("r{}", id % 2));
        img.apply(&MetadataCommand::RegisterBroker {
            node_id: id,
            address: format!("h:{id}"),
            rack,
            kafka_address: None,
        })
        .unwrap();
    };
    for id in 1..=brokers {
        register(&mut img, id);
    }
    for (i, (parts, rf)) in topics.iter().enumerate() {
        img.apply(&create(&format!("t{i}"), &format!("id{i}"), *parts, (*rf).min(brokers))).unwrap();
    }
    for id in brokers + 1..=brokers + added {
        register(&mut img, id);
    }
    let out = img.apply(&MetadataCommand::RebalanceReplicas {}).unwrap();
    prop_assert!(results(&out).iter().all(Option::is_none));
    // Complete every move: the leader puts all target replicas in sync.
    let moving: Vec<(String, u32, Vec<u32>)> = img
        .topics
        .values()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter_map(|p| p.reassignment.as_ref().map(|_| (t.name.clone(), p.partition, p.replicas.clone())))
        })
        .collect();
    for (t, p, all) in moving {
        isr(&mut img, &t, p, &all).unwrap();
    }
    for p in img.topics.values().flat_map(|t| &t.partitions) {
        prop_assert!(p.reassignment.is_none());
        let mut set = p.replicas.clone();
        set.sort_unstable();
        set.dedup();
        prop_assert_eq!(set.len(), p.replicas.len());
        prop_assert!(p.isr.iter().all(|r| p.replicas.contains(r)));
        prop_assert!(p.leader.is_some_and(|l| p.isr.contains(&l)));
    }
    if !racks {
        let l = loads(&img);
        let (min, max) = (l.values().map(|c| c.0).min().unwrap(), l.values().map(|c| c.0).max().unwrap());
        prop_assert!(max - min <= 1, "replicas {:?}", l);
    }
    let again = img.apply(&MetadataCommand::RebalanceReplicas {}).unwrap();
    prop_assert_eq!(results(&again).len(), 0, "a settled cluster plans nothing");
    Ok(())
}

#[test]
fn a_donor_stuck_on_racks_gives_once_loads_change() {
    // Found by the property test below: a donor skipped for its racks early
    // in a plan stayed skipped after other moves made a move possible, so
    // the next plan was not empty.
    check_rebalance(5, 2, &[(5, 1), (1, 1), (3, 3), (3, 3)], true).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the topics and brokers, a rebalance's targets are valid
    /// replica sets, it evens out replica counts where it can, and once its
    /// moves complete a second plan is empty.
    #[test]
    fn rebalance_plans_are_valid_and_settle(
        brokers in 2u32..7,
        added in 1u32..3,
        topics in proptest::collection::vec((1u32..9, 1u32..4), 1..5),
        racks in any::<bool>(),
    ) {
        check_rebalance(brokers, added, &topics, racks)?;
    }
}
