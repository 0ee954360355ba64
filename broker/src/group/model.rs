//! A consumer group as the coordinator holds it: its state, its membership
//! ([`Membership`], in memory), and its committed offsets, each remembering the offsets-log position of the
//! record that set it so updates apply in log order whatever order their
//! replication completes in.

use std::collections::BTreeMap;

use strata_record::TopicPartition;

use crate::error::{BrokerError, ErrorKind};

use super::membership::Membership;

/// A group's lifecycle state, named as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// Committed offsets but no members.
    Empty,
    /// Members, each holding exactly its target assignment.
    Stable,
    /// Members moving towards a new target assignment.
    Reconciling,
    /// A new target assignment is being computed (the coordinator computes
    /// it within the heartbeat that changed the group, so this is never
    /// observed; kept for the API's vocabulary).
    #[allow(dead_code, reason = "part of the API's group states; never entered")]
    Assigning,
    /// No such group (deleted, or never committed).
    Dead,
}

impl GroupState {
    /// The name used in `ListGroups` / `DescribeGroups`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "empty",
            GroupState::Stable => "stable",
            GroupState::Reconciling => "reconciling",
            GroupState::Assigning => "assigning",
            GroupState::Dead => "dead",
        }
    }
}

/// One committed offset, or a tombstone that deleted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Position in the offsets log of the record that set this entry.
    pub record_offset: u64,
    /// The committed position; `None` once a tombstone deleted it.
    pub value: Option<super::record::OffsetValue>,
}

/// A consumer group coordinated by this broker.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// The group id.
    pub id: String,
    /// Members, their epochs and assignments.
    pub membership: Membership,
    offsets: BTreeMap<TopicPartition, OffsetEntry>,
}

/// Groups compare by their stored state (id and offsets); membership is
/// runtime state, never in the log.
impl PartialEq for Group {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.offsets == other.offsets
    }
}

impl Eq for Group {}

impl Group {
    /// A group with no members and no offsets.
    pub(crate) fn new(id: impl Into<String>) -> Self {
        Group { id: id.into(), membership: Membership::default(), offsets: BTreeMap::new() }
    }

    /// The group's state: `Empty` while it has committed offsets and no
    /// members, `Dead` when it has neither.
    pub(crate) fn state(&self) -> GroupState {
        if !self.membership.is_empty() {
            if self.membership.is_stable() {
                GroupState::Stable
            } else {
                GroupState::Reconciling
            }
        } else if self.has_offsets() {
            GroupState::Empty
        } else {
            GroupState::Dead
        }
    }

    /// Whether any offset is committed (tombstones do not count).
    pub(crate) fn has_offsets(&self) -> bool {
        self.offsets.values().any(|e| e.value.is_some())
    }

    /// Whether the group has nothing worth keeping: no members, no offsets.
    pub(crate) fn is_dead(&self) -> bool {
        self.state() == GroupState::Dead
    }

    /// The committed offset of one partition, if any.
    pub(crate) fn offset(&self, topic: &str, partition: u32) -> Option<&super::record::OffsetValue> {
        self.offsets.get(&TopicPartition::of(topic, partition)).and_then(|e| e.value.as_ref())
    }

    /// Every committed offset, in (topic, partition) order.
    pub(crate) fn offsets(&self) -> impl Iterator<Item = (&str, u32, &super::record::OffsetValue)> {
        self.offsets.iter().filter_map(|(tp, e)| e.value.as_ref().map(|v| (tp.topic.as_str(), tp.partition, v)))
    }

    /// Applies the record at `record_offset` of the offsets log for
    /// (`topic`, `partition`): a commit (`Some`) or a tombstone (`None`).
    /// A record older than the one already applied for that key is ignored,
    /// so the result is the log's last word whatever the application order.
    pub(crate) fn apply(
        &mut self,
        topic: &str,
        partition: u32,
        record_offset: u64,
        value: Option<super::record::OffsetValue>,
    ) {
        let entry = self.offsets.entry(TopicPartition::of(topic, partition));
        match entry {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                if e.get().record_offset < record_offset {
                    e.insert(OffsetEntry { record_offset, value });
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(OffsetEntry { record_offset, value });
            }
        }
    }

    /// Forgets tombstones (after a full replay nothing older can arrive).
    pub(crate) fn compact(&mut self) {
        self.offsets.retain(|_, e| e.value.is_some());
    }

    /// Checks a commit against membership: see [`Membership::check_commit`].
    pub(crate) fn check_commit(&self, member_id: &str, member_epoch: i32, adoptable: bool) -> Result<(), BrokerError> {
        self.membership.check_commit(&self.id, member_id, member_epoch, adoptable)
    }

    /// Refuses deletion (and admin resets) while the group has members.
    pub(crate) fn check_delete(&self) -> Result<(), BrokerError> {
        if self.membership.is_empty() {
            Ok(())
        } else {
            Err(BrokerError::new(
                ErrorKind::NonEmptyGroup,
                format!("group '{}' has {} member(s); stop them first", self.id, self.membership.len()),
            ))
        }
    }
}
