//! How a node reaches the controller quorum: in process when it is a voter
//! itself (`--roles` includes `controller`), or over the voters' gRPC API
//! when it is a broker only (metadata followed as deltas by a
//! [`MetadataFollower`]). The rest of the broker sees one interface.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_controller::{
    CommandOutcome, Controller, ControllerClient, ControllerError, MetadataCommand, MetadataError, MetadataImage,
    QuorumStatus, TopicInfo,
};
use tokio::sync::watch;

/// How long an admin call waits for its own change to reach this broker's
/// metadata (a broker-only node follows it asynchronously).
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The controller as the broker uses it.
#[derive(Debug, Clone)]
pub enum ControllerLink {
    /// This node is a controller voter.
    Local(Controller),
    /// This node is a broker only: requests go to the voters over gRPC.
    Remote {
        /// The client for the voters.
        client: ControllerClient,
        /// The image the metadata follower keeps current.
        image: watch::Receiver<Arc<MetadataImage>>,
    },
}

impl ControllerLink {
    /// The newest metadata this node has.
    pub fn metadata(&self) -> Arc<MetadataImage> {
        match self {
            ControllerLink::Local(c) => c.metadata(),
            ControllerLink::Remote { image, .. } => image.borrow().clone(),
        }
    }

    /// Sees every metadata image this node gets (possibly skipping some).
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        match self {
            ControllerLink::Local(c) => c.subscribe(),
            ControllerLink::Remote { image, .. } => image.clone(),
        }
    }

    /// The controller leader this node knows of.
    pub fn leader_hint(&self) -> Option<u64> {
        match self {
            ControllerLink::Local(c) => c.status().leader_id,
            ControllerLink::Remote { client, .. } => client.known_leader(),
        }
    }

    /// The local controller, if this node is a voter.
    pub fn local(&self) -> Option<&Controller> {
        match self {
            ControllerLink::Local(c) => Some(c),
            ControllerLink::Remote { .. } => None,
        }
    }

    /// Proposes `cmd` through the leader and waits until it is applied there.
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<CommandOutcome, ControllerError> {
        match self {
            ControllerLink::Local(c) => c.propose_anywhere(cmd).await,
            ControllerLink::Remote { client, .. } => client.propose(cmd).await,
        }
    }

    /// Records this broker's heartbeat on the leader.
    pub async fn heartbeat(&self, node_id: u32) -> Result<(), ControllerError> {
        match self {
            ControllerLink::Local(c) => c.heartbeat(node_id).await,
            ControllerLink::Remote { client, .. } => client.heartbeat(node_id).await,
        }
    }

    /// The quorum as its leader sees it.
    pub async fn describe_quorum(&self) -> Result<QuorumStatus, ControllerError> {
        match self {
            ControllerLink::Local(c) => c.describe_quorum().await,
            ControllerLink::Remote { client, .. } => client.describe_quorum().await,
        }
    }

    /// Creates a topic with a fresh id; returns once this node's metadata has it.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicInfo, ControllerError> {
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
    pub async fn delete_topic(&self, name: &str) -> Result<(), ControllerError> {
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
    ) -> Result<(), ControllerError> {
        match self.propose(MetadataCommand::FenceBroker { node_id }).await {
            Ok(_) => {
                let fenced = |image: &MetadataImage| image.brokers.get(&node_id).is_some_and(|b| b.fenced);
                self.wait_visible(fenced).await;
            }
            // The first start of this broker: nothing to fence.
            Err(ControllerError::Metadata(MetadataError::UnknownBroker { .. })) => {}
            Err(e) => return Err(e),
        }
        match self.propose(MetadataCommand::RegisterBroker { node_id, address, rack }).await? {
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
    async fn wait_visible(&self, done: impl Fn(&MetadataImage) -> bool) {
        let mut rx = self.subscribe();
        if tokio::time::timeout(VISIBLE_TIMEOUT, rx.wait_for(|image| done(image))).await.is_err() {
            tracing::warn!("a committed metadata change has not reached this broker yet");
        }
    }
}

fn unexpected(outcome: CommandOutcome) -> ControllerError {
    // Unreachable: each command has one kind of outcome.
    ControllerError::Remote { kind: "UnexpectedOutcome".into(), message: format!("{outcome:?}") }
}
