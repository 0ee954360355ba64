//! The replicated cluster-metadata state machine: a pure, deterministic
//! function from (image, command) to (image, outcome). No I/O, no Raft.

mod command;
mod image;
mod outcome;
mod placement;
#[cfg(test)]
mod proptests;
mod replication;
#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod tests;

pub use command::{MetadataCommand, MAX_PARTITIONS};
pub use image::{BrokerInfo, MetadataImage, PartitionInfo, TopicInfo};
pub use outcome::{CommandOutcome, ElectionSkip, ElectionSkipReason, ElectionType, LeaderChange, MetadataError};
pub use placement::{place_replicas, rack_alternating};
pub use replication::UNCLEAN_LEADER_ELECTION_ENABLE;
