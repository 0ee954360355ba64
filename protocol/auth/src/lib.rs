//! # strata-auth
//!
//! Users and how they prove who they are. A user's secret is never stored
//! or logged: the cluster metadata keeps SCRAM credentials (salt, iteration
//! count, stored key, server key — RFC 5802), from which a password can be
//! checked but not recovered.
//!
//! - [`ScramCredential`] derives and verifies them ([`Mechanism`]:
//!   SCRAM-SHA-256 or SCRAM-SHA-512).
//! - [`ScramServer`] runs the server side of a SCRAM exchange (what Kafka's
//!   SaslAuthenticate carries).
//! - [`plain`] parses SASL PLAIN, checked against the same credentials.

mod credential;
mod error;
mod mechanism;
pub mod plain;
mod scram;
mod verified;

pub use credential::{
    random_salt, salted_password, ScramCredential, DEFAULT_ITERATIONS, MAX_ITERATIONS, MIN_ITERATIONS,
};
pub use error::AuthError;
pub use mechanism::Mechanism;
pub use scram::{ScramServer, Step};
pub use verified::VerifiedPasswords;
