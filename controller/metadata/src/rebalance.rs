//! Planning replica moves (`strata cluster rebalance`, `strata broker
//! decommission`): pure functions from the image to reassignment targets,
//! run inside the state machine so every voter plans the same moves from
//! the same image. Partitions already moving are left alone.

use std::collections::{BTreeMap, BTreeSet};

use super::image::{MetadataImage, PartitionInfo};
use super::outcome::MetadataError;
use super::reassignment::ReassignmentRequest;

/// Most moves one plan starts (a cluster of many thousands of partitions
/// is evened out over several runs rather than in one enormous command).
pub const MAX_PLANNED_MOVES: usize = 10_000;

/// The replica set a partition is heading for.
fn heading_for(p: &PartitionInfo) -> &[u32] {
    p.reassignment.as_ref().map_or(&p.replicas, |r| &r.target)
}

/// Working state of a plan: each partition's planned replicas and the
/// replica and preferred-leader counts they give each placeable broker.
struct Plan<'a> {
    image: &'a MetadataImage,
    placeable: Vec<u32>,
    planned: BTreeMap<(String, u32), Vec<u32>>,
    replicas: BTreeMap<u32, usize>,
    leaders: BTreeMap<u32, usize>,
}

impl<'a> Plan<'a> {
    fn new(image: &'a MetadataImage) -> Self {
        let placeable = image.placeable_brokers();
        let mut replicas: BTreeMap<u32, usize> = placeable.iter().map(|b| (*b, 0)).collect();
        let mut leaders = replicas.clone();
        for p in image.topics.values().flat_map(|t| &t.partitions) {
            let set = heading_for(p);
            for b in set {
                if let Some(c) = replicas.get_mut(b) {
                    *c += 1;
                }
            }
            if let Some(c) = set.first().and_then(|b| leaders.get_mut(b)) {
                *c += 1;
            }
        }
        Plan { image, placeable, planned: BTreeMap::new(), replicas, leaders }
    }

    fn rack(&self, b: u32) -> Option<&str> {
        self.image.brokers.get(&b).and_then(|i| i.rack.as_deref())
    }

    fn racks(&self, set: &[u32]) -> usize {
        set.iter().map(|b| self.rack(*b)).collect::<BTreeSet<_>>().len()
    }

    /// Movable partitions (not already moving) with their current plan.
    fn movable(&self) -> Vec<((String, u32), Vec<u32>)> {
        let mut out = Vec::new();
        for t in self.image.topics.values() {
            for p in t.partitions.iter().filter(|p| p.reassignment.is_none()) {
                let key = (t.name.clone(), p.partition);
                let set = self.planned.get(&key).cloned().unwrap_or_else(|| p.replicas.clone());
                out.push((key, set));
            }
        }
        out
    }

    /// The least-loaded placeable broker that can replace `from` in `set`
    /// without putting the set on fewer racks and whose load stays below
    /// `below` replicas.
    fn receiver(&self, set: &[u32], from: u32, below: usize) -> Option<u32> {
        let racks_before = self.racks(set);
        let mut candidates: Vec<u32> = self
            .placeable
            .iter()
            .copied()
            .filter(|b| *b != from && !set.contains(b) && self.replicas.get(b).is_some_and(|c| *c < below))
            .collect();
        candidates.sort_by_key(|b| (self.replicas.get(b).copied().unwrap_or(0), *b));
        candidates.into_iter().find(|b| {
            let after: Vec<u32> = set.iter().map(|x| if *x == from { *b } else { *x }).collect();
            self.racks(&after) >= racks_before
        })
    }

    fn replace(&mut self, key: (String, u32), mut set: Vec<u32>, from: u32, to: u32) {
        for x in &mut set {
            if *x == from {
                *x = to;
            }
        }
        if let Some(c) = self.replicas.get_mut(&from) {
            *c = c.saturating_sub(1);
        }
        *self.replicas.entry(to).or_insert(0) += 1;
        if set.first() == Some(&to) {
            if let Some(c) = self.leaders.get_mut(&from) {
                *c = c.saturating_sub(1);
            }
            *self.leaders.entry(to).or_insert(0) += 1;
        }
        self.planned.insert(key, set);
    }

    /// The moves: every partition whose planned set differs from its replicas.
    fn requests(self) -> Vec<ReassignmentRequest> {
        let image = self.image;
        self.planned
            .into_iter()
            .filter(|((t, p), set)| {
                image.topics.get(t).and_then(|t| t.partitions.get(*p as usize)).is_some_and(|p| &p.replicas != set)
            })
            .take(MAX_PLANNED_MOVES)
            .map(|((topic, partition), set)| ReassignmentRequest { topic, partition, target: Some(set) })
            .collect()
    }
}

/// Targets that even out replicas over the placeable brokers (no broker
/// more than one replica above another where racks allow it), then
/// preferred leaders (the first replica) by reordering replicas. Applied,
/// replica moves copy data; reorderings complete at once and the
/// controller's preferred-leader balancing moves leadership.
pub fn rebalance_plan(image: &MetadataImage) -> Vec<ReassignmentRequest> {
    let mut plan = Plan::new(image);
    // Replicas: move one at a time from the most to the least loaded broker.
    let mut stuck = BTreeSet::new();
    for _ in 0..MAX_PLANNED_MOVES {
        let mut by_load: Vec<(usize, u32)> =
            plan.replicas.iter().filter(|(b, _)| !stuck.contains(*b)).map(|(b, c)| (*c, *b)).collect();
        by_load.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let min = plan.replicas.values().copied().min().unwrap_or(0);
        let Some(&(max, donor)) = by_load.first() else { break };
        if max <= min + 1 {
            break;
        }
        let found = plan.movable().into_iter().find_map(|(key, set)| {
            if !set.contains(&donor) {
                return None;
            }
            plan.receiver(&set, donor, max - 1).map(|to| (key, set, to))
        });
        match found {
            Some((key, set, to)) => {
                plan.replace(key, set, donor, to);
                // Loads changed: a donor that could not give may now.
                stuck.clear();
            }
            None => {
                stuck.insert(donor);
            }
        }
    }
    // Preferred leaders: hand the first place to a less-loaded replica.
    let mut stuck = BTreeSet::new();
    for _ in 0..MAX_PLANNED_MOVES {
        let mut by_load: Vec<(usize, u32)> =
            plan.leaders.iter().filter(|(b, _)| !stuck.contains(*b)).map(|(b, c)| (*c, *b)).collect();
        by_load.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let min = plan.leaders.values().copied().min().unwrap_or(0);
        let Some(&(max, donor)) = by_load.first() else { break };
        if max <= min + 1 {
            break;
        }
        let leaders = &plan.leaders;
        let found = plan.movable().into_iter().find_map(|(key, set)| {
            if set.first() != Some(&donor) {
                return None;
            }
            let to = set
                .iter()
                .copied()
                .skip(1)
                .filter(|b| leaders.get(b).is_some_and(|c| *c + 1 < max))
                .min_by_key(|b| (leaders.get(b).copied().unwrap_or(0), *b))?;
            Some((key, set, to))
        });
        match found {
            Some((key, mut set, to)) => {
                if let Some(i) = set.iter().position(|b| *b == to) {
                    set.swap(0, i);
                }
                if let Some(c) = plan.leaders.get_mut(&donor) {
                    *c = c.saturating_sub(1);
                }
                *plan.leaders.entry(to).or_insert(0) += 1;
                plan.planned.insert(key, set);
                stuck.clear();
            }
            None => {
                stuck.insert(donor);
            }
        }
    }
    plan.requests()
}

/// Targets that move every replica off `node_id` (which must already be
/// out of the placeable brokers), each to the least-loaded broker that
/// keeps the partition's rack spread. Fails naming a partition that has
/// nowhere to go.
pub fn decommission_plan(image: &MetadataImage, node_id: u32) -> Result<Vec<ReassignmentRequest>, MetadataError> {
    let mut plan = Plan::new(image);
    let cannot = |reason: String| MetadataError::CannotDecommission { node_id, reason };
    for t in image.topics.values() {
        for p in &t.partitions {
            if p.reassignment.as_ref().is_some_and(|r| r.target.contains(&node_id)) {
                return Err(cannot(format!(
                    "{}-{} is moving onto it; cancel that reassignment first",
                    t.name, p.partition
                )));
            }
        }
    }
    for (key, set) in plan.movable() {
        if !set.contains(&node_id) {
            continue;
        }
        // Rack spread is kept where possible; a partition that cannot keep
        // it still leaves (a decommission must empty the broker).
        let to = plan.receiver(&set, node_id, usize::MAX).or_else(|| {
            let mut c: Vec<u32> = plan.placeable.iter().copied().filter(|b| !set.contains(b)).collect();
            c.sort_by_key(|b| (plan.replicas.get(b).copied().unwrap_or(0), *b));
            c.first().copied()
        });
        let Some(to) = to else {
            return Err(cannot(format!(
                "{}-{} has {} replicas and no other broker can take one",
                key.0,
                key.1,
                set.len()
            )));
        };
        plan.replace(key, set, node_id, to);
    }
    Ok(plan.requests())
}
