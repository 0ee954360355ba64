//! # strata-tests
//!
//! Owns the whole-cluster tests: they start real `strata-server` processes on
//! loopback, inject faults (kill -9, stop, restart, hostile input) and check
//! the guarantees in DESIGN.md and REPLICATION.md from the outside.
//!
//! It must never be a dependency of another crate, never talk to anything but
//! 127.0.0.1, and never end a process it did not start.
//!
//! Status: the first cluster tests land with the single-node issue.
