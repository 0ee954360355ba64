//! The follower side: one fetcher task per leader broker pulls records for
//! every partition this broker follows from it (`ReplicaFetch`, a long
//! poll), truncates where the leader says the logs diverge, appends the
//! leader's batches unchanged, and takes the leader's high watermark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::ErrorKind;
use strata_record::batch::split_stored_batches;
use strata_record::{ErrorChain, TopicPartition};
use strata_storage::{map_unordered, AppendInfo, StorageError, LOG_THREADS};
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
    /// TLS to the leaders, presenting this node's certificate.
    tls: Option<strata_tls::ClientTls>,
    fetchers: Mutex<HashMap<u32, watch::Sender<Assignment>>>,
}

impl ReplicaFetcherManager {
    /// A manager whose tasks run on `runtime`.
    pub(crate) fn new(node_id: u32, runtime: tokio::runtime::Handle, tls: Option<strata_tls::ClientTls>) -> Self {
        ReplicaFetcherManager { node_id, runtime, tls, fetchers: Mutex::new(HashMap::new()) }
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
                    let fetcher = Fetcher {
                        node_id: self.node_id,
                        leader,
                        tls: self.tls.clone(),
                        client: None,
                        backoff: HashMap::new(),
                    };
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
    tls: Option<strata_tls::ClientTls>,
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
                let c = LeaderClient::new(address, self.tls.as_ref())?;
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
        let mut fetched = Vec::with_capacity(answers.len());
        for r in answers {
            if let Some(p) = by_key.get(&r.tp) {
                fetched.push((p.clone(), r));
            }
        }
        let outcomes = tokio::task::spawn_blocking(move || apply_fetch_results(fetched))
            .await
            .map_err(|e| format!("fetch result task failed: {e}"))?;
        for (p, outcome) in outcomes {
            if let Err(e) = outcome {
                tracing::warn!(partition = %p.tp, leader = self.leader, error = %e, "replica fetch of a partition failed");
                self.backoff.insert(p.tp.clone(), Instant::now() + BACKOFF);
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
    match stage_fetch_result(p, r)? {
        Some(appended) => appended.finish(p),
        None => Ok(()),
    }
}

/// Applies every partition's result of one fetch: appends them all first,
/// then waits for their syncs together (on up to [`LOG_THREADS`] threads),
/// so a fetch of many partitions costs about one sync's latency instead of
/// one per partition. Each partition's high watermark moves only once its
/// own append is durable, and its next fetch offset (its log end) is read
/// only after this returns, so the leader never counts bytes a follower
/// could still lose. Outcomes come back in the order given.
pub fn apply_fetch_results(
    fetched: Vec<(Arc<Partition>, FollowerFetched)>,
) -> Vec<(Arc<Partition>, Result<(), String>)> {
    let mut outcomes = Vec::with_capacity(fetched.len());
    let mut pending = Vec::new();
    for (i, (p, r)) in fetched.into_iter().enumerate() {
        match stage_fetch_result(&p, r) {
            Ok(Some(appended)) => pending.push((i, p, appended)),
            Ok(None) => outcomes.push((i, p, Ok(()))),
            Err(e) => outcomes.push((i, p, Err(e))),
        }
    }
    outcomes.extend(map_unordered(pending, LOG_THREADS, |(i, p, appended)| {
        let outcome = appended.finish(&p);
        (i, p, outcome)
    }));
    // In the order given, so a seeded simulation replays identically.
    outcomes.sort_unstable_by_key(|(i, _, _)| *i);
    outcomes.into_iter().map(|(_, p, outcome)| (p, outcome)).collect()
}

/// A follower append written but maybe not yet durable, with what the
/// leader said to take once it is.
struct Appended {
    durable: Option<(AppendInfo, Duration)>,
    log_start_offset: u64,
    high_watermark: u64,
}

impl Appended {
    /// Waits for the flush policy's durability, then follows the leader's
    /// log start and high watermark.
    fn finish(self, p: &Partition) -> Result<(), String> {
        if let Some((info, delay)) = &self.durable {
            p.log.wait_durable_for(info, *delay).map_err(|e| ErrorChain(&e).to_string())?;
        }
        // Follow the leader's log start (its retention, offsets compaction)
        // where it lies within this log and below what is committed.
        let start = self.log_start_offset.min(self.high_watermark);
        if start > p.log.log_start_offset() && start <= p.log.log_end_offset() {
            p.log.delete_before(start).map_err(|e| ErrorChain(&e).to_string())?;
        }
        p.follower_high_watermark(self.high_watermark);
        Ok(())
    }
}

/// The first half of applying a fetch result: truncation and resets happen
/// here in full; data is appended without waiting for its sync, which the
/// returned [`Appended`] does.
fn stage_fetch_result(p: &Partition, r: FollowerFetched) -> Result<Option<Appended>, String> {
    if let Some(e) = &r.error {
        let code = e.kind();
        if code == ErrorKind::OffsetOutOfRange {
            let leo = p.log.log_end_offset();
            if leo > r.log_end_offset {
                // The leader's log is shorter (it lost an unreplicated suffix
                // in an unclean election): cut ours to match.
                truncate(p, r.log_end_offset)?;
                return Ok(None);
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
                return Ok(None);
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
        return Ok(None);
    }
    let mut durable = None;
    if !r.records.is_empty() {
        let max = p.log.config().max_batch_bytes.max(r.records.len());
        let mut batches = Vec::new();
        for b in split_stored_batches(r.records, max) {
            batches.push(b.map_err(|e| format!("leader sent a bad batch: {e}"))?);
        }
        let epoch = p.leader_epoch();
        if let Some(b) = batches.iter().find(|b| b.header().partition_leader_epoch > epoch) {
            return Err(format!(
                "leader sent a batch of epoch {} beyond the current leader epoch {epoch}",
                b.header().partition_leader_epoch
            ));
        }
        let (info, delay) =
            p.log.append_as_follower_unsynced(&batches).map_err(|e: StorageError| ErrorChain(&e).to_string())?;
        durable = delay.map(|d| (info, d));
    }
    Ok(Some(Appended { durable, log_start_offset: r.log_start_offset, high_watermark: r.high_watermark }))
}

fn truncate(p: &Partition, offset: u64) -> Result<(), String> {
    p.log.truncate_to(offset).map_err(|e| ErrorChain(&e).to_string())?;
    p.follower_high_watermark(p.high_watermark());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

    use super::*;
    use crate::topic_config::TopicSettings;
    use bytes::Bytes;
    use strata_metadata::PartitionInfo;
    use strata_record::batch::BatchBuilder;
    use strata_record::batch::{set_base_offset, set_partition_leader_epoch};
    use strata_storage::{Log, LogConfig};

    const LEADER: u32 = 2;

    /// A follower replica (this broker is 1, broker 2 leads in epoch 1) over
    /// a group-commit log.
    fn follower(dir: &std::path::Path, partition: u32) -> Arc<Partition> {
        let tp = TopicPartition::new("t", partition).unwrap();
        let log = Arc::new(Log::open(dir.join(format!("t-{partition}")), LogConfig::default()).unwrap());
        let info = PartitionInfo {
            partition,
            replicas: vec![LEADER, 1],
            isr: vec![LEADER, 1],
            leader: Some(LEADER),
            leader_epoch: 1,
            partition_epoch: 1,
            reassignment: None,
        };
        Arc::new(Partition::new(1, tp, "id".into(), log, &info, TopicSettings::defaults(2)).unwrap())
    }

    /// The leader's answer: `n` records at `base`, stored in epoch 1.
    fn fetched(p: &Partition, base: u64, n: usize, high_watermark: u64) -> FollowerFetched {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            b.append(1_700_000_000_000, None, Some(format!("v{i}").as_bytes()), &[]).unwrap();
        }
        let mut bytes = b.build().unwrap().to_vec();
        set_base_offset(&mut bytes, base).unwrap();
        set_partition_leader_epoch(&mut bytes, 1).unwrap();
        let mut r = FollowerFetched::new(p.tp.clone());
        r.records = Bytes::from(bytes);
        r.high_watermark = high_watermark;
        r.log_end_offset = base + n as u64;
        r
    }

    /// The high watermark a follower takes from the leader moves only once
    /// its append is durable: staging appends, finishing takes it.
    #[test]
    fn the_high_watermark_moves_only_after_the_append_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let p = follower(dir.path(), 0);
        let appended = stage_fetch_result(&p, fetched(&p, 0, 5, 5)).unwrap().expect("data was staged");
        assert_eq!(p.log.log_end_offset(), 5, "the batch is written");
        assert_eq!(p.high_watermark(), 0, "but the leader's high watermark is not taken before the sync");
        assert!(appended.durable.is_some(), "group commit asks for a durability wait");
        appended.finish(&p).unwrap();
        assert_eq!(p.high_watermark(), 5);
    }

    /// Every partition of one fetch is applied, in the order given, each
    /// with its own high watermark; a bad answer for one fails only it.
    #[test]
    fn one_fetch_applies_every_partition_and_isolates_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let ps: Vec<_> = (0..12).map(|i| follower(dir.path(), i)).collect();
        // Partition 7 already holds two records; its answer starts at 0
        // again: it overlaps its log. (A gap is fine: compaction makes them.)
        let seeded = apply_fetch_results(vec![(ps[7].clone(), fetched(&ps[7], 0, 2, 0))]);
        seeded[0].1.as_ref().unwrap();
        let mut fetch = Vec::new();
        for (i, p) in ps.iter().enumerate() {
            fetch.push((p.clone(), fetched(p, 0, i + 1, i as u64)));
        }
        let outcomes = apply_fetch_results(fetch);
        assert_eq!(outcomes.len(), 12);
        for (i, (p, outcome)) in outcomes.iter().enumerate() {
            assert_eq!(p.tp.partition, i as u32, "outcomes come back in the order given");
            if i == 7 {
                assert!(outcome.is_err(), "an answer overlapping the log is refused");
                assert_eq!(p.log.log_end_offset(), 2);
            } else {
                outcome.as_ref().unwrap();
                assert_eq!(p.log.log_end_offset(), i as u64 + 1);
                assert_eq!(p.high_watermark(), i as u64);
            }
        }
    }
}
