//! Group membership, the pure part: what a member must do to move from the
//! partitions it owns to the assignment the coordinator sent, and when a
//! refused commit is worth retrying. No I/O here, so every case is unit
//! tested.
//!
//! The coordinator moves partitions incrementally: it gives a partition to
//! a member only after the previous owner reported (in a heartbeat) that it
//! gave it up. So a member's assignment never contains a partition another
//! member still owns, and a member applies it in one step: revoke what is
//! no longer assigned (commit, callback, stop), then take what is new.

use std::collections::BTreeSet;
use strata_record::TopicPartition;

/// `(topic, partition)`.
pub(crate) type Tp = TopicPartition;
/// One position to commit.
pub(crate) type Offset = crate::PartitionOffset;

/// The steps from the owned partitions to the target, each sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Owned partitions the member lost (fenced, evicted, or cut off for a
    /// session timeout): dropped WITHOUT committing (another member may own
    /// them already), `on_partitions_lost`.
    pub lost: Vec<Tp>,
    /// Owned partitions missing from the target: commit their positions
    /// (with auto-commit), `on_partitions_revoked`, stop fetching them.
    pub revoke: Vec<Tp>,
    /// Target partitions not owned yet: start at the group's committed
    /// offset, `on_partitions_assigned`.
    pub assign: Vec<Tp>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.lost.is_empty() && self.revoke.is_empty() && self.assign.is_empty()
    }

    /// The owned partitions once the plan is carried out, sorted.
    pub(crate) fn owned_after(&self, owned: &[Tp]) -> Vec<Tp> {
        let gone: BTreeSet<&Tp> = self.lost.iter().chain(&self.revoke).collect();
        let mut after: BTreeSet<Tp> = owned.iter().filter(|tp| !gone.contains(tp)).cloned().collect();
        after.extend(self.assign.iter().cloned());
        after.into_iter().collect()
    }
}

/// The plan from `owned` to `target` (`None`: no assignment yet, e.g.
/// while joining). With `lost`, everything owned is lost first and the
/// target, if any, is taken afresh (a rejoined member gets its partitions
/// back under a new epoch; it starts them again from the committed offsets).
pub(crate) fn plan(owned: &[Tp], target: Option<&[Tp]>, lost: bool) -> Plan {
    let owned: BTreeSet<&Tp> = owned.iter().collect();
    let target: Option<BTreeSet<&Tp>> = target.map(|t| t.iter().collect());
    if lost {
        return Plan {
            lost: owned.into_iter().cloned().collect(),
            revoke: Vec::new(),
            assign: target.map(|t| t.into_iter().cloned().collect()).unwrap_or_default(),
        };
    }
    let Some(target) = target else { return Plan::default() };
    Plan {
        lost: Vec::new(),
        revoke: owned.difference(&target).map(|tp| (*tp).clone()).collect(),
        assign: target.difference(&owned).map(|tp| (*tp).clone()).collect(),
    }
}

/// Splits offsets to commit into those of partitions the member owns and
/// the others: a member commits only what it owns (a partition it gave up
/// may be another member's already).
pub(crate) fn owned_only(offsets: Vec<Offset>, owned: &[Tp]) -> (Vec<Offset>, Vec<Offset>) {
    offsets.into_iter().partition(|o| owned.contains(&o.tp))
}

/// What to do after a commit was refused with STALE_MEMBER_EPOCH: retry
/// once, with the member's current epoch, the offsets of the partitions it
/// still owns. `None`: give up (already retried, the member rejoined under
/// another id, or it owns none of them any more).
pub(crate) fn stale_epoch_retry(
    offsets: &[Offset],
    retried: bool,
    sent_member: &str,
    current_member: &str,
    owned_now: &[Tp],
) -> Option<Vec<Offset>> {
    if retried || sent_member.is_empty() || sent_member != current_member {
        return None;
    }
    let (kept, _) = owned_only(offsets.to_vec(), owned_now);
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(list: &[(&str, u32)]) -> Vec<Tp> {
        list.iter().map(|(t, p)| TopicPartition { topic: t.to_string(), partition: *p }).collect()
    }

    #[test]
    fn revokes_what_left_the_target_and_assigns_what_is_new() {
        let owned = tps(&[("a", 0), ("a", 1), ("b", 0)]);
        let target = tps(&[("b", 0), ("a", 2), ("a", 0)]);
        let p = plan(&owned, Some(&target), false);
        assert_eq!(p.lost, vec![]);
        assert_eq!(p.revoke, tps(&[("a", 1)]));
        assert_eq!(p.assign, tps(&[("a", 2)]));
        assert_eq!(p.owned_after(&owned), tps(&[("a", 0), ("a", 2), ("b", 0)]));
    }

    #[test]
    fn a_shrinking_target_only_revokes_and_a_growing_one_only_assigns() {
        // The incremental protocol: first the old owner gives up (revoke
        // only), then the new one takes (assign only).
        let owned = tps(&[("t", 0), ("t", 1), ("t", 2)]);
        let p = plan(&owned, Some(&tps(&[("t", 0)])), false);
        assert_eq!((p.revoke, p.assign), (tps(&[("t", 1), ("t", 2)]), vec![]));
        let p = plan(&tps(&[("t", 3)]), Some(&tps(&[("t", 3), ("t", 1)])), false);
        assert_eq!((p.revoke, p.assign), (vec![], tps(&[("t", 1)])));
    }

    #[test]
    fn the_same_target_in_another_order_changes_nothing() {
        let owned = tps(&[("t", 1), ("t", 0)]);
        let p = plan(&owned, Some(&tps(&[("t", 0), ("t", 1)])), false);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.owned_after(&owned), tps(&[("t", 0), ("t", 1)]));
    }

    #[test]
    fn no_target_yet_keeps_everything() {
        assert!(plan(&tps(&[("t", 0)]), None, false).is_empty());
        // An empty target revokes everything (e.g. the subscription changed).
        assert_eq!(plan(&tps(&[("t", 0)]), Some(&[]), false).revoke, tps(&[("t", 0)]));
    }

    #[test]
    fn lost_partitions_are_not_revoked_and_the_new_target_is_taken_afresh() {
        let owned = tps(&[("t", 0), ("t", 1)]);
        // Fenced, then rejoined and handed t-1 and t-2: t-1 is lost (no
        // commit) and assigned again (starts from the committed offset).
        let p = plan(&owned, Some(&tps(&[("t", 1), ("t", 2)])), true);
        assert_eq!(p.lost, owned);
        assert!(p.revoke.is_empty());
        assert_eq!(p.assign, tps(&[("t", 1), ("t", 2)]));
        assert_eq!(p.owned_after(&owned), tps(&[("t", 1), ("t", 2)]));
        // Lost while the rejoin is still in flight: nothing to take yet.
        let p = plan(&owned, None, true);
        assert_eq!((p.lost.len(), p.assign.len()), (2, 0));
        assert!(p.owned_after(&owned).is_empty());
    }

    #[test]
    fn only_owned_partitions_are_committed() {
        let offsets = vec![Offset::new(("t", 0), 5), Offset::new(("t", 1), 7), Offset::new(("u", 0), 1)];
        let (kept, dropped) = owned_only(offsets, &tps(&[("t", 1), ("u", 0)]));
        assert_eq!(kept, vec![Offset::new(("t", 1), 7), Offset::new(("u", 0), 1)]);
        assert_eq!(dropped, vec![Offset::new(("t", 0), 5)]);
    }

    #[test]
    fn a_stale_epoch_commit_is_retried_once_for_what_is_still_owned() {
        let offsets = vec![Offset::new(("t", 0), 5), Offset::new(("t", 1), 7)];
        let owned = tps(&[("t", 1)]);
        assert_eq!(stale_epoch_retry(&offsets, false, "m1", "m1", &owned), Some(vec![Offset::new(("t", 1), 7)]));
        // Once only.
        assert_eq!(stale_epoch_retry(&offsets, true, "m1", "m1", &owned), None);
        // Nothing left to commit: t-0 and t-1 were revoked meanwhile.
        assert_eq!(stale_epoch_retry(&offsets, false, "m1", "m1", &[]), None);
        // The member rejoined (fenced, new id): its old commits are void.
        assert_eq!(stale_epoch_retry(&offsets, false, "m1", "m2", &owned), None);
        assert_eq!(stale_epoch_retry(&offsets, false, "", "", &owned), None);
    }
}
