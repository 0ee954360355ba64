//! Loading a shard: read an offsets partition's log from its start to its
//! end (on the leader, its log is the truth: followers truncate to it) and
//! replay every record in order. Blocking I/O: run it on a blocking thread.

use strata_record::batch::{split_stored_batches, Record};
use strata_storage::{Log, StorageError};

use super::shard::Shard;

/// Bytes read from the log per step.
const READ_BYTES: usize = 1 << 20;

/// What a load read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LoadStats {
    /// Records replayed.
    pub records: u64,
    /// Records skipped because they did not parse.
    pub skipped: u64,
    /// The offset the load read up to (exclusive).
    pub end_offset: u64,
}

/// Replays `log` from its start up to `end` (exclusive; the log end when
/// the load began) into a fresh shard. A record that does not parse is
/// logged and skipped; a batch that fails validation or a read error fails
/// the load.
pub(crate) fn load_shard(log: &Log, end: u64) -> Result<(Shard, LoadStats), StorageError> {
    let mut shard = Shard::new();
    let mut stats = LoadStats { end_offset: end, ..LoadStats::default() };
    for_each_record(log, end, |record| {
        stats.records += 1;
        // A copy made by compaction stands at its source's position.
        let at = super::compaction::source_offset(&record);
        if let Err(e) = shard.replay(at, record.key.as_deref(), record.value.as_deref()) {
            stats.skipped += 1;
            tracing::warn!(dir = %log.dir().display(), offset = record.offset, error = %strata_record::ErrorChain(&e), "skipping an offsets record");
        }
    })?;
    shard.finish_load();
    Ok((shard, stats))
}

/// Calls `f` with every record of `log` from its start up to `end`
/// (exclusive), in offset order. A batch that fails validation or a read
/// error stops the scan with that error.
pub(crate) fn for_each_record(log: &Log, end: u64, mut f: impl FnMut(Record)) -> Result<(), StorageError> {
    let max_batch = log.config().max_batch_bytes.max(READ_BYTES);
    let mut next = log.log_start_offset();
    while next < end {
        let read = log.read_up_to(next, READ_BYTES, end)?;
        if read.batches.is_empty() {
            break;
        }
        for batch in split_stored_batches(read.batches, max_batch) {
            for record in batch?.records() {
                let record = record?;
                if record.offset >= next && record.offset < end {
                    f(record);
                }
            }
        }
        if read.next_offset <= next {
            break;
        }
        next = read.next_offset;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::record::{OffsetKey, OffsetValue};
    use strata_record::batch::{BatchBuilder, RecordBatch};
    use strata_storage::LogConfig;

    fn batch(records: &[(OffsetKey, Option<i64>)]) -> RecordBatch {
        let mut b = BatchBuilder::new();
        for (k, v) in records {
            let v =
                v.map(|o| OffsetValue { offset: o, metadata: String::new(), commit_timestamp: 1 }.encode().unwrap());
            b.append(1, Some(&k.encode().unwrap()), v.as_deref(), &[]).unwrap();
        }
        RecordBatch::new(b.build().unwrap(), usize::MAX).unwrap()
    }

    #[test]
    fn a_log_replays_into_the_same_state_every_time_and_skips_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("__consumer_offsets-0"), LogConfig::default()).unwrap();
        let k = |g: &str, p| OffsetKey { group: g.into(), topic: "t".into(), partition: p };
        log.append_batches(&[batch(&[(k("a", 0), Some(1)), (k("a", 1), Some(2))])], 0).unwrap();
        log.append_batches(&[batch(&[(k("a", 0), Some(3)), (k("b", 0), Some(9))])], 0).unwrap();
        // A record from a newer build (unknown key version) and one without a key.
        let mut b = BatchBuilder::new();
        b.append(1, Some(&[0, 2, 0, 0]), Some(b"x"), &[]).unwrap();
        b.append(1, None, Some(b"y"), &[]).unwrap();
        log.append_batches(&[RecordBatch::new(b.build().unwrap(), usize::MAX).unwrap()], 0).unwrap();
        log.append_batches(&[batch(&[(k("b", 0), None)])], 0).unwrap();
        let end = log.log_end_offset();
        let (s1, stats) = load_shard(&log, end).unwrap();
        assert_eq!(stats, LoadStats { records: 7, skipped: 2, end_offset: end });
        assert_eq!(s1.group("a").unwrap().offset("t", 0).unwrap().offset, 3);
        assert_eq!(s1.group("a").unwrap().offset("t", 1).unwrap().offset, 2);
        assert!(s1.group("b").is_none());
        let (s2, _) = load_shard(&log, end).unwrap();
        assert_eq!(s1, s2);
        // Up to an earlier end: the state as it was then.
        let (s3, _) = load_shard(&log, 4).unwrap();
        assert_eq!(s3.group("b").unwrap().offset("t", 0).unwrap().offset, 9);
    }
}
