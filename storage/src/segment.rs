//! `LogSegment`: one `.log` file of back-to-back batches plus its `.index`
//! and `.timeindex`. The last segment of a log is active (open for positional
//! writes into preallocated space); all others are sealed and read through a
//! read-only mapping created on first use.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strata_record::batch::BatchHeader;

use crate::error::{Result, StorageError};
use crate::file_io;
use crate::index::{self, IndexFile, IndexLimits, OFFSET_ENTRY, TIME_ENTRY};
use crate::scan::{self, IndexPolicy, ScanMode, SegmentScan};

/// Granularity of the active segment's read mapping.
const ACTIVE_MAP_WINDOW: u64 = 256 << 20;

/// File name stem for a segment starting at `base_offset`.
pub(crate) fn file_stem(base_offset: u64) -> String {
    format!("{base_offset:020}")
}

/// Paths of a segment's three files.
pub(crate) fn paths(dir: &Path, base_offset: u64) -> (PathBuf, PathBuf, PathBuf) {
    let stem = file_stem(base_offset);
    (dir.join(format!("{stem}.log")), dir.join(format!("{stem}.index")), dir.join(format!("{stem}.timeindex")))
}

/// One segment of a partition log.
#[derive(Debug)]
pub(crate) struct LogSegment {
    base_offset: u64,
    path: PathBuf,
    writer: Option<Arc<File>>,
    size: u64,
    allocated: u64,
    map: Mutex<Option<Bytes>>,
    offset_index: IndexFile,
    time_index: IndexFile,
    next_offset: u64,
    policy: IndexPolicy,
    rolling_timestamp: Option<i64>,
}

impl LogSegment {
    /// Creates a new empty active segment (replacing leftovers of the same
    /// name from an interrupted roll).
    pub(crate) fn create(dir: &Path, base_offset: u64, interval: u64) -> Result<Self> {
        let (log, idx, tidx) = paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log)
            .map_err(|e| StorageError::io(&log, "creating segment", e))?;
        Ok(LogSegment {
            base_offset,
            path: log,
            writer: Some(Arc::new(file)),
            size: 0,
            allocated: 0,
            map: Mutex::new(None),
            offset_index: IndexFile::create_active(idx, OFFSET_ENTRY, Vec::new())?,
            time_index: IndexFile::create_active(tidx, TIME_ENTRY, Vec::new())?,
            next_offset: base_offset,
            policy: IndexPolicy::new(base_offset, interval),
            rolling_timestamp: None,
        })
    }

    /// Opens a segment from a recovery scan of its first `scan.valid_end`
    /// bytes, writing the rebuilt indexes. Bytes past that are cut off.
    pub(crate) fn from_scan(dir: &Path, base_offset: u64, scan: SegmentScan, active: bool) -> Result<Self> {
        let (log, idx, tidx) = paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log)
            .map_err(|e| StorageError::io(&log, "opening segment", e))?;
        file.set_len(scan.valid_end).map_err(|e| StorageError::io(&log, "truncating segment", e))?;
        file_io::sync_data(&file, &log)?;
        let (offset_index, time_index) = if active {
            (
                IndexFile::create_active(idx, OFFSET_ENTRY, scan.offset_entries)?,
                IndexFile::create_active(tidx, TIME_ENTRY, scan.time_entries)?,
            )
        } else {
            (
                IndexFile::create_sealed(idx, OFFSET_ENTRY, scan.offset_entries)?,
                IndexFile::create_sealed(tidx, TIME_ENTRY, scan.time_entries)?,
            )
        };
        let mut seg = LogSegment {
            base_offset,
            path: log,
            writer: active.then(|| Arc::new(file)),
            size: scan.valid_end,
            allocated: scan.valid_end,
            map: Mutex::new(None),
            offset_index,
            time_index,
            next_offset: scan.next_offset,
            policy: scan.policy,
            rolling_timestamp: scan.first_max_timestamp,
        };
        if !active {
            seal_time_index(&mut seg)?;
        }
        Ok(seg)
    }

    /// Opens a sealed segment whose indexes passed their sanity check,
    /// without reading its data. `next_offset` is the next segment's base.
    pub(crate) fn open_trusted_sealed(dir: &Path, base_offset: u64, next_offset: u64, interval: u64) -> Result<Self> {
        let (log, idx, tidx) = paths(dir, base_offset);
        let size = std::fs::metadata(&log).map_err(|e| StorageError::io(&log, "reading metadata of", e))?.len();
        let limits = IndexLimits { segment_size: size, span: next_offset - base_offset };
        let mut policy = IndexPolicy::new(base_offset, interval);
        if let Some(last) = IndexFile::read_last(&tidx, TIME_ENTRY).map(|b| index::decode_time(&b)) {
            policy.max_timestamp = last.timestamp;
            policy.last_time_entry = last.timestamp;
            policy.offset_of_max_timestamp = base_offset + u64::from(last.relative_offset);
        }
        Ok(LogSegment {
            base_offset,
            path: log,
            writer: None,
            size,
            allocated: size,
            map: Mutex::new(None),
            offset_index: IndexFile::open_sealed(idx, OFFSET_ENTRY, limits),
            time_index: IndexFile::open_sealed(tidx, TIME_ENTRY, limits),
            next_offset,
            policy,
            rolling_timestamp: None,
        })
    }

    pub(crate) fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Offset after the last batch in this segment.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Valid bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Largest record timestamp in the segment (`i64::MIN` when empty).
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.policy.max_timestamp
    }

    /// Time segment age is measured from: the wall clock when its first
    /// batch was appended (after a restart, that batch's max timestamp).
    /// Not record timestamps alone: producers with old clocks would make
    /// every append roll.
    pub(crate) fn rolling_timestamp(&self) -> Option<i64> {
        self.rolling_timestamp
    }

    /// Offset-index entries held.
    pub(crate) fn index_entries(&self) -> Result<usize> {
        self.offset_index.len()
    }

    /// The open write handle, while active.
    pub(crate) fn writer(&self) -> Option<Arc<File>> {
        self.writer.clone()
    }

    /// Writes a validated batch (offsets already assigned) at the end.
    /// On error the segment is as before.
    /// `parts` are the batch's bytes in pieces (a rewritten header, then the
    /// rest as received), written with one vectored write.
    pub(crate) fn append(&mut self, parts: &[&[u8]], h: &BatchHeader, preallocate: u64, now_ms: i64) -> Result<()> {
        let Some(file) = self.writer.clone() else {
            return Err(StorageError::InvalidArgument { what: "append", reason: "segment is sealed".into() });
        };
        let len = h.total_len() as u64;
        if self.size + len > self.allocated {
            let grow = preallocate.max(self.size + len - self.allocated);
            file_io::preallocate(&file, &self.path, self.allocated, grow)?;
            self.allocated += grow;
            let mut map = self.lock_map();
            if map.as_ref().is_some_and(|m| (m.len() as u64) < self.allocated) {
                *map = None;
            }
        }
        file_io::write_parts_at(&file, &self.path, parts, self.size)?;
        let plan = self.policy.plan(self.size, h);
        if let Some(e) = plan.offset_entry {
            self.offset_index.append(&e.encode());
        }
        if let Some(e) = plan.time_entry {
            self.time_index.append(&e.encode());
        }
        self.policy = plan.next;
        self.size += len;
        self.next_offset = h.next_offset();
        self.rolling_timestamp.get_or_insert(now_ms);
        Ok(())
    }

    /// The segment's bytes `[0, size)` as one zero-copy buffer.
    pub(crate) fn bytes(&self) -> Result<Bytes> {
        let mut guard = self.lock_map();
        if guard.is_none() {
            *guard = Some(match &self.writer {
                // Map a window past the allocated end so appends rarely
                // force a remap; only bytes below `size` (inside the file)
                // are ever touched.
                Some(f) => {
                    file_io::map(f, &self.path, self.allocated.div_ceil(ACTIVE_MAP_WINDOW).max(1) * ACTIVE_MAP_WINDOW)?
                }
                None => file_io::map_path(&self.path)?,
            });
        }
        let map = guard.as_ref().map(|b| b.slice(..)).unwrap_or_default();
        drop(guard);
        let end = (self.size as usize).min(map.len());
        Ok(map.slice(..end))
    }

    /// Byte position and header of the batch holding `offset`, or `None`
    /// when the segment ends before it.
    pub(crate) fn find(&self, offset: u64, bytes: &[u8]) -> Result<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let rel = offset.saturating_sub(self.base_offset).min(u64::from(u32::MAX)) as u32;
        let start = self.offset_index.with_bytes(|b| index::offset_lookup(b, rel))?;
        let mut pos = start.map_or(0, |e| u64::from(e.position));
        if let Some(e) = start {
            // An index entry must point at the batch it names; if not, the
            // index is damaged: walk from the start instead of trusting it.
            let named = self.base_offset + u64::from(e.relative_offset);
            if self.header_at(bytes, pos).ok().map(|h| h.base_offset) != Some(named) {
                tracing::warn!(segment = %self.path.display(), position = pos, "index entry does not match the log; scanning from the segment start");
                pos = 0;
            }
        }
        while pos < bytes.len() as u64 {
            let h = self.header_at(bytes, pos)?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Parses the batch header at `pos`, as a corruption error if it is bad.
    pub(crate) fn header_at(&self, bytes: &[u8], pos: u64) -> Result<BatchHeader> {
        let corrupt = |reason: String| StorageError::CorruptSegment { path: self.path.clone(), position: pos, reason };
        let rest = bytes.get(pos as usize..).unwrap_or_default();
        let h = BatchHeader::parse(rest).map_err(|e| corrupt(e.to_string()))?;
        if h.total_len() > rest.len() {
            return Err(corrupt("batch runs past the end of the segment".into()));
        }
        Ok(h)
    }

    /// Largest time-index entry strictly older than `timestamp`.
    pub(crate) fn time_floor(&self, timestamp: i64) -> Result<Option<u64>> {
        Ok(self
            .time_index
            .with_bytes(|b| index::time_lookup(b, timestamp))?
            .map(|e| self.base_offset + u64::from(e.relative_offset)))
    }

    /// Makes the segment immutable: trims preallocated space, records the
    /// final max timestamp, syncs data and indexes, drops the write handle.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if let Some(f) = self.writer.take() {
            if let Err(e) = f.set_len(self.size) {
                self.writer = Some(f);
                return Err(StorageError::io(&self.path, "trimming segment", e));
            }
            self.allocated = self.size;
            if let Err(e) = file_io::sync_data(&f, &self.path) {
                self.writer = Some(f);
                return Err(e);
            }
            seal_time_index(self)?;
        }
        self.offset_index.seal()?;
        self.time_index.seal()?;
        *self.lock_map() = None;
        Ok(())
    }

    /// Trims the preallocated tail so the file length is the valid length
    /// (clean shutdown: the next open trusts the file length).
    pub(crate) fn trim(&mut self) -> Result<()> {
        self.offset_index.persist()?;
        self.time_index.persist()?;
        if let Some(f) = &self.writer {
            f.set_len(self.size).map_err(|e| StorageError::io(&self.path, "trimming segment", e))?;
            self.allocated = self.size;
            *self.lock_map() = None;
        }
        Ok(())
    }

    /// Drops cached mappings of a sealed segment (remapped on next read).
    pub(crate) fn release_maps(&self) {
        if self.writer.is_none() {
            *self.lock_map() = None;
            self.offset_index.release_map();
            self.time_index.release_map();
        }
    }

    /// Removes every batch from the one holding `offset` on: zero-fills
    /// those bytes (never shrinking a file whose bytes may be mapped by
    /// readers), rebuilds the indexes and makes the segment active again.
    /// Returns the new next offset (a batch boundary, at most `offset`).
    pub(crate) fn truncate_to(&mut self, offset: u64) -> Result<u64> {
        let bytes = self.bytes()?;
        let pos = self.find(offset, &bytes)?.map_or(self.size, |(pos, _)| pos);
        if pos == self.size && self.writer.is_some() {
            return Ok(self.next_offset);
        }
        let scanned = scan::scan(&bytes[..pos as usize], self.base_offset, self.policy.interval, ScanMode::HeadersOnly);
        if let Some(stop) = scanned.stop {
            return Err(StorageError::CorruptSegment {
                path: self.path.clone(),
                position: stop.position,
                reason: stop.reason,
            });
        }
        let file = match &self.writer {
            Some(f) => f.clone(),
            None => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path)
                    .map_err(|e| StorageError::io(&self.path, "opening segment", e))?;
                self.allocated = self.size;
                Arc::new(f)
            }
        };
        let zeros = vec![0u8; 64 * 1024];
        let mut at = pos;
        while at < self.size {
            let n = (self.size - at).min(zeros.len() as u64) as usize;
            file_io::write_all_at(&file, &self.path, &zeros[..n], at)?;
            at += n as u64;
        }
        file_io::sync_data(&file, &self.path)?;
        self.offset_index =
            IndexFile::create_active(self.offset_index.path().to_path_buf(), OFFSET_ENTRY, scanned.offset_entries)?;
        self.time_index =
            IndexFile::create_active(self.time_index.path().to_path_buf(), TIME_ENTRY, scanned.time_entries)?;
        self.writer = Some(file);
        self.size = pos;
        self.next_offset = scanned.next_offset;
        self.policy = scanned.policy;
        self.rolling_timestamp = scanned.first_max_timestamp;
        *self.lock_map() = None;
        Ok(self.next_offset)
    }

    fn lock_map(&self) -> std::sync::MutexGuard<'_, Option<Bytes>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn seal_time_index(seg: &mut LogSegment) -> Result<()> {
    if let Some(e) = seg.policy.time_entry_if_newer() {
        let mut entries = seg.time_index.with_bytes(|b| b.to_vec())?;
        entries.extend_from_slice(&e.encode());
        seg.time_index = IndexFile::create_sealed(seg.time_index.path().to_path_buf(), TIME_ENTRY, entries)?;
        seg.policy.last_time_entry = e.timestamp;
    }
    Ok(())
}

impl LogSegment {
    /// Opens the active segment after a clean shutdown: trusts the file
    /// length and indexes, and walks only the batches after the last index
    /// entry (at most about one index interval) to find the end. An error
    /// means the caller should fall back to a full recovery scan.
    pub(crate) fn open_clean_active(dir: &Path, base_offset: u64, interval: u64) -> Result<Self> {
        let (log, idx, tidx) = paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log)
            .map_err(|e| StorageError::io(&log, "opening segment", e))?;
        let size = file.metadata().map_err(|e| StorageError::io(&log, "reading metadata of", e))?.len();
        // The end offset is not known yet: bound relative offsets by the
        // 32-bit range, and require the tail walk to land on the end.
        let limits = IndexLimits { segment_size: size, span: u64::from(u32::MAX) + 1 };
        let offset_index = IndexFile::open_active(idx, OFFSET_ENTRY, limits)?;
        let time_index = IndexFile::open_active(tidx, TIME_ENTRY, limits)?;
        let bytes = file_io::map(&file, &log, size)?;
        let mut policy = IndexPolicy::new(base_offset, interval);
        if let Some(t) = time_index.with_bytes(index::time_last)? {
            policy.max_timestamp = t.timestamp;
            policy.last_time_entry = t.timestamp;
            policy.offset_of_max_timestamp = base_offset + u64::from(t.relative_offset);
        }
        let last = offset_index.with_bytes(index::offset_last)?;
        let (start, expected) =
            last.map_or((0, base_offset), |e| (e.position as usize, base_offset + u64::from(e.relative_offset)));
        let tail = scan::scan_from(&bytes, start, expected, policy, ScanMode::HeadersOnly);
        if let Some(stop) = tail.stop {
            return Err(StorageError::CorruptSegment { path: log, position: stop.position, reason: stop.reason });
        }
        if tail.valid_end != size || (size > 0 && tail.batches == 0) {
            return Err(StorageError::CorruptSegment {
                path: log,
                position: start as u64,
                reason: "the last index entry does not lead to the end of the segment".into(),
            });
        }
        if size > 0 && tail.policy.offset_of_max_timestamp >= tail.next_offset {
            return Err(StorageError::CorruptSegment {
                path: log,
                position: 0,
                reason: "the time index points past the end of the segment".into(),
            });
        }
        let rolling_timestamp = match bytes.len() {
            0 => None,
            _ => Some(
                BatchHeader::parse(&bytes)
                    .map_err(|e| StorageError::CorruptSegment {
                        path: log.clone(),
                        position: 0,
                        reason: e.to_string(),
                    })?
                    .max_timestamp,
            ),
        };
        let mut seg = LogSegment {
            base_offset,
            path: log,
            writer: Some(Arc::new(file)),
            size,
            allocated: size,
            map: Mutex::new(None),
            offset_index,
            time_index,
            next_offset: tail.next_offset,
            policy: tail.policy,
            rolling_timestamp,
        };
        if !tail.offset_entries.is_empty() {
            seg.offset_index.append(&tail.offset_entries);
        }
        if !tail.time_entries.is_empty() {
            seg.time_index.append(&tail.time_entries);
        }
        Ok(seg)
    }
}
