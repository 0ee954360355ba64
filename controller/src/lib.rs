//! # strata-controller
//!
//! Owns the controller quorum that replaces ZooKeeper: a raft-rs `RawNode` on
//! each controller voter and the replicated cluster-metadata state machine
//! (brokers, topics, partitions with replicas, ISR, leader and leader epoch).
//! It elects partition leaders and fences brokers that miss their session.
//!
//! It must never touch partition data (that is `strata-storage` and
//! `strata-broker`), never decode Raft messages that came from clients rather
//! than controller peers, and never acknowledge a metadata change before it is
//! committed by a quorum.
//!
//! Status: a voter of the controller quorum — persisted Raft log, hard state
//! and snapshots with log compaction, the metadata state machine (brokers,
//! topics with rack-aware placement, fencing, ISR changes, leader
//! elections), and an async handle to propose and follow metadata. Raft
//! messages go through a [`Transport`] (a no-op one for a single voter, an
//! in-memory one with fault injection for tests, [`GrpcTransport`] for a
//! quorum over gRPC, where [`RaftService`] receives them and followers
//! forward proposals and broker heartbeats to the leader). The leader fences
//! brokers that miss their session. Nodes without the controller role use a
//! [`ControllerClient`] and follow metadata as deltas with a
//! [`MetadataFollower`].
//!
//! Modules: [`metadata`] (the pure state machine), [`raft_storage`] (raft-rs
//! `Storage` on disk), [`grpc`] (the quorum over `strata.v1.ControllerRaft`),
//! the controller handle ([`Controller`]) and a
//! `slog`→`tracing` bridge for raft-rs's logs.

mod controller;
mod error;
pub mod grpc;
mod logging;
/// The pure state machine this quorum replicates (`strata-metadata`).
pub use strata_metadata as metadata;
pub mod raft_storage;
mod remote;

pub use controller::{
    Controller, ControllerConfig, ControllerStatus, InMemoryNetwork, InMemoryTransport, MetadataDelta, NoopTransport,
    QuorumStatus, RaftInbox, Transport,
};
pub use error::ControllerError;
pub use grpc::{GrpcTransport, RaftService};
pub use logging::{raft_logger, TracingDrain};
pub use metadata::{
    place_replicas, rack_alternating, BrokerInfo, CommandOutcome, LeaderChange, MetadataCommand, MetadataError,
    MetadataImage, PartitionInfo, TopicInfo, MAX_PARTITIONS,
};
pub use raft_storage::RaftStorage;
pub use remote::{ControllerClient, MetadataFollower};
