//! What replication needs from a `Log` (Kafka's KIP-101/279 model, see
//! `docs/replication.md`): the leader-epoch cache kept beside the log and
//! truncated with it, appends of a leader's batches exactly as the leader
//! stored them, and the checkpointed high watermark.
//!
//! Invariants kept here: the cache's entries are strictly increasing, start
//! at or after the log start offset and below the log end, except that the
//! last may start exactly at the log end (an epoch assigned by a new leader
//! before its first append); the epochs of the log's batches never decrease.
//! Opening the log drops entries at or past the end, so a reopened log's
//! cache equals the one rebuilt from its batch headers.

use std::path::Path;
use std::time::Duration;

use strata_record::batch::{BatchError, BatchHeader, RecordBatch};

use crate::epoch_cache::{CacheFile, LeaderEpochCache};
use crate::error::{Result, StorageError};
use crate::log::{AppendInfo, Log, LogState, MAX_OFFSET};
use crate::segment::LogSegment;

impl Log {
    /// A new leader records `(epoch, log end offset)` before its first
    /// append, so its epoch cache answers followers' end-offset queries for
    /// the previous epoch correctly. Durable before it returns. Repeating the
    /// current epoch is a no-op; an older one is
    /// [`StorageError::StaleLeaderEpoch`].
    pub fn assign_leader_epoch(&self, epoch: u32) -> Result<()> {
        let mut st = self.write_state();
        if let Some(latest) = st.epochs.latest_epoch().filter(|&l| epoch < l) {
            return Err(StorageError::StaleLeaderEpoch { epoch, latest });
        }
        let end = st.log_end();
        self.ensure_epoch(&mut st, epoch, end)
    }

    /// A follower's append: writes the leader's batches unchanged (offsets,
    /// leader epochs and bytes as fetched), so replicas hold identical
    /// bytes. The first batch must start at or after the log end and each
    /// next one after the previous (past it where compaction left a gap;
    /// [`StorageError::UnexpectedAppendOffset`] for one that overlaps), epochs must not
    /// go below the newest epoch of the data already in the log
    /// ([`StorageError::StaleLeaderEpoch`]), and every batch must fit the
    /// size limit; if any check fails nothing is appended. Each newer epoch
    /// is recorded in the epoch cache at its batch's base offset. Returns
    /// once the flush policy's durability is met.
    pub fn append_as_follower(&self, batches: &[RecordBatch]) -> Result<AppendInfo> {
        let (info, delay) = self.append_as_follower_unsynced(batches)?;
        if let Some(delay) = delay {
            self.wait_durable_for(&info, delay)?;
        }
        Ok(info)
    }

    /// [`Log::append_as_follower`] without the durability wait: returns the
    /// flush policy's delay for [`Log::wait_durable_for`], so a follower can
    /// append every partition of one fetch first and wait for their syncs
    /// together.
    pub fn append_as_follower_unsynced(&self, batches: &[RecordBatch]) -> Result<(AppendInfo, Option<Duration>)> {
        let delay;
        let mut info: Option<AppendInfo> = None;
        {
            let mut st = self.write_state();
            let max = st.config.max_batch_bytes;
            if let Some(big) = batches.iter().find(|b| b.bytes().len() > max) {
                return Err(BatchError::TooLarge { size: big.bytes().len(), max }.into());
            }
            self.check_writable()?;
            let end = st.log_end();
            self.check_follower_batches(&st, batches, end)?;
            for batch in batches {
                let h: &BatchHeader = batch.header();
                self.ensure_epoch(&mut st, h.partition_leader_epoch, h.base_offset)?;
                self.write_batch(&mut st, &[&batch.bytes()[..]], h, &mut info)?;
            }
            delay = st.config.group_delay();
        }
        let info = info.ok_or(StorageError::InvalidArgument { what: "append", reason: "no batches given".into() })?;
        Ok((info, delay))
    }

    /// Where `epoch` ends in this log, as `(epoch, end offset)` — the
    /// leader's answer to a follower's divergence check (see
    /// [`LeaderEpochCache::end_offset_for`]); `None` when the cache cannot
    /// tell and the caller must fall back.
    pub fn end_offset_for_epoch(&self, epoch: u32) -> Option<(u32, u64)> {
        let st = self.read_state();
        st.epochs.end_offset_for(epoch, st.log_end())
    }

    /// The newest leader epoch in the epoch cache: what a follower sends as
    /// its last fetched epoch.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.read_state().epochs.latest_epoch()
    }

    /// The epoch cache's `(epoch, start_offset)` entries, oldest first (for
    /// diagnostics and tests).
    pub fn epoch_entries(&self) -> Vec<(u32, u64)> {
        self.read_state().epochs.entries().to_vec()
    }

    /// The high watermark: offsets below it are committed (replicated to the
    /// ISR) and visible to consumers.
    pub fn high_watermark(&self) -> u64 {
        self.read_state().high_watermark
    }

    /// Sets the high watermark, clamped to `[log start, log end]`; returns
    /// the value set. In memory only: it reaches disk with the next
    /// checkpoint (flush, roll, truncation, retention, close). Whether it may
    /// go down is the caller's policy.
    pub fn set_high_watermark(&self, hw: u64) -> u64 {
        let mut st = self.write_state();
        let hw = hw.clamp(st.log_start_offset, st.log_end());
        st.high_watermark = hw;
        hw
    }

    /// Validates a follower append before anything is written.
    fn check_follower_batches(&self, st: &LogState, batches: &[RecordBatch], end: u64) -> Result<()> {
        // Entries at or past the end hold no data (an epoch assigned while
        // this replica led, never written); the leader's batches supersede
        // them.
        let mut data_epochs = st.epochs.clone();
        data_epochs.truncate_from_end(end);
        let mut floor = data_epochs.latest_epoch();
        let mut expected = end;
        for batch in batches {
            let h = batch.header();
            // A compacted leader log has gaps between batches (records the
            // cleaner removed): a batch may start past the expected offset,
            // never before it.
            if h.base_offset < expected {
                return Err(StorageError::UnexpectedAppendOffset { expected, actual: h.base_offset });
            }
            let next = h.base_offset.checked_add(u64::from(h.last_offset_delta) + 1);
            expected = match next {
                Some(n) if n <= MAX_OFFSET => n,
                _ => {
                    return Err(StorageError::InvalidArgument {
                        what: "append",
                        reason: format!("batch at {} runs past the largest offset", h.base_offset),
                    })
                }
            };
            let epoch = h.partition_leader_epoch;
            if let Some(latest) = floor.filter(|&l| epoch < l) {
                return Err(StorageError::StaleLeaderEpoch { epoch, latest });
            }
            floor = Some(epoch);
        }
        Ok(())
    }

    /// A leader append in `epoch` at `offset` (the log end): records the
    /// epoch if it is newer than the cache's latest. An older one is not
    /// refused here (as in Kafka, fencing a stale leader is the
    /// partition's job, and a log whose epoch field was damaged on disk
    /// must stay writable); it only leaves the cache as it is.
    pub(crate) fn note_leader_append_epoch(&self, st: &mut LogState, epoch: u32, offset: u64) -> Result<()> {
        if st.epochs.latest_epoch().is_none_or(|l| epoch > l) {
            self.ensure_epoch(st, epoch, offset)?;
        }
        Ok(())
    }

    /// Makes the cache hold `epoch` from `offset` (the log end) on, durably,
    /// before data in it is written: a crash then leaves at worst an entry
    /// at the end, which opening drops. On error the cache is unchanged.
    fn ensure_epoch(&self, st: &mut LogState, epoch: u32, offset: u64) -> Result<()> {
        if st.epochs.latest_epoch() == Some(epoch) && !st.epochs_file_ahead {
            return Ok(());
        }
        let mut next = st.epochs.clone();
        if next.latest_epoch().is_some_and(|l| l > epoch) {
            // Only data-less entries at the end can be newer (the follower
            // path checked): drop them rather than let `assign` cut real
            // ones.
            next.truncate_from_end(offset);
        }
        next.assign(epoch, offset);
        if next != st.epochs || st.epochs_file_ahead {
            next.write(&self.dir)?;
            tracing::debug!(dir = %self.dir.display(), epoch, offset, "leader epoch recorded");
            st.epochs = next;
            st.epochs_file_ahead = false;
        }
        Ok(())
    }

    /// After the log was truncated to `end`: drops cache entries from `end`
    /// on. The in-memory cache changes even if persisting fails (the file is
    /// then only ahead of the log, which opening repairs).
    pub(crate) fn truncate_epochs_from_end(&self, st: &mut LogState, end: u64) -> Result<()> {
        if st.epochs.truncate_from_end(end) || st.epochs_file_ahead {
            st.epochs.write(&self.dir)?;
            st.epochs_file_ahead = false;
        }
        Ok(())
    }

    /// After the log start offset moved up: drops cache entries below it.
    pub(crate) fn truncate_epochs_from_start(&self, st: &mut LogState) -> Result<()> {
        if st.epochs.truncate_from_start(st.log_start_offset) || st.epochs_file_ahead {
            st.epochs.write(&self.dir)?;
            st.epochs_file_ahead = false;
        }
        Ok(())
    }
}

/// Loads the epoch cache for a freshly loaded log: the checkpoint, trimmed
/// to `[log_start, log_end)`, if it agrees with the batch headers; otherwise
/// one rebuilt from them (returned with the reason, which is logged). The
/// flag says the file was left holding entries the trim dropped: rewriting
/// it here would cost every empty partition two fsyncs at each start (its
/// epoch is assigned at the log end), and the next epoch write replaces it
/// anyway; until then every open trims the same entries again.
pub(crate) fn load_epoch_cache(
    dir: &Path,
    segments: &[LogSegment],
    log_start: u64,
    log_end: u64,
) -> Result<(LeaderEpochCache, Option<String>, bool)> {
    let (reason, missing) = match LeaderEpochCache::read(dir)? {
        CacheFile::Missing => ("the leader-epoch checkpoint is missing".to_string(), true),
        CacheFile::Invalid(why) => (format!("the leader-epoch checkpoint is unreadable: {why}"), false),
        CacheFile::Found(stored) => {
            let mut cache = stored.clone();
            cache.truncate_from_start(log_start);
            cache.truncate_from_end(log_end);
            match check_against_log(&cache, segments, log_start, log_end)? {
                Ok(()) => {
                    let ahead = cache != stored;
                    if ahead {
                        tracing::debug!(dir = %dir.display(), ?stored, kept = ?cache.entries(), "trimmed leader-epoch cache to the log");
                    }
                    return Ok((cache, None, ahead));
                }
                Err(why) => (format!("the leader-epoch checkpoint disagrees with the log: {why}"), false),
            }
        }
    };
    let rebuilt = rebuild_from_log(segments, log_start, log_end)?;
    if missing && rebuilt.is_empty() {
        // A new (or empty) log: nothing to rebuild, nothing to report.
        return Ok((rebuilt, None, false));
    }
    tracing::warn!(dir = %dir.display(), %reason, entries = ?rebuilt.entries(), "rebuilt leader-epoch cache from the log");
    rebuilt.write(dir)?;
    Ok((rebuilt, Some(reason), false))
}

/// The cache a scan of the batch headers gives: an entry at each epoch
/// increase, trimmed to `[log_start, log_end)`.
fn rebuild_from_log(segments: &[LogSegment], log_start: u64, log_end: u64) -> Result<LeaderEpochCache> {
    let mut cache = LeaderEpochCache::new();
    for seg in segments {
        let bytes = seg.bytes()?;
        let mut pos = 0u64;
        while pos < bytes.len() as u64 {
            let h = seg.header_at(&bytes, pos)?;
            cache.observe_batch(h.partition_leader_epoch, h.base_offset);
            pos += h.total_len() as u64;
        }
    }
    cache.truncate_from_start(log_start);
    cache.truncate_from_end(log_end);
    Ok(cache)
}

/// Whether `cache` (already trimmed to the log) is what a rebuild would
/// give, cheaply: for each entry, the batches at both ends of its range have
/// its epoch, and it starts at a batch boundary (or at the log start). With
/// epochs never decreasing in the log, that pins every epoch change.
fn check_against_log(
    cache: &LeaderEpochCache,
    segments: &[LogSegment],
    log_start: u64,
    log_end: u64,
) -> Result<std::result::Result<(), String>> {
    let entries = cache.entries();
    if log_start >= log_end {
        return Ok(Ok(()));
    }
    let Some(&(_, first_start)) = entries.first() else {
        return Ok(Err(format!("no entries, but the log holds offsets [{log_start}, {log_end})")));
    };
    if first_start != log_start {
        return Ok(Err(format!("the first entry starts at {first_start}, the log at {log_start}")));
    }
    for (i, &(epoch, start)) in entries.iter().enumerate() {
        let end = entries.get(i + 1).map_or(log_end, |e| e.1);
        let Some(first) = batch_holding(segments, start)? else {
            return Ok(Err(format!("no batch holds offset {start}")));
        };
        let Some(last) = batch_holding(segments, end - 1)? else {
            return Ok(Err(format!("no batch holds offset {}", end - 1)));
        };
        if i > 0 && first.base_offset != start {
            return Ok(Err(format!("epoch {epoch} starts at {start}, inside the batch at {}", first.base_offset)));
        }
        for h in [first, last] {
            if h.partition_leader_epoch != epoch {
                return Ok(Err(format!(
                    "the batch at {} has epoch {}, the cache says {epoch}",
                    h.base_offset, h.partition_leader_epoch
                )));
            }
        }
    }
    Ok(Ok(()))
}

/// Header of the batch holding `offset`, if any.
fn batch_holding(segments: &[LogSegment], offset: u64) -> Result<Option<BatchHeader>> {
    let i = segments.partition_point(|s| s.base_offset() <= offset).saturating_sub(1);
    let Some(seg) = segments.get(i) else {
        return Ok(None);
    };
    let bytes = seg.bytes()?;
    Ok(seg.find(offset, &bytes)?.map(|(_, h)| h))
}
