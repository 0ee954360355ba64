//! How the broker reaches the controller quorum: one trait, so the broker
//! depends on the metadata state machine (`strata-metadata`) and not on the
//! Raft node that replicates it. The server binary implements it twice: in
//! process for a node that is a voter itself (`--roles` includes
//! `controller`), and over the voters' gRPC API for a broker-only node
//! (metadata followed as deltas). Tests implement it over a bare image.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use strata_metadata::{CommandOutcome, MetadataCommand, MetadataError, MetadataImage, TopicInfo};
use tokio::sync::watch;

/// How long an admin call waits for its own change to reach this broker's
/// metadata (a broker-only node follows it asynchronously).
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call to the controller failed, as the broker needs to tell apart.
#[derive(Debug, thiserror::Error)]
pub enum ControllerCallError {
    /// The state machine rejected the command (nothing changed).
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// No controller leader could take the call (an election is running);
    /// `leader` is the one known, if any. Retriable.
    #[error("not the controller leader (leader: {})", leader.map_or_else(|| "unknown".to_string(), |l| l.to_string()))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<u64>,
    },
    /// The call was not answered in time; the change may still be applied.
    #[error("timed out waiting for the controller")]
    Timeout,
    /// The controller has stopped (this node is shutting down).
    #[error("the controller has stopped")]
    Stopped,
    /// Anything else (the leader's storage, raft-rs, the network...).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// A controller voter's own view of its progress, for readiness and
/// `DescribeCluster` when the leader cannot be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVoterStatus {
    /// This voter's node id.
    pub node_id: u64,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// The highest metadata log index it knows to be committed.
    pub commit_index: u64,
    /// The highest index it has applied.
    pub applied_index: u64,
}

/// The quorum as its leader sees it: what `strata cluster info` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    /// The leader that answered.
    pub leader_id: u64,
    /// Its commit index.
    pub commit_index: u64,
    /// For each voter, the highest log index known to be replicated on it.
    pub voter_match_index: BTreeMap<u64, u64>,
}

/// The controller as the broker uses it.
pub trait ControllerLink: Send + Sync + fmt::Debug {
    /// The newest metadata this node has.
    fn metadata(&self) -> Arc<MetadataImage>;

    /// Sees every metadata image this node gets (possibly skipping some).
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;

    /// The controller leader this node knows of.
    fn leader_hint(&self) -> Option<u64>;

    /// This node's own voter status, if it is a controller voter.
    fn local_voter(&self) -> Option<LocalVoterStatus>;

    /// Proposes `cmd` through the leader and waits until it is applied there.
    fn propose(&self, cmd: MetadataCommand) -> BoxFuture<'_, Result<CommandOutcome, ControllerCallError>>;

    /// Records this broker's heartbeat on the leader.
    fn heartbeat(&self, node_id: u32) -> BoxFuture<'_, Result<(), ControllerCallError>>;

    /// The quorum as its leader sees it.
    fn describe_quorum(&self) -> BoxFuture<'_, Result<QuorumView, ControllerCallError>>;
}

/// The shared handle the broker's parts hold.
pub type SharedControllerLink = Arc<dyn ControllerLink>;

impl dyn ControllerLink + '_ {
    /// Creates a topic with a fresh id; returns once this node's metadata has it.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicInfo, ControllerCallError> {
        let cmd = MetadataCommand::CreateTopic {
            name: name.to_string(),
            topic_id: uuid::Uuid::new_v4().to_string(),
            partitions,
            replication_factor,
            configs,
        };
        match self.propose(cmd).await? {
            CommandOutcome::TopicCreated { topic } => {
                self.wait_visible(|image| image.topic_by_id(&topic.id).is_some()).await;
                Ok(topic)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a topic; returns once this node's metadata no longer has it.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ControllerCallError> {
        match self.propose(MetadataCommand::DeleteTopic { name: name.to_string() }).await? {
            CommandOutcome::TopicDeleted { topic_id, .. } => {
                self.wait_visible(|image| image.topic_by_id(&topic_id).is_none()).await;
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// Registers this broker process: first fences any earlier process of
    /// the same broker (its session may still be alive after a quick
    /// restart), so every partition it led gets a new leader epoch and this
    /// process never resumes leading in an epoch whose high watermark it
    /// does not know; then registers (unfencing it). Returns once this
    /// node's metadata has applied both.
    pub async fn register_broker(
        &self,
        node_id: u32,
        address: String,
        rack: Option<String>,
        kafka_address: Option<String>,
    ) -> Result<(), ControllerCallError> {
        match self.propose(MetadataCommand::FenceBroker { node_id }).await {
            Ok(_) => {
                let fenced = |image: &MetadataImage| image.brokers.get(&node_id).is_some_and(|b| b.fenced);
                self.wait_visible(fenced).await;
            }
            // The first start of this broker: nothing to fence.
            Err(ControllerCallError::Metadata(MetadataError::UnknownBroker { .. })) => {}
            Err(e) => return Err(e),
        }
        match self.propose(MetadataCommand::RegisterBroker { node_id, address, rack, kafka_address }).await? {
            CommandOutcome::BrokerRegistered { .. } => {
                self.wait_visible(|image| image.brokers.get(&node_id).is_some_and(|b| !b.fenced)).await;
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// Waits (bounded) until this node's metadata satisfies `done`. The
    /// change is committed either way; a slow follower only delays when
    /// this node sees it.
    pub(crate) async fn wait_visible(&self, done: impl Fn(&MetadataImage) -> bool) {
        let mut rx = self.subscribe();
        if tokio::time::timeout(VISIBLE_TIMEOUT, rx.wait_for(|image| done(image))).await.is_err() {
            tracing::warn!("a committed metadata change has not reached this broker yet");
        }
    }
}

/// A command answered with another command's kind of outcome: cannot happen
/// (each command has one kind of outcome), reported rather than panicking.
pub(crate) fn unexpected(outcome: CommandOutcome) -> ControllerCallError {
    ControllerCallError::Other(format!("the controller answered with an unexpected outcome: {outcome:?}").into())
}
