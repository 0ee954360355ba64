//! SCRAM credentials: what the cluster stores for a user and mechanism.

use std::num::NonZeroU32;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::pbkdf2;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::{AuthError, Mechanism};

/// Fewest PBKDF2 iterations accepted (Kafka's minimum).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations accepted (Kafka's maximum).
pub const MAX_ITERATIONS: u32 = 16384;
/// Iterations of a credential created without a count.
pub const DEFAULT_ITERATIONS: u32 = 8192;

/// A user's SCRAM credential for one mechanism (RFC 5802 §3): a password
/// can be checked against it, not recovered from it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// Which hash.
    pub mechanism: Mechanism,
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// Never prints the keys.
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn check_iterations(iterations: u32) -> Result<NonZeroU32, AuthError> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(AuthError::InvalidCredential(format!(
            "iterations must be {MIN_ITERATIONS}..={MAX_ITERATIONS}, got {iterations}"
        )));
    }
    NonZeroU32::new(iterations).ok_or_else(|| AuthError::InvalidCredential("iterations must be positive".into()))
}

/// 32 random bytes for a new credential's salt.
pub fn random_salt() -> Result<Vec<u8>, AuthError> {
    let mut salt = vec![0u8; 32];
    SystemRandom::new().fill(&mut salt).map_err(|_| AuthError::InvalidCredential("no randomness for a salt".into()))?;
    Ok(salt)
}

/// RFC 5802's `Hi(password, salt, iterations)`: what a client sends to
/// create a credential without sending the password.
pub fn salted_password(
    mechanism: Mechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, AuthError> {
    let n = check_iterations(iterations)?;
    let mut salted = vec![0u8; mechanism.output_len()];
    pbkdf2::derive(mechanism.pbkdf2(), n, salt, password.as_bytes(), &mut salted);
    Ok(salted)
}

impl ScramCredential {
    /// A credential for `password` with a fresh random salt.
    pub fn new(mechanism: Mechanism, password: &str, iterations: u32) -> Result<Self, AuthError> {
        Self::derive(mechanism, password, &random_salt()?, iterations)
    }

    /// The credential for `password` with `salt` (RFC 5802's `Hi`).
    pub fn derive(mechanism: Mechanism, password: &str, salt: &[u8], iterations: u32) -> Result<Self, AuthError> {
        let salted = salted_password(mechanism, password, salt, iterations)?;
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential from an already salted password (what Kafka's
    /// AlterUserScramCredentials carries: the client salts, the password
    /// never reaches the broker).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, AuthError> {
        check_iterations(iterations)?;
        if salted_password.len() != mechanism.output_len() || salt.is_empty() {
            return Err(AuthError::InvalidCredential(format!(
                "a {mechanism} salted password is {} bytes with a non-empty salt",
                mechanism.output_len()
            )));
        }
        let client_key = mechanism.hmac_of(salted_password, b"Client Key");
        Ok(ScramCredential {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.h(&client_key),
            server_key: mechanism.hmac_of(salted_password, b"Server Key"),
        })
    }

    /// Whether `password` is the one this credential was made from
    /// (constant-time comparison).
    pub fn verify_password(&self, password: &str) -> bool {
        match Self::derive(self.mechanism, password, &self.salt, self.iterations) {
            Ok(other) => verify_slices_are_equal(&other.stored_key, &self.stored_key).is_ok(),
            Err(_) => false,
        }
    }
}
