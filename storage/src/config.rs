//! Per-log settings: segment size and age, indexes, retention, flush policy.
//! Serde-ready so the broker can take them from TOML and topic configs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};

/// When appended bytes are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum FlushPolicy {
    /// fdatasync before every `append` returns.
    Always,
    /// `append` returns once its bytes are durable; concurrent appends share
    /// one fdatasync. The flusher waits up to `max_delay_ms` to gather more
    /// writes first (0: sync at once, batching only what arrives meanwhile).
    GroupCommit {
        /// Longest a write waits for companions before the sync starts.
        max_delay_ms: u64,
    },
    /// `append` returns once the bytes are in the page cache; a background
    /// flusher (the `LogManager`'s) syncs every `interval_ms`. A machine crash
    /// can lose up to that window; a process crash loses nothing.
    Interval {
        /// Time between background flushes.
        interval_ms: u64,
    },
}

impl Default for FlushPolicy {
    /// Group commit with no added delay: nothing acknowledged is lost even on
    /// power failure, and concurrent producers share fsyncs.
    fn default() -> Self {
        FlushPolicy::GroupCommit { max_delay_ms: 0 }
    }
}

impl FlushPolicy {
    /// The policy's short name, as benchmarks and metrics print it.
    pub fn name(&self) -> &'static str {
        match self {
            FlushPolicy::Always => "always",
            FlushPolicy::GroupCommit { .. } => "group_commit",
            FlushPolicy::Interval { .. } => "interval",
        }
    }
}

/// Settings of one partition log. Defaults follow Kafka's where Kafka has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Roll to a new segment before one grows past this (Kafka `segment.bytes`).
    pub segment_bytes: u64,
    /// Roll a segment once its first batch is this old (`segment.ms`).
    pub segment_ms: u64,
    /// Delete the oldest segments while the log is larger than this
    /// (`retention.bytes`); `None` keeps everything.
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest record is older than this
    /// (`retention.ms`); `None` keeps everything.
    pub retention_ms: Option<u64>,
    /// Bytes between sparse index entries (`index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// Most offset-index entries per segment; a full index rolls the segment.
    pub max_index_entries: u64,
    /// Largest record batch accepted (`max.message.bytes`).
    pub max_batch_bytes: usize,
    /// Disk space reserved at a time for the active segment (`fallocate`), so
    /// a full disk fails an append cleanly before any byte is written.
    pub preallocate_bytes: u64,
    /// Durability policy.
    pub flush: FlushPolicy,
    /// An idempotent producer's state is dropped once its newest batch is
    /// this old (Kafka's `producer.id.expiration.ms`, 1 day).
    pub producer_id_expiration_ms: u64,
    /// Keep only the latest record per key (`cleanup.policy` with
    /// `compact`); see `cleaner`.
    pub compact: bool,
    /// Tombstones (null values) stay this long before compaction removes
    /// them (`delete.retention.ms`, 1 day), so consumers see the deletion.
    pub delete_retention_ms: u64,
    /// A record is compacted only once it is this old
    /// (`min.compaction.lag.ms`, 0).
    pub min_compaction_lag_ms: u64,
    /// Compaction starts once this share of the cleanable log, in
    /// thousandths, was written since the last pass
    /// (`min.cleanable.dirty.ratio` 0.5 = 500).
    pub min_cleanable_dirty_permille: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            index_interval_bytes: 4096,
            max_index_entries: (10 << 20) / 8,
            max_batch_bytes: (1 << 20) + 12 + 61,
            preallocate_bytes: 16 << 20,
            flush: FlushPolicy::default(),
            producer_id_expiration_ms: 24 * 3600 * 1000,
            compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_permille: 500,
        }
    }
}

impl LogConfig {
    /// Checks ranges; every entry point that takes a config calls it.
    pub fn validate(&self) -> Result<()> {
        let bad = |what, reason: &str| Err(StorageError::InvalidArgument { what, reason: reason.into() });
        if self.segment_bytes < 1024 || self.segment_bytes > u64::from(u32::MAX) {
            return bad("segment_bytes", "must be between 1 KiB and 4 GiB - 1");
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be positive");
        }
        if self.max_index_entries < 2 {
            return bad("max_index_entries", "must be at least 2");
        }
        if self.max_batch_bytes < strata_record::batch::HEADER_LEN {
            return bad("max_batch_bytes", "is smaller than a batch header");
        }
        if self.preallocate_bytes == 0 {
            return bad("preallocate_bytes", "must be positive");
        }
        if let FlushPolicy::Interval { interval_ms: 0 } = self.flush {
            return bad("flush.interval_ms", "must be positive");
        }
        Ok(())
    }

    /// `segment_ms` as a signed millisecond span (saturating).
    pub(crate) fn segment_ms_i64(&self) -> i64 {
        i64::try_from(self.segment_ms).unwrap_or(i64::MAX)
    }

    /// Group-commit gathering delay, if that is the policy.
    pub(crate) fn group_delay(&self) -> Option<Duration> {
        match self.flush {
            FlushPolicy::Always => Some(Duration::ZERO),
            FlushPolicy::GroupCommit { max_delay_ms } => Some(Duration::from_millis(max_delay_ms)),
            FlushPolicy::Interval { .. } => None,
        }
    }
}
