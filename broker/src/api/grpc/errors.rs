//! Error conversion at the gRPC edge: the core's [`ErrorKind`] to the
//! API's `ErrorCode` and back (the latter for answers a peer broker sent,
//! such as a replica fetch's per-partition errors).

use strata_protocol::v1::{Error, ErrorCode};
use strata_record::ErrorChain;

use crate::error::{BrokerError, ErrorKind};

/// The API code of a kind.
pub(crate) fn code_of(kind: ErrorKind) -> ErrorCode {
    match kind {
        ErrorKind::UnknownTopicOrPartition => ErrorCode::UnknownTopicOrPartition,
        ErrorKind::NotLeaderOrFollower => ErrorCode::NotLeaderOrFollower,
        ErrorKind::OffsetOutOfRange => ErrorCode::OffsetOutOfRange,
        ErrorKind::RecordTooLarge => ErrorCode::RecordTooLarge,
        ErrorKind::CorruptBatch => ErrorCode::CorruptBatch,
        ErrorKind::InvalidRequest => ErrorCode::InvalidRequest,
        ErrorKind::InvalidTopicName => ErrorCode::InvalidTopicName,
        ErrorKind::TopicAlreadyExists => ErrorCode::TopicAlreadyExists,
        ErrorKind::InvalidPartitions => ErrorCode::InvalidPartitions,
        ErrorKind::InvalidReplicationFactor => ErrorCode::InvalidReplicationFactor,
        ErrorKind::InvalidConfig => ErrorCode::InvalidConfig,
        ErrorKind::NotEnoughReplicas => ErrorCode::NotEnoughReplicas,
        ErrorKind::NotEnoughReplicasAfterAppend => ErrorCode::NotEnoughReplicasAfterAppend,
        ErrorKind::RequestTimedOut => ErrorCode::RequestTimedOut,
        ErrorKind::StorageError => ErrorCode::StorageError,
        ErrorKind::NotController => ErrorCode::NotController,
        ErrorKind::LeaderNotAvailable => ErrorCode::LeaderNotAvailable,
        ErrorKind::Unsupported => ErrorCode::Unsupported,
        ErrorKind::UnknownServerError => ErrorCode::UnknownServerError,
        ErrorKind::FencedLeaderEpoch => ErrorCode::FencedLeaderEpoch,
        ErrorKind::UnknownLeaderEpoch => ErrorCode::UnknownLeaderEpoch,
        ErrorKind::ElectionNotNeeded => ErrorCode::ElectionNotNeeded,
        ErrorKind::PreferredLeaderNotAvailable => ErrorCode::PreferredLeaderNotAvailable,
        ErrorKind::EligibleLeadersNotAvailable => ErrorCode::EligibleLeadersNotAvailable,
        ErrorKind::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
        ErrorKind::NotCoordinator => ErrorCode::NotCoordinator,
        ErrorKind::CoordinatorLoadInProgress => ErrorCode::CoordinatorLoadInProgress,
        ErrorKind::InvalidGroupId => ErrorCode::InvalidGroupId,
        ErrorKind::GroupIdNotFound => ErrorCode::GroupIdNotFound,
        ErrorKind::NonEmptyGroup => ErrorCode::NonEmptyGroup,
        ErrorKind::UnknownMemberId => ErrorCode::UnknownMemberId,
        ErrorKind::FencedMemberEpoch => ErrorCode::FencedMemberEpoch,
        ErrorKind::StaleMemberEpoch => ErrorCode::StaleMemberEpoch,
        ErrorKind::UnsupportedAssignor => ErrorCode::UnsupportedAssignor,
        ErrorKind::InvalidRegularExpression => ErrorCode::InvalidRegularExpression,
        ErrorKind::GroupMaxSizeReached => ErrorCode::GroupMaxSizeReached,
        ErrorKind::UnreleasedInstanceId => ErrorCode::UnreleasedInstanceId,
        ErrorKind::OutOfOrderSequenceNumber => ErrorCode::OutOfOrderSequenceNumber,
        ErrorKind::InvalidProducerEpoch => ErrorCode::InvalidProducerEpoch,
        ErrorKind::DuplicateSequenceNumber => ErrorCode::DuplicateSequenceNumber,
        ErrorKind::TopicAuthorizationFailed => ErrorCode::TopicAuthorizationFailed,
        ErrorKind::GroupAuthorizationFailed => ErrorCode::GroupAuthorizationFailed,
        ErrorKind::ClusterAuthorizationFailed => ErrorCode::ClusterAuthorizationFailed,
        ErrorKind::TransactionalIdAuthorizationFailed => ErrorCode::TransactionalIdAuthorizationFailed,
        ErrorKind::SaslAuthenticationFailed => ErrorCode::SaslAuthenticationFailed,
        ErrorKind::InvalidReplicaAssignment => ErrorCode::InvalidReplicaAssignment,
        ErrorKind::ReassignmentInProgress => ErrorCode::ReassignmentInProgress,
        ErrorKind::NoReassignmentInProgress => ErrorCode::NoReassignmentInProgress,
        ErrorKind::InvalidRecord => ErrorCode::InvalidRecord,
    }
}

/// The kind of an API code; `None` for `NONE`.
pub(crate) fn kind_of(code: ErrorCode) -> Option<ErrorKind> {
    Some(match code {
        ErrorCode::None => return None,
        ErrorCode::UnknownTopicOrPartition => ErrorKind::UnknownTopicOrPartition,
        ErrorCode::NotLeaderOrFollower => ErrorKind::NotLeaderOrFollower,
        ErrorCode::OffsetOutOfRange => ErrorKind::OffsetOutOfRange,
        ErrorCode::RecordTooLarge => ErrorKind::RecordTooLarge,
        ErrorCode::CorruptBatch => ErrorKind::CorruptBatch,
        ErrorCode::InvalidRequest => ErrorKind::InvalidRequest,
        ErrorCode::InvalidTopicName => ErrorKind::InvalidTopicName,
        ErrorCode::TopicAlreadyExists => ErrorKind::TopicAlreadyExists,
        ErrorCode::InvalidPartitions => ErrorKind::InvalidPartitions,
        ErrorCode::InvalidReplicationFactor => ErrorKind::InvalidReplicationFactor,
        ErrorCode::InvalidConfig => ErrorKind::InvalidConfig,
        ErrorCode::NotEnoughReplicas => ErrorKind::NotEnoughReplicas,
        ErrorCode::NotEnoughReplicasAfterAppend => ErrorKind::NotEnoughReplicasAfterAppend,
        ErrorCode::RequestTimedOut => ErrorKind::RequestTimedOut,
        ErrorCode::StorageError => ErrorKind::StorageError,
        ErrorCode::NotController => ErrorKind::NotController,
        ErrorCode::LeaderNotAvailable => ErrorKind::LeaderNotAvailable,
        ErrorCode::Unsupported => ErrorKind::Unsupported,
        ErrorCode::UnknownServerError => ErrorKind::UnknownServerError,
        ErrorCode::FencedLeaderEpoch => ErrorKind::FencedLeaderEpoch,
        ErrorCode::UnknownLeaderEpoch => ErrorKind::UnknownLeaderEpoch,
        ErrorCode::ElectionNotNeeded => ErrorKind::ElectionNotNeeded,
        ErrorCode::PreferredLeaderNotAvailable => ErrorKind::PreferredLeaderNotAvailable,
        ErrorCode::EligibleLeadersNotAvailable => ErrorKind::EligibleLeadersNotAvailable,
        ErrorCode::CoordinatorNotAvailable => ErrorKind::CoordinatorNotAvailable,
        ErrorCode::NotCoordinator => ErrorKind::NotCoordinator,
        ErrorCode::CoordinatorLoadInProgress => ErrorKind::CoordinatorLoadInProgress,
        ErrorCode::InvalidGroupId => ErrorKind::InvalidGroupId,
        ErrorCode::GroupIdNotFound => ErrorKind::GroupIdNotFound,
        ErrorCode::NonEmptyGroup => ErrorKind::NonEmptyGroup,
        ErrorCode::UnknownMemberId => ErrorKind::UnknownMemberId,
        ErrorCode::FencedMemberEpoch => ErrorKind::FencedMemberEpoch,
        ErrorCode::StaleMemberEpoch => ErrorKind::StaleMemberEpoch,
        ErrorCode::UnsupportedAssignor => ErrorKind::UnsupportedAssignor,
        ErrorCode::InvalidRegularExpression => ErrorKind::InvalidRegularExpression,
        ErrorCode::GroupMaxSizeReached => ErrorKind::GroupMaxSizeReached,
        ErrorCode::UnreleasedInstanceId => ErrorKind::UnreleasedInstanceId,
        ErrorCode::OutOfOrderSequenceNumber => ErrorKind::OutOfOrderSequenceNumber,
        ErrorCode::InvalidProducerEpoch => ErrorKind::InvalidProducerEpoch,
        ErrorCode::DuplicateSequenceNumber => ErrorKind::DuplicateSequenceNumber,
        ErrorCode::TopicAuthorizationFailed => ErrorKind::TopicAuthorizationFailed,
        ErrorCode::GroupAuthorizationFailed => ErrorKind::GroupAuthorizationFailed,
        ErrorCode::ClusterAuthorizationFailed => ErrorKind::ClusterAuthorizationFailed,
        ErrorCode::TransactionalIdAuthorizationFailed => ErrorKind::TransactionalIdAuthorizationFailed,
        ErrorCode::SaslAuthenticationFailed => ErrorKind::SaslAuthenticationFailed,
        ErrorCode::InvalidReplicaAssignment => ErrorKind::InvalidReplicaAssignment,
        ErrorCode::ReassignmentInProgress => ErrorKind::ReassignmentInProgress,
        ErrorCode::NoReassignmentInProgress => ErrorKind::NoReassignmentInProgress,
        ErrorCode::InvalidRecord => ErrorKind::InvalidRecord,
    })
}

impl From<BrokerError> for Error {
    /// The API error: its code, and the message with every cause.
    fn from(e: BrokerError) -> Self {
        Error::new(code_of(e.kind()), ErrorChain(&e).to_string())
    }
}

impl From<&BrokerError> for Error {
    fn from(e: &BrokerError) -> Self {
        Error::new(code_of(e.kind()), ErrorChain(e).to_string())
    }
}

/// The core's form of an error a peer broker answered with
/// (`UNKNOWN_SERVER_ERROR` for a code this build does not know).
pub(crate) fn from_api(e: Error) -> BrokerError {
    let kind = kind_of(e.error_code()).unwrap_or(ErrorKind::UnknownServerError);
    BrokerError::new(kind, e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_code() {
        for code in (1..=45).filter_map(|c| ErrorCode::try_from(c).ok()) {
            let kind = kind_of(code).expect("a kind for every code but NONE");
            assert_eq!(code_of(kind), code);
            assert_eq!(kind.name(), code.as_str_name(), "metrics label kinds with the API's names");
        }
        assert_eq!(kind_of(ErrorCode::None), None);
    }
}
