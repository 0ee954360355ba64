//! The leader side of `ReplicaFetch` (`docs/replication.md`, "Follower fetch"):
//! epoch checks, divergence detection from the leader-epoch cache, the
//! follower's progress (which moves the high watermark), and a long poll on
//! the log end.

use std::time::Duration;

use crate::error::{BrokerError, ErrorKind};
use strata_storage::{fault_in, StorageError};
use tokio::sync::watch;
use tokio::time::Instant;

use super::messages::{EpochEnd, FollowerFetch, FollowerFetched, ReplicaFetch};
use crate::api_error;
use crate::blocking::blocking;
use crate::long_poll::wait_for_change;
use crate::partition::Partition;
use crate::service::BrokerService;

/// Longest a replica fetch may wait, whatever the follower asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(5);

impl BrokerService {
    /// Serves a follower's fetch: an answer per partition, in request
    /// order.
    pub(crate) async fn replica_fetch(&self, req: ReplicaFetch) -> Vec<FollowerFetched> {
        let deadline = Instant::now() + req.max_wait.min(MAX_WAIT_CAP);
        let min_bytes = req.min_bytes.max(1) as usize;
        // The follower's progress is recorded once, from its fetch offsets:
        // that is what moves the high watermark for acks=all.
        let mut first = true;
        loop {
            let (watchers, response, bytes, done) = self.replica_fetch_pass(&req, first);
            first = false;
            let throttle = self.replicas.throttle();
            if bytes == 0 && !done && Instant::now() < deadline && self.is_starved(&req) {
                // Only throttled partitions, and the bucket is empty: wait
                // for tokens rather than for the log end to move.
                let wait = throttle.until_available(std::time::Instant::now()).max(Duration::from_millis(10));
                let until = (Instant::now() + wait).min(deadline);
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = self.stopping.cancelled() => return response,
                }
                continue;
            }
            if bytes >= min_bytes
                || done
                || watchers.is_empty()
                || Instant::now() >= deadline
                || self.stopping.is_cancelled()
            {
                return response;
            }
            if !wait_for_change(watchers, deadline, &self.stopping).await {
                return self.replica_fetch_pass(&req, false).1;
            }
        }
    }

    /// True when every partition of `req` led here is one the throttle
    /// holds back right now (a follower that only catches up).
    fn is_starved(&self, req: &ReplicaFetch) -> bool {
        let throttle = self.replicas.throttle();
        if throttle.available(std::time::Instant::now()) > 0 {
            return false;
        }
        req.partitions
            .iter()
            .all(|fp| self.replicas.lookup(&fp.tp.topic, fp.tp.partition).is_ok_and(|p| p.is_throttled(req.replica_id)))
    }

    /// [`Self::replica_fetch_once`], off the async worker when a partition
    /// is read from a sealed segment (a follower catching up), with its
    /// pages faulted in before the response is written to the socket.
    fn replica_fetch_pass(
        &self,
        req: &ReplicaFetch,
        record_progress: bool,
    ) -> (Vec<watch::Receiver<u64>>, Vec<FollowerFetched>, usize, bool) {
        let cold = req.partitions.iter().any(|fp| {
            self.replicas
                .lookup(&fp.tp.topic, fp.tp.partition)
                .is_ok_and(|p| p.log.reads_sealed_segment(fp.fetch_offset))
        });
        if !cold {
            return self.replica_fetch_once(req, record_progress);
        }
        self.metrics.record_cold_read();
        blocking(|| {
            let pass = self.replica_fetch_once(req, record_progress);
            for r in &pass.1 {
                fault_in(&r.records);
            }
            pass
        })
    }

    /// One pass: the response, its record bytes, whether anything must be
    /// answered at once (errors, divergence), and log-end watchers taken
    /// before reading.
    fn replica_fetch_once(
        &self,
        req: &ReplicaFetch,
        record_progress: bool,
    ) -> (Vec<watch::Receiver<u64>>, Vec<FollowerFetched>, usize, bool) {
        let max_bytes = if req.max_bytes == 0 { usize::MAX } else { req.max_bytes as usize };
        let mut out = Vec::with_capacity(req.partitions.len());
        let (mut used, mut done, mut watchers) = (0usize, false, Vec::new());
        for fp in &req.partitions {
            let mut r = FollowerFetched::new(fp.tp.clone());
            match self.replicas.lookup(&fp.tp.topic, fp.tp.partition) {
                Err(e) => r.error = Some(e),
                Ok(p) => {
                    watchers.push(p.watch_log_end());
                    let mut budget = match fp.max_bytes {
                        0 => max_bytes.saturating_sub(used),
                        n => (n as usize).min(max_bytes.saturating_sub(used)),
                    };
                    let throttled = p.is_throttled(req.replica_id);
                    if throttled {
                        budget = budget.min(self.replicas.throttle().available(std::time::Instant::now()));
                    }
                    if let Err(e) = serve_partition(&p, req.replica_id, fp, record_progress, budget, &mut r) {
                        r.error = Some(e);
                    }
                    if throttled {
                        self.replicas.throttle().consume(r.records.len(), std::time::Instant::now());
                        self.metrics.record_throttled_replication(r.records.len());
                    }
                    used += r.records.len();
                }
            }
            if r.error.is_some() || r.diverging_epoch.is_some() {
                done = true;
            }
            out.push(r);
        }
        (watchers, out, used, done)
    }
}

/// Fills `r` for one partition led here: the leader-side rules of one
/// follower fetch (epoch fencing, replica check, divergence, progress, the
/// batches from `fp.fetch_offset` up to `budget` bytes). `record_progress`
/// records the follower's fetch offset (only on a request's first pass).
/// Sync and free of the RPC layer, so a simulation drives it directly.
pub fn serve_partition(
    p: &Partition,
    replica: u32,
    fp: &FollowerFetch,
    record_progress: bool,
    budget: usize,
    r: &mut FollowerFetched,
) -> Result<(), BrokerError> {
    let Some(epoch) = p.leader_epoch_if_leader() else { return Err(p.not_leader()) };
    if fp.current_leader_epoch < epoch {
        return Err(BrokerError::new(
            ErrorKind::FencedLeaderEpoch,
            format!("{}: leader epoch {} is stale; the current one is {epoch}", p.tp, fp.current_leader_epoch),
        ));
    }
    if fp.current_leader_epoch > epoch {
        return Err(BrokerError::new(
            ErrorKind::UnknownLeaderEpoch,
            format!("{}: leader epoch {} is newer than this leader's {epoch}", p.tp, fp.current_leader_epoch),
        ));
    }
    if !p.is_replica(replica) {
        return Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!("{}: broker {replica} is not a replica (replicas {:?})", p.tp, p.state().replicas),
        ));
    }
    let (log_start, leo) = (p.log.log_start_offset(), p.log.log_end_offset());
    r.log_start_offset = log_start;
    r.log_end_offset = leo;
    // Divergence (KIP-101/279): where does the leader's log end for the
    // follower's last epoch? If before the follower's end, or the leader
    // never had that epoch, the follower truncates there first.
    if fp.last_fetched_epoch >= 0 {
        let requested = fp.last_fetched_epoch as u32;
        let diverging = match p.log.end_offset_for_epoch(requested) {
            Some((e, end)) => (end < fp.fetch_offset || e < requested).then_some((e as i32, end)),
            // Every epoch the leader holds is newer than the follower's last:
            // none of the follower's records past the leader's start match.
            None => (fp.fetch_offset > log_start).then_some((-1, log_start)),
        };
        if let Some((epoch, end_offset)) = diverging {
            r.diverging_epoch = Some(EpochEnd { epoch, end_offset });
            r.high_watermark = p.high_watermark();
            return Ok(());
        }
    }
    if fp.fetch_offset > leo || fp.fetch_offset < log_start {
        return Err(BrokerError::new(
            ErrorKind::OffsetOutOfRange,
            format!(
                "{}: replica fetch offset {} is out of range; the leader has {log_start} to {leo}",
                p.tp, fp.fetch_offset
            ),
        ));
    }
    if record_progress && !p.record_follower_fetch(replica, fp.fetch_offset) {
        return Err(p.not_leader());
    }
    r.high_watermark = p.high_watermark();
    if budget == 0 {
        return Ok(());
    }
    match p.log.read(fp.fetch_offset, budget.max(1)) {
        Ok(read) => {
            r.records = read.batches;
            Ok(())
        }
        Err(StorageError::OffsetOutOfRange { offset, log_start, log_end }) => Err(BrokerError::new(
            ErrorKind::OffsetOutOfRange,
            format!("{}: replica fetch offset {offset} is out of range; the leader has {log_start} to {log_end}", p.tp),
        )),
        Err(e) => Err(api_error::storage_error(&p.tp.topic, p.tp.partition, e)),
    }
}
