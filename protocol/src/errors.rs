//! Helpers around the API's machine-readable [`ErrorCode`]: building
//! per-partition errors and telling which ones a client should retry.

use crate::v1::{Error, ErrorCode};

impl ErrorCode {
    /// Whether a client may retry the same request (after refreshing
    /// metadata where the leader moved). Mirrors Kafka's retriable errors.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::RequestTimedOut
                | ErrorCode::NotController
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorLoadInProgress
        )
    }
}

impl Error {
    /// An error with `code` and a message naming the cause.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code: code as i32, message: message.into() }
    }

    /// The code, mapping values this build does not know to
    /// `UNKNOWN_SERVER_ERROR`.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::try_from(self.code).unwrap_or(ErrorCode::UnknownServerError)
    }
}

/// The code of an optional per-item error (`None` means success).
pub fn code_of(error: &Option<Error>) -> ErrorCode {
    error.as_ref().map_or(ErrorCode::None, Error::error_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_are_server_errors_and_retriability_is_kafkas() {
        let e = Error { code: 9999, message: "x".into() };
        assert_eq!(e.error_code(), ErrorCode::UnknownServerError);
        assert!(ErrorCode::NotLeaderOrFollower.is_retriable());
        assert!(!ErrorCode::CorruptBatch.is_retriable());
        assert!(!ErrorCode::RecordTooLarge.is_retriable());
        assert!(ErrorCode::NotCoordinator.is_retriable());
        assert!(ErrorCode::CoordinatorLoadInProgress.is_retriable());
        assert!(ErrorCode::CoordinatorNotAvailable.is_retriable());
        assert!(!ErrorCode::InvalidGroupId.is_retriable());
        assert_eq!(code_of(&None), ErrorCode::None);
        assert_eq!(code_of(&Some(Error::new(ErrorCode::OffsetOutOfRange, "o"))), ErrorCode::OffsetOutOfRange);
    }
}
