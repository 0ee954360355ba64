//! Encodes records into a batch. Producers (the client) use it; so do tests
//! and benchmarks that need real batches.

use bytes::Bytes;

use super::header::{
    finish, BASE_OFFSET, BASE_SEQUENCE, FIRST_TIMESTAMP, HEADER_LEN, LAST_OFFSET_DELTA, LEADER_EPOCH, MAGIC, MAGIC_AT,
    MAX_TIMESTAMP, NO_PARTITION_LEADER_EPOCH, PRODUCER_EPOCH, PRODUCER_ID, RECORD_COUNT,
};
use super::varint::{put_varint, put_varlong, varlong_len};
use super::{BatchError, BatchHeader};
use crate::compression::Compression;

/// Accumulates records and encodes them as one batch (uncompressed, or
/// compressed as a whole) with
/// `base_offset` 0 (the broker assigns the real one).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: u32,
    first_timestamp: i64,
    max_timestamp: i64,
    producer: (i64, i16, i32),
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::with_capacity(4096)
    }

    /// An empty builder whose buffer starts with `bytes` of room.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_LEN));
        buf.resize(HEADER_LEN, 0);
        BatchBuilder { buf, count: 0, first_timestamp: 0, max_timestamp: i64::MIN, producer: (-1, -1, -1) }
    }

    /// Makes the batch an idempotent producer's: its id, epoch and the
    /// sequence of its first record (the default is -1 for all three: no
    /// producer).
    pub fn set_producer(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer = (producer_id, producer_epoch, base_sequence);
    }

    /// Records appended so far.
    pub fn record_count(&self) -> u32 {
        self.count
    }

    /// Whether no record was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch would take if built now.
    pub fn size_in_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Bytes one more record with these fields would add; lets a producer
    /// decide to close a batch before it outgrows its limit.
    pub fn record_size(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> usize {
        let body = self.body_len(timestamp, key, value, headers);
        varlong_len(body as i64) + body
    }

    fn body_len(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> usize {
        let first = if self.count == 0 { timestamp } else { self.first_timestamp };
        let field = |f: Option<&[u8]>| match f {
            None => 1,
            Some(b) => varlong_len(b.len() as i64) + b.len(),
        };
        let mut n = 1
            + varlong_len(timestamp.wrapping_sub(first))
            + varlong_len(i64::from(self.count))
            + field(key)
            + field(value)
            + varlong_len(headers.len() as i64);
        for (k, v) in headers {
            n += field(Some(k.as_bytes())) + field(*v);
        }
        n
    }

    /// Appends one record. Fails (changing nothing) if a length does not fit
    /// the format's 31-bit fields.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Result<(), BatchError> {
        let too_long = |b: Option<&[u8]>| b.is_some_and(|b| b.len() > i32::MAX as usize);
        if too_long(key)
            || too_long(value)
            || headers.len() > i32::MAX as usize
            || headers.iter().any(|(k, v)| too_long(Some(k.as_bytes())) || too_long(*v))
        {
            return Err(BatchError::Build("a key, value or header is longer than 2^31-1 bytes"));
        }
        if self.count == i32::MAX as u32 {
            return Err(BatchError::Build("a batch holds at most 2^31-1 records"));
        }
        let body = self.body_len(timestamp, key, value, headers);
        if self.buf.len() + body + 10 > u32::MAX as usize {
            return Err(BatchError::Build("a batch is at most 4 GiB"));
        }
        if self.count == 0 {
            self.first_timestamp = timestamp;
        }
        let b = &mut self.buf;
        put_varlong(b, body as i64);
        b.push(0);
        put_varlong(b, timestamp.wrapping_sub(self.first_timestamp));
        put_varint(b, self.count as i32);
        put_bytes(b, key);
        put_bytes(b, value);
        put_varint(b, headers.len() as i32);
        for (k, v) in headers {
            put_bytes(b, Some(k.as_bytes()));
            put_bytes(b, *v);
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        Ok(())
    }

    /// Fills in the header and CRC and returns the encoded batch.
    pub fn build(self) -> Result<Bytes, BatchError> {
        self.build_plain()
    }

    /// Builds the batch with its records compressed by `codec` at `level`
    /// (the codec's default when `None`).
    pub fn build_compressed(self, codec: Compression, level: Option<i32>) -> Result<Bytes, BatchError> {
        codec.check_level(level)?;
        let plain = self.build_plain()?;
        match codec {
            Compression::None => Ok(plain),
            _ => compress_batch(&plain, codec, level),
        }
    }

    fn build_plain(self) -> Result<Bytes, BatchError> {
        if self.count == 0 {
            return Err(BatchError::Build("a batch needs at least one record"));
        }
        let mut b = self.buf;
        // Kafka's RecordBatch v2, big-endian; what its producer writes for a
        // batch no broker has seen (offset 0, no leader epoch).
        b[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&0u64.to_be_bytes());
        b[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
        b[MAGIC_AT] = MAGIC;
        b[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&(self.count - 1).to_be_bytes());
        b[FIRST_TIMESTAMP..FIRST_TIMESTAMP + 8].copy_from_slice(&self.first_timestamp.to_be_bytes());
        b[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&self.count.to_be_bytes());
        let (id, epoch, seq) = self.producer;
        write_producer(&mut b, id, epoch, seq);
        finish(&mut b, 0)?;
        Ok(Bytes::from(b))
    }
}

fn write_producer(b: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    b[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    b[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    b[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
}

/// Stamps an idempotent producer's id, epoch and base sequence on a built
/// batch and recomputes its CRC (the producer assigns sequences when a batch
/// is first sent, after it was built).
pub fn set_producer(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(BatchError::InvalidLength {
            length: header.batch_length,
            reason: "not the length of the bytes given",
        });
    }
    write_producer(batch, producer_id, producer_epoch, base_sequence);
    finish(batch, header.attributes)
}

/// Compresses the records of an uncompressed batch this process built
/// (a producer's, so it can compress off its accumulator's lock): the
/// header is kept but the codec bits, the length and the CRC. The records
/// are not re-validated.
pub fn compress_batch(batch: &[u8], codec: Compression, level: Option<i32>) -> Result<Bytes, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() != 0 {
        return Err(BatchError::Build("the batch is compressed already"));
    }
    if header.total_len() != batch.len() {
        return Err(BatchError::InvalidLength {
            length: header.batch_length,
            reason: "not the length of the bytes given",
        });
    }
    let body = codec.compress(&batch[HEADER_LEN..], level)?;
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&batch[..HEADER_LEN]);
    b.extend_from_slice(&body);
    finish(&mut b, header.attributes | u16::from(codec.id()))?;
    Ok(Bytes::from(b))
}

/// Writes a nullable byte field: its varint length (-1 for null), then it.
pub(crate) fn put_bytes(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
    }
}
