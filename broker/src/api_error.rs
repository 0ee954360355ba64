//! Mapping storage and batch failures onto the core's error kinds, with a
//! message naming the partition and the failure kept as the source.

use strata_record::batch::BatchError;
use strata_storage::StorageError;

use crate::error::{BrokerError, ErrorKind};

/// The error for a batch rejected before it reached the log.
pub(crate) fn batch_error(topic: &str, partition: u32, index: usize, e: BatchError) -> BrokerError {
    let kind = match e {
        BatchError::TooLarge { .. } => ErrorKind::RecordTooLarge,
        _ => ErrorKind::CorruptBatch,
    };
    BrokerError::new(kind, format!("{topic}-{partition}: record batch {index} rejected, nothing was written"))
        .with_source(e)
}

/// The error for a storage failure on a partition.
pub(crate) fn storage_error(topic: &str, partition: u32, e: StorageError) -> BrokerError {
    let kind = match &e {
        StorageError::InvalidBatch(BatchError::TooLarge { .. }) => ErrorKind::RecordTooLarge,
        StorageError::InvalidBatch(_) => ErrorKind::CorruptBatch,
        StorageError::OffsetOutOfRange { .. } => ErrorKind::OffsetOutOfRange,
        StorageError::InvalidArgument { .. } => ErrorKind::InvalidRequest,
        StorageError::OutOfOrderSequence { .. } => ErrorKind::OutOfOrderSequenceNumber,
        StorageError::ProducerFenced { .. } => ErrorKind::InvalidProducerEpoch,
        StorageError::DuplicateSequence { .. } => ErrorKind::DuplicateSequenceNumber,
        StorageError::InvalidProducerBatch { .. } => ErrorKind::CorruptBatch,
        _ => ErrorKind::StorageError,
    };
    BrokerError::new(kind, format!("{topic}-{partition}")).with_source(e)
}
