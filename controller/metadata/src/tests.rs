use std::collections::BTreeMap;

use super::*;

pub(super) fn register(node_id: u32) -> MetadataCommand {
    MetadataCommand::RegisterBroker {
        kafka_address: None,
        node_id,
        address: format!("127.0.0.1:{}", 9700 + node_id),
        rack: None,
    }
}

pub(super) fn create(name: &str, id: &str, partitions: u32, rf: u32) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        topic_id: id.into(),
        partitions,
        replication_factor: rf,
        configs: BTreeMap::new(),
    }
}

pub(super) fn image_with_brokers(n: u32) -> MetadataImage {
    let mut img = MetadataImage::default();
    for id in 1..=n {
        img.apply(&register(id)).unwrap();
    }
    img
}

/// Applies a command that must be rejected and checks nothing changed.
pub(super) fn assert_rejected(img: &mut MetadataImage, cmd: MetadataCommand) -> MetadataError {
    let before = img.clone();
    let err = img.apply(&cmd).expect_err("command should be rejected");
    assert_eq!(*img, before, "a rejected command changed the image");
    err
}

#[test]
fn register_then_update_broker() {
    let mut img = MetadataImage::default();
    assert_eq!(img.apply(&register(1)).unwrap(), CommandOutcome::BrokerRegistered { node_id: 1, new: true });
    img.brokers.get_mut(&1).unwrap().fenced = true;
    let cmd = MetadataCommand::RegisterBroker {
        kafka_address: None,
        node_id: 1,
        address: "h:1".into(),
        rack: Some("r1".into()),
    };
    assert_eq!(img.apply(&cmd).unwrap(), CommandOutcome::BrokerRegistered { node_id: 1, new: false });
    let b = &img.brokers[&1];
    assert_eq!((b.address.as_str(), b.rack.as_deref(), b.fenced), ("h:1", Some("r1"), false));
}

#[test]
fn create_topic_places_partitions() {
    let mut img = image_with_brokers(3);
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_string(), "1000".to_string());
    let cmd = MetadataCommand::CreateTopic {
        name: "orders".into(),
        topic_id: "id-1".into(),
        partitions: 4,
        replication_factor: 2,
        configs: configs.clone(),
    };
    let CommandOutcome::TopicCreated { topic } = img.apply(&cmd).unwrap() else { panic!("wrong outcome") };
    assert_eq!(img.topics["orders"], topic);
    assert_eq!(topic.id, "id-1");
    assert_eq!(topic.configs, configs);
    assert_eq!(topic.partitions.len(), 4);
    for (i, p) in topic.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as u32);
        assert_eq!(p.replicas.len(), 2);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, Some(p.replicas[0]));
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        let mut dedup = p.replicas.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), 2, "replicas must be distinct: {:?}", p.replicas);
    }
    assert_eq!(img.topic_by_id("id-1").map(|t| t.name.as_str()), Some("orders"));
}

#[test]
fn delete_topic() {
    let mut img = image_with_brokers(1);
    img.apply(&create("a", "id-a", 1, 1)).unwrap();
    let out = img.apply(&MetadataCommand::DeleteTopic { name: "a".into() }).unwrap();
    assert_eq!(out, CommandOutcome::TopicDeleted { name: "a".into(), topic_id: "id-a".into() });
    assert!(img.topics.is_empty());
    // The name can be reused with a new id.
    img.apply(&create("a", "id-a2", 1, 1)).unwrap();
}

#[test]
fn every_rejection_changes_nothing() {
    let mut img = image_with_brokers(2);
    img.apply(&MetadataCommand::InitCluster { cluster_id: "c1".into() }).unwrap();
    img.apply(&create("t", "id-t", 2, 2)).unwrap();

    let e = assert_rejected(&mut img, create("t", "id-other", 1, 1));
    assert_eq!(e, MetadataError::TopicAlreadyExists { name: "t".into() });
    let e = assert_rejected(&mut img, create("", "id-x", 1, 1));
    assert!(matches!(e, MetadataError::InvalidTopicName { .. }));
    let e = assert_rejected(&mut img, create("u", "", 1, 1));
    assert!(matches!(e, MetadataError::InvalidTopicId { .. }));
    let e = assert_rejected(&mut img, create("u", "id-t", 1, 1));
    assert!(matches!(e, MetadataError::InvalidTopicId { .. }));
    let e = assert_rejected(&mut img, create("u", "id-u", 0, 1));
    assert_eq!(e, MetadataError::InvalidPartitions { requested: 0, max: MAX_PARTITIONS });
    let e = assert_rejected(&mut img, create("u", "id-u", MAX_PARTITIONS + 1, 1));
    assert!(matches!(e, MetadataError::InvalidPartitions { .. }));
    let e = assert_rejected(&mut img, create("u", "id-u", 1, 0));
    assert_eq!(e, MetadataError::InvalidReplicationFactor { requested: 0, available: 2 });
    let e = assert_rejected(&mut img, create("u", "id-u", 1, 3));
    assert_eq!(e, MetadataError::InvalidReplicationFactor { requested: 3, available: 2 });
    let e = assert_rejected(&mut img, MetadataCommand::DeleteTopic { name: "nope".into() });
    assert_eq!(e, MetadataError::UnknownTopic { name: "nope".into() });
    let e = assert_rejected(
        &mut img,
        MetadataCommand::RegisterBroker { kafka_address: None, node_id: 9, address: " ".into(), rack: None },
    );
    assert!(matches!(e, MetadataError::InvalidBrokerAddress { node_id: 9, .. }));
    let e = assert_rejected(&mut img, MetadataCommand::InitCluster { cluster_id: "c2".into() });
    assert_eq!(e, MetadataError::ClusterAlreadyInitialized { existing: "c1".into() });

    let mut fresh = MetadataImage::default();
    let e = assert_rejected(&mut fresh, MetadataCommand::InitCluster { cluster_id: String::new() });
    assert_eq!(e, MetadataError::InvalidClusterId);
    let e = assert_rejected(&mut fresh, create("t", "id", 1, 1));
    assert_eq!(e, MetadataError::InvalidReplicationFactor { requested: 1, available: 0 });
}

#[test]
fn fenced_brokers_are_not_counted_or_used() {
    let mut img = image_with_brokers(3);
    img.brokers.get_mut(&2).unwrap().fenced = true;
    let e = assert_rejected(&mut img, create("t", "id", 1, 3));
    assert_eq!(e, MetadataError::InvalidReplicationFactor { requested: 3, available: 2 });
    img.apply(&create("t", "id", 6, 2)).unwrap();
    assert!(img.topics["t"].partitions.iter().all(|p| !p.replicas.contains(&2)));
}

#[test]
fn same_commands_give_identical_images() {
    let mut cmds = vec![MetadataCommand::InitCluster { cluster_id: "cid".into() }];
    cmds.extend((1..=5).map(register));
    for i in 0..40u32 {
        cmds.push(create(&format!("topic-{i}"), &format!("id-{i}"), 1 + i % 7, 1 + i % 3));
        if i % 5 == 0 {
            cmds.push(MetadataCommand::DeleteTopic { name: format!("topic-{}", i / 2) });
        }
        // Some rejected ones in the mix.
        cmds.push(create(&format!("topic-{i}"), "dup", 1, 1));
    }
    let run = || {
        let mut img = MetadataImage::default();
        let outcomes: Vec<_> = cmds.iter().map(|c| img.apply(c).map(|_| ()).map_err(|e| e.to_string())).collect();
        (serde_json::to_string(&img).unwrap(), outcomes)
    };
    let (a, oa) = run();
    let (b, ob) = run();
    assert_eq!(a, b);
    assert_eq!(oa, ob);
    // The JSON round-trips to the same image (it is the snapshot format).
    let img: MetadataImage = serde_json::from_str(&a).unwrap();
    assert_eq!(serde_json::to_string(&img).unwrap(), a);
}

#[test]
fn placement_spreads_leaders() {
    let mut img = image_with_brokers(4);
    img.apply(&create("t", "id", 8, 3)).unwrap();
    let mut leaders = BTreeMap::new();
    for p in &img.topics["t"].partitions {
        *leaders.entry(p.leader.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(leaders.len(), 4, "every broker leads something: {leaders:?}");
    assert!(leaders.values().all(|&n| n == 2), "{leaders:?}");
}

#[test]
fn place_replicas_edges() {
    assert!(place_replicas(&[], 0, 1).is_empty());
    assert_eq!(place_replicas(&[5], 7, 1), vec![5]);
    assert_eq!(place_replicas(&[1, 2, 3], 1, 3), vec![2, 3, 1]);
    assert_eq!(place_replicas(&[1, 2, 3], 5, 2), vec![3, 1]);
    assert_eq!(place_replicas(&[1, 2], 0, 5), vec![1, 2]);
}

#[test]
fn command_json_roundtrip_and_garbage() {
    let cmd = create("t", "id", 3, 1);
    assert_eq!(MetadataCommand::decode(&cmd.encode()).unwrap(), cmd);
    assert!(matches!(MetadataCommand::decode(b"\xff{"), Err(MetadataError::UndecodableCommand { .. })));
}

pub(super) fn fence(node_id: u32) -> MetadataCommand {
    MetadataCommand::FenceBroker { node_id }
}

pub(super) fn unfence(node_id: u32) -> MetadataCommand {
    MetadataCommand::UnfenceBroker { node_id }
}

/// Three brokers, topic "t" with 3 partitions of RF 3: replicas [1,2,3], [2,3,1], [3,1,2].
pub(super) fn image_with_topic() -> MetadataImage {
    let mut img = image_with_brokers(3);
    img.apply(&create("t", "id-t", 3, 3)).unwrap();
    img
}

#[test]
fn fence_moves_leadership_to_the_next_isr_replica() {
    let mut img = image_with_topic();
    // Partition 0's ISR drops broker 2, so its next eligible replica is 3.
    img.topics.get_mut("t").unwrap().partitions[0].isr = vec![1, 3];
    let out = img.apply(&fence(1)).unwrap();
    let CommandOutcome::BrokerFenced { node_id: 1, already_fenced: false, partitions_moved } = out else {
        panic!("{out:?}")
    };
    let change = |partition, leader, leader_epoch, isr: &[u32], leader_changed| LeaderChange {
        topic: "t".into(),
        partition,
        leader,
        leader_epoch,
        isr: isr.to_vec(),
        partition_epoch: 1,
        leader_changed,
        unclean: false,
    };
    // Partition 0 changes leader; 1 and 2 only lose broker 1 from their ISRs.
    assert_eq!(
        partitions_moved,
        vec![
            change(0, Some(3), 1, &[3], true),
            change(1, Some(2), 0, &[2, 3], false),
            change(2, Some(3), 0, &[3, 2], false)
        ]
    );
    assert!(img.brokers[&1].fenced);
    let ps = &img.topics["t"].partitions;
    assert_eq!((ps[0].leader, ps[0].leader_epoch, ps[0].partition_epoch), (Some(3), 1, 1));
    assert_eq!(ps[0].isr, vec![3], "the fenced broker leaves the ISR");
    for p in &ps[1..] {
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1), "an ISR-only change bumps the partition epoch only");
        assert!(!p.isr.contains(&1));
    }
    // Fencing 3 next: partition 0 (ISR [3]) goes offline keeping its last ISR member,
    // partition 1 (ISR [2,3]) keeps leader 2 and drops 3, partition 2 (replicas
    // [3,1,2], ISR [3,2]) skips fenced 1 and goes to 2.
    let CommandOutcome::BrokerFenced { partitions_moved, .. } = img.apply(&fence(3)).unwrap() else { panic!() };
    assert_eq!(partitions_moved.len(), 3);
    let ps = &img.topics["t"].partitions;
    assert_eq!((ps[0].leader, ps[0].leader_epoch, ps[0].partition_epoch, &ps[0].isr), (None, 2, 2, &vec![3]));
    assert_eq!((ps[1].leader, ps[1].leader_epoch, ps[1].partition_epoch, &ps[1].isr), (Some(2), 0, 2, &vec![2]));
    assert_eq!((ps[2].leader, ps[2].leader_epoch, ps[2].partition_epoch, &ps[2].isr), (Some(2), 1, 2, &vec![2]));
}

#[test]
fn fence_without_eligible_replica_leaves_the_partition_offline() {
    let mut img = image_with_brokers(2);
    img.apply(&create("solo", "id-s", 1, 1)).unwrap();
    let leader = img.topics["solo"].partitions[0].leader.unwrap();
    img.apply(&fence(leader)).unwrap();
    let p = &img.topics["solo"].partitions[0];
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (None, 1, 1));
    assert_eq!(p.isr, vec![leader]);
}

#[test]
fn fence_unknown_or_already_fenced_broker() {
    let mut img = image_with_topic();
    let e = assert_rejected(&mut img, fence(9));
    assert_eq!(e, MetadataError::UnknownBroker { node_id: 9 });
    let e = assert_rejected(&mut img, unfence(9));
    assert_eq!(e, MetadataError::UnknownBroker { node_id: 9 });
    img.apply(&fence(2)).unwrap();
    let before = img.clone();
    let out = img.apply(&fence(2)).unwrap();
    assert_eq!(out, CommandOutcome::BrokerFenced { node_id: 2, already_fenced: true, partitions_moved: vec![] });
    assert_eq!(img, before, "fencing a fenced broker changes nothing");
    let out = img.apply(&unfence(1)).unwrap();
    assert_eq!(out, CommandOutcome::BrokerUnfenced { node_id: 1, already_unfenced: true, partitions_moved: vec![] });
    assert_eq!(img, before);
}

#[test]
fn unfence_restores_leaderless_partitions() {
    let mut img = image_with_brokers(2);
    img.apply(&create("t", "id-t", 2, 2)).unwrap(); // [1,2] and [2,1]
    img.apply(&fence(1)).unwrap();
    img.apply(&fence(2)).unwrap();
    assert!(img.topics["t"].partitions.iter().all(|p| p.leader.is_none()));
    let out = img.apply(&unfence(2)).unwrap();
    let CommandOutcome::BrokerUnfenced { node_id: 2, already_unfenced: false, partitions_moved } = out else {
        panic!("{out:?}")
    };
    assert_eq!(partitions_moved.len(), 2);
    assert!(!img.brokers[&2].fenced);
    assert!(img.topics["t"].partitions.iter().all(|p| p.leader == Some(2) && p.isr == vec![2]));
    // Fencing 1 took it out of both ISRs (one partition-epoch bump each).
    let partition_epochs: Vec<_> = img.topics["t"].partitions.iter().map(|p| p.partition_epoch).collect();
    assert_eq!(partition_epochs, vec![3, 3]);
    // p0: 1 → 2 (fence 1) → None (fence 2) → 2: three bumps. p1: 2 → None (fence 2,
    // its other replica 1 being fenced) → 2: two.
    let epochs: Vec<_> = img.topics["t"].partitions.iter().map(|p| p.leader_epoch).collect();
    assert_eq!(epochs, vec![3, 2]);
    // Unfencing 1 now leaves the led partitions alone.
    let CommandOutcome::BrokerUnfenced { partitions_moved, .. } = img.apply(&unfence(1)).unwrap() else { panic!() };
    assert!(partitions_moved.is_empty());
    assert!(img.topics["t"].partitions.iter().all(|p| p.leader == Some(2)));
}

#[test]
fn re_registering_a_fenced_broker_restores_its_leaderless_partitions() {
    let mut img = image_with_brokers(1);
    img.apply(&create("t", "id-t", 1, 1)).unwrap();
    img.apply(&fence(1)).unwrap();
    img.apply(&register(1)).unwrap();
    let p = &img.topics["t"].partitions[0];
    assert_eq!((p.leader, p.leader_epoch), (Some(1), 2));
}

#[test]
fn fencing_is_deterministic() {
    let mut cmds: Vec<MetadataCommand> = (1..=4).map(register).collect();
    for i in 0..10u32 {
        cmds.push(create(&format!("t{i}"), &format!("id-{i}"), 1 + i % 5, 1 + i % 3));
    }
    for i in 0..30u32 {
        cmds.push(if i % 3 == 2 { unfence(1 + i % 5) } else { fence(1 + (i * 7) % 5) });
    }
    let run = || {
        let mut img = MetadataImage::default();
        let outcomes: Vec<_> = cmds.iter().map(|c| img.apply(c)).collect();
        (serde_json::to_string(&img).unwrap(), outcomes)
    };
    assert_eq!(run(), run());
    for cmd in [fence(3), unfence(3)] {
        assert_eq!(MetadataCommand::decode(&cmd.encode()).unwrap(), cmd);
    }
}

#[test]
fn producer_id_blocks_never_overlap_and_survive_a_snapshot() {
    let mut img = image_with_brokers(2);
    let alloc = |node_id, count| MetadataCommand::AllocateProducerIds { node_id, count };
    assert_eq!(
        img.apply(&alloc(1, 1000)).unwrap(),
        CommandOutcome::ProducerIdsAllocated { node_id: 1, first: 0, count: 1000 }
    );
    assert_eq!(
        img.apply(&alloc(2, 10)).unwrap(),
        CommandOutcome::ProducerIdsAllocated { node_id: 2, first: 1000, count: 10 }
    );
    assert_eq!(img.next_producer_id, 1010);
    let e = assert_rejected(&mut img, alloc(3, 10));
    assert_eq!(e, MetadataError::UnknownBroker { node_id: 3 });
    let e = assert_rejected(&mut img, alloc(1, 0));
    assert!(matches!(e, MetadataError::InvalidProducerIdBlock { count: 0, .. }), "{e}");
    let e = assert_rejected(&mut img, alloc(1, MAX_PRODUCER_ID_BLOCK + 1));
    assert!(matches!(e, MetadataError::InvalidProducerIdBlock { .. }), "{e}");
    img.next_producer_id = i64::MAX - 5;
    let e = assert_rejected(&mut img, alloc(1, 10));
    assert!(matches!(e, MetadataError::InvalidProducerIdBlock { .. }), "{e}");
    img.next_producer_id = 1010;
    // The snapshot (the image as JSON) keeps the counter; an image written
    // before producer ids existed reads as 0.
    let back: MetadataImage = serde_json::from_slice(&serde_json::to_vec(&img).unwrap()).unwrap();
    assert_eq!(back, img);
    let mut old = serde_json::to_value(&img).unwrap();
    old.as_object_mut().unwrap().remove("next_producer_id");
    assert_eq!(serde_json::from_value::<MetadataImage>(old).unwrap().next_producer_id, 0);
    // The command survives its log encoding.
    assert_eq!(MetadataCommand::decode(&alloc(2, 7).encode()).unwrap(), alloc(2, 7));
}

#[test]
fn topic_configs_are_set_and_deleted_and_bad_changes_change_nothing() {
    let mut img = image_with_brokers(1);
    img.apply(&create("t", "id-t", 1, 1)).unwrap();
    let alter = |set: &[(&str, &str)], delete: &[&str]| MetadataCommand::AlterTopicConfigs {
        name: "t".into(),
        set: set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        delete: delete.iter().map(|k| k.to_string()).collect(),
    };
    let out = img.apply(&alter(&[("retention.ms", "1000"), ("segment.bytes", "4096")], &[])).unwrap();
    assert!(matches!(out, CommandOutcome::TopicConfigsAltered { ref configs, .. } if configs.len() == 2), "{out:?}");
    img.apply(&alter(&[("retention.ms", "2000")], &["segment.bytes"])).unwrap();
    let configs = &img.topics["t"].configs;
    assert_eq!(configs.get("retention.ms").map(String::as_str), Some("2000"));
    assert!(!configs.contains_key("segment.bytes"));
    let before = img.clone();
    assert_rejected(&mut img, alter(&[("a", "1")], &["a"]));
    assert_rejected(&mut img, alter(&[("", "1")], &[]));
    let unknown = MetadataCommand::AlterTopicConfigs { name: "nope".into(), set: Default::default(), delete: vec![] };
    assert_eq!(assert_rejected(&mut img, unknown), MetadataError::UnknownTopic { name: "nope".into() });
    assert_eq!(img, before);
}

#[test]
fn partitions_are_added_placed_like_a_new_topics_and_never_removed() {
    let mut img = image_with_brokers(3);
    img.apply(&create("t", "id-t", 3, 2)).unwrap();
    let out = img.apply(&MetadataCommand::CreatePartitions { name: "t".into(), count: 6 }).unwrap();
    let CommandOutcome::PartitionsCreated { topic } = out else { panic!("{out:?}") };
    assert_eq!(topic.partitions.len(), 6);
    for p in &topic.partitions[3..] {
        assert_eq!(p.replicas.len(), 2, "the topic's replication factor");
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas.first().copied());
        assert_eq!(p.leader_epoch, 0);
    }
    // New partitions spread over every broker, as a new topic's would.
    let leaders: std::collections::BTreeSet<u32> = topic.partitions[3..].iter().filter_map(|p| p.leader).collect();
    assert_eq!(leaders.len(), 3, "{:?}", topic.partitions);
    for count in [6, 5, MAX_PARTITIONS + 1] {
        let e = assert_rejected(&mut img, MetadataCommand::CreatePartitions { name: "t".into(), count });
        assert!(matches!(e, MetadataError::PartitionCountNotRaised { current: 6, .. }), "{e:?}");
    }
    let e = assert_rejected(&mut img, MetadataCommand::CreatePartitions { name: "nope".into(), count: 9 });
    assert_eq!(e, MetadataError::UnknownTopic { name: "nope".into() });
}
