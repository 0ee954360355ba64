//! What applying a command produced: its outcome, or why it was rejected.

use serde::{Deserialize, Serialize};

use super::image::{PartitionInfo, TopicInfo};

/// A partition whose leader and/or ISR a command changed (its
/// `partition_epoch` was bumped; its `leader_epoch` too when the leader moved).
///
/// The fields added for ISR changes default when absent, so outcomes encoded
/// by an older controller (which only reported leader moves) still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderChange {
    /// The topic name.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// The new leader; `None` = offline.
    pub leader: Option<u32>,
    /// The new leader epoch.
    pub leader_epoch: u32,
    /// The new ISR.
    #[serde(default)]
    pub isr: Vec<u32>,
    /// The new partition epoch.
    #[serde(default)]
    pub partition_epoch: u32,
    /// True when the leader changed (false: only the ISR did). Older
    /// controllers reported leader moves only, hence the default.
    #[serde(default = "yes")]
    pub leader_changed: bool,
    /// True when the new leader was elected from outside the ISR: records
    /// acknowledged by the old ISR may be lost (`docs/replication.md`, unclean election).
    #[serde(default)]
    pub unclean: bool,
}

fn yes() -> bool {
    true
}

impl LeaderChange {
    /// The change that left `p` as it is now.
    pub(crate) fn of(topic: &str, p: &PartitionInfo, leader_changed: bool, unclean: bool) -> Self {
        LeaderChange {
            topic: topic.to_string(),
            partition: p.partition,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            isr: p.isr.clone(),
            partition_epoch: p.partition_epoch,
            leader_changed,
            unclean,
        }
    }
}

/// Which kind of leader election [`super::MetadataCommand::ElectLeaders`] runs
/// (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// Move leadership back to the preferred replica (the first of `replicas`)
    /// when it is in the ISR and unfenced: rebalances leaders after failures.
    Preferred,
    /// Give leaderless partitions a leader even from outside the ISR (possible
    /// data loss), for topics with `unclean.leader.election.enable=true`.
    Unclean,
}

/// Why [`super::MetadataCommand::ElectLeaders`] left one partition alone (the
/// broker maps these to Kafka's per-partition election error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionSkipReason {
    /// No such topic or partition (`UNKNOWN_TOPIC_OR_PARTITION`).
    UnknownTopicOrPartition,
    /// The partition already has the leader this election would give it:
    /// its preferred replica (preferred), or any leader (unclean) (`ELECTION_NOT_NEEDED`).
    ElectionNotNeeded,
    /// The preferred replica is fenced or out of the ISR (`PREFERRED_LEADER_NOT_AVAILABLE`).
    PreferredLeaderNotAvailable,
    /// The topic does not allow unclean election (`ELIGIBLE_LEADERS_NOT_AVAILABLE`).
    UncleanElectionDisabled,
    /// Every replica is fenced (`ELIGIBLE_LEADERS_NOT_AVAILABLE`).
    EligibleLeadersNotAvailable,
}

/// One partition an election did not change, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionSkip {
    /// The topic name.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// Why it was left alone.
    pub reason: ElectionSkipReason,
}

/// What an accepted command did (JSON-encoded when a proposal is forwarded
/// to the leader over gRPC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// The cluster id was set.
    ClusterInitialized {
        /// The cluster id now in force.
        cluster_id: String,
    },
    /// A broker was registered (`new`) or its registration was updated.
    BrokerRegistered {
        /// The broker's node id.
        node_id: u32,
        /// True when the broker was not registered before.
        new: bool,
    },
    /// A topic was created.
    TopicCreated {
        /// The created topic, with its partition assignment.
        topic: TopicInfo,
    },
    /// A topic has more partitions; `topic` is its new state.
    PartitionsCreated {
        /// The topic with every partition.
        topic: TopicInfo,
    },
    /// A topic's configs changed; `configs` is the whole set now.
    TopicConfigsAltered {
        /// The topic.
        name: String,
        /// Its configs after the change.
        configs: std::collections::BTreeMap<String, String>,
    },
    /// A topic was deleted.
    TopicDeleted {
        /// The deleted topic's name.
        name: String,
        /// The deleted topic's id.
        topic_id: String,
    },
    /// A broker was fenced (or already was: then nothing changed).
    BrokerFenced {
        /// The broker's node id.
        node_id: u32,
        /// True when it was fenced before (a no-op).
        already_fenced: bool,
        /// Every partition whose leader or ISR changed: those it led got new
        /// leaders, and it left every ISR it was not the last member of.
        partitions_moved: Vec<LeaderChange>,
    },
    /// A broker was unfenced (or was not fenced: then nothing changed).
    BrokerUnfenced {
        /// The broker's node id.
        node_id: u32,
        /// True when it was not fenced (a no-op).
        already_unfenced: bool,
        /// The leaderless partitions it now leads.
        partitions_moved: Vec<LeaderChange>,
    },
    /// A broker shut down cleanly: like [`CommandOutcome::BrokerFenced`], kept
    /// apart so that logs tell a controlled shutdown from a missed session.
    BrokerShutDown {
        /// The broker's node id.
        node_id: u32,
        /// True when it was fenced before (a no-op).
        already_fenced: bool,
        /// Every partition whose leader or ISR changed.
        partitions_moved: Vec<LeaderChange>,
    },
    /// A leader's ISR change was accepted (or asked for the ISR already in
    /// force: then nothing changed and the epochs are those the leader sent).
    PartitionAltered {
        /// The topic name.
        topic: String,
        /// The topic id.
        topic_id: String,
        /// The partition's state now, which the leader adopts.
        partition: PartitionInfo,
    },
    /// A leader election ran.
    LeadersElected {
        /// Which kind.
        election: ElectionType,
        /// The partitions that got a new leader.
        partitions_moved: Vec<LeaderChange>,
        /// The partitions left alone, and why. With no partition list, only
        /// those that needed an election and could not get one are listed.
        skipped: Vec<ElectionSkip>,
    },
    /// A user's credential was created (`created`) or replaced.
    ScramCredentialUpserted {
        /// The user.
        user: String,
        /// The mechanism.
        mechanism: String,
        /// True when the user had no credential for it before.
        created: bool,
    },
    /// ACLs were added; `created` of them were new.
    AclsCreated {
        /// How many were not there before.
        created: usize,
    },
    /// ACLs were removed: those each filter selected, in filter order.
    AclsDeleted {
        /// Per filter, the bindings it removed.
        deleted: Vec<Vec<crate::AclBinding>>,
    },
    /// A user's credential was removed.
    ScramCredentialDeleted {
        /// The user.
        user: String,
        /// The mechanism.
        mechanism: String,
    },
    /// Reassignments were started, cancelled or refused, one result per
    /// request in order (also the outcome of a rebalance: its planned moves).
    ReassignmentsAltered {
        /// Per partition, what happened.
        results: Vec<crate::ReassignmentResult>,
    },
    /// A broker is being decommissioned; `results` are the moves started.
    BrokerDecommissioning {
        /// The broker.
        node_id: u32,
        /// The moves off it.
        results: Vec<crate::ReassignmentResult>,
    },
    /// A controller configuration change was applied.
    VotersChanged {
        /// The voters now, ascending.
        voters: Vec<u64>,
        /// Nodes catching up before they vote (promoted automatically).
        learners: Vec<u64>,
    },
    /// The cluster-wide dynamic broker configs changed; the whole set now.
    BrokerConfigsAltered {
        /// The configs after the change.
        configs: std::collections::BTreeMap<String, String>,
    },
    /// A block of producer ids now belongs to a broker.
    ProducerIdsAllocated {
        /// The broker.
        node_id: u32,
        /// The block's first id.
        first: i64,
        /// Ids in the block.
        count: u32,
    },
}

/// Why the state machine rejected a command. A rejected command changes nothing.
/// JSON-encoded when a forwarded proposal's rejection travels back from the leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MetadataError {
    /// A topic with this name already exists.
    #[error("topic '{name}' already exists")]
    TopicAlreadyExists {
        /// The topic name.
        name: String,
    },
    /// No topic has this name.
    #[error("unknown topic '{name}'")]
    UnknownTopic {
        /// The topic name.
        name: String,
    },
    /// The topic name is empty.
    #[error("invalid topic name: {reason}")]
    InvalidTopicName {
        /// What is wrong with it.
        reason: String,
    },
    /// The topic id is empty or already used by another topic.
    #[error("invalid topic id '{topic_id}': {reason}")]
    InvalidTopicId {
        /// The offending id.
        topic_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The partition count is 0 or above the limit.
    #[error("invalid partition count {requested} (must be 1..={max})")]
    InvalidPartitions {
        /// The requested count.
        requested: u32,
        /// The largest count allowed.
        max: u32,
    },
    /// A partition count change that does not grow the topic (partitions
    /// are never removed) or goes past the limit.
    #[error("topic '{topic}' has {current} partition(s): the new count must be more, at most {max} (got {requested})")]
    PartitionCountNotRaised {
        /// The topic.
        topic: String,
        /// Its partition count now.
        current: u32,
        /// The count asked for.
        requested: u32,
        /// The largest count allowed.
        max: u32,
    },
    /// The replication factor is 0 or above the number of unfenced brokers.
    #[error("invalid replication factor {requested}: {available} unfenced broker(s) registered")]
    InvalidReplicationFactor {
        /// The requested replication factor.
        requested: u32,
        /// Unfenced brokers available.
        available: u32,
    },
    /// A broker registration without an address.
    #[error("invalid address '{address}' for broker {node_id}")]
    InvalidBrokerAddress {
        /// The broker's node id.
        node_id: u32,
        /// The offending address.
        address: String,
    },
    /// No broker has this node id.
    #[error("unknown broker {node_id}")]
    UnknownBroker {
        /// The node id.
        node_id: u32,
    },
    /// The cluster id was already set.
    #[error("cluster id already set to '{existing}'")]
    ClusterAlreadyInitialized {
        /// The cluster id in force.
        existing: String,
    },
    /// A SCRAM credential with an invalid user name, mechanism or
    /// parameters.
    #[error("invalid SCRAM credential: {reason}")]
    InvalidScramCredential {
        /// What is wrong.
        reason: String,
    },
    /// A config change that cannot apply.
    #[error("invalid config change: {reason}")]
    InvalidConfigChange {
        /// What is wrong.
        reason: String,
    },
    /// An ACL Kafka would not store either.
    #[error("invalid ACL: {reason}")]
    InvalidAcl {
        /// What is wrong.
        reason: String,
    },
    /// No credential of that user for that mechanism.
    #[error("user '{user}' has no {mechanism} credential")]
    UnknownScramCredential {
        /// The user.
        user: String,
        /// The mechanism.
        mechanism: String,
    },
    /// An empty cluster id.
    #[error("invalid (empty) cluster id")]
    InvalidClusterId,
    /// A log entry whose bytes are not a command (every replica rejects it alike).
    #[error("undecodable metadata command: {reason}")]
    UndecodableCommand {
        /// The decoder's complaint.
        reason: String,
    },
    /// A producer-id block of a size outside 1..=1000000, or past the id space.
    #[error("cannot allocate {count} producer ids after {next} (a block is 1 to 1000000 ids, below 2^63)")]
    InvalidProducerIdBlock {
        /// The block size asked for.
        count: u32,
        /// The next free id.
        next: i64,
    },
    /// An ISR change for a topic id or partition that does not exist (maybe
    /// deleted, or recreated under a new id) (`UNKNOWN_TOPIC_OR_PARTITION`).
    #[error("unknown topic id '{topic_id}' or partition {partition}")]
    UnknownTopicOrPartition {
        /// The topic id as proposed.
        topic_id: String,
        /// The partition number as proposed.
        partition: u32,
    },
    /// An ISR change from a broker that does not lead the partition
    /// (`NOT_LEADER_OR_FOLLOWER`).
    #[error("broker {proposer} does not lead {topic}-{partition} (leader: {leader:?})")]
    NotLeader {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: u32,
        /// The broker that proposed the change.
        proposer: u32,
        /// The current leader.
        leader: Option<u32>,
    },
    /// An ISR change made in another leader epoch than the current one
    /// (`FENCED_LEADER_EPOCH` when older, `UNKNOWN_LEADER_EPOCH` when newer).
    #[error("leader epoch {requested} of {topic}-{partition} is not the current {current}")]
    FencedLeaderEpoch {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: u32,
        /// The epoch the proposer sent.
        requested: u32,
        /// The controller's epoch.
        current: u32,
    },
    /// An ISR change based on another partition epoch than the current one:
    /// the leader has not seen the latest change yet (`INVALID_UPDATE_VERSION`).
    #[error("partition epoch {requested} of {topic}-{partition} is not the current {current}")]
    InvalidPartitionEpoch {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: u32,
        /// The epoch the proposer sent.
        requested: u32,
        /// The controller's epoch.
        current: u32,
    },
    /// A proposed ISR that is empty, has duplicates, names a non-replica or
    /// leaves out the leader (`INVALID_REQUEST`).
    #[error("invalid ISR {isr:?} for {topic}-{partition}: {reason}")]
    InvalidIsr {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: u32,
        /// The proposed ISR.
        isr: Vec<u32>,
        /// What is wrong with it.
        reason: String,
    },
    /// A proposed ISR with a fenced (or unregistered) member: KIP-841 lets no
    /// fenced broker into the ISR (`INELIGIBLE_REPLICA`). Removing one is fine.
    #[error("broker {broker} is fenced and cannot join the ISR of {topic}-{partition}")]
    IneligibleReplica {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: u32,
        /// The fenced broker.
        broker: u32,
    },
    /// A reassignment's partition does not exist (`UNKNOWN_TOPIC_OR_PARTITION`).
    #[error("topic '{topic}' has no partition {partition}")]
    UnknownPartition {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: u32,
    },
    /// A reassignment target Kafka would refuse too (`INVALID_REPLICA_ASSIGNMENT`).
    #[error("invalid replica assignment for {topic}-{partition}: {reason}")]
    InvalidReplicaAssignment {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: u32,
        /// What is wrong.
        reason: String,
    },
    /// A new target for a partition already moving (`REASSIGNMENT_IN_PROGRESS`).
    #[error("{topic}-{partition} is already being reassigned; cancel it first")]
    ReassignmentInProgress {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: u32,
    },
    /// A cancel for a partition that is not moving (`NO_REASSIGNMENT_IN_PROGRESS`).
    #[error("{topic}-{partition} is not being reassigned")]
    NoReassignmentInProgress {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: u32,
    },
    /// A decommission that cannot empty the broker.
    #[error("cannot decommission broker {node_id}: {reason}")]
    CannotDecommission {
        /// The broker.
        node_id: u32,
        /// Why.
        reason: String,
    },
    /// A controller voter change that cannot be made.
    #[error("invalid controller voter change: {reason}")]
    InvalidVoterChange {
        /// Why.
        reason: String,
    },
    /// More moves in one command than [`crate::MAX_PLANNED_MOVES`].
    #[error("{requested} reassignments in one request; at most {max}")]
    TooManyReassignments {
        /// How many were asked for.
        requested: usize,
        /// The limit.
        max: usize,
    },
}
