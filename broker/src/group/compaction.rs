//! Compaction of the offsets topic by key: the coordinator rewrites the
//! latest record of every live key below the high watermark `hw` at the end
//! of the log, then deletes everything below `hw`, so an offsets partition
//! holds about one record per committed (group, topic, partition) plus the
//! commits since, however long the cluster runs.
//!
//! Each rewritten record carries the log position of the record it copies
//! in the header [`SOURCE_OFFSET_HEADER`]; replay ([`source_offset`])
//! orders it by that position, so a commit made after `hw` (whether it
//! landed before or after the copies) still wins, and a copy left behind by
//! a compaction that was cut short (leadership moved) changes nothing.
//! Tombstones and keys they deleted are not copied: below `hw` they vanish.
//!
//! The copies are appended like any commit (acks=all, the shard's leader
//! epoch), and only once all are committed does the leader raise its log
//! start to `hw`; followers follow the leader's log start from its fetch
//! answers (`fetcher`), and one that fell behind it starts over there.

use std::collections::BTreeMap;

use strata_record::batch::Record;
use strata_storage::{Log, StorageError};

use super::coordinator::ShardHandle;
use super::loader::for_each_record;
use super::record::{OffsetKey, OffsetValue};
use crate::service::BrokerService;

/// The header naming, in a rewritten record, the position of its source.
pub(crate) const SOURCE_OFFSET_HEADER: &str = "strata.source-offset";

/// Records rewritten per append (one batch each).
const COPIES_PER_BATCH: usize = 1000;

/// The position a record stands for in replay: its source's, for a copy
/// made by compaction (a valid header below the record's own offset), else
/// its own.
pub(crate) fn source_offset(record: &Record) -> u64 {
    record
        .headers
        .iter()
        .find(|h| h.key == SOURCE_OFFSET_HEADER)
        .and_then(|h| h.value.as_deref())
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(u64::from_be_bytes)
        .filter(|&src| src < record.offset)
        .unwrap_or(record.offset)
}

/// The latest record of each key in `[log start, hw)`: key → (the position
/// it stands for, the value or `None` for a tombstone). Records that do not
/// parse are skipped (the loader logs them).
pub(crate) fn latest_below(
    log: &Log,
    hw: u64,
) -> Result<BTreeMap<OffsetKey, (u64, Option<OffsetValue>)>, StorageError> {
    let mut latest: BTreeMap<OffsetKey, (u64, Option<OffsetValue>)> = BTreeMap::new();
    for_each_record(log, hw, |record| {
        let Some(Ok(key)) = record.key.as_deref().map(OffsetKey::decode) else { return };
        let Ok(value) = record.value.as_deref().map(OffsetValue::decode).transpose() else { return };
        let at = source_offset(&record);
        if latest.get(&key).is_none_or(|(seen, _)| *seen <= at) {
            latest.insert(key, (at, value));
        }
    })?;
    Ok(latest)
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Compacted {
    /// Records below the old high watermark that are gone now.
    pub records_removed: u64,
    /// Live keys rewritten.
    pub records_copied: u64,
    /// The new log start offset.
    pub log_start: u64,
}

impl BrokerService {
    /// Compacts the shard's offsets partition if at least `min_records`
    /// records lie below its high watermark and at most half of them are
    /// live keys (else copying would not pay). `None` when nothing was due.
    pub(crate) async fn compact_offsets(&self, h: &ShardHandle, min_records: u64) -> Result<Option<Compacted>, String> {
        let p = h.partition.clone();
        let (start, hw) = (p.log.log_start_offset(), p.high_watermark());
        let live = h.lock().groups().map(|g| g.offsets().count() as u64).sum::<u64>();
        if hw.saturating_sub(start) < min_records.max(2 * live) {
            return Ok(None);
        }
        let log = p.log.clone();
        let latest = tokio::task::spawn_blocking(move || latest_below(&log, hw))
            .await
            .map_err(|e| format!("scan task failed: {e}"))?
            .map_err(|e| format!("scanning the offsets log: {}", strata_record::ErrorChain(&e)))?;
        let copies: Vec<(OffsetKey, Option<OffsetValue>, u64)> =
            latest.into_iter().filter_map(|(k, (at, v))| v.map(|v| (k, Some(v), at))).collect();
        for chunk in copies.chunks(COPIES_PER_BATCH) {
            let records: Vec<(OffsetKey, Option<OffsetValue>)> =
                chunk.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
            let sources: Vec<u64> = chunk.iter().map(|(_, _, at)| *at).collect();
            self.append_offset_records_from(h, &records, Some(&sources))
                .await
                .map_err(|e| strata_record::ErrorChain(&e).to_string())?;
        }
        if p.leader_epoch_if_leader() != Some(h.epoch) {
            return Err("leadership moved during the compaction".into());
        }
        let log = p.log.clone();
        tokio::task::spawn_blocking(move || log.delete_before(hw))
            .await
            .map_err(|e| format!("delete task failed: {e}"))?
            .map_err(|e| format!("raising the log start: {}", strata_record::ErrorChain(&e)))?;
        Ok(Some(Compacted { records_removed: hw - start, records_copied: copies.len() as u64, log_start: hw }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::loader::load_shard;
    use strata_record::batch::{BatchBuilder, RecordBatch};
    use strata_storage::LogConfig;

    fn key(p: u32) -> OffsetKey {
        OffsetKey { group: "g".into(), topic: "t".into(), partition: p }
    }

    fn value(o: i64) -> Vec<u8> {
        OffsetValue { offset: o, metadata: String::new(), commit_timestamp: 1 }.encode().unwrap()
    }

    /// Appends one record; `source` marks it as a compaction copy.
    fn append(log: &Log, k: &OffsetKey, v: Option<i64>, source: Option<&[u8]>) {
        let mut b = BatchBuilder::new();
        let headers: Vec<(&str, Option<&[u8]>)> = source.map(|s| (SOURCE_OFFSET_HEADER, Some(s))).into_iter().collect();
        b.append(1, Some(&k.encode().unwrap()), v.map(value).as_deref(), &headers).unwrap();
        log.append_batches(&[RecordBatch::new(b.build().unwrap(), usize::MAX).unwrap()], 0).unwrap();
    }

    #[test]
    fn a_copy_stands_at_its_source_and_never_beats_a_later_commit() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("__consumer_offsets-0"), LogConfig::default()).unwrap();
        append(&log, &key(0), Some(1), None); // 0
        append(&log, &key(1), Some(10), None); // 1
        append(&log, &key(0), Some(2), None); // 2: the latest of key 0 below hw = 3
                                              // A commit after the scan point, then the (late) copies.
        append(&log, &key(0), Some(3), None); // 3
        append(&log, &key(0), Some(2), Some(&2u64.to_be_bytes())); // 4: copy of 2
        append(&log, &key(1), Some(10), Some(&1u64.to_be_bytes())); // 5: copy of 1
        let (shard, _) = load_shard(&log, log.log_end_offset()).unwrap();
        assert_eq!(shard.group("g").unwrap().offset("t", 0).unwrap().offset, 3, "the later commit wins");
        assert_eq!(shard.group("g").unwrap().offset("t", 1).unwrap().offset, 10);
        // What a scan below 3 keeps, and the same state after deleting it.
        let latest = latest_below(&log, 3).unwrap();
        assert_eq!(latest.get(&key(0)).map(|(at, v)| (*at, v.as_ref().map(|v| v.offset))), Some((2, Some(2))));
        log.delete_before(3).unwrap();
        let (after, _) = load_shard(&log, log.log_end_offset()).unwrap();
        assert_eq!(after, shard);
    }

    #[test]
    fn source_headers_are_checked() {
        let rec = |offset, value: Option<Vec<u8>>| Record {
            offset,
            timestamp: 0,
            key: None,
            value: None,
            headers: vec![strata_record::batch::RecordHeader {
                key: SOURCE_OFFSET_HEADER.into(),
                value: value.map(Into::into),
            }],
        };
        assert_eq!(source_offset(&rec(10, Some(4u64.to_be_bytes().to_vec()))), 4);
        assert_eq!(source_offset(&rec(10, Some(11u64.to_be_bytes().to_vec()))), 10, "not in the future");
        assert_eq!(source_offset(&rec(10, Some(vec![1, 2]))), 10, "malformed: ignored");
        assert_eq!(source_offset(&rec(10, None)), 10);
    }
}
