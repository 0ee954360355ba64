//! # strata-record
//!
//! Owns the formats every Strata process must agree on byte for byte and
//! that need no network: the record batch (one binary format on the wire
//! and on disk, see `docs/storage.md`, "Record batch"), its varints,
//! Kafka's murmur2 partitioner, and topic-partition names with Kafka's
//! topic-name rules. Storage depends on this crate alone, so a log can be
//! read and written without pulling in gRPC.
//!
//! Everything here is pure: encoding, decoding and validation of bytes, with
//! no I/O. It must never panic on input bytes (they come from sockets and
//! files) and never copy batch payloads where a `Bytes` slice will do.

pub mod batch;
pub mod compression;
mod error_chain;
pub mod murmur2;
mod topic_partition;

pub use error_chain::ErrorChain;
pub use topic_partition::{validate_topic_name, InvalidTopicName, TopicPartition, MAX_TOPIC_NAME_LEN};
