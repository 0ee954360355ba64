//! The narrow entry point a deterministic simulation of replication uses
//! (`broker/tests/replication_sim.rs`): the broker core's partition and
//! replica state and the pure steps of the replication protocol, driven
//! without networking, threads or timers. Nothing else outside the crate
//! reaches these modules.

pub use crate::error::{BrokerError, ErrorKind};
pub use crate::partition::{Clock, Partition, Role};
pub use crate::produce::commit_status;
pub use crate::replica_manager::ReplicaManager;
pub use crate::replication::fetcher::{apply_fetch_result, apply_fetch_results, fetch_request_for};
pub use crate::replication::messages::{EpochEnd, FollowerFetch, FollowerFetched};
pub use crate::replication::serve::serve_partition;
