//! `Partition`: one partition replica hosted by this broker — its log, its
//! role (leader with the followers' progress, or follower), its epochs and
//! ISR from the controller, and the signals that wake long polls: the high
//! watermark (consumers, acks=all producers) and the log end (followers).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{BrokerError, ErrorKind};
use strata_metadata::{MetadataCommand, PartitionInfo};
use strata_storage::{Log, StorageError, TopicPartition};
use tokio::sync::watch;

use crate::replication::leader::LeaderState;
use crate::topic_config::{CompressionPolicy, TopicSettings};

/// The source of "now" for replication decisions (follower lag, ISR
/// proposals). Production uses [`Instant::now`]; a simulation injects its
/// own time.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The production clock: [`Instant::now`].
pub(crate) fn system_clock() -> Clock {
    Arc::new(Instant::now)
}

/// A [`Clock`] that prints as `Clock` (closures are not `Debug`).
#[derive(Clone)]
pub(crate) struct ClockHandle(pub(crate) Clock);

impl ClockHandle {
    pub(crate) fn now(&self) -> Instant {
        (self.0)()
    }
}

impl std::fmt::Debug for ClockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// A leader's log end and each follower's (`None`: not fetched yet in
/// this epoch).
pub(crate) type FollowerLogEnds = (u64, Vec<(u32, Option<u64>)>);

/// This replica's role in the current leader epoch.
#[derive(Debug, Clone)]
pub enum Role {
    /// This broker leads: it appends, tracks followers and moves the HW.
    Leader(Box<LeaderState>),
    /// Another broker (or none) leads: this one fetches from it.
    Follower {
        /// The leader, if the partition has one.
        leader: Option<u32>,
    },
}

/// The controller's view of the partition plus this replica's role.
#[derive(Debug, Clone)]
pub struct ReplicaState {
    /// The leader epoch this replica is in.
    pub leader_epoch: u32,
    /// The controller's partition epoch last applied.
    pub partition_epoch: u32,
    /// Assigned replicas, preferred first.
    pub replicas: Vec<u32>,
    /// The committed ISR.
    pub isr: Vec<u32>,
    /// Replicas a reassignment is adding: the leader serves them under the
    /// replication throttle until they join the ISR.
    pub adding: Vec<u32>,
    /// Leader or follower.
    pub role: Role,
    /// min.insync.replicas and unclean election.
    pub config: TopicSettings,
}

/// A partition replica hosted by this broker.
#[derive(Debug)]
pub struct Partition {
    /// Which partition.
    pub tp: TopicPartition,
    /// The topic's id (a recreated topic of the same name is another one).
    pub topic_id: String,
    /// Its log.
    pub log: Arc<Log>,
    node_id: u32,
    clock: ClockHandle,
    state: Mutex<ReplicaState>,
    high_watermark: watch::Sender<u64>,
    log_end: watch::Sender<u64>,
}

impl Partition {
    /// A replica over an open log, in the role `info` gives this broker.
    /// Becoming leader records the epoch in the log's epoch cache first.
    pub fn new(
        node_id: u32,
        tp: TopicPartition,
        topic_id: String,
        log: Arc<Log>,
        info: &PartitionInfo,
        config: TopicSettings,
    ) -> Result<Self, StorageError> {
        Self::with_clock(node_id, tp, topic_id, log, info, config, system_clock())
    }

    /// [`Partition::new`] with an injected clock for its replication
    /// decisions.
    pub fn with_clock(
        node_id: u32,
        tp: TopicPartition,
        topic_id: String,
        log: Arc<Log>,
        info: &PartitionInfo,
        config: TopicSettings,
        clock: Clock,
    ) -> Result<Self, StorageError> {
        let (high_watermark, _) = watch::channel(log.high_watermark());
        let (log_end, _) = watch::channel(log.log_end_offset());
        let state = ReplicaState {
            leader_epoch: info.leader_epoch,
            partition_epoch: info.partition_epoch,
            replicas: info.replicas.clone(),
            isr: info.isr.clone(),
            adding: Vec::new(),
            role: Role::Follower { leader: None },
            config,
        };
        let clock = ClockHandle(clock);
        let p = Partition { tp, topic_id, log, node_id, clock, state: Mutex::new(state), high_watermark, log_end };
        p.apply(info, config)?;
        Ok(p)
    }

    fn lock(&self) -> MutexGuard<'_, ReplicaState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the replica state (with the leader's follower bookkeeping:
    /// for tests and diagnostics; request paths use the narrow accessors).
    pub fn state(&self) -> ReplicaState {
        self.lock().clone()
    }

    /// Applies the controller's newer state of this partition: a new leader
    /// epoch makes this replica leader or follower; the same epoch updates
    /// the ISR. Older state is ignored (`docs/replication.md`: brokers ignore
    /// partition state older than what they hold). Returns true when the
    /// role or leader changed (the fetchers must be told).
    pub fn apply(&self, info: &PartitionInfo, config: TopicSettings) -> Result<bool, StorageError> {
        let mut st = self.lock();
        st.config = config;
        let same_epoch = info.leader_epoch == st.leader_epoch;
        let initialized = !matches!(st.role, Role::Follower { leader: None }) || st.leader_epoch > info.leader_epoch;
        if info.leader_epoch < st.leader_epoch || (same_epoch && info.partition_epoch < st.partition_epoch) {
            return Ok(false);
        }
        st.replicas = info.replicas.clone();
        st.isr = info.isr.clone();
        st.adding = info.reassignment.as_ref().map(|r| r.adding.clone()).unwrap_or_default();
        st.partition_epoch = info.partition_epoch;
        let leads = info.leader == Some(self.node_id);
        if same_epoch && initialized {
            match &mut st.role {
                Role::Leader(l) if leads => {
                    // A reassignment adds or removes followers within the epoch.
                    l.set_replicas(&info.replicas, self.clock.now());
                    l.set_isr(info.partition_epoch, info.isr.clone());
                    let leo = self.log.log_end_offset();
                    if let Some(hw) = l.update_high_watermark(leo) {
                        drop(st);
                        self.publish_high_watermark(hw);
                    }
                    return Ok(false);
                }
                Role::Follower { leader } if !leads && *leader == info.leader => return Ok(false),
                _ => {}
            }
        }
        st.leader_epoch = info.leader_epoch;
        if leads {
            self.log.assign_leader_epoch(info.leader_epoch)?;
            let leo = self.log.log_end_offset();
            let mut l = LeaderState::new(
                self.node_id,
                info.leader_epoch,
                info.partition_epoch,
                info.replicas.clone(),
                info.isr.clone(),
                leo,
                self.log.high_watermark(),
                self.clock.now(),
            );
            let hw = l.update_high_watermark(leo).unwrap_or(l.high_watermark());
            st.role = Role::Leader(Box::new(l));
            drop(st);
            tracing::info!(partition = %self.tp, epoch = info.leader_epoch, log_end = leo, "became leader");
            self.publish_high_watermark(hw);
        } else {
            st.role = Role::Follower { leader: info.leader };
            drop(st);
            tracing::info!(partition = %self.tp, epoch = info.leader_epoch, leader = ?info.leader, "became follower");
            // Wake acks=all waiters: they must see they no longer lead.
            self.high_watermark.send_modify(|_| {});
        }
        Ok(true)
    }

    /// True when the leader should send `replica` data under the
    /// replication throttle: a reassignment is adding it and it is not in
    /// the ISR yet.
    pub fn is_throttled(&self, replica: u32) -> bool {
        let st = self.lock();
        st.adding.contains(&replica) && !st.isr.contains(&replica)
    }

    /// As leader: its log end and each follower's as last fetched (`None`:
    /// not yet in this epoch) — a reassignment's progress.
    pub fn follower_log_ends(&self) -> Option<FollowerLogEnds> {
        let st = self.lock();
        let Role::Leader(l) = &st.role else { return None };
        let followers = st
            .replicas
            .iter()
            .filter(|r| **r != self.node_id)
            .map(|r| (*r, l.follower(*r).and_then(|f| f.leo)))
            .collect();
        Some((self.log.log_end_offset(), followers))
    }

    /// The leader epoch, if this replica leads.
    pub fn leader_epoch_if_leader(&self) -> Option<u32> {
        let st = self.lock();
        matches!(st.role, Role::Leader(_)).then_some(st.leader_epoch)
    }

    /// The leader epoch this replica is in (whatever its role).
    pub fn leader_epoch(&self) -> u32 {
        self.lock().leader_epoch
    }

    /// The leader this replica follows, if it is a follower of a led partition.
    pub fn followed_leader(&self) -> Option<u32> {
        match self.lock().role {
            Role::Follower { leader } => leader,
            Role::Leader(_) => None,
        }
    }

    /// The leader epoch, if this replica follows `leader` (one consistent
    /// read, for building a fetch request).
    pub fn follower_epoch(&self, leader: u32) -> Option<u32> {
        let st = self.lock();
        matches!(st.role, Role::Follower { leader: Some(l) } if l == leader).then_some(st.leader_epoch)
    }

    /// Whether broker `id` is an assigned replica.
    pub fn is_replica(&self, id: u32) -> bool {
        self.lock().replicas.contains(&id)
    }

    /// (ISR size, replica count, min.insync.replicas): what the replication
    /// gauges need, without copying the leader's follower bookkeeping.
    pub fn isr_counts(&self) -> (usize, usize, u32) {
        let st = self.lock();
        (st.isr.len(), st.replicas.len(), st.config.min_insync_replicas)
    }

    /// How produced batches are stored (the topic's `compression.type`).
    pub fn compression_policy(&self) -> CompressionPolicy {
        self.lock().config.compression
    }

    /// Offset below which records are committed and visible to consumers.
    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that changes whenever the high watermark moves (or the
    /// role changes).
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// A receiver that changes whenever the log end moves (followers' long polls).
    pub fn watch_log_end(&self) -> watch::Receiver<u64> {
        self.log_end.subscribe()
    }

    fn publish_high_watermark(&self, hw: u64) {
        self.log.set_high_watermark(hw);
        self.high_watermark.send_if_modified(|cur| {
            let moved = hw != *cur;
            *cur = hw;
            moved
        });
    }

    /// After a leader append: wakes followers' fetches and, if this leader
    /// is the whole ISR, commits at once.
    pub fn after_leader_append(&self) {
        let leo = self.log.log_end_offset();
        self.log_end.send_replace(leo);
        let hw = match &mut self.lock().role {
            Role::Leader(l) => l.update_high_watermark(leo),
            Role::Follower { .. } => None,
        };
        if let Some(hw) = hw {
            self.publish_high_watermark(hw);
        }
    }

    /// On the leader: follower `replica` fetched at `fetch_offset` in
    /// `epoch`. Returns false if it is not a follower of this partition.
    pub fn record_follower_fetch(&self, replica: u32, fetch_offset: u64) -> bool {
        let leo = self.log.log_end_offset();
        let (known, hw) = match &mut self.lock().role {
            Role::Leader(l) => {
                let known = l.record_fetch(replica, fetch_offset.min(leo), leo, self.clock.now());
                (known, l.update_high_watermark(leo))
            }
            Role::Follower { .. } => (false, None),
        };
        if let Some(hw) = hw {
            self.publish_high_watermark(hw);
        }
        known
    }

    /// On a follower: after appending or truncating, the high watermark is
    /// the leader's, capped by this log's end.
    pub fn follower_high_watermark(&self, leader_hw: u64) {
        let leo = self.log.log_end_offset();
        self.log_end.send_replace(leo);
        self.publish_high_watermark(leader_hw.min(leo));
    }

    /// On the leader: the ISR change to propose now, as an `AlterPartition`
    /// command (marked pending), if one is due.
    pub fn isr_proposal(&self, lag_max: Duration) -> Option<MetadataCommand> {
        let mut st = self.lock();
        let Role::Leader(l) = &mut st.role else { return None };
        let now = self.clock.now();
        let isr = l.desired_isr(now, lag_max)?;
        l.mark_pending(isr.clone(), now);
        let (leader_epoch, partition_epoch) = (l.leader_epoch, l.partition_epoch);
        let hw = l.update_high_watermark(self.log.log_end_offset());
        drop(st);
        if let Some(hw) = hw {
            self.publish_high_watermark(hw);
        }
        Some(MetadataCommand::AlterPartition {
            topic_id: self.topic_id.clone(),
            partition: self.tp.partition,
            leader_id: self.node_id,
            leader_epoch,
            partition_epoch,
            new_isr: isr,
        })
    }

    /// On the leader: the ISR is too small for acks=all (`NOT_ENOUGH_REPLICAS`).
    pub fn check_min_isr(&self, code: ErrorKind) -> Result<(), BrokerError> {
        let st = self.lock();
        let isr = match &st.role {
            Role::Leader(l) => l.isr.len(),
            Role::Follower { .. } => return Err(self.not_leader()),
        };
        let min = st.config.min_insync_replicas as usize;
        if isr < min {
            return Err(BrokerError::new(
                code,
                format!(
                    "{}: the in-sync replica set {:?} has {isr} member(s); min.insync.replicas is {min}",
                    self.tp, st.isr
                ),
            ));
        }
        Ok(())
    }

    /// The error for a request that needs the leader.
    pub fn not_leader(&self) -> BrokerError {
        let st = self.lock();
        match &st.role {
            Role::Follower { leader: Some(l) } => BrokerError::new(
                ErrorKind::NotLeaderOrFollower,
                format!("broker {} is not the leader of {}; broker {l} is", self.node_id, self.tp),
            ),
            _ => BrokerError::new(ErrorKind::LeaderNotAvailable, format!("{} has no leader", self.tp)),
        }
    }
}
