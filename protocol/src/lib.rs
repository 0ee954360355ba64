//! # strata-protocol
//!
//! Owns Strata's gRPC schema: the client API (`strata.v1.Strata`) and the
//! controller quorum's API (`strata.v1.ControllerRaft`), generated from
//! `proto/strata/v1/*.proto` at build time by protox and tonic-prost (no
//! system `protoc`), plus helpers around the API's error codes. The record
//! batch those messages carry as bytes is `strata-record`'s.
//!
//! It must never depend on another Strata crate other than through the
//! bytes it carries, and never copy batch payloads (`bytes` fields are
//! `bytes::Bytes`).

/// The gRPC API, generated from `proto/strata/v1/strata.proto` at build time.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("strata.v1");
}

pub mod errors;
pub mod zero_copy;
