//! Log compaction (Kafka's `LogCleaner`, `docs/storage.md`, "Compaction"):
//! for a log with `compact` set, keep the latest record of every key.
//!
//! Only sealed segments below the high watermark whose newest record is
//! older than `min_compaction_lag_ms` are cleaned: the active segment,
//! uncommitted records and recent ones are never touched (nor is the
//! idempotent producers' state, which the active segment's snapshot holds).
//! A pass maps each key of the *dirty* part (not cleaned before) to its
//! latest offset, then rewrites every cleanable segment keeping a record
//! only if no newer record of its key is in the map, dropping records
//! without a key and tombstones older than `delete_retention_ms`. Offsets
//! never change: a rewritten batch keeps its span and its kept records
//! their offsets, and reads skip the gaps.
//!
//! Each rewritten segment is built in `.cleaning/` beside the log and then
//! swapped in under the write lock by renaming its index files and then its
//! log file; a crash before the log file's rename leaves the old log with
//! indexes that may be new, so opening the log drops those indexes (they
//! are rebuilt) and the `.cleaning` leftovers ([`recover_interrupted`]).
//! Reads and appends run meanwhile; the swap is a few renames.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_record::batch::{filter_records, BatchHeader, Filtered, RecordBatch};

use crate::error::{Result, StorageError};
use crate::file_io;
use crate::log::Log;
use crate::segment::{self, LogSegment};

/// The directory a pass builds its segments in.
pub(crate) const CLEANING_DIR: &str = ".cleaning";

/// The file holding the offset below which the log was cleaned.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// The cleaned-up-to offset stored in `dir`, at most `log_end`; 0 when the
/// file is missing or does not parse (the next pass then cleans the whole
/// log: slower, never wrong).
pub(crate) fn read_cleaned_up_to(dir: &Path, log_end: u64) -> u64 {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return 0 };
    let mut lines = text.lines();
    match (lines.next(), lines.next().and_then(|l| l.trim().parse::<u64>().ok())) {
        (Some("1"), Some(offset)) => offset.min(log_end),
        _ => {
            tracing::warn!(file = %path.display(), "unreadable cleaner checkpoint; the next pass cleans the whole log");
            0
        }
    }
}

/// What one cleaning pass may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanOptions {
    /// "Now", ms since the epoch (tombstone and lag ages count from it).
    pub now_ms: i64,
    /// Most distinct keys mapped in one pass; the dirty part is cut at a
    /// segment boundary once reached (bounds the cleaner's memory).
    pub max_keys: usize,
    /// Bytes per second the pass reads and writes at most (`None`: no
    /// limit), so cleaning does not starve producers and consumers of disk.
    pub io_bytes_per_sec: Option<u64>,
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Segments rewritten.
    pub segments_rewritten: usize,
    /// Records removed (superseded, tombstones past retention, no key).
    pub records_removed: u64,
    /// Bytes of the cleaned segments before and after.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// Everything below this offset has been cleaned.
    pub cleaned_up_to: u64,
}

/// One cleanable segment as the pass saw it.
struct Candidate {
    base: u64,
    next_base: u64,
    size: u64,
    bytes: Bytes,
}

impl Log {
    /// The part of the cleanable log not cleaned since its last pass, by
    /// bytes (Kafka's dirty ratio): 0 when nothing is cleanable.
    pub fn dirty_ratio(&self, now_ms: i64) -> f64 {
        let st = self.read_state();
        let cleaned = st.cleaned_up_to;
        let (mut dirty, mut total) = (0u64, 0u64);
        for (seg, next) in cleanable(&st, now_ms) {
            total += seg.size();
            if next > cleaned {
                dirty += seg.size();
            }
        }
        if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        }
    }

    /// Runs one cleaning pass (see the module documentation). Does nothing
    /// unless the log's config has `compact` set.
    pub fn clean(&self, opts: &CleanOptions) -> Result<CleanReport> {
        let (candidates, cleaned_up_to, config) = {
            let st = self.read_state();
            if !st.config.compact {
                return Ok(CleanReport::default());
            }
            let mut out = Vec::new();
            for (seg, next_base) in cleanable(&st, opts.now_ms) {
                out.push(Candidate { base: seg.base_offset(), next_base, size: seg.size(), bytes: seg.bytes()? });
            }
            (out, st.cleaned_up_to, st.config.clone())
        };
        let mut report = CleanReport { cleaned_up_to, ..CleanReport::default() };
        if candidates.is_empty() {
            return Ok(report);
        }
        let mut pacer = Pacer::new(opts.io_bytes_per_sec);
        // The dirty part's latest offset per key, bounded in keys.
        let mut latest: HashMap<Bytes, u64> = HashMap::new();
        let mut end = cleaned_up_to;
        for c in candidates.iter().filter(|c| c.next_base > cleaned_up_to) {
            if !latest.is_empty() && latest.len() >= opts.max_keys {
                break;
            }
            for_each_batch(&c.bytes, &self.dir().join(segment::file_stem(c.base)), |batch| {
                for r in batch.records() {
                    let r = r?;
                    if let Some(key) = r.key {
                        latest.insert(key, r.offset);
                    }
                }
                Ok(())
            })?;
            pacer.spent(c.size);
            end = c.next_base;
        }
        if end <= cleaned_up_to {
            return Ok(report);
        }
        let tombstone_horizon =
            opts.now_ms.saturating_sub(i64::try_from(config.delete_retention_ms).unwrap_or(i64::MAX));
        let cleaning = self.dir().join(CLEANING_DIR);
        std::fs::create_dir_all(&cleaning).map_err(|e| StorageError::io(&cleaning, "creating", e))?;
        for c in candidates.iter().filter(|c| c.next_base <= end) {
            let (rewritten, removed) = rewrite(c, &cleaning, config.index_interval_bytes, |r| {
                let Some(key) = &r.key else { return false };
                if latest.get(key).is_some_and(|&newest| r.offset < newest) {
                    return false;
                }
                r.value.is_some() || r.timestamp > tombstone_horizon
            })?;
            pacer.spent(c.size * 2);
            let Some(new_size) = rewritten else { continue };
            fail::fail_point!("storage::cleaner_before_swap");
            if self.swap_in(c, &cleaning, config.index_interval_bytes)? {
                report.segments_rewritten += 1;
                report.records_removed += removed;
                report.bytes_before += c.size;
                report.bytes_after += new_size;
            }
        }
        let _ = std::fs::remove_dir_all(&cleaning);
        let mut st = self.write_state();
        st.cleaned_up_to = st.cleaned_up_to.max(end);
        report.cleaned_up_to = st.cleaned_up_to;
        let contents = format!("1\n{}\n", st.cleaned_up_to);
        drop(st);
        file_io::write_atomic(&self.dir().join(CLEANER_CHECKPOINT_FILE), contents.as_bytes())?;
        Ok(report)
    }

    /// Replaces segment `c` with its rewritten files in `cleaning`, under
    /// the write lock; false (and the rewrite dropped) when the segment is
    /// gone or changed meanwhile (retention, truncation).
    fn swap_in(&self, c: &Candidate, cleaning: &Path, interval: u64) -> Result<bool> {
        let mut st = self.write_state();
        let at = st.segments.iter().position(|s| s.base_offset() == c.base);
        let Some(i) = at.filter(|&i| i + 1 < st.segments.len() && st.segments[i].size() == c.size) else {
            for p in files(cleaning, c.base) {
                let _ = std::fs::remove_file(p);
            }
            return Ok(false);
        };
        let (log, idx, tidx) = segment::paths(self.dir(), c.base);
        let [new_log, new_idx, new_tidx] = files(cleaning, c.base);
        for (from, to) in [(&new_idx, &idx), (&new_tidx, &tidx)] {
            std::fs::rename(from, to).map_err(|e| StorageError::io(to, "renaming a cleaned index over", e))?;
        }
        fail::fail_point!("storage::cleaner_mid_swap");
        std::fs::rename(&new_log, &log).map_err(|e| StorageError::io(&log, "renaming a cleaned segment over", e))?;
        file_io::sync_dir(self.dir())?;
        st.segments[i] = LogSegment::open_trusted_sealed(self.dir(), c.base, c.next_base, interval)?;
        Ok(true)
    }
}

/// The sealed segments a pass may clean, with the next segment's base:
/// wholly below the high watermark and older than the compaction lag, from
/// the log start up to the first that is not.
fn cleanable(st: &crate::log::LogState, now_ms: i64) -> Vec<(&LogSegment, u64)> {
    let lag = i64::try_from(st.config.min_compaction_lag_ms).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for pair in st.segments.windows(2) {
        let (seg, next) = (&pair[0], &pair[1]);
        if next.base_offset() > st.high_watermark || seg.max_timestamp() > now_ms.saturating_sub(lag) {
            break;
        }
        out.push((seg, next.base_offset()));
    }
    out
}

/// The three files of segment `base` in `dir`: log, index, time index.
fn files(dir: &Path, base: u64) -> [PathBuf; 3] {
    let (a, b, c) = segment::paths(dir, base);
    [a, b, c]
}

/// Calls `f` with every batch of a segment's bytes.
fn for_each_batch(bytes: &Bytes, path: &Path, mut f: impl FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let corrupt =
            |reason: String| StorageError::CorruptSegment { path: path.to_path_buf(), position: pos as u64, reason };
        let h = BatchHeader::parse(&bytes[pos..]).map_err(|e| corrupt(e.to_string()))?;
        let end = pos
            .checked_add(h.total_len())
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| corrupt("a batch runs past the segment".into()))?;
        let batch = RecordBatch::stored(bytes.slice(pos..end), usize::MAX).map_err(|e| corrupt(e.to_string()))?;
        f(&batch)?;
        pos = end;
    }
    Ok(())
}

/// Writes segment `c` with only the records `keep` accepts into `dir`
/// (synced, indexes sealed). Returns the new size and the records removed,
/// or `None` (nothing written) when every record stays.
fn rewrite(
    c: &Candidate,
    dir: &Path,
    interval: u64,
    mut keep: impl FnMut(&strata_record::batch::Record) -> bool,
) -> Result<(Option<u64>, u64)> {
    let path = dir.join(segment::file_stem(c.base));
    let mut parts: Vec<(BatchHeader, Bytes)> = Vec::new();
    let (mut removed, mut changed) = (0u64, false);
    for_each_batch(&c.bytes, &path, |batch| {
        let before = u64::from(batch.header().record_count);
        match filter_records(batch, &mut keep).map_err(|e| StorageError::CorruptSegment {
            path: path.clone(),
            position: 0,
            reason: e.to_string(),
        })? {
            Filtered::Unchanged => parts.push((*batch.header(), batch.bytes().clone())),
            Filtered::Empty => {
                removed += before;
                changed = true;
            }
            Filtered::Rewritten(bytes) => {
                let h = BatchHeader::parse(&bytes).map_err(|e| StorageError::CorruptSegment {
                    path: path.clone(),
                    position: 0,
                    reason: e.to_string(),
                })?;
                removed += before - u64::from(h.record_count);
                parts.push((h, bytes));
                changed = true;
            }
        }
        Ok(())
    })?;
    if !changed {
        return Ok((None, 0));
    }
    let mut seg = LogSegment::create(dir, c.base, interval)?;
    for (h, bytes) in &parts {
        seg.append(&[&bytes[..]], h, bytes.len() as u64, h.max_timestamp)?;
    }
    seg.seal()?;
    let size = seg.size();
    drop(seg);
    Ok((Some(size), removed))
}

/// Paces a pass to at most `rate` bytes per second.
struct Pacer {
    rate: Option<u64>,
    start: Instant,
    bytes: u64,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Self {
        Pacer { rate: rate.filter(|r| *r > 0), start: Instant::now(), bytes: 0 }
    }

    fn spent(&mut self, bytes: u64) {
        let Some(rate) = self.rate else { return };
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Opening a log after a crash during a pass: for a segment whose log file
/// was not swapped in yet, its indexes may already be the rewritten ones,
/// so they are removed (the loader rebuilds missing indexes from the log);
/// then the pass's leftovers go.
pub(crate) fn recover_interrupted(dir: &Path) -> Result<()> {
    let cleaning = dir.join(CLEANING_DIR);
    let Ok(entries) = std::fs::read_dir(&cleaning) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else { continue };
        let Ok(base) = stem.parse::<u64>() else { continue };
        let (_, idx, tidx) = segment::paths(dir, base);
        for p in [idx, tidx] {
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    tracing::warn!(file = %p.display(), "dropping an index a cleaning pass may have replaced; it is rebuilt")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&p, "removing", e)),
            }
        }
    }
    std::fs::remove_dir_all(&cleaning).map_err(|e| StorageError::io(&cleaning, "removing", e))
}
