//! # strata-protocol
//!
//! Owns the formats that several crates and processes must agree on: the
//! record batch (one binary format shared by the wire and the disk, see
//! `DESIGN.md`, "Record batch") and, with the single-node issue, the gRPC
//! schema. Everything here is pure: encoding, decoding and validation of
//! bytes, with no I/O.
//!
//! It must never panic on input bytes (they come from sockets and files),
//! never copy batch payloads where a `Bytes` slice will do, and never depend
//! on another Strata crate.

pub mod batch;

/// The gRPC API, generated from `proto/strata/v1/strata.proto` at build time.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("strata.v1");
}

pub mod errors;
pub mod murmur2;
