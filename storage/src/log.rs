//! `Log`: one partition's append-only log: an ordered run of segments, the
//! offsets that bound it, and the durability policy. Safe to share between
//! threads: appends serialize on a write lock, reads take a read lock only
//! long enough to slice a mapping, and fsyncs run outside both.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use strata_record::batch::{self, BatchHeader, RecordBatch, HEADER_LEN};

use crate::checkpoint::{self, LogCheckpoint};
use crate::clock::{Clock, SystemClock};
use crate::config::{FlushPolicy, LogConfig};
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{Result, StorageError};
use crate::file_io;
use crate::loader::{self, RecoveryReport};
use crate::log_replica;
use crate::producer_state::{self, NewProducers, ProducerStateManager};
use crate::segment::{self, LogSegment};

/// Largest offset a log holds (offsets are signed 64-bit on Kafka's wire).
pub(crate) const MAX_OFFSET: u64 = i64::MAX as u64;

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the batch's first record.
    pub first_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
}

/// Whole batches read from the log, as stored.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Back-to-back batches, a zero-copy slice of the segment mapping. Empty
    /// when there is nothing at or after the requested offset yet.
    pub batches: Bytes,
    /// Offset after the last batch returned (where the next read starts).
    pub next_offset: u64,
    /// First offset in the log.
    pub log_start_offset: u64,
    /// Offset the next append gets.
    pub log_end_offset: u64,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionResult {
    /// Segments removed.
    pub segments_deleted: usize,
    /// Bytes freed.
    pub bytes_deleted: u64,
}

/// A partition log on disk.
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    state: RwLock<LogState>,
    flush: Mutex<FlushState>,
    flushed: Condvar,
    report: RecoveryReport,
}

#[derive(Debug)]
pub(crate) struct LogState {
    pub(crate) config: LogConfig,
    /// Ordered by base offset; the last is the active segment.
    pub(crate) segments: Vec<LogSegment>,
    pub(crate) log_start_offset: u64,
    /// The leader-epoch cache, as persisted (see `log_replica`).
    pub(crate) epochs: LeaderEpochCache,
    /// The checkpoint file still holds entries opening trimmed in memory
    /// only (an epoch assigned at the log end and never written in): every
    /// open trims them again, and the next epoch write rewrites the file.
    pub(crate) epochs_file_ahead: bool,
    /// In [log_start_offset, log end]; persisted with the checkpoint.
    pub(crate) high_watermark: u64,
    /// Offsets below this were cleaned by the compaction pass (kept in
    /// `cleaner-offset-checkpoint`, so a restart does not clean it all again).
    pub(crate) cleaned_up_to: u64,
    /// Idempotent producers' state as of the log end.
    pub(crate) producers: ProducerStateManager,
}

#[derive(Debug)]
struct FlushState {
    /// Every offset below this is on stable storage (the recovery point).
    durable: u64,
    /// A sync is running.
    flushing: bool,
    /// Bumped by truncation, so a sync that raced it does not claim
    /// offsets that no longer exist.
    generation: u64,
    last_flush_ms: i64,
    /// Set by a failed fsync: the log takes no more writes.
    error: Option<String>,
}

impl Log {
    /// Opens the log in `dir`, creating it if needed and recovering it after
    /// a crash.
    pub fn open(dir: impl Into<PathBuf>, config: LogConfig) -> Result<Self> {
        Self::open_with_clock(dir, config, Arc::new(SystemClock))
    }

    /// [`Log::open`] with an injected clock (for roll and retention by age).
    pub fn open_with_clock(dir: impl Into<PathBuf>, config: LogConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        let dir = dir.into();
        let mut loaded = loader::load(&dir, &config)?;
        let log_end = loaded.segments.last().map_or(0, |s| s.next_offset());
        let (epochs, rebuilt, epochs_file_ahead) =
            log_replica::load_epoch_cache(&dir, &loaded.segments, loaded.log_start_offset, log_end)?;
        loaded.report.epoch_cache_rebuilt = rebuilt;
        let producers = ProducerStateManager::load(&dir, &loaded.segments, loaded.log_start_offset, log_end)?;
        let cleaned_up_to = crate::cleaner::read_cleaned_up_to(&dir, log_end);
        let now = clock.now_ms();
        Ok(Log {
            dir,
            clock,
            state: RwLock::new(LogState {
                config,
                segments: loaded.segments,
                log_start_offset: loaded.log_start_offset,
                epochs,
                epochs_file_ahead,
                high_watermark: loaded.high_watermark,
                producers,
                cleaned_up_to,
            }),
            flush: Mutex::new(FlushState {
                durable: log_end,
                flushing: false,
                generation: 0,
                last_flush_ms: now,
                error: None,
            }),
            flushed: Condvar::new(),
            report: loaded.report,
        })
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening the log found (clean shutdown, scans, truncation).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The settings in force.
    pub fn config(&self) -> LogConfig {
        self.read_state().config.clone()
    }

    /// Replaces the settings (topic config change). Applies from the next
    /// append or retention pass.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        self.write_state().config = config;
        Ok(())
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.read_state().log_start_offset
    }

    /// Offset the next appended record gets.
    pub fn log_end_offset(&self) -> u64 {
        self.read_state().log_end()
    }

    /// Every offset below this is on stable storage.
    pub fn recovery_point(&self) -> u64 {
        self.lock_flush().durable
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.read_state().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.read_state().segments.iter().map(|s| s.base_offset()).collect()
    }

    /// Bytes held by all segments.
    pub fn size_bytes(&self) -> u64 {
        self.read_state().segments.iter().map(|s| s.size()).sum()
    }

    /// What the log holds of idempotent producer `producer_id` (epoch, last
    /// batches), if anything.
    pub fn producer_entry(&self, producer_id: i64) -> Option<crate::ProducerEntry> {
        self.read_state().producers.entry(producer_id).cloned()
    }

    /// How many idempotent producers have state in this log.
    pub fn producer_count(&self) -> usize {
        self.read_state().producers.len()
    }

    /// Validates `batch` and appends it, assigning offsets from the log end:
    /// `base_offset` and `partition_leader_epoch` are rewritten in place on
    /// the way to disk (they are outside the CRC). An invalid batch changes
    /// nothing. A `leader_epoch` newer than the epoch cache's latest is
    /// recorded there (durably) at the batch's offset first. Returns once
    /// the flush policy's durability is met.
    pub fn append(&self, batch: &[u8], leader_epoch: u32) -> Result<AppendInfo> {
        // Validate (CRC and all) before taking the write lock: readers and
        // other appenders are not held up by it.
        let max_batch_bytes = self.read_state().config.max_batch_bytes;
        let header = batch::validate(batch, max_batch_bytes)?;
        self.append_validated(&[(header, batch)], leader_epoch, NewProducers::StartAtZero)
    }

    /// Appends batches that were validated when their [`RecordBatch`] was
    /// built (a produce request's), under one lock and with one durability
    /// wait for all of them. Checks only the size limit: if any batch is too
    /// large, nothing is appended.
    pub fn append_batches(&self, batches: &[RecordBatch], leader_epoch: u32) -> Result<AppendInfo> {
        self.append_batches_with(batches, leader_epoch, NewProducers::StartAtZero)
    }

    /// [`Log::append_batches`], choosing how the first batch of a producer
    /// the log does not know is treated (see [`NewProducers`]).
    pub fn append_batches_with(
        &self,
        batches: &[RecordBatch],
        leader_epoch: u32,
        new: NewProducers,
    ) -> Result<AppendInfo> {
        let parts: Vec<(BatchHeader, &[u8])> = batches.iter().map(|b| (*b.header(), &b.bytes()[..])).collect();
        self.append_validated(&parts, leader_epoch, new)
    }

    /// [`Log::append_batches_with`] without the durability wait, for a
    /// caller that must not block on an fsync (an async task): returns where
    /// the batches landed and, when the flush policy asks for one, the
    /// gathering delay to pass to [`Log::wait_durable_for`] before
    /// acknowledging them.
    pub fn append_batches_unsynced(
        &self,
        batches: &[RecordBatch],
        leader_epoch: u32,
        new: NewProducers,
    ) -> Result<(AppendInfo, Option<Duration>)> {
        let parts: Vec<(BatchHeader, &[u8])> = batches.iter().map(|b| (*b.header(), &b.bytes()[..])).collect();
        let (info, delay) = self.append_unsynced(&parts, leader_epoch, new)?;
        let info = info.ok_or(StorageError::InvalidArgument { what: "append", reason: "no batches given".into() })?;
        Ok((info, delay))
    }

    /// Blocks until the batches of `info` are durable (group commit), as
    /// [`Log::append_batches_with`] does before it returns.
    pub fn wait_durable_for(&self, info: &AppendInfo, delay: Duration) -> Result<()> {
        self.wait_durable(info.last_offset + 1, delay)
    }

    fn append_validated(
        &self,
        batches: &[(BatchHeader, &[u8])],
        leader_epoch: u32,
        new: NewProducers,
    ) -> Result<AppendInfo> {
        let (info, delay) = self.append_unsynced(batches, leader_epoch, new)?;
        self.finish_append(info, delay)
    }

    /// Appends under the write lock; the durability wait the flush policy
    /// asks for (its delay) is the caller's.
    fn append_unsynced(
        &self,
        batches: &[(BatchHeader, &[u8])],
        leader_epoch: u32,
        new: NewProducers,
    ) -> Result<(Option<AppendInfo>, Option<Duration>)> {
        let delay;
        let mut info: Option<AppendInfo> = None;
        {
            let mut st = self.write_state();
            let max = st.config.max_batch_bytes;
            if let Some((_, big)) = batches.iter().find(|(_, b)| b.len() > max) {
                return Err(batch::BatchError::TooLarge { size: big.len(), max }.into());
            }
            self.check_writable()?;
            let records: u64 = batches.iter().map(|(h, _)| u64::from(h.last_offset_delta) + 1).sum();
            let base = st.log_end();
            if base.checked_add(records).is_none_or(|next| next > MAX_OFFSET) {
                return Err(StorageError::InvalidArgument {
                    what: "append",
                    reason: format!("the log's offsets are exhausted at {base}"),
                });
            }
            if let Some(dup) = st.producers.check_append(batches.iter().map(|(h, _)| h), new)? {
                // A retry of a batch already in the log: its original place.
                let info = AppendInfo {
                    first_offset: dup.first_offset,
                    last_offset: dup.last_offset,
                    max_timestamp: dup.max_timestamp,
                };
                delay = st.config.group_delay();
                drop(st);
                return Ok((Some(info), delay));
            }
            if !batches.is_empty() {
                self.note_leader_append_epoch(&mut st, leader_epoch, base)?;
            }
            for (header, bytes) in batches {
                let base = st.log_end();
                let mut h = *header;
                h.base_offset = base;
                h.partition_leader_epoch = leader_epoch;
                let mut head = [0u8; HEADER_LEN];
                head.copy_from_slice(&bytes[..HEADER_LEN]);
                batch::set_base_offset(&mut head, base)?;
                batch::set_partition_leader_epoch(&mut head, leader_epoch)?;
                self.write_batch(&mut st, &[&head, &bytes[HEADER_LEN..]], &h, &mut info)?;
            }
            delay = st.config.group_delay();
        }
        Ok((info, delay))
    }

    /// Writes one batch (its header `h` already final, its bytes in `parts`)
    /// at the log end, rolling first if due, and folds it into `info`.
    pub(crate) fn write_batch(
        &self,
        st: &mut LogState,
        parts: &[&[u8]],
        h: &BatchHeader,
        info: &mut Option<AppendInfo>,
    ) -> Result<()> {
        self.maybe_roll(st, h)?;
        let prealloc = st.config.preallocate_bytes;
        let now = self.clock.now_ms();
        st.active_mut().append(parts, h, prealloc, now)?;
        // A panic here (tests inject one) leaves the segment holding a batch
        // the log end does not count: the lock-poisoning policy must keep
        // that state from being seen.
        fail::fail_point!("storage::after_segment_append");
        st.producers.update(h);
        let first_offset = info.map_or(h.base_offset, |i| i.first_offset);
        let max_timestamp = info.map_or(h.max_timestamp, |i| i.max_timestamp.max(h.max_timestamp));
        *info = Some(AppendInfo { first_offset, last_offset: h.last_offset(), max_timestamp });
        Ok(())
    }

    /// After the write lock is released: waits for the durability the
    /// flush policy asks (`delay`) and returns where the batches landed.
    pub(crate) fn finish_append(&self, info: Option<AppendInfo>, delay: Option<Duration>) -> Result<AppendInfo> {
        let info = info.ok_or(StorageError::InvalidArgument { what: "append", reason: "no batches given".into() })?;
        if let Some(delay) = delay {
            self.wait_durable(info.last_offset + 1, delay)?;
        }
        Ok(info)
    }

    /// Whether a read at `offset` starts in a sealed segment, whose pages may
    /// have left the page cache and whose mapping may have to be opened: a
    /// server reads it where blocking is allowed and [`crate::fault_in`]s
    /// the result before writing it to a socket.
    pub fn reads_sealed_segment(&self, offset: u64) -> bool {
        offset < self.read_state().active().base_offset()
    }

    /// Reads whole batches starting with the one that holds `from_offset`,
    /// up to about `max_bytes` (at least one batch, so a consumer always
    /// progresses), from one segment.
    pub fn read(&self, from_offset: u64, max_bytes: usize) -> Result<ReadResult> {
        self.read_up_to(from_offset, max_bytes, u64::MAX)
    }

    /// Like [`Log::read`], but returns only batches wholly below
    /// `max_offset` (the high watermark, for consumers).
    pub fn read_up_to(&self, from_offset: u64, max_bytes: usize, max_offset: u64) -> Result<ReadResult> {
        self.check_not_poisoned()?;
        let st = self.read_state();
        let (log_start_offset, log_end_offset) = (st.log_start_offset, st.log_end());
        if from_offset < log_start_offset || from_offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset: from_offset,
                log_start: log_start_offset,
                log_end: log_end_offset,
            });
        }
        let empty = ReadResult { batches: Bytes::new(), next_offset: from_offset, log_start_offset, log_end_offset };
        if from_offset == log_end_offset || from_offset >= max_offset {
            return Ok(empty);
        }
        // A compacted segment may end before the next one starts (its last
        // records were cleaned away): the read continues in the next one.
        let mut i = st.segments.partition_point(|s| s.base_offset() <= from_offset).saturating_sub(1);
        let (seg, bytes, start) = loop {
            let seg = &st.segments[i];
            let bytes = seg.bytes()?;
            match seg.find(from_offset, &bytes)? {
                Some((start, _)) => break (seg, bytes, start),
                None if i + 1 < st.segments.len() => i += 1,
                None => return Ok(empty),
            }
        };
        let from_offset = from_offset.max(seg.base_offset());
        let (mut pos, mut next_offset) = (start, from_offset);
        while pos < bytes.len() as u64 {
            let h = seg.header_at(&bytes, pos)?;
            let len = h.total_len() as u64;
            if h.last_offset() >= max_offset || (pos > start && pos - start + len > max_bytes as u64) {
                break;
            }
            pos += len;
            next_offset = h.next_offset();
        }
        Ok(ReadResult {
            batches: bytes.slice(start as usize..pos as usize),
            next_offset,
            log_start_offset,
            log_end_offset,
        })
    }

    /// The largest record timestamp in the log and the first record that
    /// carries it (Kafka's ListOffsets MAX_TIMESTAMP, KIP-734); `None` for a
    /// log without records.
    pub fn max_timestamp_offset(&self) -> Result<Option<(u64, i64)>> {
        let max = self.read_state().segments.iter().map(|s| s.max_timestamp()).max();
        match max {
            Some(ts) if ts != i64::MIN => self.offset_for_timestamp(ts),
            _ => Ok(None),
        }
    }

    /// The first offset whose record timestamp is at least `timestamp`, with
    /// that record's timestamp; `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(u64, i64)>> {
        let st = self.read_state();
        for seg in st.segments.iter().filter(|s| s.max_timestamp() >= timestamp) {
            let from = seg.time_floor(timestamp)?.unwrap_or(seg.base_offset()).max(st.log_start_offset);
            let bytes = seg.bytes()?;
            let Some((mut pos, _)) = seg.find(from, &bytes)? else {
                continue;
            };
            while pos < bytes.len() as u64 {
                let h = seg.header_at(&bytes, pos)?;
                let end = pos + h.total_len() as u64;
                if h.max_timestamp >= timestamp && h.last_offset() >= st.log_start_offset {
                    let batch =
                        RecordBatch::stored(bytes.slice(pos as usize..end as usize), usize::MAX).map_err(|e| {
                            StorageError::CorruptSegment {
                                path: seg.path().to_path_buf(),
                                position: pos,
                                reason: e.to_string(),
                            }
                        })?;
                    for rec in batch.records() {
                        let rec = rec.map_err(|e| StorageError::CorruptSegment {
                            path: seg.path().to_path_buf(),
                            position: pos,
                            reason: e.to_string(),
                        })?;
                        if rec.offset >= st.log_start_offset && rec.timestamp >= timestamp {
                            return Ok(Some((rec.offset, rec.timestamp)));
                        }
                    }
                }
                pos = end;
            }
        }
        Ok(None)
    }

    /// Removes every record at or after `offset` (from the start of the
    /// batch holding it, so the new end is a batch boundary ≤ `offset`).
    /// Replication uses it to cut a divergent suffix. Returns the new log
    /// end offset.
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        let mut st = self.write_state();
        if offset >= st.log_end() {
            return Ok(st.log_end());
        }
        if offset < st.log_start_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: st.log_start_offset,
                log_end: st.log_end(),
            });
        }
        let keep = st.segments.partition_point(|s| s.base_offset() < offset).max(1);
        let removed = st.segments.split_off(keep);
        let new_end = st.active_mut().truncate_to(offset)?;
        // Cutting at a batch boundary can land below the log start offset.
        st.log_start_offset = st.log_start_offset.min(new_end);
        st.high_watermark = st.high_watermark.min(new_end);
        for seg in &removed {
            delete_segment_files(&self.dir, seg.base_offset());
        }
        file_io::sync_dir(&self.dir)?;
        let recovery_point = {
            let mut fs = self.lock_flush();
            fs.durable = fs.durable.min(new_end);
            fs.generation += 1;
            fs.durable
        };
        self.write_checkpoint(&st, recovery_point)?;
        // After the log: a crash in between leaves entries past the end,
        // which opening drops.
        self.truncate_epochs_from_end(&mut st, new_end)?;
        producer_state::remove_snapshots(&self.dir, |o| o > new_end)?;
        st.producers = ProducerStateManager::load(&self.dir, &st.segments, st.log_start_offset, new_end)?;
        tracing::info!(dir = %self.dir.display(), offset, new_end, "log truncated");
        Ok(new_end)
    }

    /// Drops every record and restarts the log, empty, at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose end is below its
    /// leader's log start (retention or compaction removed what it still
    /// needs) cannot catch up by fetching and starts over from there.
    /// `offset` must be beyond the current end.
    pub fn truncate_fully_and_start_at(&self, offset: u64) -> Result<()> {
        let mut st = self.write_state();
        if offset <= st.log_end() {
            return Err(StorageError::InvalidArgument {
                what: "restart offset",
                reason: format!("{offset} is not beyond the log end {}", st.log_end()),
            });
        }
        // The new segment first: if that fails (a full disk), the log is as it was.
        let seg = LogSegment::create(&self.dir, offset, st.config.index_interval_bytes).inspect_err(|_| {
            delete_segment_files(&self.dir, offset);
        })?;
        let removed = std::mem::replace(&mut st.segments, vec![seg]);
        st.log_start_offset = offset;
        st.high_watermark = offset;
        file_io::sync_dir(&self.dir)?;
        let recovery_point = {
            let mut fs = self.lock_flush();
            fs.durable = offset;
            fs.generation += 1;
            fs.durable
        };
        self.write_checkpoint(&st, recovery_point)?;
        // After the checkpoint: a crash in between leaves epoch entries and
        // segments below the log start, which opening drops.
        if st.epochs.truncate_from_end(0) || st.epochs_file_ahead {
            st.epochs.write(&self.dir)?;
            st.epochs_file_ahead = false;
        }
        st.producers = ProducerStateManager::new();
        producer_state::remove_snapshots(&self.dir, |_| true)?;
        for old in &removed {
            delete_segment_files(&self.dir, old.base_offset());
        }
        drop(removed);
        file_io::sync_dir(&self.dir)?;
        tracing::warn!(dir = %self.dir.display(), offset, "log emptied and restarted at the leader's log start");
        Ok(())
    }

    /// Raises the log start offset to `offset` (Kafka's DeleteRecords) and
    /// deletes segments wholly below it. Reads below it fail from now on.
    pub fn delete_before(&self, offset: u64) -> Result<RetentionResult> {
        let mut st = self.write_state();
        if offset > st.log_end() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: st.log_start_offset,
                log_end: st.log_end(),
            });
        }
        if offset > st.log_start_offset {
            st.log_start_offset = offset;
        }
        self.delete_old_segments(&mut st, |_| false)
    }

    /// Deletes whole old segments beyond `retention_bytes` or older than
    /// `retention_ms` (never the only segment; an expired active segment is
    /// rolled first so it can go).
    pub fn enforce_retention(&self) -> Result<RetentionResult> {
        let now = self.clock.now_ms();
        let mut st = self.write_state();
        let expiration = st.config.producer_id_expiration_ms;
        let expired_producers = st.producers.expire(now, expiration);
        if expired_producers > 0 {
            tracing::debug!(dir = %self.dir.display(), expired_producers, "idle producers' state expired");
        }
        let (by_bytes, by_ms) = (st.config.retention_bytes, st.config.retention_ms);
        let expired = move |seg: &LogSegment| {
            by_ms.is_some_and(|ms| {
                !seg.is_empty() && seg.max_timestamp() < now.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX))
            })
        };
        if st.segments.iter().all(&expired) {
            let end = st.log_end();
            self.roll(&mut st, end)?;
        }
        let mut total: u64 = st.segments.iter().map(|s| s.size()).sum();
        self.delete_old_segments(&mut st, |seg| {
            let over = by_bytes.is_some_and(|limit| total.saturating_sub(seg.size()) >= limit);
            let go = over || expired(seg);
            if go {
                total -= seg.size();
            }
            go
        })
    }

    /// Deletes the oldest sealed segments while `doomed` says so, or while
    /// they lie wholly below the log start offset; then checkpoints.
    fn delete_old_segments(
        &self,
        st: &mut LogState,
        mut doomed: impl FnMut(&LogSegment) -> bool,
    ) -> Result<RetentionResult> {
        let mut n = 0;
        while n + 1 < st.segments.len() {
            let next_base = st.segments[n + 1].base_offset();
            if next_base <= st.log_start_offset || doomed(&st.segments[n]) {
                n += 1;
            } else {
                break;
            }
        }
        let removed: Vec<LogSegment> = st.segments.drain(..n).collect();
        if let Some(first) = st.segments.first() {
            st.log_start_offset = st.log_start_offset.max(first.base_offset());
        }
        st.high_watermark = st.high_watermark.max(st.log_start_offset);
        let recovery_point = self.lock_flush().durable;
        self.write_checkpoint(st, recovery_point)?;
        // After the checkpoint: a crash in between leaves entries below the
        // log start, which opening drops.
        self.truncate_epochs_from_start(st)?;
        if let Some(first) = st.segments.first().map(|s| s.base_offset()) {
            producer_state::remove_snapshots(&self.dir, |o| o < first)?;
        }
        let mut result = RetentionResult::default();
        for seg in &removed {
            result.segments_deleted += 1;
            result.bytes_deleted += seg.size();
            delete_segment_files(&self.dir, seg.base_offset());
        }
        if !removed.is_empty() {
            file_io::sync_dir(&self.dir)?;
            tracing::info!(dir = %self.dir.display(), ?result, log_start_offset = st.log_start_offset, "deleted old segments");
        }
        Ok(result)
    }

    /// Forces everything appended so far to stable storage; returns the new
    /// recovery point.
    ///
    /// Unlike the syncs group commit makes per append, an explicit flush
    /// also writes the recovery-point checkpoint, so after a crash the
    /// flushed bytes are known to have been durable: damage there is
    /// reported as corruption, never cut off as a torn tail.
    pub fn flush(&self) -> Result<u64> {
        let end = self.log_end_offset();
        self.wait_durable(end, Duration::ZERO)?;
        self.checkpoint()?;
        Ok(self.recovery_point())
    }

    /// Flushes if the `interval` policy's time has come; the `LogManager`'s
    /// background flusher calls it.
    pub fn flush_if_due(&self) -> Result<bool> {
        let FlushPolicy::Interval { interval_ms } = self.read_state().config.flush else {
            return Ok(false);
        };
        let due = self.lock_flush().last_flush_ms.saturating_add(i64::try_from(interval_ms).unwrap_or(i64::MAX))
            <= self.clock.now_ms();
        if due && self.recovery_point() < self.log_end_offset() {
            self.flush()?;
        }
        Ok(due)
    }

    /// Writes the recovery-point checkpoint, bounding the next recovery to
    /// what was written since the last flush.
    pub fn checkpoint(&self) -> Result<()> {
        let st = self.read_state();
        let recovery_point = self.lock_flush().durable;
        self.write_checkpoint(&st, recovery_point)
    }

    /// Drops cached mappings of sealed segments (they are remapped on
    /// demand), bounding mappings held by cold partitions.
    pub fn release_cold_mappings(&self) {
        let st = self.read_state();
        for seg in &st.segments[..st.segments.len().saturating_sub(1)] {
            seg.release_maps();
        }
    }

    /// Clean shutdown: flush, trim the active segment, checkpoint, and write
    /// the marker that lets the next open skip recovery.
    pub fn close(self) -> Result<()> {
        self.flush()?;
        let mut st = self.write_state();
        st.active_mut().trim()?;
        if let Some(f) = st.active_mut().writer() {
            file_io::sync_data(&f, st.active_mut().path())?;
        }
        let recovery_point = st.log_end();
        self.write_checkpoint(&st, recovery_point)?;
        checkpoint::write_clean_marker(&self.dir)
    }

    pub(crate) fn maybe_roll(&self, st: &mut LogState, h: &BatchHeader) -> Result<()> {
        let cfg = &st.config;
        let active = st.active();
        if active.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let too_big = active.size() + h.total_len() as u64 > cfg.segment_bytes;
        let too_old = active.rolling_timestamp().is_some_and(|t| now.saturating_sub(t.min(now)) > cfg.segment_ms_i64());
        let index_full = active.index_entries()? as u64 >= cfg.max_index_entries;
        let offsets_overflow = h.last_offset() - active.base_offset() > u64::from(u32::MAX);
        if too_big || too_old || index_full || offsets_overflow {
            self.roll(st, h.base_offset)?;
        }
        Ok(())
    }

    /// Seals the active segment (synced: sealed segments are always durable)
    /// and starts a new one at `base_offset`.
    fn roll(&self, st: &mut LogState, base_offset: u64) -> Result<()> {
        if st.active().is_empty() {
            return Ok(());
        }
        // Create the next segment first: if that fails (a full disk), the
        // current one is untouched and stays active.
        let seg = match LogSegment::create(&self.dir, base_offset, st.config.index_interval_bytes) {
            Ok(seg) => seg,
            Err(e) => {
                delete_segment_files(&self.dir, base_offset);
                return Err(e);
            }
        };
        if let Err(e) = st.active_mut().seal() {
            // Half-sealed, with durability unknown (fsync semantics after an
            // error): take no more writes until the log is reopened, which
            // recovers it.
            drop(seg);
            delete_segment_files(&self.dir, base_offset);
            self.lock_flush().error.get_or_insert_with(|| format!("sealing a segment failed: {e}"));
            return Err(e);
        }
        let sealed_end = st.active().next_offset();
        st.segments.push(seg);
        file_io::sync_dir(&self.dir)?;
        let recovery_point = {
            let mut fs = self.lock_flush();
            fs.durable = fs.durable.max(sealed_end);
            fs.durable
        };
        self.write_checkpoint(st, recovery_point)?;
        // The producer state as of the new segment's start: reopening or
        // truncating replays from here instead of from the log start.
        st.producers.write_snapshot(&self.dir, base_offset)?;
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled to a new segment");
        Ok(())
    }

    /// Blocks until every offset below `target` is durable, leading a sync
    /// if none is running (group commit: one fdatasync covers every append
    /// made before it started).
    pub(crate) fn wait_durable(&self, target: u64, delay: Duration) -> Result<()> {
        let mut fs = self.lock_flush();
        loop {
            if let Some(reason) = &fs.error {
                return Err(StorageError::LogFailed { path: self.dir.clone(), reason: reason.clone() });
            }
            if fs.durable >= target {
                return Ok(());
            }
            if fs.flushing {
                fs = self.flushed.wait(fs).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            fs.flushing = true;
            drop(fs);
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let synced = self.sync_active();
            fs = self.lock_flush();
            fs.flushing = false;
            fs.last_flush_ms = self.clock.now_ms();
            match synced {
                Ok((end, generation)) if generation == fs.generation => fs.durable = fs.durable.max(end),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(dir = %self.dir.display(), error = %strata_record::ErrorChain(&e), "fsync failed; the log refuses further writes");
                    fs.error = Some(e.to_string());
                }
            }
            self.flushed.notify_all();
        }
    }

    /// Writes the recovery-point checkpoint with the state's log start
    /// offset and high watermark.
    fn write_checkpoint(&self, st: &LogState, recovery_point: u64) -> Result<()> {
        LogCheckpoint { recovery_point, log_start_offset: st.log_start_offset, high_watermark: Some(st.high_watermark) }
            .write(&self.dir)
    }

    fn sync_active(&self) -> Result<(u64, u64)> {
        let (writer, path, end, generation) = {
            let st = self.read_state();
            let generation = self.lock_flush().generation;
            (st.active().writer(), st.active().path().to_path_buf(), st.log_end(), generation)
        };
        if let Some(f) = writer {
            file_io::sync_data(&f, &path)?;
        }
        Ok((end, generation))
    }

    /// Refuses writes to a log that failed: a failed fsync (its pages may
    /// be lost), or a panic while its state was being changed.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_not_poisoned()?;
        match &self.lock_flush().error {
            Some(reason) => Err(StorageError::LogFailed { path: self.dir.clone(), reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// The lock-poisoning policy for a log (docs/storage.md, "Storage
    /// invariants"): a panic while the state lock is held for writing may
    /// have left the in-memory state half-updated (a segment written but
    /// the log end not moved, an index entry without its batch). Such a log
    /// fails closed: every later read and write is refused until the
    /// process restarts and recovery rebuilds the state from the files.
    fn check_not_poisoned(&self) -> Result<()> {
        if self.state.is_poisoned() {
            return Err(StorageError::LogFailed {
                path: self.dir.clone(),
                reason: "a panic interrupted a change to its state; restart the broker to recover it from disk".into(),
            });
        }
        Ok(())
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, LogState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, LogState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_flush(&self) -> MutexGuard<'_, FlushState> {
        self.flush.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LogState {
    #[allow(clippy::expect_used, reason = "invariant: a log always has an active segment")]
    pub(crate) fn active(&self) -> &LogSegment {
        self.segments.last().expect("a log always has an active segment")
    }

    #[allow(clippy::expect_used, reason = "invariant: a log always has an active segment")]
    pub(crate) fn active_mut(&mut self) -> &mut LogSegment {
        self.segments.last_mut().expect("a log always has an active segment")
    }

    pub(crate) fn log_end(&self) -> u64 {
        self.active().next_offset()
    }
}

fn delete_segment_files(dir: &Path, base_offset: u64) {
    let (log, idx, tidx) = segment::paths(dir, base_offset);
    for p in [log, idx, tidx] {
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %p.display(), error = %strata_record::ErrorChain(&e), "could not delete segment file");
            }
        }
    }
}
