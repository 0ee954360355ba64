//! Small per-partition state files: the recovery-point / log-start-offset
//! checkpoint and the clean-shutdown marker. Written atomically (temp file,
//! fsync, rename, fsync of the directory); read without trusting them.

use std::path::Path;

use crate::error::{Result, StorageError};
use crate::file_io;

/// Checkpoint file name inside a partition directory.
pub const CHECKPOINT_FILE: &str = "log.checkpoint";
/// Marker written by a clean close; its presence lets the next open skip
/// recovery. Removed (durably) as soon as the log is opened again.
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

const HEADER: &str = "strata-log-checkpoint v1";

/// What the checkpoint file records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCheckpoint {
    /// Every offset below this was fsynced: recovery starts from here.
    pub recovery_point: u64,
    /// First offset still readable (raised by `delete_before`).
    pub log_start_offset: u64,
    /// The replica's high watermark when the checkpoint was written, so a
    /// restarted replica does not start from zero. `None` in files written
    /// before replication existed.
    pub high_watermark: Option<u64>,
}

impl LogCheckpoint {
    /// Writes the checkpoint durably.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut text =
            format!("{HEADER}\nrecovery_point {}\nlog_start_offset {}\n", self.recovery_point, self.log_start_offset);
        // An optional trailing line: readers that predate it stop after
        // log_start_offset and still load the file.
        if let Some(hw) = self.high_watermark {
            text.push_str(&format!("high_watermark {hw}\n"));
        }
        file_io::write_atomic(&dir.join(CHECKPOINT_FILE), text.as_bytes())
    }

    /// Reads the checkpoint. A missing file is `Ok(None)`; an unreadable one
    /// is logged and also `None` (recovery then scans everything).
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => String::new(),
            Err(e) => return Err(StorageError::io(&path, "reading checkpoint", e)),
        };
        let parsed = parse(&text);
        if parsed.is_none() {
            tracing::warn!(path = %path.display(), "ignoring unreadable log checkpoint; recovering the whole log");
        }
        Ok(parsed)
    }
}

fn parse(text: &str) -> Option<LogCheckpoint> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let mut field = |name: &str| -> Option<u64> {
        let (k, v) = lines.next()?.split_once(' ')?;
        (k == name).then(|| v.parse().ok())?
    };
    let (recovery_point, log_start_offset) = (field("recovery_point")?, field("log_start_offset")?);
    let high_watermark = match lines.next() {
        None => None,
        Some(line) => match line.split_once(' ') {
            Some(("high_watermark", v)) => Some(v.parse().ok()?),
            _ => return None,
        },
    };
    Some(LogCheckpoint { recovery_point, log_start_offset, high_watermark })
}

/// Whether the last close was clean.
pub(crate) fn clean_marker_exists(dir: &Path) -> bool {
    dir.join(CLEAN_SHUTDOWN_FILE).exists()
}

/// Writes the clean-shutdown marker.
pub(crate) fn write_clean_marker(dir: &Path) -> Result<()> {
    file_io::write_atomic(&dir.join(CLEAN_SHUTDOWN_FILE), b"clean\n")
}

/// Removes the marker durably, so a crash from now on triggers recovery.
pub(crate) fn remove_clean_marker(dir: &Path) -> Result<()> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => file_io::sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(&path, "removing clean-shutdown marker", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LogCheckpoint::read(dir.path()).unwrap(), None);
        let c = LogCheckpoint { recovery_point: 42, log_start_offset: 7, high_watermark: None };
        c.write(dir.path()).unwrap();
        assert_eq!(LogCheckpoint::read(dir.path()).unwrap(), Some(c));
        let c = LogCheckpoint { recovery_point: 42, log_start_offset: 7, high_watermark: Some(40) };
        c.write(dir.path()).unwrap();
        assert_eq!(LogCheckpoint::read(dir.path()).unwrap(), Some(c));
        // A file written before the high watermark existed still loads.
        std::fs::write(dir.path().join(CHECKPOINT_FILE), format!("{HEADER}\nrecovery_point 9\nlog_start_offset 3\n"))
            .unwrap();
        let old = LogCheckpoint { recovery_point: 9, log_start_offset: 3, high_watermark: None };
        assert_eq!(LogCheckpoint::read(dir.path()).unwrap(), Some(old));
        std::fs::write(
            dir.path().join(CHECKPOINT_FILE),
            format!("{HEADER}\nrecovery_point 9\nlog_start_offset 3\nhigh_watermark x\n"),
        )
        .unwrap();
        assert_eq!(LogCheckpoint::read(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"\xff\xfe garbage").unwrap();
        assert_eq!(LogCheckpoint::read(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), format!("{HEADER}\nrecovery_point x\n")).unwrap();
        assert_eq!(LogCheckpoint::read(dir.path()).unwrap(), None);
    }

    #[test]
    fn clean_marker_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!clean_marker_exists(dir.path()));
        write_clean_marker(dir.path()).unwrap();
        assert!(clean_marker_exists(dir.path()));
        remove_clean_marker(dir.path()).unwrap();
        assert!(!clean_marker_exists(dir.path()));
        remove_clean_marker(dir.path()).unwrap();
    }
}
