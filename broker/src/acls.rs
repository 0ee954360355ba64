//! ACLs at the broker core: creating, deleting and listing them in the
//! cluster metadata, for every edge (gRPC, Kafka's CreateAcls/DeleteAcls/
//! DescribeAcls). Deciding with them is the [`crate::authorizer`]'s job.

use strata_metadata::{AclBinding, AclFilter, CommandOutcome, MetadataCommand};

use crate::admin::controller_error;
use crate::error::{BrokerError, ErrorKind};
use crate::service::BrokerService;

impl BrokerService {
    /// Adds `acls` (validated by the state machine: one bad binding and
    /// none is added); how many were new.
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<usize, BrokerError> {
        match self.controller.propose(MetadataCommand::CreateAcls { acls }).await {
            Ok(CommandOutcome::AclsCreated { created }) => Ok(created),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(controller_error(&e)),
        }
    }

    /// Removes what each filter selects; per filter, the ACLs removed.
    pub async fn delete_acls(&self, filters: Vec<AclFilter>) -> Result<Vec<Vec<AclBinding>>, BrokerError> {
        match self.controller.propose(MetadataCommand::DeleteAcls { filters }).await {
            Ok(CommandOutcome::AclsDeleted { deleted }) => Ok(deleted),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(controller_error(&e)),
        }
    }

    /// The ACLs `filter` selects, as this broker's metadata has them.
    pub fn describe_acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.controller.metadata().describe_acls(filter)
    }
}

fn unexpected(outcome: &CommandOutcome) -> BrokerError {
    BrokerError::new(ErrorKind::UnknownServerError, format!("unexpected outcome {outcome:?}"))
}
