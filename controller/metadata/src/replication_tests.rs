//! AlterPartition, controlled shutdown, elections and the epoch rules
//! (`docs/replication.md`, "ISR changes" and "Leader election").

use std::collections::BTreeMap;

use super::tests::{assert_rejected, create, fence, image_with_brokers, image_with_topic, register, unfence};
use super::*;

/// An `AlterPartition` from `leader_id` at the partition's current epochs.
fn alter(img: &MetadataImage, topic: &str, partition: u32, leader_id: u32, isr: &[u32]) -> MetadataCommand {
    let t = &img.topics[topic];
    let p = &t.partitions[partition as usize];
    MetadataCommand::AlterPartition {
        topic_id: t.id.clone(),
        partition,
        leader_id,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: isr.to_vec(),
    }
}

fn shutdown(node_id: u32) -> MetadataCommand {
    MetadataCommand::ControlledShutdown { node_id }
}

fn elect(partitions: Option<&[(&str, u32)]>, election: ElectionType) -> MetadataCommand {
    let partitions = partitions.map(|l| l.iter().map(|(t, p)| (t.to_string(), *p)).collect());
    MetadataCommand::ElectLeaders { partitions, election }
}

fn part<'a>(img: &'a MetadataImage, topic: &str, partition: usize) -> &'a PartitionInfo {
    &img.topics[topic].partitions[partition]
}

/// (leader, leader_epoch, partition_epoch, isr) of a partition.
fn state(img: &MetadataImage, topic: &str, partition: usize) -> (Option<u32>, u32, u32, Vec<u32>) {
    let p = part(img, topic, partition);
    (p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone())
}

fn moved(out: &CommandOutcome) -> Vec<(u32, Option<u32>, Vec<u32>)> {
    let list = match out {
        CommandOutcome::BrokerFenced { partitions_moved, .. }
        | CommandOutcome::BrokerUnfenced { partitions_moved, .. }
        | CommandOutcome::BrokerShutDown { partitions_moved, .. }
        | CommandOutcome::LeadersElected { partitions_moved, .. } => partitions_moved,
        other => panic!("no moves in {other:?}"),
    };
    list.iter().map(|c| (c.partition, c.leader, c.isr.clone())).collect()
}

fn skipped(out: &CommandOutcome) -> Vec<(String, u32, ElectionSkipReason)> {
    let CommandOutcome::LeadersElected { skipped, .. } = out else { panic!("{out:?}") };
    skipped.iter().map(|s| (s.topic.clone(), s.partition, s.reason)).collect()
}

// ---- AlterPartition ----

#[test]
fn alter_partition_shrinks_and_expands_the_isr() {
    let mut img = image_with_topic();
    let out = img.apply(&alter(&img, "t", 0, 1, &[1, 3])).unwrap();
    let CommandOutcome::PartitionAltered { topic, topic_id, partition } = out else { panic!("{out:?}") };
    assert_eq!((topic.as_str(), topic_id.as_str()), ("t", "id-t"));
    assert_eq!(partition, *part(&img, "t", 0));
    assert_eq!(state(&img, "t", 0), (Some(1), 0, 1, vec![1, 3]), "partition epoch bumped, leader epoch not");
    img.apply(&alter(&img, "t", 0, 1, &[1, 3, 2])).unwrap();
    assert_eq!(state(&img, "t", 0), (Some(1), 0, 2, vec![1, 3, 2]));
    // Shrinking to the leader alone is allowed; the other partitions are untouched.
    img.apply(&alter(&img, "t", 0, 1, &[1])).unwrap();
    assert_eq!(state(&img, "t", 0), (Some(1), 0, 3, vec![1]));
    assert_eq!(state(&img, "t", 1), (Some(2), 0, 0, vec![2, 3, 1]));
}

#[test]
fn alter_partition_to_the_current_isr_changes_nothing() {
    let mut img = image_with_topic();
    let before = img.clone();
    let out = img.apply(&alter(&img, "t", 1, 2, &[2, 3, 1])).unwrap();
    assert_eq!(img, before, "no bump without a change");
    let CommandOutcome::PartitionAltered { partition, .. } = out else { panic!() };
    assert_eq!(partition, *part(&img, "t", 1));
}

#[test]
fn alter_partition_rejections_name_the_cause() {
    let mut img = image_with_topic();
    img.apply(&alter(&img, "t", 0, 1, &[1, 2])).unwrap(); // epochs (0, 1)
    let ok = alter(&img, "t", 0, 1, &[1]);
    let with = |f: &dyn Fn(&mut MetadataCommand)| {
        let mut c = ok.clone();
        f(&mut c);
        c
    };
    type Cmd = MetadataCommand;

    let e = assert_rejected(
        &mut img,
        with(&|c| {
            if let Cmd::AlterPartition { topic_id, .. } = c {
                *topic_id = "nope".into()
            }
        }),
    );
    assert_eq!(e, MetadataError::UnknownTopicOrPartition { topic_id: "nope".into(), partition: 0 });
    let e = assert_rejected(
        &mut img,
        with(&|c| {
            if let Cmd::AlterPartition { partition, .. } = c {
                *partition = 3
            }
        }),
    );
    assert_eq!(e, MetadataError::UnknownTopicOrPartition { topic_id: "id-t".into(), partition: 3 });
    for stale in [1, 7] {
        let e = assert_rejected(
            &mut img,
            with(&|c| {
                if let Cmd::AlterPartition { leader_epoch, .. } = c {
                    *leader_epoch = stale
                }
            }),
        );
        let want = MetadataError::FencedLeaderEpoch { topic: "t".into(), partition: 0, requested: stale, current: 0 };
        assert_eq!(e, want);
    }
    let e = assert_rejected(
        &mut img,
        with(&|c| {
            if let Cmd::AlterPartition { leader_id, .. } = c {
                *leader_id = 2
            }
        }),
    );
    assert_eq!(e, MetadataError::NotLeader { topic: "t".into(), partition: 0, proposer: 2, leader: Some(1) });
    let e = assert_rejected(
        &mut img,
        with(&|c| {
            if let Cmd::AlterPartition { partition_epoch, .. } = c {
                *partition_epoch = 0
            }
        }),
    );
    assert_eq!(e, MetadataError::InvalidPartitionEpoch { topic: "t".into(), partition: 0, requested: 0, current: 1 });
    for (isr, why) in [
        (vec![], "empty"),
        (vec![1, 1], "appears twice"),
        (vec![1, 4], "not a replica"),
        (vec![2, 3], "leaves out the leader"),
    ] {
        let e = assert_rejected(
            &mut img,
            with(&|c| {
                if let Cmd::AlterPartition { new_isr, .. } = c {
                    *new_isr = isr.clone()
                }
            }),
        );
        let MetadataError::InvalidIsr { topic, partition: 0, isr: got, reason } = &e else { panic!("{e:?}") };
        assert_eq!((topic.as_str(), got), ("t", &isr));
        assert!(reason.contains(why), "{isr:?}: {reason}");
    }
    // Broker 4 is registered but not a replica; 3 is a replica but fenced.
    img.apply(&register(4)).unwrap();
    img.apply(&fence(3)).unwrap();
    let cmd = alter(&img, "t", 0, 1, &[1, 2, 3]);
    let e = assert_rejected(&mut img, cmd);
    assert_eq!(e, MetadataError::IneligibleReplica { topic: "t".into(), partition: 0, broker: 3 });
    // Once unfenced, 3 may rejoin (here while 1 leaves).
    img.apply(&unfence(3)).unwrap();
    img.apply(&alter(&img, "t", 1, 2, &[2, 3])).unwrap();
    assert_eq!(part(&img, "t", 1).isr, vec![2, 3]);
}

#[test]
fn alter_partition_from_a_deposed_leader_is_fenced() {
    let mut img = image_with_topic();
    let stale = alter(&img, "t", 0, 1, &[1, 2]);
    img.apply(&fence(1)).unwrap(); // partition 0: leader 2, leader epoch 1
    img.apply(&unfence(1)).unwrap();
    let e = assert_rejected(&mut img, stale);
    assert_eq!(e, MetadataError::FencedLeaderEpoch { topic: "t".into(), partition: 0, requested: 0, current: 1 });
    // Broker 1 at the current epochs is still not the leader.
    let cmd = alter(&img, "t", 0, 1, &[1, 2]);
    let e = assert_rejected(&mut img, cmd);
    assert!(matches!(e, MetadataError::NotLeader { proposer: 1, leader: Some(2), .. }), "{e:?}");
    // The new leader may add 1 back: it is unfenced again.
    img.apply(&alter(&img, "t", 0, 2, &[2, 3, 1])).unwrap();
    assert_eq!(state(&img, "t", 0), (Some(2), 1, 2, vec![2, 3, 1]));
}

#[test]
fn alter_partition_for_a_recreated_topic_is_unknown() {
    let mut img = image_with_topic();
    let old = alter(&img, "t", 0, 1, &[1, 2]);
    img.apply(&MetadataCommand::DeleteTopic { name: "t".into() }).unwrap();
    img.apply(&create("t", "id-t2", 3, 3)).unwrap();
    let e = assert_rejected(&mut img, old);
    assert_eq!(e, MetadataError::UnknownTopicOrPartition { topic_id: "id-t".into(), partition: 0 });
}

#[test]
fn alter_partition_on_an_offline_partition_is_not_leader() {
    let mut img = image_with_brokers(1);
    img.apply(&create("s", "id-s", 1, 1)).unwrap();
    let cmd = alter(&img, "s", 0, 1, &[1]);
    img.apply(&fence(1)).unwrap();
    let MetadataCommand::AlterPartition { topic_id, new_isr, .. } = cmd else { unreachable!() };
    let cmd = MetadataCommand::AlterPartition {
        topic_id,
        partition: 0,
        leader_id: 1,
        leader_epoch: 1,
        partition_epoch: 1,
        new_isr,
    };
    let e = assert_rejected(&mut img, cmd);
    assert_eq!(e, MetadataError::NotLeader { topic: "s".into(), partition: 0, proposer: 1, leader: None });
}

// ---- fencing, unfencing, controlled shutdown ----

#[test]
fn fencing_every_broker_never_empties_an_isr() {
    let mut img = image_with_topic();
    for id in [2, 3, 1] {
        img.apply(&fence(id)).unwrap();
        for p in &img.topics["t"].partitions {
            assert!(!p.isr.is_empty());
            assert!(p.leader.is_none_or(|l| !img.brokers[&l].fenced && p.isr.contains(&l)));
        }
    }
    // The last broker fenced (1) is the sole ISR member of every partition, none led.
    for p in 0..3 {
        let (leader, .., isr) = state(&img, "t", p);
        assert_eq!((leader, isr), (None, vec![1]));
    }
    // When it comes back it leads them all again, with one more leader epoch each.
    let before: Vec<_> = (0..3).map(|p| state(&img, "t", p)).collect();
    let out = img.apply(&unfence(1)).unwrap();
    assert_eq!(moved(&out), (0..3).map(|p| (p, Some(1), vec![1])).collect::<Vec<_>>());
    for (p, (_, le, pe, _)) in before.into_iter().enumerate() {
        assert_eq!(state(&img, "t", p), (Some(1), le + 1, pe + 1, vec![1]));
    }
}

#[test]
fn unfence_bumps_both_epochs_and_reports_the_new_state() {
    let mut img = image_with_brokers(2);
    img.apply(&create("t", "id-t", 1, 2)).unwrap(); // [1, 2]
    img.apply(&alter(&img, "t", 0, 1, &[1])).unwrap(); // (0, 1)
    img.apply(&fence(1)).unwrap(); // offline, last member: (1, 2)
    assert_eq!(state(&img, "t", 0), (None, 1, 2, vec![1]));
    // Unfencing 2 does nothing: it is not in the ISR (no unclean election).
    let out = img.apply(&unfence(2)).unwrap();
    assert!(moved(&out).is_empty());
    let out = img.apply(&unfence(1)).unwrap();
    let CommandOutcome::BrokerUnfenced { partitions_moved, .. } = out else { panic!() };
    let want = LeaderChange {
        topic: "t".into(),
        partition: 0,
        leader: Some(1),
        leader_epoch: 2,
        isr: vec![1],
        partition_epoch: 3,
        leader_changed: true,
        unclean: false,
    };
    assert_eq!(partitions_moved, vec![want]);
}

#[test]
fn controlled_shutdown_hands_off_like_fencing() {
    let mut fenced = image_with_topic();
    let mut shut = image_with_topic();
    let f = fenced.apply(&fence(1)).unwrap();
    let s = shut.apply(&shutdown(1)).unwrap();
    assert_eq!(fenced, shut, "same leader and ISR changes, and fenced");
    let CommandOutcome::BrokerFenced { partitions_moved: fm, .. } = f else { panic!() };
    assert_eq!(s, CommandOutcome::BrokerShutDown { node_id: 1, already_fenced: false, partitions_moved: fm });
    assert_eq!(moved(&s).len(), 3);
    assert!(shut.topics["t"].partitions.iter().all(|p| !p.isr.contains(&1) && p.leader != Some(1)));
    // It gets no new replicas, and a second shutdown (or fence) is a no-op.
    let before = shut.clone();
    assert_eq!(
        shut.apply(&shutdown(1)).unwrap(),
        CommandOutcome::BrokerShutDown { node_id: 1, already_fenced: true, partitions_moved: vec![] }
    );
    assert_eq!(shut, before);
    shut.apply(&create("u", "id-u", 4, 2)).unwrap();
    assert!(shut.topics["u"].partitions.iter().all(|p| !p.replicas.contains(&1)));
    let e = assert_rejected(&mut shut, shutdown(9));
    assert_eq!(e, MetadataError::UnknownBroker { node_id: 9 });
    // Registering again unfences it; it leads nothing until an election or ISR expansion.
    shut.apply(&register(1)).unwrap();
    assert!(!shut.brokers[&1].fenced);
    assert!(shut.topics["t"].partitions.iter().all(|p| p.leader != Some(1)));
}

#[test]
fn controlled_shutdown_of_the_last_isr_member_leaves_it_offline() {
    let mut img = image_with_brokers(3);
    img.apply(&create("t", "id-t", 1, 3)).unwrap();
    img.apply(&alter(&img, "t", 0, 1, &[1])).unwrap();
    let out = img.apply(&shutdown(1)).unwrap();
    assert_eq!(moved(&out), vec![(0, None, vec![1])]);
    assert_eq!(state(&img, "t", 0), (None, 1, 2, vec![1]));
    img.apply(&register(1)).unwrap();
    assert_eq!(state(&img, "t", 0), (Some(1), 2, 3, vec![1]));
}

// ---- elections ----

#[test]
fn preferred_election_restores_the_preferred_leader() {
    let mut img = image_with_topic();
    img.apply(&fence(1)).unwrap(); // p0 → leader 2, ISR [2, 3]
    img.apply(&unfence(1)).unwrap();
    // 1 is not in the ISR yet.
    let out = img.apply(&elect(Some(&[("t", 0)]), ElectionType::Preferred)).unwrap();
    assert_eq!(skipped(&out), vec![("t".into(), 0, ElectionSkipReason::PreferredLeaderNotAvailable)]);
    assert!(moved(&out).is_empty());
    img.apply(&alter(&img, "t", 0, 2, &[2, 3, 1])).unwrap(); // (1, 2)
    let before = img.clone();
    let out = img.apply(&elect(None, ElectionType::Preferred)).unwrap();
    assert_eq!(moved(&out), vec![(0, Some(1), vec![2, 3, 1])]);
    assert!(skipped(&out).is_empty(), "with no list, partitions already on their preferred leader are not listed");
    assert_eq!(state(&img, "t", 0), (Some(1), 2, 3, vec![2, 3, 1]));
    assert_eq!(img.topics["t"].partitions[1..], before.topics["t"].partitions[1..]);
    // Again: nothing needed; explicit lists say so, and name unknown partitions.
    let list = [("t", 0), ("t", 1), ("t", 0), ("t", 9), ("nope", 0)];
    let out = img.apply(&elect(Some(&list), ElectionType::Preferred)).unwrap();
    assert!(moved(&out).is_empty());
    assert_eq!(
        skipped(&out),
        vec![
            ("t".into(), 0, ElectionSkipReason::ElectionNotNeeded),
            ("t".into(), 1, ElectionSkipReason::ElectionNotNeeded),
            ("t".into(), 9, ElectionSkipReason::UnknownTopicOrPartition),
            ("nope".into(), 0, ElectionSkipReason::UnknownTopicOrPartition),
        ]
    );
}

#[test]
fn preferred_election_skips_a_fenced_preferred_replica() {
    let mut img = image_with_topic();
    // Fencing 3 moves partition 2 ([3,1,2]) to 1; its preferred replica 3 is not available.
    img.apply(&fence(3)).unwrap();
    let out = img.apply(&elect(None, ElectionType::Preferred)).unwrap();
    assert!(moved(&out).is_empty());
    assert_eq!(skipped(&out), vec![("t".into(), 2, ElectionSkipReason::PreferredLeaderNotAvailable)]);
}

fn unclean_topic(enable: Option<&str>) -> MetadataImage {
    let mut img = image_with_brokers(2);
    let mut configs = BTreeMap::new();
    if let Some(v) = enable {
        configs.insert(UNCLEAN_LEADER_ELECTION_ENABLE.to_string(), v.to_string());
    }
    let cmd = MetadataCommand::CreateTopic {
        name: "u".into(),
        topic_id: "id-u".into(),
        partitions: 1,
        replication_factor: 2,
        configs,
    };
    img.apply(&cmd).unwrap(); // [1, 2]
    img.apply(&alter(&img, "u", 0, 1, &[1])).unwrap(); // (0, 1)
    img.apply(&fence(1)).unwrap(); // offline with ISR [1]: (1, 2)
    img
}

#[test]
fn unclean_election_only_when_the_topic_allows_it() {
    for enable in [None, Some("false"), Some("yes")] {
        let mut img = unclean_topic(enable);
        let before = img.clone();
        let out = img.apply(&elect(None, ElectionType::Unclean)).unwrap();
        assert_eq!(skipped(&out), vec![("u".into(), 0, ElectionSkipReason::UncleanElectionDisabled)], "{enable:?}");
        assert_eq!(img, before);
    }
    for enable in ["true", "TRUE"] {
        let mut img = unclean_topic(Some(enable));
        let out = img.apply(&elect(Some(&[("u", 0)]), ElectionType::Unclean)).unwrap();
        let CommandOutcome::LeadersElected { election: ElectionType::Unclean, partitions_moved, skipped: none } = out
        else {
            panic!()
        };
        assert!(none.is_empty());
        assert_eq!(partitions_moved.len(), 1);
        assert!(partitions_moved[0].unclean && partitions_moved[0].leader_changed);
        assert_eq!(state(&img, "u", 0), (Some(2), 2, 3, vec![2]), "the new leader is the sole ISR member");
        // Now led: nothing more to do.
        let out = img.apply(&elect(Some(&[("u", 0)]), ElectionType::Unclean)).unwrap();
        assert_eq!(skipped(&out), vec![("u".into(), 0, ElectionSkipReason::ElectionNotNeeded)]);
        // The old leader coming back neither leads nor rejoins the ISR by itself.
        img.apply(&unfence(1)).unwrap();
        assert_eq!(state(&img, "u", 0), (Some(2), 2, 3, vec![2]));
    }
}

#[test]
fn unclean_election_needs_an_unfenced_replica_and_prefers_a_clean_one() {
    let mut img = unclean_topic(Some("true"));
    img.apply(&fence(2)).unwrap();
    let out = img.apply(&elect(None, ElectionType::Unclean)).unwrap();
    assert_eq!(skipped(&out), vec![("u".into(), 0, ElectionSkipReason::EligibleLeadersNotAvailable)]);
    // A leaderless partition with an unfenced ISR member (not reachable through
    // commands, but an unclean election must not lose data needlessly) gets it cleanly.
    let mut img = unclean_topic(Some("false"));
    let p = &mut img.topics.get_mut("u").unwrap().partitions[0];
    p.isr = vec![1, 2];
    let out = img.apply(&elect(None, ElectionType::Unclean)).unwrap();
    let CommandOutcome::LeadersElected { partitions_moved, .. } = &out else { panic!() };
    assert!(!partitions_moved[0].unclean);
    assert_eq!(state(&img, "u", 0), (Some(2), 2, 3, vec![1, 2]));
}

// ---- encoding ----

#[test]
fn new_commands_round_trip_and_old_json_still_decodes() {
    let cmds = [
        MetadataCommand::AlterPartition {
            topic_id: "id".into(),
            partition: 2,
            leader_id: 1,
            leader_epoch: 3,
            partition_epoch: 4,
            new_isr: vec![1, 2],
        },
        shutdown(3),
        elect(Some(&[("t", 1)]), ElectionType::Preferred),
        elect(None, ElectionType::Unclean),
    ];
    for cmd in cmds {
        assert_eq!(MetadataCommand::decode(&cmd.encode()).unwrap(), cmd);
    }
    let json = String::from_utf8(shutdown(3).encode()).unwrap();
    assert_eq!(json, r#"{"type":"ControlledShutdown","node_id":3}"#);
    // Commands and outcomes written before this change.
    assert_eq!(MetadataCommand::decode(br#"{"type":"FenceBroker","node_id":2}"#).unwrap(), fence(2));
    let old = r#"{"BrokerFenced":{"node_id":1,"already_fenced":false,
        "partitions_moved":[{"topic":"t","partition":0,"leader":2,"leader_epoch":1}]}}"#;
    let CommandOutcome::BrokerFenced { partitions_moved, .. } = serde_json::from_str(old).unwrap() else { panic!() };
    assert!(partitions_moved[0].leader_changed && !partitions_moved[0].unclean);
    // Outcomes round-trip too (they travel back from the leader).
    let mut img = unclean_topic(Some("true"));
    let out = img.apply(&elect(None, ElectionType::Unclean)).unwrap();
    assert_eq!(serde_json::from_slice::<CommandOutcome>(&serde_json::to_vec(&out).unwrap()).unwrap(), out);
    let e = MetadataError::IneligibleReplica { topic: "t".into(), partition: 0, broker: 3 };
    assert_eq!(serde_json::from_slice::<MetadataError>(&serde_json::to_vec(&e).unwrap()).unwrap(), e);
}
