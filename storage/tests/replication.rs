//! The storage side of replication (`docs/replication.md`): the leader-epoch cache
//! and its recovery, follower appends, divergence truncation (KIP-101/279)
//! and the checkpointed high watermark.
//!
//! Dropping a `Log` without `close()` stands for a process crash.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use strata_record::batch::{self, BatchBuilder, BatchError, RecordBatch};
use strata_storage::{
    FlushPolicy, LeaderEpochCache, Log, LogCheckpoint, LogConfig, StorageError, CHECKPOINT_FILE,
    LEADER_EPOCH_CHECKPOINT_FILE,
};

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        preallocate_bytes: 1024,
        flush: FlushPolicy::Interval { interval_ms: 3_600_000 },
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> Log {
    Log::open(dir, cfg()).unwrap()
}

/// A batch of `n` records keyed `k{tag}-{i}`, as a producer sends it.
fn batch(tag: u64, n: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        let key = format!("k{tag}-{i}");
        b.append(1_000 + tag as i64, Some(key.as_bytes()), Some(&[tag as u8; 20]), &[]).unwrap();
    }
    b.build().unwrap()
}

/// A batch as a leader stored it: `n` records from `base`, in `epoch`.
fn leader_batch(base: u64, epoch: u32, tag: u64, n: usize) -> RecordBatch {
    let mut bytes = BytesMut::from(&batch(tag, n)[..]);
    batch::set_base_offset(&mut bytes, base).unwrap();
    batch::set_partition_leader_epoch(&mut bytes, epoch).unwrap();
    RecordBatch::new(bytes.freeze(), usize::MAX).unwrap()
}

/// Every batch from the log start on, as stored.
fn batches(log: &Log) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let r = log.read(at, 1 << 20).unwrap();
        assert!(!r.batches.is_empty(), "empty read at {at}");
        out.extend(batch::split_batches(r.batches, usize::MAX).map(|b| b.unwrap()));
        at = r.next_offset;
    }
    out
}

/// The log's bytes from its start, concatenated.
fn raw(log: &Log) -> Vec<u8> {
    batches(log).iter().flat_map(|b| b.bytes().to_vec()).collect()
}

/// What rebuilding the cache from the batch headers gives.
fn rebuilt(log: &Log) -> Vec<(u32, u64)> {
    let mut c = LeaderEpochCache::new();
    for b in batches(log) {
        c.observe_batch(b.header().partition_leader_epoch, b.header().base_offset);
    }
    c.truncate_from_start(log.log_start_offset());
    c.truncate_from_end(log.log_end_offset());
    c.entries().to_vec()
}

/// Batches read from `leader` from `from` on, as a follower fetches them.
fn fetch(leader: &Log, from: u64) -> Vec<RecordBatch> {
    batches(leader).into_iter().filter(|b| b.header().base_offset >= from).collect()
}

/// Appends one batch of 2 records per tag in `epoch`, as leader.
fn lead(log: &Log, epoch: u32, tags: std::ops::Range<u64>) {
    for tag in tags {
        log.append(&batch(tag, 2), epoch).unwrap();
    }
}

#[test]
fn leader_epochs_are_recorded_at_the_log_end_durably() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert_eq!((log.latest_epoch(), log.epoch_entries()), (None, vec![]));
    lead(&log, 1, 0..3);
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    log.assign_leader_epoch(2).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 6)]);
    let file = fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    assert!(file.contains("\n2 6\n"), "durable before returning: {file}");
    log.assign_leader_epoch(2).unwrap();
    assert!(matches!(log.assign_leader_epoch(1), Err(StorageError::StaleLeaderEpoch { epoch: 1, latest: 2 })));
    lead(&log, 2, 3..5);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 6)]);
    // A leader append in a newer epoch records it without an assignment.
    log.append_batches(&[RecordBatch::new(batch(9, 3), usize::MAX).unwrap()], 4).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 6), (4, 10)]);
    assert_eq!(log.latest_epoch(), Some(4));
    // A stale leader epoch is not the log's to refuse (the partition fences
    // stale leaders), but it does not enter the cache.
    log.append(&batch(10, 1), 3).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 6), (4, 10)]);
    log.truncate_to(13).unwrap();
    log.close().unwrap();
    let log = open(dir.path());
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 6), (4, 10)]);
    assert_eq!(log.recovery_report().epoch_cache_rebuilt, None);
}

#[test]
fn an_epoch_assigned_but_never_written_is_dropped_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    lead(&log, 1, 0..2);
    log.assign_leader_epoch(5).unwrap();
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 4)));
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.epoch_entries(), vec![(1, 0)], "an entry at the log end holds no data");
    assert_eq!(log.recovery_report().epoch_cache_rebuilt, None, "trimmed, not rebuilt");
}

#[test]
fn end_offset_for_epoch_answers_like_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert_eq!(log.end_offset_for_epoch(0), None, "empty cache");
    lead(&log, 1, 0..3); // 0..6
    lead(&log, 3, 3..5); // 6..10
    lead(&log, 5, 5..6); // 10..12
    assert_eq!(log.epoch_entries(), vec![(1, 0), (3, 6), (5, 10)]);
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 12)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 10)));
    assert_eq!(log.end_offset_for_epoch(4), Some((3, 10)));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 6)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 6)));
    assert_eq!(log.end_offset_for_epoch(0), None, "older than the first epoch: the caller falls back");
    assert_eq!(log.end_offset_for_epoch(6), None, "newer than the latest");
}

/// One reconciliation round of `docs/replication.md` "Follower fetch" 3–5: ask
/// the leader where the follower's last epoch ends, truncate, fetch.
fn reconcile(follower: &Log, leader: &Log) {
    if let Some(epoch) = follower.latest_epoch() {
        if let Some((_, end)) = leader.end_offset_for_epoch(epoch) {
            if end < follower.log_end_offset() {
                follower.truncate_to(end.min(follower.log_end_offset())).unwrap();
            }
        }
    }
    let from = follower.log_end_offset();
    let fetched = fetch(leader, from);
    if !fetched.is_empty() {
        follower.append_as_follower(&fetched).unwrap();
    }
    follower.set_high_watermark(leader.high_watermark().min(follower.log_end_offset()));
}

/// KIP-101: leader A (epoch 1) has 0..10, follower B only 0..6, HW 6. A
/// dies, B leads in epoch 2 and writes 6..9. A returns as follower: epoch 1
/// ends at 6 on B, so A cuts 6..10 (which B never had) and takes B's
/// suffix. Both logs end byte-identical.
#[test]
fn kip_101_divergent_uncommitted_suffix_is_replaced() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(da.path()), open(db.path()));
    a.assign_leader_epoch(1).unwrap();
    lead(&a, 1, 0..5);
    b.append_as_follower(&fetch(&a, 0).into_iter().take(3).collect::<Vec<_>>()).unwrap();
    a.set_high_watermark(6);
    b.set_high_watermark(6);
    drop(a); // A crashes with 6..10 uncommitted

    b.assign_leader_epoch(2).unwrap();
    b.append(&batch(50, 3), 2).unwrap();
    let a = open(da.path());
    assert_eq!(a.latest_epoch(), Some(1));
    assert_eq!(b.end_offset_for_epoch(1), Some((1, 6)));
    reconcile(&a, &b);
    assert_eq!(raw(&a), raw(&b));
    assert_eq!(a.epoch_entries(), vec![(1, 0), (2, 6)]);
    assert_eq!(a.epoch_entries(), b.epoch_entries());
    assert_eq!(a.high_watermark(), 6);
}

/// KIP-279: the divergence lies in a later epoch the new leader never had.
/// A led epochs 1 and 2 (writing 6..10 in epoch 2, unreplicated); B, which
/// has only epoch 1's 0..6, leads in epoch 3. B's cache has no epoch 2: the
/// largest below is 1, ending at 6, where A must cut. Then A leads again in
/// epoch 4 and B follows: the logs converge both ways.
#[test]
fn kip_279_divergence_in_an_epoch_the_leader_never_had() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(da.path()), open(db.path()));
    lead(&a, 1, 0..3);
    b.append_as_follower(&fetch(&a, 0)).unwrap();
    a.assign_leader_epoch(2).unwrap();
    lead(&a, 2, 3..5);
    b.assign_leader_epoch(3).unwrap();
    lead(&b, 3, 10..12);
    assert_eq!(b.end_offset_for_epoch(2), Some((1, 6)));
    reconcile(&a, &b);
    assert_eq!(raw(&a), raw(&b));
    assert_eq!(a.epoch_entries(), vec![(1, 0), (3, 6)]);

    a.assign_leader_epoch(4).unwrap();
    lead(&a, 4, 20..22);
    reconcile(&b, &a);
    assert_eq!(raw(&a), raw(&b));
    assert_eq!(b.epoch_entries(), vec![(1, 0), (3, 6), (4, 10)]);
    assert_eq!(b.epoch_entries(), rebuilt(&b));
}

#[test]
fn follower_append_preserves_bytes_exactly() {
    let (dl, df) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (leader, follower) = (open(dl.path()), open(df.path()));
    lead(&leader, 7, 0..20); // several segments
    leader.assign_leader_epoch(9).unwrap();
    lead(&leader, 9, 20..30);
    let input = fetch(&leader, 0);
    let mut at = 0;
    for chunk in input.chunks(4) {
        let info = follower.append_as_follower(chunk).unwrap();
        assert_eq!(info.first_offset, at);
        at = info.last_offset + 1;
    }
    let sent: Vec<u8> = input.iter().flat_map(|b| b.bytes().to_vec()).collect();
    assert_eq!(raw(&follower), sent, "stored bytes are the leader's, header included");
    assert_eq!(follower.epoch_entries(), vec![(7, 0), (9, 40)]);
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert!(follower.segment_count() > 1);
    follower.close().unwrap();
    let follower = open(df.path());
    assert_eq!(raw(&follower), sent);
    assert_eq!(follower.epoch_entries(), vec![(7, 0), (9, 40)]);
}

#[test]
fn follower_append_rejections_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append_as_follower(&[leader_batch(0, 3, 0, 2), leader_batch(2, 4, 1, 3)]).unwrap();
    let before = (log.log_end_offset(), log.size_bytes(), raw(&log), log.epoch_entries());
    let unchanged = |what: &str| {
        assert_eq!((log.log_end_offset(), log.size_bytes(), raw(&log), log.epoch_entries()), before, "{what}");
    };
    let e = log.append_as_follower(&[leader_batch(4, 4, 2, 1)]).unwrap_err();
    assert!(matches!(e, StorageError::UnexpectedAppendOffset { expected: 5, actual: 4 }), "overlap: {e}");
    unchanged("overlap");
    let e = log.append_as_follower(&[leader_batch(5, 4, 2, 2), leader_batch(6, 4, 3, 1)]).unwrap_err();
    assert!(matches!(e, StorageError::UnexpectedAppendOffset { expected: 7, actual: 6 }), "inner overlap: {e}");
    unchanged("inner overlap");
    let e = log.append_as_follower(&[leader_batch(5, 3, 2, 1)]).unwrap_err();
    assert!(matches!(e, StorageError::StaleLeaderEpoch { epoch: 3, latest: 4 }), "stale: {e}");
    unchanged("stale epoch");
    let e = log.append_as_follower(&[leader_batch(5, 6, 2, 1), leader_batch(6, 5, 3, 1)]).unwrap_err();
    assert!(matches!(e, StorageError::StaleLeaderEpoch { epoch: 5, latest: 6 }), "decreasing: {e}");
    unchanged("decreasing epochs");
    log.set_config(LogConfig { max_batch_bytes: 200, ..cfg() }).unwrap();
    let e = log.append_as_follower(&[leader_batch(5, 4, 2, 1), leader_batch(6, 4, 3, 20)]).unwrap_err();
    assert!(matches!(e, StorageError::InvalidBatch(BatchError::TooLarge { .. })), "too large: {e}");
    unchanged("too large");
    log.set_config(cfg()).unwrap();
    let e = log.append_as_follower(&[leader_batch(5, 9, 2, 1)]).err();
    assert!(e.is_none(), "a newer epoch at the log end is fine: {e:?}");
    assert!(matches!(log.append_as_follower(&[]), Err(StorageError::InvalidArgument { .. })));
    assert_eq!(log.epoch_entries(), vec![(3, 0), (4, 2), (9, 5)]);
    // A compacted leader's batches leave gaps (removed records): taken.
    log.append_as_follower(&[leader_batch(9, 9, 2, 1)]).expect("a batch past a compaction gap");
    assert_eq!(log.log_end_offset(), 10);
}

/// Opening trims a data-less entry at the log end in memory only (an empty
/// partition's epoch is assigned at its end on every start; rewriting the
/// file each open cost two fsyncs per partition). The next epoch write
/// replaces the file — even one in the epoch memory already holds — so a
/// later open agrees with the batch headers without a rebuild.
#[test]
fn a_trimmed_entry_is_rewritten_by_the_next_epoch_write_not_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
    let log = open(dir.path());
    log.append_as_follower(&[leader_batch(0, 2, 0, 2)]).unwrap();
    log.assign_leader_epoch(3).unwrap();
    drop(log);
    let before = fs::read(&file).unwrap();
    let log = open(dir.path());
    assert_eq!(log.epoch_entries(), vec![(2, 0)]);
    assert_eq!(fs::read(&file).unwrap(), before, "opening does not rewrite the checkpoint");
    // Another leader (epoch 4) still has epoch-2 data at offset 2: memory's
    // latest epoch is 2 already, yet the file must lose its (3, 2).
    log.append_as_follower(&[leader_batch(2, 2, 1, 2)]).unwrap();
    assert_ne!(fs::read(&file).unwrap(), before, "the first epoch write after open rewrites the file");
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.epoch_entries(), vec![(2, 0)]);
    assert_eq!(log.epoch_entries(), rebuilt(&log));
    assert_eq!(log.recovery_report().epoch_cache_rebuilt, None, "the file agreed with the log");
}

/// A replica that was elected (epoch recorded) but wrote nothing, then
/// follows a leader whose batches at that offset carry an older epoch: the
/// data-less entry goes, the leader's epochs come in.
#[test]
fn follower_append_supersedes_an_epoch_that_holds_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append_as_follower(&[leader_batch(0, 5, 0, 2)]).unwrap();
    log.assign_leader_epoch(7).unwrap();
    assert_eq!(log.epoch_entries(), vec![(5, 0), (7, 2)]);
    log.append_as_follower(&[leader_batch(2, 5, 1, 2), leader_batch(4, 8, 2, 1)]).unwrap();
    assert_eq!(log.epoch_entries(), vec![(5, 0), (8, 4)]);
    assert_eq!(log.epoch_entries(), rebuilt(&log));
}

#[test]
fn high_watermark_is_clamped_checkpointed_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert_eq!(log.high_watermark(), 0);
    lead(&log, 1, 0..10); // 0..20
    assert_eq!(log.set_high_watermark(99), 20, "clamped to the log end");
    assert_eq!(log.set_high_watermark(12), 12);
    log.close().unwrap();
    let log = open(dir.path());
    assert_eq!(log.high_watermark(), 12, "restored after a clean close");

    log.set_high_watermark(16);
    log.checkpoint().unwrap();
    log.set_high_watermark(18); // not checkpointed
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.high_watermark(), 16, "after a crash: the last checkpointed value");

    assert_eq!(log.truncate_to(14).unwrap(), 14);
    assert_eq!(log.high_watermark(), 14, "truncation lowers it");
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.high_watermark(), 14, "truncation checkpoints it");

    log.delete_before(6).unwrap();
    log.set_high_watermark(8);
    log.delete_before(10).unwrap();
    assert_eq!(log.high_watermark(), 10, "raised to the new log start");
    assert_eq!(log.set_high_watermark(2), 10, "clamped to the log start");
    drop(log);

    // A checkpoint from before replication (no high watermark) still loads;
    // one past the log end is clamped.
    let cp = LogCheckpoint::read(dir.path()).unwrap().unwrap();
    let old = format!("strata-log-checkpoint v1\nrecovery_point 0\nlog_start_offset {}\n", cp.log_start_offset);
    fs::write(dir.path().join(CHECKPOINT_FILE), old).unwrap();
    let log = open(dir.path());
    assert_eq!(log.high_watermark(), 10, "0, clamped to the log start");
    drop(log);
    LogCheckpoint { high_watermark: Some(1_000), ..cp }.write(dir.path()).unwrap();
    let log = open(dir.path());
    assert_eq!(log.high_watermark(), 14, "clamped to the log end");
}

/// A log with several epochs over several segments, its start moved into
/// the middle of a batch.
fn epoch_log(dir: &Path) -> Log {
    let log = open(dir);
    lead(&log, 1, 0..6);
    log.assign_leader_epoch(2).unwrap();
    lead(&log, 2, 6..14);
    log.append_as_follower(&[leader_batch(28, 4, 30, 3), leader_batch(31, 6, 31, 2)]).unwrap();
    lead(&log, 6, 40..50);
    log.delete_before(5).unwrap();
    assert!(log.segment_count() > 2);
    log
}

#[test]
fn damaged_cache_file_is_rebuilt_identically() {
    let pristine = tempfile::tempdir().unwrap();
    let log = epoch_log(pristine.path());
    let want = log.epoch_entries();
    assert_eq!(want, vec![(1, 5), (2, 12), (4, 28), (6, 31)]);
    assert_eq!(want, rebuilt(&log));
    log.close().unwrap();
    // A valid file from another log: it parses but disagrees.
    let other = tempfile::tempdir().unwrap();
    let o = open(other.path());
    lead(&o, 1, 0..2);
    lead(&o, 3, 2..40);
    drop(o);
    let foreign = fs::read(other.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    let good = fs::read(pristine.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();

    let damages: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("deleted", None),
        ("garbage", Some(b"\x00\xffnot a checkpoint at all".to_vec())),
        ("truncated", Some(good[..good.len() / 2].to_vec())),
        ("empty", Some(Vec::new())),
        ("foreign", Some(foreign)),
    ];
    for clean in [true, false] {
        for (what, bytes) in &damages {
            let work = tempfile::tempdir().unwrap();
            copy(pristine.path(), work.path());
            if !clean {
                // Make the copy look crashed.
                let _ = fs::remove_file(work.path().join(".clean-shutdown"));
            }
            let path = work.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
            match bytes {
                None => fs::remove_file(&path).unwrap(),
                Some(b) => fs::write(&path, b).unwrap(),
            }
            let log = open(work.path());
            let what = format!("{what}, clean: {clean}");
            assert_eq!(log.epoch_entries(), want, "{what}");
            assert!(log.recovery_report().epoch_cache_rebuilt.is_some(), "{what}");
            drop(log);
            let log = open(work.path());
            assert_eq!(log.epoch_entries(), want, "{what}, reopened");
            assert_eq!(log.recovery_report().epoch_cache_rebuilt, None, "{what}: the rebuilt file was written");
        }
    }
}

fn copy(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A crash at any point of `truncate_to` (before or after the cache file
/// follows the log) leaves a consistent cache.
#[test]
fn truncate_then_crash_keeps_the_cache_consistent() {
    let pristine = tempfile::tempdir().unwrap();
    let log = epoch_log(pristine.path());
    drop(log);
    let cache_before = fs::read(pristine.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();

    let work = tempfile::tempdir().unwrap();
    copy(pristine.path(), work.path());
    let log = open(work.path());
    assert_eq!(log.truncate_to(30).unwrap(), 28);
    assert_eq!(log.epoch_entries(), vec![(1, 5), (2, 12)]);
    drop(log);
    let cache_after = fs::read(work.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    let log = open(work.path());
    assert_eq!(log.epoch_entries(), vec![(1, 5), (2, 12)], "after truncation and a crash");
    assert_eq!(log.epoch_entries(), rebuilt(&log));
    drop(log);

    // Crash after the log was cut but before the cache file followed.
    fs::write(work.path().join(LEADER_EPOCH_CHECKPOINT_FILE), &cache_before).unwrap();
    let log = open(work.path());
    assert_eq!(log.epoch_entries(), vec![(1, 5), (2, 12)], "entries past the end are dropped");
    assert_eq!(log.recovery_report().epoch_cache_rebuilt, None);
    drop(log);

    // The cache file cut but not the log (the opposite order): rebuilt.
    let work = tempfile::tempdir().unwrap();
    copy(pristine.path(), work.path());
    fs::write(work.path().join(LEADER_EPOCH_CHECKPOINT_FILE), &cache_after).unwrap();
    let log = open(work.path());
    assert_eq!(log.epoch_entries(), vec![(1, 5), (2, 12), (4, 28), (6, 31)]);
    assert!(log.recovery_report().epoch_cache_rebuilt.is_some());

    // Crash after delete_before moved the start but before the cache followed.
    let cache_now = fs::read(work.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    log.delete_before(20).unwrap();
    drop(log);
    fs::write(work.path().join(LEADER_EPOCH_CHECKPOINT_FILE), &cache_now).unwrap();
    let log = open(work.path());
    assert_eq!(log.epoch_entries(), vec![(2, 20), (4, 28), (6, 31)]);
    assert_eq!(log.epoch_entries(), rebuilt(&log));
    assert_eq!(log.recovery_report().epoch_cache_rebuilt, None, "trimmed, not rebuilt");
}

#[test]
fn retention_truncates_the_cache_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = epoch_log(dir.path());
    log.set_config(LogConfig { retention_bytes: Some(1), ..cfg() }).unwrap();
    let r = log.enforce_retention().unwrap();
    assert!(r.segments_deleted > 0);
    let start = log.log_start_offset();
    assert_eq!(log.epoch_entries().first().map(|e| e.1), Some(start));
    assert_eq!(log.epoch_entries(), rebuilt(&log));
    assert!(log.high_watermark() >= start);
}

#[derive(Debug, Clone)]
enum Op {
    /// Become leader in the current epoch plus `bump`.
    Assign(u32),
    /// Leader append of a batch of `n` records in the current epoch.
    Lead(usize),
    /// Follower append of `count` batches, the epoch bumped by `bump`.
    Follow { count: usize, bump: u32 },
    /// Truncate to this fraction (per mille) of the way from start to end.
    TruncateTo(u64),
    /// Elected in a newer epoch but deposed before writing; then follows a
    /// leader still in the current epoch.
    Deposed(u32),
    /// Delete before this fraction of the way.
    DeleteBefore(u64),
    /// Close (or crash) and reopen.
    Reopen { clean: bool },
    /// Damage the cache file and reopen.
    DamageCache,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u32..3).prop_map(Op::Assign),
        5 => (1usize..6).prop_map(Op::Lead),
        4 => (1usize..4, 0u32..3).prop_map(|(count, bump)| Op::Follow { count, bump }),
        1 => (1u32..3).prop_map(Op::Deposed),
        2 => (0u64..=1000).prop_map(Op::TruncateTo),
        1 => (0u64..=1000).prop_map(Op::DeleteBefore),
        2 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => Just(Op::DamageCache),
    ]
}

/// The cache invariants every operation must keep.
fn check_invariants(log: &Log, what: &str) {
    let entries = log.epoch_entries();
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(LeaderEpochCache::from_entries(entries.clone()).is_ok(), "{what}: not strictly increasing: {entries:?}");
    for (i, &(_, s)) in entries.iter().enumerate() {
        assert!(s >= start, "{what}: entry below the log start {start}: {entries:?}");
        let last = i + 1 == entries.len();
        assert!(s < end || (last && s == end), "{what}: entry past the log end {end}: {entries:?}");
    }
    let mut with_data = LeaderEpochCache::from_entries(entries.clone()).unwrap();
    with_data.truncate_from_end(end);
    assert_eq!(with_data.entries(), &rebuilt(log)[..], "{what}: differs from the cache rebuilt from the log");
    if end > start {
        let last_batch = batches(log).last().map(|b| b.header().partition_leader_epoch);
        assert_eq!(with_data.latest_epoch(), last_batch, "{what}: latest epoch is not the last batch's");
    } else {
        assert!(with_data.is_empty(), "{what}");
    }
    assert!((start..=end).contains(&log.high_watermark()), "{what}: high watermark out of range");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn epoch_cache_stays_consistent_with_the_log(ops in prop::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Some(open(dir.path()));
        let mut epoch = 0u32;
        let mut tag = 0u64;
        for (i, op) in ops.iter().enumerate() {
            let l = log.as_ref().unwrap();
            let (start, end) = (l.log_start_offset(), l.log_end_offset());
            let at = |per_mille: u64| start + (end - start) * per_mille / 1000;
            match op {
                Op::Assign(bump) => {
                    epoch += bump;
                    l.assign_leader_epoch(epoch).unwrap();
                }
                Op::Lead(n) => {
                    tag += 1;
                    l.append(&batch(tag, *n), epoch).unwrap();
                }
                Op::Follow { count, bump } => {
                    epoch += bump;
                    let mut base = end;
                    let mut bs = Vec::new();
                    for _ in 0..*count {
                        tag += 1;
                        bs.push(leader_batch(base, epoch, tag, 2));
                        base += 2;
                    }
                    let info = l.append_as_follower(&bs).unwrap();
                    prop_assert_eq!((info.first_offset, info.last_offset), (end, base - 1));
                }
                Op::Deposed(bump) => {
                    l.assign_leader_epoch(epoch + bump).unwrap();
                    tag += 1;
                    l.append_as_follower(&[leader_batch(end, epoch, tag, 1)]).unwrap();
                }
                Op::TruncateTo(f) => {
                    let new_end = l.truncate_to(at(*f)).unwrap();
                    prop_assert!(new_end <= at(*f));
                }
                Op::DeleteBefore(f) => {
                    l.delete_before(at(*f)).unwrap();
                }
                Op::Reopen { clean } => {
                    let before = (l.log_end_offset(), l.log_start_offset());
                    let l = log.take().unwrap();
                    if *clean { l.close().unwrap() } else { drop(l) }
                    let l = open(dir.path());
                    prop_assert_eq!((l.log_end_offset(), l.log_start_offset()), before);
                    log = Some(l);
                }
                Op::DamageCache => {
                    drop(log.take());
                    fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE), b"junk").unwrap();
                    log = Some(open(dir.path()));
                }
            }
            check_invariants(log.as_ref().unwrap(), &format!("after op {i} {op:?}"));
        }
    }
}

/// A follower whose end is below its leader's log start (the leader's
/// retention or compaction removed what it needs) restarts its log, empty,
/// at the leader's start, then appends the leader's batches from there;
/// the restart survives reopening.
#[test]
fn a_follower_behind_the_leaders_log_start_restarts_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append_as_follower(&[leader_batch(0, 1, 0, 5), leader_batch(5, 2, 1, 5)]).unwrap();
    log.set_high_watermark(10);
    assert!(matches!(log.truncate_fully_and_start_at(10), Err(StorageError::InvalidArgument { .. })));
    assert!(matches!(log.truncate_fully_and_start_at(3), Err(StorageError::InvalidArgument { .. })));
    log.truncate_fully_and_start_at(500).unwrap();
    let state = |log: &Log| (log.log_start_offset(), log.log_end_offset(), log.high_watermark(), log.latest_epoch());
    assert_eq!(state(&log), (500, 500, 500, None));
    assert!(batches(&log).is_empty());
    log.append_as_follower(&[leader_batch(500, 3, 2, 4)]).unwrap();
    assert_eq!((log.log_end_offset(), log.latest_epoch()), (504, Some(3)));
    drop(log);
    let log = open(dir.path());
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.latest_epoch()), (500, 504, Some(3)));
    assert_eq!(batches(&log).len(), 1);
    assert_eq!(log.epoch_entries(), vec![(3, 500)]);
}
