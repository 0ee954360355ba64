//! Mapping internal errors onto the API's machine-readable codes, with a
//! message naming the cause.

use strata_protocol::v1::{Error, ErrorCode};
use strata_record::batch::BatchError;
use strata_record::ErrorChain;
use strata_storage::StorageError;

/// The API error for a batch rejected before it reached the log.
pub fn batch_error(topic: &str, partition: u32, index: usize, e: &BatchError) -> Error {
    let code = match e {
        BatchError::TooLarge { .. } => ErrorCode::RecordTooLarge,
        _ => ErrorCode::CorruptBatch,
    };
    Error::new(code, format!("{topic}-{partition}: record batch {index} rejected, nothing was written: {e}"))
}

/// The API error for a storage failure on a partition.
pub fn storage_error(topic: &str, partition: u32, e: &StorageError) -> Error {
    let code = match e {
        StorageError::InvalidBatch(BatchError::TooLarge { .. }) => ErrorCode::RecordTooLarge,
        StorageError::InvalidBatch(_) => ErrorCode::CorruptBatch,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::InvalidArgument { .. } => ErrorCode::InvalidRequest,
        _ => ErrorCode::StorageError,
    };
    Error::new(code, format!("{topic}-{partition}: {}", ErrorChain(e)))
}
