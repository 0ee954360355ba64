//! The storage crate's one error type. Every variant keeps its cause and names
//! the file or offset at fault.

use std::io;
use std::path::PathBuf;

use strata_record::batch::BatchError;

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory holds logs of a record-batch format this build
    /// does not read (`found`: its version; `None` when its format file
    /// names none).
    #[error(
        "data directory {} holds {} and this build reads format {}; it cannot convert them: \
         start with an empty directory (or move this one aside), or run the build that wrote it",
        dir.display(),
        describe_format(*found),
        crate::FORMAT_VERSION
    )]
    UnsupportedFormat {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The version it holds, if known.
        found: Option<u32>,
    },
    /// `append` was given bytes that are not one valid record batch; the log
    /// is unchanged.
    #[error("invalid record batch")]
    InvalidBatch(#[from] BatchError),
    /// The requested offset is outside the log.
    #[error("offset {offset} is out of range: the log holds offsets [{log_start}, {log_end})")]
    OffsetOutOfRange {
        /// Offset asked for.
        offset: u64,
        /// First offset still in the log.
        log_start: u64,
        /// Offset the next append will get.
        log_end: u64,
    },
    /// The file system is full: nothing was appended and reads still work.
    #[error("disk full while {context} {path}")]
    DiskFull {
        /// File being written.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
    },
    /// Any other I/O failure, with its cause.
    #[error("I/O error while {context} {path}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Bytes inside a segment that must be intact (sealed, or already flushed)
    /// do not validate. The partition is not opened rather than silently
    /// losing data.
    #[error("corrupt log segment {path} at byte {position}: {reason}")]
    CorruptSegment {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the first bad batch.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// A sync (or the sealing of a segment) failed earlier; what reached the
    /// disk is unknown, so the log refuses further writes until it is
    /// reopened, which recovers it (reads still work).
    #[error("log {path} refuses writes until it is reopened: {reason}")]
    LogFailed {
        /// The partition directory.
        path: PathBuf,
        /// The failure that poisoned it.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {path} is locked by another process")]
    DirectoryLocked {
        /// The data directory.
        path: PathBuf,
    },
    /// A follower append did not continue the log where it ends, or its
    /// batches were not contiguous; nothing was appended.
    #[error("out-of-order append: expected a batch starting at offset {expected}, got one at {actual}")]
    UnexpectedAppendOffset {
        /// Offset the next batch had to start at.
        expected: u64,
        /// Base offset of the batch given.
        actual: u64,
    },
    /// An append or leader-epoch assignment carried a leader epoch older than
    /// the newest the log already holds; nothing changed.
    #[error("stale leader epoch {epoch}: the log already holds leader epoch {latest}")]
    StaleLeaderEpoch {
        /// Epoch given.
        epoch: u32,
        /// Newest epoch in the log's leader-epoch cache.
        latest: u32,
    },
    /// An idempotent producer's batch does not continue its sequence (Kafka's
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`): a batch was lost in between.
    #[error("producer {producer_id}: sequence {found} where {expected} was expected")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence that continues the log.
        expected: i32,
        /// The batch's base sequence.
        found: i32,
    },
    /// A batch from an older epoch of a producer (Kafka's
    /// `INVALID_PRODUCER_EPOCH`): a newer instance fenced it.
    #[error("producer {producer_id}: epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The newest epoch the log holds.
        current: i16,
    },
    /// A batch with a producer id but no epoch or sequence.
    #[error("producer {producer_id}: {reason}")]
    InvalidProducerBatch {
        /// The producer.
        producer_id: i64,
        /// What is wrong.
        reason: &'static str,
    },
    /// One batch of several appended together was appended before (Kafka's
    /// `DUPLICATE_SEQUENCE_NUMBER`): a retry must carry one batch per
    /// partition to be answered with its original offsets.
    #[error("producer {producer_id}: sequence {first_seq} was appended before, in a request of several batches")]
    DuplicateSequence {
        /// The producer.
        producer_id: i64,
        /// The repeated batch's base sequence.
        first_seq: i32,
    },
    /// A configuration value or argument is out of range.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The setting or argument.
        what: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// Wraps an I/O error, turning `ENOSPC` into [`StorageError::DiskFull`].
    pub fn io(path: impl Into<PathBuf>, context: &'static str, source: io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ENOSPC) {
            StorageError::DiskFull { path, context }
        } else {
            StorageError::Io { path, context, source }
        }
    }
}

/// What a data directory of format `found` holds, for the refusal message.
fn describe_format(found: Option<u32>) -> String {
    match found {
        Some(1) => "logs in format 1 (Strata's pre-release batch layout: little-endian, CRC-32; no format file)".into(),
        Some(n) => format!("logs in format {n}"),
        None => format!("an unreadable {} file", crate::FORMAT_FILE),
    }
}
