//! The follower side: one fetcher task per leader broker pulls records for
//! every partition this broker follows from it (`ReplicaFetch`, a long
//! poll), truncates where the leader says the logs diverge, appends the
//! leader's batches unchanged, and takes the leader's high watermark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::ErrorKind;
use strata_record::batch::split_batches;
use strata_record::{ErrorChain, TopicPartition};
use strata_storage::StorageError;
use tokio::sync::watch;

use super::messages::{FollowerFetch, FollowerFetched, ReplicaFetch};
use crate::api::grpc::replica::LeaderClient;
use crate::partition::Partition;

/// How long the leader may hold a replica fetch (Kafka's replica.fetch.wait.max.ms).
pub(crate) const REPLICA_FETCH_WAIT: Duration = Duration::from_millis(500);
/// Most bytes one replica fetch asks for.
const REPLICA_FETCH_MAX_BYTES: u32 = 16 << 20;
/// Pause after a failed fetch or a partition-level error.
const BACKOFF: Duration = Duration::from_millis(100);

/// What one fetcher should fetch: the leader's address and the partitions.
#[derive(Debug, Clone, Default)]
struct Assignment {
    address: String,
    partitions: Vec<Arc<Partition>>,
}

/// Runs one fetcher task per leader broker and tells each which partitions
/// to fetch.
#[derive(Debug)]
pub(crate) struct ReplicaFetcherManager {
    node_id: u32,
    runtime: tokio::runtime::Handle,
    fetchers: Mutex<HashMap<u32, watch::Sender<Assignment>>>,
}

impl ReplicaFetcherManager {
    /// A manager whose tasks run on `runtime`.
    pub(crate) fn new(node_id: u32, runtime: tokio::runtime::Handle) -> Self {
        ReplicaFetcherManager { node_id, runtime, fetchers: Mutex::new(HashMap::new()) }
    }

    /// Sets what every fetcher fetches: `by_leader` maps a leader broker to
    /// its address and the partitions followed from it. Fetchers of leaders
    /// not in it stop.
    pub(crate) fn assign(&self, by_leader: HashMap<u32, (String, Vec<Arc<Partition>>)>) {
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        fetchers.retain(|leader, tx| {
            let keep = by_leader.contains_key(leader);
            if !keep {
                // Dropping the sender ends the task.
                tx.send_replace(Assignment::default());
            }
            keep
        });
        for (leader, (address, partitions)) in by_leader {
            let assignment = Assignment { address, partitions };
            match fetchers.get(&leader) {
                Some(tx) if !tx.is_closed() => {
                    tx.send_replace(assignment);
                }
                _ => {
                    let (tx, rx) = watch::channel(assignment);
                    let fetcher = Fetcher { node_id: self.node_id, leader, client: None, backoff: HashMap::new() };
                    self.runtime.spawn(fetcher.run(rx));
                    fetchers.insert(leader, tx);
                }
            }
        }
    }

    /// Stops every fetcher.
    pub(crate) fn shutdown(&self) {
        self.fetchers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

struct Fetcher {
    node_id: u32,
    leader: u32,
    client: Option<LeaderClient>,
    /// Partitions skipped until then after an error.
    backoff: HashMap<TopicPartition, Instant>,
}

impl Fetcher {
    async fn run(mut self, mut rx: watch::Receiver<Assignment>) {
        loop {
            let assignment = rx.borrow_and_update().clone();
            if assignment.partitions.is_empty() {
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let outcome = tokio::select! {
                r = self.fetch_once(&assignment) => r,
                changed = rx.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return,
                },
            };
            if let Err(e) = outcome {
                tracing::debug!(leader = self.leader, error = %e, "replica fetch failed");
                tokio::select! {
                    _ = tokio::time::sleep(BACKOFF * 2) => {}
                    changed = rx.changed() => if changed.is_err() { return },
                }
            }
        }
    }

    /// The connection to the leader at `address` (a new one when the
    /// leader's address changed).
    fn client(&mut self, address: &str) -> Result<LeaderClient, String> {
        match &self.client {
            Some(c) if c.address() == address => Ok(c.clone()),
            _ => {
                let c = LeaderClient::new(address)?;
                self.client = Some(c.clone());
                Ok(c)
            }
        }
    }

    /// One fetch round for every partition not backing off.
    async fn fetch_once(&mut self, assignment: &Assignment) -> Result<(), String> {
        let now = Instant::now();
        self.backoff.retain(|_, until| *until > now);
        let mut request = ReplicaFetch {
            replica_id: self.node_id,
            max_wait: REPLICA_FETCH_WAIT,
            min_bytes: 1,
            max_bytes: REPLICA_FETCH_MAX_BYTES,
            partitions: Vec::new(),
        };
        let mut by_key: HashMap<TopicPartition, Arc<Partition>> = HashMap::new();
        for p in &assignment.partitions {
            let key = p.tp.clone();
            if self.backoff.contains_key(&key) {
                continue;
            }
            let Some(entry) = fetch_request_for(p, self.leader) else { continue };
            request.partitions.push(entry);
            by_key.insert(key, p.clone());
        }
        if request.partitions.is_empty() {
            // Everything is backing off: wait for the earliest to expire.
            let wait = self.backoff.values().min().map_or(BACKOFF, |u| u.saturating_duration_since(now));
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
            return Ok(());
        }
        let mut client = self.client(&assignment.address)?;
        let answers = tokio::time::timeout(REPLICA_FETCH_WAIT + Duration::from_secs(5), client.fetch(&request))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|s| format!("{}: {}", assignment.address, s.message()))?;
        for r in answers {
            let key = r.tp.clone();
            let Some(p) = by_key.get(&key).cloned() else { continue };
            let applied = {
                let p = p.clone();
                tokio::task::spawn_blocking(move || apply_fetch_result(&p, r))
                    .await
                    .unwrap_or_else(|e| Err(format!("fetch result task failed: {e}")))
            };
            if let Err(e) = applied {
                tracing::warn!(partition = %p.tp, leader = self.leader, error = %e, "replica fetch of a partition failed");
                self.backoff.insert(key, Instant::now() + BACKOFF);
            }
        }
        Ok(())
    }
}

/// One partition's entry in a fetch from `leader`, if this replica follows
/// it: the follower's log end as fetch offset, the epoch of its last batch
/// as last fetched epoch, and the leader epoch it believes in.
pub fn fetch_request_for(p: &Partition, leader: u32) -> Option<FollowerFetch> {
    let current_leader_epoch = p.follower_epoch(leader)?;
    let fetch_offset = p.log.log_end_offset();
    // The epoch of the last batch held: an entry starting at the log end
    // (an epoch this replica assigned as leader and never wrote in) holds
    // no data. Sent as the last fetched epoch, the leader, which never had
    // that epoch, would answer with a divergence at this very log end, which
    // truncates nothing — forever.
    let last_fetched_epoch =
        p.log.epoch_entries().iter().rev().find(|&&(_, start)| start < fetch_offset).map_or(-1, |&(e, _)| e as i32);
    Some(FollowerFetch { tp: p.tp.clone(), fetch_offset, last_fetched_epoch, current_leader_epoch, max_bytes: 0 })
}

/// Applies one partition's fetch result to the follower replica,
/// synchronously (the fetcher runs it on a blocking thread): truncates where
/// the leader says the logs diverge (or where its shorter log ends), else
/// appends the leader's batches unchanged and takes its high watermark. An
/// error means the partition should back off.
pub fn apply_fetch_result(p: &Partition, r: FollowerFetched) -> Result<(), String> {
    if let Some(e) = &r.error {
        let code = e.kind();
        if code == ErrorKind::OffsetOutOfRange {
            let leo = p.log.log_end_offset();
            if leo > r.log_end_offset {
                // The leader's log is shorter (it lost an unreplicated suffix
                // in an unclean election): cut ours to match.
                truncate(p, r.log_end_offset)?;
                return Ok(());
            }
            if leo < r.log_start_offset {
                // The leader no longer has what comes next here (retention or
                // compaction moved its log start past our end): start over
                // from its log start, as Kafka's follower does.
                tracing::warn!(
                    partition = %p.tp, log_end = leo, leader_log_start = r.log_start_offset,
                    "behind the leader's log start; restarting the replica there"
                );
                p.log.truncate_fully_and_start_at(r.log_start_offset).map_err(|e| ErrorChain(&e).to_string())?;
                p.follower_high_watermark(p.high_watermark());
                return Ok(());
            }
        }
        return Err(format!("{code:?}: {}", e.message()));
    }
    if let Some(d) = r.diverging_epoch {
        let leo = p.log.log_end_offset();
        // Where the leader's epoch `d.epoch` ends in *this* log too (Kafka's
        // follower-side OffsetsForLeaderEpoch check): when the leader never
        // had this follower's last epoch, it answers with an older epoch
        // that may end earlier here; cutting only to the leader's end would
        // keep the divergent suffix and the same answer would repeat forever.
        let own_end = match u32::try_from(d.epoch) {
            Ok(epoch) => p.log.end_offset_for_epoch(epoch).map_or(p.log.log_start_offset(), |(_, end)| end),
            Err(_) => leo,
        };
        let to = d.end_offset.min(own_end).min(leo);
        tracing::info!(
            partition = %p.tp, epoch = d.epoch, leader_end_offset = d.end_offset, log_end = leo,
            "log diverges from the leader's; truncating"
        );
        truncate(p, to)?;
        return Ok(());
    }
    if !r.records.is_empty() {
        let max = p.log.config().max_batch_bytes.max(r.records.len());
        let mut batches = Vec::new();
        for b in split_batches(r.records, max) {
            batches.push(b.map_err(|e| format!("leader sent a bad batch: {e}"))?);
        }
        let epoch = p.leader_epoch();
        if let Some(b) = batches.iter().find(|b| b.header().partition_leader_epoch > epoch) {
            return Err(format!(
                "leader sent a batch of epoch {} beyond the current leader epoch {epoch}",
                b.header().partition_leader_epoch
            ));
        }
        p.log.append_as_follower(&batches).map_err(|e: StorageError| ErrorChain(&e).to_string())?;
    }
    // Follow the leader's log start (its retention, offsets compaction)
    // where it lies within this log and below what is committed.
    let start = r.log_start_offset.min(r.high_watermark);
    if start > p.log.log_start_offset() && start <= p.log.log_end_offset() {
        p.log.delete_before(start).map_err(|e| ErrorChain(&e).to_string())?;
    }
    p.follower_high_watermark(r.high_watermark);
    Ok(())
}

fn truncate(p: &Partition, offset: u64) -> Result<(), String> {
    p.log.truncate_to(offset).map_err(|e| ErrorChain(&e).to_string())?;
    p.follower_high_watermark(p.high_watermark());
    Ok(())
}
