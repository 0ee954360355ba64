//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554):
//! Kafka admin clients manage the users in the cluster metadata. Clients
//! send salted passwords, never passwords. Without ACLs any connection the
//! listener admitted may call them (the authorizer will require ALTER and
//! DESCRIBE on the cluster).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_auth::Mechanism;

use crate::api::kafka::codes::code_of;
use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;
use strata_metadata::AclOperation;

fn mechanism(t: i8) -> Result<Mechanism, (i16, String)> {
    Mechanism::from_kafka_type(t)
        .ok_or((ResponseError::UnsupportedSaslMechanism.code(), format!("unknown SCRAM mechanism type {t}")))
}

/// AlterUserScramCredentials 0: deletions, then upsertions; one result per
/// user (its first error, if any).
pub(crate) async fn alter(
    core: &BrokerService,
    session: &Session,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if let Err(e) = core.authorize(session, AclOperation::Alter, Resource::Cluster) {
        let mut r = AlterUserScramCredentialsResponse::default();
        let names = req.deletions.iter().map(|d| &d.name).chain(req.upsertions.iter().map(|u| &u.name));
        for name in names {
            if r.results.iter().any(|x| x.user == *name) {
                continue;
            }
            let mut x = AlterUserScramCredentialsResult::default();
            x.user = name.clone();
            (x.error_code, x.error_message) = super::refusal(&e);
            r.results.push(x);
        }
        return r;
    }
    let mut outcome: Vec<(String, Option<(i16, String)>)> = Vec::new();
    let mut note = |user: &str, e: Option<(i16, String)>| match outcome.iter_mut().find(|(u, _)| u == user) {
        Some((_, first)) => {
            if first.is_none() {
                *first = e;
            }
        }
        None => outcome.push((user.to_string(), e)),
    };
    for d in &req.deletions {
        let r = match mechanism(d.mechanism) {
            Ok(m) => match core.delete_scram_credential(&d.name, m).await {
                Ok(true) => Ok(()),
                Ok(false) => Err((
                    ResponseError::ResourceNotFound.code(),
                    format!("user '{}' has no {} credential", d.name, m.name()),
                )),
                Err(e) => Err((code_of(e.kind()), e.message().to_string())),
            },
            Err(e) => Err(e),
        };
        note(&d.name, r.err());
    }
    for u in &req.upsertions {
        let r = match (mechanism(u.mechanism), u32::try_from(u.iterations)) {
            (Ok(m), Ok(iterations)) => core
                .upsert_scram_credential(&u.name, m, &u.salt, &u.salted_password, iterations)
                .await
                .map(|_| ())
                .map_err(|e| (code_of(e.kind()), e.message().to_string())),
            (Err(e), _) => Err(e),
            (_, Err(_)) => Err((ResponseError::UnacceptableCredential.code(), "negative iterations".into())),
        };
        note(&u.name, r.err());
    }
    let mut r = AlterUserScramCredentialsResponse::default();
    r.results = outcome
        .into_iter()
        .map(|(user, e)| {
            let mut x = AlterUserScramCredentialsResult::default();
            x.user = StrBytes::from_string(user);
            if let Some((code, message)) = e {
                // An invalid credential is Kafka's UNACCEPTABLE_CREDENTIAL.
                x.error_code = if code == ResponseError::InvalidRequest.code() {
                    ResponseError::UnacceptableCredential.code()
                } else {
                    code
                };
                x.error_message = Some(StrBytes::from_string(message));
            }
            x
        })
        .collect();
    r
}

/// DescribeUserScramCredentials 0: the named users (null: every user),
/// their mechanisms and iteration counts; an unknown user is
/// RESOURCE_NOT_FOUND.
pub(crate) fn describe(
    core: &BrokerService,
    session: &Session,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if let Err(e) = core.authorize(session, AclOperation::Describe, Resource::Cluster) {
        let mut r = DescribeUserScramCredentialsResponse::default();
        (r.error_code, r.error_message) = super::refusal(&e);
        return r;
    }
    let users = core.list_users();
    let wanted: Vec<String> = match &req.users {
        Some(names) => names.iter().map(|n| n.name.to_string()).collect(),
        None => users.iter().map(|(u, _)| u.clone()).collect(),
    };
    let mut r = DescribeUserScramCredentialsResponse::default();
    r.results = wanted
        .into_iter()
        .map(|name| {
            let mut x = DescribeUserScramCredentialsResult::default();
            match users.iter().find(|(u, _)| *u == name) {
                Some((_, creds)) => {
                    x.credential_infos = creds
                        .iter()
                        .map(|(m, iterations)| {
                            let mut c = CredentialInfo::default();
                            c.mechanism = m.kafka_type();
                            c.iterations = i32::try_from(*iterations).unwrap_or(i32::MAX);
                            c
                        })
                        .collect();
                }
                None => {
                    x.error_code = ResponseError::ResourceNotFound.code();
                    x.error_message = Some(StrBytes::from_string(format!("no user '{name}'")));
                }
            }
            x.user = StrBytes::from_string(name);
            x
        })
        .collect();
    r
}
