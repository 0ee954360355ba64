//! What the group operations take and return, in the core's own terms: an
//! edge (gRPC today, the Kafka protocol next) builds these from its request
//! and encodes them into its answer.

use strata_record::TopicPartition;

use super::assignor::TopicPartitionSet;
use super::model::GroupState;
use super::record::OffsetValue;
use crate::error::BrokerError;

/// The broker that coordinates a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coordinator {
    /// Its node id.
    pub node_id: u32,
    /// Its client address (host:port).
    pub address: String,
}

/// An offset commit: who commits, and the positions.
#[derive(Debug, Clone)]
pub(crate) struct OffsetCommit {
    /// The group.
    pub group_id: String,
    /// The committing member; empty for a standalone (admin) commit.
    pub member_id: String,
    /// The member's epoch (checked against the group's).
    pub member_epoch: i32,
    /// The positions, in the order the answer reports them.
    pub partitions: Vec<CommitPartition>,
}

/// One partition of an [`OffsetCommit`].
#[derive(Debug, Clone)]
pub(crate) struct CommitPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// The next offset to consume (Kafka's convention).
    pub offset: u64,
    /// Free-form metadata kept with the offset.
    pub metadata: String,
}

/// What became of one partition of a commit.
#[derive(Debug)]
pub(crate) enum PartitionCommit {
    /// Written and applied.
    Committed,
    /// Refused before the write (unknown partition, bad offset, ...).
    Rejected(BrokerError),
    /// Valid, but the write of the commit's batch failed: see
    /// [`CommitOutcome::write_error`].
    WriteFailed,
}

/// The answer to a commit whose group this broker coordinates. The valid
/// partitions are written as one batch, so they succeed or fail together.
#[derive(Debug, Default)]
pub(crate) struct CommitOutcome {
    /// Each requested partition, in request order.
    pub partitions: Vec<(TopicPartition, PartitionCommit)>,
    /// Why the batch of valid partitions was not written, if it was not.
    pub write_error: Option<BrokerError>,
}

/// A partition's committed offset as a fetch or describe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupOffset {
    /// The partition.
    pub tp: TopicPartition,
    /// The commit; `None` when the group committed nothing for it.
    pub committed: Option<OffsetValue>,
}

/// One live group in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// The broker coordinating it.
    pub coordinator: u32,
}

/// The groups this broker coordinates. A listing may be partial: while an
/// offsets partition is still loading, `loading` says so and the groups of
/// the others are listed.
#[derive(Debug, Default)]
pub(crate) struct GroupList {
    /// The groups, by id.
    pub groups: Vec<GroupListing>,
    /// `COORDINATOR_LOAD_IN_PROGRESS` when some shard was still loading.
    pub loading: Option<BrokerError>,
}

/// A group as `DescribeGroups` shows it.
#[derive(Debug, Clone)]
pub(crate) struct GroupDescription {
    /// Its state.
    pub state: GroupState,
    /// Bumped on every change that needs a new target assignment.
    pub group_epoch: i32,
    /// The assignor's name.
    pub assignor: &'static str,
    /// The broker coordinating it.
    pub coordinator: u32,
    /// Its members.
    pub members: Vec<MemberDescription>,
    /// Every committed offset.
    pub offsets: Vec<GroupOffset>,
}

/// A member as `DescribeGroups` shows it.
#[derive(Debug, Clone)]
pub(crate) struct MemberDescription {
    /// The member's id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The client's id.
    pub client_id: String,
    /// The host it heartbeats from.
    pub client_host: String,
    /// Its epoch.
    pub member_epoch: i32,
    /// What it holds (assigned plus still being revoked).
    pub assignment: TopicPartitionSet,
    /// What it is moving towards.
    pub target_assignment: TopicPartitionSet,
    /// Its subscription: topic names (comma-separated) or `/pattern/`.
    pub subscription: String,
}
