//! Users through the admin client: SCRAM credentials created from a
//! password salted here (the password never leaves this process),
//! deleted, listed.

use strata_auth::Mechanism;
use strata_protocol::v1;

use crate::admin::{Admin, ADMIN_TIMEOUT};
use crate::connection::call;
use crate::error::ClientError;

/// A user and its credentials' `(mechanism, iterations)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserListing {
    /// The user name.
    pub user: String,
    /// Its credentials (no keys).
    pub credentials: Vec<(String, u32)>,
}

/// `Ok` when the answer has results for `user` and none is an error.
fn one_result(user: &str, results: Vec<v1::UserResult>) -> Result<(), ClientError> {
    let mine: Vec<v1::UserResult> = results.into_iter().filter(|r| r.user == user).collect();
    if mine.is_empty() {
        return Err(ClientError::InvalidResponse(format!("no result for user '{user}'")));
    }
    mine.iter().find_map(|r| ClientError::from_api(r.error.as_ref())).map_or(Ok(()), Err)
}

impl Admin {
    /// Creates (or replaces) `user`'s credential for `mechanism`
    /// (`SCRAM-SHA-256` or `SCRAM-SHA-512`) with `password`, salted here
    /// with `iterations` PBKDF2 rounds (4096..=16384).
    pub async fn upsert_user(
        &self,
        user: &str,
        password: &str,
        mechanism: &str,
        iterations: u32,
    ) -> Result<(), ClientError> {
        self.upsert_user_mechanisms(user, password, &[mechanism], iterations).await
    }

    /// [`Admin::upsert_user`] for several mechanisms in one request (so the
    /// first user of a cluster, created from a node's machine before any
    /// user exists, gets all its credentials).
    pub async fn upsert_user_mechanisms(
        &self,
        user: &str,
        password: &str,
        mechanisms: &[&str],
        iterations: u32,
    ) -> Result<(), ClientError> {
        let bad = |e: strata_auth::AuthError| ClientError::InvalidArgument(e.to_string());
        let mut upsertions = Vec::new();
        for mechanism in mechanisms {
            let m = Mechanism::parse(mechanism).map_err(bad)?;
            let salt = strata_auth::random_salt().map_err(bad)?;
            let salted_password = strata_auth::salted_password(m, password, &salt, iterations).map_err(bad)?;
            upsertions.push(v1::ScramCredentialUpsertion {
                user: user.to_owned(),
                mechanism: m.name().to_owned(),
                iterations,
                salt: salt.into(),
                salted_password: salted_password.into(),
            });
        }
        let request = v1::UpsertScramCredentialsRequest { upsertions };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("UpsertScramCredentials", ADMIN_TIMEOUT, c.upsert_scram_credentials(request)).await }
                })
                .await?;
            one_result(user, response.results)
        })
        .await
    }

    /// Deletes `user`'s credential for `mechanism`.
    pub async fn delete_user(&self, user: &str, mechanism: &str) -> Result<(), ClientError> {
        let request = v1::DeleteScramCredentialsRequest {
            deletions: vec![v1::ScramCredentialDeletion { user: user.to_owned(), mechanism: mechanism.to_owned() }],
        };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("DeleteScramCredentials", ADMIN_TIMEOUT, c.delete_scram_credentials(request)).await }
                })
                .await?;
            one_result(user, response.results)
        })
        .await
    }

    /// Every user, sorted by name, with its credentials (never a key).
    pub async fn list_users(&self) -> Result<Vec<UserListing>, ClientError> {
        let response = self
            .with_retry(|mut c| async move {
                call("DescribeUsers", ADMIN_TIMEOUT, c.describe_users(v1::DescribeUsersRequest {})).await
            })
            .await?;
        let mut users: Vec<UserListing> = response
            .users
            .into_iter()
            .map(|u| UserListing {
                user: u.user,
                credentials: u.credentials.into_iter().map(|c| (c.mechanism, c.iterations)).collect(),
            })
            .collect();
        users.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(users)
    }
}
