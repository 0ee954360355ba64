//! Users at the broker core: creating, deleting and listing SCRAM
//! credentials in the cluster metadata (for every edge: gRPC, Kafka's
//! AlterUserScramCredentials), and looking them up to authenticate.
//! Clients send a salted password, never the password itself (as Kafka's
//! admin API does).

use strata_auth::{Mechanism, ScramCredential};
use strata_metadata::{CommandOutcome, MetadataCommand, ScramEntry};

use crate::admin::controller_error;
use crate::error::{BrokerError, ErrorKind};
use crate::service::BrokerService;

/// One user as listed: its name and `(mechanism, iterations)` per credential.
pub type UserListing = (String, Vec<(Mechanism, u32)>);

impl BrokerService {
    /// Creates or replaces `user`'s credential for `mechanism` from a
    /// salted password; `Ok(true)` when it was created.
    pub async fn upsert_scram_credential(
        &self,
        user: &str,
        mechanism: Mechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Result<bool, BrokerError> {
        let credential = ScramCredential::from_salted_password(mechanism, salted_password, salt, iterations)
            .map_err(|e| BrokerError::new(ErrorKind::InvalidRequest, e.to_string()))?;
        let cmd = MetadataCommand::UpsertScramCredential {
            user: user.to_string(),
            mechanism: mechanism.name().to_string(),
            credential: ScramEntry {
                salt: credential.salt,
                iterations: credential.iterations,
                stored_key: credential.stored_key,
                server_key: credential.server_key,
            },
        };
        match self.controller.propose(cmd).await.map_err(|e| controller_error(&e))? {
            CommandOutcome::ScramCredentialUpserted { created, .. } => Ok(created),
            other => Err(BrokerError::new(ErrorKind::UnknownServerError, format!("unexpected outcome {other:?}"))),
        }
    }

    /// Deletes `user`'s credential for `mechanism`; `Ok(false)` when the
    /// user has none (Kafka's RESOURCE_NOT_FOUND).
    pub async fn delete_scram_credential(&self, user: &str, mechanism: Mechanism) -> Result<bool, BrokerError> {
        if self.controller.metadata().scram_credential(user, mechanism.name()).is_none() {
            return Ok(false);
        }
        let cmd =
            MetadataCommand::DeleteScramCredential { user: user.to_string(), mechanism: mechanism.name().to_string() };
        self.controller.propose(cmd).await.map(|_| true).map_err(|e| controller_error(&e))
    }

    /// Every user with its credentials' mechanisms and iteration counts.
    pub fn list_users(&self) -> Vec<UserListing> {
        self.controller
            .metadata()
            .users
            .iter()
            .map(|(user, creds)| {
                let creds =
                    creds.iter().filter_map(|(m, c)| Mechanism::parse(m).ok().map(|m| (m, c.iterations))).collect();
                (user.clone(), creds)
            })
            .collect()
    }

    /// True when `password` is `user`'s (for any of its SCRAM credentials):
    /// SASL PLAIN and gRPC's `authorization` header. The PBKDF2 runs off the
    /// async workers, and once per credential: a success is remembered.
    pub async fn check_password(&self, user: &str, password: &str) -> bool {
        let creds: Vec<ScramCredential> =
            Mechanism::ALL.into_iter().filter_map(|m| self.scram_credential(user, m)).collect();
        if self.verified_passwords.known(user, password, &creds) {
            return true;
        }
        let (cache, user, password) = (self.verified_passwords.clone(), user.to_string(), password.to_string());
        tokio::task::spawn_blocking(move || match creds.iter().find(|c| c.verify_password(&password)) {
            Some(c) => {
                cache.remember(&user, &password, c);
                true
            }
            None => false,
        })
        .await
        .unwrap_or(false)
    }

    /// `user`'s credential for `mechanism`, to authenticate against.
    pub fn scram_credential(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        let image = self.controller.metadata();
        let c = image.scram_credential(user, mechanism.name())?;
        Some(ScramCredential {
            mechanism,
            salt: c.salt.clone(),
            iterations: c.iterations,
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
        })
    }
}
