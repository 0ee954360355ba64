use std::fs;
use std::path::Path;

use proptest::prelude::*;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage, StorageError};

use super::*;
use crate::error::ControllerError;

fn entry(index: u64, term: u64) -> Entry {
    Entry { index, term, data: format!("entry-{index}-{term}").into_bytes().into(), ..Default::default() }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn all(s: &RaftStorage) -> Vec<Entry> {
    let (lo, hi) = (s.first_index().unwrap(), s.last_index().unwrap() + 1);
    s.entries(lo, hi, None, GetEntriesContext::empty(false)).unwrap()
}

fn fresh(dir: &Path) -> RaftStorage {
    let mut s = RaftStorage::open(dir).unwrap();
    assert!(!s.is_initialized());
    s.bootstrap(&[1]).unwrap();
    s
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit, ..Default::default() }
}

#[test]
fn append_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
    s.append(&entries(1..=10, 1)).unwrap();
    s.set_hard_state(&hs(1, 1, 7)).unwrap();
    drop(s);

    let s = RaftStorage::open(dir.path()).unwrap();
    assert!(s.is_initialized());
    assert_eq!(all(&s), entries(1..=10, 1));
    assert_eq!(s.term(0).unwrap(), 0);
    assert_eq!(s.term(10).unwrap(), 1);
    assert_eq!(s.term(11), Err(raft::Error::Store(StorageError::Unavailable)));
    let st = s.initial_state().unwrap();
    assert_eq!(st.hard_state, hs(1, 1, 7));
    assert_eq!(st.conf_state, ConfState::from((vec![1], vec![])));
}

#[test]
fn hard_state_and_conf_state_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=3, 2)).unwrap();
    s.set_hard_state(&hs(5, 1, 2)).unwrap();
    s.set_commit(3).unwrap();
    s.set_conf_state(ConfState::from((vec![1, 2, 3], vec![4])), 3).unwrap();
    drop(s);
    let s = RaftStorage::open(dir.path()).unwrap();
    assert_eq!(*s.hard_state(), hs(5, 1, 3));
    assert_eq!(*s.conf_state(), ConfState::from((vec![1, 2, 3], vec![4])));
    assert_eq!(s.conf_index(), 3);
}

#[test]
fn conflicting_append_overwrites_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=5, 1)).unwrap();
    s.append(&entries(4..=6, 2)).unwrap();
    let mut want = entries(1..=3, 1);
    want.extend(entries(4..=6, 2));
    assert_eq!(all(&s), want);
    drop(s);
    let mut s = RaftStorage::open(dir.path()).unwrap();
    assert_eq!(all(&s), want);
    // Gaps and compacted indexes are errors, not panics.
    assert!(s.append(&entries(9..=9, 2)).is_err());
}

#[test]
fn compaction_snapshot_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=100, 1)).unwrap();
    s.append(&entries(101..=120, 3)).unwrap();
    s.set_hard_state(&hs(3, 1, 120)).unwrap();
    let before = fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
    s.compact(110, b"image-at-110".to_vec()).unwrap();
    let after = fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
    assert!(after * 5 < before, "log not compacted: {before} -> {after}");
    let check = |s: &RaftStorage| {
        assert_eq!(s.first_index().unwrap(), 111);
        assert_eq!(s.last_index().unwrap(), 120);
        assert_eq!(s.term(110).unwrap(), 3);
        assert_eq!(s.term(50), Err(raft::Error::Store(StorageError::Compacted)));
        assert_eq!(
            s.entries(100, 112, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        );
        assert_eq!(all(s), entries(111..=120, 3));
        let snap = s.snapshot(0, 1).unwrap();
        assert_eq!((snap.get_metadata().index, snap.get_metadata().term), (110, 3));
        // A member the snapshot's configuration lacks (added since) would
        // refuse it: a newer snapshot is asked for instead.
        assert_eq!(s.snapshot(0, 2), Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)));
        assert!(s.take_snapshot_request().is_some());
        assert_eq!(&snap.data[..], b"image-at-110");
        assert_eq!(snap.get_metadata().get_conf_state(), &ConfState::from((vec![1], vec![])));
        assert_eq!(s.entry_count(), 10);
    };
    check(&s);
    // Older or equal snapshots are no-ops.
    s.compact(100, b"old".to_vec()).unwrap();
    check(&s);
    drop(s);
    let mut s = RaftStorage::open(dir.path()).unwrap();
    check(&s);
    // The log keeps working after compaction and reload.
    s.append(&entries(121..=125, 3)).unwrap();
    drop(s);
    let s = RaftStorage::open(dir.path()).unwrap();
    assert_eq!(s.last_index().unwrap(), 125);
}

#[test]
fn compacting_everything_then_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=5, 1)).unwrap();
    s.set_commit(5).unwrap();
    s.compact(5, b"x".to_vec()).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (6, 5));
    drop(s);
    let s = RaftStorage::open(dir.path()).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap(), s.term(5).unwrap()), (6, 5, 1));
}

#[test]
fn crash_between_snapshot_and_log_rewrite() {
    // The snapshot file is new but the log still holds the covered entries.
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=20, 1)).unwrap();
    s.set_commit(20).unwrap();
    let full_log = fs::read(dir.path().join(LOG_FILE)).unwrap();
    s.compact(15, b"snap".to_vec()).unwrap();
    drop(s);
    fs::write(dir.path().join(LOG_FILE), full_log).unwrap();
    let s = RaftStorage::open(dir.path()).unwrap();
    assert_eq!(all(&s), entries(16..=20, 1));
}

#[test]
fn snapshot_from_leader_replaces_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=10, 1)).unwrap();
    s.set_hard_state(&hs(1, 0, 5)).unwrap();
    let mut snap = Snapshot { data: b"leader image".to_vec().into(), ..Default::default() };
    snap.mut_metadata().index = 50;
    snap.mut_metadata().term = 4;
    snap.mut_metadata().set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    s.apply_snapshot(snap).unwrap();
    let check = |s: &RaftStorage| {
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (51, 50));
        assert_eq!(s.hard_state().commit, 50);
        assert_eq!(s.hard_state().term, 4);
        assert_eq!(s.conf_state().voters, vec![1, 2, 3]);
        assert_eq!(&s.snapshot_ref().data[..], b"leader image");
    };
    check(&s);
    drop(s);
    check(&RaftStorage::open(dir.path()).unwrap());
}

#[test]
fn crash_during_snapshot_from_leader_discards_the_stale_log() {
    // A follower with a diverged log gets a snapshot; the snapshot file is
    // written but the crash comes before the log is rewritten.
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=10, 1)).unwrap();
    let stale_log = fs::read(dir.path().join(LOG_FILE)).unwrap();
    let mut snap = Snapshot { data: b"leader image".to_vec().into(), ..Default::default() };
    snap.mut_metadata().index = 8;
    snap.mut_metadata().term = 2;
    snap.mut_metadata().set_conf_state(ConfState::from((vec![1], vec![])));
    s.apply_snapshot(snap).unwrap();
    drop(s);
    fs::write(dir.path().join(LOG_FILE), stale_log).unwrap();
    let mut s = RaftStorage::open(dir.path()).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (9, 8));
    s.append(&entries(9..=12, 2)).unwrap();
    drop(s);
    let s = RaftStorage::open(dir.path()).unwrap();
    assert_eq!(all(&s), entries(9..=12, 2));
}

#[test]
fn snapshot_request_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = fresh(dir.path());
    assert_eq!(s.snapshot(0, 2), Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)));
    assert_eq!(s.take_snapshot_request(), Some(0));
    assert_eq!(s.take_snapshot_request(), None);
}

#[test]
fn torn_last_entry_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=5, 1)).unwrap();
    let good_len = fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
    s.append(&entries(6..=6, 1)).unwrap();
    drop(s);
    // Crash in the middle of writing entry 6.
    let path = dir.path().join(LOG_FILE);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let mut s = RaftStorage::open(dir.path()).unwrap();
    assert_eq!(s.last_index().unwrap(), 5);
    assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
    s.append(&entries(6..=7, 1)).unwrap();
    drop(s);
    assert_eq!(all(&RaftStorage::open(dir.path()).unwrap()), entries(1..=7, 1));
}

fn assert_corrupt(dir: &Path) {
    match RaftStorage::open(dir) {
        Err(ControllerError::Corrupt { .. }) => {}
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, opened fine"),
    }
}

#[test]
fn garbage_state_files_are_errors() {
    for name in [HARD_STATE_FILE, CONF_STATE_FILE, SNAPSHOT_FILE] {
        let dir = tempfile::tempdir().unwrap();
        drop(fresh(dir.path()));
        fs::write(dir.path().join(name), b"definitely not a state file").unwrap();
        assert_corrupt(dir.path());
        // Well-formed envelope around garbage.
        super::state_file::write_atomic(dir.path(), name, &[0xff; 40]).unwrap();
        assert_corrupt(dir.path());
    }
}

#[test]
fn inconsistent_state_is_an_error() {
    // Commit past the end of the log.
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=3, 1)).unwrap();
    s.set_hard_state(&hs(1, 1, 100)).unwrap();
    drop(s);
    assert_corrupt(dir.path());

    // A configuration raft-rs would panic on.
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.set_conf_state(ConfState::from((vec![1, 1], vec![])), 0).unwrap();
    drop(s);
    assert_corrupt(dir.path());

    // A gap in the log.
    let dir = tempfile::tempdir().unwrap();
    let mut s = fresh(dir.path());
    s.append(&entries(1..=3, 1)).unwrap();
    drop(s);
    let mut buf = fs::read(dir.path().join(LOG_FILE)).unwrap();
    super::log_file::encode_into(&entry(7, 1), &mut buf).unwrap();
    fs::write(dir.path().join(LOG_FILE), buf).unwrap();
    assert_corrupt(dir.path());
}

#[test]
fn directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let s = fresh(dir.path());
    assert!(matches!(RaftStorage::open(dir.path()), Err(ControllerError::Storage { .. })));
    drop(s);
    RaftStorage::open(dir.path()).unwrap();
}

/// Opening must never panic; if it succeeds the storage must be usable.
fn open_and_use(dir: &Path) {
    if let Ok(mut s) = RaftStorage::open(dir) {
        let (lo, hi) = (s.first_index().unwrap(), s.last_index().unwrap());
        assert!(lo <= hi + 1);
        let got = s.entries(lo, hi + 1, None, GetEntriesContext::empty(false)).unwrap();
        assert_eq!(got.len() as u64, hi + 1 - lo);
        for i in lo..=hi {
            s.term(i).unwrap();
        }
        let next = entry(hi + 1, s.term(hi).unwrap_or(0).max(1));
        s.append(&[next]).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_log_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().unwrap();
        drop(fresh(dir.path()));
        fs::write(dir.path().join(LOG_FILE), &bytes).unwrap();
        open_and_use(dir.path());
    }

    #[test]
    fn damaged_valid_log_never_panics(
        cut in 0usize..4096,
        flips in proptest::collection::vec((0usize..4096, any::<u8>()), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = fresh(dir.path());
        s.append(&entries(1..=40, 1)).unwrap();
        drop(s);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).unwrap();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        bytes.truncate(cut.min(bytes.len()));
        fs::write(&path, &bytes).unwrap();
        open_and_use(dir.path());
    }

    #[test]
    fn arbitrary_state_file_bytes_never_panic(
        which in 0usize..3,
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        wrap in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = fresh(dir.path());
        s.append(&entries(1..=5, 1)).unwrap();
        drop(s);
        let name = [HARD_STATE_FILE, CONF_STATE_FILE, SNAPSHOT_FILE][which];
        if wrap {
            super::state_file::write_atomic(dir.path(), name, &bytes).unwrap();
        } else {
            fs::write(dir.path().join(name), &bytes).unwrap();
        }
        open_and_use(dir.path());
    }
}
