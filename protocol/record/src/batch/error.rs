//! The one error type of batch decoding and validation.

/// Why bytes are not a valid record batch. Every variant names the field at
/// fault so a broker can report it to the producer as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the header (or the declared batch length) needs.
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the header or declared length requires.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// `batch_length` is impossible (smaller than the header, or not the
    /// length of the bytes given).
    #[error("record batch length {length} is invalid: {reason}")]
    InvalidLength {
        /// The declared `batch_length` field.
        length: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The batch is larger than the configured maximum.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Total bytes of the batch.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// The magic byte is not the format version this build reads.
    #[error("unsupported record batch magic {found} (this build reads magic {expected})")]
    BadMagic {
        /// Magic in the batch.
        found: u8,
        /// Magic this build understands.
        expected: u8,
    },
    /// The CRC over everything after the crc field does not match.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC stored in the batch.
        stored: u32,
        /// CRC of the bytes as they are.
        computed: u32,
    },
    /// The header's `record_count` disagrees with the records present.
    #[error("record count mismatch: header declares {declared}, batch holds {found}")]
    RecordCountMismatch {
        /// `record_count` from the header.
        declared: u32,
        /// Records actually decoded.
        found: u32,
    },
    /// The attributes name a compression codec this build does not support.
    #[error("unsupported compression codec {0} in record batch attributes")]
    UnsupportedCompression(u8),
    /// The compressed records do not decompress (corrupt, or inflating
    /// past the limit), or cannot be compressed as asked.
    #[error("record batch compression: {0}")]
    Compression(crate::compression::CompressionError),
    /// A header field is inconsistent with the records.
    #[error("invalid record batch header: {0}")]
    InvalidHeader(&'static str),
    /// A record inside the batch does not parse.
    #[error("malformed record {index}: {reason}: {detail}")]
    MalformedRecord {
        /// Index of the record within the batch.
        index: u32,
        /// The field being read.
        reason: &'static str,
        /// What was wrong with it.
        detail: &'static str,
    },
    /// A builder was asked to produce an invalid batch.
    #[error("cannot build record batch: {0}")]
    Build(&'static str),
}

impl From<crate::compression::CompressionError> for BatchError {
    fn from(e: crate::compression::CompressionError) -> Self {
        BatchError::Compression(e)
    }
}
