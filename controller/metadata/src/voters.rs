//! Controller membership changes as clients ask for them
//! (`strata cluster add-voter` / `remove-voter`). The Raft layer carries
//! them out as configuration changes; this crate only names them.

use serde::{Deserialize, Serialize};

/// One change to the controller quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoterChange {
    /// A node joins: first as a learner, then as a voter once caught up.
    Add {
        /// Its node id.
        node_id: u64,
        /// Its controller (Raft) `host:port`.
        address: String,
    },
    /// A voter (or learner) leaves, e.g. a failed one being replaced.
    Remove {
        /// Its node id.
        node_id: u64,
    },
}
