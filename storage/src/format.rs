//! The data directory's format version (`docs/storage.md`, "Data directory
//! format"). A directory records which record-batch format its logs hold,
//! so a build never reads bytes of another format as its own: a directory
//! of another or unknown format is refused at open with a message saying
//! what it is and what to do.
//!
//! - Format 2 (this build): Kafka's RecordBatch v2 exactly (big-endian,
//!   CRC-32C).
//! - Format 1: the pre-release layout (little-endian, CRC-32 IEEE). Such
//!   directories carry no format file; they are recognised by holding
//!   partition logs without one.

use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::file_io;
use crate::TopicPartition;

/// The file in the data directory that names its format.
pub const FORMAT_FILE: &str = "strata.format";
/// The format this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// The key of the version line in [`FORMAT_FILE`].
const KEY: &str = "format_version";

/// Checks that `dir` holds this build's format, stamping a directory that
/// holds no logs yet.
pub(crate) fn check_or_stamp(dir: &Path) -> Result<()> {
    let path = dir.join(FORMAT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => match parse(&text) {
            Some(FORMAT_VERSION) => Ok(()),
            found => Err(StorageError::UnsupportedFormat { dir: dir.to_path_buf(), found }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if first_partition_dir(dir)?.is_some() {
                return Err(StorageError::UnsupportedFormat { dir: dir.to_path_buf(), found: Some(1) });
            }
            let text = format!(
                "# The record-batch format of this directory's logs; strata-server refuses another.\n{KEY}={FORMAT_VERSION}\n"
            );
            file_io::write_atomic(&path, text.as_bytes())
        }
        Err(e) => Err(StorageError::io(&path, "reading", e)),
    }
}

/// The version a format file names, if it names one.
fn parse(text: &str) -> Option<u32> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(KEY)?.trim_start().strip_prefix('=')?.trim().parse().ok())
}

/// A partition directory in `dir`, if any (what makes an unstamped
/// directory one of the old format rather than a new one).
fn first_partition_dir(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, "listing", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, "listing", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && TopicPartition::from_dir_name(&name).is_some() {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_is_found_among_comments() {
        assert_eq!(parse("# c\nformat_version=2\n"), Some(2));
        assert_eq!(parse("format_version = 7"), Some(7));
        assert_eq!(parse("# format_version=2\n"), None);
        assert_eq!(parse("version=2"), None);
        assert_eq!(parse("format_version=two"), None);
    }
}
