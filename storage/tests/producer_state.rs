//! Idempotent producers' state in the log (Kafka's producer-state rules):
//! retries answered with their first offsets, gaps and fenced epochs
//! refused, and the state rebuilt identically from the log after reopen,
//! truncation, retention and on a follower.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::sync::Arc;

use bytes::Bytes;
use strata_record::batch::{BatchBuilder, RecordBatch};
use strata_storage::{FlushPolicy, Log, LogConfig, ManualClock, NewProducers, StorageError};

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 4 * 1024,
        index_interval_bytes: 256,
        preallocate_bytes: 4096,
        flush: FlushPolicy::Interval { interval_ms: 3_600_000 },
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// A batch of `n` 100-byte records from producer `pid` at `epoch`, first
/// sequence `seq`, timestamps from `ts`.
fn pbatch(pid: i64, epoch: i16, seq: i32, n: usize, ts: i64) -> Bytes {
    let mut b = BatchBuilder::new();
    b.set_producer(pid, epoch, seq);
    for i in 0..n {
        b.append(ts + i as i64, None, Some(&[seq as u8; 100]), &[]).unwrap();
    }
    b.build().unwrap()
}

fn append(log: &Log, b: &Bytes) -> Result<(u64, u64), StorageError> {
    log.append(b, 0).map(|i| (i.first_offset, i.last_offset))
}

#[test]
fn a_retried_batch_gets_its_first_offsets_and_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    let b0 = pbatch(1, 0, 0, 3, 1000);
    assert_eq!(append(&log, &b0).unwrap(), (0, 2));
    assert_eq!(append(&log, &pbatch(2, 0, 0, 2, 1000)).unwrap(), (3, 4), "another producer");
    assert_eq!(append(&log, &pbatch(1, 0, 3, 2, 1000)).unwrap(), (5, 6));
    assert_eq!(append(&log, &b0).unwrap(), (0, 2), "a retry of the first batch");
    assert_eq!(append(&log, &pbatch(1, 0, 3, 2, 1000)).unwrap(), (5, 6), "a retry of the second");
    assert_eq!(log.log_end_offset(), 7, "nothing written twice");
    // A batch with no producer is never deduplicated.
    let plain = {
        let mut b = BatchBuilder::new();
        b.append(1, None, Some(b"x"), &[]).unwrap();
        b.build().unwrap()
    };
    append(&log, &plain).unwrap();
    append(&log, &plain).unwrap();
    assert_eq!(log.log_end_offset(), 9);
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    for i in 0..7 {
        append(&log, &pbatch(1, 0, i, 1, 1000)).unwrap();
    }
    assert_eq!(append(&log, &pbatch(1, 0, 2, 1, 1000)).unwrap(), (2, 2), "five back is still a duplicate");
    let err = append(&log, &pbatch(1, 0, 1, 1, 1000)).unwrap_err();
    assert!(matches!(err, StorageError::OutOfOrderSequence { producer_id: 1, expected: 7, found: 1 }), "{err}");
    assert_eq!(log.producer_entry(1).unwrap().batches.len(), 5);
}

#[test]
fn gaps_and_fenced_epochs_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    append(&log, &pbatch(1, 3, 0, 2, 1000)).unwrap();
    let err = append(&log, &pbatch(1, 3, 5, 1, 1000)).unwrap_err();
    assert!(matches!(err, StorageError::OutOfOrderSequence { expected: 2, found: 5, .. }), "{err}");
    assert!(err.to_string().contains("sequence 5 where 2 was expected"), "{err}");
    let err = append(&log, &pbatch(1, 2, 2, 1, 1000)).unwrap_err();
    assert!(matches!(err, StorageError::ProducerFenced { epoch: 2, current: 3, .. }), "{err}");
    let err = append(&log, &pbatch(1, 4, 2, 1, 1000)).unwrap_err();
    assert!(matches!(err, StorageError::OutOfOrderSequence { expected: 0, found: 2, .. }), "a new epoch starts at 0");
    assert_eq!(log.log_end_offset(), 2);
    append(&log, &pbatch(1, 4, 0, 1, 1000)).unwrap();
    let err = append(&log, &pbatch(1, 3, 2, 1, 1000)).unwrap_err();
    assert!(matches!(err, StorageError::ProducerFenced { epoch: 3, current: 4, .. }), "{err}");
    assert_eq!(log.log_end_offset(), 3);
    // A producer the log does not know starts at 0, unless the caller says
    // its state expired (then anywhere).
    let err = append(&log, &pbatch(9, 0, 500, 1, 1000)).unwrap_err();
    assert!(matches!(err, StorageError::OutOfOrderSequence { expected: 0, found: 500, .. }), "{err}");
    let lenient =
        |b: Bytes| log.append_batches_with(&[RecordBatch::new(b, usize::MAX).unwrap()], 0, NewProducers::AnySequence);
    lenient(pbatch(9, 0, 500, 1, 1000)).unwrap();
    // Sequences wrap from i32::MAX to 0.
    lenient(pbatch(10, 0, i32::MAX - 1, 2, 1000)).unwrap();
    append(&log, &pbatch(10, 0, 0, 1, 1000)).unwrap();
}

#[test]
fn several_batches_of_one_append_are_checked_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    let batches = |v: &[Bytes]| v.iter().map(|b| RecordBatch::new(b.clone(), usize::MAX).unwrap()).collect::<Vec<_>>();
    let first = batches(&[pbatch(1, 0, 0, 2, 1), pbatch(1, 0, 2, 2, 1), pbatch(2, 0, 0, 1, 1)]);
    log.append_batches(&first, 0).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    let gap = batches(&[pbatch(1, 0, 4, 1, 1), pbatch(1, 0, 6, 1, 1)]);
    assert!(matches!(log.append_batches(&gap, 0), Err(StorageError::OutOfOrderSequence { expected: 5, .. })));
    let with_dup = batches(&[pbatch(1, 0, 2, 2, 1), pbatch(1, 0, 4, 1, 1)]);
    let err = log.append_batches(&with_dup, 0).unwrap_err();
    assert!(matches!(err, StorageError::DuplicateSequence { producer_id: 1, first_seq: 2 }), "{err}");
    assert_eq!(log.log_end_offset(), 5, "a refused append writes none of its batches");
}

#[test]
fn the_state_is_rebuilt_from_snapshots_and_the_log_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut sent = Vec::new();
    {
        let log = Log::open(dir.path(), cfg()).unwrap();
        for i in 0..60 {
            let b = pbatch(i % 3, 0, (i / 3) as i32 * 2, 2, 1000 + i);
            append(&log, &b).unwrap();
            sent.push(b);
        }
        assert!(log.segment_count() > 3, "rolled: snapshots were written");
        log.close().unwrap();
    }
    let snapshots = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".snapshot"))
        .count();
    assert!(snapshots >= 3, "{snapshots} snapshots");
    let reopened = Log::open(dir.path(), cfg()).unwrap();
    let entries: Vec<_> = (0..3).map(|p| reopened.producer_entry(p).unwrap()).collect();
    // A retry of any of the last five batches of each producer is a duplicate.
    for (i, b) in sent.iter().enumerate().skip(45) {
        assert_eq!(append(&reopened, b).unwrap().0, i as u64 * 2, "batch {i} after reopen");
    }
    assert_eq!(reopened.log_end_offset(), 120);
    drop(reopened);
    // Without snapshots (deleted or damaged), the log alone gives the same state.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "snapshot") {
            std::fs::write(&path, b"damaged").unwrap();
        }
    }
    let rebuilt = Log::open(dir.path(), cfg()).unwrap();
    let again: Vec<_> = (0..3).map(|p| rebuilt.producer_entry(p).unwrap()).collect();
    assert_eq!(again, entries);
}

#[test]
fn a_follower_holds_the_leaders_state_and_truncation_forgets_what_it_cut() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = Log::open(ld.path(), cfg()).unwrap();
    let follower = Log::open(fd.path(), cfg()).unwrap();
    for i in 0..10 {
        append(&leader, &pbatch(1, 0, i * 3, 3, 1000)).unwrap();
    }
    let read = leader.read(0, 1 << 20).unwrap();
    let fetched: Vec<RecordBatch> =
        strata_record::batch::split_batches(read.batches, usize::MAX).map(|b| b.unwrap()).collect();
    follower.append_as_follower(&fetched).unwrap();
    assert_eq!(follower.producer_entry(1), leader.producer_entry(1));
    // The follower becomes leader: a retry of the old leader's batch is a duplicate.
    assert_eq!(append(&follower, &pbatch(1, 0, 27, 3, 1000)).unwrap(), (27, 29));
    // Truncating the last two batches: they are no longer duplicates but
    // the next expected sequence.
    follower.truncate_to(24).unwrap();
    assert_eq!(follower.producer_entry(1).unwrap().batches.back().unwrap().last_seq, 23);
    assert_eq!(append(&follower, &pbatch(1, 0, 24, 3, 1000)).unwrap(), (24, 26));
}

#[test]
fn idle_producers_expire_and_retention_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = LogConfig { producer_id_expiration_ms: 10_000, ..cfg() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    for i in 0..40 {
        append(&log, &pbatch(1, 0, i, 1, 1_000_000)).unwrap();
    }
    append(&log, &pbatch(2, 0, 0, 1, 1_009_000)).unwrap();
    log.delete_before(30).unwrap();
    assert!(log.log_start_offset() >= 30);
    assert_eq!(append(&log, &pbatch(1, 0, 39, 1, 1_000_000)).unwrap().0, 39, "state kept past retention");
    clock.advance(10_500);
    log.enforce_retention().unwrap();
    assert_eq!(log.producer_entry(1), None, "idle for 10.5 s of 10: expired");
    assert!(log.producer_entry(2).is_some(), "idle for 1.5 s");
    // An expired producer is unknown: it starts at 0, or anywhere if the
    // caller allows it.
    assert!(append(&log, &pbatch(1, 0, 40, 1, 1_010_500)).is_err());
    log.append_batches_with(
        &[RecordBatch::new(pbatch(1, 0, 40, 1, 1_010_500), usize::MAX).unwrap()],
        0,
        NewProducers::AnySequence,
    )
    .unwrap();
}
