//! The broker core's own error: a kind every edge maps to its wire code
//! (gRPC's `strata.v1.ErrorCode`, later Kafka's error codes), a message
//! naming the cause for people, and the underlying error when there is one.
//! The core never builds a protocol's error type itself.

use std::fmt;

/// What went wrong, in the broker's terms. The names are Kafka's, so both
/// edges map them one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The topic or partition does not exist (or is not hosted here).
    UnknownTopicOrPartition,
    /// This broker does not lead the partition (any more).
    NotLeaderOrFollower,
    /// The offset is outside the partition's log.
    OffsetOutOfRange,
    /// A batch (or record) is larger than the partition allows.
    RecordTooLarge,
    /// A batch does not validate (length, magic, CRC, records).
    CorruptBatch,
    /// The request is malformed or asks for something meaningless.
    InvalidRequest,
    /// The topic name breaks the rules.
    InvalidTopicName,
    /// The topic exists already.
    TopicAlreadyExists,
    /// The partition count is invalid.
    InvalidPartitions,
    /// The replication factor cannot be met.
    InvalidReplicationFactor,
    /// A topic config is unknown or out of range.
    InvalidConfig,
    /// Fewer in-sync replicas than `min.insync.replicas` (before the append).
    NotEnoughReplicas,
    /// The ISR shrank below `min.insync.replicas` while acks=all waited.
    NotEnoughReplicasAfterAppend,
    /// Not done within the time allowed (it may still happen).
    RequestTimedOut,
    /// The log failed (I/O error, disk full, damaged segment).
    StorageError,
    /// The controller could not take the change now (election running).
    NotController,
    /// The partition has no leader right now.
    LeaderNotAvailable,
    /// Not supported by this broker.
    Unsupported,
    /// A failure with no better kind.
    UnknownServerError,
    /// The leader epoch given is older than the partition's.
    FencedLeaderEpoch,
    /// The leader epoch given is newer than this replica knows.
    UnknownLeaderEpoch,
    /// A preferred-leader election found the preferred leader leading.
    ElectionNotNeeded,
    /// The preferred leader cannot lead now.
    PreferredLeaderNotAvailable,
    /// No eligible replica can lead.
    EligibleLeadersNotAvailable,
    /// The group coordinator is not available.
    CoordinatorNotAvailable,
    /// This broker does not coordinate the group.
    NotCoordinator,
    /// The coordinator is still loading the group's offsets.
    CoordinatorLoadInProgress,
    /// The group id is invalid.
    InvalidGroupId,
    /// The group does not exist.
    GroupIdNotFound,
    /// The group has members (it cannot be deleted or assigned to).
    NonEmptyGroup,
    /// The member is not in the group.
    UnknownMemberId,
    /// The member's epoch is fenced (it must rejoin).
    FencedMemberEpoch,
    /// The member's epoch is stale.
    StaleMemberEpoch,
    /// The assignor is unknown.
    UnsupportedAssignor,
    /// The subscription's regular expression does not compile.
    InvalidRegularExpression,
    /// The group is full.
    GroupMaxSizeReached,
    /// Another live member has the static member's instance id.
    UnreleasedInstanceId,
    /// An idempotent producer's batch skips sequences.
    OutOfOrderSequenceNumber,
    /// An idempotent producer's epoch is older than the partition's.
    InvalidProducerEpoch,
    /// A batch among several was appended before.
    DuplicateSequenceNumber,
    /// The caller may not do that to the topic.
    TopicAuthorizationFailed,
    /// The caller may not do that to the group.
    GroupAuthorizationFailed,
    /// The caller may not do that to the cluster.
    ClusterAuthorizationFailed,
    /// The caller may not use the transactional id.
    TransactionalIdAuthorizationFailed,
    /// The caller's credentials were refused.
    SaslAuthenticationFailed,
    /// A replica move's target is not a valid replica set.
    InvalidReplicaAssignment,
    /// The partition is already moving.
    ReassignmentInProgress,
    /// The partition is not moving (nothing to cancel).
    NoReassignmentInProgress,
    /// A record the topic refuses (a compacted topic's record without a key).
    InvalidRecord,
}

impl ErrorKind {
    /// Kafka's name for the kind (`NOT_LEADER_OR_FOLLOWER`), as metrics
    /// label it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            ErrorKind::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorKind::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorKind::RecordTooLarge => "RECORD_TOO_LARGE",
            ErrorKind::CorruptBatch => "CORRUPT_BATCH",
            ErrorKind::InvalidRequest => "INVALID_REQUEST",
            ErrorKind::InvalidTopicName => "INVALID_TOPIC_NAME",
            ErrorKind::TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            ErrorKind::InvalidPartitions => "INVALID_PARTITIONS",
            ErrorKind::InvalidReplicationFactor => "INVALID_REPLICATION_FACTOR",
            ErrorKind::InvalidConfig => "INVALID_CONFIG",
            ErrorKind::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorKind::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorKind::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorKind::StorageError => "STORAGE_ERROR",
            ErrorKind::NotController => "NOT_CONTROLLER",
            ErrorKind::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            ErrorKind::Unsupported => "UNSUPPORTED",
            ErrorKind::UnknownServerError => "UNKNOWN_SERVER_ERROR",
            ErrorKind::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorKind::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorKind::ElectionNotNeeded => "ELECTION_NOT_NEEDED",
            ErrorKind::PreferredLeaderNotAvailable => "PREFERRED_LEADER_NOT_AVAILABLE",
            ErrorKind::EligibleLeadersNotAvailable => "ELIGIBLE_LEADERS_NOT_AVAILABLE",
            ErrorKind::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            ErrorKind::NotCoordinator => "NOT_COORDINATOR",
            ErrorKind::CoordinatorLoadInProgress => "COORDINATOR_LOAD_IN_PROGRESS",
            ErrorKind::InvalidGroupId => "INVALID_GROUP_ID",
            ErrorKind::GroupIdNotFound => "GROUP_ID_NOT_FOUND",
            ErrorKind::NonEmptyGroup => "NON_EMPTY_GROUP",
            ErrorKind::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            ErrorKind::FencedMemberEpoch => "FENCED_MEMBER_EPOCH",
            ErrorKind::StaleMemberEpoch => "STALE_MEMBER_EPOCH",
            ErrorKind::UnsupportedAssignor => "UNSUPPORTED_ASSIGNOR",
            ErrorKind::InvalidRegularExpression => "INVALID_REGULAR_EXPRESSION",
            ErrorKind::GroupMaxSizeReached => "GROUP_MAX_SIZE_REACHED",
            ErrorKind::UnreleasedInstanceId => "UNRELEASED_INSTANCE_ID",
            ErrorKind::OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            ErrorKind::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            ErrorKind::DuplicateSequenceNumber => "DUPLICATE_SEQUENCE_NUMBER",
            ErrorKind::TopicAuthorizationFailed => "TOPIC_AUTHORIZATION_FAILED",
            ErrorKind::GroupAuthorizationFailed => "GROUP_AUTHORIZATION_FAILED",
            ErrorKind::ClusterAuthorizationFailed => "CLUSTER_AUTHORIZATION_FAILED",
            ErrorKind::TransactionalIdAuthorizationFailed => "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            ErrorKind::SaslAuthenticationFailed => "SASL_AUTHENTICATION_FAILED",
            ErrorKind::InvalidReplicaAssignment => "INVALID_REPLICA_ASSIGNMENT",
            ErrorKind::ReassignmentInProgress => "REASSIGNMENT_IN_PROGRESS",
            ErrorKind::NoReassignmentInProgress => "NO_REASSIGNMENT_IN_PROGRESS",
            ErrorKind::InvalidRecord => "INVALID_RECORD",
        }
    }
}

/// A failure of a broker operation, for one partition, group or request.
/// Cloning shares the source (a simulation may deliver one answer twice).
#[derive(Debug, Clone)]
pub struct BrokerError {
    kind: ErrorKind,
    message: String,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl BrokerError {
    /// An error of `kind` whose message names the cause.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        BrokerError { kind, message: message.into(), source: None }
    }

    /// Keeps the underlying error (its text is not repeated in the message;
    /// `strata_record::ErrorChain` prints both).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// The kind, which each edge maps to its code.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message alone (without the source).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BrokerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_returned_not_printed() {
        let e = BrokerError::new(ErrorKind::StorageError, "t-0: append failed")
            .with_source(std::io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "t-0: append failed");
        assert_eq!(strata_record::ErrorChain(&e).to_string(), "t-0: append failed: disk on fire");
    }
}
