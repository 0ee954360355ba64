//! # strata-broker
//!
//! Owns the broker: partition leaders and followers (replication) over
//! `strata-storage` logs, produce and fetch handling, topic administration
//! through the controller, the HTTP health and metrics endpoints, and the
//! `strata-server` binary that ties them together with the controller.
//!
//! It must never acknowledge a produce before the durability the producer
//! asked for (acks and the log's flush policy) is met, never serve records
//! above the high watermark to consumers, and never write a batch to a log
//! before validating it.

pub mod acls;
pub(crate) mod admin;
pub mod alter_configs;
pub mod api;
pub(crate) mod api_error;
pub mod authorizer;
mod blocking;
pub mod config;
pub mod controller_link;
pub mod delete_records;
pub(crate) mod elect;
pub mod error;
pub(crate) mod fetch;
pub(crate) mod group;
pub mod http;
mod long_poll;
pub mod metrics;
pub(crate) mod partition;
pub(crate) mod produce;
pub mod producer_ids;
pub mod quorum;
pub mod reassign;
pub mod replica_manager;
pub mod replication;
pub mod service;
pub mod sim;
pub mod tasks;
pub(crate) mod topic_config;
pub mod users;

pub use config::BrokerConfig;
pub use error::{BrokerError, ErrorKind};
pub use group::partitioner::offsets_partition_for;
