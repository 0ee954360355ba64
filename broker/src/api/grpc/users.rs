//! Users at the gRPC edge: `UpsertScramCredentials`,
//! `DeleteScramCredentials`, `DescribeUsers` to and from the core.

use strata_auth::Mechanism;
use strata_protocol::v1;

use crate::error::{BrokerError, ErrorKind};
use crate::service::BrokerService;

fn mechanism(name: &str) -> Result<Mechanism, BrokerError> {
    Mechanism::parse(name).map_err(|e| BrokerError::new(ErrorKind::InvalidRequest, e.to_string()))
}

fn result(user: String, mechanism: String, r: Result<(), BrokerError>) -> v1::UserResult {
    v1::UserResult { user, mechanism, error: r.err().map(Into::into) }
}

/// `UpsertScramCredentials`, one result per upsertion, in order.
pub(crate) async fn upsert(core: &BrokerService, req: v1::UpsertScramCredentialsRequest) -> v1::UserResults {
    let mut results = Vec::with_capacity(req.upsertions.len());
    for u in req.upsertions {
        let r = match mechanism(&u.mechanism) {
            Ok(m) => {
                core.upsert_scram_credential(&u.user, m, &u.salt, &u.salted_password, u.iterations).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        results.push(result(u.user, u.mechanism, r));
    }
    v1::UserResults { results }
}

/// `DeleteScramCredentials`, one result per deletion, in order.
pub(crate) async fn delete(core: &BrokerService, req: v1::DeleteScramCredentialsRequest) -> v1::UserResults {
    let mut results = Vec::with_capacity(req.deletions.len());
    for d in req.deletions {
        let r = match mechanism(&d.mechanism) {
            Ok(m) => match core.delete_scram_credential(&d.user, m).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(BrokerError::new(
                    ErrorKind::InvalidRequest,
                    format!("user '{}' has no {} credential", d.user, m.name()),
                )),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        results.push(result(d.user, d.mechanism, r));
    }
    v1::UserResults { results }
}

/// `DescribeUsers`: every user, its mechanisms and iteration counts (never
/// a key).
pub(crate) fn describe(core: &BrokerService) -> v1::DescribeUsersResponse {
    v1::DescribeUsersResponse {
        users: core
            .list_users()
            .into_iter()
            .map(|(user, creds)| v1::UserDescription {
                user,
                credentials: creds
                    .into_iter()
                    .map(|(m, iterations)| v1::ScramCredentialInfo { mechanism: m.name().to_string(), iterations })
                    .collect(),
            })
            .collect(),
    }
}
