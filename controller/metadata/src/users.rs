//! Users: SCRAM credentials per user and mechanism, replicated like every
//! other piece of cluster metadata so every broker authenticates alike. A
//! credential holds no password, only what a password is checked against.

use serde::{Deserialize, Serialize};

use crate::{CommandOutcome, MetadataError, MetadataImage};

/// The SCRAM mechanisms a credential may be for.
pub const SCRAM_MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Longest user name accepted.
pub const MAX_USER_NAME_LEN: usize = 255;

/// One user's SCRAM credential for one mechanism (RFC 5802 §3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramEntry {
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations (4096..=16384).
    pub iterations: u32,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// Never prints the keys (commands and images are logged in debug lines).
impl std::fmt::Debug for ScramEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramEntry").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

fn invalid(reason: impl Into<String>) -> MetadataError {
    MetadataError::InvalidScramCredential { reason: reason.into() }
}

fn check_user(user: &str) -> Result<(), MetadataError> {
    if user.is_empty() || user.len() > MAX_USER_NAME_LEN || user.chars().any(char::is_control) {
        return Err(invalid(format!("a user name is 1..={MAX_USER_NAME_LEN} bytes without control characters")));
    }
    Ok(())
}

fn key_len(mechanism: &str) -> Result<usize, MetadataError> {
    match mechanism {
        "SCRAM-SHA-256" => Ok(32),
        "SCRAM-SHA-512" => Ok(64),
        other => Err(invalid(format!("unknown mechanism {other:?} (SCRAM-SHA-256 or SCRAM-SHA-512)"))),
    }
}

impl MetadataImage {
    /// The credential of `user` for `mechanism`, if any.
    pub fn scram_credential(&self, user: &str, mechanism: &str) -> Option<&ScramEntry> {
        self.users.get(user)?.get(mechanism)
    }

    pub(crate) fn upsert_scram(
        &mut self,
        user: &str,
        mechanism: &str,
        entry: &ScramEntry,
    ) -> Result<CommandOutcome, MetadataError> {
        check_user(user)?;
        let len = key_len(mechanism)?;
        if !(4096..=16384).contains(&entry.iterations) {
            return Err(invalid(format!("iterations must be 4096..=16384, got {}", entry.iterations)));
        }
        if entry.salt.is_empty()
            || entry.salt.len() > 1024
            || entry.stored_key.len() != len
            || entry.server_key.len() != len
        {
            return Err(invalid(format!("a {mechanism} credential has {len}-byte keys and a salt of 1..=1024 bytes")));
        }
        let created =
            self.users.entry(user.to_string()).or_default().insert(mechanism.to_string(), entry.clone()).is_none();
        Ok(CommandOutcome::ScramCredentialUpserted {
            user: user.to_string(),
            mechanism: mechanism.to_string(),
            created,
        })
    }

    pub(crate) fn delete_scram(&mut self, user: &str, mechanism: &str) -> Result<CommandOutcome, MetadataError> {
        key_len(mechanism)?;
        let unknown =
            || MetadataError::UnknownScramCredential { user: user.to_string(), mechanism: mechanism.to_string() };
        let creds = self.users.get_mut(user).ok_or_else(unknown)?;
        creds.remove(mechanism).ok_or_else(unknown)?;
        if creds.is_empty() {
            self.users.remove(user);
        }
        Ok(CommandOutcome::ScramCredentialDeleted { user: user.to_string(), mechanism: mechanism.to_string() })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

    use super::*;
    use crate::MetadataCommand;

    fn entry(len: usize) -> ScramEntry {
        ScramEntry { salt: vec![1; 16], iterations: 4096, stored_key: vec![2; len], server_key: vec![3; len] }
    }

    fn upsert(user: &str, mechanism: &str, credential: ScramEntry) -> MetadataCommand {
        MetadataCommand::UpsertScramCredential { user: user.into(), mechanism: mechanism.into(), credential }
    }

    #[test]
    fn credentials_are_created_replaced_and_deleted_per_mechanism() {
        let mut image = MetadataImage::default();
        let out = image.apply(&upsert("alice", "SCRAM-SHA-256", entry(32))).unwrap();
        assert_eq!(
            out,
            CommandOutcome::ScramCredentialUpserted {
                user: "alice".into(),
                mechanism: "SCRAM-SHA-256".into(),
                created: true
            }
        );
        let out = image.apply(&upsert("alice", "SCRAM-SHA-256", entry(32))).unwrap();
        assert!(matches!(out, CommandOutcome::ScramCredentialUpserted { created: false, .. }));
        image.apply(&upsert("alice", "SCRAM-SHA-512", entry(64))).unwrap();
        assert_eq!(image.scram_credential("alice", "SCRAM-SHA-512"), Some(&entry(64)));
        let delete = |m: &str| MetadataCommand::DeleteScramCredential { user: "alice".into(), mechanism: m.into() };
        image.apply(&delete("SCRAM-SHA-256")).unwrap();
        assert!(image.users.contains_key("alice"), "one credential left");
        image.apply(&delete("SCRAM-SHA-512")).unwrap();
        assert!(image.users.is_empty(), "the user goes with its last credential");
        assert!(matches!(image.apply(&delete("SCRAM-SHA-512")), Err(MetadataError::UnknownScramCredential { .. })));
    }

    #[test]
    fn invalid_credentials_change_nothing() {
        let mut image = MetadataImage::default();
        let long = "x".repeat(MAX_USER_NAME_LEN + 1);
        let cases = [
            upsert("", "SCRAM-SHA-256", entry(32)),
            upsert(&long, "SCRAM-SHA-256", entry(32)),
            upsert("a\nb", "SCRAM-SHA-256", entry(32)),
            upsert("alice", "SCRAM-MD5", entry(32)),
            upsert("alice", "SCRAM-SHA-256", entry(64)),
            upsert("alice", "SCRAM-SHA-256", ScramEntry { iterations: 100, ..entry(32) }),
            upsert("alice", "SCRAM-SHA-256", ScramEntry { salt: vec![], ..entry(32) }),
        ];
        for cmd in cases {
            assert!(matches!(image.apply(&cmd), Err(MetadataError::InvalidScramCredential { .. })), "{cmd:?}");
        }
        assert_eq!(image, MetadataImage::default());
    }

    #[test]
    fn users_survive_a_snapshot_and_old_snapshots_load() {
        let mut image = MetadataImage::default();
        image.apply(&upsert("alice", "SCRAM-SHA-512", entry(64))).unwrap();
        let json = serde_json::to_vec(&image).unwrap();
        assert_eq!(serde_json::from_slice::<MetadataImage>(&json).unwrap(), image);
        let old = br#"{"offset":3,"cluster_id":"c","brokers":{},"topics":{}}"#;
        assert!(serde_json::from_slice::<MetadataImage>(old).unwrap().users.is_empty());
        let cmd = upsert("alice", "SCRAM-SHA-512", entry(64));
        assert!(!format!("{cmd:?}").contains("stored_key"), "keys are never printed: {cmd:?}");
        assert_eq!(MetadataCommand::decode(&cmd.encode()).unwrap(), cmd);
    }
}
