//! # strata-client
//!
//! Owns the Rust client library (producer, consumer, admin) and the `strata`
//! command-line tool. It depends on `strata-protocol` only.
//!
//! It must never depend on broker or storage internals, and never report a
//! record as sent before the broker acknowledged it at the requested acks.
//!
//! Status: the library is here: [`Admin`] (topics, cluster, consumer
//! groups: coordinator lookup, commit/fetch offsets, list, describe, delete,
//! lag), [`Producer`] (key/sticky partitioning, per-partition batching with
//! linger and batch size, requests grouped per leader broker, bounded
//! in-flight requests, backpressure, retries with metadata refresh,
//! per-partition ordering) and [`Consumer`] (assign, seek by
//! offset/beginning/end/timestamp, long-poll fetches per leader, `poll` and
//! `stream`; with a `group_id`: start from the group's committed offsets,
//! `auto_offset_reset`, auto-commit, `commit_sync`/`commit_async`, and group
//! membership: `subscribe`/`subscribe_pattern` join the group, whose
//! coordinator shares the partitions among its members and moves them
//! incrementally (KIP-848 style heartbeats in the background, revocation and
//! assignment in `poll` with [`RebalanceListener`] callbacks, static
//! membership with `group_instance_id`). The `strata` CLI is in `src/cli/`.
//!
//! ```no_run
//! use strata_client::{Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, SeekTo};
//!
//! # async fn run() -> Result<(), strata_client::ClientError> {
//! let admin = Admin::connect(["127.0.0.1:9700"]).await?;
//! admin.create_topic("events", 3, 1, &[]).await?;
//!
//! let producer = Producer::connect(ProducerConfig::new(["127.0.0.1:9700"])).await?;
//! let meta = producer.send(ProducerRecord::new("events", "hello").with_key("k")).await?.await?;
//! producer.close().await;
//!
//! let mut consumer = Consumer::connect(ConsumerConfig::new(["127.0.0.1:9700"])).await?;
//! consumer.assign([("events", meta.partition)]);
//! consumer.seek("events", meta.partition, SeekTo::Beginning).await?;
//! let records = consumer.poll().await?;
//! # Ok(())
//! # }
//! ```

mod acls;
mod admin;
mod connection;
mod consumer;
mod error;
mod groups;
mod metadata;
mod partition_offset;
mod producer;
mod reassign;
mod security;
mod users;

pub use acls::{Acl, AclFilter};
pub use admin::{
    Admin, BrokerDescription, ClusterDescription, ElectionOutcome, ElectionType, PartitionDescription,
    TopicDescription, TopicSummary, VoterDescription,
};
pub use consumer::{CommitHandle, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, RebalanceListener, SeekTo};
pub use error::ClientError;
pub use groups::{CommittedOffset, GroupCoordinator, GroupDescription, GroupListing, GroupMember, PartitionLag};
pub use partition_offset::PartitionOffset;
pub use producer::{Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use reassign::{MoveListing, MoveOutcome};
pub use security::{Credentials, Security};
/// The API's machine-readable error codes (`ClientError::Server::code`).
pub use strata_protocol::v1::ErrorCode;
/// A topic and partition number: how the client names a partition.
pub use strata_record::compression::Compression;
pub use strata_record::murmur2::{murmur2, partition_for_key};
pub use strata_record::TopicPartition;
pub use strata_tls::TlsFiles;
pub use users::UserListing;
