//! # strata-client
//!
//! Owns the Rust client library (producer, consumer, admin) and the `strata`
//! command-line tool. It depends on `strata-protocol` only.
//!
//! It must never depend on broker or storage internals, and never report a
//! record as sent before the broker acknowledged it at the requested acks.
//!
//! Status: lands with the single-node issue; this crate currently holds no
//! code.
