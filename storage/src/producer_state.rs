//! Idempotent producers' state of one partition (Kafka's
//! `ProducerStateManager`, `docs/storage.md`, "Producer state"): per
//! producer id its epoch and the sequence ranges and offsets of its last
//! five batches. The leader checks every batch with a producer id against
//! it — a retried batch is answered with its original offsets instead of
//! being written twice, a gap in sequences and an older epoch are refused —
//! and every replica folds in every batch it appends, so a new leader
//! dedups what the old one accepted.
//!
//! The state is a function of the log: it is rebuilt from batch headers on
//! open and after truncation, starting from the newest snapshot at or below
//! the point (`<base offset>.snapshot`, written when a segment rolls).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use strata_record::batch::BatchHeader;

use crate::error::{Result, StorageError};
use crate::file_io;
use crate::segment::{self, LogSegment};

/// Batches remembered per producer: a producer has at most five requests in
/// flight per partition, so a retry is always one of the last five.
pub const MAX_CACHED_BATCHES: usize = 5;
/// Extension of producer-state snapshot files.
pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";
const MAGIC: &[u8; 8] = b"STRATAPS";
const VERSION: u16 = 1;

/// One appended batch of a producer, as remembered for dedup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of the batch's first record.
    pub first_seq: i32,
    /// Sequence of its last record.
    pub last_seq: i32,
    /// Offset of its first record.
    pub first_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// Its max timestamp.
    pub max_timestamp: i64,
}

/// What the log knows of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The newest epoch seen.
    pub epoch: i16,
    /// The last batches of that epoch, oldest first.
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of its newest batch: what expiry is measured from.
    pub last_timestamp: i64,
}

/// How the leader treats the first batch of a producer it has no state
/// for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewProducers {
    /// It must start at sequence 0: a later batch that overtook the first
    /// one (requests of a pipelining producer may arrive out of order) is
    /// refused as out of order, and the broker lets it wait for the first.
    StartAtZero,
    /// It may start anywhere: the producer's state expired or went with its
    /// batches, and nothing earlier is coming.
    AnySequence,
}

/// How the leader must treat a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// Append it (and fold it in).
    Append,
    /// It was appended before, at these offsets: answer with them.
    Duplicate(BatchMetadata),
}

/// The producer state of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

/// The sequence after `seq` (sequences wrap from `i32::MAX` to 0).
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The sequence of a batch's last record.
fn last_seq_of(h: &BatchHeader) -> i32 {
    let last = i64::from(h.base_sequence) + i64::from(h.last_offset_delta);
    (last % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStateManager {
    /// No producers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of `producer_id`, if the log holds one.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Producers with state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The leader's check of batch `h` (Kafka's rules): no producer id →
    /// append; an epoch older than the producer's → fenced; a newer epoch
    /// must start at sequence 0; the same epoch must continue right after
    /// the last sequence, unless the batch is one of the last five (a
    /// retry: a duplicate). A producer the log has no state for must start
    /// at sequence 0 under [`NewProducers::StartAtZero`]; under
    /// [`NewProducers::AnySequence`] (its state expired, or went with its
    /// batches to retention: Kafka's rule since 2.5) it may start anywhere.
    pub(crate) fn check(&self, h: &BatchHeader, new: NewProducers) -> Result<SequenceCheck> {
        if h.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        if h.base_sequence < 0 || h.producer_epoch < 0 {
            return Err(StorageError::InvalidProducerBatch {
                producer_id: h.producer_id,
                reason: "a batch with a producer id needs an epoch and a base sequence",
            });
        }
        let Some(e) = self.producers.get(&h.producer_id) else {
            if new == NewProducers::StartAtZero && h.base_sequence != 0 {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    found: h.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(StorageError::ProducerFenced {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: e.epoch,
            });
        }
        let last = last_seq_of(h);
        if h.producer_epoch == e.epoch {
            if let Some(dup) = e.batches.iter().find(|b| b.first_seq == h.base_sequence && b.last_seq == last) {
                return Ok(SequenceCheck::Duplicate(*dup));
            }
        }
        let expected = match (h.producer_epoch > e.epoch, e.batches.back()) {
            (true, _) | (false, None) => 0,
            (false, Some(b)) => next_seq(b.last_seq),
        };
        if h.base_sequence != expected {
            return Err(StorageError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected,
                found: h.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// The leader's check of one append's batches, each against the state
    /// the ones before it leave (only the producers they name are copied).
    /// A retried batch sent alone is answered with its original place
    /// (`Some`); a retried batch among others, or any refusal, fails the
    /// whole append.
    pub(crate) fn check_append<'a>(
        &self,
        headers: impl ExactSizeIterator<Item = &'a BatchHeader>,
        new: NewProducers,
    ) -> Result<Option<BatchMetadata>> {
        let alone = headers.len() == 1;
        let mut staged = ProducerStateManager::new();
        for h in headers.filter(|h| h.producer_id >= 0) {
            if let (None, Some(e)) = (staged.producers.get(&h.producer_id), self.producers.get(&h.producer_id)) {
                staged.producers.insert(h.producer_id, e.clone());
            }
            match staged.check(h, new)? {
                SequenceCheck::Duplicate(dup) if alone => return Ok(Some(dup)),
                SequenceCheck::Duplicate(_) => {
                    return Err(StorageError::DuplicateSequence {
                        producer_id: h.producer_id,
                        first_seq: h.base_sequence,
                    })
                }
                SequenceCheck::Append => staged.update(h),
            }
        }
        Ok(None)
    }

    /// Folds in an appended batch whose header is final (its base offset
    /// assigned). Every replica calls this for every batch it appends.
    pub(crate) fn update(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let meta = BatchMetadata {
            first_seq: h.base_sequence,
            last_seq: last_seq_of(h),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
        };
        let e = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry {
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            last_timestamp: h.max_timestamp,
        });
        if h.producer_epoch > e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        e.batches.push_back(meta);
        while e.batches.len() > MAX_CACHED_BATCHES {
            e.batches.pop_front();
        }
        e.last_timestamp = h.max_timestamp;
    }

    /// Drops producers whose newest batch is `expiration_ms` or more older
    /// than `now_ms` (Kafka's `producer.id.expiration.ms`). Returns how many.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: u64) -> usize {
        let before = self.producers.len();
        let expiration = i64::try_from(expiration_ms).unwrap_or(i64::MAX);
        self.producers.retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration);
        before - self.producers.len()
    }

    /// Folds in every batch of `segments` in `[from, to)` (headers only).
    pub(crate) fn replay(&mut self, segments: &[LogSegment], from: u64, to: u64) -> Result<()> {
        for seg in segments.iter().filter(|s| s.next_offset() > from && s.base_offset() < to) {
            let bytes = seg.bytes()?;
            let mut pos = match seg.find(from, &bytes)? {
                Some((pos, _)) => pos,
                None => continue,
            };
            while pos < bytes.len() as u64 {
                let h = seg.header_at(&bytes, pos)?;
                if h.base_offset >= to {
                    break;
                }
                self.update(&h);
                pos += h.total_len() as u64;
            }
        }
        Ok(())
    }

    /// Encodes the state: magic, version, then per producer its id, epoch,
    /// last timestamp and batches, and a CRC-32 of all before it.
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.producers.len() * 64);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_be_bytes());
        b.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.producers[id];
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&e.epoch.to_be_bytes());
            b.extend_from_slice(&e.last_timestamp.to_be_bytes());
            b.push(e.batches.len() as u8);
            for m in &e.batches {
                b.extend_from_slice(&m.first_seq.to_be_bytes());
                b.extend_from_slice(&m.last_seq.to_be_bytes());
                b.extend_from_slice(&m.first_offset.to_be_bytes());
                b.extend_from_slice(&m.last_offset.to_be_bytes());
                b.extend_from_slice(&m.max_timestamp.to_be_bytes());
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes what [`ProducerStateManager::encode`] wrote; `None` if the
    /// bytes are damaged or of another version (the caller rebuilds from
    /// the log instead).
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, crc) = bytes.split_last_chunk::<4>()?;
        if crc32fast::hash(body) != u32::from_be_bytes(*crc) {
            return None;
        }
        let mut r = Reader(body);
        if r.take::<8>()? != *MAGIC || u16::from_be_bytes(r.take()?) != VERSION {
            return None;
        }
        let count = u32::from_be_bytes(r.take()?);
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let last_timestamp = i64::from_be_bytes(r.take()?);
            let [n] = r.take::<1>()?;
            if usize::from(n) > MAX_CACHED_BATCHES {
                return None;
            }
            let mut batches = VecDeque::with_capacity(usize::from(n));
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    first_offset: u64::from_be_bytes(r.take()?),
                    last_offset: u64::from_be_bytes(r.take()?),
                    max_timestamp: i64::from_be_bytes(r.take()?),
                });
            }
            producers.insert(id, ProducerEntry { epoch, batches, last_timestamp });
        }
        r.0.is_empty().then_some(ProducerStateManager { producers })
    }

    /// Writes the state as of `offset` to `<offset>.snapshot` (atomically).
    pub(crate) fn write_snapshot(&self, dir: &Path, offset: u64) -> Result<()> {
        file_io::write_atomic(&snapshot_path(dir, offset), &self.encode())
    }

    /// Loads the state of the log in `dir` as of `end`: the newest intact
    /// snapshot at or below `end` (snapshots past it are deleted: they
    /// describe a log that was cut), then the batches after it.
    pub(crate) fn load(dir: &Path, segments: &[LogSegment], log_start: u64, end: u64) -> Result<Self> {
        let mut from = segments.first().map_or(log_start, |s| s.base_offset());
        let mut state = ProducerStateManager::new();
        let mut snapshots = list_snapshots(dir)?;
        snapshots.sort_unstable();
        for &offset in snapshots.iter().filter(|&&o| o > end) {
            remove_snapshot(dir, offset);
        }
        for &offset in snapshots.iter().rev().filter(|&&o| o <= end) {
            let path = snapshot_path(dir, offset);
            let bytes = std::fs::read(&path).map_err(|e| StorageError::io(&path, "reading", e))?;
            match Self::decode(&bytes) {
                Some(s) if offset >= from => {
                    state = s;
                    from = offset;
                    break;
                }
                Some(_) => break,
                None => {
                    tracing::warn!(snapshot = %path.display(), "producer-state snapshot is damaged; rebuilding from the log");
                    remove_snapshot(dir, offset);
                }
            }
        }
        state.replay(segments, from, end)?;
        Ok(state)
    }
}

/// Snapshots in `dir` by offset.
pub(crate) fn list_snapshots(dir: &Path) -> Result<Vec<u64>> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, "listing", e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, "listing", e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(&format!(".{SNAPSHOT_SUFFIX}"))) else {
            continue;
        };
        if let Ok(offset) = stem.parse::<u64>() {
            out.push(offset);
        }
    }
    Ok(out)
}

/// Deletes the snapshots of `dir` for which `doomed(offset)` holds.
pub(crate) fn remove_snapshots(dir: &Path, doomed: impl Fn(u64) -> bool) -> Result<()> {
    for offset in list_snapshots(dir)?.into_iter().filter(|&o| doomed(o)) {
        remove_snapshot(dir, offset);
    }
    Ok(())
}

fn remove_snapshot(dir: &Path, offset: u64) {
    let path = snapshot_path(dir, offset);
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(snapshot = %path.display(), error = %e, "cannot delete a producer-state snapshot");
        }
    }
}

fn snapshot_path(dir: &Path, offset: u64) -> PathBuf {
    dir.join(format!("{}.{SNAPSHOT_SUFFIX}", segment::file_stem(offset)))
}

/// Reads fixed-size fields off the front of a buffer.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, last_seq: i32, first_offset: u64) -> BatchMetadata {
        BatchMetadata { first_seq, last_seq, first_offset, last_offset: first_offset + 1, max_timestamp: 7 }
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() {
        let mut s = ProducerStateManager::new();
        s.producers
            .insert(3, ProducerEntry { epoch: 2, batches: [meta(0, 1, 10), meta(2, 3, 20)].into(), last_timestamp: 7 });
        s.producers.insert(-0x7fff, ProducerEntry { epoch: 0, batches: VecDeque::new(), last_timestamp: -1 });
        let bytes = s.encode();
        assert_eq!(ProducerStateManager::decode(&bytes), Some(s));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert_eq!(ProducerStateManager::decode(&bad), None, "flip at {i}");
        }
        assert_eq!(ProducerStateManager::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(ProducerStateManager::decode(&[]), None);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(next_seq(i32::MAX), 0);
        assert_eq!(next_seq(5), 6);
    }
}
