//! Consumer groups, server side: committed offsets stored durably and
//! replicated in the internal topic `__consumer_offsets`, the group
//! coordinator, and the group RPCs (`FindCoordinator`, `CommitOffsets`,
//! `FetchOffsets`, `ListGroups`, `DescribeGroups`, `DeleteGroups`).
//!
//! - **Offsets topic.** Created by the broker through the controller on
//!   first need (a `FindCoordinator` or `CommitOffsets` when it does not
//!   exist) with `offsets_topic_partitions` partitions (default 16), a
//!   replication factor of min(3, live brokers), and no time-based
//!   retention (`retention.ms=-1`: it would silently forget offsets);
//!   instead the coordinator compacts it by key ([`compaction`]). Users can neither create,
//!   delete nor produce to topics whose name starts with `__`.
//! - **Placement.** A group lives in partition
//!   `(murmur2(group_id) & 0x7fffffff) % partitions` ([`partitioner`]); the
//!   leader of that partition is the group's coordinator.
//! - **Records.** One record per (group, topic, partition): a binary,
//!   versioned key and value ([`record`] documents the layout); a null value
//!   is a tombstone (offset deleted).
//! - **Writes.** A commit or delete appends one batch through the leader
//!   path exactly like an acks=all produce (min ISR check, the leader epoch
//!   the shard was loaded in, wait until the high watermark passes the
//!   batch); only then is the in-memory state updated, each entry keeping
//!   the log offset of its record so concurrent writes apply in log order.
//!   A commit request's partitions go into one batch: all or none of them.
//! - **Loading.** Per offsets partition led here, the state ([`shard`]) is
//!   rebuilt by replaying the log from its start to its end on the first
//!   request in a new leader epoch ([`coordinator`], [`loader`]); requests
//!   meanwhile wait briefly, then get `COORDINATOR_LOAD_IN_PROGRESS`. A
//!   broker that no longer leads answers `NOT_COORDINATOR` and drops the
//!   state.
//! - **Unknown groups.** `DescribeGroups` answers `GROUP_ID_NOT_FOUND` (with
//!   state `dead`) for a group with no offsets and no members; `FetchOffsets`
//!   answers offset -1 per partition instead (no error), as Kafka does.
//! - **Membership** (KIP-848 style, [`membership`]): members heartbeat
//!   (`ConsumerGroupHeartbeat`) with their subscription (topic names or a
//!   regular expression) and the partitions they own; the coordinator
//!   computes the target assignment with the group's [`assignor`] and moves
//!   partitions incrementally, revoking before assigning. Sessions expire,
//!   static members (`group.instance.id`) keep their partitions across a
//!   restart, commits are fenced by member epoch, and a group with members
//!   cannot be deleted or reset (`NON_EMPTY_GROUP`). Membership is kept in
//!   memory; a new coordinator re-learns it from the members' heartbeats.

pub(crate) mod assignor;
pub(crate) mod classic;
pub(crate) mod compaction;
pub(crate) mod coordinator;
mod heartbeat;
pub(crate) mod loader;
pub(crate) mod member;
pub(crate) mod membership;
#[cfg(test)]
mod membership_tests;
pub(crate) mod model;
pub(crate) mod offsets_topic;
pub(crate) mod partitioner;
pub(crate) mod record;
mod rpc;
pub(crate) mod shard;
pub(crate) mod views;
pub(crate) mod writer;

use crate::error::{BrokerError, ErrorKind};

pub(crate) use coordinator::GroupCoordinator;

/// The internal topic holding committed offsets (Kafka's name).
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Longest group id accepted.
pub(crate) const MAX_GROUP_ID_LEN: usize = 255;

/// Longest offset metadata accepted (Kafka's `offset.metadata.max.bytes`).
pub(crate) const MAX_METADATA_BYTES: usize = 4096;

/// Whether a topic name is reserved for the broker's internal topics.
pub(crate) fn is_internal_topic(name: &str) -> bool {
    name.starts_with("__")
}

/// Checks a group id: non-empty, at most [`MAX_GROUP_ID_LEN`] characters.
pub(crate) fn validate_group_id(group_id: &str) -> Result<(), BrokerError> {
    if group_id.is_empty() {
        return Err(BrokerError::new(ErrorKind::InvalidGroupId, "the group id must not be empty"));
    }
    let len = group_id.chars().count();
    if len > MAX_GROUP_ID_LEN {
        return Err(BrokerError::new(
            ErrorKind::InvalidGroupId,
            format!("the group id is {len} characters long; the limit is {MAX_GROUP_ID_LEN}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_and_internal_names() {
        assert!(validate_group_id("g").is_ok());
        assert!(validate_group_id(&"x".repeat(255)).is_ok());
        assert_eq!(validate_group_id("").unwrap_err().kind(), ErrorKind::InvalidGroupId);
        assert_eq!(validate_group_id(&"x".repeat(256)).unwrap_err().kind(), ErrorKind::InvalidGroupId);
        assert!(is_internal_topic(OFFSETS_TOPIC));
        assert!(!is_internal_topic("_one"));
    }
}
