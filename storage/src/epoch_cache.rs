//! The leader-epoch cache (Kafka's KIP-101 `LeaderEpochFileCache`): for each
//! leader epoch present in a partition log, the offset of its first record.
//! Replication reconciles replicas with it: a follower asks the leader where
//! its last epoch ends and truncates a divergent suffix there.
//!
//! Persisted beside the segments as `leader-epoch-checkpoint`, a small text
//! file with a version line and a CRC, replaced atomically (temp file, fsync,
//! rename, fsync of the directory). The file is never trusted blindly: the
//! `Log` checks it against the segments on open and rebuilds it from the
//! batch headers when it is missing, damaged or disagrees with the log.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Result, StorageError};
use crate::file_io;

/// File name of the leader-epoch checkpoint inside a partition directory.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

const HEADER: &str = "strata-leader-epoch-checkpoint v1";

/// Ordered `(epoch, start_offset)` entries, strictly increasing in both: the
/// epochs of a partition log and where each begins. The in-memory half of the
/// cache; the `Log` persists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(u32, u64)>,
}

/// What reading the checkpoint file found.
#[derive(Debug)]
pub(crate) enum CacheFile {
    /// No file.
    Missing,
    /// A file that does not parse or check out, with the reason.
    Invalid(String),
    /// A well-formed file.
    Found(LeaderEpochCache),
}

impl LeaderEpochCache {
    /// An empty cache (a new log, or one whose epochs were all truncated).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a cache from entries, which must be strictly increasing in both
    /// epoch and start offset (lets tests and tools state a cache directly).
    pub fn from_entries(entries: Vec<(u32, u64)>) -> Result<Self> {
        if let Some(w) = entries.windows(2).find(|w| w[1].0 <= w[0].0 || w[1].1 <= w[0].1) {
            return Err(StorageError::InvalidArgument {
                what: "leader epoch entries",
                reason: format!("{:?} does not follow {:?} strictly", w[1], w[0]),
            });
        }
        Ok(LeaderEpochCache { entries })
    }

    /// The entries, oldest epoch first.
    pub fn entries(&self) -> &[(u32, u64)] {
        &self.entries
    }

    /// Whether no epoch is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest epoch, if any: the epoch the log is being written in.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.entries.last().map(|e| e.0)
    }

    /// The newest entry, if any.
    pub fn latest(&self) -> Option<(u32, u64)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`, with Kafka's semantics:
    /// nothing changes when `epoch` is already the latest and starts at or
    /// before `start_offset`; otherwise every entry at the end whose epoch is
    /// ≥ `epoch` or whose start is ≥ `start_offset` is dropped first (they
    /// would break monotonicity), then the entry is added. Returns whether
    /// the cache changed.
    pub fn assign(&mut self, epoch: u32, start_offset: u64) -> bool {
        if let Some((latest, start)) = self.latest() {
            if latest == epoch && start_offset >= start {
                return false;
            }
        }
        let keep = self.entries.iter().rposition(|&(e, s)| e < epoch && s < start_offset).map_or(0, |i| i + 1);
        let removed: Vec<(u32, u64)> = self.entries.drain(keep..).collect();
        // Dropping the entry this one replaces at the same offset is the
        // expected case (no data was written in it); anything else is worth
        // a warning.
        if removed.len() > 1 || removed.first().is_some_and(|&(_, s)| s != start_offset) {
            tracing::warn!(epoch, start_offset, ?removed, "new leader epoch entry dropped conflicting entries");
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// Drops every entry starting at or after `end_offset` (the log was
    /// truncated to end there). Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: u64) -> bool {
        let keep = self.entries.partition_point(|&(_, s)| s < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Drops entries wholly below `start_offset` (the log start moved up);
    /// the epoch covering `start_offset` is kept and now starts there.
    /// Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: u64) -> bool {
        let at_or_below = self.entries.partition_point(|&(_, s)| s <= start_offset);
        if at_or_below == 0 {
            return false;
        }
        let epoch = self.entries[at_or_below - 1].0;
        let changed = at_or_below > 1 || self.entries[0].1 != start_offset;
        self.entries.drain(..at_or_below - 1);
        self.entries[0] = (epoch, start_offset);
        changed
    }

    /// Where `requested` epoch ends, as `(epoch, end_offset)` (Kafka's
    /// OffsetsForLeaderEpoch answer): for the latest epoch, `(latest,
    /// log_end_offset)`; otherwise the largest cached epoch ≤ `requested`,
    /// ending where the first cached epoch > `requested` starts. `None` when
    /// the cache is empty, `requested` is older than every cached epoch, or
    /// newer than the latest (the caller falls back, e.g. to its high
    /// watermark).
    pub fn end_offset_for(&self, requested: u32, log_end_offset: u64) -> Option<(u32, u64)> {
        let (latest, _) = self.latest()?;
        if requested == latest {
            return Some((latest, log_end_offset));
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= requested);
        if higher == 0 || higher == self.entries.len() {
            return None;
        }
        Some((self.entries[higher - 1].0, self.entries[higher].1))
    }

    /// Scanning a log: call with each batch's `(epoch, base_offset)` in
    /// order; records an entry at each epoch increase (a lower epoch, which
    /// only a log written before epochs were enforced can hold, is ignored).
    pub fn observe_batch(&mut self, epoch: u32, base_offset: u64) {
        if self.latest_epoch().is_none_or(|l| epoch > l) {
            self.entries.push((epoch, base_offset));
        }
    }

    /// Writes the checkpoint file durably (atomic replace).
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        fail::fail_point!("storage::epoch_checkpoint", |v| Err(StorageError::io(
            &path,
            "writing leader-epoch checkpoint",
            file_io::injected(v.as_deref().unwrap_or("eio"))
        )));
        file_io::write_atomic(&path, self.encode().as_bytes())
    }

    /// Reads the checkpoint file without trusting it.
    pub(crate) fn read(dir: &Path) -> Result<CacheFile> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheFile::Missing),
            Err(e) => return Err(StorageError::io(&path, "reading leader-epoch checkpoint", e)),
        };
        Ok(match decode(&bytes) {
            Ok(cache) => CacheFile::Found(cache),
            Err(why) => CacheFile::Invalid(why),
        })
    }

    fn encode(&self) -> String {
        let mut text = format!("{HEADER}\nentries {}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            let _ = writeln!(text, "{epoch} {start}");
        }
        let crc = crc32fast::hash(text.as_bytes());
        let _ = writeln!(text, "crc {crc:08x}");
        text
    }
}

/// Parses a checkpoint file; the error says what is wrong with it.
fn decode(bytes: &[u8]) -> std::result::Result<LeaderEpochCache, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let body_end = text.trim_end_matches('\n').rfind('\n').map(|i| i + 1).ok_or("too short")?;
    let (body, crc_line) = text.split_at(body_end);
    let stored = crc_line
        .strip_prefix("crc ")
        .and_then(|v| u32::from_str_radix(v.trim_end_matches('\n'), 16).ok())
        .ok_or("missing CRC line")?;
    let actual = crc32fast::hash(body.as_bytes());
    if stored != actual {
        return Err(format!("CRC mismatch (stored {stored:08x}, computed {actual:08x})"));
    }
    let mut lines = body.lines();
    if lines.next() != Some(HEADER) {
        return Err("unknown header or version".into());
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.strip_prefix("entries "))
        .and_then(|n| n.parse().ok())
        .ok_or("missing entry count")?;
    let mut entries = Vec::new();
    for line in lines {
        let parsed = line.split_once(' ').and_then(|(e, s)| Some((e.parse::<u32>().ok()?, s.parse::<u64>().ok()?)));
        entries.push(parsed.ok_or_else(|| format!("bad entry line {line:?}"))?);
    }
    if entries.len() != count {
        return Err(format!("{} entries where the header says {count}", entries.len()));
    }
    LeaderEpochCache::from_entries(entries).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(u32, u64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(entries.to_vec()).unwrap()
    }

    #[test]
    fn assign_appends_newer_epochs_and_ignores_repeats() {
        let mut c = LeaderEpochCache::new();
        assert!(c.assign(2, 0));
        assert!(!c.assign(2, 5), "same epoch, later start: no change");
        assert!(c.assign(3, 10));
        assert!(c.assign(5, 20));
        assert_eq!(c.entries(), &[(2, 0), (3, 10), (5, 20)]);
        assert_eq!(c.latest_epoch(), Some(5));
    }

    #[test]
    fn assign_drops_entries_that_would_break_monotonicity() {
        // Same epoch, earlier start: replaced.
        let mut c = cache(&[(2, 0), (3, 10)]);
        assert!(c.assign(3, 8));
        assert_eq!(c.entries(), &[(2, 0), (3, 8)]);
        // Older epoch: every entry with epoch ≥ it goes.
        let mut c = cache(&[(2, 0), (3, 10), (5, 20)]);
        assert!(c.assign(3, 25));
        assert_eq!(c.entries(), &[(2, 0), (3, 25)]);
        // Newer epoch at an earlier offset: entries starting at or after it go.
        let mut c = cache(&[(2, 0), (3, 10), (5, 20)]);
        assert!(c.assign(6, 10));
        assert_eq!(c.entries(), &[(2, 0), (6, 10)]);
        // A pending (no data) entry at the same offset is replaced.
        let mut c = cache(&[(2, 0), (7, 30)]);
        assert!(c.assign(8, 30));
        assert_eq!(c.entries(), &[(2, 0), (8, 30)]);
        // Both older epoch and earlier start: everything goes.
        let mut c = cache(&[(2, 5), (3, 10)]);
        assert!(c.assign(1, 0));
        assert_eq!(c.entries(), &[(1, 0)]);
    }

    #[test]
    fn truncate_from_end_drops_entries_at_or_after() {
        let mut c = cache(&[(1, 0), (2, 10), (4, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), &[(1, 0), (2, 10)]);
        assert!(!c.truncate_from_end(11));
        assert!(c.truncate_from_end(10));
        assert_eq!(c.entries(), &[(1, 0)]);
        assert!(c.truncate_from_end(0));
        assert!(c.is_empty());
        assert!(!c.truncate_from_end(0));
    }

    #[test]
    fn truncate_from_start_keeps_the_covering_epoch() {
        let mut c = cache(&[(1, 0), (2, 10), (4, 20)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(5));
        assert_eq!(c.entries(), &[(1, 5), (2, 10), (4, 20)]);
        assert!(c.truncate_from_start(10));
        assert_eq!(c.entries(), &[(2, 10), (4, 20)]);
        assert!(!c.truncate_from_start(10));
        assert!(c.truncate_from_start(25));
        assert_eq!(c.entries(), &[(4, 25)]);
        let mut c = cache(&[(3, 50)]);
        assert!(!c.truncate_from_start(40), "below the first entry: nothing to drop");
        assert_eq!(c.entries(), &[(3, 50)]);
        let mut e = LeaderEpochCache::new();
        assert!(!e.truncate_from_start(7));
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 0), (2, 10), (4, 20)]);
        assert_eq!(c.end_offset_for(4, 33), Some((4, 33)), "latest epoch ends at the LEO");
        assert_eq!(c.end_offset_for(2, 33), Some((2, 20)));
        assert_eq!(c.end_offset_for(1, 33), Some((1, 10)));
        assert_eq!(c.end_offset_for(3, 33), Some((2, 20)), "unknown epoch: the largest below it");
        assert_eq!(c.end_offset_for(0, 33), None, "older than every cached epoch");
        assert_eq!(c.end_offset_for(9, 33), None, "newer than the latest");
        assert_eq!(LeaderEpochCache::new().end_offset_for(0, 0), None);
    }

    /// KIP-101: the leader A (epoch 1) has offsets 0..10, follower B got
    /// 0..6. A dies, B leads in epoch 2 and writes 6..8; A returns and asks
    /// B where epoch 1 ends: at 6, so A truncates 6..10 instead of keeping a
    /// suffix B never had.
    #[test]
    fn kip_101_divergent_suffix_is_found() {
        let mut a = LeaderEpochCache::new();
        a.assign(1, 0);
        let mut b = LeaderEpochCache::new();
        b.assign(1, 0);
        b.assign(2, 6);
        let (epoch, end) = b.end_offset_for(a.latest_epoch().unwrap(), 8).unwrap();
        assert_eq!((epoch, end), (1, 6));
        a.truncate_from_end(end.min(10));
        a.assign(2, 6);
        assert_eq!(a, b);
    }

    #[test]
    fn observe_batch_records_epoch_increases_only() {
        let mut c = LeaderEpochCache::new();
        for (e, b) in [(0, 0), (0, 3), (2, 5), (2, 9), (1, 12), (3, 14)] {
            c.observe_batch(e, b);
        }
        assert_eq!(c.entries(), &[(0, 0), (2, 5), (3, 14)]);
    }

    #[test]
    fn from_entries_rejects_non_increasing() {
        assert!(LeaderEpochCache::from_entries(vec![(1, 0), (1, 5)]).is_err());
        assert!(LeaderEpochCache::from_entries(vec![(1, 5), (2, 5)]).is_err());
        assert!(LeaderEpochCache::from_entries(vec![(3, 0), (2, 5)]).is_err());
    }

    #[test]
    fn file_round_trips_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(LeaderEpochCache::read(dir.path()).unwrap(), CacheFile::Missing));
        let c = cache(&[(1, 0), (2, 10), (u32::MAX, u64::MAX)]);
        c.write(dir.path()).unwrap();
        match LeaderEpochCache::read(dir.path()).unwrap() {
            CacheFile::Found(read) => assert_eq!(read, c),
            other => panic!("{other:?}"),
        }
        LeaderEpochCache::new().write(dir.path()).unwrap();
        assert!(matches!(LeaderEpochCache::read(dir.path()).unwrap(), CacheFile::Found(e) if e.is_empty()));

        let good = c.encode();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
        let mut flipped = good.clone().into_bytes();
        flipped[good.find("10").unwrap()] = b'3';
        let cut = &good.as_bytes()[..good.len() - 5];
        let unordered = {
            let body = format!("{HEADER}\nentries 2\n5 0\n3 10\n");
            format!("{body}crc {:08x}\n", crc32fast::hash(body.as_bytes()))
        };
        for (what, bytes) in [
            ("flipped digit", flipped),
            ("truncated", cut.to_vec()),
            ("empty", Vec::new()),
            ("garbage", b"\xff\xfe\x00 not a checkpoint".to_vec()),
            ("not increasing", unordered.into_bytes()),
            ("old header", good.replace("v1", "v9").into_bytes()),
        ] {
            std::fs::write(&path, bytes).unwrap();
            assert!(matches!(LeaderEpochCache::read(dir.path()).unwrap(), CacheFile::Invalid(_)), "{what}");
        }
    }
}
