//! The two ways a node reaches the controller quorum, as the broker's
//! [`ControllerLink`]: in process when the node is a voter, over the
//! voters' gRPC API (metadata followed as deltas) when it is a broker only.
//! They live here, in the binary's crate, so the broker never depends on
//! raft-rs.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use strata_broker::controller_link::{ControllerCallError, ControllerLink, LocalVoterStatus, QuorumView};
use strata_controller::{Controller, ControllerClient, ControllerError, QuorumStatus};
use strata_metadata::{CommandOutcome, MetadataCommand, MetadataImage};
use tokio::sync::watch;

/// This node is a controller voter: calls go to the Raft node in process.
#[derive(Debug, Clone)]
pub(crate) struct LocalController(pub(crate) Controller);

/// This node is a broker only: calls go to the voters over gRPC.
#[derive(Debug, Clone)]
pub(crate) struct RemoteController {
    /// The client for the voters.
    pub(crate) client: ControllerClient,
    /// The image the metadata follower keeps current.
    pub(crate) image: watch::Receiver<Arc<MetadataImage>>,
}

/// The broker's view of a controller failure (the variants it acts on; the
/// rest keep their source).
fn call_error(e: ControllerError) -> ControllerCallError {
    match e {
        ControllerError::Metadata(m) => ControllerCallError::Metadata(m),
        ControllerError::NotLeader { leader } => ControllerCallError::NotLeader { leader },
        ControllerError::Timeout => ControllerCallError::Timeout,
        ControllerError::Stopped => ControllerCallError::Stopped,
        other => ControllerCallError::Other(Box::new(other)),
    }
}

fn quorum_view(q: QuorumStatus) -> QuorumView {
    QuorumView { leader_id: q.leader_id, commit_index: q.commit_index, voter_match_index: q.voter_match_index }
}

impl ControllerLink for LocalController {
    fn metadata(&self) -> Arc<MetadataImage> {
        self.0.metadata()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.0.subscribe()
    }

    fn leader_hint(&self) -> Option<u64> {
        self.0.status().leader_id
    }

    fn local_voter(&self) -> Option<LocalVoterStatus> {
        let s = self.0.status();
        Some(LocalVoterStatus {
            node_id: s.node_id,
            leader_id: s.leader_id,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
        })
    }

    fn propose(&self, cmd: MetadataCommand) -> BoxFuture<'_, Result<CommandOutcome, ControllerCallError>> {
        async move { self.0.propose_anywhere(cmd).await.map_err(call_error) }.boxed()
    }

    fn heartbeat(&self, node_id: u32) -> BoxFuture<'_, Result<(), ControllerCallError>> {
        async move { self.0.heartbeat(node_id).await.map_err(call_error) }.boxed()
    }

    fn describe_quorum(&self) -> BoxFuture<'_, Result<QuorumView, ControllerCallError>> {
        async move { self.0.describe_quorum().await.map(quorum_view).map_err(call_error) }.boxed()
    }
}

impl ControllerLink for RemoteController {
    fn metadata(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    fn leader_hint(&self) -> Option<u64> {
        self.client.known_leader()
    }

    fn local_voter(&self) -> Option<LocalVoterStatus> {
        None
    }

    fn propose(&self, cmd: MetadataCommand) -> BoxFuture<'_, Result<CommandOutcome, ControllerCallError>> {
        async move { self.client.propose(cmd).await.map_err(call_error) }.boxed()
    }

    fn heartbeat(&self, node_id: u32) -> BoxFuture<'_, Result<(), ControllerCallError>> {
        async move { self.client.heartbeat(node_id).await.map_err(call_error) }.boxed()
    }

    fn describe_quorum(&self) -> BoxFuture<'_, Result<QuorumView, ControllerCallError>> {
        async move { self.client.describe_quorum().await.map(quorum_view).map_err(call_error) }.boxed()
    }
}
