//! The record batch: Strata's one format for records on the wire and on disk
//! (`docs/storage.md`, "Record batch"): Kafka's RecordBatch v2 (magic 2)
//! exactly — big-endian fields, a CRC-32C (Castagnoli), Kafka's attribute
//! bits — so a batch a Kafka client built is stored and served as it came,
//! and Kafka's tools can read Strata's segments.
//!
//! ```text
//! base_offset u64 · batch_length u32 · partition_leader_epoch u32 · magic u8 ·
//! crc u32 · attributes u16 · last_offset_delta u32 · first_timestamp i64 ·
//! max_timestamp i64 · producer_id i64 · producer_epoch i16 ·
//! base_sequence i32 · record_count u32 · records…
//! ```
//!
//! `batch_length` counts the bytes after itself. The CRC covers every byte
//! after the crc field, so `base_offset` and `partition_leader_epoch` can be
//! assigned by the broker in place without recomputing it. Those two fields
//! are therefore *not* protected by the CRC; the log protects `base_offset`
//! by requiring dense offsets.

mod builder;
mod error;
mod filter;
mod header;
mod record;
pub mod varint;

use bytes::Bytes;

use crate::compression::Compression;

pub use builder::{compress_batch, set_producer, BatchBuilder};
pub use error::BatchError;
pub use filter::{filter_records, Filtered};
pub use header::{
    set_base_offset, set_partition_leader_epoch, BatchHeader, COMPRESSION_MASK, CONTROL, DELETE_HORIZON, HEADER_LEN,
    LOG_OVERHEAD, MAGIC, MIN_BATCH_LENGTH, NO_PARTITION_LEADER_EPOCH, TIMESTAMP_TYPE_LOG_APPEND, TRANSACTIONAL,
};
pub use record::{Record, RecordHeader};

/// Validates `buf` as exactly one record batch: length, magic, size limit,
/// CRC, compression codec, and every record's structure against the header
/// (count, offset deltas, max timestamp) — decompressing a compressed batch
/// (bounded by [`uncompressed_limit`]) to check its records. Returns the
/// parsed header.
pub fn validate(buf: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, BatchError> {
    validate_parts(buf, max_batch_bytes, Offsets::Dense).map(|(header, _)| header)
}

/// [`validate`] for a batch read back from a log, where compaction may have
/// removed records (see [`RecordBatch::stored`]).
pub fn validate_stored(buf: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, BatchError> {
    validate_parts(buf, max_batch_bytes, Offsets::Gaps).map(|(header, _)| header)
}

/// The most bytes a compressed batch's records may inflate to: at least
/// 64 MiB (a 1 MiB batch compressed 64:1), at least the batch limit, never
/// more than 1 GiB. Bounds every decompression of bytes from outside.
pub fn uncompressed_limit(max_batch_bytes: usize) -> usize {
    max_batch_bytes.clamp(64 << 20, 1 << 30)
}

/// [`validate`], also giving back the decompressed records of a compressed
/// batch (so a reader does not decompress twice).
fn validate_parts(
    buf: &[u8],
    max_batch_bytes: usize,
    offsets: Offsets,
) -> Result<(BatchHeader, Option<Vec<u8>>), BatchError> {
    let header = BatchHeader::parse(buf)?;
    let total = header.total_len();
    if total > max_batch_bytes {
        return Err(BatchError::TooLarge { size: total, max: max_batch_bytes });
    }
    if buf.len() < total {
        return Err(BatchError::Truncated { needed: total, available: buf.len() });
    }
    if buf.len() > total {
        return Err(BatchError::InvalidLength { length: header.batch_length, reason: "shorter than the bytes given" });
    }
    let computed = header::crc_of(buf);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch { stored: header.crc, computed });
    }
    let codec =
        Compression::from_id(header.compression()).ok_or(BatchError::UnsupportedCompression(header.compression()))?;
    if codec == Compression::None {
        check_records(&buf[HEADER_LEN..], &header, offsets)?;
        return Ok((header, None));
    }
    let records = codec.decompress(&buf[HEADER_LEN..], uncompressed_limit(max_batch_bytes))?;
    check_records(&records, &header, offsets)?;
    Ok((header, Some(records)))
}

/// What the records' offset deltas may look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offsets {
    /// A producer's batch: 0, 1, 2, … and `last_offset_delta` the last.
    Dense,
    /// A stored batch, which log compaction may have thinned: strictly
    /// increasing, within `last_offset_delta`.
    Gaps,
}

/// Checks the records section (`records`, decompressed if need be) against
/// the header.
fn check_records(records: &[u8], header: &BatchHeader, offsets: Offsets) -> Result<(), BatchError> {
    if header.record_count == 0 {
        return Err(BatchError::InvalidHeader("record_count is 0: a batch holds at least one record"));
    }
    let mut pos = 0;
    let mut found: u32 = 0;
    let mut max_ts = i64::MIN;
    let mut previous_delta = -1i64;
    while pos < records.len() {
        if found == header.record_count {
            return Err(BatchError::RecordCountMismatch {
                declared: header.record_count,
                found: found.saturating_add(1),
            });
        }
        let layout = record::walk(records, pos, found)?;
        let delta = i64::from(layout.offset_delta);
        let in_order = match offsets {
            Offsets::Dense => delta == i64::from(found),
            Offsets::Gaps => delta > previous_delta && delta <= i64::from(header.last_offset_delta),
        };
        if !in_order {
            return Err(BatchError::MalformedRecord {
                index: found,
                reason: "offset delta",
                detail: match offsets {
                    Offsets::Dense => "offset deltas must count up from 0",
                    Offsets::Gaps => "offset deltas must increase, up to last_offset_delta",
                },
            });
        }
        previous_delta = delta;
        max_ts = max_ts.max(header.first_timestamp.wrapping_add(layout.timestamp_delta));
        pos = layout.end;
        found += 1;
    }
    if found != header.record_count {
        return Err(BatchError::RecordCountMismatch { declared: header.record_count, found });
    }
    if offsets == Offsets::Dense && header.last_offset_delta != found - 1 {
        return Err(BatchError::InvalidHeader("last_offset_delta is not record_count - 1"));
    }
    if header.attributes & TIMESTAMP_TYPE_LOG_APPEND == 0 && header.max_timestamp != max_ts {
        return Err(BatchError::InvalidHeader("max_timestamp is not the largest record timestamp"));
    }
    Ok(())
}

/// A validated batch over shared bytes; records decode from it zero-copy
/// (from the decompressed records when the batch is compressed).
#[derive(Debug, Clone)]
pub struct RecordBatch {
    bytes: Bytes,
    header: BatchHeader,
    /// The records section: a slice of `bytes`, or its decompressed form.
    records: Bytes,
}

impl RecordBatch {
    /// Validates `bytes` as exactly one batch (see [`validate`]).
    pub fn new(bytes: Bytes, max_batch_bytes: usize) -> Result<Self, BatchError> {
        Self::with_offsets(bytes, max_batch_bytes, Offsets::Dense)
    }

    /// Validates `bytes` as one batch read from a log, where compaction may
    /// have removed records: offset deltas need only increase, within the
    /// batch's span. For replicas and consumers.
    pub fn stored(bytes: Bytes, max_batch_bytes: usize) -> Result<Self, BatchError> {
        Self::with_offsets(bytes, max_batch_bytes, Offsets::Gaps)
    }

    fn with_offsets(bytes: Bytes, max_batch_bytes: usize, offsets: Offsets) -> Result<Self, BatchError> {
        let (header, decompressed) = validate_parts(&bytes, max_batch_bytes, offsets)?;
        let records = match decompressed {
            Some(records) => Bytes::from(records),
            None => bytes.slice(HEADER_LEN..),
        };
        Ok(RecordBatch { bytes, header, records })
    }

    /// The batch's compression codec.
    pub fn compression(&self) -> Compression {
        // `new` refused any other id.
        Compression::from_id(self.header.compression()).unwrap_or_default()
    }

    /// The same batch re-encoded with `codec` (the broker's recompression
    /// for a topic whose `compression.type` is not `producer`): every header
    /// field is kept but the codec bits, the length and the CRC. The
    /// records are already validated and decompressed: they are shared,
    /// not checked again.
    pub fn recompressed(&self, codec: Compression, level: Option<i32>) -> Result<RecordBatch, BatchError> {
        let body = codec.compress(&self.records, level)?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&self.bytes[..HEADER_LEN]);
        out.extend_from_slice(&body);
        header::finish(&mut out, (self.header.attributes & !COMPRESSION_MASK) | u16::from(codec.id()))?;
        let header = BatchHeader::parse(&out)?;
        Ok(RecordBatch { bytes: Bytes::from(out), header, records: self.records.clone() })
    }

    /// The parsed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The encoded batch, exactly as stored.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Gives back the encoded batch.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The records, in offset order.
    pub fn records(&self) -> Records<'_> {
        Records { batch: self, pos: 0, index: 0 }
    }
}

/// Iterator over a batch's records. Items are `Result` only because decoding
/// never trusts its input; a batch that passed [`validate`] yields no error.
#[derive(Debug)]
pub struct Records<'a> {
    batch: &'a RecordBatch,
    pos: usize,
    index: u32,
}

impl Iterator for Records<'_> {
    type Item = Result<Record, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let records = &self.batch.records;
        if self.index >= self.batch.header.record_count || self.pos >= records.len() {
            return None;
        }
        let h = &self.batch.header;
        let item = record::walk(records, self.pos, self.index).and_then(|layout| {
            self.pos = layout.end;
            record::materialize(records, &layout, h.base_offset, h.first_timestamp, self.index)
        });
        self.index += 1;
        if item.is_err() {
            self.pos = records.len();
        }
        Some(item)
    }
}

/// Splits a buffer of back-to-back batches (a produce request) into
/// validated batches. Stops at the first error.
pub fn split_batches(bytes: Bytes, max_batch_bytes: usize) -> BatchSplitter {
    BatchSplitter { rest: bytes, max_batch_bytes, failed: false, stored: false }
}

/// [`split_batches`] for batches read from a log (a fetch response, a
/// replica fetch): see [`RecordBatch::stored`].
pub fn split_stored_batches(bytes: Bytes, max_batch_bytes: usize) -> BatchSplitter {
    BatchSplitter { rest: bytes, max_batch_bytes, failed: false, stored: true }
}

/// Iterator returned by [`split_batches`].
#[derive(Debug)]
pub struct BatchSplitter {
    rest: Bytes,
    max_batch_bytes: usize,
    failed: bool,
    stored: bool,
}

impl Iterator for BatchSplitter {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let item = BatchHeader::parse(&self.rest).and_then(|h| {
            let total = h.total_len();
            if total > self.max_batch_bytes {
                return Err(BatchError::TooLarge { size: total, max: self.max_batch_bytes });
            }
            if total > self.rest.len() {
                return Err(BatchError::Truncated { needed: total, available: self.rest.len() });
            }
            let bytes = self.rest.split_to(total);
            if self.stored {
                RecordBatch::stored(bytes, self.max_batch_bytes)
            } else {
                RecordBatch::new(bytes, self.max_batch_bytes)
            }
        });
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests;
