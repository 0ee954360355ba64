//! What a follower's fetch asks and what the leader answers, in the core's
//! terms (`docs/replication.md`, "Follower fetch"). The gRPC edge carries
//! them between brokers (`api::grpc::replica`); a simulation passes them
//! directly.

use std::time::Duration;

use bytes::Bytes;
use strata_record::TopicPartition;

use crate::error::BrokerError;

/// A follower's fetch from one leader broker (a long poll).
#[derive(Debug, Clone)]
pub(crate) struct ReplicaFetch {
    /// The fetching broker (must be a replica of every partition).
    pub replica_id: u32,
    /// How long the leader may hold the fetch for `min_bytes` to arrive.
    pub max_wait: Duration,
    /// Answer as soon as this many record bytes are ready (at least 1).
    pub min_bytes: u32,
    /// Most record bytes in the answer (0: no limit).
    pub max_bytes: u32,
    /// The partitions, in the order the answer follows.
    pub partitions: Vec<FollowerFetch>,
}

/// One partition of a [`ReplicaFetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerFetch {
    /// The partition.
    pub tp: TopicPartition,
    /// The follower's log end offset: where to read from.
    pub fetch_offset: u64,
    /// The epoch of the follower's last batch (-1: its log is empty).
    pub last_fetched_epoch: i32,
    /// The leader epoch the follower believes in (fenced if stale).
    pub current_leader_epoch: u32,
    /// Most bytes for this partition (0: the fetch's `max_bytes`).
    pub max_bytes: u32,
}

/// Where the leader's log diverges from the follower's: the follower
/// truncates to min(`end_offset`, its own end of `epoch`), then fetches
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    /// The newest leader epoch both may share (-1: none).
    pub epoch: i32,
    /// Where that epoch ends in the leader's log.
    pub end_offset: u64,
}

/// The leader's answer for one partition. The offsets are set even beside
/// an `OFFSET_OUT_OF_RANGE` error: they tell the follower where to go.
#[derive(Debug, Clone)]
pub struct FollowerFetched {
    /// The partition.
    pub tp: TopicPartition,
    /// Why nothing was served, if so.
    pub error: Option<BrokerError>,
    /// The leader's high watermark.
    pub high_watermark: u64,
    /// The leader's log start offset.
    pub log_start_offset: u64,
    /// The leader's log end offset.
    pub log_end_offset: u64,
    /// Set instead of records when the follower's log diverges.
    pub diverging_epoch: Option<EpochEnd>,
    /// Whole record batches as stored (offsets and epochs included).
    pub records: Bytes,
}

impl FollowerFetched {
    /// An empty answer for `tp`, filled in by the leader.
    pub fn new(tp: TopicPartition) -> Self {
        FollowerFetched {
            tp,
            error: None,
            high_watermark: 0,
            log_start_offset: 0,
            log_end_offset: 0,
            diverging_epoch: None,
            records: Bytes::new(),
        }
    }
}
