//! # strata-metadata
//!
//! The replicated cluster-metadata state machine: a pure, deterministic
//! function from (image, command) to (image, outcome) — brokers, topics,
//! partitions with replicas, ISR, leaders and leader epochs, rack-aware
//! placement. No I/O, no Raft: `strata-controller` replicates the commands
//! through a Raft quorum and applies them here; the broker reads the image
//! and proposes commands through a controller client, so it needs this
//! crate and not raft-rs.

mod acls;
mod command;
mod image;
mod outcome;
mod placement;
#[cfg(test)]
mod proptests;
mod reassignment;
#[cfg(test)]
mod reassignment_tests;
mod rebalance;
mod replication;
#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod tests;
mod users;
mod voters;

pub use acls::{
    applies_to, AclBinding, AclFilter, AclOperation, AclPermission, PatternFilter, PatternType, ResourceType,
    CLUSTER_RESOURCE_NAME, MAX_ACLS, MAX_ACLS_PER_COMMAND,
};
pub use command::{MetadataCommand, MAX_CONFIG_CHANGES, MAX_PARTITIONS, MAX_PRODUCER_ID_BLOCK};
pub use image::{BrokerInfo, MetadataImage, PartitionInfo, TopicInfo};
pub use outcome::{CommandOutcome, ElectionSkip, ElectionSkipReason, ElectionType, LeaderChange, MetadataError};
pub use placement::{place_replicas, rack_alternating};
pub use reassignment::{Reassignment, ReassignmentRequest, ReassignmentResult};
pub use rebalance::{decommission_plan, rebalance_plan, MAX_PLANNED_MOVES};
pub use replication::UNCLEAN_LEADER_ELECTION_ENABLE;
pub use users::{ScramEntry, MAX_USER_NAME_LEN, SCRAM_MECHANISMS};
pub use voters::VoterChange;
