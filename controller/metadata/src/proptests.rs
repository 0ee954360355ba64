//! Random command sequences against the replication invariants of
//! `docs/replication.md`, checked after every step, and deterministic replay.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

/// Broker ids 1..=BROKERS + 1 are used; 1..=3 are registered first.
const BROKERS: u32 = 4;

/// A command before it is resolved against the current image, so that
/// AlterPartition and elections mostly target real partitions at real epochs.
#[derive(Debug, Clone)]
enum Op {
    Register(u32),
    Fence(u32),
    Unfence(u32),
    Shutdown(u32),
    Create {
        name: u8,
        partitions: u32,
        rf: u32,
        unclean: bool,
    },
    Delete {
        name: u8,
    },
    /// The leader of some partition adds every unfenced replica to its ISR
    /// (the usual catch-up), so that preferred elections have work to do.
    Expand {
        start: usize,
    },
    Alter {
        topic: usize,
        partition: usize,
        proposer: Option<u32>,
        leader_epoch: i8,
        partition_epoch: i8,
        isr: Isr,
    },
    Elect {
        pick: Option<Vec<(usize, usize)>>,
        preferred: bool,
    },
}

/// How an AlterPartition's ISR is built from the partition's replicas.
#[derive(Debug, Clone)]
enum Isr {
    /// The replicas selected by the mask, leader first (a valid-looking ISR).
    Mask(u8),
    /// Arbitrary ids (mostly invalid).
    Raw(Vec<u32>),
}

fn op() -> impl Strategy<Value = Op> {
    let broker = 1..=BROKERS + 1;
    let epoch_delta = prop_oneof![6 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)];
    let isr = prop_oneof![6 => any::<u8>().prop_map(Isr::Mask), 1 => prop::collection::vec(0..=BROKERS + 1, 0..4).prop_map(Isr::Raw)];
    prop_oneof![
        2 => broker.clone().prop_map(Op::Register),
        2 => broker.clone().prop_map(Op::Fence),
        2 => broker.clone().prop_map(Op::Unfence),
        1 => broker.clone().prop_map(Op::Shutdown),
        2 => (0..4u8, 1..4u32, 1..4u32, any::<bool>())
            .prop_map(|(name, partitions, rf, unclean)| Op::Create { name, partitions, rf, unclean }),
        1 => (0..4u8).prop_map(|name| Op::Delete { name }),
        3 => any::<usize>().prop_map(|start| Op::Expand { start }),
        8 => (any::<usize>(), any::<usize>(), prop::option::weighted(0.2, broker), epoch_delta.clone(), epoch_delta, isr)
            .prop_map(|(topic, partition, proposer, leader_epoch, partition_epoch, isr)| Op::Alter {
                topic,
                partition,
                proposer,
                leader_epoch,
                partition_epoch,
                isr,
            }),
        3 => (prop::option::weighted(0.5, prop::collection::vec((any::<usize>(), any::<usize>()), 0..4)), any::<bool>())
            .prop_map(|(pick, preferred)| Op::Elect { pick, preferred }),
    ]
}

fn shift(epoch: u32, delta: i8) -> u32 {
    epoch.saturating_add_signed(i32::from(delta))
}

/// The concrete command for `op` at step `step` of a run on `img`.
fn resolve(img: &MetadataImage, step: usize, op: &Op) -> MetadataCommand {
    let topics: Vec<&TopicInfo> = img.topics.values().collect();
    match op {
        Op::Register(id) => MetadataCommand::RegisterBroker {
            kafka_address: None,
            node_id: *id,
            address: format!("h:{id}"),
            rack: None,
        },
        Op::Fence(id) => MetadataCommand::FenceBroker { node_id: *id },
        Op::Unfence(id) => MetadataCommand::UnfenceBroker { node_id: *id },
        Op::Shutdown(id) => MetadataCommand::ControlledShutdown { node_id: *id },
        Op::Create { name, partitions, rf, unclean } => {
            let mut configs = BTreeMap::new();
            if *unclean {
                configs.insert(UNCLEAN_LEADER_ELECTION_ENABLE.to_string(), "true".to_string());
            }
            MetadataCommand::CreateTopic {
                name: format!("t{name}"),
                topic_id: format!("id-{step}"),
                partitions: *partitions,
                replication_factor: *rf,
                configs,
            }
        }
        Op::Delete { name } => MetadataCommand::DeleteTopic { name: format!("t{name}") },
        Op::Alter { topic, partition, proposer, leader_epoch, partition_epoch, isr } => {
            let Some(t) = (!topics.is_empty()).then(|| topics[topic % topics.len()]) else {
                return MetadataCommand::AlterPartition {
                    topic_id: "missing".into(),
                    partition: 0,
                    leader_id: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    new_isr: vec![1],
                };
            };
            // Now and then one index past the end: an unknown partition.
            let index = if partition % 8 == 0 { t.partitions.len() } else { partition % t.partitions.len() };
            let p = t.partitions.get(index).unwrap_or(&t.partitions[0]);
            let leader_id = proposer.or(p.leader).unwrap_or(p.replicas[0]);
            let new_isr = match isr {
                Isr::Mask(mask) => {
                    let mut v = vec![leader_id];
                    v.extend(
                        p.replicas
                            .iter()
                            .enumerate()
                            .filter(|(i, r)| mask >> i & 1 == 1 && **r != leader_id)
                            .map(|(_, r)| *r),
                    );
                    v
                }
                Isr::Raw(v) => v.clone(),
            };
            MetadataCommand::AlterPartition {
                topic_id: t.id.clone(),
                partition: index as u32,
                leader_id,
                leader_epoch: shift(p.leader_epoch, *leader_epoch),
                partition_epoch: shift(p.partition_epoch, *partition_epoch),
                new_isr,
            }
        }
        Op::Expand { start } => {
            let unfenced = |r: &u32| img.brokers.get(r).is_some_and(|b| !b.fenced);
            let all: Vec<(&TopicInfo, &PartitionInfo)> =
                topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (*t, p))).collect();
            // The first led partition (from a random start) with an unfenced replica out of its ISR.
            let can_grow = |(_, p): &&(&TopicInfo, &PartitionInfo)| {
                p.leader.is_some() && p.replicas.iter().any(|r| !p.isr.contains(r) && unfenced(r))
            };
            let n = all.len().max(1);
            let Some(&(t, p)) = all.iter().cycle().skip(start % n).take(all.len()).find(can_grow) else {
                return MetadataCommand::ElectLeaders {
                    partitions: Some(Vec::new()),
                    election: ElectionType::Preferred,
                };
            };
            let leader_id = p.leader.unwrap_or(p.replicas[0]);
            let mut new_isr = p.isr.clone();
            new_isr.extend(p.replicas.iter().copied().filter(|r| !p.isr.contains(r) && unfenced(r)));
            MetadataCommand::AlterPartition {
                topic_id: t.id.clone(),
                partition: p.partition,
                leader_id,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr,
            }
        }
        Op::Elect { pick, preferred } => {
            let partitions = pick.as_ref().map(|pick| {
                pick.iter()
                    .map(|(t, p)| match topics.get(t % (topics.len() + 1)) {
                        Some(t) => (t.name.clone(), (p % (t.partitions.len() + 1)) as u32),
                        None => ("missing".to_string(), 0),
                    })
                    .collect()
            });
            let election = if *preferred { ElectionType::Preferred } else { ElectionType::Unclean };
            MetadataCommand::ElectLeaders { partitions, election }
        }
    }
}

/// Partitions by (topic id, partition): ids are never reused, names may be.
fn partitions(img: &MetadataImage) -> BTreeMap<(String, u32), (&str, &PartitionInfo)> {
    img.topics
        .values()
        .flat_map(|t| t.partitions.iter().map(move |p| ((t.id.clone(), p.partition), (t.name.as_str(), p))))
        .collect()
}

/// Checks the image on its own: leader ∈ ISR ⊆ replicas, ISR non-empty and
/// without duplicates, the leader unfenced, and a fenced broker in an ISR only
/// as its last member of a leaderless partition.
fn check_image(img: &MetadataImage) -> Result<(), TestCaseError> {
    let fenced = |id: &u32| img.brokers.get(id).is_none_or(|b| b.fenced);
    for t in img.topics.values() {
        for p in &t.partitions {
            let ctx = format!("{}-{}: {p:?}", t.name, p.partition);
            prop_assert!(!p.isr.is_empty(), "empty ISR {}", ctx);
            prop_assert!(p.isr.iter().all(|r| p.replicas.contains(r)), "ISR not within replicas {}", ctx);
            prop_assert_eq!(p.isr.iter().collect::<BTreeSet<_>>().len(), p.isr.len(), "duplicate in ISR {}", ctx);
            if let Some(l) = p.leader {
                prop_assert!(p.isr.contains(&l), "leader outside the ISR {}", ctx);
                prop_assert!(!fenced(&l), "fenced leader {}", ctx);
            }
            if p.isr.iter().any(fenced) {
                prop_assert!(p.isr.len() == 1 && p.leader.is_none(), "fenced broker in a live ISR {}", ctx);
            }
        }
    }
    Ok(())
}

/// Checks one step: a rejection changes nothing; epochs never decrease, the
/// leader epoch bumps exactly when the leader changes and the partition epoch
/// exactly when the leader or ISR does; and the outcome reports every change.
fn check_step(
    before: &MetadataImage,
    after: &MetadataImage,
    result: &Result<CommandOutcome, MetadataError>,
) -> Result<(), TestCaseError> {
    let outcome = match result {
        Err(_) => {
            prop_assert_eq!(before, after, "a rejected command changed the image");
            return Ok(());
        }
        Ok(o) => o,
    };
    let old = partitions(before);
    let mut changed = BTreeSet::new();
    for (key, (name, p)) in partitions(after) {
        let Some((_, q)) = old.get(&key) else {
            prop_assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (p.replicas.first().copied(), 0, 0));
            continue;
        };
        prop_assert_eq!(&p.replicas, &q.replicas);
        let leader_moved = p.leader != q.leader;
        let isr_changed = p.isr != q.isr;
        prop_assert_eq!(p.leader_epoch, q.leader_epoch + u32::from(leader_moved), "{:?} -> {:?}", q, p);
        prop_assert_eq!(
            p.partition_epoch,
            q.partition_epoch + u32::from(leader_moved || isr_changed),
            "{:?} -> {:?}",
            q,
            p
        );
        if leader_moved || isr_changed {
            changed.insert((name.to_string(), p.partition));
        }
    }
    let reported = match outcome {
        CommandOutcome::BrokerFenced { partitions_moved, .. }
        | CommandOutcome::BrokerUnfenced { partitions_moved, .. }
        | CommandOutcome::BrokerShutDown { partitions_moved, .. }
        | CommandOutcome::LeadersElected { partitions_moved, .. } => partitions_moved,
        CommandOutcome::PartitionAltered { topic, partition, .. } => {
            prop_assert!(changed.len() <= 1 && changed.iter().all(|c| *c == (topic.clone(), partition.partition)));
            prop_assert_eq!(partition, &after.topics[topic].partitions[partition.partition as usize]);
            return Ok(());
        }
        // Registration may unfence (and so elect) without listing it; the rest create or drop whole topics.
        _ => return Ok(()),
    };
    let listed: BTreeSet<_> = reported.iter().map(|c| (c.topic.clone(), c.partition)).collect();
    prop_assert_eq!(listed.len(), reported.len(), "a partition listed twice");
    prop_assert_eq!(&listed, &changed, "reported vs actual changes");
    for c in reported {
        let p = &after.topics[&c.topic].partitions[c.partition as usize];
        prop_assert_eq!(
            (c.leader, c.leader_epoch, &c.isr, c.partition_epoch),
            (p.leader, p.leader_epoch, &p.isr, p.partition_epoch)
        );
        prop_assert_eq!(
            c.unclean,
            c.isr.len() == 1
                && before.topics[&c.topic].partitions[c.partition as usize].isr != c.isr
                && matches!(outcome, CommandOutcome::LeadersElected { election: ElectionType::Unclean, .. })
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_keep_the_replication_invariants(ops in prop::collection::vec(op(), 1..120)) {
        let mut img = MetadataImage::default();
        let mut cmds = Vec::new();
        let mut results = Vec::new();
        // Three brokers to begin with, so that most topics can be created.
        let start = (1..=3).map(Op::Register);
        for (step, op) in start.chain(ops).enumerate() {
            let cmd = resolve(&img, step, &op);
            prop_assert_eq!(&MetadataCommand::decode(&cmd.encode()).unwrap(), &cmd);
            let before = img.clone();
            let result = img.apply(&cmd);
            check_image(&img)?;
            check_step(&before, &img, &result)?;
            cmds.push(cmd);
            results.push(result);
        }
        // Replaying the same commands on a fresh image gives the same image and outcomes.
        let mut replay = MetadataImage::default();
        let replayed: Vec<_> = cmds.iter().map(|c| replay.apply(c)).collect();
        prop_assert_eq!(&replay, &img);
        prop_assert_eq!(&replayed, &results);
        // The snapshot (JSON) round-trips to the same image and the same bytes.
        let json = serde_json::to_string(&img).unwrap();
        let decoded: MetadataImage = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&decoded, &img);
        prop_assert_eq!(serde_json::to_string(&decoded).unwrap(), json);
    }
}
