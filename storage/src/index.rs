//! Sparse segment indexes: `.index` (relative offset → byte position) and
//! `.timeindex` (max timestamp so far → relative offset). Fixed-size
//! little-endian entries, no checksum: recovery rebuilds them from the log.
//!
//! The active segment's index lives in memory and is appended to its file
//! with positional writes (a full disk is an error, never a SIGBUS); a sealed
//! segment's index is mapped read-only on first use. No index holds a file
//! descriptor between those writes: a broker with 10,000 partitions would
//! otherwise hold three descriptors per partition instead of one (the
//! active segment's), and run out of them.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use crate::error::{Result, StorageError};
use crate::file_io;

/// Bytes per `.index` entry: relative offset u32, position u32.
pub(crate) const OFFSET_ENTRY: usize = 8;
/// Bytes per `.timeindex` entry: timestamp i64, relative offset u32.
pub(crate) const TIME_ENTRY: usize = 12;

/// One `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl OffsetEntry {
    pub(crate) fn encode(self) -> [u8; OFFSET_ENTRY] {
        let mut b = [0u8; OFFSET_ENTRY];
        b[..4].copy_from_slice(&self.relative_offset.to_le_bytes());
        b[4..].copy_from_slice(&self.position.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Self {
        OffsetEntry { relative_offset: le_u32(&b[..4]), position: le_u32(&b[4..8]) }
    }
}

impl TimeEntry {
    pub(crate) fn encode(self) -> [u8; TIME_ENTRY] {
        let mut b = [0u8; TIME_ENTRY];
        b[..8].copy_from_slice(&self.timestamp.to_le_bytes());
        b[8..].copy_from_slice(&self.relative_offset.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Self {
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[..8]);
        TimeEntry { timestamp: i64::from_le_bytes(t), relative_offset: le_u32(&b[8..12]) }
    }
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Storage of one index file, in memory while its segment is active and
/// mapped lazily once sealed.
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    entry_size: usize,
    active: Option<ActiveIndex>,
    sealed_map: Mutex<Option<Bytes>>,
    /// For a trusted (not rebuilt) sealed index: the bounds its entries are
    /// checked against when first mapped.
    limits: Option<IndexLimits>,
}

/// Bounds a segment's index entries must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexLimits {
    /// Valid bytes of the segment (positions lie below).
    pub segment_size: u64,
    /// `next_offset - base_offset` (relative offsets lie below).
    pub span: u64,
}

/// Whether raw entries form a well-ordered index within `limits`: offset
/// entries strictly increase in offset and position (positions inside the
/// segment); time entries strictly increase in timestamp and never decrease
/// in offset. Offsets stay below the segment's span.
pub(crate) fn entries_valid(bytes: &[u8], entry_size: usize, limits: IndexLimits) -> bool {
    if !bytes.len().is_multiple_of(entry_size) {
        return false;
    }
    if entry_size == OFFSET_ENTRY {
        let mut prev: Option<OffsetEntry> = None;
        for e in bytes.chunks_exact(OFFSET_ENTRY).map(OffsetEntry::decode) {
            let in_bounds = u64::from(e.position) < limits.segment_size && u64::from(e.relative_offset) < limits.span;
            let ordered = prev.is_none_or(|p| e.relative_offset > p.relative_offset && e.position > p.position);
            if !in_bounds || !ordered {
                return false;
            }
            prev = Some(e);
        }
    } else {
        let mut prev: Option<TimeEntry> = None;
        for e in bytes.chunks_exact(TIME_ENTRY).map(TimeEntry::decode) {
            let in_bounds = u64::from(e.relative_offset) < limits.span;
            let ordered = prev.is_none_or(|p| e.timestamp > p.timestamp && e.relative_offset >= p.relative_offset);
            if !in_bounds || !ordered {
                return false;
            }
            prev = Some(e);
        }
    }
    true
}

#[derive(Debug)]
struct ActiveIndex {
    mem: Vec<u8>,
    /// Bytes of `mem` already in the file. The rest is written when the
    /// segment is sealed or closed: an unclean stop rebuilds the active
    /// segment's indexes anyway, so per-entry writes would buy nothing.
    written: usize,
}

impl ActiveIndex {
    /// Writes the entries not yet in `file` (the index at `path`).
    fn write_pending(&mut self, file: &File, path: &Path) -> Result<()> {
        file_io::write_all_at(file, path, &self.mem[self.written..], self.written as u64)?;
        self.written = self.mem.len();
        Ok(())
    }
}

impl IndexFile {
    /// Writes `entries` as the whole file, to be appended to (see
    /// [`IndexFile::persist`]).
    pub(crate) fn create_active(path: PathBuf, entry_size: usize, entries: Vec<u8>) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, "creating index", e))?;
        file_io::write_all_at(&file, &path, &entries, 0)?;
        drop(file);
        Ok(IndexFile {
            path,
            entry_size,
            active: Some(ActiveIndex { written: entries.len(), mem: entries }),
            sealed_map: Mutex::new(None),
            limits: None,
        })
    }

    /// Writes `entries` as the whole file, syncs it, and serves it sealed.
    pub(crate) fn create_sealed(path: PathBuf, entry_size: usize, entries: Vec<u8>) -> Result<Self> {
        let mut idx = Self::create_active(path, entry_size, entries)?;
        idx.seal()?;
        Ok(idx)
    }

    /// Serves an existing file sealed (mapped on first lookup, when its
    /// entries are checked against `limits`; a damaged index is then ignored
    /// and lookups scan the segment from its start: slower, still correct).
    pub(crate) fn open_sealed(path: PathBuf, entry_size: usize, limits: IndexLimits) -> Self {
        IndexFile { path, entry_size, active: None, sealed_map: Mutex::new(None), limits: Some(limits) }
    }

    /// Reads an existing file back into memory for appends, refusing one
    /// whose entries are not well ordered within `limits`.
    pub(crate) fn open_active(path: PathBuf, entry_size: usize, limits: IndexLimits) -> Result<Self> {
        let mem = std::fs::read(&path).map_err(|e| StorageError::io(&path, "reading index", e))?;
        if !entries_valid(&mem, entry_size, limits) {
            return Err(StorageError::CorruptSegment {
                path,
                position: 0,
                reason: "index entries are out of order or out of bounds".into(),
            });
        }
        Self::create_active(path, entry_size, mem)
    }

    /// Reads just the last entry of an index file (a sealed segment's bounds
    /// without mapping the whole file).
    pub(crate) fn read_last(path: &Path, entry_size: usize) -> Option<Vec<u8>> {
        let f = File::open(path).ok()?;
        let len = f.metadata().ok()?.len();
        if len < entry_size as u64 || len % entry_size as u64 != 0 {
            return None;
        }
        let mut last = vec![0u8; entry_size];
        f.read_exact_at(&mut last, len - entry_size as u64).ok()?;
        Some(last)
    }

    /// Checks an index file that is about to be trusted without a rebuild:
    /// whole entries only, and the last one accepted by `last_ok`.
    pub(crate) fn sanity_check(path: &Path, entry_size: usize, last_ok: impl Fn(&[u8]) -> bool) -> bool {
        let Ok(f) = File::open(path) else { return false };
        let Ok(meta) = f.metadata() else { return false };
        let len = meta.len();
        if len % entry_size as u64 != 0 {
            return false;
        }
        if len == 0 {
            return true;
        }
        let mut last = vec![0u8; entry_size];
        f.read_exact_at(&mut last, len - entry_size as u64).is_ok() && last_ok(&last)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one encoded entry (in memory; see [`IndexFile::persist`]).
    pub(crate) fn append(&mut self, entry: &[u8]) {
        match self.active.as_mut() {
            Some(a) => a.mem.extend_from_slice(entry),
            None => debug_assert!(false, "append to a sealed index {}", self.path.display()),
        }
    }

    /// Writes entries appended since the last persist to the file (opened
    /// for this write only).
    pub(crate) fn persist(&mut self) -> Result<()> {
        if let Some(a) = self.active.as_mut() {
            if a.written < a.mem.len() {
                a.write_pending(&open_for_write(&self.path)?, &self.path)?;
            }
        }
        Ok(())
    }

    /// Entries held.
    pub(crate) fn len(&self) -> Result<usize> {
        self.with_bytes(|b| b.len() / self.entry_size)
    }

    /// Syncs, trims stray bytes past the last entry, and switches to lazy
    /// read-only mapping.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if let Some(a) = self.active.as_mut() {
            let file = open_for_write(&self.path)?;
            a.write_pending(&file, &self.path)?;
            file.set_len(a.mem.len() as u64).map_err(|e| StorageError::io(&self.path, "trimming index", e))?;
            file_io::sync_data(&file, &self.path)?;
        }
        self.active = None;
        *self.lock_map() = None;
        Ok(())
    }

    /// Runs `f` over the raw entry bytes.
    pub(crate) fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        if let Some(a) = &self.active {
            return Ok(f(&a.mem));
        }
        let mut guard = self.lock_map();
        if guard.is_none() {
            let mut map = file_io::map_path(&self.path)?;
            if let Some(limits) = self.limits {
                if !entries_valid(&map, self.entry_size, limits) {
                    tracing::warn!(index = %self.path.display(), "damaged index ignored; lookups scan the segment (it is rebuilt on the next recovery)");
                    map = Bytes::new();
                }
            }
            *guard = Some(map);
        }
        let bytes = guard.as_ref().map(|b| b.slice(..)).unwrap_or_default();
        drop(guard);
        let whole = bytes.len() - bytes.len() % self.entry_size;
        Ok(f(&bytes[..whole]))
    }

    /// Drops a sealed index's mapping (it is remapped on next use).
    pub(crate) fn release_map(&self) {
        *self.lock_map() = None;
    }

    fn lock_map(&self) -> std::sync::MutexGuard<'_, Option<Bytes>> {
        self.sealed_map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Index of the last entry whose key satisfies `before` (entries sorted so
/// that `before` is true for a prefix), or `None` if it holds for none.
fn last_where(bytes: &[u8], entry_size: usize, before: impl Fn(&[u8]) -> bool) -> Option<usize> {
    let n = bytes.len() / entry_size;
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(&bytes[mid * entry_size..(mid + 1) * entry_size]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1)
}

/// Largest `.index` entry with relative offset ≤ `target`.
pub(crate) fn offset_lookup(bytes: &[u8], target: u32) -> Option<OffsetEntry> {
    last_where(bytes, OFFSET_ENTRY, |e| OffsetEntry::decode(e).relative_offset <= target)
        .map(|i| OffsetEntry::decode(&bytes[i * OFFSET_ENTRY..]))
}

/// Largest `.timeindex` entry with timestamp strictly below `timestamp`:
/// every record up to its offset is older than `timestamp`.
pub(crate) fn time_lookup(bytes: &[u8], timestamp: i64) -> Option<TimeEntry> {
    last_where(bytes, TIME_ENTRY, |e| TimeEntry::decode(e).timestamp < timestamp)
        .map(|i| TimeEntry::decode(&bytes[i * TIME_ENTRY..]))
}

/// The last `.index` entry.
pub(crate) fn offset_last(bytes: &[u8]) -> Option<OffsetEntry> {
    let n = bytes.len() / OFFSET_ENTRY;
    n.checked_sub(1).map(|i| OffsetEntry::decode(&bytes[i * OFFSET_ENTRY..]))
}

/// The last `.timeindex` entry.
pub(crate) fn time_last(bytes: &[u8]) -> Option<TimeEntry> {
    let n = bytes.len() / TIME_ENTRY;
    n.checked_sub(1).map(|i| TimeEntry::decode(&bytes[i * TIME_ENTRY..]))
}

/// Decodes an entry for sanity checks.
pub(crate) fn decode_offset(b: &[u8]) -> OffsetEntry {
    OffsetEntry::decode(b)
}

/// Decodes an entry for sanity checks.
pub(crate) fn decode_time(b: &[u8]) -> TimeEntry {
    TimeEntry::decode(b)
}

/// An index file of the active segment, opened to write it (it exists: it
/// was created with the segment).
fn open_for_write(path: &Path) -> Result<File> {
    OpenOptions::new().write(true).open(path).map_err(|e| StorageError::io(path, "opening index", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(u32, u32)]) -> Vec<u8> {
        entries.iter().flat_map(|&(r, p)| OffsetEntry { relative_offset: r, position: p }.encode()).collect()
    }

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let b = offsets(&[(10, 100), (20, 200), (30, 300)]);
        assert_eq!(offset_lookup(&b, 5), None);
        assert_eq!(offset_lookup(&b, 10).map(|e| e.position), Some(100));
        assert_eq!(offset_lookup(&b, 29).map(|e| e.position), Some(200));
        assert_eq!(offset_lookup(&b, 1000).map(|e| e.position), Some(300));
        assert_eq!(offset_last(&b).map(|e| e.relative_offset), Some(30));
        assert_eq!(offset_lookup(&[], 3), None);
    }

    #[test]
    fn time_lookup_is_strictly_below() {
        let b: Vec<u8> = [(100i64, 1u32), (200, 5), (300, 9)]
            .iter()
            .flat_map(|&(t, r)| TimeEntry { timestamp: t, relative_offset: r }.encode())
            .collect();
        assert_eq!(time_lookup(&b, 100), None);
        assert_eq!(time_lookup(&b, 101).map(|e| e.relative_offset), Some(1));
        assert_eq!(time_lookup(&b, 300).map(|e| e.relative_offset), Some(5));
        assert_eq!(time_last(&b).map(|e| e.timestamp), Some(300));
    }

    #[test]
    fn active_then_sealed_index_serves_same_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = IndexFile::create_active(path.clone(), OFFSET_ENTRY, Vec::new()).unwrap();
        idx.append(&OffsetEntry { relative_offset: 3, position: 40 }.encode());
        idx.append(&OffsetEntry { relative_offset: 9, position: 90 }.encode());
        let before = idx.with_bytes(|b| b.to_vec()).unwrap();
        idx.seal().unwrap();
        assert_eq!(idx.with_bytes(|b| b.to_vec()).unwrap(), before);
        assert_eq!(idx.len().unwrap(), 2);
        assert!(IndexFile::sanity_check(&path, OFFSET_ENTRY, |b| decode_offset(b).position == 90));
        std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, &[1, 2, 3]).unwrap();
        assert!(!IndexFile::sanity_check(&path, OFFSET_ENTRY, |_| true));
    }
}
