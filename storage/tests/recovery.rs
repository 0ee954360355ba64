//! Crash-recovery tests for `strata-storage`, through the public API only.
//!
//! Dropping a `Log` without `close()` is what a process crash leaves on disk
//! (the page cache keeps every written byte, nothing more is synced);
//! `close()` is a clean shutdown. Damage is injected by editing the files of
//! a crashed log directory, usually on a fresh copy of a pristine one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_record::batch::{self, split_batches, BatchBuilder, HEADER_LEN};
use strata_storage::{
    FlushPolicy, Log, LogCheckpoint, LogConfig, LogManager, ManualClock, StorageError, TopicPartition, CHECKPOINT_FILE,
    CLEAN_SHUTDOWN_FILE,
};
use tempfile::TempDir;

// ---------------------------------------------------------------- helpers --

/// "Now" of the injected clock; record timestamps sit around it.
const T0: i64 = 1_700_000_000_000;
/// `partition_leader_epoch` inside a batch: outside the CRC by design.
const EPOCH_FIELD: std::ops::Range<u64> = 12..16;

/// Small, fast settings; nothing is synced unless a test asks.
fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: 365 * 24 * 3600 * 1000,
        retention_ms: None,
        index_interval_bytes: 256,
        preallocate_bytes: 4096,
        flush: FlushPolicy::Interval { interval_ms: 3_600_000 },
        ..LogConfig::default()
    }
}

fn open_log(dir: &Path, cfg: &LogConfig) -> Result<Log, StorageError> {
    Log::open_with_clock(dir, cfg.clone(), Arc::new(ManualClock::new(T0)))
}

/// One record as the model and the log should both see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    timestamp: i64,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Records to put in one batch: (timestamp, key, value).
type Spec = Vec<(i64, Vec<u8>, Vec<u8>)>;

/// `n` records tagged `tag`, timestamps jittered around `T0 + 10·tag` (not
/// monotonic), values of varying length.
fn spec(rng: &mut StdRng, tag: u64, n: usize) -> Spec {
    (0..n)
        .map(|j| {
            let ts = T0 + 10 * tag as i64 + rng.random_range(-15..15);
            let key = format!("key-{tag}-{j}").into_bytes();
            let len = rng.random_range(8..48);
            let value: Vec<u8> = format!("value-{tag}-{j}-").bytes().cycle().take(len).collect();
            (ts, key, value)
        })
        .collect()
}

fn build(spec: &Spec) -> Bytes {
    let mut b = BatchBuilder::new();
    for (ts, k, v) in spec {
        b.append(*ts, Some(k), Some(v), &[]).unwrap();
    }
    b.build().unwrap()
}

fn one_record() -> Bytes {
    build(&vec![(T0, b"k".to_vec(), b"v".to_vec())])
}

/// A batch as appended: offsets, and where its bytes sit in its segment.
#[derive(Debug, Clone, Copy)]
struct Appended {
    first: u64,
    last: u64,
    len: u64,
}

/// What the log should hold.
#[derive(Debug, Clone, Default)]
struct Model {
    recs: Vec<Rec>,
    batches: Vec<Appended>,
}

impl Model {
    fn end(&self) -> u64 {
        self.batches.last().map_or(0, |b| b.last + 1)
    }

    /// Appends `spec` to `log` and to the model, checking the offsets given.
    fn append(&mut self, log: &Log, spec: &Spec) {
        let bytes = build(spec);
        let info = log.append(&bytes, 3).unwrap();
        assert_eq!(info.first_offset, self.end(), "offsets must be dense");
        assert_eq!(info.last_offset, self.end() + spec.len() as u64 - 1);
        for (i, (ts, k, v)) in spec.iter().enumerate() {
            let offset = info.first_offset + i as u64;
            self.recs.push(Rec { offset, timestamp: *ts, key: k.clone(), value: v.clone() });
        }
        self.batches.push(Appended { first: info.first_offset, last: info.last_offset, len: bytes.len() as u64 });
    }

    /// Appends `n` batches of `per` records tagged from the current count.
    fn fill(&mut self, log: &Log, rng: &mut StdRng, n: usize, per: usize) {
        for _ in 0..n {
            let tag = self.batches.len() as u64;
            let s = spec(rng, tag, per);
            self.append(log, &s);
        }
    }

    /// The model with only the first `k` batches.
    fn prefix(&self, k: usize) -> Model {
        let end = self.batches[..k].last().map_or(0, |b| b.last + 1);
        Model {
            recs: self.recs.iter().filter(|r| r.offset < end).cloned().collect(),
            batches: self.batches[..k].to_vec(),
        }
    }

    /// Byte range of batch `i` in a single-segment log.
    fn byte_range(&self, i: usize) -> (u64, u64) {
        let start: u64 = self.batches[..i].iter().map(|b| b.len).sum();
        (start, start + self.batches[i].len)
    }

    /// Bytes of the batches at or after offset `from` (one segment's worth).
    fn bytes_from(&self, from: u64) -> u64 {
        self.batches.iter().filter(|b| b.first >= from).map(|b| b.len).sum()
    }

    /// Brute force: first record (in offset order) with timestamp ≥ `ts`.
    fn offset_for_timestamp(&self, ts: i64) -> Option<(u64, i64)> {
        self.recs.iter().find(|r| r.timestamp >= ts).map(|r| (r.offset, r.timestamp))
    }
}

/// Reads the whole log from its start, checking that offsets are dense and
/// batches well formed, and returns the records.
fn read_all(log: &Log) -> Vec<Rec> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let mut out = Vec::new();
    let mut next = start;
    while next < end {
        let r = log.read(next, 700).unwrap_or_else(|e| panic!("read at {next}: {e}"));
        assert!(!r.batches.is_empty(), "empty read at {next} below log end {end}");
        for b in split_batches(r.batches.clone(), usize::MAX) {
            let b = b.unwrap_or_else(|e| panic!("invalid batch read at {next}: {e}"));
            for rec in b.records() {
                let rec = rec.unwrap();
                assert_eq!(rec.offset, start + out.len() as u64, "offsets must be dense");
                out.push(Rec {
                    offset: rec.offset,
                    timestamp: rec.timestamp,
                    key: rec.key.map(|k| k.to_vec()).unwrap_or_default(),
                    value: rec.value.map(|v| v.to_vec()).unwrap_or_default(),
                });
            }
        }
        assert_eq!(r.next_offset, start + out.len() as u64);
        next = r.next_offset;
    }
    assert_eq!(next, end);
    out
}

/// The log holds exactly what the model says.
fn assert_holds(log: &Log, model: &Model, what: &str) {
    assert_eq!(log.log_end_offset(), model.end(), "{what}: log end offset");
    assert_eq!(read_all(log), model.recs, "{what}: content");
}

/// Files with one of `exts`, sorted (20-digit names sort numerically).
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.retain(|p| p.extension().is_some_and(|e| exts.iter().any(|x| e == *x)));
    v.sort();
    v
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    files(dir, &["log"])
}

fn active_segment(dir: &Path) -> PathBuf {
    segment_files(dir).pop().expect("a segment file")
}

/// A fresh copy of a (flat) log directory.
fn copy_dir(src: &Path) -> TempDir {
    let dst = tempfile::tempdir().unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dst.path().join(e.file_name())).unwrap();
    }
    dst
}

fn xor_byte(path: &Path, pos: u64, mask: u8) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, pos).unwrap();
    f.write_all_at(&[b[0] ^ mask], pos).unwrap();
}

fn cut(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

/// A crashed single-segment log of `n` batches of 3 records.
fn crashed_log(seed: u64, n: usize) -> (TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let log = open_log(dir.path(), &config(64 << 10)).unwrap();
    model.fill(&log, &mut StdRng::seed_from_u64(seed), n, 3);
    assert_eq!(log.segment_count(), 1);
    drop(log);
    (dir, model)
}

/// A crashed log of several segments (2 KiB each) holding `n` batches.
fn crashed_multi_segment_log(seed: u64, n: usize) -> (TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let log = open_log(dir.path(), &config(2048)).unwrap();
    model.fill(&log, &mut StdRng::seed_from_u64(seed), n, 3);
    assert!(log.segment_count() >= 3, "want several segments, got {}", log.segment_count());
    drop(log);
    (dir, model)
}

fn expect_corrupt(result: Result<Log, StorageError>, what: &str) -> (PathBuf, u64) {
    match result {
        Err(StorageError::CorruptSegment { path, position, .. }) => (path, position),
        Err(e) => panic!("{what}: expected CorruptSegment, got error {e}"),
        Ok(log) => panic!("{what}: expected CorruptSegment, but the log opened with end {}", log.log_end_offset()),
    }
}

// ------------------------------------------------------------- torn tails --

/// Cutting the active segment at every byte of its last batch drops exactly
/// that batch, reports the cut, and the next append gets the next offset.
#[test]
fn torn_tail_at_every_byte_of_the_last_batch() {
    const N: usize = 8;
    let (pristine, model) = crashed_log(1, N);
    let seg_name = active_segment(pristine.path()).file_name().unwrap().to_owned();
    let bytes = fs::read(pristine.path().join(&seg_name)).unwrap();
    let (start, end) = model.byte_range(N - 1);
    assert!(bytes.len() as u64 >= end, "segment holds every appended byte");
    let kept = model.prefix(N - 1);
    let torn = model.batches[N - 1];
    let extra = spec(&mut StdRng::seed_from_u64(99), 1000, 2);

    for at in start..=end {
        let work = copy_dir(pristine.path());
        let seg = work.path().join(&seg_name);
        cut(&seg, at);
        let log = open_log(work.path(), &config(64 << 10)).unwrap_or_else(|e| panic!("cut at {at}: {e}"));
        let what = format!("cut at byte {at} (batch {start}..{end})");
        let mut expect = if at == end { model.clone() } else { kept.clone() };
        assert_holds(&log, &expect, &what);
        let report = log.recovery_report();
        assert!(!report.clean_shutdown);
        if at < end && bytes[start as usize..at as usize].iter().any(|&b| b != 0) {
            let t = report.truncated.as_ref().unwrap_or_else(|| panic!("{what}: no truncation reported"));
            assert_eq!(t.position, start, "{what}");
            assert_eq!(t.from_offset, kept.end(), "{what}");
            assert_eq!(t.bytes_dropped, at - start, "{what}");
            if at - start >= HEADER_LEN as u64 {
                assert_eq!(t.claimed_offsets, Some((torn.first, torn.last)), "{what}");
            }
        } else {
            assert_eq!(report.truncated, None, "{what}");
        }
        expect.append(&log, &extra);
        assert_holds(&log, &expect, &what);
        if at.is_multiple_of(16) {
            drop(log);
            let log = open_log(work.path(), &config(64 << 10)).unwrap();
            assert_holds(&log, &expect, &format!("{what}, after a second crash"));
        }
    }
}

/// Flipping any byte of the last batch drops that batch (and nothing before
/// it), except in `partition_leader_epoch`, which the CRC does not cover.
#[test]
fn flipped_byte_in_the_last_batch_drops_only_that_batch() {
    const N: usize = 8;
    let (pristine, model) = crashed_log(2, N);
    let seg_name = active_segment(pristine.path()).file_name().unwrap().to_owned();
    let (start, end) = model.byte_range(N - 1);
    let kept = model.prefix(N - 1);
    let mut rng = StdRng::seed_from_u64(0xF11F);
    // Every header byte once, then 200 random positions and masks.
    let mut flips: Vec<(u64, u8)> = (0..HEADER_LEN as u64).map(|i| (start + i, 0xA5)).collect();
    flips.extend((0..200).map(|_| (rng.random_range(start..end), rng.random_range(1..=255u8))));
    let extra = spec(&mut rng, 1000, 1);

    for (pos, mask) in flips {
        let work = copy_dir(pristine.path());
        xor_byte(&work.path().join(&seg_name), pos, mask);
        let rel = pos - start;
        let what = format!("flip {mask:#04x} at byte {rel} of the last batch");
        let log = open_log(work.path(), &config(64 << 10)).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut expect = if EPOCH_FIELD.contains(&rel) {
            assert_eq!(log.recovery_report().truncated, None, "{what}: the epoch is not CRC-protected");
            model.clone()
        } else {
            let t = log.recovery_report().truncated.as_ref().unwrap_or_else(|| panic!("{what}: not detected"));
            assert_eq!((t.position, t.from_offset), (start, kept.end()), "{what}");
            kept.clone()
        };
        assert_holds(&log, &expect, &what);
        expect.append(&log, &extra);
        assert_holds(&log, &expect, &what);
    }
}

/// A torn write can lose the first bytes of a batch while later ones made
/// it (page-sized pieces), or lose the whole batch (preallocated zeros).
#[test]
fn zeroed_pieces_of_the_last_batch_are_a_torn_tail() {
    const N: usize = 8;
    let (pristine, model) = crashed_log(17, N);
    let seg_name = active_segment(pristine.path()).file_name().unwrap().to_owned();
    let (start, end) = model.byte_range(N - 1);
    let kept = model.prefix(N - 1);
    for (from, to) in [(0, 8), (0, 12), (0, HEADER_LEN as u64), (0, end - start - 3), (0, end - start), (30, 90)] {
        let work = copy_dir(pristine.path());
        let seg = work.path().join(&seg_name);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[(start + from) as usize..(start + to) as usize].fill(0);
        let all_zero = bytes[start as usize..].iter().all(|&b| b == 0);
        fs::write(&seg, &bytes).unwrap();
        let what = format!("bytes {from}..{to} of the last batch zeroed");
        let log = open_log(work.path(), &config(64 << 10)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_holds(&log, &kept, &what);
        let truncated = log.recovery_report().truncated.clone();
        if all_zero {
            assert_eq!(truncated, None, "{what}: only zeros left, nothing to report");
        } else {
            let t = truncated.unwrap_or_else(|| panic!("{what}: not reported"));
            assert_eq!((t.position, t.from_offset), (start, kept.end()), "{what}");
        }
    }
}

/// Offset of a CRC-protected byte inside batch `i` of a single-segment log.
fn protected_byte(model: &Model, i: usize) -> u64 {
    model.byte_range(i).0 + HEADER_LEN as u64 + 3
}

/// Flips a protected byte of batch 3 of 8 after `flush()` (and maybe
/// `checkpoint()`) and a crash: the open must fail, touching nothing.
fn flushed_flip_case(checkpoint: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let log = open_log(dir.path(), &config(64 << 10)).unwrap();
    model.fill(&log, &mut StdRng::seed_from_u64(3), 8, 3);
    assert_eq!(log.flush().unwrap(), model.end());
    assert_eq!(log.recovery_point(), model.end());
    if checkpoint {
        log.checkpoint().unwrap();
    }
    drop(log);
    let seg = active_segment(dir.path());
    xor_byte(&seg, protected_byte(&model, 3), 0x40);
    let before = fs::read(&seg).unwrap();
    for attempt in 0..2 {
        let what = format!("flushed batch 3 damaged (checkpoint: {checkpoint}), attempt {attempt}");
        let (path, position) = expect_corrupt(open_log(dir.path(), &config(64 << 10)), &what);
        assert_eq!((path, position), (seg.clone(), model.byte_range(3).0), "{what}");
        assert_eq!(fs::read(&seg).unwrap(), before, "{what}: a failed open must not touch the segment");
    }
}

/// Damage to a batch that was flushed must fail the open, not be truncated
/// away: `flush()` moved the recovery point past it.
#[test]
fn flip_in_flushed_batch_fails_open_instead_of_truncating() {
    flushed_flip_case(false);
}

/// Same, with the recovery point also checkpointed explicitly.
#[test]
fn flip_below_checkpointed_recovery_point_fails_open() {
    flushed_flip_case(true);
}

/// With nothing flushed (recovery point 0) the same damage is a corrupt
/// tail: the log is cut at the damaged batch.
#[test]
fn flip_in_unflushed_earlier_batch_truncates_from_it() {
    let (dir, model) = crashed_log(3, 8);
    let seg = active_segment(dir.path());
    xor_byte(&seg, protected_byte(&model, 3), 0x40);
    let log = open_log(dir.path(), &config(64 << 10)).unwrap();
    let mut expect = model.prefix(3);
    assert_holds(&log, &expect, "unflushed batch 3 damaged");
    let t = log.recovery_report().truncated.clone().expect("truncation reported");
    assert_eq!((t.from_offset, t.position), (expect.end(), model.byte_range(3).0));
    expect.append(&log, &spec(&mut StdRng::seed_from_u64(4), 500, 3));
    assert_holds(&log, &expect, "append after truncation");
}

// --------------------------------------------------------- sealed segments --

/// A damaged sealed segment inside the recovery region fails the open; via
/// the manager only that partition goes offline.
#[test]
fn corrupt_sealed_segment_in_recovery_region_fails_open() {
    let (dir, _model) = crashed_multi_segment_log(5, 40);
    let segs = segment_files(dir.path());
    xor_byte(&segs[1], HEADER_LEN as u64 + 2, 0x10);
    // Lower the recovery point to 0: every segment is in the recovery region.
    LogCheckpoint { recovery_point: 0, log_start_offset: 0, high_watermark: None }.write(dir.path()).unwrap();
    let (path, position) = expect_corrupt(open_log(dir.path(), &config(2048)), "sealed segment 1 damaged");
    assert_eq!((path, position), (segs[1].clone(), 0));
    // No checkpoint at all means the same.
    fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let (path, _) = expect_corrupt(open_log(dir.path(), &config(2048)), "no checkpoint");
    assert_eq!(path, segs[1]);
    assert_eq!(segment_files(dir.path()), segs, "no segment was removed");
}

#[test]
fn manager_puts_only_the_corrupt_partition_offline() {
    let data = tempfile::tempdir().unwrap();
    let clock = || Arc::new(ManualClock::new(T0));
    let tps: Vec<TopicPartition> =
        [("orders", 0), ("orders", 1), ("audit", 0)].iter().map(|&(t, p)| TopicPartition::new(t, p).unwrap()).collect();
    let mut models = Vec::new();
    {
        let mgr = LogManager::open_with_clock(data.path(), config(2048), clock()).unwrap();
        for (i, tp) in tps.iter().enumerate() {
            let log = mgr.get_or_create(tp, None).unwrap();
            let mut m = Model::default();
            m.fill(&log, &mut StdRng::seed_from_u64(10 + i as u64), 30, 3);
            assert!(log.segment_count() >= 3);
            models.push(m);
        }
    } // crash
    let bad = data.path().join(tps[0].dir_name());
    xor_byte(&segment_files(&bad)[1], HEADER_LEN as u64 + 5, 0x01);
    LogCheckpoint { recovery_point: 0, log_start_offset: 0, high_watermark: None }.write(&bad).unwrap();

    let mgr = LogManager::open_with_clock(data.path(), config(2048), clock()).unwrap();
    let offline = mgr.offline();
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert_eq!(offline[0].0, tps[0]);
    assert!(offline[0].1.contains("corrupt"), "{}", offline[0].1);
    let mut online = vec![tps[1].clone(), tps[2].clone()];
    online.sort();
    assert_eq!(mgr.list(), online);
    for (tp, m) in tps.iter().zip(&models).skip(1) {
        assert_holds(&mgr.get(tp).unwrap(), m, &tp.to_string());
    }
    assert!(mgr.get(&tps[0]).is_none());
    assert!(mgr.get_or_create(&tps[0], None).is_err(), "an offline partition is not recreated");
}

// ----------------------------------------------------------------- indexes --

/// Everything `read` and `offset_for_timestamp` answer.
#[derive(Debug, PartialEq, Eq)]
struct Answers {
    end: u64,
    reads: Vec<(u64, Vec<u8>, u64)>,
    times: Vec<(i64, Option<(u64, i64)>)>,
}

fn answers(log: &Log, model: &Model) -> Answers {
    let end = log.log_end_offset();
    let mut reads = Vec::new();
    for off in log.log_start_offset()..=end {
        for max in [1, 400] {
            let r = log.read(off, max).unwrap_or_else(|e| panic!("read at {off}: {e}"));
            reads.push((off, r.batches.to_vec(), r.next_offset));
        }
    }
    let lo = model.recs.iter().map(|r| r.timestamp).min().unwrap() - 3;
    let hi = model.recs.iter().map(|r| r.timestamp).max().unwrap() + 3;
    let times: Vec<_> = (lo..=hi).map(|ts| (ts, log.offset_for_timestamp(ts).unwrap())).collect();
    for &(ts, got) in &times {
        assert_eq!(got, model.offset_for_timestamp(ts), "offset_for_timestamp({ts})");
    }
    Answers { end, reads, times }
}

#[derive(Debug, Clone, Copy)]
enum IndexDamage {
    Deleted,
    /// Random bytes of a length that is not a whole number of entries.
    Garbage,
}

fn index_rebuild_case(clean: bool, damage: IndexDamage) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(2048);
    let mut model = Model::default();
    let log = open_log(dir.path(), &cfg).unwrap();
    model.fill(&log, &mut StdRng::seed_from_u64(6), 60, 3);
    let sealed = log.segment_count() - 1;
    assert!(sealed >= 3);
    let before = answers(&log, &model);
    if clean {
        log.close().unwrap();
    } else {
        drop(log);
    }
    let files = files(dir.path(), &["index", "timeindex"]);
    assert_eq!(files.len(), 2 * (sealed + 1));
    let mut rng = StdRng::seed_from_u64(7);
    for f in &files {
        match damage {
            IndexDamage::Deleted => fs::remove_file(f).unwrap(),
            IndexDamage::Garbage => {
                let n = rng.random_range(1..40) * 24 + [3, 5, 7, 11][rng.random_range(0..4)];
                fs::write(f, random_bytes(&mut rng, n)).unwrap();
            }
        }
    }
    let what = format!("indexes {damage:?} after a {} shutdown", if clean { "clean" } else { "crash" });
    let log = open_log(dir.path(), &cfg).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(log.recovery_report().clean_shutdown, clean);
    assert_eq!(log.recovery_report().indexes_rebuilt, sealed, "{what}");
    assert_holds(&log, &model, &what);
    assert_eq!(answers(&log, &model), before, "{what}");
    // The rebuilt indexes are trusted (not rebuilt again) and still right.
    drop(log);
    let log = open_log(dir.path(), &cfg).unwrap();
    assert_eq!(log.recovery_report().indexes_rebuilt, 0, "{what}, second open");
    assert_eq!(answers(&log, &model), before, "{what}, second open");
}

#[test]
fn deleted_indexes_are_rebuilt_after_crash() {
    index_rebuild_case(false, IndexDamage::Deleted);
}

#[test]
fn deleted_indexes_are_rebuilt_after_clean_close() {
    index_rebuild_case(true, IndexDamage::Deleted);
}

#[test]
fn garbage_indexes_are_rebuilt_after_crash() {
    index_rebuild_case(false, IndexDamage::Garbage);
}

#[test]
fn garbage_indexes_are_rebuilt_after_clean_close() {
    index_rebuild_case(true, IndexDamage::Garbage);
}

// ------------------------------------------------- clean shutdown, restarts --

#[test]
fn clean_close_skips_recovery_and_crash_scans_from_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(2048);
    let mut rng = StdRng::seed_from_u64(8);
    let mut model = Model::default();
    let log = open_log(dir.path(), &cfg).unwrap();
    model.fill(&log, &mut rng, 40, 3);
    log.close().unwrap();
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());

    let log = open_log(dir.path(), &cfg).unwrap();
    let r = log.recovery_report().clone();
    assert!(r.clean_shutdown);
    assert_eq!((r.segments_scanned, r.bytes_scanned, r.indexes_rebuilt, r.truncated), (0, 0, 0, None));
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists(), "the marker is consumed by the open");
    assert_holds(&log, &model, "after clean close");
    let segments = log.segment_count();
    assert!(segments >= 3);

    // Checkpoint at a late offset, write a little more, crash.
    model.fill(&log, &mut rng, 2, 3);
    log.flush().unwrap();
    log.checkpoint().unwrap();
    model.fill(&log, &mut rng, 2, 3);
    let active_base = *log.segment_base_offsets().last().unwrap();
    let segments = log.segment_count();
    drop(log);

    let log = open_log(dir.path(), &cfg).unwrap();
    let r = log.recovery_report().clone();
    assert!(!r.clean_shutdown, "a crash after a clean reopen is not clean");
    assert_eq!(r.segments_scanned, 1, "only the active segment is scanned: {r:?}");
    assert_eq!(r.bytes_scanned, model.bytes_from(active_base));
    assert_eq!((r.indexes_rebuilt, r.truncated), (0, None));
    assert_eq!(log.segment_count(), segments);
    assert_holds(&log, &model, "after crash");
    drop(log);

    // Without a checkpoint every segment is scanned, and all of it validates.
    fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let log = open_log(dir.path(), &cfg).unwrap();
    assert_eq!(log.recovery_report().segments_scanned, segments);
    assert_eq!(log.recovery_report().truncated, None);
    assert_holds(&log, &model, "after crash without checkpoint");
}

#[test]
fn reopening_is_idempotent() {
    let (dir, model) = crashed_log(9, 8);
    let (start, _) = model.byte_range(7);
    cut(&active_segment(dir.path()), start + 30);
    let mut expect = model.prefix(7);
    let cfg = config(64 << 10);

    let log = open_log(dir.path(), &cfg).unwrap();
    assert!(log.recovery_report().truncated.is_some());
    assert_holds(&log, &expect, "first recovery");
    let seg = fs::read(active_segment(dir.path())).unwrap();
    drop(log);
    for round in 0..3 {
        let log = open_log(dir.path(), &cfg).unwrap();
        assert_eq!(log.recovery_report().truncated, None, "round {round}");
        assert_holds(&log, &expect, &format!("round {round}"));
        assert_eq!(fs::read(active_segment(dir.path())).unwrap(), seg, "round {round}: segment bytes");
    }
    let log = open_log(dir.path(), &cfg).unwrap();
    expect.append(&log, &spec(&mut StdRng::seed_from_u64(10), 77, 4));
    drop(log);
    let log = open_log(dir.path(), &cfg).unwrap();
    assert_holds(&log, &expect, "append after repeated recovery");
}

// --------------------------------------------------------- hostile files --

/// Opening `dir` must not panic; it may fail only with `CorruptSegment`.
/// When it opens, the log must be internally consistent and writable.
fn open_hostile(dir: &Path, what: &str) -> Option<Log> {
    let result = catch_unwind(AssertUnwindSafe(|| open_log(dir, &config(64 << 10))))
        .unwrap_or_else(|_| panic!("{what}: Log::open panicked"));
    match result {
        Err(StorageError::CorruptSegment { .. }) => None,
        Err(e) => panic!("{what}: unexpected error {e}"),
        Ok(log) => {
            let recs = read_all(&log);
            assert_eq!(recs.len() as u64, log.log_end_offset() - log.log_start_offset(), "{what}");
            let end = log.log_end_offset();
            let info = log.append(&one_record(), 0).unwrap();
            assert_eq!(info.first_offset, end, "{what}");
            Some(log)
        }
    }
}

#[test]
fn garbage_segment_file_opens_empty_or_fails_as_corrupt() {
    let mut rng = StdRng::seed_from_u64(11);
    for size in [1usize, 11, 12, 60, 61, 62, 200, 4096, 9000] {
        for variant in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = random_bytes(&mut rng, size);
            if variant >= 1 && size > 16 {
                bytes[16] = batch::MAGIC; // header parses; CRC does not
            }
            if variant >= 2 && size > 12 {
                bytes[..8].fill(0); // claims base offset 0
                let len = rng.random_range(49..(size as u32).max(50));
                bytes[8..12].copy_from_slice(&len.to_le_bytes());
            }
            if variant == 3 {
                fs::write(dir.path().join("00000000000000000000.index"), random_bytes(&mut rng, 13)).unwrap();
                fs::write(dir.path().join("00000000000000000000.timeindex"), random_bytes(&mut rng, 29)).unwrap();
            }
            fs::write(dir.path().join("00000000000000000000.log"), &bytes).unwrap();
            let what = format!("garbage segment of {size} bytes, variant {variant}");
            if let Some(log) = open_hostile(dir.path(), &what) {
                assert_eq!(log.log_start_offset(), 0, "{what}");
                assert_eq!(log.log_end_offset(), 1, "{what}: nothing of the garbage survives");
            }
        }
    }
    // Two garbage segments: the sealed one cannot be truncated.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("00000000000000000000.log"), random_bytes(&mut rng, 500)).unwrap();
    fs::write(dir.path().join("00000000000000000100.log"), random_bytes(&mut rng, 500)).unwrap();
    assert!(open_hostile(dir.path(), "two garbage segments").is_none());
}

/// A well-formed batch (valid CRC) whose unprotected `base_offset` claims
/// offsets at the very top of the u64 range.
#[test]
fn segment_with_extreme_base_offset_does_not_panic() {
    let recs = spec(&mut StdRng::seed_from_u64(12), 0, 3);
    for base in [u64::MAX, u64::MAX - 1, u64::MAX - 2, 1 << 63] {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = build(&recs).to_vec();
        batch::set_base_offset(&mut raw, base).unwrap();
        fs::write(dir.path().join("00000000000000000000.log"), &raw).unwrap();
        let what = format!("segment holding a batch with base_offset {base}");
        if let Some(log) = open_hostile(dir.path(), &what) {
            assert_eq!(log.log_end_offset(), 1, "{what}");
        }
    }
}

/// A segment file named with the largest base offset a name can hold:
/// opening, appending and reading may fail, but must not panic.
#[test]
fn segment_named_with_the_largest_offset_does_not_panic() {
    let mut raw = one_record().to_vec();
    batch::set_base_offset(&mut raw, u64::MAX).unwrap();
    for content in [Vec::new(), raw] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(format!("{:020}.log", u64::MAX)), &content).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let log = open_log(dir.path(), &config(64 << 10))?;
            let _ = log.append(&one_record(), 0);
            log.read(log.log_start_offset(), 100).map(|_| ())
        }));
        assert!(result.is_ok(), "segment {} holding {} bytes: panicked", u64::MAX, content.len());
    }
}

#[test]
fn garbage_checkpoint_is_ignored() {
    let (dir, model) = crashed_multi_segment_log(13, 40);
    let segments = segment_files(dir.path()).len();
    let mut rng = StdRng::seed_from_u64(14);
    let garbage: Vec<Vec<u8>> = vec![
        random_bytes(&mut rng, 100),
        b"\xff\xfe\x00 not utf-8".to_vec(),
        b"strata-log-checkpoint v1\nrecovery_point lots\n".to_vec(),
        b"strata-log-checkpoint v9\nrecovery_point 99999\nlog_start_offset 7\n".to_vec(),
        Vec::new(),
    ];
    for (i, g) in garbage.iter().enumerate() {
        fs::write(dir.path().join(CHECKPOINT_FILE), g).unwrap();
        let log = open_log(dir.path(), &config(2048)).unwrap_or_else(|e| panic!("checkpoint garbage {i}: {e}"));
        assert_eq!(log.recovery_report().segments_scanned, segments, "garbage {i}: whole log recovered");
        assert_eq!(log.log_start_offset(), 0);
        assert_holds(&log, &model, &format!("checkpoint garbage {i}"));
    }
}

// -------------------------------------------------------------- truncation --

/// `truncate_to` at several points of a multi-segment log (the start, a
/// segment boundary, inside a sealed segment, inside the active one), each
/// followed by a crash, new (shorter) appends and another crash: truncated
/// batches never reappear.
#[test]
fn truncation_anywhere_survives_crashes() {
    let (pristine, model) = crashed_multi_segment_log(16, 40);
    let cfg = config(2048);
    let bases = open_log(copy_dir(pristine.path()).path(), &cfg).unwrap().segment_base_offsets();
    let in_seg1 = model.batches.iter().position(|b| b.first >= bases[1]).unwrap() + 2;
    assert!(model.batches[in_seg1].last < bases[2]);
    let targets = [0, 1, bases[1], model.batches[in_seg1].first + 1, model.end() - 2];
    for target in targets {
        let work = copy_dir(pristine.path());
        let log = open_log(work.path(), &cfg).unwrap();
        log.flush().unwrap();
        let k = model.batches.iter().position(|b| b.last >= target).unwrap();
        let new_end = log.truncate_to(target).unwrap();
        let what = format!("truncate_to({target})");
        assert_eq!(new_end, model.batches[k].first, "{what}: cut at the batch start");
        let mut expect = model.prefix(k);
        assert_holds(&log, &expect, &what);
        let segments = log.segment_count();
        drop(log);

        let log = open_log(work.path(), &cfg).unwrap();
        assert_holds(&log, &expect, &format!("{what}, then crash"));
        assert_eq!(log.recovery_report().truncated, None, "{what}: zero-filled, not torn");
        assert_eq!(log.segment_count(), segments, "{what}");
        assert_eq!(segment_files(work.path()).len(), segments, "{what}: removed segments stay removed");
        let mut rng = StdRng::seed_from_u64(target);
        for i in 0..3 {
            expect.append(&log, &spec(&mut rng, 5000 + i, 1 + i as usize));
        }
        drop(log);
        let log = open_log(work.path(), &cfg).unwrap();
        assert_holds(&log, &expect, &format!("{what}, appends, crash"));
    }
}

/// A crash in the middle of a roll — the next segment already created, the
/// current one not yet trimmed and sealed — leaves a non-last segment whose
/// data ends in preallocated zeros. Recovery must keep all of it (it is not
/// corruption), and a non-zero tail there still is.
#[test]
fn crash_between_creating_the_next_segment_and_sealing_keeps_everything() {
    let (dir, model) = crashed_log(77, 10);
    let active = active_segment(dir.path());
    let len = fs::metadata(&active).unwrap().len();
    assert!(len > model.end(), "the active segment is preallocated past its data");
    let next = dir.path().join(format!("{:020}.log", model.end()));
    fs::write(&next, b"").unwrap();
    {
        let copy = copy_dir(dir.path());
        let log = open_log(copy.path(), &config(64 << 10)).unwrap();
        assert_holds(&log, &model, "after a crash mid-roll");
        assert_eq!(log.segment_count(), 2);
        let info = log.append(&one_record(), 0).unwrap();
        assert_eq!(info.first_offset, model.end());
    }
    // Garbage (not zeros) after the valid data of a non-last segment is damage.
    let data_end: u64 = {
        let log = open_log(copy_dir(dir.path()).path(), &config(64 << 10)).unwrap();
        log.size_bytes()
    };
    xor_byte(&active, data_end + 5, 0x5a);
    expect_corrupt(open_log(dir.path(), &config(64 << 10)), "non-zero tail in a non-last segment");
}
