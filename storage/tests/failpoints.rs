//! Injected I/O failures (`--features failpoints`): a full disk at
//! preallocation, a failed write, a failed fsync. Fail points are global, so
//! every test holds a `fail::FailScenario` (which serializes them) for its
//! whole run.
//!
//! Dropping a `Log` without `close()` stands for a process crash.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use fail::FailScenario;
use strata_record::batch::{split_batches, BatchBuilder};
use strata_storage::{FlushPolicy, Log, LogConfig, ManualClock, StorageError};

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        segment_ms: 365 * 24 * 3600 * 1000,
        retention_ms: None,
        index_interval_bytes: 256,
        preallocate_bytes: 4096,
        flush: FlushPolicy::Interval { interval_ms: 3_600_000 },
        ..LogConfig::default()
    }
}

fn open_log(dir: &Path, cfg: &LogConfig) -> Log {
    Log::open_with_clock(dir, cfg.clone(), Arc::new(ManualClock::new(T0))).unwrap()
}

/// A batch of `n` records keyed `key-{tag}-{i}`.
fn batch(tag: u64, n: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        let key = format!("key-{tag}-{i}");
        let value = format!("value-{tag}-{i}-{}", "x".repeat((tag as usize * 7 + i) % 40));
        b.append(T0 + tag as i64, Some(key.as_bytes()), Some(value.as_bytes()), &[]).unwrap();
    }
    b.build().unwrap()
}

/// Every record's (offset, key), checking offsets are dense from the start.
fn read_all(log: &Log) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 1 << 16).unwrap();
        assert!(!r.batches.is_empty(), "empty read at {next}");
        for b in split_batches(r.batches, usize::MAX) {
            for rec in b.unwrap().records() {
                let rec = rec.unwrap();
                assert_eq!(rec.offset, log.log_start_offset() + out.len() as u64, "offsets must be dense");
                out.push((rec.offset, String::from_utf8(rec.key.unwrap().to_vec()).unwrap()));
            }
        }
        next = r.next_offset;
    }
    out
}

/// What the log should hold: (offset, key) of every record, and (first
/// offset, bytes) of every batch appended.
#[derive(Debug, Default, Clone)]
struct Model(Vec<(u64, String)>, Vec<(u64, u64)>);

impl Model {
    fn end(&self) -> u64 {
        self.0.len() as u64
    }

    /// Appends batch `tag` of `n` records; on success it must land at the
    /// log end.
    fn try_append(&mut self, log: &Log, tag: u64, n: usize) -> Result<(), StorageError> {
        self.try_append_with_epoch(log, tag, n, 1)
    }

    /// [`Model::try_append`] in leader epoch `epoch`.
    fn try_append_with_epoch(&mut self, log: &Log, tag: u64, n: usize, epoch: u32) -> Result<(), StorageError> {
        let bytes = batch(tag, n);
        let info = log.append(&bytes, epoch)?;
        assert_eq!(info.first_offset, self.end(), "offsets must be dense");
        self.1.push((info.first_offset, bytes.len() as u64));
        for i in 0..n {
            self.0.push((self.end(), format!("key-{tag}-{i}")));
        }
        Ok(())
    }

    /// Bytes of the batches in the active segment.
    fn active_bytes(&self, log: &Log) -> u64 {
        let base = *log.segment_base_offsets().last().unwrap();
        self.1.iter().filter(|&&(first, _)| first >= base).map(|&(_, len)| len).sum()
    }

    fn append(&mut self, log: &Log, tag: u64, n: usize) {
        self.try_append(log, tag, n).unwrap();
    }

    fn assert_held_by(&self, log: &Log, what: &str) {
        assert_eq!(log.log_end_offset(), self.end(), "{what}: log end offset");
        assert_eq!(read_all(log), self.0, "{what}: content");
    }
}

fn is_errno(e: &StorageError, errno: i32) -> bool {
    matches!(e, StorageError::Io { source, .. } if source.raw_os_error() == Some(errno))
}

/// ENOSPC from `fallocate` fails the append cleanly: nothing appended, reads
/// fine, and appends work again once space is back.
#[test]
fn disk_full_at_preallocation_appends_nothing() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    // Preallocating 1 byte at a time makes every append call fallocate.
    let cfg = LogConfig { preallocate_bytes: 1, ..config() };
    let log = open_log(dir.path(), &cfg);
    let mut model = Model::default();
    for tag in 0..5 {
        model.append(&log, tag, 3);
    }

    fail::cfg("storage::fallocate", "return(enospc)").unwrap();
    for tag in 100..103 {
        match log.append(&batch(tag, 3), 1) {
            Err(StorageError::DiskFull { .. }) => {}
            other => panic!("expected DiskFull, got {other:?}"),
        }
        model.assert_held_by(&log, "while the disk is full");
    }
    assert_eq!(log.read(0, 1 << 16).unwrap().next_offset, model.end(), "reads still work");
    fail::remove("storage::fallocate");

    for tag in 5..8 {
        model.append(&log, tag, 2);
    }
    model.assert_held_by(&log, "after space came back");
    drop(log);
    let log = open_log(dir.path(), &cfg);
    model.assert_held_by(&log, "after a crash");
    scenario.teardown();
}

/// A full disk when the first append to a freshly rolled segment needs its
/// preallocation: the roll happens once, the appends fail, nothing is lost.
#[test]
fn disk_full_right_after_a_roll() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    // Segments of 2 KiB preallocate 4 KiB once: only a new segment's first
    // append calls fallocate.
    let cfg = LogConfig { segment_bytes: 2048, ..config() };
    let log = open_log(dir.path(), &cfg);
    let mut model = Model::default();
    for tag in 0..3 {
        model.append(&log, tag, 3);
    }
    let segments = log.segment_count();
    fail::cfg("storage::fallocate", "return(enospc)").unwrap();
    for tag in 100.. {
        assert!(tag < 200, "never needed a new segment");
        match model.try_append(&log, tag, 3) {
            Ok(()) => assert_eq!(log.segment_count(), segments, "appends into preallocated space"),
            Err(StorageError::DiskFull { .. }) => break,
            Err(e) => panic!("expected DiskFull, got {e}"),
        }
    }
    assert_eq!(log.segment_count(), segments + 1, "rolled to a new, still empty segment");
    for tag in 200..203 {
        assert!(matches!(model.try_append(&log, tag, 3), Err(StorageError::DiskFull { .. })));
        assert_eq!(log.segment_count(), segments + 1, "no further roll for an empty segment");
    }
    model.assert_held_by(&log, "while the disk is full");
    fail::remove("storage::fallocate");
    model.append(&log, 300, 2);
    model.assert_held_by(&log, "after space came back");
    drop(log);
    let log = open_log(dir.path(), &cfg);
    model.assert_held_by(&log, "after a crash");
    scenario.teardown();
}

/// EIO on the data write: the append fails, the log is unchanged, the next
/// append succeeds, and a crash brings back nothing that failed.
#[test]
fn write_error_leaves_the_log_unchanged() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), &config());
    let mut model = Model::default();
    for tag in 0..4 {
        model.append(&log, tag, 3);
    }
    fail::cfg("storage::write", "return(eio)").unwrap();
    let err = log.append(&batch(100, 3), 1).unwrap_err();
    assert!(is_errno(&err, libc::EIO), "expected EIO, got {err}");
    model.assert_held_by(&log, "after the failed write");
    fail::remove("storage::write");
    model.append(&log, 4, 3);
    model.assert_held_by(&log, "after a later append");
    drop(log);
    let log = open_log(dir.path(), &config());
    model.assert_held_by(&log, "after a crash");
    assert_eq!(log.recovery_report().truncated, None);
    scenario.teardown();
}

/// Fails the k-th write call of an append, for every k the append makes:
/// the data write, and when the append rolls, the index writes of sealing
/// the full segment and of creating the next. A failed append changes
/// nothing, a later (smaller) append succeeds, and a crash brings back
/// nothing that failed.
#[test]
fn write_error_anywhere_in_an_append_changes_nothing() {
    let scenario = FailScenario::setup();
    let cfg = LogConfig { segment_bytes: 2048, ..config() };
    let big = batch(100, 10);
    let mut failures = Vec::new();
    for rolls in [false, true] {
        for k in 0.. {
            let what = format!("write #{k} of an append that {} fails", if rolls { "rolls" } else { "does not roll" });
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(dir.path(), &cfg);
            let mut model = Model::default();
            // Fill until `big` needs a new segment (or not), leaving room
            // for the small batch that follows.
            for tag in 0.. {
                let room = cfg.segment_bytes - model.active_bytes(&log);
                if (rolls && room < big.len() as u64) || (!rolls && tag == 3) {
                    break;
                }
                model.append(&log, tag, 3);
            }
            let segments = log.segment_count();
            let sealing = format!("{:020}", log.segment_base_offsets().last().unwrap());
            fail::cfg("storage::write", &format!("{k}*off->return(eio)")).unwrap();
            let result = log.append(&big, 1);
            fail::remove("storage::write");
            let err = match result {
                Ok(info) => {
                    // Past the append's last write: nothing failed.
                    assert!(k > 0);
                    assert_eq!(info.first_offset, model.end());
                    assert_eq!(log.segment_count(), segments + usize::from(rolls));
                    break;
                }
                Err(e) => e,
            };
            assert!(is_errno(&err, libc::EIO), "{what}: {err}");
            let during_seal = matches!(&err, StorageError::Io { path, .. }
                if path.file_stem().is_some_and(|s| s.to_str() == Some(sealing.as_str())));
            model.assert_held_by(&log, &what);
            match model.try_append(&log, 101, 1) {
                Ok(()) => {}
                // A failed seal leaves the segment's durability unknown: the
                // log refuses writes until reopened (by design).
                Err(StorageError::LogFailed { .. }) if during_seal => {}
                Err(e) => failures.push(format!("{what} ({err}): a later append failed: {e}")),
            }
            model.assert_held_by(&log, &format!("{what}, then a later append"));
            drop(log);
            let log = open_log(dir.path(), &cfg);
            model.assert_held_by(&log, &format!("{what}, then a crash"));
            model.append(&log, 102, 2);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    scenario.teardown();
}

/// A failed fsync under group commit fails that append and poisons the log
/// for writes (every later append is `LogFailed`); reads still work, and a
/// reopen clears it.
#[test]
fn fsync_failure_under_group_commit_poisons_writes_not_reads() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { flush: FlushPolicy::GroupCommit { max_delay_ms: 0 }, ..config() };
    let log = Arc::new(open_log(dir.path(), &cfg));
    let mut model = Model::default();
    for tag in 0..4 {
        model.append(&log, tag, 3);
    }
    assert_eq!(log.recovery_point(), model.end());

    fail::cfg("storage::fsync", "return(eio)").unwrap();
    let err = log.append(&batch(100, 3), 1).unwrap_err();
    assert!(matches!(err, StorageError::LogFailed { .. } | StorageError::Io { .. }), "got {err}");
    fail::remove("storage::fsync");

    for tag in 101..104 {
        match log.append(&batch(tag, 2), 1) {
            Err(StorageError::LogFailed { .. }) => {}
            other => panic!("expected LogFailed, got {other:?}"),
        }
    }
    assert!(matches!(log.flush(), Err(StorageError::LogFailed { .. })));
    // Concurrent appenders all get the error; none hangs.
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let log = &log;
            s.spawn(move || {
                let r = log.append(&batch(200 + t, 1), 1);
                assert!(matches!(r, Err(StorageError::LogFailed { .. })), "{r:?}");
            });
        }
    });
    // Reads of everything acknowledged still work. (The batch whose fsync
    // failed may or may not be visible: its durability is unknown.)
    let recs = read_all(&log);
    assert_eq!(&recs[..model.0.len()], &model.0[..]);
    assert!(log.log_end_offset() == model.end() || log.log_end_offset() == model.end() + 3);
    assert_eq!(log.recovery_point(), model.end(), "the recovery point did not move");

    // Reopening (a restart) clears the poison.
    let reopened_end = log.log_end_offset();
    drop(log);
    let log = open_log(dir.path(), &cfg);
    assert_eq!(log.log_end_offset(), reopened_end);
    let info = log.append(&batch(300, 2), 1).unwrap();
    assert_eq!(info.first_offset, reopened_end);
    scenario.teardown();
}

/// Under the interval policy, a failed explicit flush poisons the log too.
#[test]
fn fsync_failure_on_flush_poisons_writes() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), &config());
    let mut model = Model::default();
    for tag in 0..4 {
        model.append(&log, tag, 3);
    }
    fail::cfg("storage::fsync", "return(eio)").unwrap();
    assert!(log.flush().is_err());
    fail::remove("storage::fsync");
    assert_eq!(log.recovery_point(), 0, "nothing became durable");
    assert!(matches!(log.append(&batch(9, 1), 1), Err(StorageError::LogFailed { .. })));
    model.assert_held_by(&log, "after the failed flush");
    drop(log);
    let log = open_log(dir.path(), &config());
    model.assert_held_by(&log, "after a crash");
    model.append(&log, 10, 2);
    scenario.teardown();
}

/// A failed fsync while sealing a full segment (roll) fails that append and
/// poisons the log; nothing is lost across a crash.
#[test]
fn fsync_failure_while_sealing_a_segment_poisons_writes() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 2048, ..config() };
    let log = open_log(dir.path(), &cfg);
    let mut model = Model::default();
    for tag in 0..3 {
        model.append(&log, tag, 3);
    }
    let segments = log.segment_count();
    fail::cfg("storage::fsync", "return(eio)").unwrap();
    let err = (100..200).find_map(|tag| model.try_append(&log, tag, 3).err()).expect("a roll was needed");
    assert!(is_errno(&err, libc::EIO) || matches!(err, StorageError::LogFailed { .. }), "got {err}");
    fail::remove("storage::fsync");
    assert_eq!(log.segment_count(), segments, "no new segment after a failed seal");
    assert!(matches!(model.try_append(&log, 300, 1), Err(StorageError::LogFailed { .. })));
    model.assert_held_by(&log, "after the failed seal");
    drop(log);
    let log = open_log(dir.path(), &cfg);
    model.assert_held_by(&log, "after a crash");
    model.append(&log, 400, 2);
    scenario.teardown();
}

/// A failed write of the leader-epoch checkpoint is an error, never a
/// panic: an assignment or an append in a new epoch changes nothing, a
/// truncation still truncates (the file only lags, which opening repairs),
/// and everything works once the disk does.
#[test]
fn failed_epoch_checkpoint_write_is_an_error() {
    use strata_record::batch::{set_base_offset, set_partition_leader_epoch, RecordBatch};
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let log = open_log(dir.path(), &cfg);
    let mut model = Model::default();
    for tag in 0..4 {
        model.append(&log, tag, 2);
    }
    let follower_batch = |base: u64, epoch: u32| {
        let mut b = batch(50, 2).to_vec();
        set_base_offset(&mut b, base).unwrap();
        set_partition_leader_epoch(&mut b, epoch).unwrap();
        RecordBatch::new(Bytes::from(b), usize::MAX).unwrap()
    };

    fail::cfg("storage::epoch_checkpoint", "return(eio)").unwrap();
    assert!(matches!(log.assign_leader_epoch(2), Err(StorageError::Io { .. })));
    assert!(matches!(log.append(&batch(100, 2), 3), Err(StorageError::Io { .. })));
    let end = model.end();
    assert!(matches!(log.append_as_follower(&[follower_batch(end, 4)]), Err(StorageError::Io { .. })));
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    model.assert_held_by(&log, "after failed epoch checkpoint writes");
    model.append(&log, 4, 2); // same epoch: no cache write needed
    fail::remove("storage::epoch_checkpoint");

    log.assign_leader_epoch(2).unwrap();
    model.try_append_with_epoch(&log, 5, 2, 2).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 10)]);
    fail::cfg("storage::epoch_checkpoint", "return(eio)").unwrap();
    assert!(matches!(log.truncate_to(10), Err(StorageError::Io { .. })));
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.epoch_entries(), vec![(1, 0)], "the in-memory cache follows the log");
    fail::remove("storage::epoch_checkpoint");
    drop(log);
    let log = open_log(dir.path(), &cfg);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.epoch_entries(), vec![(1, 0)], "the stale file is trimmed on open");
    scenario.teardown();
}

/// A panic in the middle of an append (the batch is in the segment, the
/// log's end not yet moved) must not leave that half-updated state visible:
/// the log refuses reads and writes from then on, naming why, and reopening
/// it (a restart) recovers a consistent log from the files.
#[test]
fn a_panic_mid_append_fails_the_log_closed_until_it_is_recovered() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let log = open_log(dir.path(), &cfg);
    log.append(&batch(1, 3), 0).unwrap();
    fail::cfg("storage::after_segment_append", "panic").unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| log.append(&batch(2, 3), 0)));
    assert!(panicked.is_err(), "the fail point panics the append");
    fail::cfg("storage::after_segment_append", "off").unwrap();

    for result in [log.append(&batch(3, 1), 0).map(|_| ()), log.read(0, 1 << 16).map(|_| ())] {
        match result {
            Err(StorageError::LogFailed { reason, .. }) => assert!(reason.contains("panic"), "{reason}"),
            other => panic!("a poisoned log must refuse reads and writes, got {other:?}"),
        }
    }
    drop(log);

    let log = open_log(dir.path(), &cfg);
    let records = read_all(&log);
    assert!(records.len() == 3 || records.len() == 6, "recovered {} records", records.len());
    assert_eq!(records[..3].iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>(), ["key-1-0", "key-1-1", "key-1-2"]);
    log.append(&batch(4, 2), 0).unwrap();
    assert_eq!(read_all(&log).len(), records.len() + 2, "the recovered log takes appends again");
    scenario.teardown();
}
