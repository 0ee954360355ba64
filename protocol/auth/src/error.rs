//! Why authentication failed. The messages are safe to send to the client:
//! they never say whether the user exists.

/// An authentication failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password (one error for both).
    #[error("authentication failed: invalid user name or password")]
    InvalidCredentials,
    /// The client's message does not follow the mechanism.
    #[error("malformed {mechanism} message: {reason}")]
    Malformed {
        /// The mechanism.
        mechanism: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A mechanism this server does not offer.
    #[error("unsupported SASL mechanism {0:?}")]
    UnsupportedMechanism(String),
    /// A credential's parameters are out of range.
    #[error("invalid credential: {0}")]
    InvalidCredential(String),
}
