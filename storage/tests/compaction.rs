//! Log compaction against a model (`docs/storage.md`, "Compaction"): after
//! a pass the cleanable part holds exactly the latest record of each key
//! (tombstones only while younger than `delete_retention_ms`), in offset
//! order at their original offsets; everything above it is untouched; every
//! offset reads (gaps are skipped); the log reopens the same; a second pass
//! changes nothing. With fail points (`--features failpoints`), a crash in
//! the middle of a pass loses nothing. Fail points are global: every test
//! holds a `fail::FailScenario` (which serializes them).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use strata_record::batch::{self, BatchBuilder, RecordBatch};
use strata_storage::{CleanOptions, FlushPolicy, Log, LogConfig, ManualClock};

const T0: i64 = 1_700_000_000_000;
/// Tombstones written before this are past `delete_retention_ms` at `NOW`.
const RETENTION_MS: u64 = 10_000;
const NOW: i64 = T0 + 1_000_000;

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        preallocate_bytes: 4096,
        flush: FlushPolicy::Interval { interval_ms: 3_600_000 },
        retention_ms: None,
        compact: true,
        delete_retention_ms: RETENTION_MS,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> Log {
    Log::open_with_clock(dir, cfg(), Arc::new(ManualClock::new(NOW))).unwrap()
}

/// One record to write: key, value (`None`: a tombstone), timestamp.
type Write = (u8, Option<u16>, i64);

/// A record as read back: (offset, key, value, timestamp).
type Stored = (u64, Vec<u8>, Option<Vec<u8>>, i64);

fn value_of(v: u16) -> Vec<u8> {
    format!("value-{v}-{}", "x".repeat(usize::from(v % 50))).into_bytes()
}

fn write(log: &Log, batches: &[Vec<Write>]) {
    for records in batches {
        let mut b = BatchBuilder::new();
        for (key, value, ts) in records {
            let key = [b'k', *key];
            let value = value.map(value_of);
            b.append(*ts, Some(&key), value.as_deref(), &[("h", Some(b"v"))]).unwrap();
        }
        log.append(&b.build_compressed(strata_record::compression::Compression::Lz4, None).unwrap(), 0).unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
}

/// Every record from the log start, read batch by batch.
fn read_all(log: &Log) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let r = log.read(at, 1 << 20).unwrap();
        assert!(!r.batches.is_empty(), "empty read at {at} (log end {})", log.log_end_offset());
        for b in batch::split_stored_batches(r.batches, usize::MAX) {
            for rec in b.unwrap().records() {
                let rec = rec.unwrap();
                if rec.offset >= at {
                    out.push((rec.offset, rec.key.unwrap().to_vec(), rec.value.map(|v| v.to_vec()), rec.timestamp));
                }
            }
        }
        assert!(r.next_offset > at, "no progress at {at}");
        at = r.next_offset;
    }
    out
}

/// What the log must hold after one pass cleaning everything below
/// `cleanable_end` (the model).
fn model(before: &[Stored], cleanable_end: u64) -> Vec<Stored> {
    let mut latest: BTreeMap<&[u8], u64> = BTreeMap::new();
    for (o, k, _, _) in before.iter().filter(|r| r.0 < cleanable_end) {
        latest.insert(k, *o);
    }
    let horizon = NOW - RETENTION_MS as i64;
    before
        .iter()
        .filter(|(o, k, v, ts)| *o >= cleanable_end || (latest[&k[..]] == *o && (v.is_some() || *ts > horizon)))
        .cloned()
        .collect()
}

/// The first offset of the active segment: everything below is sealed.
fn active_base(log: &Log) -> u64 {
    *log.segment_base_offsets().last().unwrap()
}

fn clean(log: &Log) -> strata_storage::CleanReport {
    log.clean(&CleanOptions { now_ms: NOW, max_keys: 1_000_000, io_bytes_per_sec: None }).unwrap()
}

fn writes() -> impl Strategy<Value = Vec<Vec<Write>>> {
    let record = (0u8..8, proptest::option::weighted(0.8, any::<u16>()), prop_oneof![Just(T0), Just(NOW - 1)]);
    proptest::collection::vec(proptest::collection::vec(record, 1..12), 5..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_pass_keeps_the_latest_record_per_key_at_its_offset(batches in writes()) {
        let _serial = fail::FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        write(&log, &batches);
        let before = read_all(&log);
        let end = log.log_end_offset();
        let sealed = active_base(&log);
        let report = clean(&log);
        let after = read_all(&log);
        prop_assert_eq!(&after, &model(&before, sealed), "report {:?}", report);
        prop_assert_eq!(log.log_end_offset(), end);
        // Every offset reads: a consumer positioned inside a gap reaches the
        // next record (following each read's next offset).
        for at in (0..end).step_by(7) {
            let mut from = at;
            let mut first = None;
            while first.is_none() && from < end {
                let r = log.read(from, 1 << 20).unwrap();
                prop_assert!(r.next_offset > from, "no progress at {}", from);
                first = batch::split_stored_batches(r.batches, usize::MAX)
                    .flat_map(|b| b.unwrap().records().map(Result::unwrap).collect::<Vec<_>>())
                    .find(|rec| rec.offset >= at)
                    .map(|rec| rec.offset);
                from = r.next_offset;
            }
            let want = after.iter().find(|s| s.0 >= at).map(|s| s.0);
            prop_assert_eq!(first, want, "read at {}", at);
        }
        // A second pass finds nothing; the log reopens the same.
        let again = clean(&log);
        prop_assert_eq!(again.records_removed, 0);
        log.close().unwrap();
        let reopened = open(dir.path());
        prop_assert_eq!(read_all(&reopened), after);
    }
}

#[test]
fn the_active_segment_uncommitted_records_and_young_ones_are_never_cleaned() {
    let _serial = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let same_key: Vec<Vec<Write>> = (0..40).map(|i| vec![(1, Some(i), T0)]).collect();
    write(&log, &same_key);
    // Nothing committed yet below a low high watermark: nothing cleanable.
    log.set_high_watermark(3);
    assert_eq!(clean(&log).records_removed, 0);
    log.set_high_watermark(log.log_end_offset());
    // A lag longer than the records' age: nothing cleanable either.
    log.set_config(LogConfig { min_compaction_lag_ms: 2_000_000, ..cfg() }).unwrap();
    assert_eq!(clean(&log).records_removed, 0);
    log.set_config(cfg()).unwrap();
    let sealed = active_base(&log);
    let report = clean(&log);
    assert!(report.records_removed > 0, "{report:?}");
    let after = read_all(&log);
    let below: Vec<&Stored> = after.iter().filter(|r| r.0 < sealed).collect();
    assert_eq!(below.len(), 1, "one record of the key is left in the cleaned part, its latest there: {below:?}");
    assert_eq!(below[0].0, sealed - 1);
    assert_eq!(after.iter().filter(|r| r.0 >= sealed).count() as u64, 40 - sealed, "the active segment is untouched");
    // Off unless compact is set.
    log.set_config(LogConfig { compact: false, ..cfg() }).unwrap();
    write(&log, &same_key);
    assert_eq!(clean(&log), strata_storage::CleanReport::default());
}

#[test]
fn the_cleaned_offset_survives_a_restart() {
    let _serial = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let batches: Vec<Vec<Write>> = (0..80).map(|i| vec![(i as u8 % 4, Some(i), T0)]).collect();
    write(&log, &batches);
    assert!(log.dirty_ratio(NOW) > 0.9);
    let first = clean(&log);
    assert!(first.segments_rewritten > 0);
    assert_eq!(log.dirty_ratio(NOW), 0.0);
    log.close().unwrap();
    let log = open(dir.path());
    assert_eq!(log.dirty_ratio(NOW), 0.0, "nothing to clean again after a restart");
    assert_eq!(clean(&log).cleaned_up_to, first.cleaned_up_to);
    // A damaged checkpoint only costs a full pass.
    log.close().unwrap();
    std::fs::write(dir.path().join(strata_storage::CLEANER_CHECKPOINT_FILE), b"garbage").unwrap();
    let log = open(dir.path());
    assert!(log.dirty_ratio(NOW) > 0.9);
    assert_eq!(clean(&log).records_removed, 0, "the log was already clean");
}

#[test]
fn a_follower_takes_a_compacted_leaders_batches_with_their_gaps() {
    let _serial = fail::FailScenario::setup();
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path());
    let batches: Vec<Vec<Write>> = (0..60).map(|i| vec![(i as u8 % 3, Some(i), T0), (7, Some(i), T0)]).collect();
    write(&leader, &batches);
    clean(&leader);
    let follower = open(fd.path());
    let mut at = 0;
    while at < leader.log_end_offset() {
        let r = leader.read(at, 4096).unwrap();
        let fetched: Vec<RecordBatch> =
            batch::split_stored_batches(r.batches, usize::MAX).map(Result::unwrap).collect();
        follower.append_as_follower(&fetched).unwrap();
        at = r.next_offset;
    }
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
}

#[test]
fn the_background_cleaner_compacts_a_dirty_compacted_log() {
    let _serial = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let mut m = strata_storage::LogManager::open(dir.path(), cfg()).unwrap();
    m.start_background(strata_storage::BackgroundConfig {
        cleaner_check: std::time::Duration::from_millis(20),
        ..strata_storage::BackgroundConfig::default()
    });
    let log = m.get_or_create(&strata_storage::TopicPartition::new("c", 0).unwrap(), None).unwrap();
    let same_key: Vec<Vec<Write>> = (0..60).map(|i| vec![(1, Some(i), T0)]).collect();
    write(&log, &same_key);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    assert!(log.dirty_ratio(NOW) > 0.5);
    while log.dirty_ratio(NOW) > 0.0 {
        assert!(std::time::Instant::now() < deadline, "the cleaner never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let left = read_all(&log);
    assert!(left.len() < 60 && left.iter().any(|r| r.0 == 59), "{} records left", left.len());
    drop(log);
    m.close().unwrap();
}

/// A crash (a panic at a fail point, then the log dropped unclosed) in the
/// middle of a pass.
#[cfg(feature = "failpoints")]
mod crash {
    use super::*;
    use fail::FailScenario;

    fn crash_at(point: &str, indexes_replaced: bool) {
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let batches: Vec<Vec<Write>> = (0..80).map(|i| vec![(i as u8 % 5, Some(i), T0), (9, None, T0)]).collect();
        write(&log, &batches);
        let before = read_all(&log);
        let sealed = active_base(&log);
        fail::cfg(point, "panic").unwrap();
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| clean(&log)));
        assert!(crashed.is_err(), "{point} fired");
        fail::remove(point);
        drop(log); // a crash: no close
        let log = open(dir.path());
        if indexes_replaced {
            // The old log kept the cleaned segment's indexes: they were
            // dropped and rebuilt from it.
            assert!(log.recovery_report().indexes_rebuilt > 0, "{:?}", log.recovery_report());
        }
        assert!(!dir.path().join(".cleaning").exists(), "leftovers removed at open");
        let after_crash = read_all(&log);
        // Nothing lost: every record is there unless it was superseded
        // below the cleanable end (some segments may have been swapped in).
        let expected = model(&before, sealed);
        for r in &expected {
            assert!(after_crash.contains(r), "{point}: {r:?} lost");
        }
        for r in &after_crash {
            assert!(before.contains(r), "{point}: {r:?} appeared from nowhere");
        }
        // The next pass (once the leader re-establishes its high
        // watermark) finishes the job.
        log.set_high_watermark(log.log_end_offset());
        clean(&log);
        assert_eq!(read_all(&log), expected, "{point}");
        assert!(!dir.path().join(".cleaning").exists());
        scenario.teardown();
    }

    #[test]
    fn a_crash_before_a_swap_loses_nothing() {
        crash_at("storage::cleaner_before_swap", false);
    }

    #[test]
    fn a_crash_between_the_index_and_log_renames_loses_nothing() {
        crash_at("storage::cleaner_mid_swap", true);
    }
}
