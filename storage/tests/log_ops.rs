//! Every public `Log` / `LogManager` operation against its contract, with
//! small segments so rolls, indexes and retention are exercised.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strata_record::batch::{self, BatchBuilder, RecordBatch};
use strata_storage::{
    FlushPolicy, Log, LogConfig, LogManager, ManualClock, NewProducers, StorageError, TopicPartition,
};

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

/// A batch of `n` records with keys `k{tag}-{i}`, values of `size` bytes and
/// timestamps `ts + i`.
fn batch(tag: u64, n: usize, size: usize, ts: i64) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        let key = format!("k{tag}-{i}");
        b.append(ts + i as i64, Some(key.as_bytes()), Some(&vec![tag as u8; size]), &[("h", Some(b"v"))]).unwrap();
    }
    b.build().unwrap()
}

/// Every record in the log as (offset, key, timestamp).
fn read_all(log: &Log) -> Vec<(u64, String, i64)> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let r = log.read(at, 1 << 20).unwrap();
        assert!(!r.batches.is_empty(), "empty read at {at}");
        for b in batch::split_batches(r.batches, usize::MAX) {
            for rec in b.unwrap().records() {
                let rec = rec.unwrap();
                if rec.offset >= at {
                    out.push((rec.offset, String::from_utf8(rec.key.unwrap().to_vec()).unwrap(), rec.timestamp));
                }
            }
        }
        at = r.next_offset;
    }
    out
}

#[test]
fn append_assigns_dense_offsets_and_rewrites_header_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    let a = log.append(&batch(1, 3, 10, 1000), 5).unwrap();
    let b = log.append(&batch(2, 2, 10, 2000), 6).unwrap();
    assert_eq!((a.first_offset, a.last_offset), (0, 2));
    assert_eq!((b.first_offset, b.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);
    let r = log.read(3, 1 << 20).unwrap();
    let stored = RecordBatch::new(r.batches.clone(), usize::MAX).unwrap();
    assert_eq!(stored.header().base_offset, 3);
    assert_eq!(stored.header().partition_leader_epoch, 6);
    // Only base_offset and epoch differ from what the producer sent: the CRC
    // and everything it covers are byte-for-byte the input.
    let sent = batch(2, 2, 10, 2000);
    assert_eq!(&r.batches[16..], &sent[16..]);
}

#[test]
fn invalid_batch_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    log.append(&batch(1, 2, 10, 1), 0).unwrap();
    let (end, size) = (log.log_end_offset(), log.size_bytes());
    let mut bad = batch(2, 2, 10, 1).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(matches!(log.append(&bad, 0), Err(StorageError::InvalidBatch(batch::BatchError::CrcMismatch { .. }))));
    assert!(matches!(log.append(&bad[..30], 0), Err(StorageError::InvalidBatch(_))));
    assert!(matches!(log.append(&[], 0), Err(StorageError::InvalidBatch(_))));
    let small = LogConfig { max_batch_bytes: 100, ..cfg() };
    log.set_config(small).unwrap();
    assert!(matches!(
        log.append(&batch(3, 5, 100, 1), 0),
        Err(StorageError::InvalidBatch(batch::BatchError::TooLarge { .. }))
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
    drop(log);
    let log = Log::open(dir.path(), cfg()).unwrap();
    assert_eq!(log.log_end_offset(), end);
}

#[test]
fn read_returns_whole_batches_from_the_one_holding_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig { segment_bytes: 1 << 20, ..cfg() }).unwrap();
    let mut sizes = Vec::new();
    for i in 0..20 {
        sizes.push(batch(i, 4, 50, 0).len());
        log.append(&batch(i, 4, 50, 0), 0).unwrap();
    }
    // Offset 6 is inside the second batch (offsets 4..8).
    let r = log.read(6, 1).unwrap();
    assert_eq!(r.batches.len(), sizes[1], "at least one whole batch even over max_bytes");
    assert_eq!(r.next_offset, 8);
    let r = log.read(6, sizes[1] + sizes[2] + 10).unwrap();
    assert_eq!(r.batches.len(), sizes[1] + sizes[2]);
    assert_eq!(r.next_offset, 12);
    let r = log.read(80, 100).unwrap();
    assert!(r.batches.is_empty());
    assert_eq!(r.next_offset, 80);
    assert!(matches!(log.read(81, 100), Err(StorageError::OffsetOutOfRange { offset: 81, log_start: 0, log_end: 80 })));
    let r = log.read_up_to(0, 1 << 20, 10).unwrap();
    assert_eq!(r.next_offset, 8, "batch 8..12 straddles the bound and is held back");
    assert!(log.read_up_to(8, 1 << 20, 8).unwrap().batches.is_empty());
}

#[test]
fn segments_roll_by_size_and_reads_span_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    for i in 0..60 {
        log.append(&batch(i, 5, 40, i as i64 * 10), 0).unwrap();
    }
    assert!(log.segment_count() > 3, "{} segments", log.segment_count());
    let all = read_all(&log);
    assert_eq!(all.len(), 300);
    assert!(all.iter().enumerate().all(|(i, r)| r.0 == i as u64));
    for base in log.segment_base_offsets() {
        assert!(dir.path().join(format!("{base:020}.log")).exists());
        assert!(dir.path().join(format!("{base:020}.index")).exists());
        assert!(dir.path().join(format!("{base:020}.timeindex")).exists());
    }
}

#[test]
fn segments_roll_by_age_and_when_the_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let c = LogConfig { segment_bytes: 1 << 20, segment_ms: 1000, ..cfg() };
    let log = Log::open_with_clock(dir.path(), c, clock.clone()).unwrap();
    log.append(&batch(0, 1, 10, 1_000_000), 0).unwrap();
    clock.advance(500);
    log.append(&batch(1, 1, 10, 1_000_500), 0).unwrap();
    assert_eq!(log.segment_count(), 1);
    clock.advance(600);
    log.append(&batch(2, 1, 10, 1_001_100), 0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);

    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig { segment_bytes: 1 << 20, index_interval_bytes: 1, max_index_entries: 4, ..cfg() };
    let log = Log::open(dir.path(), c).unwrap();
    for i in 0..12 {
        log.append(&batch(i, 1, 10, 0), 0).unwrap();
    }
    assert!(log.segment_count() >= 2);
    assert_eq!(read_all(&log).len(), 12);
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    // Batch i holds timestamps 1000*i + 0..5, except batch 7 which goes back
    // in time (producer clocks are not monotonic).
    for i in 0..40i64 {
        let ts = if i == 7 { 500 } else { 1000 * i };
        log.append(&batch(i as u64, 5, 30, ts), 0).unwrap();
    }
    let model = read_all(&log);
    for target in [-5, 0, 3, 4, 5, 499, 500, 999, 1000, 6004, 6005, 7000, 20_002, 39_004, 39_005, 50_000] {
        let want = model.iter().find(|r| r.2 >= target).map(|r| (r.0, r.2));
        assert_eq!(log.offset_for_timestamp(target).unwrap(), want, "target {target}");
    }
}

/// KIP-734's MAX_TIMESTAMP: the first record carrying the largest
/// timestamp, wherever it sits among segments, also after a reopen (the
/// segments' maxima come back from their time indexes).
#[test]
fn max_timestamp_offset_is_the_first_record_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig { segment_bytes: 1 << 20, index_interval_bytes: 1, max_index_entries: 4, ..cfg() };
    let log = Log::open(dir.path(), c.clone()).unwrap();
    assert_eq!(log.max_timestamp_offset().unwrap(), None, "an empty log has none");
    // Batch i holds timestamps base..base+5; batches 3 and 9 peak at the
    // same largest base, so batch 3's first record at the top wins.
    for i in 0..14u64 {
        let ts = if i == 3 || i == 9 { 90_000 } else { 1000 * i as i64 };
        log.append(&batch(i * 5, 5, 30, ts), 0).unwrap();
    }
    assert!(log.segment_count() > 2, "spread over segments");
    let model = read_all(&log);
    let top = model.iter().map(|r| r.2).max().unwrap();
    let want = model.iter().find(|r| r.2 == top).map(|r| (r.0, r.2));
    assert_eq!(log.max_timestamp_offset().unwrap(), want);
    log.close().unwrap();
    let log = Log::open(dir.path(), c).unwrap();
    assert_eq!(log.max_timestamp_offset().unwrap(), want, "after a reopen");
}

#[test]
fn truncate_to_cuts_at_batch_boundaries_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    for i in 0..50 {
        log.append(&batch(i, 4, 40, 0), 0).unwrap();
    }
    let segs = log.segment_count();
    assert!(segs > 2);
    assert_eq!(log.truncate_to(1000).unwrap(), 200, "beyond the end is a no-op");
    assert_eq!(log.truncate_to(42).unwrap(), 40, "mid-batch cuts the whole batch");
    assert_eq!(log.log_end_offset(), 40);
    assert!(log.segment_count() < segs);
    let a = log.append(&batch(99, 2, 40, 0), 1).unwrap();
    assert_eq!(a.first_offset, 40);
    let all = read_all(&log);
    assert_eq!(all.len(), 42);
    assert_eq!(all[40].1, "k99-0");
    assert_eq!(log.truncate_to(0).unwrap(), 0);
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.append(&batch(5, 1, 1, 0), 2).unwrap().first_offset, 0);
    drop(log);
    let log = Log::open(dir.path(), cfg()).unwrap();
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn delete_before_raises_log_start_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), cfg()).unwrap();
    for i in 0..50 {
        log.append(&batch(i, 4, 40, 0), 0).unwrap();
    }
    let held = log.read(0, 1 << 20).unwrap().batches;
    let res = log.delete_before(101).unwrap();
    assert!(res.segments_deleted > 0);
    assert_eq!(log.log_start_offset(), 101);
    assert!(matches!(log.read(100, 10), Err(StorageError::OffsetOutOfRange { log_start: 101, .. })));
    assert_eq!(read_all(&log).first().map(|r| r.0), Some(101));
    // Bytes handed out before the deletion stay valid (the mapping outlives
    // the unlinked file).
    assert!(RecordBatch::new(held.slice(..batch(0, 4, 40, 0).len()), usize::MAX).is_ok());
    assert!(matches!(log.delete_before(10_000), Err(StorageError::OffsetOutOfRange { .. })));
    drop(log);
    let log = Log::open(dir.path(), cfg()).unwrap();
    assert_eq!(log.log_start_offset(), 101);
    assert_eq!(log.log_end_offset(), 200);
}

#[test]
fn retention_by_size_and_age_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(100_000));
    let c = LogConfig { retention_bytes: Some(20 * 1024), ..cfg() };
    let log = Log::open_with_clock(dir.path(), c, clock.clone()).unwrap();
    for i in 0..200 {
        log.append(&batch(i, 4, 40, 100_000), 0).unwrap();
    }
    let before = log.size_bytes();
    let res = log.enforce_retention().unwrap();
    assert!(res.segments_deleted > 0);
    assert!(log.size_bytes() < before);
    assert!(log.size_bytes() >= 20 * 1024 - 8 * 1024, "keeps at least retention_bytes minus one segment");
    assert!(log.size_bytes() <= 20 * 1024 + 8 * 1024);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert_eq!(log.log_end_offset(), 800);

    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig { retention_ms: Some(10_000), ..cfg() };
    let log = Log::open_with_clock(dir.path(), c, clock.clone()).unwrap();
    for i in 0..100i64 {
        log.append(&batch(i as u64, 4, 40, 100_000 + i * 100), 0).unwrap();
    }
    assert_eq!(log.enforce_retention().unwrap().segments_deleted, 0);
    clock.advance(10_000 + 5_000);
    let res = log.enforce_retention().unwrap();
    assert!(res.segments_deleted > 0);
    assert!(log.log_start_offset() > 0 && log.log_end_offset() == 400);
    clock.advance(1_000_000);
    log.enforce_retention().unwrap();
    assert_eq!(log.log_start_offset(), 400, "everything expired, including the active segment");
    assert_eq!(log.log_end_offset(), 400);
    assert_eq!(log.append(&batch(7, 1, 1, 0), 0).unwrap().first_offset, 400);
}

#[test]
fn group_commit_makes_concurrent_appends_durable_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig { flush: FlushPolicy::GroupCommit { max_delay_ms: 1 }, segment_bytes: 1 << 20, ..cfg() };
    let log = Arc::new(Log::open(dir.path(), c).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let info = log.append(&batch(t * 100 + i, 2, 20, 0), 0).unwrap();
                    assert!(log.recovery_point() > info.last_offset, "acknowledged before durable");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.log_end_offset(), 200);
    assert_eq!(log.recovery_point(), 200);
}

#[test]
fn an_unsynced_append_leaves_the_durability_wait_to_its_caller() {
    let one = |tag| RecordBatch::new(batch(tag, 2, 20, 0), usize::MAX).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig { flush: FlushPolicy::GroupCommit { max_delay_ms: 0 }, ..cfg() };
    let log = Log::open(dir.path(), c).unwrap();
    let (info, delay) = log.append_batches_unsynced(&[one(1)], 0, NewProducers::StartAtZero).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 1));
    let delay = delay.expect("group commit owes a durability wait");
    assert_eq!(log.recovery_point(), 0, "not yet durable");
    log.wait_durable_for(&info, delay).unwrap();
    assert_eq!(log.recovery_point(), 2);

    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig { flush: FlushPolicy::Interval { interval_ms: 1000 }, ..cfg() };
    let log = Log::open(dir.path(), c).unwrap();
    let (_, delay) = log.append_batches_unsynced(&[one(2)], 0, NewProducers::StartAtZero).unwrap();
    assert_eq!(delay, None, "the interval policy acknowledges before syncing");
}

#[test]
fn interval_policy_flushes_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let c = LogConfig { flush: FlushPolicy::Interval { interval_ms: 1000 }, ..cfg() };
    let log = Log::open_with_clock(dir.path(), c, clock.clone()).unwrap();
    log.append(&batch(1, 2, 20, 0), 0).unwrap();
    assert_eq!(log.recovery_point(), 0);
    assert!(!log.flush_if_due().unwrap());
    clock.advance(1000);
    assert!(log.flush_if_due().unwrap());
    assert_eq!(log.recovery_point(), 2);
}

#[test]
fn log_manager_opens_lists_creates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(dir.path(), cfg()).unwrap();
    assert!(matches!(LogManager::open(dir.path(), cfg()), Err(StorageError::DirectoryLocked { .. })));
    let a = TopicPartition::new("orders", 0).unwrap();
    let b = TopicPartition::new("orders", 1).unwrap();
    m.get_or_create(&a, None).unwrap().append(&batch(1, 3, 10, 0), 0).unwrap();
    m.get_or_create(&b, None).unwrap();
    std::fs::create_dir(dir.path().join("not a partition")).unwrap();
    assert_eq!(m.list(), vec![a.clone(), b.clone()]);
    m.close().unwrap();

    let m = LogManager::open(dir.path(), cfg()).unwrap();
    assert_eq!(m.list(), vec![a.clone(), b.clone()]);
    let log = m.get(&a).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.log_end_offset(), 3);
    drop(log);
    assert!(m.delete(&b).unwrap());
    assert!(!dir.path().join("orders-1").exists());
    assert_eq!(m.list(), vec![a]);
    assert!(m.offline().is_empty());
}

#[test]
fn config_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        LogConfig { segment_bytes: 10, ..cfg() },
        LogConfig { index_interval_bytes: 0, ..cfg() },
        LogConfig { flush: FlushPolicy::Interval { interval_ms: 0 }, ..cfg() },
    ] {
        assert!(matches!(Log::open(dir.path(), bad), Err(StorageError::InvalidArgument { .. })));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, size: usize },
    Truncate(u64),
    DeleteBefore(u64),
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..300).prop_map(|(records, size)| Op::Append { records, size }),
        1 => (0u64..100).prop_map(Op::Truncate),
        1 => (0u64..100).prop_map(Op::DeleteBefore),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Against a model (a list of record keys by offset), any sequence of
    /// appends, truncations, deletions and restarts keeps offsets dense and
    /// content exact.
    #[test]
    fn log_matches_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let c = LogConfig { segment_bytes: 2048, index_interval_bytes: 128, preallocate_bytes: 1024, ..cfg() };
        let mut log = Log::open(dir.path(), c.clone()).unwrap();
        let mut model: Vec<String> = Vec::new();
        let mut start = 0u64;
        let mut tag = 0u64;
        for op in ops {
            match op {
                Op::Append { records, size } => {
                    tag += 1;
                    let info = log.append(&batch(tag, records, size, tag as i64), 0).unwrap();
                    prop_assert_eq!(info.first_offset, model.len() as u64);
                    model.extend((0..records).map(|i| format!("k{tag}-{i}")));
                }
                Op::Truncate(o) => {
                    let before = log.log_end_offset();
                    match log.truncate_to(o) {
                        Ok(end) => {
                            prop_assert!(end <= o.max(end) && end <= before);
                            model.truncate(end as usize);
                            start = start.min(end);
                        }
                        Err(StorageError::OffsetOutOfRange { .. }) => prop_assert!(o < start),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
                Op::DeleteBefore(o) => match log.delete_before(o) {
                    Ok(_) => start = start.max(o),
                    Err(StorageError::OffsetOutOfRange { .. }) => prop_assert!(o > model.len() as u64),
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                },
                Op::Reopen { clean } => {
                    if clean { log.close().unwrap() } else { drop(log) }
                    log = Log::open(dir.path(), c.clone()).unwrap();
                }
            }
            prop_assert_eq!(log.log_end_offset(), model.len() as u64);
            prop_assert_eq!(log.log_start_offset(), start);
            let got = read_all(&log);
            let want: Vec<(u64, String)> = model.iter().enumerate().skip(start as usize).map(|(i, k)| (i as u64, k.clone())).collect();
            let got: Vec<(u64, String)> = got.into_iter().map(|(o, k, _)| (o, k)).collect();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn background_thread_flushes_interval_logs_and_releases_cold_mappings() {
    let dir = tempfile::tempdir().unwrap();
    let c = LogConfig { flush: FlushPolicy::Interval { interval_ms: 20 }, ..cfg() };
    let mut m = LogManager::open(dir.path(), c).unwrap();
    m.start_background(strata_storage::BackgroundConfig {
        flush_check: std::time::Duration::from_millis(5),
        checkpoint_interval: std::time::Duration::from_millis(5),
        retention_check: std::time::Duration::from_secs(3600),
        ..strata_storage::BackgroundConfig::default()
    });
    let log = m.get_or_create(&TopicPartition::new("t", 0).unwrap(), None).unwrap();
    for i in 0..40 {
        log.append(&batch(i, 4, 40, 0), 0).unwrap();
    }
    assert!(log.segment_count() > 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.recovery_point() < 160 {
        assert!(std::time::Instant::now() < deadline, "background flush never came");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Mappings of sealed segments come and go; reads remap on demand.
    log.release_cold_mappings();
    assert_eq!(read_all(&log).len(), 160);
    drop(log);
    m.close().unwrap();
}

#[test]
fn append_batches_is_all_or_nothing_on_size_and_dense() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig { max_batch_bytes: 4000, ..cfg() }).unwrap();
    let batches: Vec<RecordBatch> =
        (0..3).map(|i| RecordBatch::new(batch(i, 2 + i as usize, 20, 0), usize::MAX).unwrap()).collect();
    let info = log.append_batches(&batches, 3).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 8));
    assert_eq!(read_all(&log).len(), 9);
    let big = RecordBatch::new(batch(9, 50, 200, 0), usize::MAX).unwrap();
    let mixed = vec![batches[0].clone(), big];
    assert!(matches!(
        log.append_batches(&mixed, 3),
        Err(StorageError::InvalidBatch(batch::BatchError::TooLarge { .. }))
    ));
    assert_eq!(log.log_end_offset(), 9, "a too-large batch anywhere appends nothing");
    assert!(matches!(log.append_batches(&[], 3), Err(StorageError::InvalidArgument { .. })));
}
