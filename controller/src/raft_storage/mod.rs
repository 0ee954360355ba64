//! A persisted implementation of raft-rs's [`raft::Storage`] in one directory:
//!
//! - `raft.log` — the entries after the last snapshot, appended as
//!   length + CRC32 + protobuf records and fdatasync'd on every append;
//! - `hardstate`, `confstate` — small files replaced atomically;
//! - `snapshot` — the latest snapshot (its data is the JSON metadata image);
//!   taking one drops the entries it covers and rewrites the log;
//! - `lock` — an exclusive `flock` so two controllers never share a directory.
//!
//! Opening truncates a torn last record and rejects anything else that cannot
//! be what we wrote with [`ControllerError::Corrupt`], never a panic.

mod log_file;
mod state_file;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::error::ControllerError;

/// The Raft log file's name.
pub const LOG_FILE: &str = "raft.log";
/// The hard state file's name.
pub const HARD_STATE_FILE: &str = "hardstate";
/// The conf state file's name.
pub const CONF_STATE_FILE: &str = "confstate";
/// The snapshot file's name.
pub const SNAPSHOT_FILE: &str = "snapshot";
const LOCK_FILE: &str = "lock";
/// Indexes above this cannot come from a real log; refusing them keeps index
/// arithmetic far from overflow.
const MAX_INDEX: u64 = u64::MAX >> 2;

/// Raft's persisted state for one controller node.
pub struct RaftStorage {
    dir: PathBuf,
    log: File,
    log_len: u64,
    /// Entries after the snapshot, contiguous.
    entries: Vec<Entry>,
    /// File position of each entry's record.
    positions: Vec<u64>,
    hard_state: HardState,
    conf_state: ConfState,
    /// Raft index at which `conf_state` took effect.
    conf_index: u64,
    /// The latest snapshot (default/empty if none).
    snapshot: Snapshot,
    /// Set when raft asked for a snapshot newer than the one we have.
    snapshot_request: Cell<Option<u64>>,
    _lock: File,
}

impl RaftStorage {
    /// Opens (creating if needed) the storage in `dir` and reloads everything.
    pub fn open(dir: &Path) -> Result<Self, ControllerError> {
        fs::create_dir_all(dir).map_err(|e| ControllerError::io(dir, e))?;
        let lock = lock_dir(dir)?;
        remove_tmp_files(dir)?;

        let snapshot = match state_file::read(&dir.join(SNAPSHOT_FILE))? {
            Some(bytes) => decode_snapshot(&dir.join(SNAPSHOT_FILE), &bytes)?,
            None => Snapshot::default(),
        };
        let (snap_index, snap_term) = (snapshot.get_metadata().index, snapshot.get_metadata().term);

        let hs_path = dir.join(HARD_STATE_FILE);
        let mut hard_state = match state_file::read(&hs_path)? {
            Some(bytes) => HardState::parse_from_bytes(&bytes)
                .map_err(|e| ControllerError::corrupt(&hs_path, format!("hard state: {e}")))?,
            None => HardState::default(),
        };

        let cs_path = dir.join(CONF_STATE_FILE);
        let (mut conf_state, mut conf_index) = match state_file::read(&cs_path)? {
            Some(bytes) => decode_conf_state(&cs_path, &bytes)?,
            None => (ConfState::default(), 0),
        };
        if snap_index > 0 && snap_index >= conf_index {
            conf_state = snapshot.get_metadata().get_conf_state().clone();
            conf_index = snap_index;
        }

        let log_path = dir.join(LOG_FILE);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(|e| ControllerError::io(&log_path, e))?;
        let bytes = fs::read(&log_path).map_err(|e| ControllerError::io(&log_path, e))?;
        let scan = log_file::scan(&bytes).map_err(|r| ControllerError::corrupt(&log_path, r))?;
        let mut log_len = scan.valid_len;
        if log_len < bytes.len() as u64 {
            tracing::warn!(
                file = %log_path.display(),
                kept = log_len,
                dropped = bytes.len() as u64 - log_len,
                "truncating a torn tail of the raft log"
            );
            log.set_len(log_len).map_err(|e| ControllerError::io(&log_path, e))?;
            log.sync_all().map_err(|e| ControllerError::io(&log_path, e))?;
        }
        let (entries, positions) = match reconcile_with_snapshot(&log_path, scan.entries, snap_index, snap_term)? {
            Some(kept) => kept,
            None => {
                // Superseded by the snapshot: empty the file so later appends
                // do not follow the stale records.
                log.set_len(0).map_err(|e| ControllerError::io(&log_path, e))?;
                log.sync_all().map_err(|e| ControllerError::io(&log_path, e))?;
                log_len = 0;
                (Vec::new(), Vec::new())
            }
        };

        let last_index = entries.last().map_or(snap_index, |e| e.index);
        hard_state.commit = hard_state.commit.max(snap_index);
        hard_state.term = hard_state.term.max(snap_term);
        if hard_state.commit > last_index {
            return Err(ControllerError::corrupt(
                &hs_path,
                format!("commit index {} is past the last log entry {last_index}", hard_state.commit),
            ));
        }
        Ok(RaftStorage {
            dir: dir.to_path_buf(),
            log,
            log_len,
            entries,
            positions,
            hard_state,
            conf_state,
            conf_index,
            snapshot,
            snapshot_request: Cell::new(None),
            _lock: lock,
        })
    }

    /// True once the storage holds a configuration (bootstrapped or from a snapshot).
    pub fn is_initialized(&self) -> bool {
        !self.conf_state.voters.is_empty() || self.snapshot.get_metadata().index > 0
    }

    /// First start: persists the initial voter set.
    pub fn bootstrap(&mut self, voters: &[u64]) -> Result<(), ControllerError> {
        self.set_conf_state(ConfState::from((voters.to_vec(), Vec::<u64>::new())), 0)
    }

    /// The directory this storage lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The persisted configuration.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The Raft index at which the persisted configuration took effect.
    pub fn conf_index(&self) -> u64 {
        self.conf_index
    }

    /// The latest snapshot (empty metadata and data if none was taken).
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Index of the latest snapshot (0 if none).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// Entries currently held (after the snapshot).
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Asks for a snapshot at the next chance (the Raft thread takes it
    /// after applying): a joining member must start from one.
    pub fn request_snapshot(&self) {
        self.snapshot_request.set(Some(self.snapshot_request.get().unwrap_or(0)));
    }

    /// Takes a pending request (from raft) for a snapshot at least this recent.
    pub fn take_snapshot_request(&self) -> Option<u64> {
        self.snapshot_request.take()
    }

    fn first_log_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last_log_index(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }

    fn term_of(&self, idx: u64) -> Result<u64, StorageError> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first_log_index() {
            return Err(StorageError::Compacted);
        }
        if idx > self.last_log_index() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.entries[(idx - self.first_log_index()) as usize].term)
    }

    /// Appends entries (overwriting any conflicting suffix) and fdatasyncs the log.
    pub fn append(&mut self, ents: &[Entry]) -> Result<(), ControllerError> {
        let Some(first) = ents.first() else { return Ok(()) };
        let log_path = self.dir.join(LOG_FILE);
        if first.index < self.first_log_index() {
            return Err(ControllerError::Raft(raft::Error::Store(StorageError::Compacted)));
        }
        if first.index > self.last_log_index() + 1 {
            return Err(ControllerError::Raft(raft::Error::Store(StorageError::Unavailable)));
        }
        if first.index <= self.last_log_index() {
            let keep = (first.index - self.first_log_index()) as usize;
            let pos = self.positions[keep];
            self.entries.truncate(keep);
            self.positions.truncate(keep);
            self.log.set_len(pos).map_err(|e| ControllerError::io(&log_path, e))?;
            self.log_len = pos;
        }
        let mut buf = Vec::new();
        let mut positions = Vec::with_capacity(ents.len());
        for e in ents {
            positions.push(self.log_len + buf.len() as u64);
            log_file::encode_into(e, &mut buf).map_err(|r| ControllerError::corrupt(&log_path, r))?;
        }
        self.log.write_all_at(&buf, self.log_len).map_err(|e| ControllerError::io(&log_path, e))?;
        self.log.sync_data().map_err(|e| ControllerError::io(&log_path, e))?;
        self.log_len += buf.len() as u64;
        self.entries.extend_from_slice(ents);
        self.positions.extend(positions);
        Ok(())
    }

    /// Persists the hard state if it changed.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), ControllerError> {
        if *hs == self.hard_state {
            return Ok(());
        }
        let bytes = hs.write_to_bytes().map_err(|e| ControllerError::Raft(e.into()))?;
        state_file::write_atomic(&self.dir, HARD_STATE_FILE, &bytes)?;
        self.hard_state = hs.clone();
        Ok(())
    }

    /// Persists a new commit index.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), ControllerError> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(&hs)
    }

    /// Persists the configuration that took effect at Raft index `index`.
    pub fn set_conf_state(&mut self, cs: ConfState, index: u64) -> Result<(), ControllerError> {
        let mut bytes = index.to_le_bytes().to_vec();
        bytes.extend(cs.write_to_bytes().map_err(|e| ControllerError::Raft(e.into()))?);
        state_file::write_atomic(&self.dir, CONF_STATE_FILE, &bytes)?;
        self.conf_state = cs;
        self.conf_index = index;
        Ok(())
    }

    /// Takes a snapshot at applied index `index` holding `data`, then drops the
    /// entries up to it. A no-op if a snapshot at least that recent exists.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), ControllerError> {
        if index <= self.snapshot_index() {
            return Ok(());
        }
        let term = self.term_of(index).map_err(|e| ControllerError::Raft(e.into()))?;
        let mut snap = Snapshot { data: data.into(), ..Default::default() };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        self.install_snapshot(snap)?;
        let drop = (index + 1 - self.entries.first().map_or(index + 1, |e| e.index)) as usize;
        let rest = self.entries.split_off(drop.min(self.entries.len()));
        self.rewrite_log(rest)
    }

    /// Replaces everything with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<(), ControllerError> {
        let meta = snap.get_metadata().clone();
        if meta.index <= self.snapshot_index() {
            return Ok(());
        }
        self.install_snapshot(snap)?;
        self.rewrite_log(Vec::new())?;
        self.set_conf_state(meta.get_conf_state().clone(), meta.index)?;
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        self.set_hard_state(&hs)
    }

    fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), ControllerError> {
        let bytes = snap.write_to_bytes().map_err(|e| ControllerError::Raft(e.into()))?;
        state_file::write_atomic(&self.dir, SNAPSHOT_FILE, &bytes)?;
        self.snapshot = snap;
        Ok(())
    }

    /// Writes `entries` to a fresh log file and swaps it in atomically.
    fn rewrite_log(&mut self, entries: Vec<Entry>) -> Result<(), ControllerError> {
        let log_path = self.dir.join(LOG_FILE);
        let tmp = self.dir.join(format!("{LOG_FILE}{}", state_file::TMP_SUFFIX));
        let mut buf = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for e in &entries {
            positions.push(buf.len() as u64);
            log_file::encode_into(e, &mut buf).map_err(|r| ControllerError::corrupt(&log_path, r))?;
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| ControllerError::io(&tmp, e))?;
        f.write_all_at(&buf, 0).map_err(|e| ControllerError::io(&tmp, e))?;
        f.sync_all().map_err(|e| ControllerError::io(&tmp, e))?;
        fs::rename(&tmp, &log_path).map_err(|e| ControllerError::io(&log_path, e))?;
        state_file::sync_dir(&self.dir)?;
        self.log = f;
        self.log_len = buf.len() as u64;
        self.entries = entries;
        self.positions = positions;
        Ok(())
    }
}

impl raft::Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_log_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_log_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let base = self.first_log_index();
        let mut ents = self.entries[(low - base) as usize..(high - base) as usize].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.term_of(idx).map_err(raft::Error::Store)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first_log_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_log_index())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let index = self.snapshot_index();
        // A member added after the snapshot was taken would refuse it (it is
        // not in the snapshot's configuration): take a newer one first.
        let cs = self.snapshot.get_metadata().get_conf_state();
        let knows_to = cs.voters.contains(&to) || cs.learners.contains(&to);
        if index == 0 || index < request_index || !knows_to {
            self.snapshot_request.set(Some(request_index));
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}

/// Entries and the file position of each.
type LoadedEntries = (Vec<Entry>, Vec<u64>);

/// Drops the log entries a snapshot covers and checks the rest follows it.
/// `None` means the whole log is stale (superseded by the snapshot).
fn reconcile_with_snapshot(
    log_path: &Path,
    scanned: Vec<(Entry, u64)>,
    snap_index: u64,
    snap_term: u64,
) -> Result<Option<LoadedEntries>, ControllerError> {
    // A log still holding the snapshot's own entry with another term was
    // superseded by a snapshot from the leader (crash before the log rewrite).
    let stale = scanned.iter().any(|(e, _)| e.index == snap_index && snap_index > 0 && e.term != snap_term);
    if stale {
        tracing::warn!(file = %log_path.display(), snap_index, "discarding a raft log superseded by the snapshot");
        return Ok(None);
    }
    let mut entries = Vec::new();
    let mut positions = Vec::new();
    let mut prev_term = snap_term;
    for (e, pos) in scanned.into_iter().filter(|(e, _)| e.index > snap_index) {
        let expected = snap_index + 1 + entries.len() as u64;
        if e.index != expected {
            return Err(ControllerError::corrupt(
                log_path,
                format!("entry index {} where {expected} was expected (snapshot at {snap_index})", e.index),
            ));
        }
        if e.term < prev_term {
            return Err(ControllerError::corrupt(
                log_path,
                format!("entry {} has term {} after term {prev_term}", e.index, e.term),
            ));
        }
        prev_term = e.term;
        entries.push(e);
        positions.push(pos);
    }
    Ok(Some((entries, positions)))
}

fn decode_snapshot(path: &Path, bytes: &[u8]) -> Result<Snapshot, ControllerError> {
    let snap =
        Snapshot::parse_from_bytes(bytes).map_err(|e| ControllerError::corrupt(path, format!("snapshot: {e}")))?;
    let meta = snap.get_metadata();
    if meta.index == 0 || meta.index > MAX_INDEX {
        return Err(ControllerError::corrupt(path, format!("snapshot at impossible index {}", meta.index)));
    }
    check_conf_state(path, meta.get_conf_state())?;
    Ok(snap)
}

fn decode_conf_state(path: &Path, bytes: &[u8]) -> Result<(ConfState, u64), ControllerError> {
    if bytes.len() < 8 {
        return Err(ControllerError::corrupt(path, "conf state shorter than its index"));
    }
    let (idx, rest) = bytes.split_at(8);
    let index = u64::from_le_bytes([idx[0], idx[1], idx[2], idx[3], idx[4], idx[5], idx[6], idx[7]]);
    let cs =
        ConfState::parse_from_bytes(rest).map_err(|e| ControllerError::corrupt(path, format!("conf state: {e}")))?;
    check_conf_state(path, &cs)?;
    Ok((cs, index))
}

/// raft-rs panics on some inconsistent configurations; refuse them up front.
fn check_conf_state(path: &Path, cs: &ConfState) -> Result<(), ControllerError> {
    let mut seen = std::collections::BTreeSet::new();
    if cs.voters.is_empty() {
        return Err(ControllerError::corrupt(path, "configuration without voters"));
    }
    if !cs.voters_outgoing.is_empty() || !cs.learners_next.is_empty() || cs.auto_leave {
        return Err(ControllerError::corrupt(path, "joint configurations are not supported"));
    }
    for &id in cs.voters.iter().chain(&cs.learners) {
        if id == 0 || !seen.insert(id) {
            return Err(ControllerError::corrupt(path, format!("invalid or repeated node id {id} in configuration")));
        }
    }
    Ok(())
}

fn lock_dir(dir: &Path) -> Result<File, ControllerError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ControllerError::io(&path, e))?;
    // SAFETY: flock on a file descriptor we own and keep open.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(ControllerError::io(
            dir,
            std::io::Error::new(e.kind(), format!("directory is locked by another controller: {e}")),
        ));
    }
    Ok(f)
}

fn remove_tmp_files(dir: &Path) -> Result<(), ControllerError> {
    for entry in fs::read_dir(dir).map_err(|e| ControllerError::io(dir, e))? {
        let entry = entry.map_err(|e| ControllerError::io(dir, e))?;
        if entry.file_name().to_string_lossy().ends_with(state_file::TMP_SUFFIX) {
            let p = entry.path();
            fs::remove_file(&p).map_err(|e| ControllerError::io(&p, e))?;
        }
    }
    Ok(())
}
