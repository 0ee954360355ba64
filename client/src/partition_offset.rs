//! A position in one partition, with the metadata a commit keeps beside
//! it: what a consumer commits and an admin sets for a group (Kafka's
//! `TopicPartition` + `OffsetAndMetadata`), instead of loose
//! `(topic, partition, offset)` tuples.

use strata_record::TopicPartition;

/// The next offset to consume in a partition, and free-form metadata kept
/// with it when committed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionOffset {
    /// The partition.
    pub tp: TopicPartition,
    /// The next offset to consume (Kafka's convention for commits).
    pub offset: u64,
    /// Kept with a committed offset (empty: none).
    pub metadata: String,
}

impl PartitionOffset {
    /// `offset` in `tp`, with no metadata: `PartitionOffset::new(("events", 0), 42)`.
    pub fn new(tp: impl Into<TopicPartition>, offset: u64) -> Self {
        PartitionOffset { tp: tp.into(), offset, metadata: String::new() }
    }

    /// The same position with `metadata` kept beside it.
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }
}
