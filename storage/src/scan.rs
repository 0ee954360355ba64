//! Walking the batches of a segment: the index-entry policy shared by append
//! and rebuild, and the recovery scan that validates each batch and finds
//! where the good bytes end.

use strata_record::batch::{self, BatchHeader};

use crate::index::{OffsetEntry, TimeEntry};

/// Decides when a batch gets sparse index entries, and tracks the running
/// maximum timestamp. Append and rebuild share it so a rebuilt index equals
/// the one written live.
#[derive(Debug, Clone)]
pub(crate) struct IndexPolicy {
    pub base_offset: u64,
    pub interval: u64,
    pub bytes_since_index: u64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: u64,
    pub last_time_entry: i64,
}

/// What indexing one batch adds, and the policy state after it.
#[derive(Debug)]
pub(crate) struct IndexPlan {
    pub offset_entry: Option<OffsetEntry>,
    pub time_entry: Option<TimeEntry>,
    pub next: IndexPolicy,
}

impl IndexPolicy {
    pub(crate) fn new(base_offset: u64, interval: u64) -> Self {
        IndexPolicy {
            base_offset,
            interval,
            bytes_since_index: 0,
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: base_offset,
            last_time_entry: i64::MIN,
        }
    }

    /// Plans the entries for batch `h` stored at `position`.
    pub(crate) fn plan(&self, position: u64, h: &BatchHeader) -> IndexPlan {
        let mut next = self.clone();
        if h.max_timestamp > next.max_timestamp {
            next.max_timestamp = h.max_timestamp;
            next.offset_of_max_timestamp = h.last_offset();
        }
        let mut offset_entry = None;
        let mut time_entry = None;
        if self.bytes_since_index >= self.interval {
            offset_entry = Some(OffsetEntry {
                relative_offset: (h.base_offset - self.base_offset) as u32,
                position: position as u32,
            });
            next.bytes_since_index = 0;
            time_entry = next.time_entry_if_newer();
            if let Some(t) = time_entry {
                next.last_time_entry = t.timestamp;
            }
        }
        next.bytes_since_index += h.total_len() as u64;
        IndexPlan { offset_entry, time_entry, next }
    }

    /// The entry recording the running maximum, if the time index does not
    /// have it yet (added at every index point and when a segment is sealed).
    pub(crate) fn time_entry_if_newer(&self) -> Option<TimeEntry> {
        (self.max_timestamp > self.last_time_entry).then(|| TimeEntry {
            timestamp: self.max_timestamp,
            relative_offset: (self.offset_of_max_timestamp - self.base_offset) as u32,
        })
    }
}

/// How thoroughly [`scan`] checks each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanMode {
    /// Full validation (CRC, records): used by crash recovery.
    Validate { max_batch_bytes: usize },
    /// Header sanity only: used to rebuild indexes of trusted bytes.
    HeadersOnly,
}

/// Why a scan stopped before the end of the bytes.
#[derive(Debug, Clone)]
pub(crate) struct ScanStop {
    /// Byte position of the first batch not accepted.
    pub position: u64,
    /// Offset that batch should have started at.
    pub expected_offset: u64,
    /// What was wrong.
    pub reason: String,
    /// Whether everything from `position` on is zero (preallocated space, not
    /// a torn write).
    pub all_zero: bool,
    /// Offsets the rejected header claimed, when it parsed.
    pub claimed: Option<(u64, u64)>,
}

/// Result of scanning a segment's bytes.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    pub valid_end: u64,
    pub next_offset: u64,
    pub batches: u64,
    pub first_max_timestamp: Option<i64>,
    pub policy: IndexPolicy,
    pub offset_entries: Vec<u8>,
    pub time_entries: Vec<u8>,
    pub stop: Option<ScanStop>,
}

/// Scans `bytes` (a segment's content from position 0) batch by batch,
/// requiring dense offsets from `base_offset`, and rebuilds both indexes.
pub(crate) fn scan(bytes: &[u8], base_offset: u64, interval: u64, mode: ScanMode) -> SegmentScan {
    scan_from(bytes, 0, base_offset, IndexPolicy::new(base_offset, interval), mode)
}

/// Like [`scan`], but starting at byte `start` where offset `expected` must
/// begin, continuing the index policy state `policy`.
pub(crate) fn scan_from(bytes: &[u8], start: usize, expected: u64, policy: IndexPolicy, mode: ScanMode) -> SegmentScan {
    let base_offset = policy.base_offset;
    let mut s = SegmentScan {
        valid_end: start as u64,
        next_offset: expected,
        batches: 0,
        first_max_timestamp: None,
        policy,
        offset_entries: Vec::new(),
        time_entries: Vec::new(),
        stop: None,
    };
    let mut pos = start;
    while pos < bytes.len() {
        match check_batch(&bytes[pos..], s.next_offset, base_offset, mode) {
            Ok(h) => {
                let plan = s.policy.plan(pos as u64, &h);
                if let Some(e) = plan.offset_entry {
                    s.offset_entries.extend_from_slice(&e.encode());
                }
                if let Some(e) = plan.time_entry {
                    s.time_entries.extend_from_slice(&e.encode());
                }
                s.policy = plan.next;
                s.first_max_timestamp.get_or_insert(h.max_timestamp);
                s.next_offset = h.next_offset();
                s.batches += 1;
                pos += h.total_len();
                s.valid_end = pos as u64;
            }
            Err(reason) => {
                let rest = &bytes[pos..];
                s.stop = Some(ScanStop {
                    position: pos as u64,
                    expected_offset: s.next_offset,
                    reason,
                    all_zero: rest.iter().all(|&b| b == 0),
                    claimed: BatchHeader::parse(rest).ok().map(|h| (h.base_offset, h.last_offset())),
                });
                break;
            }
        }
    }
    s
}

fn check_batch(rest: &[u8], expected: u64, base_offset: u64, mode: ScanMode) -> Result<BatchHeader, String> {
    let h = BatchHeader::parse(rest).map_err(|e| e.to_string())?;
    if h.total_len() > rest.len() {
        return Err(format!("batch of {} bytes runs past the end of the segment", h.total_len()));
    }
    if let ScanMode::Validate { max_batch_bytes } = mode {
        batch::validate_stored(&rest[..h.total_len()], max_batch_bytes.max(h.total_len()))
            .map_err(|e| e.to_string())?;
    }
    if h.base_offset > crate::log::MAX_OFFSET || h.last_offset() >= crate::log::MAX_OFFSET {
        return Err(format!("batch offsets {}..={} exceed the largest offset", h.base_offset, h.last_offset()));
    }
    if h.base_offset != expected {
        return Err(format!("batch starts at offset {} where {} was expected", h.base_offset, expected));
    }
    if h.last_offset().saturating_sub(base_offset) > u64::from(u32::MAX) {
        return Err("batch offsets overflow the segment's 32-bit relative offsets".into());
    }
    Ok(h)
}
