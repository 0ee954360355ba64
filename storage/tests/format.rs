//! The data directory's format version: a new directory is stamped with
//! this build's format, and one written in another format is refused at
//! open, unchanged, with a one-line message saying what it is and what to
//! do (never read as if it were this build's).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use strata_storage::{LogConfig, LogManager, StorageError, FORMAT_FILE, FORMAT_VERSION};

#[test]
fn a_new_directory_is_stamped_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    drop(LogManager::open(dir.path(), LogConfig::default()).unwrap());
    let text = std::fs::read_to_string(dir.path().join(FORMAT_FILE)).unwrap();
    assert!(text.lines().any(|l| l == format!("format_version={FORMAT_VERSION}")), "{text}");
    LogManager::open(dir.path(), LogConfig::default()).unwrap();
}

#[test]
fn logs_without_a_format_file_are_the_old_format_and_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("events-0");
    std::fs::create_dir(&part).unwrap();
    std::fs::write(part.join("00000000000000000000.log"), b"old little-endian batches").unwrap();
    let err = LogManager::open(dir.path(), LogConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::UnsupportedFormat { found: Some(1), .. }), "{err:?}");
    let message = strata_record::ErrorChain(&err).to_string();
    assert_eq!(message.lines().count(), 1, "{message}");
    for needle in ["format 1", "little-endian", "format 2", "empty directory"] {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }
    assert!(!dir.path().join(FORMAT_FILE).exists(), "a refused directory is not stamped");
    assert_eq!(std::fs::read(part.join("00000000000000000000.log")).unwrap(), b"old little-endian batches");
}

#[test]
fn another_or_unreadable_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FORMAT_FILE), "format_version=3\n").unwrap();
    let err = LogManager::open(dir.path(), LogConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::UnsupportedFormat { found: Some(3), .. }), "{err:?}");
    assert!(err.to_string().contains("logs in format 3"), "{err}");
    std::fs::write(dir.path().join(FORMAT_FILE), "garbage\n").unwrap();
    let err = LogManager::open(dir.path(), LogConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::UnsupportedFormat { found: None, .. }), "{err:?}");
    assert!(err.to_string().contains("unreadable strata.format"), "{err}");
}

#[test]
fn a_directory_with_only_the_controller_state_is_stamped() {
    // A controller-only node's directory: no partition logs, nothing to misread.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("controller")).unwrap();
    LogManager::open(dir.path(), LogConfig::default()).unwrap();
    assert!(dir.path().join(FORMAT_FILE).exists());
}
