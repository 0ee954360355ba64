//! Records inside a batch: the varint layout, a non-allocating walk used by
//! validation, and the zero-copy [`Record`] handed to consumers.

use std::ops::Range;

use bytes::Bytes;

use super::varint::{get_varint, get_varlong};
use super::BatchError;

/// One record as a consumer sees it. `key`, `value` and header values are
/// slices of the batch's `Bytes`: no copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset (`base_offset` + offset delta).
    pub offset: u64,
    /// Timestamp in ms since the Unix epoch.
    pub timestamp: i64,
    /// Key, or `None` for a null key.
    pub key: Option<Bytes>,
    /// Value, or `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in the order the producer added them.
    pub headers: Vec<RecordHeader>,
}

/// A record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header name.
    pub key: String,
    /// Header value, `None` for null.
    pub value: Option<Bytes>,
}

/// Where one record's parts lie in the batch buffer; produced by [`walk`]
/// without allocating.
#[derive(Debug, Clone)]
pub(crate) struct RecordLayout {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
    pub headers: Range<usize>,
    pub header_count: u32,
    /// Position after the record.
    pub end: usize,
}

/// Parses the record starting at `pos` in `buf` (which ends where the batch
/// ends) and checks its structure, including that header keys are UTF-8.
pub(crate) fn walk(buf: &[u8], pos: usize, index: u32) -> Result<RecordLayout, BatchError> {
    let mut p = pos;
    let len = get_varint(buf, &mut p, "record length").map_err(|e| e.at_record(index))?;
    let len = usize::try_from(len).map_err(|_| malformed(index, "record length", "negative"))?;
    let end = p
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| malformed(index, "record length", "runs past the end of the batch"))?;
    let rec = &buf[..end];
    let attributes = *rec.get(p).ok_or_else(|| malformed(index, "attributes", "missing"))?;
    if attributes != 0 {
        return Err(malformed(index, "attributes", "record attributes must be 0"));
    }
    p += 1;
    let timestamp_delta = get_varlong(rec, &mut p, "timestamp delta").map_err(|e| e.at_record(index))?;
    let offset_delta = get_varint(rec, &mut p, "offset delta").map_err(|e| e.at_record(index))?;
    let key = bytes_field(rec, &mut p, index, "key")?;
    let value = bytes_field(rec, &mut p, index, "value")?;
    let count = get_varint(rec, &mut p, "header count").map_err(|e| e.at_record(index))?;
    let header_count = u32::try_from(count).map_err(|_| malformed(index, "header count", "negative"))?;
    let headers_start = p;
    for _ in 0..header_count {
        let k = bytes_field(rec, &mut p, index, "header key")?.ok_or_else(|| malformed(index, "header key", "null"))?;
        if std::str::from_utf8(&rec[k]).is_err() {
            return Err(malformed(index, "header key", "not UTF-8"));
        }
        bytes_field(rec, &mut p, index, "header value")?;
    }
    if p != end {
        return Err(malformed(index, "record length", "does not match the fields it holds"));
    }
    Ok(RecordLayout { timestamp_delta, offset_delta, key, value, headers: headers_start..end, header_count, end })
}

fn bytes_field(buf: &[u8], p: &mut usize, index: u32, what: &'static str) -> Result<Option<Range<usize>>, BatchError> {
    let len = get_varint(buf, p, what).map_err(|e| e.at_record(index))?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| malformed(index, what, "negative length"))?;
    let start = *p;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| malformed(index, what, "length runs past the end of the record"))?;
    *p = end;
    Ok(Some(start..end))
}

fn malformed(index: u32, reason: &'static str, detail: &'static str) -> BatchError {
    BatchError::MalformedRecord { index, reason, detail }
}

/// Builds the [`Record`] for a walked layout; `batch` is the whole batch.
pub(crate) fn materialize(
    batch: &Bytes,
    layout: &RecordLayout,
    base_offset: u64,
    first_timestamp: i64,
    index: u32,
) -> Result<Record, BatchError> {
    let mut headers = Vec::with_capacity(layout.header_count as usize);
    let hbuf = &batch[..layout.end];
    let mut p = layout.headers.start;
    for _ in 0..layout.header_count {
        let k =
            bytes_field(hbuf, &mut p, index, "header key")?.ok_or_else(|| malformed(index, "header key", "null"))?;
        let key = std::str::from_utf8(&hbuf[k]).map_err(|_| malformed(index, "header key", "not UTF-8"))?.to_owned();
        let value = bytes_field(hbuf, &mut p, index, "header value")?.map(|r| batch.slice(r));
        headers.push(RecordHeader { key, value });
    }
    Ok(Record {
        offset: base_offset.wrapping_add(layout.offset_delta as u64),
        timestamp: first_timestamp.wrapping_add(layout.timestamp_delta),
        key: layout.key.clone().map(|r| batch.slice(r)),
        value: layout.value.clone().map(|r| batch.slice(r)),
        headers,
    })
}
