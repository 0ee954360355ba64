//! Controller membership on a running cluster (`docs/operations.md`,
//! "Replace a controller voter"): add a voter (it catches up as a learner
//! first), remove one. The controller quorum carries the change out as a
//! Raft configuration change, one at a time.

use std::collections::BTreeMap;

use strata_metadata::{AclOperation, CommandOutcome, MetadataCommand, MetadataImage, VoterChange};

use crate::admin::controller_error;
use crate::authorizer::{Resource, Session};
use crate::controller_link::QuorumView;
use crate::error::BrokerError;
use crate::service::BrokerService;

impl BrokerService {
    /// Adds or removes a controller voter; Alter on the cluster. Returns the
    /// voters and learners after the change.
    pub async fn change_controller_voter(
        &self,
        session: &Session,
        change: VoterChange,
    ) -> Result<(Vec<u64>, Vec<u64>), BrokerError> {
        self.authorize(session, AclOperation::Alter, Resource::Cluster)?;
        tracing::info!(?change, principal = %session.principal, "controller voter change requested");
        let outcome = self
            .controller
            .propose(MetadataCommand::ChangeControllerVoter { change })
            .await
            .map_err(|e| controller_error(&e))?;
        match outcome {
            CommandOutcome::VotersChanged { voters, learners } => Ok((voters, learners)),
            _ => Ok((Vec::new(), Vec::new())),
        }
    }

    /// The voters with their addresses: the leader's voter set when it
    /// answered (else this node's configured voters), addresses from the
    /// metadata for voters added at run time, else from the configuration.
    pub(crate) fn voter_addresses(&self, image: &MetadataImage, quorum: Option<&QuorumView>) -> BTreeMap<u64, String> {
        let mut known: BTreeMap<u64, String> =
            self.config.voters.iter().map(|v| (v.node_id, v.address.clone())).collect();
        known.extend(image.controller_addresses.iter().map(|(k, v)| (*k, v.clone())));
        match quorum {
            Some(q) => q
                .voter_match_index
                .keys()
                .map(|id| (*id, known.get(id).cloned().unwrap_or_else(|| "?".to_string())))
                .collect(),
            None => self.config.voters.iter().map(|v| (v.node_id, v.address.clone())).collect(),
        }
    }
}
