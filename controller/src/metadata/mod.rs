//! The replicated cluster-metadata state machine: a pure, deterministic
//! function from (image, command) to (image, outcome). No I/O, no Raft.

mod command;
mod image;
mod placement;
#[cfg(test)]
mod tests;

pub use command::{CommandOutcome, LeaderChange, MetadataCommand, MetadataError, MAX_PARTITIONS};
pub use image::{BrokerInfo, MetadataImage, PartitionInfo, TopicInfo};
pub use placement::{place_replicas, rack_alternating};
