//! Re-encoding a stored batch with some of its records removed (the log
//! cleaner of compacted topics). Offsets do not move: the batch keeps its
//! base offset and last offset delta, and each kept record its offset
//! delta, so the gaps are where the removed records were (Kafka's cleaner
//! does the same). Producer fields, attributes and the leader epoch are
//! kept; the records are compressed again with the batch's codec.

use bytes::Bytes;

use super::builder::put_bytes;
use super::header::{finish, FIRST_TIMESTAMP, HEADER_LEN, LEADER_EPOCH, MAX_TIMESTAMP, RECORD_COUNT};
use super::varint::{put_varint, put_varlong};
use super::{set_base_offset, BatchError, Record, RecordBatch, COMPRESSION_MASK};

/// What filtering a batch left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every record stays: keep the stored bytes.
    Unchanged,
    /// No record stays: drop the batch.
    Empty,
    /// The re-encoded batch.
    Rewritten(Bytes),
}

/// Keeps the records of `batch` that `keep` accepts.
pub fn filter_records(batch: &RecordBatch, mut keep: impl FnMut(&Record) -> bool) -> Result<Filtered, BatchError> {
    let h = *batch.header();
    let mut kept = Vec::new();
    let mut dropped = false;
    for r in batch.records() {
        let r = r?;
        if keep(&r) {
            kept.push(r);
        } else {
            dropped = true;
        }
    }
    if !dropped {
        return Ok(Filtered::Unchanged);
    }
    let Some(first) = kept.first() else { return Ok(Filtered::Empty) };
    let first_timestamp = first.timestamp;
    let mut body = Vec::new();
    let mut record = Vec::new();
    for r in &kept {
        record.clear();
        record.push(0); // attributes
        put_varlong(&mut record, r.timestamp.wrapping_sub(first_timestamp));
        let delta = i32::try_from(r.offset - h.base_offset).map_err(|_| BatchError::Build("offset delta overflow"))?;
        put_varint(&mut record, delta);
        put_bytes(&mut record, r.key.as_deref());
        put_bytes(&mut record, r.value.as_deref());
        put_varint(&mut record, i32::try_from(r.headers.len()).map_err(|_| BatchError::Build("too many headers"))?);
        for header in &r.headers {
            put_bytes(&mut record, Some(header.key.as_bytes()));
            put_bytes(&mut record, header.value.as_deref());
        }
        put_varlong(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    let body = batch.compression().compress(&body, None)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&batch.bytes()[..HEADER_LEN]);
    out.extend_from_slice(&body);
    out[FIRST_TIMESTAMP..FIRST_TIMESTAMP + 8].copy_from_slice(&first_timestamp.to_be_bytes());
    let max_timestamp = if h.attributes & super::TIMESTAMP_TYPE_LOG_APPEND != 0 {
        h.max_timestamp
    } else {
        kept.iter().map(|r| r.timestamp).max().unwrap_or(h.max_timestamp)
    };
    out[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let count = u32::try_from(kept.len()).map_err(|_| BatchError::Build("too many records"))?;
    out[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&count.to_be_bytes());
    out[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&h.partition_leader_epoch.to_be_bytes());
    finish(&mut out, (h.attributes & !COMPRESSION_MASK) | u16::from(batch.compression().id()))?;
    set_base_offset(&mut out, h.base_offset)?;
    Ok(Filtered::Rewritten(Bytes::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;
    use crate::compression::Compression;

    fn batch(codec: Compression) -> RecordBatch {
        let mut b = BatchBuilder::new();
        b.set_producer(7, 1, 100);
        for i in 0..5u8 {
            let value = [i; 3];
            let key = [b'k', i % 2];
            b.append(1000 + i64::from(i), Some(&key), (i != 3).then_some(&value[..]), &[("h", Some(&[i][..]))])
                .unwrap();
        }
        let mut bytes = b.build_compressed(codec, None).unwrap().to_vec();
        set_base_offset(&mut bytes, 40).unwrap();
        RecordBatch::new(Bytes::from(bytes), 1 << 20).unwrap()
    }

    #[test]
    fn kept_records_keep_their_offsets_and_the_batch_its_span() {
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let original = batch(codec);
            let Filtered::Rewritten(bytes) = filter_records(&original, |r| r.offset % 2 == 1).unwrap() else {
                panic!("{codec:?}: expected a rewrite")
            };
            assert!(RecordBatch::new(bytes.clone(), 1 << 20).is_err(), "not a producer's batch: offsets have gaps");
            let rewritten = RecordBatch::stored(bytes, 1 << 20).expect("a valid stored batch (CRC and all)");
            let h = rewritten.header();
            assert_eq!((h.base_offset, h.last_offset()), (40, 44), "{codec:?}");
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (7, 1, 100));
            assert_eq!(rewritten.compression(), codec);
            let kept: Vec<Record> = rewritten.records().map(Result::unwrap).collect();
            let want: Vec<Record> = original.records().map(Result::unwrap).filter(|r| r.offset % 2 == 1).collect();
            assert_eq!(kept, want, "{codec:?}: records (keys, values, tombstones, headers, timestamps) unchanged");
        }
    }

    #[test]
    fn all_or_nothing() {
        let b = batch(Compression::None);
        assert_eq!(filter_records(&b, |_| true).unwrap(), Filtered::Unchanged);
        assert_eq!(filter_records(&b, |_| false).unwrap(), Filtered::Empty);
    }
}
