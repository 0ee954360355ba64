//! The fixed-size record batch header: field offsets, parsing, and the two
//! fields a broker rewrites in place. Every field is big-endian, as Kafka's
//! RecordBatch v2 has it.

use super::BatchError;

/// Format version this build reads and writes.
pub const MAGIC: u8 = 2;
/// Bytes of the fixed header, records follow it.
pub const HEADER_LEN: usize = 61;
/// Bytes before the part `batch_length` counts (`base_offset` and
/// `batch_length` themselves).
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batch_length` (a header with no room for records).
pub const MIN_BATCH_LENGTH: u32 = (HEADER_LEN - LOG_OVERHEAD) as u32;

pub(crate) const BASE_OFFSET: usize = 0;
pub(crate) const BATCH_LENGTH: usize = 8;
pub(crate) const LEADER_EPOCH: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC: usize = 17;
/// First byte the CRC covers.
pub(crate) const CRC_START: usize = 21;
pub(crate) const ATTRIBUTES: usize = 21;
pub(crate) const LAST_OFFSET_DELTA: usize = 23;
pub(crate) const FIRST_TIMESTAMP: usize = 27;
pub(crate) const MAX_TIMESTAMP: usize = 35;
pub(crate) const PRODUCER_ID: usize = 43;
pub(crate) const PRODUCER_EPOCH: usize = 51;
pub(crate) const BASE_SEQUENCE: usize = 53;
pub(crate) const RECORD_COUNT: usize = 57;

/// Mask of the compression codec bits in `attributes` (0 none, 1 gzip,
/// 2 snappy, 3 lz4, 4 zstd).
pub const COMPRESSION_MASK: u16 = 0x07;
/// Set when timestamps were assigned by the broker (log append time).
pub const TIMESTAMP_TYPE_LOG_APPEND: u16 = 0x08;
/// Set on a batch written by a transactional producer.
pub const TRANSACTIONAL: u16 = 0x10;
/// Set on a control batch (transaction markers), never sent by producers.
pub const CONTROL: u16 = 0x20;
/// Set when `first_timestamp` holds a compacted log's delete horizon.
pub const DELETE_HORIZON: u16 = 0x40;
/// `partition_leader_epoch` of a batch no leader has appended yet
/// (Kafka's `NO_PARTITION_LEADER_EPOCH`).
pub const NO_PARTITION_LEADER_EPOCH: u32 = u32::MAX;

/// The decoded fixed header of a record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record; assigned by the broker on append.
    pub base_offset: u64,
    /// Bytes after the `batch_length` field.
    pub batch_length: u32,
    /// Leader epoch of the leader that appended the batch.
    pub partition_leader_epoch: u32,
    /// Format version.
    pub magic: u8,
    /// CRC-32C (Castagnoli) over the bytes after this field.
    pub crc: u32,
    /// Compression codec, timestamp type and flags.
    pub attributes: u16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: u32,
    /// Timestamp of the first record (ms since the epoch).
    pub first_timestamp: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when unused.
    pub producer_id: i64,
    /// Idempotent producer epoch, -1 when unused.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when unused.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: u32,
}

impl BatchHeader {
    /// Parses the fixed header from the start of `buf` and checks only what
    /// the header alone can tell: the length field's sanity and the magic.
    /// Cheap enough for scanning a log; [`super::validate`] checks the rest.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated { needed: HEADER_LEN, available: buf.len() });
        }
        let h = BatchHeader {
            base_offset: u64_at(buf, BASE_OFFSET),
            batch_length: u32_at(buf, BATCH_LENGTH),
            partition_leader_epoch: u32_at(buf, LEADER_EPOCH),
            magic: buf[MAGIC_AT],
            crc: u32_at(buf, CRC),
            attributes: u16::from_be_bytes([buf[ATTRIBUTES], buf[ATTRIBUTES + 1]]),
            last_offset_delta: u32_at(buf, LAST_OFFSET_DELTA),
            first_timestamp: u64_at(buf, FIRST_TIMESTAMP) as i64,
            max_timestamp: u64_at(buf, MAX_TIMESTAMP) as i64,
            producer_id: u64_at(buf, PRODUCER_ID) as i64,
            producer_epoch: u16::from_be_bytes([buf[PRODUCER_EPOCH], buf[PRODUCER_EPOCH + 1]]) as i16,
            base_sequence: u32_at(buf, BASE_SEQUENCE) as i32,
            record_count: u32_at(buf, RECORD_COUNT),
        };
        if h.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength { length: h.batch_length, reason: "smaller than the batch header" });
        }
        if h.magic != MAGIC {
            return Err(BatchError::BadMagic { found: h.magic, expected: MAGIC });
        }
        Ok(h)
    }

    /// Total bytes of the batch, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record.
    /// Saturates instead of overflowing: `base_offset` comes from bytes the
    /// CRC does not cover, so it may be anything.
    pub fn last_offset(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.last_offset_delta))
    }

    /// Offset after the last record.
    pub fn next_offset(&self) -> u64 {
        self.last_offset().saturating_add(1)
    }

    /// The compression codec id (0 = none).
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }
}

/// Rewrites `base_offset` in place. It is outside the CRC, so the batch stays
/// valid; this is how a leader assigns offsets without re-encoding.
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) -> Result<(), BatchError> {
    put_at(batch, BASE_OFFSET, &base_offset.to_be_bytes())
}

/// Rewrites `partition_leader_epoch` in place (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: u32) -> Result<(), BatchError> {
    put_at(batch, LEADER_EPOCH, &epoch.to_be_bytes())
}

fn put_at(batch: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), BatchError> {
    let end = at + bytes.len();
    let available = batch.len();
    let dst = batch.get_mut(at..end).ok_or(BatchError::Truncated { needed: HEADER_LEN, available })?;
    dst.copy_from_slice(bytes);
    Ok(())
}

// Callers check `buf.len() >= HEADER_LEN` first; the slices are in bounds.
fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(b)
}

/// Completes an encoded batch whose header and records are in place: sets
/// `batch_length` from the buffer's length, the attributes, and the CRC.
pub(crate) fn finish(batch: &mut [u8], attributes: u16) -> Result<(), BatchError> {
    if batch.len() < HEADER_LEN {
        return Err(BatchError::Build("a batch is at least its header"));
    }
    let length =
        u32::try_from(batch.len() - LOG_OVERHEAD).map_err(|_| BatchError::Build("a batch is at most 4 GiB"))?;
    batch[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc_of(batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// The CRC-32C of a batch: over every byte after the crc field. Callers
/// check `batch.len() >= HEADER_LEN` first.
pub(crate) fn crc_of(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}
