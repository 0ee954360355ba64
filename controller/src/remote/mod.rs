//! The controller seen from a node without the controller role: a broker
//! that registers, heartbeats, proposes and follows metadata over the voters'
//! `ControllerRaft` gRPC API, finding the leader by hints and rotation.

mod follower;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use follower::MetadataFollower;

use crate::controller::{MetadataDelta, QuorumStatus};
use crate::error::ControllerError;
use crate::grpc::{Forwarded, Forwarder};
use crate::metadata::{CommandOutcome, MetadataCommand};

/// Pause between rounds of attempts while no voter leads.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// A cloneable client of the controller quorum for broker-only nodes.
#[derive(Debug, Clone)]
pub struct ControllerClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    voters: Vec<u64>,
    forwarder: Forwarder,
    /// The last voter known to lead (0 = none).
    leader: AtomicU64,
    /// Round-robin position for when no leader is known.
    next: AtomicUsize,
    timeout: Duration,
}

impl ControllerClient {
    /// A client for the voters at `voter_addresses` (id → controller
    /// `host:port`); every request gives up after `timeout`. Connections are
    /// made on first use.
    pub fn new(voter_addresses: HashMap<u64, String>, timeout: Duration) -> Result<Self, ControllerError> {
        Self::with_tls(voter_addresses, timeout, None)
    }

    /// [`Self::new`], over TLS with `tls` (this node's certificate, the
    /// cluster's CA) when given.
    pub fn with_tls(
        voter_addresses: HashMap<u64, String>,
        timeout: Duration,
        tls: Option<strata_tls::ClientTls>,
    ) -> Result<Self, ControllerError> {
        let mut voters: Vec<u64> = voter_addresses.keys().copied().collect();
        voters.sort_unstable();
        if voters.is_empty() || voters.contains(&0) {
            return Err(ControllerError::Raft(raft::Error::ConfigInvalid(format!(
                "controller voters must be a non-empty set of non-zero ids, got {voters:?}"
            ))));
        }
        Ok(ControllerClient {
            inner: Arc::new(Inner {
                voters,
                forwarder: Forwarder::new(std::sync::Arc::new(std::sync::RwLock::new(voter_addresses)), tls),
                leader: AtomicU64::new(0),
                next: AtomicUsize::new(0),
                timeout,
            }),
        })
    }

    /// The voter ids, ascending.
    pub fn voters(&self) -> &[u64] {
        &self.inner.voters
    }

    /// The last voter seen leading, if any.
    pub fn known_leader(&self) -> Option<u64> {
        Some(self.inner.leader.load(Ordering::Relaxed)).filter(|&l| l != 0)
    }

    /// Records a leader hint (from a metadata response, say).
    pub(crate) fn hint_leader(&self, leader: Option<u64>) {
        if let Some(l) = leader.filter(|l| self.inner.voters.contains(l)) {
            self.inner.leader.store(l, Ordering::Relaxed);
        }
    }

    /// A voter to try: the known leader, else the next in rotation.
    pub(crate) fn pick_voter(&self) -> u64 {
        self.known_leader().unwrap_or_else(|| self.rotate())
    }

    /// The next voter in rotation (forgetting the known leader).
    pub(crate) fn rotate(&self) -> u64 {
        self.inner.leader.store(0, Ordering::Relaxed);
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner.voters[i % self.inner.voters.len()]
    }

    /// Proposes `cmd` on the leader and waits until it is applied.
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<CommandOutcome, ControllerError> {
        self.on_leader(|leader, remaining| self.inner.forwarder.propose(leader, &cmd, remaining)).await
    }

    /// Records broker `node_id`'s heartbeat on the leader.
    pub async fn heartbeat(&self, node_id: u32) -> Result<(), ControllerError> {
        self.on_leader(|leader, remaining| self.inner.forwarder.heartbeat(leader, node_id, remaining)).await
    }

    /// The quorum as the leader sees it.
    pub async fn describe_quorum(&self) -> Result<QuorumStatus, ControllerError> {
        self.on_leader(|leader, remaining| self.inner.forwarder.describe_quorum(leader, remaining)).await
    }

    /// Metadata after `after` from `voter`, long-polling up to `max_wait`;
    /// also returns the leader that voter knows of.
    pub(crate) async fn fetch_metadata(
        &self,
        voter: u64,
        after: u64,
        max_wait: Duration,
    ) -> Result<(MetadataDelta, Option<u64>), ControllerError> {
        self.inner.forwarder.fetch_metadata(voter, after, max_wait).await
    }

    /// Runs `request` against the leader: the known one, a hinted one, or
    /// each voter in turn; retries within the timeout.
    async fn on_leader<T, R, RF>(&self, request: R) -> Result<T, ControllerError>
    where
        R: Fn(u64, Duration) -> RF,
        RF: Future<Output = Forwarded<T>>,
    {
        let deadline = Instant::now() + self.inner.timeout;
        let mut target = self.pick_voter();
        let mut tried = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ControllerError::Timeout);
            }
            match request(target, remaining).await {
                Forwarded::Done(result) => {
                    if result.is_ok() {
                        self.inner.leader.store(target, Ordering::Relaxed);
                    }
                    return result;
                }
                Forwarded::Retry { leader_hint: Some(hint) } if hint != target && self.inner.voters.contains(&hint) => {
                    target = hint;
                }
                Forwarded::Retry { .. } => {
                    tried += 1;
                    if tried % self.inner.voters.len() == 0 {
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        tokio::time::sleep(RETRY_PAUSE.min(remaining)).await;
                    }
                    target = self.rotate();
                }
            }
        }
    }
}
