//! `LogLoader`: opens a partition directory, deciding per segment whether to
//! trust it (below the recovery point, or after a clean shutdown) or to scan
//! and validate it (crash recovery), rebuilding missing or damaged indexes
//! and truncating a torn tail of the active segment.

use std::path::Path;

use crate::checkpoint::{self, LogCheckpoint};
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::file_io;
use crate::index::{self, IndexFile, OFFSET_ENTRY, TIME_ENTRY};
use crate::scan::{self, ScanMode};
use crate::segment::{self, LogSegment};

/// What opening a log found and did; logged, and returned to tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous close was clean (no scan needed).
    pub clean_shutdown: bool,
    /// Segments whose bytes were scanned and validated.
    pub segments_scanned: usize,
    /// Bytes validated by the scan.
    pub bytes_scanned: u64,
    /// Segments whose indexes were missing or damaged and were rebuilt
    /// outside the recovery scan.
    pub indexes_rebuilt: usize,
    /// The torn or corrupt tail cut from the active segment, if any.
    pub truncated: Option<TruncatedTail>,
    /// Why the leader-epoch cache was rebuilt from the batch headers
    /// (missing, damaged or inconsistent checkpoint), if it was.
    pub epoch_cache_rebuilt: Option<String>,
}

/// A tail of the active segment that recovery removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedTail {
    /// First offset no longer in the log.
    pub from_offset: u64,
    /// Byte position in the segment where the cut was made.
    pub position: u64,
    /// Bytes removed.
    pub bytes_dropped: u64,
    /// Offsets the first rejected header claimed, if it parsed.
    pub claimed_offsets: Option<(u64, u64)>,
    /// Why the first rejected batch was rejected.
    pub reason: String,
}

/// A loaded log's segments and offsets.
#[derive(Debug)]
pub(crate) struct LoadedLog {
    pub segments: Vec<LogSegment>,
    pub log_start_offset: u64,
    /// The checkpointed high watermark, clamped to the log.
    pub high_watermark: u64,
    pub report: RecoveryReport,
}

/// Opens (creating if needed) the log in `dir`.
pub(crate) fn load(dir: &Path, config: &LogConfig) -> Result<LoadedLog> {
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, "creating log directory", e))?;
    crate::cleaner::recover_interrupted(dir)?;
    let bases = list_segments(dir)?;
    let clean = checkpoint::clean_marker_exists(dir);
    let cp = LogCheckpoint::read(dir)?;
    let mut report = RecoveryReport { clean_shutdown: clean, ..Default::default() };
    let interval = config.index_interval_bytes;

    let mut segments = Vec::with_capacity(bases.len().max(1));
    if bases.is_empty() {
        let start = cp.map_or(0, |c| c.log_start_offset);
        segments.push(LogSegment::create(dir, start, interval)?);
        file_io::sync_dir(dir)?;
    } else {
        let recovery_point = cp.map_or(0, |c| c.recovery_point);
        let first_scanned =
            if clean { bases.len() } else { bases.iter().rposition(|&b| b <= recovery_point).unwrap_or(0) };
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let seg = match next_base {
                Some(next) if i < first_scanned => open_trusted_sealed(dir, base, next, config, &mut report)?,
                None if clean => match LogSegment::open_clean_active(dir, base, interval) {
                    Ok(seg) => seg,
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %strata_record::ErrorChain(&e), "clean-shutdown state did not check out; recovering the active segment");
                        recover_segment(dir, base, None, 0, config, &mut report)?
                    }
                },
                _ => recover_segment(dir, base, next_base, recovery_point, config, &mut report)?,
            };
            segments.push(seg);
        }
    }

    let first_base = segments.first().map_or(0, |s| s.base_offset());
    let log_end = segments.last().map_or(0, |s| s.next_offset());
    let log_start_offset = cp.map_or(first_base, |c| c.log_start_offset.max(first_base)).min(log_end);
    // Files from before replication have no high watermark: 0, clamped.
    let high_watermark = cp.and_then(|c| c.high_watermark).unwrap_or(0).clamp(log_start_offset, log_end);
    // Everything now in the log was validated and synced (or trusted).
    LogCheckpoint { recovery_point: log_end, log_start_offset, high_watermark: Some(high_watermark) }.write(dir)?;
    if clean {
        checkpoint::remove_clean_marker(dir)?;
    }
    if report.segments_scanned > 0 || report.indexes_rebuilt > 0 {
        tracing::info!(dir = %dir.display(), ?report, "log recovered");
    }
    Ok(LoadedLog { segments, log_start_offset, high_watermark, report })
}

/// Base offsets of the segments present, sorted. Removes leftovers that are
/// safe to remove (temp files, indexes without a log).
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, "listing", e))?;
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, "listing", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(dir = %dir.display(), "ignoring a file whose name is not UTF-8");
            continue;
        };
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let base = match (stem.len(), stem.parse::<u64>()) {
            (20, Ok(b)) => b,
            _ => {
                if !stem.is_empty() && name != checkpoint::CHECKPOINT_FILE {
                    tracing::warn!(file = %entry.path().display(), "ignoring unexpected file in log directory");
                }
                continue;
            }
        };
        if base > crate::log::MAX_OFFSET {
            return Err(StorageError::CorruptSegment {
                path: entry.path(),
                position: 0,
                reason: format!("base offset {base} in the file name exceeds the largest offset"),
            });
        }
        match ext {
            "log" => logs.push(base),
            "index" | "timeindex" => indexes.push((base, entry.path())),
            _ => tracing::warn!(file = %entry.path().display(), "ignoring unexpected file in log directory"),
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(logs)
}

fn open_trusted_sealed(
    dir: &Path,
    base: u64,
    next_base: u64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<LogSegment> {
    let (log, idx, tidx) = segment::paths(dir, base);
    let size = std::fs::metadata(&log).map_err(|e| StorageError::io(&log, "reading metadata of", e))?.len();
    let span = next_base.saturating_sub(base);
    let idx_ok = IndexFile::sanity_check(&idx, OFFSET_ENTRY, |b| {
        let e = index::decode_offset(b);
        u64::from(e.relative_offset) < span && u64::from(e.position) < size
    });
    let tidx_ok =
        IndexFile::sanity_check(&tidx, TIME_ENTRY, |b| u64::from(index::decode_time(b).relative_offset) < span)
            && std::fs::metadata(&tidx).map(|m| (m.len() > 0) == (size > 0)).unwrap_or(false);
    if idx_ok && tidx_ok {
        return LogSegment::open_trusted_sealed(dir, base, next_base, config.index_interval_bytes);
    }
    tracing::warn!(segment = %log.display(), "rebuilding missing or damaged indexes");
    report.indexes_rebuilt += 1;
    let bytes = file_io::map_path(&log)?;
    let scanned =
        scan::scan(&bytes, base, config.index_interval_bytes, ScanMode::Validate { max_batch_bytes: usize::MAX });
    if let Some(stop) = &scanned.stop {
        return Err(corrupt(&log, stop.position, &stop.reason));
    }
    if scanned.next_offset != next_base {
        return Err(corrupt(
            &log,
            scanned.valid_end,
            &format!("segment ends at offset {} but the next segment starts at {next_base}", scanned.next_offset),
        ));
    }
    LogSegment::from_scan(dir, base, scanned, false)
}

/// Scans and validates a segment. A sealed segment must be wholly valid; the
/// active one may have a torn tail, which is cut off, unless the damage lies
/// below the recovery point (bytes that had been fsynced), which is
/// corruption.
fn recover_segment(
    dir: &Path,
    base: u64,
    next_base: Option<u64>,
    recovery_point: u64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<LogSegment> {
    let (log, _, _) = segment::paths(dir, base);
    let bytes = file_io::map_path(&log)?;
    let scanned =
        scan::scan(&bytes, base, config.index_interval_bytes, ScanMode::Validate { max_batch_bytes: usize::MAX });
    report.segments_scanned += 1;
    report.bytes_scanned += scanned.valid_end;
    if let Some(stop) = &scanned.stop {
        if let Some(next) = next_base {
            // A crash between creating the next segment and sealing this one
            // leaves this one untrimmed: its data ends in preallocated zeros
            // exactly where the next segment starts. Anything else is damage.
            if !(stop.all_zero && scanned.next_offset == next) {
                return Err(corrupt(&log, stop.position, &stop.reason));
            }
        }
        if stop.expected_offset < recovery_point {
            return Err(corrupt(
                &log,
                stop.position,
                &format!(
                    "{} (offset {} was already flushed; refusing to truncate it)",
                    stop.reason, stop.expected_offset
                ),
            ));
        }
        if !stop.all_zero {
            let dropped = bytes.len() as u64 - stop.position;
            tracing::warn!(
                segment = %log.display(),
                from_offset = stop.expected_offset,
                position = stop.position,
                bytes_dropped = dropped,
                claimed_offsets = ?stop.claimed,
                reason = %stop.reason,
                "truncating torn or corrupt tail of the active segment"
            );
            report.truncated = Some(TruncatedTail {
                from_offset: stop.expected_offset,
                position: stop.position,
                bytes_dropped: dropped,
                claimed_offsets: stop.claimed,
                reason: stop.reason.clone(),
            });
        }
    }
    if let Some(next) = next_base {
        if scanned.next_offset != next {
            return Err(corrupt(
                &log,
                scanned.valid_end,
                &format!("segment ends at offset {} but the next segment starts at {next}", scanned.next_offset),
            ));
        }
    }
    drop(bytes);
    LogSegment::from_scan(dir, base, scanned, next_base.is_none())
}

fn corrupt(path: &Path, position: u64, reason: &str) -> StorageError {
    StorageError::CorruptSegment { path: path.to_path_buf(), position, reason: reason.to_string() }
}
