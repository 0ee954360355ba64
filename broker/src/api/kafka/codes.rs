//! The core's error kinds as Kafka's error codes (the numbers every Kafka
//! client switches on; `kafka_protocol::ResponseError` holds the table).

use kafka_protocol::error::ResponseError as K;

use crate::error::ErrorKind;

/// Kafka's code for `kind`.
pub(crate) fn code_of(kind: ErrorKind) -> i16 {
    match kind {
        ErrorKind::UnknownTopicOrPartition => K::UnknownTopicOrPartition,
        ErrorKind::NotLeaderOrFollower => K::NotLeaderOrFollower,
        ErrorKind::OffsetOutOfRange => K::OffsetOutOfRange,
        ErrorKind::RecordTooLarge => K::MessageTooLarge,
        ErrorKind::CorruptBatch => K::CorruptMessage,
        ErrorKind::InvalidRequest => K::InvalidRequest,
        ErrorKind::InvalidTopicName => K::InvalidTopicException,
        ErrorKind::TopicAlreadyExists => K::TopicAlreadyExists,
        ErrorKind::InvalidPartitions => K::InvalidPartitions,
        ErrorKind::InvalidReplicationFactor => K::InvalidReplicationFactor,
        ErrorKind::InvalidConfig => K::InvalidConfig,
        ErrorKind::NotEnoughReplicas => K::NotEnoughReplicas,
        ErrorKind::NotEnoughReplicasAfterAppend => K::NotEnoughReplicasAfterAppend,
        ErrorKind::RequestTimedOut => K::RequestTimedOut,
        ErrorKind::StorageError => K::KafkaStorageError,
        ErrorKind::NotController => K::NotController,
        ErrorKind::LeaderNotAvailable => K::LeaderNotAvailable,
        ErrorKind::Unsupported => K::UnsupportedVersion,
        ErrorKind::UnknownServerError => K::UnknownServerError,
        ErrorKind::FencedLeaderEpoch => K::FencedLeaderEpoch,
        ErrorKind::UnknownLeaderEpoch => K::UnknownLeaderEpoch,
        ErrorKind::ElectionNotNeeded => K::ElectionNotNeeded,
        ErrorKind::PreferredLeaderNotAvailable => K::PreferredLeaderNotAvailable,
        ErrorKind::EligibleLeadersNotAvailable => K::EligibleLeadersNotAvailable,
        ErrorKind::CoordinatorNotAvailable => K::CoordinatorNotAvailable,
        ErrorKind::NotCoordinator => K::NotCoordinator,
        ErrorKind::CoordinatorLoadInProgress => K::CoordinatorLoadInProgress,
        ErrorKind::InvalidGroupId => K::InvalidGroupId,
        ErrorKind::GroupIdNotFound => K::GroupIdNotFound,
        ErrorKind::NonEmptyGroup => K::NonEmptyGroup,
        ErrorKind::UnknownMemberId => K::UnknownMemberId,
        ErrorKind::FencedMemberEpoch => K::FencedMemberEpoch,
        ErrorKind::StaleMemberEpoch => K::StaleMemberEpoch,
        ErrorKind::UnsupportedAssignor => K::UnsupportedAssignor,
        ErrorKind::InvalidRegularExpression => K::InvalidRegularExpression,
        ErrorKind::GroupMaxSizeReached => K::GroupMaxSizeReached,
        ErrorKind::UnreleasedInstanceId => K::UnreleasedInstanceId,
        ErrorKind::OutOfOrderSequenceNumber => K::OutOfOrderSequenceNumber,
        ErrorKind::InvalidProducerEpoch => K::InvalidProducerEpoch,
        ErrorKind::DuplicateSequenceNumber => K::DuplicateSequenceNumber,
        ErrorKind::TopicAuthorizationFailed => K::TopicAuthorizationFailed,
        ErrorKind::GroupAuthorizationFailed => K::GroupAuthorizationFailed,
        ErrorKind::ClusterAuthorizationFailed => K::ClusterAuthorizationFailed,
        ErrorKind::TransactionalIdAuthorizationFailed => K::TransactionalIdAuthorizationFailed,
        ErrorKind::SaslAuthenticationFailed => K::SaslAuthenticationFailed,
        ErrorKind::InvalidReplicaAssignment => K::InvalidReplicaAssignment,
        ErrorKind::ReassignmentInProgress => K::ReassignmentInProgress,
        ErrorKind::NoReassignmentInProgress => K::NoReassignmentInProgress,
        ErrorKind::InvalidRecord => K::InvalidRecord,
    }
    .code()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spot checks against Kafka's `Errors.java` numbers, which clients
    /// hard-code.
    #[test]
    fn codes_are_kafkas_numbers() {
        assert_eq!(code_of(ErrorKind::OffsetOutOfRange), 1);
        assert_eq!(code_of(ErrorKind::CorruptBatch), 2);
        assert_eq!(code_of(ErrorKind::UnknownTopicOrPartition), 3);
        assert_eq!(code_of(ErrorKind::NotLeaderOrFollower), 6);
        assert_eq!(code_of(ErrorKind::RecordTooLarge), 10);
        assert_eq!(code_of(ErrorKind::NotEnoughReplicas), 19);
        assert_eq!(code_of(ErrorKind::TopicAlreadyExists), 36);
        assert_eq!(code_of(ErrorKind::OutOfOrderSequenceNumber), 45);
        assert_eq!(code_of(ErrorKind::StorageError), 56);
        assert_eq!(code_of(ErrorKind::FencedLeaderEpoch), 74);
        assert_eq!(code_of(ErrorKind::UnknownServerError), -1);
    }
}
