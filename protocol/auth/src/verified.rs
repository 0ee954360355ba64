//! Passwords already checked: a client that sends its password with every
//! call (gRPC's `authorization` header) costs one PBKDF2 per credential
//! change, not one per call. Entries hold a SHA-256 of user and password,
//! never the password, and are keyed to the stored key they matched, so a
//! changed or deleted credential stops matching at once.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest;

use crate::ScramCredential;

/// Most remembered (user, password) pairs; past it the memory starts over.
const CAPACITY: usize = 10_000;

/// Remembered successful password checks.
#[derive(Debug, Default)]
pub struct VerifiedPasswords {
    seen: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

fn fingerprint(user: &str, password: &str) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(user.as_bytes());
    ctx.update(&[0]);
    ctx.update(password.as_bytes());
    ctx.finish().as_ref().to_vec()
}

impl VerifiedPasswords {
    /// True when `password` was verified for `user` against one of `creds`
    /// as they are now.
    pub fn known(&self, user: &str, password: &str, creds: &[ScramCredential]) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&fingerprint(user, password)).is_some_and(|key| creds.iter().any(|c| c.stored_key == *key))
    }

    /// Remembers that `password` matched `credential` of `user`.
    pub fn remember(&self, user: &str, password: &str, credential: &ScramCredential) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= CAPACITY {
            seen.clear();
        }
        seen.insert(fingerprint(user, password), credential.stored_key.clone());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

    use super::*;
    use crate::Mechanism;

    #[test]
    fn a_remembered_password_stops_matching_when_the_credential_changes() {
        let cache = VerifiedPasswords::default();
        let old = ScramCredential::new(Mechanism::ScramSha256, "pw", 4096).unwrap();
        assert!(!cache.known("alice", "pw", std::slice::from_ref(&old)));
        cache.remember("alice", "pw", &old);
        assert!(cache.known("alice", "pw", std::slice::from_ref(&old)));
        assert!(!cache.known("alice", "other", std::slice::from_ref(&old)));
        assert!(!cache.known("bob", "pw", std::slice::from_ref(&old)));
        let new = ScramCredential::new(Mechanism::ScramSha256, "pw", 4096).unwrap();
        assert!(!cache.known("alice", "pw", &[new]), "a new salt is a new stored key");
        assert!(!cache.known("alice", "pw", &[]), "a deleted user matches nothing");
    }
}
